"""Every (setting, variant) of a hardware study against one reference cell, paired by seed.

    python scripts/study_against.py runs/study-huang-kws/study.json --setting w8-baseline \
        --variant diff-full

``hamq study`` compares each run with itself on the reference variant. Huang, Jiang & Yu
compare their best setting, on another weight format and mapping, with the naive one:
fixed point, differential pairs, full-precision ADC. This script reads the study's
``study.json`` and divides each cell by the reference cell of the same seed: TOPS/W,
cycles and mapped arrays as ratios, crossbar accuracy as a difference in pp. It prints the
mean ± sd over seeds as a Markdown table, best TOPS/W first.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path


def setting_of(run: str) -> str:
    return re.sub(r"-s\d+$", "", run)


def fmt(values: list[float], spec: str) -> str:
    mean = statistics.mean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{format(mean, spec)} ± {format(sd, spec.lstrip('+'))}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("study_json")
    parser.add_argument("--setting", required=True, help="reference setting (run name less -sN)")
    parser.add_argument("--variant", required=True, help="reference hardware variant")
    args = parser.parse_args()
    cells = json.loads(Path(args.study_json).read_text())["cells"]
    ref = {c["seed"]: c for c in cells
           if setting_of(c["run"]) == args.setting and c["variant"] == args.variant}  # fmt: skip
    if not ref:
        sys.exit(f"no cell of setting {args.setting} on variant {args.variant} in the study")
    groups: dict[tuple[str, str], list[dict]] = {}
    for c in cells:
        if c["seed"] in ref:
            groups.setdefault((setting_of(c["run"]), c["variant"]), []).append(c)
    rows = []
    for (setting, variant), group in groups.items():
        pairs = [(c, ref[c["seed"]]) for c in group]
        tops = [c["tops_per_w"] / r["tops_per_w"] for c, r in pairs]
        rows.append((statistics.mean(tops), [
            setting, variant, str(len(pairs)),
            fmt([100 * c["crossbar_accuracy"] for c, _ in pairs], ".2f"),
            fmt([100 * (c["crossbar_accuracy"] - r["crossbar_accuracy"]) for c, r in pairs],
                "+.2f"),
            fmt(tops, ".2f"),
            fmt([r["cycles"] / c["cycles"] for c, r in pairs], ".2f"),
            fmt([c["tiles"] / r["tiles"] for c, r in pairs], ".2f"),
            fmt([c["adc_bits_mean"] for c, _ in pairs], ".2f"),
        ]))  # fmt: skip
    head = ["setting", "variant", "seeds", "crossbar acc. (%)", "Δ acc. (pp)",
            "TOPS/W vs ref.", "throughput vs ref.", "arrays vs ref.", "mean ADC bits"]  # fmt: skip
    print(f"Reference: {args.setting} on {args.variant}, paired by seed.\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for _, cols in sorted(rows, key=lambda r: -r[0]):
        print("| " + " | ".join(cols) + " |")


if __name__ == "__main__":
    main()
