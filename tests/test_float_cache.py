"""The committed float-stage cache (``scripts/float_cache.py``): a float stage put back
into a fresh run folder resumes to the same run as one never interrupted; damaged, stale
or misplaced caches are refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hamq.errors import HamqError
from hamq.experiments.sweep import load_sweep, run_config, variants
from hamq.training import checkpoint as ckpt
from hamq.training.trainer import CHECKPOINT, CONFIG, FLOAT, MODEL, train_run
from test_scripts import REPO, load_script

fc = load_script("float_cache")

COMMITTED = REPO / "artifacts" / "float-stages" / "twofold-cifar-r20"
TINY = {"train": {"float_epochs": 2, "qat_epochs": 1, "select": "last"}}


def tiny_sweep(folder: Path, hamming: tuple[float, ...] = (), **train: object) -> Path:
    path = folder / "sweep.yaml"
    base = {"train": {**TINY["train"], **train}}
    sweep = {"base": base, "bits": [4], "seeds": [0], "hamming": list(hamming)}
    path.write_text(yaml.safe_dump(sweep))
    return path


def sweep_run(sweep_path: Path, out: Path) -> tuple[str, object]:
    """The sweep's baseline run: its name and validated config, with its folder in out."""
    sweep = load_sweep(sweep_path)
    name, overrides = variants(sweep, out)[0]
    return name, run_config(sweep, overrides)


def between_stages(full: Path, part: Path) -> None:
    """``part``, stopped at the end of its float stage, as its run folder is between that
    stage and its first QAT epoch: with the float weights, which the uninterrupted run
    ``full`` of the same config wrote at that point (a stop writes none)."""
    assert not (part / FLOAT).exists()
    (part / FLOAT).write_bytes((full / FLOAT).read_bytes())


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One uninterrupted sweep run, and the same run stopped at the end of its float stage
    and saved into a cache."""
    root = tmp_path_factory.mktemp("cache")
    sweep_path = tiny_sweep(root)
    name, cfg = sweep_run(sweep_path, root / "full")
    assert train_run(cfg, root / "full" / name, progress=False) is not None
    name, cfg = sweep_run(sweep_path, root / "part")
    assert train_run(cfg, root / "part" / name, stop_after=2, progress=False) is None
    between_stages(root / "full" / name, root / "part" / name)
    fc.save(root / "part" / name, root / "cache", note="train_run(stop_after=2)")
    return {"root": root, "sweep": sweep_path, "name": Path(name)}


def test_a_restored_float_stage_resumes_to_the_uninterrupted_run(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    root, name = runs["root"], str(runs["name"])
    fresh = tmp_path / "runs"  # a fresh checkout: no run folder at all
    assert fc.restore(root / "cache", fresh) == {name: "restored"}
    _, cfg = sweep_run(runs["sweep"], fresh)
    record = train_run(cfg, fresh / name, resume=True, progress=False)
    assert record is not None
    full = json.loads((root / "full" / name / "run.json").read_text())
    assert record["history"] == full["history"]
    assert record["float_stage"] == full["float_stage"]
    mine, _ = ckpt.load_checkpoint(fresh / name / MODEL)
    theirs, _ = ckpt.load_checkpoint(root / "full" / name / MODEL)
    assert mine.keys() == theirs.keys()
    assert all(bool((mine[k] == theirs[k]).all()) for k in mine)


def test_the_manifest_names_each_file_by_its_digest(runs: dict[str, Path]) -> None:
    cache, name = runs["root"] / "cache", str(runs["name"])
    entry = json.loads((cache / fc.MANIFEST).read_text())["runs"][name]
    assert entry["float_epochs"] == 2 and entry["note"] == "train_run(stop_after=2)"
    assert sorted(entry["sha256"]) == sorted([CHECKPOINT, FLOAT, CONFIG])
    for file in (CHECKPOINT, FLOAT, CONFIG):
        assert entry["sha256"][file] == ckpt.file_sha256(cache / name / file)
    assert fc.check(cache, runs["sweep"], runs["root"] / "part") == [name]


def test_save_refuses_a_run_past_its_float_stage(runs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(HamqError, match=r"at qat epoch 2, not at the end of the float stage"):
        fc.save(runs["root"] / "full" / str(runs["name"]), tmp_path / "cache")


def test_save_of_a_run_inside_its_float_stage_waits_then_says_so(tmp_path: Path) -> None:
    sweep_path = tiny_sweep(tmp_path)
    name, cfg = sweep_run(sweep_path, tmp_path / "runs")
    assert train_run(cfg, tmp_path / "runs" / name, stop_after=1, progress=False) is None
    with pytest.raises(HamqError, match=r"has not finished its float stage \(no float"):
        fc.save(tmp_path / "runs" / name, tmp_path / "cache", wait_s=0.0)
    assert not (tmp_path / "cache" / fc.MANIFEST).exists()


def test_a_sweep_starts_from_a_restored_float_stage_without_training_it(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    """``--only`` of a run that starts from the cached run's float weights trains that run
    alone: the cached run stays between its stages, reported as not run yet."""
    from hamq.experiments.sweep import NOT_RUN, run_sweep, select_runs, sweep_runs

    out, name = tmp_path / "runs", str(runs["name"])
    sweep = load_sweep(tiny_sweep(tmp_path, hamming=(1.0,)))
    assert select_runs(sweep_runs(sweep, out), ["w4-hamming-1"]) == {name, "w4-hamming-1"}
    fc.restore(runs["root"] / "cache", out)
    assert select_runs(sweep_runs(sweep, out), ["w4-hamming-1"]) == {"w4-hamming-1"}
    kept = (out / name / CHECKPOINT).read_bytes()
    rows = run_sweep(sweep, out, progress=False, only=["w4-hamming-1"], log=lambda _: None)
    assert {r["name"]: r["status"] for r in rows} == {name: NOT_RUN, "w4-hamming-1": "ok"}
    assert (out / name / CHECKPOINT).read_bytes() == kept
    (out / name / FLOAT).write_bytes(b"damaged")  # unreadable weights: trained whole again
    assert select_runs(sweep_runs(sweep, out), ["w4-hamming-1"]) == {name, "w4-hamming-1"}


def test_restore_keeps_a_run_folder_that_has_a_checkpoint(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    name = str(runs["name"])
    (tmp_path / name).mkdir()
    (tmp_path / name / CHECKPOINT).write_bytes(b"a later checkpoint of this run")
    assert fc.restore(runs["root"] / "cache", tmp_path) == {name: "kept"}
    assert (tmp_path / name / CHECKPOINT).read_bytes() == b"a later checkpoint of this run"


def test_a_changed_cache_file_is_refused_with_the_fix(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    name = str(runs["name"])
    (cache / name).mkdir(parents=True)
    for f in (fc.MANIFEST, *(f"{name}/{file}" for file in fc.FILES)):
        (cache / f).write_bytes((runs["root"] / "cache" / f).read_bytes())
    (cache / name / CONFIG).write_text("seed: 1\n")
    with pytest.raises(HamqError, match=r"does not match its digest.*git checkout"):
        fc.restore(cache, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (cache / name / CONFIG).unlink()
    with pytest.raises(HamqError, match="is missing from the cache"):
        fc.restore(cache, tmp_path / "out")


def test_check_refuses_a_cache_the_sweep_no_longer_gives(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    changed = tiny_sweep(tmp_path, lr=0.2)
    with pytest.raises(HamqError, match="trained with another config"):
        fc.check(runs["root"] / "cache", changed, runs["root"] / "part")
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"base": TINY, "bits": [8]}))
    with pytest.raises(HamqError, match="is not a run of"):
        fc.check(runs["root"] / "cache", other, runs["root"] / "part")


def test_the_command_line_gives_one_line_errors(tmp_path: Path, capsys) -> None:
    assert fc.main(["restore", str(tmp_path / "nothing"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "holds no cached float stage" in err
    assert "\n" not in err


def test_the_committed_cache_is_the_sweeps_float_stages() -> None:
    """The cached float stages of configs/sweeps/twofold-cifar-r20.yaml: each file as its
    digest says, each checkpoint at its float stage's end, each config the one the sweep
    gives that run now (else a restored run would be refused on resume)."""
    names = fc.check(
        COMMITTED,
        REPO / "configs" / "sweeps" / "twofold-cifar-r20.yaml",
        Path("runs/twofold-cifar-r20"),
    )
    assert {"w8-baseline", "w8-rows-0.5-kd-ft30"} <= set(names)
    manifest = json.loads((COMMITTED / fc.MANIFEST).read_text())["runs"]
    _, meta = ckpt.load_checkpoint(COMMITTED / "w8-baseline" / FLOAT)
    assert meta["float_stage"]["epochs"] == manifest["w8-baseline"]["float_epochs"] == 80
