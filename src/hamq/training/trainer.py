"""The training loop: float pre-training, conversion, QAT with a regularizer; resumable.

Every epoch ends with an atomic checkpoint. All randomness is derived from the run seed:
the model init from ``seed``, each epoch's shuffling and augmentation from a generator
seeded with ``(seed, epoch)``, so a resumed run repeats exactly the epochs it missed.

**Which weights a run reports.** Every epoch is scored on the *validation* part. With
``train.select = best_val`` the QAT epoch with the highest validation accuracy (the later
one on a tie) is kept in ``best.safetensors``; the final model is that epoch's weights, and
only then is the *test* part evaluated, once. With ``train.select = regularized`` each
epoch that may still be chosen keeps its weights in ``select-<epoch>.safetensors`` and the
run keeps the most regularized epoch within a validation tolerance
(``training/select.py``). The test part never chooses anything, so the reported test
accuracy is an unbiased estimate, given with its sample count.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from torch import nn
from tqdm.auto import tqdm

from hamq.config_base import validate
from hamq.data import DataBundle, load_dataset
from hamq.errors import HamqError
from hamq.files import load_json_file
from hamq.hardware.representation import check_layout
from hamq.hardware.spec import HardwareSpec, load_hardware
from hamq.models import build_model
from hamq.quantization import ConversionReport, quantize_model
from hamq.regularizers import Regularizer
from hamq.sparsity import phases as sparsity
from hamq.sparsity.column_clear import clear_model_columns
from hamq.training import analog, distill
from hamq.training import checkpoint as ckpt
from hamq.training.checks import check_data, check_quantizable, diverged, nonfinite_tensors
from hamq.training.config import TrainConfig
from hamq.training.record import build_record
from hamq.training.schedule import lr_at
from hamq.training.select import Candidate, keep_candidates, regularized_choice

CHECKPOINT = "checkpoint.safetensors"
MODEL = "model.safetensors"
RECORD = "run.json"
CONFIG = "config.yaml"
FLOAT = "float.safetensors"
BEST = "best.safetensors"
SELECT = "select-{epoch}.safetensors"  # train.select = regularized: a candidate epoch


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for ``cuda`` without one is an error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise HamqError("train.device = 'cuda' but no CUDA device is available; use auto or cpu")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def epoch_generator(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    """The generator of one epoch's shuffling and augmentation."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed * 1_000_003 + epoch)
    return gen


def make_optimizer(model: nn.Module, cfg: TrainConfig, stage: str) -> torch.optim.Optimizer:
    """SGD (Nesterov) or AdamW; no weight decay on biases, norms and quantizer steps."""
    t = cfg.train
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.dim() > 1 and not name.endswith("step") else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": t.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    lr = t.stage_lr(stage)
    if t.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=t.momentum, nesterov=t.momentum > 0)
    return torch.optim.AdamW(groups, lr=lr)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: DataBundle,
    batch_size: int,
    limit: int | None = None,
    split: str = "test",
) -> float:
    """Top-1 accuracy (fraction) on the ``test`` or ``val`` part (0 for an empty part)."""
    correct, total = count_correct(model, data, batch_size, limit, split)
    return correct / max(1, total)


@torch.no_grad()
def count_correct(
    model: nn.Module,
    data: DataBundle,
    batch_size: int,
    limit: int | None = None,
    split: str = "test",
) -> tuple[int, int]:
    """(correct, samples) of top-1 predictions on the ``test`` or ``val`` part."""
    model.eval()
    batches = data.test_batches if split == "test" else data.val_batches
    correct = total = 0
    for x, y in batches(batch_size, limit):
        correct += int((model(x).argmax(1) == y).sum())
        total += y.numel()
    return correct, total


@dataclass
class RunState:
    """What a run carries between epochs (and in its checkpoint)."""

    model: nn.Module
    stage: str = "float"
    optimizer: torch.optim.Optimizer | None = None
    regularizer: Regularizer | None = None
    conversion: ConversionReport | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    next_epoch: int = 0
    best_epoch: int | None = None  # QAT epoch kept in BEST (train.select = best_val)
    best_val: float = float("-inf")
    candidates: list[Candidate] = field(default_factory=list)  # train.select = regularized
    # wall seconds of each epoch trained (train + validation), across resumed sessions; kept
    # out of ``history`` so that the record's non-timing part stays the same run to run
    epoch_wall_s: list[float] = field(default_factory=list)
    teacher: nn.Module | None = None  # train.distill: the frozen float model that teaches
    teacher_stage: str = ""  # the stage it was loaded for ("fixed": train.teacher, both)


def hardware_of(cfg: TrainConfig) -> HardwareSpec:
    """The run's hardware description, checked against its weight bits."""
    hw = load_hardware(cfg.hardware.preset, **cfg.hardware.overrides())
    try:
        check_layout(cfg.quant.w_bits, hw.representation, hw.cell_bits)
    except ValueError as err:
        raise HamqError(
            f"quant.w_bits = {cfg.quant.w_bits} with hardware {hw.name} "
            f"({hw.representation}, {hw.cell_bits}-bit cells): {err}"
        ) from None
    analog.check_analog(cfg.analog, hw, cfg.quant.w_bits)
    return hw


def build_run_model(cfg: TrainConfig, data: DataBundle) -> nn.Module:
    torch.manual_seed(cfg.seed)
    return build_model(cfg.model, data.input_shape, data.num_classes)


def float_weights_path(init_from: str) -> Path:
    """The float weights file named by ``train.init_from`` (a run folder or a file)."""
    p = Path(init_from)
    if p.is_dir():
        p = p / FLOAT
    if not p.is_file():
        raise HamqError(
            f"train.init_from = '{init_from}': no float weights there; give a run folder "
            f"that finished its float stage or its {FLOAT}"
        )
    return p


def _memory_format(model: nn.Module, cfg: TrainConfig) -> nn.Module:
    """The model in the training memory format (``train.channels_last``: NHWC conv weights,
    on CPU as on CUDA; BENCHMARKS.md measures 1.25x per ResNet-20 step on this CPU)."""
    if cfg.train.channels_last:
        return model.to(memory_format=torch.channels_last)
    return model


def _enter_qat(state: RunState, cfg: TrainConfig, hw: HardwareSpec) -> None:
    state.conversion = quantize_model(state.model, cfg.quant)
    state.model = _memory_format(state.model, cfg)
    sparsity.enter_qat(state.model, cfg)
    state.stage = "qat"
    state.optimizer = make_optimizer(state.model, cfg, "qat")
    state.regularizer = sparsity.run_regularizer(cfg, hw)
    if state.regularizer is not None:
        state.regularizer.attach(state.model)
    analog.attach(state.model, hw, cfg.analog, cfg.seed)


def _save_float(out: Path, state: RunState, cfg: TrainConfig, data: DataBundle) -> None:
    """Save the float stage's weights (``float.safetensors``), with the float model's test
    accuracy and the stage's training time in its metadata (``float_stage``). The test part
    is evaluated once here, for the report; nothing is chosen on it."""
    correct, n_test = count_correct(state.model, data, cfg.data.eval_batch_size)
    meta = {
        "epoch": cfg.train.float_epochs - 1,
        "stage": "float",
        "config": cfg.to_plain(),
        "float_stage": {
            "test_correct": correct,
            "test_samples": n_test,
            "test_accuracy": correct / max(1, n_test),
            "epochs": cfg.train.float_epochs,
        },
        # train + validation seconds of the float epochs (None if some were trained by a
        # hamq that did not time them); timing, so outside the summary the record copies
        "float_wall_s": _stage_wall_s(state, cfg.train.float_epochs),
    }
    masks = sparsity.float_masks_meta(state.model, cfg)
    if masks is not None:  # (polynomial, seed, sparsity) per layer, never indices
        meta["masks"] = masks
    ckpt.save_checkpoint(out / FLOAT, dict(state.model.state_dict()), meta)


def _load_teacher(
    state: RunState, cfg: TrainConfig, out: Path, data: DataBundle, device: torch.device
) -> None:
    """With ``train.distill``: the frozen float model that teaches the stage about to train
    (``train.teacher``; else in QAT the float weights it started from, this run's
    ``float.safetensors`` or ``init_from``'s, and in a distilled float stage
    ``init_from``'s). Loaded once per stage, again after a resume."""
    t = cfg.train
    if t.distill == 0 or (state.stage == "float" and not t.distill_float):
        return
    if state.teacher is not None and state.teacher_stage in (state.stage, "fixed"):
        return
    if t.teacher is not None:
        path, stage = float_weights_path(t.teacher), "fixed"
    elif state.stage == "qat" and t.float_epochs > 0:
        path, stage = out / FLOAT, state.stage
    elif t.init_from is not None:  # QAT from init_from's weights, or a float stage
        path, stage = float_weights_path(t.init_from), state.stage  # distilled from them
    else:  # (a sweep sets init_from only when it trains the run: checked here)
        raise HamqError(
            "train.distill_float needs a teacher for the float stage: give train.teacher or "
            "train.init_from (a float stage from scratch has none)"
        )
    teacher = distill.load_teacher(build_run_model(cfg, data), path, device)
    state.teacher, state.teacher_stage = _memory_format(teacher, cfg), stage


def _stage_wall_s(state: RunState, epochs: int) -> float | None:
    walls = state.epoch_wall_s
    return sum(walls[:epochs]) if len(walls) >= epochs else None


def float_stage(cfg: TrainConfig, out: Path) -> dict[str, Any] | None:
    """The float stage a run started from, as :func:`_save_float` recorded it: this run's
    own ``float.safetensors`` or the one ``train.init_from`` names (None for a run from
    scratch, or weights saved before hamq recorded it)."""
    if cfg.train.float_epochs > 0:
        path = out / FLOAT
    elif cfg.train.init_from is not None:
        path = float_weights_path(cfg.train.init_from)
    else:
        return None
    if not path.exists():
        return None
    summary = ckpt.load_checkpoint(path)[1].get("float_stage")
    return summary if isinstance(summary, dict) else None


def _state_tensors(state: RunState) -> dict[str, torch.Tensor]:
    tensors = {f"model/{k}": v for k, v in state.model.state_dict().items()}
    if state.regularizer is not None:
        tensors.update({f"reg/{k}": v for k, v in state.regularizer.state_dict().items()})
    return tensors


def _save(out: Path, state: RunState, cfg: TrainConfig, epoch: int) -> None:
    assert state.optimizer is not None
    opt_tensors, opt_meta = ckpt.optimizer_to_flat(state.optimizer)
    meta = {
        "epoch": epoch,
        "stage": state.stage,
        "history": state.history,
        "optimizer": opt_meta,
        "config": cfg.to_plain(),
        "best": {"epoch": state.best_epoch, "val_accuracy": _finite_or_none(state.best_val)},
        "epoch_wall_s": state.epoch_wall_s,
    }
    if cfg.train.select == "regularized":
        meta["candidates"] = [asdict(c) for c in state.candidates]
    ckpt.save_checkpoint(out / CHECKPOINT, {**_state_tensors(state), **opt_tensors}, meta)


def _finite_or_none(x: float) -> float | None:
    return x if x != float("-inf") else None


def _restore(
    out: Path, state: RunState, cfg: TrainConfig, hw: HardwareSpec, device: torch.device
) -> None:
    tensors, meta = ckpt.load_checkpoint(out / CHECKPOINT)
    stored = meta.get("config") if isinstance(meta, dict) else None
    if isinstance(stored, dict) and not same_config(stored, cfg):  # before the epoch checks,
        raise HamqError(  # whose message would otherwise blame a damaged file
            f"'{out / CHECKPOINT}' was written with another config; resume with the same "
            f"config and --set values (or --resume alone: the run's stored config), or use a "
            f"new --out"
        )
    ckpt.check_resume_meta(meta, out / CHECKPOINT, cfg.train.float_epochs, cfg.train.epochs)
    if not same_config(meta["config"], cfg):
        raise HamqError(
            f"'{out / CHECKPOINT}' was written with another config; resume with the same "
            f"config and --set values, or use a new --out"
        )
    if meta["stage"] == "qat":
        if state.stage != "qat":  # (with float_epochs 0 the model is converted already)
            _enter_qat(state, cfg, hw)
    else:
        state.optimizer = make_optimizer(state.model, cfg, "float")
    _load_model_state(state.model, ckpt.split_prefix(tensors, "model"), out / CHECKPOINT, device)
    if state.regularizer is not None:
        state.regularizer.load_state_dict(ckpt.split_prefix(tensors, "reg"))
    assert state.optimizer is not None
    ckpt.optimizer_from_flat(
        state.optimizer,
        {k: v.to(device) for k, v in tensors.items()},
        meta["optimizer"],
        out / CHECKPOINT,
    )
    state.history = meta["history"]
    state.next_epoch = meta["epoch"] + 1
    walls = meta.get("epoch_wall_s")  # (absent in checkpoints of hamq <= 0.4.0)
    if isinstance(walls, list) and all(isinstance(w, int | float) for w in walls):
        state.epoch_wall_s = [float(w) for w in walls]
    best = meta.get("best") or {}
    if best.get("epoch") is not None:
        state.best_epoch = int(best["epoch"])
        state.best_val = float(best["val_accuracy"])
    if cfg.train.select == "regularized":
        state.candidates = _stored_candidates(meta.get("candidates"), out)


def _stored_candidates(raw: Any, out: Path) -> list[Candidate]:
    """The candidate epochs a checkpoint names, each with its weights file present."""
    try:
        cands = [Candidate(int(c["epoch"]), float(c["val_accuracy"]), float(c["reg"]))
                 for c in raw]  # fmt: skip
    except (TypeError, KeyError, ValueError):
        raise HamqError(
            f"'{out / CHECKPOINT}' names no readable candidate epochs for train.select = "
            f"regularized; the file is damaged: retrain the run (a new --out)"
        ) from None
    for c in cands:
        if not (out / SELECT.format(epoch=c.epoch)).exists():
            raise HamqError(
                f"'{out / SELECT.format(epoch=c.epoch)}' is missing, but the checkpoint keeps "
                f"epoch {c.epoch} as a candidate; the run folder was changed by hand: retrain it"
            )
    return cands


def _load_model_state(
    model: nn.Module, sd: dict[str, torch.Tensor], path: Path, device: torch.device
) -> None:
    try:
        model.load_state_dict({k: v.to(device) for k, v in sd.items()}, strict=True)
    except RuntimeError as err:
        detail = " ".join(str(err).split())[:200]
        raise HamqError(f"'{path}' does not match the model of this config ({detail})") from None


def _select_weights(out: Path, state: RunState, cfg: TrainConfig, device: torch.device) -> int:
    """Load the kept epoch's weights into the model (``train.select``); its epoch index."""
    last = cfg.train.epochs - 1
    kept: int | None = None
    if cfg.train.select == "best_val":
        kept, path = state.best_epoch, out / BEST
    elif cfg.train.select == "regularized" and state.candidates:
        kept = regularized_choice(state.candidates, cfg.train.select_tolerance).epoch
        path = out / SELECT.format(epoch=kept)
    if kept is None or kept == last:
        return last
    tensors, meta = ckpt.load_checkpoint(path)
    if meta.get("epoch") != kept:
        raise HamqError(
            f"'{path}' holds epoch {meta.get('epoch')}, but the checkpoint names epoch "
            f"{kept} as the one to keep; the run folder was changed by hand: retrain it"
        )
    _load_model_state(state.model, tensors, path, device)
    return kept


def _reg_value(state: RunState) -> float:
    """The run's regularizer term on the model's current weights (0 without one)."""
    if state.regularizer is None:
        return 0.0
    with torch.no_grad():
        return float(state.regularizer(state.model))


def _add_candidate(out: Path, state: RunState, cfg: TrainConfig, new: Candidate) -> list[Candidate]:
    """Make ``new`` a candidate (its weights saved first); the candidates it leaves out."""
    kept = keep_candidates([*state.candidates, new], cfg.train.select_tolerance)
    if new in kept:
        meta = {"epoch": new.epoch, "stage": "qat", "config": cfg.to_plain()}
        path = out / SELECT.format(epoch=new.epoch)
        ckpt.save_checkpoint(path, dict(state.model.state_dict()), meta)
    dropped = [c for c in state.candidates if c not in kept]
    state.candidates = kept
    return dropped


def _clear_columns(
    model: nn.Module, cfg: TrainConfig, hw: HardwareSpec, data: DataBundle, val_before: Any
) -> dict[str, Any] | None:
    """``sparsity.clear_columns`` on the kept weights (``sparsity/column_clear.py``): what
    it changed, per layer and in all, with the validation accuracy before and after and
    the test accuracy before (the run's own is after); None when off."""
    max_on = cfg.sparsity.clear_columns
    if max_on == 0:
        return None
    # the test accuracy before is reported beside the cleared one, never used to choose
    correct, n_test = count_correct(model, data, cfg.data.eval_batch_size)
    counts = clear_model_columns(model, hw, max_on, cfg.sparsity.clear_max_move)
    per_layer = {name: {**asdict(c), "columns_cleared": c.columns_cleared}
                 for name, c in counts.items()}  # fmt: skip
    total = {k: sum(x[k] for x in per_layer.values()) for k in next(iter(per_layer.values()))}
    val = evaluate(model, data, cfg.data.eval_batch_size, split="val")
    return {"max_on_cells": max_on, "max_move": cfg.sparsity.clear_max_move,
            "tile_rows": hw.array.rows, **total,
            "val_accuracy_before": val_before, "test_accuracy_before": correct / max(1, n_test),
            "val_accuracy_after": val if data.val_samples > 0 else None,
            "layers": per_layer}  # fmt: skip


def train_epoch(
    state: RunState, cfg: TrainConfig, data: DataBundle, epoch: int, device: torch.device
) -> dict[str, float]:
    """One epoch of training; returns mean loss terms."""
    t = cfg.train
    model, opt = state.model, state.optimizer
    assert opt is not None
    model.train()
    stage_start = 0 if state.stage == "float" else t.float_epochs
    stage_epochs = t.float_epochs if state.stage == "float" else t.qat_epochs
    if state.stage == "qat":  # pruning splits QAT in two schedules (sparsity/phases.py)
        stage_start, stage_epochs = sparsity.schedule_window(cfg, epoch)
    steps_per_epoch = max(1, data.train_x.shape[0] // cfg.data.batch_size)
    total_steps = stage_epochs * steps_per_epoch
    warmup = t.warmup_epochs * steps_per_epoch if state.stage == "float" else 0
    base_lr = t.stage_lr(state.stage)
    gen = epoch_generator(cfg.seed, epoch, device)
    sums = {"loss": 0.0, "ce": 0.0, "reg": 0.0}
    teacher = state.teacher if (state.stage == "qat" or t.distill_float) else None
    if teacher is not None:
        sums["kd"] = 0.0
    n = 0
    use_amp = t.amp and (state.stage == "float" or t.amp_qat)
    for i, (x, y) in enumerate(data.train_batches(cfg.data.batch_size, gen)):
        step = (epoch - stage_start) * steps_per_epoch + i
        lr = lr_at(step, total_steps, base_lr, t.schedule, warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        if t.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = model(x)
            ce = F.cross_entropy(logits, y, label_smoothing=t.label_smoothing)
        task = ce
        if teacher is not None:  # (the teacher's precision does not touch the student's)
            with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=t.amp):
                soft = teacher(x)
            kd = distill.kd_loss(logits, soft, t.distill_temperature)
            task = (1 - t.distill) * ce + t.distill * kd
            sums["kd"] += float(kd.detach())
        reg = state.regularizer(model) if state.regularizer is not None else ce.new_zeros(())
        loss = task + reg
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if state.stage == "qat":
            analog.clip_weights(model, cfg.analog)
        value = float(loss.detach())  # (a sync per step already; checking it is free)
        if not math.isfinite(value):
            raise diverged(f"the loss became {value} at step {i} of", epoch, state.stage, cfg)
        sums["loss"] += value
        sums["ce"] += float(ce.detach())
        sums["reg"] += float(reg.detach())
        n += 1
    bad = nonfinite_tensors(model)
    if bad:
        raise diverged(f"'{bad[0]}' holds NaN or inf after", epoch, state.stage, cfg)
    return {k: v / max(1, n) for k, v in sums.items()}


def same_config(stored: Any, cfg: TrainConfig) -> bool:
    """Whether a config stored by a run (a checkpoint's or run.json's) is ``cfg``, once
    both are validated: a field added in a later version reads as its default, so a run
    trained before it existed is the same run."""
    if stored == cfg.to_plain():
        return True
    if not isinstance(stored, dict):
        return False
    try:
        return validate(TrainConfig, stored, source="a stored config").to_plain() == cfg.to_plain()
    except HamqError:
        return False


def finished_record(cfg: TrainConfig, out: Path) -> dict[str, Any] | None:
    """The record of run folder ``out`` if it finished training ``cfg``, else None.

    A folder is finished when it holds its final weights and a record of the same config,
    whichever sweep backend or command trained it.
    """
    out = Path(out)
    if not ((out / RECORD).exists() and (out / MODEL).exists()):
        return None
    record = load_json_file(out / RECORD, "run record")
    if isinstance(record, dict) and same_config(record.get("config"), cfg):
        return record
    return None


def train_run(
    cfg: TrainConfig,
    out: Path,
    resume: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
    data: DataBundle | None = None,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
) -> dict[str, Any] | None:
    """Train ``cfg`` into run folder ``out``; returns the run record (None if stopped early).

    ``resume`` continues from ``out``'s checkpoint (a finished run returns its record);
    ``stop_after`` trains at most that many epochs in this call, then stops (resumable).
    """
    out = Path(out)
    if (out / CHECKPOINT).exists() and not resume:
        raise HamqError(
            f"'{out}' already holds a run; add --resume to continue it or choose another --out"
        )
    if resume and (record := finished_record(cfg, out)) is not None:
        return record
    device = resolve_device(cfg.train.device)
    hw = hardware_of(cfg)
    if data is None:
        data = load_dataset(cfg.data)
    check_data(cfg, data)
    data = data.to(device)
    out.mkdir(parents=True, exist_ok=True)
    state = RunState(model=build_run_model(cfg, data).to(device))
    check_quantizable(state.model, cfg)
    sparsity.check_run(state.model, cfg)
    if cfg.train.init_from is not None:
        path = float_weights_path(cfg.train.init_from)
        tensors, meta = ckpt.load_checkpoint(path)
        _load_model_state(state.model, tensors, path, device)
        sparsity.check_float_masks(state.model, cfg, meta.get("masks"), f"'{path}'")
    if cfg.train.float_epochs == 0:
        _enter_qat(state, cfg, hw)
    else:
        state.optimizer = make_optimizer(state.model, cfg, "float")
    if resume and (out / CHECKPOINT).exists():
        _restore(out, state, cfg, hw, device)
    if state.stage == "float":  # (sparsity.from_float: the float stage trains pruned)
        assert state.optimizer is not None
        sparsity.start_float(state.model, state.optimizer, cfg)
    # (after the restore: a resume refused for another config leaves the run's config.yaml)
    ckpt.atomic_write_text(out / CONFIG, yaml.safe_dump(cfg.to_plain(), sort_keys=False))
    state.model = _memory_format(state.model, cfg)  # (keeps the optimizer's parameters)
    started = time.perf_counter()
    epochs = range(state.next_epoch, cfg.train.epochs)
    bar = tqdm(
        epochs,
        desc=f"train {out.name}",
        disable=None if progress else True,
        unit="epoch",
        leave=False,
    )
    done_now = 0
    for epoch in bar:
        if stop_after is not None and done_now >= stop_after:
            bar.close()
            return None
        if epoch == cfg.train.float_epochs and state.stage == "float":
            _save_float(out, state, cfg, data)
            _enter_qat(state, cfg, hw)
        epoch_started = time.perf_counter()
        sparsity.before_epoch(state.model, state.optimizer, cfg, epoch)
        analog.before_epoch(state.model, epoch)
        _load_teacher(state, cfg, out, data, device)
        losses = train_epoch(state, cfg, data, epoch, device)
        val = evaluate(state.model, data, cfg.data.eval_batch_size, split="val")
        has_val = data.val_samples > 0
        entry = {
            "epoch": epoch,
            "stage": state.stage,
            "val_accuracy": val if has_val else None,
            **losses,
        }
        selectable = (
            state.stage == "qat"
            and sparsity.selectable(cfg, epoch)
            and epoch - cfg.train.float_epochs >= cfg.train.select_from
        )
        dropped: list[Candidate] = []
        if selectable and cfg.train.select == "regularized":
            entry["reg_end"] = _reg_value(state)
            dropped = _add_candidate(out, state, cfg, Candidate(epoch, val, entry["reg_end"]))
        state.epoch_wall_s.append(time.perf_counter() - epoch_started)
        state.history.append(entry)
        bar.set_postfix(stage=state.stage, loss=f"{losses['loss']:.3f}", val=f"{val:.3f}")
        if selectable and cfg.train.select == "best_val" and val >= state.best_val:
            # keep this epoch's weights before the checkpoint names it as the best
            state.best_epoch, state.best_val = epoch, val
            best_meta = {"epoch": epoch, "stage": "qat", "config": cfg.to_plain()}
            ckpt.save_checkpoint(out / BEST, dict(state.model.state_dict()), best_meta)
        _save(out, state, cfg, epoch)
        for c in dropped:  # (after the checkpoint stops naming them)
            (out / SELECT.format(epoch=c.epoch)).unlink(missing_ok=True)
        done_now += 1
        if on_epoch is not None:
            on_epoch(epoch, entry)
    bar.close()
    wall_s = time.perf_counter() - started
    selected = _select_weights(out, state, cfg, device)
    masks = sparsity.finish(state.model, cfg)
    val_kept = state.history[selected]["val_accuracy"]
    cleared = _clear_columns(state.model, cfg, hw, data, val_kept)
    correct, n_test = count_correct(state.model, data, cfg.data.eval_batch_size)
    evaluation = {
        "select": cfg.train.select,
        "selected_epoch": selected,
        "val_accuracy": val_kept if cleared is None else cleared["val_accuracy_after"],
        "val_samples": data.val_samples,
        "test_correct": correct,
        "test_samples": n_test,
    }
    record = build_record(
        cfg,
        state.model,
        state.history,
        hw,
        state.conversion,
        device,
        wall_s,
        data.input_shape,
        data.num_classes,
        evaluation,
    )
    final_meta = {"epoch": selected, "stage": "qat", "config": cfg.to_plain()}
    if masks is not None:  # (polynomial, seed, sparsity) per layer, never indices
        final_meta["masks"] = record["masks"] = masks
    if cleared is not None:
        record["cleared_columns"] = cleared
    record["float_stage"] = float_stage(cfg, out)
    record["timing"]["epoch_wall_s"] = state.epoch_wall_s
    if cfg.train.float_epochs > 0:
        record["timing"]["float_wall_s"] = _stage_wall_s(state, cfg.train.float_epochs)
    record["model_sha256"] = ckpt.save_checkpoint(
        out / MODEL, dict(state.model.state_dict()), final_meta
    )
    ckpt.atomic_write_text(out / RECORD, json.dumps(record, indent=2))
    return record
