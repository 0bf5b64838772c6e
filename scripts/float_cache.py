"""A committed cache of float stages, so an experiment on a fresh checkout starts at QAT.

The converged ResNet-20 of issue 11 costs 80 float epochs (about 85 min on the 2-core
development CPU) before its first QAT epoch, and a pruned float retrain 30 more; a fresh
checkout has no ``runs/``. This script keeps the checkpoint a run writes at the end of its
float stage (``checkpoint.safetensors`` at epoch ``float_epochs - 1``, with the float
weights ``float.safetensors`` and ``config.yaml``) under
``artifacts/float-stages/<sweep>/<run>/``, with a manifest of SHA-256 digests, and puts it
back into a run folder as it was between its float stage and its first QAT epoch. There
``hamq train --resume`` goes on from it through the ordinary resume path (the checkpoint's
config must equal the run's, as for any resume: a changed recipe is refused, never mixed),
and ``hamq sweep --only`` starts the runs that need those float weights without training
the cached run's QAT first.

    # while a run trains: copy its float-end checkpoint the moment its float stage ends
    python scripts/float_cache.py save runs/twofold-cifar-r20/w8-baseline \
        artifacts/float-stages/twofold-cifar-r20 --wait 7200
    # on a fresh checkout: put every cached float stage back (runs already there are kept)
    python scripts/float_cache.py restore artifacts/float-stages/twofold-cifar-r20 \
        runs/twofold-cifar-r20
    # the cache against the sweep that names its runs (digests and configs)
    python scripts/float_cache.py check artifacts/float-stages/twofold-cifar-r20 \
        configs/sweeps/twofold-cifar-r20.yaml runs/twofold-cifar-r20

A float stage restored from the cache is the one the manifest names (its machine and
date); a run trained from scratch on another machine can differ in the last bits.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hamq.errors import HamqError
from hamq.experiments.sweep import load_sweep, run_config, variants
from hamq.files import file_mode, load_json_file
from hamq.training import checkpoint as ckpt
from hamq.training.trainer import CHECKPOINT, CONFIG, FLOAT, same_config

MANIFEST = "MANIFEST.json"
FILES = (CHECKPOINT, FLOAT, CONFIG)
POLL_S = 5.0


def _atomic_copy(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` through a temporary file in ``dst``'s folder and a rename."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def float_end_meta(checkpoint: Path) -> dict[str, Any]:
    """The metadata of ``checkpoint`` if it is a run's float-end checkpoint, else HamqError."""
    _, meta = ckpt.load_checkpoint(checkpoint)
    float_epochs = int(meta["config"]["train"]["float_epochs"])
    if float_epochs == 0:
        raise HamqError(f"'{checkpoint}' belongs to a run with no float stage: nothing to cache")
    if meta["stage"] != "float" or int(meta["epoch"]) != float_epochs - 1:
        raise HamqError(
            f"'{checkpoint}' is at {meta['stage']} epoch {meta['epoch']}, not at the end of "
            f"the float stage (epoch {float_epochs - 1}): save it while the run is between "
            f"its float stage and its first QAT epoch (--wait), or retrain the run"
        )
    return meta


def read_manifest(cache: Path) -> dict[str, Any]:
    path = cache / MANIFEST
    if not path.exists():
        return {"runs": {}}
    manifest = load_json_file(path, "float-stage cache manifest")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("runs"), dict):
        raise HamqError(f"'{path}' is not a float-stage cache manifest; restore it from git")
    return manifest


def save(run: Path, cache: Path, wait_s: float = 0.0, note: str = "") -> dict[str, Any]:
    """Copy ``run``'s float-end checkpoint and config into ``cache/<run name>/``.

    With ``wait_s``, first wait up to that long for the float stage to end, when the run
    writes ``float.safetensors``; its checkpoint stays the float-end one until the first
    QAT epoch ends, minutes later.
    """
    deadline = time.monotonic() + wait_s
    while not (run / FLOAT).exists():
        if time.monotonic() >= deadline:
            raise HamqError(
                f"'{run}' has not finished its float stage (no {FLOAT}); wait for it, or "
                f"give --wait SECONDS"
            )
        time.sleep(POLL_S)
    dest = cache / run.name
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / f".{CHECKPOINT}.copy"
    shutil.copyfile(run / CHECKPOINT, tmp)  # one read of the file the run may replace next
    try:
        meta = float_end_meta(tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, dest / CHECKPOINT)  # (the checked copy itself, not a second one)
    finally:
        tmp.unlink(missing_ok=True)
    for name in (FLOAT, CONFIG):
        _atomic_copy(run / name, dest / name)
    history = [h for h in meta["history"] if h["stage"] == "float"]
    entry = {
        "sha256": {name: ckpt.file_sha256(dest / name) for name in FILES},
        "float_epochs": len(history),
        "last_val_accuracy": history[-1]["val_accuracy"],
        "float_wall_s": round(sum(meta.get("epoch_wall_s") or []), 1),
        "saved": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "note": note,
        "machine": f"{platform.machine()} {platform.processor() or platform.system()}, "
        f"{os.cpu_count()} cores",
    }
    manifest = read_manifest(cache)
    manifest["runs"][run.name] = entry
    ckpt.atomic_write_text(cache / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return entry


def verified(cache: Path) -> dict[str, Any]:
    """The manifest's runs, each of its files present with the digest the manifest names."""
    runs = read_manifest(cache)["runs"]
    if not runs:
        raise HamqError(f"'{cache}' holds no cached float stage (no {MANIFEST} entries)")
    for name, entry in runs.items():
        for file, digest in entry["sha256"].items():
            path = cache / name / file
            if not path.is_file():
                raise HamqError(f"'{path}' is missing from the cache; restore it from git")
            if ckpt.file_sha256(path) != digest:
                raise HamqError(
                    f"'{path}' does not match its digest in {cache / MANIFEST}: it was changed "
                    f"or damaged; restore it from git (git checkout -- '{path}')"
                )
    return runs


def restore(cache: Path, out: Path) -> dict[str, str]:
    """Put every cached float stage into ``out/<run>`` unless that folder holds a checkpoint.

    Returns what was done per run: ``restored`` or ``kept`` (the folder's own run is kept:
    it may be further on than the cache)."""
    done = {}
    for name in verified(cache):
        dest = out / name
        if (dest / CHECKPOINT).exists():
            done[name] = "kept"
            continue
        for file in FILES:
            _atomic_copy(cache / name / file, dest / file)
        done[name] = "restored"
    return done


def check(cache: Path, sweep_path: Path, out: Path) -> list[str]:
    """The cached runs, each verified against its digest and against the config that
    ``sweep_path`` gives that run when its folder is ``out`` (HamqError on the first that
    differs: the cache is stale and would be refused on resume)."""
    sweep = load_sweep(sweep_path)
    named = dict(variants(sweep, out))
    names = []
    for name in verified(cache):
        if name not in named:
            raise HamqError(f"cached run '{name}' is not a run of {sweep_path}; remove it")
        meta = float_end_meta(cache / name / CHECKPOINT)
        if not same_config(meta["config"], run_config(sweep, named[name])):
            raise HamqError(
                f"cached run '{name}' was trained with another config than {sweep_path} now "
                f"gives it: retrain it and save it again (scripts/float_cache.py save)"
            )
        names.append(name)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("save", help="copy a run's float-end checkpoint into the cache")
    p.add_argument("run", type=Path)
    p.add_argument("cache", type=Path)
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS")
    p.add_argument("--note", default="", help="how the run was trained, for the manifest")
    p = sub.add_parser("restore", help="put the cached float stages into a sweep's folder")
    p.add_argument("cache", type=Path)
    p.add_argument("out", type=Path)
    p = sub.add_parser("check", help="the cache against its digests and the sweep's configs")
    p.add_argument("cache", type=Path)
    p.add_argument("sweep", type=Path)
    p.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "save":
            entry = save(args.run, args.cache, args.wait, args.note)
            print(f"saved {args.run.name}: {entry['float_epochs']} float epochs, "
                  f"val {100 * entry['last_val_accuracy']:.2f}%")  # fmt: skip
        elif args.cmd == "restore":
            for name, what in restore(args.cache, args.out).items():
                print(f"{what} {args.out / name}")
        else:
            for name in check(args.cache, args.sweep, args.out):
                print(f"ok {name}")
    except HamqError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
