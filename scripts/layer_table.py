"""Per layer, where two or more runs' E_cb goes: each layer's E_cb, the 1 bits a stored row
reads per input vector (``row_activity_mean``, the inputs) and the fraction of its cells
ON (the weights), side by side, from the ``energy.json`` a sweep wrote for each run.

    python scripts/layer_table.py BASELINE_RUN RUN [RUN ...]

E_cb of a layer is the sum over its input bit-planes of the cells read on the rows those
bits drive, so a run can lower it through its weights (fewer ON cells, cheaper levels) or
through its inputs (fewer 1 bits); the two columns tell which. Reads only the files; every
run must have been measured on the same hardware with the same layers (as a sweep does).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from hamq.errors import HamqError


def layers_of(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "energy.json"
    try:
        return list(json.loads(path.read_text())["layers"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise HamqError(
            f"cannot read the layers of '{path}' ({e}); measure the run first "
            "(a sweep writes it; `hamq sweep ... --finished-only` for a finished run)"
        ) from e


def table(named: list[tuple[str, list[dict[str, Any]]]]) -> str:
    names = [n for n, _ in named]
    runs = [layers for _, layers in named]
    layer_names = [x["name"] for x in runs[0]]
    for n, layers in named[1:]:
        if [x["name"] for x in layers] != layer_names:
            raise HamqError(f"'{n}' has other layers than '{names[0]}'; compare runs of one model")
    head = ["layer"] + [f"E_cb (µJ) {n}" for n in names] + [f"in {n}" for n in names]
    head += [f"ON {n}" for n in names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, name in enumerate(layer_names):
        rows = [layers[i] for layers in runs]
        cells = [f"{r['e_cb_j'] * 1e6:.4g}" for r in rows]
        cells += [f"{r['row_activity_mean']:.2f}" for r in rows]
        cells += [f"{r['on_fraction']:.3f}" for r in rows]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    total = [f"**{sum(x['e_cb_j'] for x in layers) * 1e6:.4g}**" for layers in runs]
    lines.append("| total | " + " | ".join(total) + " |" + " |" * (2 * len(names)))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders, the baseline first")
    args = parser.parse_args(argv)
    try:
        print(table([(p.name, layers_of(p)) for p in args.runs]))
    except HamqError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
