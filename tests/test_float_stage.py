"""The float stage's own figures (issue 11, part 5): its test accuracy and training time go
into ``float.safetensors`` and every run's ``run.json`` that starts from it; the NHWC
memory format (``train.channels_last``) applies on the CPU too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hamq.data import load_dataset
from hamq.models import build_model
from hamq.quantization import quantize_model
from hamq.training import checkpoint as ckpt
from hamq.training.config import load_config
from hamq.training.trainer import FLOAT, _memory_format, train_run

TINY = ["train.float_epochs=2", "train.qat_epochs=1", "train.select=last"]


@pytest.fixture(scope="module")
def float_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("float") / "run"
    cfg = load_config(None, [*TINY, "train.channels_last=true"])
    assert train_run(cfg, out, progress=False) is not None
    return out


def independent_test_accuracy(run: Path) -> float:
    """The float weights' test accuracy, by a plain loop over the raw test split."""
    cfg = load_config(run / "config.yaml")
    data = load_dataset(cfg.data)
    model = build_model(cfg.model, data.input_shape, data.num_classes)
    tensors, _ = ckpt.load_checkpoint(run / FLOAT)
    model.load_state_dict(tensors)
    model.eval()
    with torch.no_grad():
        x = data.transform(data.test_x, False, None)
        pred = model(x).argmax(dim=1)
    return float((pred == data.test_y).float().mean())


def test_the_record_holds_the_float_models_test_accuracy(float_run: Path) -> None:
    record = json.loads((float_run / "run.json").read_text())
    stage = record["float_stage"]
    assert stage["epochs"] == 2
    assert stage["test_samples"] == record["evaluation"]["test_samples"]
    assert stage["test_accuracy"] == pytest.approx(independent_test_accuracy(float_run))
    assert stage["test_accuracy"] == stage["test_correct"] / stage["test_samples"]


def test_epoch_times_are_kept_apart_from_the_history(float_run: Path) -> None:
    record = json.loads((float_run / "run.json").read_text())
    walls = record["timing"]["epoch_wall_s"]
    assert len(walls) == 3 and all(w > 0 for w in walls)
    assert record["timing"]["float_wall_s"] == pytest.approx(sum(walls[:2]))
    assert all("wall_s" not in h for h in record["history"])  # history: same run to run
    _, meta = ckpt.load_checkpoint(float_run / FLOAT)
    assert meta["float_wall_s"] == pytest.approx(sum(walls[:2]))


def test_a_resumed_run_keeps_the_earlier_sessions_times(float_run: Path, tmp_path: Path) -> None:
    cfg = load_config(None, [*TINY, "train.channels_last=true"])
    out = tmp_path / "resumed"
    assert train_run(cfg, out, stop_after=1, progress=False) is None
    record = train_run(cfg, out, resume=True, progress=False)
    assert record is not None
    assert len(record["timing"]["epoch_wall_s"]) == 3
    full = json.loads((float_run / "run.json").read_text())
    assert record["float_stage"]["epochs"] == full["float_stage"]["epochs"]
    assert record["history"] == full["history"]  # the times did not enter it
    assert record["float_stage"] == full["float_stage"]


def test_a_run_started_from_the_float_weights_carries_their_figures(
    float_run: Path, tmp_path: Path
) -> None:
    cfg = load_config(None, ["train.float_epochs=0", f"train.init_from={float_run}"])
    record = train_run(cfg, tmp_path / "qat", progress=False)
    assert record is not None
    own = json.loads((float_run / "run.json").read_text())["float_stage"]
    assert record["float_stage"] == own
    assert "float_wall_s" not in record["timing"]  # it trained no float epoch itself


def test_a_run_from_scratch_has_no_float_stage(tmp_path: Path) -> None:
    cfg = load_config(None, ["train.float_epochs=0", "train.qat_epochs=1"])
    record = train_run(cfg, tmp_path / "scratch", progress=False)
    assert record is not None and record["float_stage"] is None


def test_channels_last_converts_the_quantized_convs_on_cpu() -> None:
    cfg = load_config(None, ["model.name=resnet20", "train.channels_last=true"])
    model = build_model(cfg.model, (3, 32, 32), 10)
    quantize_model(model, cfg.quant)
    model = _memory_format(model, cfg)
    convs = [p for p in model.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    x = torch.randn(2, 3, 32, 32)
    plain = load_config(None, ["model.name=resnet20"])
    assert _memory_format(model, plain) is model  # off: untouched
    assert model(x).shape == (2, 10)
