"""How much of a run's E_cb any bit-level regularizer could remove: the E_cb the same
inference would cost with every stored cell at level 0 (the floor), beside the measured one.

    python scripts/energy_floor.py BASELINE_RUN [RUN ...] --hw rram-2b-40nm [--samples 1000]

On a preset whose lowest cell state still costs energy (rram-2b-40nm: 0.079 pJ of the
0.079 / 0.36 / 0.73 / 1.49 pJ per 2-bit cell state), a weight of 0 still reads its cells,
so at the baseline's activations driving every weight to 0 would remove only
``1 - floor / E_cb(baseline)`` of its E_cb. The floor is measured, not assumed: the same
data-mode energy estimate (same samples, stratified as the sweeps take them) on the same
hardware with every cell state priced at the level-0 energy, so it counts exactly the cell
reads of the measured layout (pruned rows and arrays left out) at the run's own input
activity, which moves a little with its weights. ``--hw`` is required, so that every run is
priced on the same hardware and cell code (a sweep's runs may record different codes).
With ``array.skip_empty_columns`` a column a regularizer empties is not mapped, so such a
layout removes level-0 reads too; the floor is then that of the run's own layout. Columns:

- ``floor share``: floor / E_cb of the run;
- ``E_cb red.``: 1 - E_cb(run) / E_cb(baseline);
- ``reachable``: 1 - floor(run) / E_cb(baseline), the most the run's layout allows;
- ``of reachable``: E_cb red. / reachable, (E_cb(baseline) - E_cb(run)) /
  (E_cb(baseline) - floor(run)): how much of what its layout allows the run removed. For a
  pruned run this counts the pruning's saving too; compare it with the unregularized run
  of the same mask to see the bit-level term's share.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from hamq.data import DataBundle
from hamq.errors import HamqError
from hamq.experiments.markdown import markdown_table
from hamq.hardware.estimate import estimate_energy
from hamq.hardware.spec import HardwareSpec
from hamq.training.run_hardware import resolve_hardware
from hamq.training.runs import load_run


@dataclass(frozen=True)
class Floor:
    name: str
    e_cb_j: float
    floor_j: float


def flat_cells(hw: HardwareSpec) -> HardwareSpec:
    """``hw`` with every cell state priced at the level-0 energy."""
    e0 = hw.tech.e_cell_pj[0]
    tech = hw.tech.model_copy(update={"e_cell_pj": (e0,) * len(hw.tech.e_cell_pj)})
    return hw.model_copy(update={"tech": tech})


def floor_of(run_dir: Path, hw_name: str | None, samples: int | None) -> Floor:
    """Measured E_cb of a run and its E_cb with every cell at level 0, same samples."""
    run = load_run(run_dir)
    hw = resolve_hardware(run.record, run.config, f"{run_dir}/run.json", hw_name).spec
    data = run.data()
    data.eval_subset = "stratified"
    return Floor(run_dir.name, *e_cb_and_floor_j(run.model, data, hw, samples))


def e_cb_and_floor_j(model: nn.Module, data: DataBundle, hw: HardwareSpec,
                     samples: int | None) -> tuple[float, float]:  # fmt: skip
    """(E_cb, E_cb with every cell at level 0) of one inference, in joules."""
    measured = estimate_energy(model, data, hw, samples=samples)
    flat = estimate_energy(model, data, flat_cells(hw), samples=samples)
    return measured.totals()["e_cb_j"], flat.totals()["e_cb_j"]


def _pct(num: float, den: float) -> str:
    return f"{100 * num / den:.1f}%" if den > 0 else "n/a"


def table(rows: list[Floor]) -> str:
    base = rows[0]
    head = ["run", "E_cb (µJ)", "floor (µJ)", "floor share", "E_cb red.", "reachable",
            "of reachable"]  # fmt: skip
    return markdown_table(head, [
        [r.name, f"{1e6 * r.e_cb_j:.2f}", f"{1e6 * r.floor_j:.2f}",
         _pct(r.floor_j, r.e_cb_j), _pct(base.e_cb_j - r.e_cb_j, base.e_cb_j),
         _pct(base.e_cb_j - r.floor_j, base.e_cb_j),
         _pct(base.e_cb_j - r.e_cb_j, base.e_cb_j - r.floor_j)]
        for r in rows
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", type=Path, nargs="+", help="run folders, the baseline first")
    p.add_argument("--hw", required=True, help="preset or YAML every run is priced on")
    p.add_argument(
        "--samples",
        type=int,
        default=1000,
        help="test samples, stratified as the sweeps take them (default 1000)",
    )
    args = p.parse_args(argv)
    if args.samples < 1:
        print("error: --samples must be at least 1", file=sys.stderr)
        return 2
    try:
        rows = [floor_of(r, args.hw, args.samples) for r in args.runs]
    except HamqError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if all(r.floor_j == 0 for r in rows):
        print(f"error: cell level 0 costs nothing on {args.hw} (tech.e_cell_pj[0] = 0): "
              "there is no floor; every cell read at level 0 is free", file=sys.stderr)  # fmt: skip
        return 2
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
