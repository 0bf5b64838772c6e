"""Accuracy over time of run groups on noisy arrays, as a Markdown table.

    python scripts/noise_table.py --hw pcm-14nm \
        baseline=runs/kws-kfold/w8-baseline-s{0,1,2} hamq=runs/kws-pcm/w8-hamming-0.5-rc96-s{0,1,2}

(``NAME=RUN1 NAME=RUN2``, as the shell expands the braces, is one group of two runs.)

Each ``NAME=RUN [RUN ...]`` group is one setting (a run per fold or seed). The script reads
each run's ``run.json`` entry ``noise.<hw>``, written by ``hamq eval RUN --hw HW --noise``.
Per time it prints:

- the mean over runs of each run's mean over programmings;
- the sd over runs of those means (or, for one run, the sd over its programmings);
- the loss against each run's own noiseless crossbar accuracy, or, with ``--reference KEY``,
  against the first time's mean of each run's ``noise.<KEY>`` entry (e.g. the same run
  read on noiseless arrays with ``--adapt-bn``, scripts/kws_adabs_reference.sh), which
  then fills the reference column.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path


def load(run: str, hw: str) -> dict:
    record = json.loads((Path(run) / "run.json").read_text())
    entry = record.get("noise", {}).get(hw)
    if entry is None:
        sys.exit(f"{run}: no noise entry for {hw}; run hamq eval {run} --hw {hw} --noise")
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hw", required=True,
                        help="run.json noise key: a preset's name, or NAME@DIGEST for a "
                        "changed one (as hamq eval --noise prints)")  # fmt: skip
    parser.add_argument("--reference", default=None,
                        help="run.json noise key whose first time is the reference accuracy "
                        "(default: the noiseless crossbar accuracy of the --hw entry)")  # fmt: skip
    parser.add_argument("groups", nargs="+", help="NAME=RUN (repeat RUN after a group)")
    args = parser.parse_args()
    groups: dict[str, list[str]] = {}
    current = None
    for item in args.groups:
        if "=" in item:
            current, first = item.split("=", 1)  # NAME=RUN repeated (shell braces) extends
            groups.setdefault(current, []).append(first)
        elif current is None:
            sys.exit(f"{item}: give NAME=RUN first")
        else:
            groups[current].append(item)
    labels = None
    lines = []
    for name, runs in groups.items():
        entries = [load(r, args.hw) for r in runs]
        these = [t["label"] for t in entries[0]["times"]]
        labels = labels or these
        if [t["label"] for e in entries for t in e["times"]][: len(these)] != these:
            sys.exit(f"{name}: the runs were evaluated at different times")
        if args.reference is None:
            noiseless = [e["crossbar_accuracy"] for e in entries]
        else:
            noiseless = [load(r, args.reference)["times"][0]["mean"] for r in runs]
        cells = [f"{100 * statistics.mean(noiseless):.2f}"]
        for j in range(len(these)):
            means = [e["times"][j]["mean"] for e in entries]
            losses = [100 * (m - n) for m, n in zip(means, noiseless, strict=True)]
            sd = statistics.stdev(means) if len(means) > 1 else entries[0]["times"][j]["sd"]
            cells.append(f"{100 * statistics.mean(means):.2f} ± {100 * sd:.2f} "
                         f"({statistics.mean(losses):+.2f})")  # fmt: skip
        reps = sorted({e["repeats"] for e in entries})
        lines.append(f"| {name} | {len(runs)} | {'/'.join(map(str, reps))} | " + " | ".join(cells)
                     + " |")  # fmt: skip
    assert labels is not None
    ref = "noiseless crossbar (%)" if args.reference is None else f"reference {args.reference} (%)"
    head = ["setting", "runs", "programmings", ref]
    head += [f"t = {label} (%; Δ pp)" for label in labels]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
