"""``train.select = regularized``: the most regularized QAT epoch within a validation
tolerance of the best, kept online (candidates and their weight files), and resumable."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest
import torch

from hamq.config_base import validate
from hamq.errors import HamqError
from hamq.training import checkpoint as ckpt
from hamq.training.config import TrainConfig
from hamq.training.select import Candidate, keep_candidates, regularized_choice
from hamq.training.trainer import train_run
from hostile import refused


def reference_choice(epochs: list[Candidate], tol: float) -> Candidate:
    """Written out from the rule's words: within tol of the best validation accuracy, the
    lowest regularizer term, then the highest accuracy, then the latest epoch."""
    best = max(c.val_accuracy for c in epochs)
    ok = [c for c in epochs if best - c.val_accuracy <= tol + 1e-9]
    low = min(c.reg for c in ok)
    ok = [c for c in ok if c.reg == low]
    top = max(c.val_accuracy for c in ok)
    return max((c for c in ok if c.val_accuracy == top), key=lambda c: c.epoch)


def test_hand_example() -> None:
    # HamQ-like: accuracy falls as the term falls; best_val would keep epoch 0
    eps = [Candidate(0, 0.8721, 20.75), Candidate(1, 0.8646, 20.18),
           Candidate(2, 0.8658, 19.92), Candidate(3, 0.8633, 19.74)]  # fmt: skip
    assert regularized_choice(eps, 0.0).epoch == 0
    assert regularized_choice(eps, 0.005).epoch == 0  # 86.58 is 0.63 points below
    assert regularized_choice(eps, 0.007).epoch == 2
    assert regularized_choice(eps, 0.01).epoch == 3
    # no regularizer: every term 0, so it is best_val (the later epoch on a tie)
    flat = [Candidate(4, 0.9, 0.0), Candidate(5, 0.91, 0.0), Candidate(6, 0.91, 0.0)]
    assert regularized_choice(flat, 0.05).epoch == 6


def test_online_pruning_never_drops_the_final_choice() -> None:
    """Adding epochs one by one and keeping only ``keep_candidates`` ends on the same choice
    as choosing among all epochs at once, for random histories with ties."""
    rng = random.Random(0)
    for _ in range(3000):
        n = rng.randint(1, 8)
        eps = [Candidate(e, rng.choice([0.80, 0.81, 0.815, 0.82, 0.83]),
                         rng.choice([1.0, 2.0, 2.5, 3.0])) for e in range(n)]  # fmt: skip
        tol = rng.choice([0.0, 0.005, 0.01, 0.02])
        kept: list[Candidate] = []
        for c in eps:
            kept = keep_candidates([*kept, c], tol)
            assert kept, "the best epoch so far is always a candidate"
        assert regularized_choice(kept, tol) == reference_choice(eps, tol)
        assert regularized_choice(eps, tol) == reference_choice(eps, tol)


def test_keeps_few_files_on_a_monotone_run() -> None:
    # accuracy and the term both falling: every epoch stays a candidate only while within
    # the tolerance, so at most those few epochs' weights are on disk at once
    eps = [Candidate(e, 0.9 - 0.004 * e, 10.0 - e) for e in range(10)]
    kept: list[Candidate] = []
    sizes = []
    for c in eps:
        kept = keep_candidates([*kept, c], 0.01)
        sizes.append(len(kept))
    assert max(sizes) == 3 and [c.epoch for c in kept] == [0, 1, 2]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="no candidate"):
        regularized_choice([], 0.01)
    with pytest.raises(ValueError, match="negative"):
        regularized_choice([Candidate(0, 0.5, 1.0)], -0.1)
    assert keep_candidates([], 0.01) == []


def tiny(**train: object) -> TrainConfig:
    data = {
        "seed": 0,
        "model": {"name": "mlp"},
        "train": {"float_epochs": 2, "qat_epochs": 4, "lr": 0.01, "select": "regularized"},
        "regularizer": {"name": "hamming", "lambda": 0.5},
    }
    data["train"].update(train)  # type: ignore[union-attr]
    return validate(TrainConfig, data)


@pytest.mark.parametrize("tol", [0.0, 0.05, 0.5])
def test_a_run_keeps_the_rules_epoch(tmp_path: Path, tol: float) -> None:
    cfg = tiny(select_tolerance=tol)
    out = tmp_path / "run"
    record = train_run(cfg, out, progress=False)
    assert record is not None
    qat = [h for h in record["history"] if h["stage"] == "qat"]
    eps = [Candidate(h["epoch"], h["val_accuracy"], h["reg_end"]) for h in qat]
    expected = reference_choice(eps, tol).epoch
    assert record["evaluation"]["selected_epoch"] == expected
    assert record["evaluation"]["val_accuracy"] == qat[expected - 2]["val_accuracy"]
    if tol == 0.5:  # everything within: the lowest term, i.e. the most regularized
        assert expected == min(eps, key=lambda c: c.reg).epoch
    # the final weights are the kept epoch's, and its file is what the model came from
    final, meta = ckpt.load_checkpoint(out / "model.safetensors")
    assert meta["epoch"] == expected
    if expected != cfg.train.epochs - 1:
        kept, _ = ckpt.load_checkpoint(out / f"select-{expected}.safetensors")
        assert all(torch.equal(final[k], kept[k]) for k in final)
    # only the epochs still able to be chosen at the end keep a weights file
    files = sorted(int(p.stem.split("-")[1]) for p in out.glob("select-*.safetensors"))
    assert expected in files or expected == cfg.train.epochs - 1
    assert files == [c.epoch for c in keep_candidates(eps, tol)]
    assert "select_tolerance" in (out / "config.yaml").read_text()


def test_regularizer_term_is_the_final_weights_one(tmp_path: Path) -> None:
    # the term the rule ranks by is lambda * penalty on the epoch's final weights, so it
    # differs from the epoch's mean training term ("reg") and falls under HamQ
    record = train_run(tiny(select_tolerance=0.5), tmp_path / "run", progress=False)
    assert record is not None
    qat = [h for h in record["history"] if h["stage"] == "qat"]
    assert all(h["reg_end"] > 0 for h in qat)
    assert qat[-1]["reg_end"] < qat[0]["reg"]


def test_resume_gives_the_same_run(tmp_path: Path) -> None:
    cfg = tiny(select_tolerance=0.05)
    whole = train_run(cfg, tmp_path / "a", progress=False)
    for stop in (3, 1, 1):  # stops inside QAT, with candidates on disk
        assert train_run(cfg, tmp_path / "b", stop_after=stop, resume=True, progress=False) is None
    resumed = train_run(cfg, tmp_path / "b", resume=True, progress=False)
    assert whole is not None and resumed is not None
    keep = ("accuracy", "evaluation", "history", "cells")
    assert {k: whole[k] for k in keep} == {k: resumed[k] for k in keep}
    a = sorted(p.name for p in (tmp_path / "a").glob("select-*"))
    assert a == sorted(p.name for p in (tmp_path / "b").glob("select-*"))


def test_a_missing_candidate_file_is_named(tmp_path: Path) -> None:
    cfg = tiny(select_tolerance=0.5)
    out = tmp_path / "run"
    assert train_run(cfg, out, stop_after=4, progress=False) is None  # 2 float + 2 QAT
    files = list(out.glob("select-*.safetensors"))
    assert files
    files[0].unlink()
    with pytest.raises(HamqError, match=rf"{files[0].name}' is missing.*retrain"):
        train_run(cfg, out, resume=True, progress=False)


def test_damaged_candidate_list_is_named(tmp_path: Path) -> None:
    cfg = tiny()
    out = tmp_path / "run"
    assert train_run(cfg, out, stop_after=3, progress=False) is None
    tensors, meta = ckpt.load_checkpoint(out / "checkpoint.safetensors")
    meta["candidates"] = [{"epoch": "x"}]
    ckpt.save_checkpoint(out / "checkpoint.safetensors", tensors, meta)
    with pytest.raises(HamqError, match="no readable candidate epochs"):
        train_run(cfg, out, resume=True, progress=False)


def test_default_tolerance_is_left_out_of_other_runs_configs() -> None:
    plain = validate(TrainConfig, {}).to_plain()
    assert "select_tolerance" not in plain["train"]
    assert "select_tolerance" not in tiny().to_plain()["train"]
    assert tiny(select_tolerance=0.01).to_plain()["train"]["select_tolerance"] == 0.01


@pytest.mark.parametrize(
    ("sets", "words"),
    [
        (["train.select_tolerance=0.01"], ["train.select_tolerance", "select: regularized"]),
        (["train.select=regularized", "train.select_tolerance=-1"], ["select_tolerance"]),
        (["train.select=regularized", "train.select_tolerance=1.5"], ["select_tolerance"]),
        (
            ["train.select=regularized", "data.validation_percent=0"],
            ["train.select = regularized needs a validation part"],
        ),
    ],
)
def test_bad_values_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sets: list[str], words: list[str]
) -> None:
    args = ["train", "--out", str(tmp_path / "r")]
    args += list(itertools.chain.from_iterable(("--set", s) for s in sets))
    refused(capsys, args, words)


def test_record_names_the_rule(tmp_path: Path) -> None:
    train_run(tiny(), tmp_path / "run", progress=False)
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["evaluation"]["select"] == "regularized"
    assert record["config"]["train"]["select"] == "regularized"
