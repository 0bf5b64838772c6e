"""A Markdown table of ``hamq energy --json`` reports against the first one (the baseline).

    for r in baseline rows-0.7-hamq-kd-ft15; do
      hamq energy runs/twofold-cifar-r20/w8-$r --hw rram-2b-40nm --samples 1000 \\
        --set adc.skip_zero=true --json > sz/$r.json
    done
    python scripts/energy_json_table.py sz/baseline.json sz/rows-0.7-hamq-kd-ft15.json

For a hardware option that the sweeps do not measure (here ``adc.skip_zero``: conversions
whose driven cells are all OFF are skipped; or ``array.skip_empty_columns``: a column
all OFF in a row tile is neither read nor converted there, and one all OFF in every tile
is not mapped; docs/crossbar.md), priced on the same hardware
for the baseline and every run, so the gains compare like with like. Each row is named by
its file's stem. The reports must agree on the hardware (the resolved spec, overrides
included), the mode and the samples; a report that does not is refused (exit 2), naming
the field, since a gain between two hardware settings would be the setting's, not the
run's. Columns: E_cb, E_adc, the conversions per inference, the mapped columns and
arrays (an area proxy), E_cb&AD, the E_cb reduction against the baseline (1 - run /
baseline, in %) and both gains (the baseline's energy over the run's).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from hamq.experiments.energy_reports import TOTALS, ReportError, read_reports
from hamq.experiments.markdown import markdown_table


@dataclass(frozen=True)
class Row:
    name: str
    e_cb_j: float
    e_adc_j: float
    conversions: float
    mapped_cols: float
    tiles: float

    @property
    def e_cb_ad_j(self) -> float:
        return self.e_cb_j + self.e_adc_j


def rows_of(paths: list[Path]) -> list[Row]:
    """The rows of ``paths``; every report must agree with the first (``energy_reports``)."""
    reports = read_reports(paths)
    return [
        Row(p.stem, *(float(r["totals"][k]) for k in TOTALS))
        for p, r in zip(paths, reports, strict=True)
    ]


def _gain(base: float, run: float) -> str:
    return f"{base / run:.2f}x" if run > 0 else "n/a"


def _reduction(base: float, run: float) -> str:
    return f"{100 * (1 - run / base):.1f}%" if base > 0 else "n/a"


def table(rows: list[Row]) -> str:
    base = rows[0]
    head = ["run", "E_cb (µJ)", "E_adc (µJ)", "conversions", "mapped cols", "arrays",
            "E_cb&AD (µJ)", "E_cb red.", "E_cb gain", "E_cb&AD gain"]  # fmt: skip
    return markdown_table(head, [
        [r.name, f"{1e6 * r.e_cb_j:.2f}", f"{1e6 * r.e_adc_j:.2f}", f"{r.conversions:,.0f}",
         f"{r.mapped_cols:,.0f}", f"{r.tiles:,.0f}", f"{1e6 * r.e_cb_ad_j:.2f}",
         _reduction(base.e_cb_j, r.e_cb_j), _gain(base.e_cb_j, r.e_cb_j),
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
