"""What ``sparsity.clear_columns`` would do to a finished run, without retraining: for each
setting ``MAX_ON:MAX_MOVE`` (``MAX_MOVE`` ``none`` = no limit; ``0:none`` = the run as it
is), the run's weights are cleared as the training step would (``hamq.sparsity.
column_clear``, on the hardware given), then its validation and test accuracy and its
energy are measured, and one markdown row is printed per setting.

    python scripts/clear_columns_probe.py runs/twofold-cifar-r20/w8-rows-0.5-hamq-rc112-ft15 \\
        --hw rram-2b-40nm --set array.skip_empty_columns=true --samples 1000 \\
        0:none 1:none 2:3 4:3 8:3 2:12

A probe of one run on one seed; the setting a run trains with is chosen on validation
accuracy, never on these test figures.
"""

from __future__ import annotations

import argparse
import sys

from hamq.errors import HamqError
from hamq.experiments.markdown import markdown_table
from hamq.hardware.estimate import estimate_energy
from hamq.sparsity.column_clear import clear_model_columns
from hamq.training.run_hardware import resolve_hardware
from hamq.training.runs import load_run
from hamq.training.trainer import count_correct, evaluate


def parse_setting(text: str) -> tuple[int, int | None]:
    """``MAX_ON:MAX_MOVE`` -> (max_on, max_move or None)."""
    try:
        on, move = text.split(":")
        max_on, max_move = int(on), None if move == "none" else int(move)
    except ValueError:
        raise HamqError(f"setting '{text}': give MAX_ON:MAX_MOVE, e.g. 4:3 or 1:none") from None
    if max_on < 0 or (max_move is not None and max_move < 1):
        raise HamqError(f"setting '{text}': MAX_ON must be >= 0 and MAX_MOVE >= 1 (or none)")
    return max_on, max_move


def probe(run_dir: str, hw_name: str | None, hw_sets: list[str], samples: int,
          settings: list[tuple[int, int | None]]) -> list[list[str]]:  # fmt: skip
    rows = []
    first = load_run(run_dir)
    hw = resolve_hardware(first.record, first.config, f"{run_dir}/run.json", hw_name,
                          hw_sets).spec  # fmt: skip
    data = first.data()  # the data once; fresh weights for every setting
    for max_on, max_move in settings:
        run = load_run(run_dir)
        counts = clear_model_columns(run.model, hw, max_on, max_move) if max_on else {}
        val = evaluate(run.model, data, 1000, split="val")
        correct, n = count_correct(run.model, data, 1000)
        t = estimate_energy(run.model, data, hw, samples=samples, batch_size=250).to_dict()
        totals = t["totals"]
        cleared = sum(c.columns_cleared for c in counts.values())
        moved = sum(c.weights_changed for c in counts.values())
        move = sum(c.abs_change for c in counts.values())
        rows.append([
            "off" if max_on == 0 else str(max_on), "" if max_on == 0 else str(max_move or "none"),
            str(cleared), str(moved), f"{move / moved:.1f}" if moved else "",
            f"{100 * val:.2f}%", f"{100 * correct / n:.2f}%",
            f"{1e6 * totals['e_cb_j']:.2f}", f"{1e6 * (totals['e_cb_j'] + totals['e_adc_j']):.2f}",
        ])  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="a finished run folder")
    p.add_argument("settings", nargs="+", help="MAX_ON:MAX_MOVE, e.g. 0:none 4:3 1:none")
    p.add_argument("--hw", default=None, help="hardware preset or YAML (default: the run's)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="change a hardware field (repeatable)")  # fmt: skip
    p.add_argument("--samples", type=int, default=1000, help="test images for the energy")
    args = p.parse_args(argv)
    try:
        settings = [parse_setting(s) for s in args.settings]
        rows = probe(args.run, args.hw, args.sets, args.samples, settings)
    except HamqError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    head = ["clear_columns", "clear_max_move", "columns cleared", "weights moved",
            "mean move (codes)", "val acc.", "test acc.", "E_cb (µJ)", "E_cb&AD (µJ)"]  # fmt: skip
    print(markdown_table(head, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
