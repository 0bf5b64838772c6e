"""Refusals that keep a run meaningful: checked before training starts and after each epoch.

A run that cannot take an optimizer step, has a class without samples, quantizes no layer
or trains into NaN would still finish and report numbers; these checks stop it instead,
with one line naming the problem and the fix.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hamq.data import DataBundle
from hamq.errors import HamqError
from hamq.quantization.modules import QuantConv2d, QuantLinear


def check_data(cfg: Any, data: DataBundle) -> None:
    """Refuse data that make training meaningless (before any epoch).

    * fewer training samples than ``data.batch_size``: the last partial batch is dropped, so
      no optimizer step would ever be taken;
    * fewer than two classes: a one-class classifier is always right;
    * a class without training samples, or without test samples.
    """
    n_train = int(data.train_x.shape[0])
    batch = cfg.data.batch_size
    if n_train == 0:
        raise HamqError(
            f"data set '{data.name}' has no training samples; check data.root "
            f"({cfg.data.root}) and the data set's layout (docs/data.md)"
        )
    if n_train < batch:
        raise HamqError(
            f"data.batch_size = {batch} is larger than the {n_train} training samples of data "
            f"set '{data.name}': no optimizer step would be taken; set data.batch_size to at "
            f"most {max(1, n_train)}"
            + (" or raise data.train_limit" if cfg.data.train_limit else "")
        )
    if data.num_classes < 2:
        raise HamqError(
            f"data set '{data.name}' has {data.num_classes} class(es) {data.classes}; a "
            "classifier needs at least two"
        )
    for split, labels in (("training", data.train_y), ("test", data.test_y)):
        counts = torch.bincount(labels.detach().cpu().long(), minlength=data.num_classes)
        empty = [data.classes[i] for i in range(data.num_classes) if int(counts[i]) == 0]
        if empty:
            raise HamqError(
                f"data set '{data.name}' has no {split} samples of class(es) "
                f"{', '.join(map(repr, empty[:5]))}{' ...' if len(empty) > 5 else ''}; every "
                f"class needs samples in both splits (add them, or remove the class)"
            )


def check_quantizable(model: nn.Module, cfg: Any) -> None:
    """Refuse a run in which no layer would be quantized (before the float stage)."""

    def converts(name: str, m: nn.Module) -> bool:  # as quantize_model decides
        if isinstance(m, QuantConv2d | QuantLinear):
            return True
        if name in cfg.quant.skip:
            return False
        return isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.padding_mode == "zeros")

    layers = [name for name, m in model.named_modules() if converts(name, m)]
    if not layers:
        raise HamqError(
            "no layer of the model would be quantized (quant.skip lists every Conv2d/Linear, "
            "or the model has none): there is nothing to map on a crossbar; shorten quant.skip"
        )


def nonfinite_tensors(model: nn.Module) -> list[str]:
    """Names of the model's floating-point parameters and buffers holding NaN or inf."""
    return [
        name
        for name, t in [*model.named_parameters(), *model.named_buffers()]
        if t.is_floating_point() and not bool(torch.isfinite(t).all())
    ]


def diverged(what: str, epoch: int, stage: str, cfg: Any) -> HamqError:
    """The error that stops a run whose loss or weights are no longer finite; ``what`` reads
    before "epoch N" ("the loss became nan at step 3 of")."""
    lam = cfg.regularizer.lambda_
    if stage == "qat" and cfg.train.qat_lr is not None:
        knobs = f"train.qat_lr ({cfg.train.qat_lr:g})"
    else:
        knobs = f"train.lr ({cfg.train.lr:g})"
    if cfg.regularizer.name != "none" and lam > 0:
        knobs += f" or regularizer.lambda ({lam:g})"
    return HamqError(
        f"training diverged: {what} epoch {epoch} ({stage} stage); nothing of this epoch "
        f"was saved (the checkpoint holds the last good epoch); lower {knobs} and train again "
        "into a new --out"
    )
