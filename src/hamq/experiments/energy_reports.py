"""``hamq energy --json`` reports read back for tables: each checked to be one, and a set
of them checked to be priced alike, so a gain between two of them is the runs', not a
hardware setting's.

    reports = read_reports([Path("sec/w8-baseline.json"), Path("sec/w8-hamming-2.json")])

A report must hold ``totals`` with :data:`TOTALS`; every report must agree with the first
on :data:`AGREE` (the resolved hardware spec, overrides included, the measuring mode, the
samples and the static activity). Anything else is a :class:`ReportError` whose message
names the file and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Fields every report of one table must share with the first (``hamq energy --json``).
AGREE = ("hardware_spec", "mode", "samples", "activity")
#: Totals a table needs from every report.
TOTALS = ("e_cb_j", "e_adc_j", "conversions", "mapped_cols", "tiles")


class ReportError(ValueError):
    """A report that cannot be read or compared; the message names the file and the fix."""


def read_report(path: Path) -> dict[str, Any]:
    """The report in ``path``, refused unless it is a ``hamq energy --json`` output."""
    try:
        report = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ReportError(f"{path}: not a readable JSON report ({e}); write it with "
                          "`hamq energy RUN --json > FILE`") from None  # fmt: skip
    if not isinstance(report, dict) or not isinstance(report.get("totals"), dict):
        raise ReportError(f"{path}: no 'totals' in it; is it the output of `hamq energy --json`?")
    missing = [k for k in TOTALS if k not in report["totals"]]
    if missing:
        raise ReportError(f"{path}: totals lack {', '.join(missing)}; rerun `hamq energy --json`")
    return report


def read_reports(paths: list[Path]) -> list[dict[str, Any]]:
    """The reports in ``paths`` (at least one), every one priced as the first (:data:`AGREE`)."""
    reports = [read_report(p) for p in paths]
    for path, report in zip(paths[1:], reports[1:], strict=True):
        for key in AGREE:
            if report.get(key) != reports[0].get(key):
                raise ReportError(
                    f"{path}: its {key} differs from {paths[0]}'s; measure every run on the "
                    "same --hw, --set, --samples and mode as the baseline"
                )
    return reports


def on_cells(report: dict[str, Any]) -> int:
    """ON cells of the layout the report measured (the sum over its layers)."""
    return sum(int(layer["cells_on"]) for layer in report.get("layers", []))
