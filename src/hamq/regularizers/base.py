"""The regularizer interface and registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from hamq.config_base import Section
from hamq.errors import unknown_name
from hamq.hardware.spec import HardwareSpec

_TABLE_USERS = "hamming, bits, energy and columns"


class RegularizerConfig(Section):
    """Which regularizer, and how strongly.

    name: ``none``, ``hamming`` (HamQ), ``l1``, ``bits`` (twofold bit sparsity: the
        two's-complement bits of the weights), ``energy`` (modeled crossbar energy) or
        ``columns`` (group sparsity over the cells each ADC conversion reads, so whole
        cell columns of a row tile turn OFF; see ``regularizers/columns.py``). The
        network-level ``prune`` term is set in the ``sparsity`` section and adds to this one.
    lambda: weight of the term in the loss (>= 0).
    surrogate: for ``hamming`` and ``bits`` (``energy``: ``interp`` or ``envelope``):
        ``interp`` (exact Hamming weight of the stored words, after Gaussian smoothing,
        linearly interpolated between integers), ``envelope``
        (the table's lower envelope at ``slope`` per integer unit, interpolated; its
        minima are exact cheap codes) or ``sin`` (each bit as a sinusoid).
    smooth: for ``interp``: width (integer units) of the Gaussian that smooths the exact
        cost table before interpolation; 0 = the exact table (see surrogates.smooth_table).
    slope: for ``envelope``: cost (ON bits) of moving a weight one integer unit; smaller
        leaves fewer and cheaper codes to settle on (see surrogates.envelope_table).
    activity: for ``energy``: which row activity multiplies the row energies.
        ``measured`` (the default): a running average of each row's activity, measured on
        training batches and held constant in the penalty, so only the weights are
        trained against E_cb. ``batch``: each training batch's own input codes, through
        the lower envelope (at ``slope`` input bits per integer unit) of their exact
        activity (popcount for bit-serial inputs): the penalty is that batch's E_cb, and
        its gradient reaches the layer inputs too, so the network is trained to drive
        fewer rows as well as to store cheaper cells (``regularizers/energy.py``).
    """

    name: str = "none"
    lambda_: float = Field(0.0, ge=0, alias="lambda")
    surrogate: Literal["interp", "envelope", "sin"] = "envelope"
    smooth: float = Field(4.0, ge=0, le=64)
    slope: float = Field(0.1, gt=0, le=8)
    activity: Literal["measured", "batch"] = "measured"

    @model_validator(mode="after")
    def _fields_used(self) -> RegularizerConfig:
        # Never accept an option that would be silently ignored. Run folders store the whole
        # config, defaults included; hamq < 0.2 stored ``surrogate: interp`` (then the
        # default) for every regularizer, so that value stays accepted where it is unused.
        uses_table = self.name in ("hamming", "bits", "energy", "columns")
        if self.surrogate == "sin" and self.name not in ("hamming", "bits"):
            raise ValueError(
                f"regularizer.surrogate sin is used by hamming and bits only, not {self.name}"
            )
        if self.surrogate not in ("envelope", "interp") and not uses_table:
            raise ValueError(
                f"regularizer.surrogate is used by {_TABLE_USERS} only, not {self.name}"
            )
        if self.smooth != 4.0 and not uses_table:
            raise ValueError(f"regularizer.smooth is used by {_TABLE_USERS} only, not {self.name}")
        if self.slope != 0.1 and not uses_table:
            raise ValueError(f"regularizer.slope is used by {_TABLE_USERS} only, not {self.name}")
        if self.slope != 0.1 and self.surrogate != "envelope":
            raise ValueError(
                "regularizer.slope is used by surrogate envelope (the default) only, "
                f"not {self.surrogate}"
            )
        if self.activity != "measured" and self.name != "energy":
            raise ValueError(
                f"regularizer.activity is used by energy only, not {self.name}; drop it or "
                f"set regularizer.name=energy"
            )
        if self.smooth != 4.0 and self.surrogate != "interp":
            raise ValueError(
                "regularizer.smooth is used by surrogate interp only; set "
                f"regularizer.surrogate=interp, or use regularizer.slope with {self.surrogate}"
            )
        return self


class Regularizer(nn.Module):
    """A differentiable cost of a converted model's weights, already weighted by lambda.

    Subclasses implement :meth:`penalty` (unweighted); :meth:`attach` may install hooks
    (for example to measure row activity) before training starts.
    """

    def __init__(self, cfg: RegularizerConfig, hw: HardwareSpec) -> None:
        super().__init__()
        self.lam = cfg.lambda_
        self.hw = hw

    def attach(self, model: nn.Module) -> None:
        """Called once with the converted model before training."""

    def penalty(self, model: nn.Module) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, model: nn.Module) -> torch.Tensor:
        return self.lam * self.penalty(model)


class RegularizerSum(Regularizer):
    """Several terms added, each already weighted by its own lambda (e.g. ``bits`` and the
    network-level ``prune`` of twofold sparsity)."""

    def __init__(self, terms: list[Regularizer]) -> None:
        nn.Module.__init__(self)
        if len(terms) < 2:
            raise ValueError("a RegularizerSum needs at least two terms")
        self.terms = nn.ModuleList(terms)
        self.lam = 1.0
        self.hw = terms[0].hw

    def attach(self, model: nn.Module) -> None:
        for term in self.terms:
            term.attach(model)  # type: ignore[operator]

    def forward(self, model: nn.Module) -> torch.Tensor:
        return torch.stack([term(model) for term in self.terms]).sum()


RegularizerFactory = Callable[[RegularizerConfig, HardwareSpec], Regularizer]
REGULARIZERS: dict[str, RegularizerFactory] = {}


def register(name: str) -> Callable[[RegularizerFactory], RegularizerFactory]:
    """Class decorator adding a regularizer to the registry under ``name``."""

    def deco(factory: RegularizerFactory) -> RegularizerFactory:
        REGULARIZERS[name] = factory
        return factory

    return deco


def build_regularizer(cfg: RegularizerConfig, hw: HardwareSpec) -> Regularizer | None:
    """The regularizer named by ``cfg`` (None for ``none`` or lambda 0)."""
    if cfg.name == "none":
        return None
    if cfg.name not in REGULARIZERS:
        raise unknown_name("regularizer", cfg.name, ["none", *REGULARIZERS])
    if cfg.lambda_ == 0:
        return None
    return REGULARIZERS[cfg.name](cfg, hw)
