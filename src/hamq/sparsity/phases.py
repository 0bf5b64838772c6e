"""The training loop's sparsity hooks: regularized QAT, hard pruning, fine-tuning.

With sparsity in the run config the QAT stage of ``train.qat_epochs`` epochs runs in two
phases (``docs/sparsity.md``):

1. *regularized*: the first ``qat_epochs - finetune_epochs`` epochs train with the main
   ``regularizer`` plus, when ``sparsity.lambda > 0``, the ``prune`` term pushing the
   weights outside the LFSR masks toward 0; the masks are attached but do not act yet.
2. *fine-tune*: at the start of the next epoch the masks are fixed (hard pruning: weights
   outside set to exactly 0); from then on the quantized forward multiplies the weight by
   its mask, so those weights get no gradient, and an optimizer post-step hook zeroes them
   again after every step (Adam's momentum from phase 1 and weight decay would move them).

With ``sparsity.from_float`` the masks act from the first float epoch instead (the float
stage trains the pruned network, :func:`start_float`), and all of QAT is the fine-tune.

Why one QAT stage split in two, not a third stage: the optimizer, the checkpoint and the
resume logic stay those of QAT; only the learning-rate schedule restarts, each phase running
its own (cosine: from ``qat_lr`` to 0), because a fine-tune on the tail of one schedule
barely recovers (digits, sparsity 0.5: 91.7% on the tail, 94.7% restarted; 0.8: 48.9% and
61.1%). Why fixed at an epoch boundary: each
checkpoint then holds either dense or fully pruned weights, and a resumed run re-fixes the
masks from the epoch number alone. With ``train.select = best_val`` only fine-tune epochs
can be kept, so the reported weights always satisfy their masks.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hamq.errors import HamqError
from hamq.hardware.spec import HardwareSpec
from hamq.regularizers import Regularizer, RegularizerConfig, RegularizerSum, build_regularizer
from hamq.sparsity import layers, proximal
from hamq.training.config import TrainConfig


def prune_epoch(cfg: TrainConfig) -> int | None:
    """The epoch (counted over the whole run) at whose start the masks are fixed; None
    without sparsity."""
    if not cfg.sparsity.enabled:
        return None
    t = cfg.train
    return t.float_epochs + t.qat_epochs - cfg.sparsity.finetune(t.qat_epochs)


def check_run(model: nn.Module, cfg: TrainConfig) -> None:
    """Before any training: every mask of the (float) model can be made; warns about a
    polynomial that is not primitive."""
    layers.check_config(model, cfg.quant, cfg.sparsity)


def start_float(model: nn.Module, optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> None:
    """Before the first float step (and again on resume), with ``sparsity.from_float``:
    hard-prune the float model and keep it pruned through the float stage."""
    if cfg.sparsity.enabled and cfg.sparsity.from_float:
        masks = layers.float_model_masks(model, cfg.quant, cfg.sparsity)
        layers.prune_float(model, optimizer, masks)


def float_masks_meta(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]] | None:
    """What the float weights file stores of the masks its float stage trained under
    (None for a dense float stage)."""
    if not (cfg.sparsity.enabled and cfg.sparsity.from_float):
        return None
    return layers.masks_to_meta(layers.float_model_masks(model, cfg.quant, cfg.sparsity))


def check_float_masks(model: nn.Module, cfg: TrainConfig, stored: Any, where: str) -> None:
    """Float weights trained pruned (their file's ``masks``; None for a dense float stage)
    start only a run whose own masks are the same: HamqError naming the file otherwise."""
    if stored is None:
        return
    theirs = layers.masks_from_meta(stored, where)
    mine = layers.float_model_masks(model, cfg.quant, cfg.sparsity)
    if theirs != mine:
        said = "; ".join(f"{m.name}: {m.describe()}" for m in theirs[:2])
        said += "; ..." if len(theirs) > 2 else ""
        raise HamqError(
            f"{where} holds float weights trained pruned under other LFSR masks ({said}) than "
            f"this run's sparsity section makes ({len(mine)} masks); give the run the same "
            f"sparsity section, or start it from dense float weights"
        )


def enter_qat(model: nn.Module, cfg: TrainConfig) -> None:
    """After conversion: attach each quantized layer's mask (not fixed yet)."""
    if cfg.sparsity.enabled:
        layers.attach_masks(model, layers.resolve_masks(model, cfg.sparsity, cfg.quant.skip))


def run_regularizer(cfg: TrainConfig, hw: HardwareSpec) -> Regularizer | None:
    """The run's loss terms: the main ``regularizer`` and, with ``sparsity.lambda > 0``,
    ``prune`` (as a loss term only with ``sparsity.update = gradient``; the proximal update
    acts after the optimizer step instead, :func:`before_epoch`); None when there is
    neither, their sum when there are both."""
    terms = [build_regularizer(cfg.regularizer, hw)]
    if cfg.sparsity.enabled and cfg.sparsity.update == "gradient":
        prune_cfg = RegularizerConfig(name="prune", **{"lambda": cfg.sparsity.lambda_})
        terms.append(build_regularizer(prune_cfg, hw))
    present = [t for t in terms if t is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else RegularizerSum(present)


def before_epoch(
    model: nn.Module, optimizer: torch.optim.Optimizer | None, cfg: TrainConfig, epoch: int
) -> None:
    """At the start of every epoch: in the regularized QAT phase with ``sparsity.update =
    proximal``, hook the optimizer to apply the prune term's proximal step; from the prune
    epoch on, fix the masks (idempotent, so a resumed run re-fixes them) and hook the
    optimizer to keep pruned weights at 0. Hooks go on once per optimizer, so a resumed
    run's new optimizer gets them again."""
    start = prune_epoch(cfg)
    if start is None:
        return
    if epoch < start:
        sp = cfg.sparsity
        if sp.update == "proximal" and epoch >= cfg.train.float_epochs and optimizer is not None:
            proximal.prox_after_step(optimizer, model, sp.lambda_)
        return
    layers.fix_masks(model)
    if optimizer is not None:
        layers.zero_pruned_after_step(optimizer, model)


def schedule_window(cfg: TrainConfig, epoch: int) -> tuple[int, int]:
    """(first epoch, epochs) of the learning-rate schedule that QAT epoch ``epoch`` is in:
    the whole QAT stage, or with sparsity the regularized phase or the fine-tune, each a
    schedule of its own (the fine-tune restarts at ``qat_lr``)."""
    t = cfg.train
    start = prune_epoch(cfg)
    if start is None:
        return t.float_epochs, t.qat_epochs
    if epoch < start:
        return t.float_epochs, start - t.float_epochs
    return start, t.float_epochs + t.qat_epochs - start


def selectable(cfg: TrainConfig, epoch: int) -> bool:
    """Whether ``train.select = best_val`` may keep this epoch (masks fixed by then)."""
    start = prune_epoch(cfg)
    return start is None or epoch >= start


def finish(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]] | None:
    """After training, on the kept weights: fix the masks, check that the weights satisfy
    them, and return what the run stores of them (None without sparsity)."""
    if not cfg.sparsity.enabled:
        return None
    masks = layers.resolve_masks(model, cfg.sparsity, cfg.quant.skip)
    layers.check_weights(model, masks, "the trained model")
    layers.fix_masks(model)
    return layers.masks_to_meta(masks)
