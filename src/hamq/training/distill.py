"""Knowledge distillation in QAT: the float model a QAT stage starts from teaches it.

The quantized (and regularized, and pruned) student is trained on
``(1 - distill) * CE(student, labels) + distill * kd_loss(student, teacher, T)`` where the
teacher is the float model the stage was converted from, frozen in eval mode (Hinton,
Vinyals & Dean 2015; used for QAT by e.g. Mishra & Marr, "Apprentice", ICLR 2018, and
Polino et al., "Model compression via distillation and quantization", ICLR 2018). Its
soft targets say which wrong classes are near, which a constrained student (few ON
cells, few rows) recovers faster from than from one-hot labels alone.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hamq.errors import HamqError
from hamq.training import checkpoint as ckpt


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T**2 * KL(softmax(teacher / T) || softmax(student / T))``, mean over the batch.

    Args:
        student, teacher: logits ``(B, classes)``; the teacher's carry no gradient.
        temperature: ``T > 0``; the ``T**2`` keeps the gradient's scale independent of it.
    Returns:
        a 0-d float32 tensor (0 when the two distributions are the same).
    """
    s = F.log_softmax(student.float() / temperature, dim=1)
    t = F.log_softmax(teacher.detach().float() / temperature, dim=1)
    return F.kl_div(s, t, log_target=True, reduction="batchmean") * temperature**2


def load_teacher(model: nn.Module, path: Path, device: torch.device) -> nn.Module:
    """``model`` (a fresh float model of the run's architecture) with the float weights at
    ``path``, frozen and in eval mode, on ``device``."""
    tensors, _ = ckpt.load_checkpoint(path)
    try:
        model.load_state_dict({k: v.to(device) for k, v in tensors.items()}, strict=True)
    except RuntimeError as err:
        detail = " ".join(str(err).split())[:200]
        raise HamqError(f"'{path}' does not hold this run's float model ({detail})") from None
    model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
