"""Write the README's demo numbers from a demo run, never by hand.

    python scripts/readme_demo.py --run                # train a fresh demo, then rewrite
    python scripts/readme_demo.py --demo runs/demo     # rewrite from a finished demo folder

Rewrites the block between ``<!-- demo:begin -->`` and ``<!-- demo:end -->`` in README.md
(``--readme`` for another file) with the table the demo printed, one sentence naming its
best HamQ and L1 runs, the machine the runs record in their ``run.json`` and the seed. With
``--run`` the demo trains into a fresh temporary folder through the real entry point
(``python -m hamq demo``), so the time quoted is that of a whole demo; without it no time
is quoted. Everything between the markers is replaced; the rest of the file is kept byte for
byte.

A script rather than a ``hamq demo`` option: rewriting the repository's README is a
maintainer's job, and an installed hamq has no README to rewrite.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

BEGIN = "<!-- demo:begin -->"
END = "<!-- demo:end -->"
# A run "holds accuracy" when it loses at most this much against the baseline (pp).
MAX_LOSS_PP = 1.0


def replace_block(text: str, block: str) -> str:
    """``text`` with what lies between the markers replaced by ``block`` (markers kept, each
    on its own line)."""
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise ValueError(f"need exactly one {BEGIN} and one {END}")
    head, rest = text.split(BEGIN)
    if END not in rest:
        raise ValueError(f"{END} comes before {BEGIN}")
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n{block.strip()}\n{END}{tail}"


def pick(rows: list[dict[str, Any]], regularizer: str) -> dict[str, Any] | None:
    """The run of ``regularizer`` with the largest E_cb reduction (ON-cell reduction without
    energies) among those within ``MAX_LOSS_PP`` of the baseline; when none is, the one
    with the smallest loss (then the largest reduction)."""
    runs = [r for r in rows if r.get("status") == "ok" and r.get("regularizer") == regularizer]
    runs = [r for r in runs if "accuracy_delta_pp" in r]
    if not runs:
        return None
    key = "e_cb_reduction" if all("e_cb_reduction" in r for r in runs) else "cells_on_reduction"
    within = [r for r in runs if r["accuracy_delta_pp"] >= -MAX_LOSS_PP - 1e-9]
    if within:
        return max(within, key=lambda r: r[key])
    return max(runs, key=lambda r: (r["accuracy_delta_pp"], r[key]))


def machine_text(
    machine: dict[str, Any], cpu_model: str | None = None, cores: int | None = None
) -> str:
    """The machine of a run record (``run.json["machine"]``) in words; ``cpu_model`` and
    ``cores`` describe the CPU better than the record's ``cpu`` (often just "x86_64") when
    the script ran the demo on this very machine."""
    if machine.get("gpu"):
        where = f"{machine['gpu']} GPU"
    else:
        cpu = cpu_model or machine.get("cpu") or "unknown"
        where = f"{cores}-core {cpu} CPU" if cores else f"{cpu} CPU"
    parts = [where]
    if machine.get("threads"):
        parts.append(f"{machine['threads']} torch threads")
    if machine.get("torch"):
        parts.append(f"torch {machine['torch']}")
    if machine.get("python"):
        parts.append(f"Python {machine['python']}")
    return ", ".join(parts)


def _run_phrase(r: dict[str, Any], name: str) -> str:
    lam = f" λ {r['lambda']:g}" if isinstance(r.get("lambda"), (int, float)) else ""
    parts = [f"{100 * r['cells_on_reduction']:.1f}% of the ON cells"]
    if "e_cb_reduction" in r:
        parts.append(f"{100 * r['e_cb_reduction']:.1f}% of E_cb")
    return (
        f"{name}{lam} (`{r['name']}`) removes {' and '.join(parts)} at "
        f"{r['accuracy_delta_pp']:+.2f} pp"
    )


def render_block(
    rows: list[dict[str, Any]],
    machine: str,
    seed: Any,
    when: str,
    seconds: float | None = None,
) -> str:
    """The README block: where and when the numbers come from, the demo's table, and one
    sentence on the baseline and the best HamQ and L1 runs (see :func:`pick`)."""
    from hamq.experiments.stats import wilson_interval
    from hamq.experiments.sweep import format_table

    took = f" in {seconds:.0f} s" if seconds is not None else ""
    lines = [
        f"Written by `scripts/readme_demo.py` from a demo run on {when} ({machine}; seed "
        f"{seed}{took}); `hamq demo` printed:",
        "",
        format_table(rows, notes=False),
        "",
    ]
    base = next(
        (r for r in rows if r.get("status") == "ok" and r.get("regularizer") == "none"), None
    )
    sentence = []
    if base is not None:
        acc = f"{100 * base['accuracy']:.2f}%"
        n = int(base.get("test_samples") or 0)
        if n:
            lo, hi = wilson_interval(round(base["accuracy"] * n), n)
            acc += f" (95% CI {100 * lo:.1f}-{100 * hi:.1f}% on {n} test samples)"
        sentence.append(f"The baseline reaches {acc}")
    for reg, name in (("hamming", "HamQ"), ("l1", "L1")):
        r = pick(rows, reg)
        if r is not None:
            sentence.append(_run_phrase(r, name))
    if sentence:
        text = "; ".join(sentence) + "."
        if base is not None and base.get("test_samples"):
            text += f" One test sample is {100 / int(base['test_samples']):.2f} pp."
        lines.append(text)
    return "\n".join(lines)


def read_demo(folder: Path) -> tuple[list[dict[str, Any]], dict[str, Any], Any]:
    """The demo's rows, the machine its baseline run recorded, and the baseline's seed."""
    from hamq.experiments.report import read_rows

    rows = read_rows(folder)
    base = next(
        (r for r in rows if r.get("status") == "ok" and r.get("regularizer") == "none"), None
    )
    if base is None:
        raise SystemExit(f"{folder}: no finished baseline run; run the demo first")
    record = json.loads((folder / str(base["name"]) / "run.json").read_text())
    return rows, record.get("machine", {}), record.get("seed", base.get("seed"))


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", action="store_true", help="train a fresh demo first (timed)")
    p.add_argument("--demo", type=Path, default=Path("runs/demo"), help="demo folder to read")
    p.add_argument("--readme", type=Path, default=Path("README.md"), help="file to rewrite")
    args = p.parse_args(argv)
    seconds, cpu, cores = None, None, None
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.demo
        if args.run:
            folder = Path(tmp) / "demo"
            start = time.perf_counter()
            cmd = [sys.executable, "-m", "hamq", "demo", "--out", str(folder)]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            seconds = time.perf_counter() - start
            cpu, cores = _cpu_model(), os.cpu_count()
        rows, machine, seed = read_demo(folder)
    block = render_block(
        rows, machine_text(machine, cpu, cores), seed, date.today().isoformat(), seconds
    )
    text = args.readme.read_text()
    new = replace_block(text, block)
    if new == text:
        print(f"{args.readme}: already up to date")
    else:
        args.readme.write_text(new)
        print(f"{args.readme}: demo block rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
