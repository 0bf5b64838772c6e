"""Quantized layers: Conv2d (grouped and depthwise too) and Linear with fake-quantized
weights and a quantizer on their input, which is exactly what a crossbar sees: the input
integers drive the rows, the weight integers are stored in the cells."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from hamq.quantization import functional as qf
from hamq.quantization.config import QuantConfig

if TYPE_CHECKING:
    from hamq.sparsity.masks import RowLayout


class ActQuantizer(nn.Module):
    """Quantizer of a layer's input activations.

    Its sign mode is set from the first batch it sees (signed if any value is negative) and
    kept from then on; ``calibrated`` keeps a running max of |x|, ``learned`` trains its
    step size (LSQ). Buffers and parameters live in the state dict, so a checkpoint restores
    them exactly.
    """

    def __init__(self, bits: int, mode: str = "calibrated", momentum: float = 0.1) -> None:
        super().__init__()
        self.bits = bits
        self.mode = mode
        self.momentum = momentum
        self.register_buffer("initialized", torch.tensor(False))
        self.register_buffer("signed", torch.tensor(False))
        self.register_buffer("running_amax", torch.tensor(1.0))
        self.step = nn.Parameter(torch.tensor(1.0), requires_grad=mode == "learned")

    @property
    def int_range(self) -> tuple[int, int]:
        return qf.act_range(self.bits, bool(self.signed))

    def _initialize(self, x: torch.Tensor) -> None:
        x = x.detach()
        with torch.no_grad():
            self.signed.fill_(bool((x < 0).any()))
            amax = x.abs().amax().clamp_min(1e-8)
            self.running_amax.copy_(amax)
            hi = self.int_range[1]
            # LSQ initial step: 2 mean|x| / sqrt(Q_p).
            self.step.copy_((2 * x.abs().mean() / math.sqrt(hi)).clamp_min(1e-8))
            self.initialized.fill_(True)

    def scale(self) -> torch.Tensor:
        """Step size (float scalar tensor; carries a gradient in ``learned`` mode)."""
        if self.mode == "learned":
            return self.step.abs() + 1e-8
        return self.running_amax / self.int_range[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not bool(self.initialized):
            self._initialize(x)
        elif self.training and self.mode == "calibrated":
            with torch.no_grad():
                # The input may be bf16 (autocast) or float64 while the buffer is float32;
                # lerp_ needs matching dtypes.
                amax = x.detach().abs().amax().to(self.running_amax.dtype)
                self.running_amax.lerp_(amax, self.momentum)
        lo, hi = self.int_range
        scale = self.scale()
        if self.mode == "learned":
            scale = qf.grad_scale(scale, 1.0 / math.sqrt(x.numel() * hi))
        return qf.fake_quant(x, scale, lo, hi)

    def to_int(self, x: torch.Tensor) -> torch.Tensor:
        """Integer codes of ``x`` (int64), as applied to the crossbar rows."""
        lo, hi = self.int_range
        return qf.quantize_int(x, self.scale(), lo, hi)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, mode={self.mode}"


class _QuantWeightMixin:
    """Weight quantization shared by QuantConv2d and QuantLinear."""

    weight: nn.Parameter
    w_bits: int
    per_channel: bool
    dynamic: bool
    _range_code: int | None
    weight_mask: torch.Tensor | None
    row_layout: RowLayout | None
    mask_fixed: bool
    training: bool

    def _setup(self, cfg: QuantConfig) -> None:
        self.w_bits = cfg.w_bits
        self.per_channel = cfg.granularity == "per_channel"
        self.dynamic = cfg.scheme == "dynamic"
        self._range_code = cfg.range_code
        self.input_quant = ActQuantizer(cfg.a_bits, cfg.act_range)
        # LFSR pruning (hamq.sparsity): the kept-weight mask (bool, the weight's shape) is
        # rebuilt from (polynomial, seed, sparsity) and never saved, hence non-persistent;
        # it acts on the weight only once fixed (``mask_fixed``).
        self.register_buffer("weight_mask", None, persistent=False)
        # A row-granular mask's hamq.sparsity.masks.RowLayout (kept rows in LFSR order and
        # the register clocks to regenerate them): the rows the index-free layout stores
        # (hardware/mapping.py); None: dense layout.
        self.row_layout = None
        self.mask_fixed = False
        # Noise-aware training (hamq.training.analog): called with the integer weights in
        # training forwards, returns the noise to add in integer units (not saved).
        self.weight_noise: Callable[[torch.Tensor, int], torch.Tensor] | None = None

    @property
    def q_max(self) -> int:
        return 2 ** (self.w_bits - 1) - 1

    @property
    def range_code(self) -> int:
        """The code of the largest |weight| (``quant.range_code``, default ``q_max``)."""
        return self.q_max if self._range_code is None else self._range_code

    def masked_weight(self) -> torch.Tensor:
        """The weight, times its fixed pruning mask if it has one (so pruned weights are 0
        in every forward and get no gradient)."""
        mask = self.weight_mask
        if self.mask_fixed and mask is not None:
            return self.weight * mask
        return self.weight

    def weight_scale(self) -> torch.Tensor:
        """Weight step size, broadcastable to the weight (no gradient)."""
        return qf.weight_scale(self.masked_weight(), self.w_bits, self.per_channel, self.dynamic,
                               self.range_code)  # fmt: skip

    def weight_int(self) -> torch.Tensor:
        """Integer weights (int64), the values stored on the crossbar."""
        return qf.quantize_int(self.masked_weight(), self.weight_scale(), -self.q_max, self.q_max)

    def weight_continuous(self) -> torch.Tensor:
        """``w / scale`` clamped to the integer range, with gradient: what regularizers see."""
        return torch.clamp(self.masked_weight() / self.weight_scale(), -self.q_max, self.q_max)

    def weight_fake(self) -> torch.Tensor:
        """The fake-quantized weight; in training with ``weight_noise`` set, plus the noise
        the arrays would add (a constant for the backward pass)."""
        w = self.masked_weight()
        scale = self.weight_scale()
        out = qf.fake_quant(w, scale, -self.q_max, self.q_max)
        if self.weight_noise is not None and self.training:
            codes = qf.quantize_int(w.detach(), scale, -self.q_max, self.q_max)
            out = out + self.weight_noise(codes, self.w_bits) * scale
        return out


class QuantConv2d(_QuantWeightMixin, nn.Conv2d):
    """Conv2d with fake-quantized weights and input (grouped and depthwise included)."""

    @classmethod
    def from_float(cls, conv: nn.Conv2d, cfg: QuantConfig) -> QuantConv2d:
        if conv.padding_mode != "zeros":
            raise ValueError(f"padding_mode '{conv.padding_mode}' is not supported (zeros only)")
        new = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,  # type: ignore[arg-type]
            stride=conv.stride,  # type: ignore[arg-type]
            padding=conv.padding,  # type: ignore[arg-type]
            dilation=conv.dilation,  # type: ignore[arg-type]
            groups=conv.groups,
            bias=conv.bias is not None,
            device=conv.weight.device,
            dtype=conv.weight.dtype,
        )
        new._setup(cfg)
        new.input_quant.to(conv.weight.device)
        with torch.no_grad():
            new.weight.copy_(conv.weight)
            if conv.bias is not None:
                new.bias.copy_(conv.bias)  # type: ignore[union-attr]
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(
            self.input_quant(x),
            self.weight_fake(),
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
        )


class QuantLinear(_QuantWeightMixin, nn.Linear):
    """Linear with fake-quantized weights and input."""

    @classmethod
    def from_float(cls, lin: nn.Linear, cfg: QuantConfig) -> QuantLinear:
        new = cls(
            lin.in_features,
            lin.out_features,
            bias=lin.bias is not None,
            device=lin.weight.device,
            dtype=lin.weight.dtype,
        )
        new._setup(cfg)
        new.input_quant.to(lin.weight.device)
        with torch.no_grad():
            new.weight.copy_(lin.weight)
            if lin.bias is not None:
                new.bias.copy_(lin.bias)  # type: ignore[union-attr]
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.input_quant(x), self.weight_fake(), self.bias)


QuantLayer = QuantConv2d | QuantLinear
