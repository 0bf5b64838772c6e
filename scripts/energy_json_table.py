"""A Markdown table of ``hamq energy --json`` reports against the first one (the baseline).

    for r in baseline rows-0.7-hamq-kd-ft15; do
      hamq energy runs/twofold-cifar-r20/w8-$r --hw rram-2b-40nm --samples 1000 \\
        --set adc.skip_zero=true --json > sz/$r.json
    done
    python scripts/energy_json_table.py sz/baseline.json sz/rows-0.7-hamq-kd-ft15.json

For a hardware option that the sweeps do not measure (here ``adc.skip_zero``: conversions
whose driven cells are all OFF are skipped, docs/crossbar.md), priced on the same hardware
for the baseline and every run, so the gains compare like with like. Each row is named by
its file's stem. The reports must agree on the hardware (the resolved spec, overrides
included), the mode and the samples; a report that does not is refused (exit 2), naming
the field, since a gain between two hardware settings would be the setting's, not the
run's. Columns: E_cb, E_adc, the conversions per inference, E_cb&AD, and both gains
(the baseline's energy over the run's).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hamq.experiments.markdown import markdown_table

AGREE = ("hardware_spec", "mode", "samples", "activity")


@dataclass(frozen=True)
class Row:
    name: str
    e_cb_j: float
    e_adc_j: float
    conversions: float

    @property
    def e_cb_ad_j(self) -> float:
        return self.e_cb_j + self.e_adc_j


class ReportError(ValueError):
    """A report that cannot be read or compared; the message names the file and the fix."""


def read_report(path: Path) -> dict[str, Any]:
    try:
        report = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ReportError(f"{path}: not a readable JSON report ({e}); write it with "
                          "`hamq energy RUN --json > FILE`") from None  # fmt: skip
    if not isinstance(report, dict) or not isinstance(report.get("totals"), dict):
        raise ReportError(f"{path}: no 'totals' in it; is it the output of `hamq energy --json`?")
    missing = [k for k in ("e_cb_j", "e_adc_j", "conversions") if k not in report["totals"]]
    if missing:
        raise ReportError(f"{path}: totals lack {', '.join(missing)}; rerun `hamq energy --json`")
    return report


def rows_of(paths: list[Path]) -> list[Row]:
    """The rows of ``paths``; every report must agree with the first on :data:`AGREE`."""
    reports = [read_report(p) for p in paths]
    for path, report in zip(paths[1:], reports[1:], strict=True):
        for key in AGREE:
            if report.get(key) != reports[0].get(key):
                raise ReportError(
                    f"{path}: its {key} differs from {paths[0]}'s; measure every run on the "
                    "same --hw, --set, --samples and mode as the baseline"
                )
    return [
        Row(p.stem, r["totals"]["e_cb_j"], r["totals"]["e_adc_j"], r["totals"]["conversions"])
        for p, r in zip(paths, reports, strict=True)
    ]


def _gain(base: float, run: float) -> str:
    return f"{base / run:.2f}x" if run > 0 else "n/a"


def table(rows: list[Row]) -> str:
    base = rows[0]
    head = ["run", "E_cb (µJ)", "E_adc (µJ)", "conversions", "E_cb&AD (µJ)", "E_cb gain",
            "E_cb&AD gain"]  # fmt: skip
    return markdown_table(head, [
        [r.name, f"{1e6 * r.e_cb_j:.2f}", f"{1e6 * r.e_adc_j:.2f}", f"{r.conversions:,.0f}",
         f"{1e6 * r.e_cb_ad_j:.2f}", _gain(base.e_cb_j, r.e_cb_j),
         _gain(base.e_cb_ad_j, r.e_cb_ad_j)]
        for r in rows
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("reports", type=Path, nargs="+", help="`hamq energy --json` outputs, "
                   "the baseline's first")  # fmt: skip
    args = p.parse_args(argv)
    try:
        print(table(rows_of(args.reports)))
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
