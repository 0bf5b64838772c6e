"""Validation parts, epoch selection on them, speaker-disjoint k-fold, speaker patterns."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hamq.config_base import validate
from hamq.data import DataConfig, load_dataset
from hamq.data.split import speaker_splits, speakers_of
from hamq.errors import HamqError
from hamq.experiments.sweep import SweepConfig, variants
from hamq.training import checkpoint as ckpt
from hamq.training.config import TrainConfig
from hamq.training.runs import load_run
from hamq.training.trainer import count_correct, train_run


def reference_percentage(key: str) -> float:
    """The official which_set percentage, written out independently."""
    h = int(hashlib.sha1(key.encode()).hexdigest(), 16)
    return (h % 2**27) * (100.0 / (2**27 - 1))


def test_kfold_tests_every_clip_once_and_keeps_speakers_apart() -> None:
    rng = np.random.default_rng(0)
    speakers = [f"{rng.integers(0, 2**32):08x}" for _ in range(600)]
    names = [f"{s}_nohash_{k}.wav" for s in speakers for k in range(3)]
    k = 5
    tested = np.zeros(len(names), dtype=int)
    for fold in range(k):
        splits, mode = speaker_splits(names, 10, 10, "official", folds=k, fold=fold)
        assert mode == "official"
        for i, (n, s) in enumerate(zip(names, splits, strict=True)):
            spk = n.split("_nohash_")[0]
            # independent reference of the fold rule: floor(p * k / 100)
            in_fold = min(int(reference_percentage(spk) * k / 100), k - 1) == fold
            assert (s == "testing") == in_fold
            tested[i] += s == "testing"
        parts: dict[str, set[str]] = {}
        for n, s in zip(names, splits, strict=True):
            parts.setdefault(n.split("_nohash_")[0], set()).add(s)
        assert all(len(v) == 1 for v in parts.values()), "a speaker in two parts"
        rest = [s for s in splits if s != "testing"]
        assert 0.05 < rest.count("validation") / len(rest) < 0.15
    assert tested.tolist() == [1] * len(names)


def test_kfold_with_rehash_uses_the_salted_hash() -> None:
    names = [f"{i:08x}_nohash_0.wav" for i in range(400)]
    a, _ = speaker_splits(names, 10, 10, "official", folds=4, fold=1)
    b, _ = speaker_splits(names, 10, 10, "rehash", folds=4, fold=1)
    assert a != b
    assert b == speaker_splits(names, 10, 10, "rehash", folds=4, fold=1)[0]


def test_speaker_pattern_finds_fsdd_speakers() -> None:
    names = ["3_jackson_12.wav", "7_nicolas_0.wav", "0_theo_49.wav"]
    assert speakers_of(names, r"^\d+_(?P<speaker>[a-z]+)_\d+") == ["jackson", "nicolas", "theo"]
    assert speakers_of(names, r"_([a-z]+)_") == ["jackson", "nicolas", "theo"]
    with pytest.raises(HamqError, match=r"finds no speaker in file name .x\.wav."):
        speakers_of(["x.wav"], r"_([a-z]+)_")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"speaker_pattern": "(unclosed"}, "not a valid regular expression"),
        ({"speaker_pattern": r"\d+"}, "has no group"),
        ({"folds": 5, "fold": 5}, "must be below data.folds"),
        ({"fold": 2}, "data.folds is not"),
        ({"folds": 1}, "greater than or equal to 2"),
        ({"folds": 5, "testing_percent": 20}, "unused with data.folds"),
    ],
)
def test_bad_split_options_name_the_field(fields: dict, message: str) -> None:
    with pytest.raises(HamqError, match=message):
        validate(DataConfig, {"name": "audio_folder", **fields})


def test_audio_options_are_refused_for_other_data_sets() -> None:
    with pytest.raises(HamqError, match=r"data\.folds is used only by data sets"):
        validate(DataConfig, {"name": "digits", "folds": 5})


def test_digits_validation_part_is_stratified_and_disjoint() -> None:
    b = load_dataset(DataConfig())
    n = b.train_y.numel() + b.val_y.numel() + b.test_y.numel()
    assert n == 1797 and b.val_y.numel() == round(1797 * 0.10)
    # disjoint: no validation image equals a training image at the same label (digits has
    # no duplicate (image, label) pairs across these parts when split by index)
    flat = lambda x: {tuple(r) for r in x.reshape(x.shape[0], -1).tolist()}  # noqa: E731
    assert not flat(b.val_x) & flat(b.test_x)
    counts = torch.bincount(b.val_y, minlength=10)
    assert int(counts.min()) >= 16 and int(counts.max()) <= 20  # stratified: ~18 per class
    b0 = load_dataset(DataConfig(validation_percent=0))
    assert b0.val_y.numel() == 0 and b0.train_y.numel() == 1797 - b.test_y.numel()


def tiny(tmp: Path, *extra: str, select: str = "best_val") -> TrainConfig:
    data = {
        "seed": 0,
        "model": {"name": "mlp"},
        "train": {"float_epochs": 2, "qat_epochs": 4, "lr": 0.01, "select": select},
        "regularizer": {"name": "hamming", "lambda": 0.5},
    }
    return validate(TrainConfig, data)


def test_best_val_keeps_the_best_qat_epoch_and_tests_it_once(tmp_path: Path) -> None:
    cfg = tiny(tmp_path)
    record = train_run(cfg, tmp_path / "run", progress=False)
    assert record is not None
    qat = [h for h in record["history"] if h["stage"] == "qat"]
    best = max(h["val_accuracy"] for h in qat)
    expected = max(h["epoch"] for h in qat if h["val_accuracy"] == best)  # later on a tie
    ev = record["evaluation"]
    assert ev["selected_epoch"] == expected and ev["val_accuracy"] == best
    assert all("accuracy" not in h for h in record["history"]), "test scored per epoch"
    run = load_run(tmp_path / "run")
    correct, n = count_correct(run.model, run.data(), 512)
    assert (correct, n) == (ev["test_correct"], ev["test_samples"])
    assert record["accuracy"] == correct / n
    # the final weights are the kept epoch's
    final, meta = ckpt.load_checkpoint(tmp_path / "run" / "model.safetensors")
    assert meta["epoch"] == expected
    if expected != cfg.train.epochs - 1:
        kept, _ = ckpt.load_checkpoint(tmp_path / "run" / "best.safetensors")
        assert all(torch.equal(final[k], kept[k]) for k in final)


def test_select_last_keeps_the_last_epoch(tmp_path: Path) -> None:
    record = train_run(tiny(tmp_path, select="last"), tmp_path / "run", progress=False)
    assert record is not None
    assert record["evaluation"]["selected_epoch"] == 5
    assert not (tmp_path / "run" / "best.safetensors").exists()


def test_resume_keeps_the_best_epoch(tmp_path: Path) -> None:
    cfg = tiny(tmp_path)
    whole = train_run(cfg, tmp_path / "a", progress=False)
    assert train_run(cfg, tmp_path / "b", stop_after=4, progress=False) is None
    resumed = train_run(cfg, tmp_path / "b", resume=True, progress=False)
    assert whole is not None and resumed is not None
    keep = ("accuracy", "evaluation", "history", "cells")
    assert {k: whole[k] for k in keep} == {k: resumed[k] for k in keep}
    assert (
        json.loads((tmp_path / "b" / "run.json").read_text())["evaluation"] == (whole["evaluation"])
    )


def test_best_val_without_validation_part_is_refused() -> None:
    with pytest.raises(HamqError, match=r"train\.select = best_val needs a validation part"):
        validate(TrainConfig, {"data": {"validation_percent": 0}})
    cfg = validate(TrainConfig, {"data": {"validation_percent": 0}, "train": {"select": "last"}})
    assert cfg.train.select == "last"


def test_sweep_folds_give_each_seed_its_fold(tmp_path: Path) -> None:
    sweep = SweepConfig(base={"data": {"name": "audio_folder"}}, folds=3, hamming=[1.0])
    runs = dict(variants(sweep))
    assert sweep.seeds == [0, 1, 2]
    for seed in range(3):
        for name in (f"w8-baseline-s{seed}", f"w8-hamming-1-s{seed}"):
            assert "data.folds=3" in runs[name] and f"data.fold={seed}" in runs[name]
    with pytest.raises(ValueError, match="needs one seed per fold"):
        SweepConfig(folds=3, seeds=[0, 1])
