"""Exact export of a converted model's integers and scales, and the crossbar view of a layer.

For a quantized layer with input codes ``x_int`` (scale ``s_x``) and weight codes ``w_int``
(per-output-channel scale ``s_w[c]``), the QAT forward equals::

    y[c] = s_x * s_w[c] * (x_int (*) w_int)[c] + bias[c]

where ``(*)`` is the integer convolution (or matrix product). On a crossbar the layer unrolls
into ``groups`` blocks of ``K = C_in/groups * kh * kw`` rows by ``N = C_out/groups`` columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hamq.quantization.convert import quantized_layers
from hamq.quantization.modules import QuantConv2d, QuantLayer


@dataclass(frozen=True)
class IntegerLayer:
    """The integers and scales of one quantized layer.

    Attributes:
        name: module name in the model.
        kind: ``conv2d`` or ``linear``.
        w_int: int64 weight codes, ``(C_out, C_in/groups, kh, kw)`` or ``(C_out, C_in)``.
        w_scale: float weight step per output channel, ``(C_out,)``.
        w_bits: weight bits.
        a_bits, a_signed, a_scale: input quantizer bits, sign mode, step size.
        bias: float ``(C_out,)`` or None.
        stride, padding, dilation, groups: convolution geometry (1/0/1/1 for linear).
    """

    name: str
    kind: str
    w_int: torch.Tensor
    w_scale: torch.Tensor
    w_bits: int
    a_bits: int
    a_signed: bool
    a_scale: float
    bias: torch.Tensor | None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    @property
    def kernel_size(self) -> tuple[int, int]:
        return tuple(self.w_int.shape[2:]) if self.kind == "conv2d" else (1, 1)  # type: ignore[return-value]

    @property
    def rows(self) -> int:
        """Crossbar rows of one group block: K = C_in/groups * kh * kw."""
        return int(self.w_int[0].numel())

    @property
    def cols(self) -> int:
        """Logical columns (weights) of one group block: N = C_out/groups."""
        return self.w_int.shape[0] // self.groups

    def matrices(self) -> torch.Tensor:
        """Integer weight matrices, one per group: ``(groups, K, N)``."""
        g = self.groups
        w = self.w_int.reshape(g, self.cols, self.rows)
        return w.transpose(1, 2).contiguous()

    def input_vectors(self, x_int: torch.Tensor) -> torch.Tensor:
        """Row input vectors of a batch of input codes: ``(groups, V, K)``.

        ``V`` = batch * output positions for a convolution, batch (times any leading dims)
        for a linear layer. Zero padding enters as zero inputs, as on the array.
        """
        if self.kind == "linear":
            return x_int.reshape(1, -1, x_int.shape[-1])
        cols = F.unfold(
            x_int.to(torch.float64),
            self.kernel_size,
            dilation=self.dilation,
            padding=self.padding,
            stride=self.stride,
        )  # (B, C_in*kh*kw, L), channel-major
        b, _, length = cols.shape
        cols = cols.reshape(b, self.groups, self.rows, length).permute(1, 0, 3, 2)
        return cols.reshape(self.groups, b * length, self.rows).round().to(torch.int64)

    def forward_from_integers(self, x_int: torch.Tensor) -> torch.Tensor:
        """The layer output computed from the exported integers and scales (float64)."""
        x = x_int.to(torch.float64)
        w = self.w_int.to(torch.float64)
        if self.kind == "conv2d":
            acc = F.conv2d(x, w, None, self.stride, self.padding, self.dilation, self.groups)
            shape = (1, -1, 1, 1)
        else:
            acc = F.linear(x, w)
            shape = (1,) * (acc.dim() - 1) + (-1,)
        y = acc * self.a_scale * self.w_scale.to(torch.float64).reshape(shape)
        if self.bias is not None:
            y = y + self.bias.to(torch.float64).reshape(shape)
        return y


def integer_layer(name: str, layer: QuantLayer) -> IntegerLayer:
    """Export one quantized layer (its input quantizer must have been calibrated)."""
    scale = layer.weight_scale().detach().reshape(-1)
    if scale.numel() == 1:
        scale = scale.expand(layer.weight.shape[0])
    common = dict(
        name=name,
        w_int=layer.weight_int().detach().cpu(),
        w_scale=scale.detach().cpu().clone(),
        w_bits=layer.w_bits,
        a_bits=layer.input_quant.bits,
        a_signed=bool(layer.input_quant.signed),
        a_scale=float(layer.input_quant.scale().detach()),
        bias=None if layer.bias is None else layer.bias.detach().cpu().clone(),
    )
    if isinstance(layer, QuantConv2d):
        return IntegerLayer(
            kind="conv2d",
            stride=tuple(layer.stride),  # type: ignore[arg-type]
            padding=tuple(layer.padding),  # type: ignore[arg-type]
            dilation=tuple(layer.dilation),  # type: ignore[arg-type]
            groups=layer.groups,
            **common,  # type: ignore[arg-type]
        )
    return IntegerLayer(kind="linear", **common)  # type: ignore[arg-type]


def export_integer_layers(model: nn.Module) -> list[IntegerLayer]:
    """Integer weights and scales of every quantized layer of a converted model."""
    return [integer_layer(n, m) for n, m in quantized_layers(model)]


@contextmanager
def capture_input_codes(model: nn.Module) -> Iterator[dict[str, list[torch.Tensor]]]:
    """Record the integer input codes each quantized layer receives while the block runs.

    Yields a dict ``name -> list of int64 tensors`` (one per forward call). Meant for small
    batches (tests, golden checks); the energy estimator streams statistics instead.
    """
    captured: dict[str, list[torch.Tensor]] = {n: [] for n, _ in quantized_layers(model)}
    handles = []
    for name, layer in quantized_layers(model):

        def hook(mod: nn.Module, args: tuple[torch.Tensor, ...], name: str = name) -> None:
            captured[name].append(mod.input_quant.to_int(args[0]).detach().cpu())  # type: ignore[union-attr]

        handles.append(layer.register_forward_pre_hook(hook))
    try:
        yield captured
    finally:
        for h in handles:
            h.remove()
