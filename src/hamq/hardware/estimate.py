"""Energy of a converted model: stream data through it (``estimate_energy``) or assume an
input-bit activity (``static_energy``), and apply the closed form of ``energy.py``.

Statistics come from forward pre-hooks on the quantized layers: each hook turns the layer's
input into the integer codes the rows see (``input_quant.to_int``) and adds their sums to
the layer's :class:`~hamq.hardware.energy.LayerSums`; nothing per sample is kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from hamq.errors import HamqError
from hamq.hardware.energy import (
    InputSchedule,
    LayerSums,
    batch_activity,
    expected_activity,
    input_schedule,
    layer_cost,
    skip_zero_conversions,
    static_skip_zero_conversions,
    window_row_sums,
)
from hamq.hardware.mapping import LayerMapping, map_layer
from hamq.hardware.report import EnergyReport, LayerEnergy
from hamq.hardware.spec import HardwareSpec, load_hardware
from hamq.quantization.convert import quantized_layers
from hamq.quantization.export import IntegerLayer, integer_layer
from hamq.quantization.modules import ActQuantizer, QuantLayer

DEFAULT_ACTIVITY = 0.5
"""Static mode's default probability that an input magnitude bit is 1: uniformly
distributed codes. Post-ReLU activations are usually sparser, so data mode is preferred."""

# Input vectors materialized at once when counting skip_zero conversions.
_SKIP_ZERO_CHUNK = 1 << 22


class LayerProbe:
    """Accumulates the data-dependent sums of one layer from its integer input codes."""

    def __init__(self, layer: IntegerLayer, mapping: LayerMapping, hw: HardwareSpec) -> None:
        self.layer = layer
        self.mapping = mapping
        self.schedule = input_schedule(layer.a_bits, layer.a_signed, hw.input.bits_per_cycle)
        self.tile_rows = hw.array.rows
        self.skip_zero = hw.adc.skip_zero
        self.row_e_pj = mapping.row_energy_pj(hw.tech.e_cell_pj)  # (G, K)
        self.sums = LayerSums(0.0, 0.0, 0.0, 0.0, 0.0 if self.skip_zero else None)
        self._device: torch.device | None = None
        self._levels: torch.Tensor | None = None  # cell levels, for skip_zero only

    def _to(self, device: torch.device) -> None:
        if self._device != device:
            self.row_e_pj = self.row_e_pj.to(device)
            self._device = device

    def add(self, codes: torch.Tensor) -> None:
        """Add one batch of integer input codes (``(B, C, H, W)`` or ``(B, ..., K)``)."""
        self._accumulate(codes.abs(), codes if self.skip_zero else None)

    def add_input(self, quant: ActQuantizer, x: torch.Tensor) -> None:
        """Add one batch of float layer inputs, quantized by the layer's input quantizer.

        The magnitudes are ``|input_quant.to_int(x)|`` computed in place in float and cast
        to uint8: the same values without int64 traffic, since this runs on every batch.
        """
        lo, hi = quant.int_range
        mag = torch.round(x.detach() / quant.scale().detach()).clamp_(lo, hi).abs_()
        codes = quant.to_int(x) if self.skip_zero else None
        self._accumulate(mag.to(torch.uint8), codes)

    def _accumulate(self, mag: torch.Tensor, codes: torch.Tensor | None) -> None:
        self._to(mag.device)
        lay = self.layer
        act, drv = batch_activity(mag, self.schedule)  # summed over the batch
        if lay.kind == "conv2d":
            geom = (lay.kernel_size, lay.stride, lay.padding, lay.dilation)
            act_rows = window_row_sums(act, *geom)
            driven = float(window_row_sums(drv, *geom).sum())
            vectors = mag.shape[0] * _conv_positions(lay, mag.shape[2:])
        else:
            k = mag.shape[-1]
            act_rows = act.reshape(-1, k).sum(0)
            driven = float(drv.sum())
            vectors = mag.numel() // k
        e_cb = float((act_rows.reshape(self.row_e_pj.shape) * self.row_e_pj).sum())
        conversions = None if codes is None else self._skip_zero(codes)
        self.sums = self.sums + LayerSums(mag.shape[0], vectors, e_cb, driven, conversions)

    def _skip_zero(self, codes: torch.Tensor) -> float:
        per_sample = max(
            1, codes[0].numel() * self.layer.kernel_size[0] * self.layer.kernel_size[1]
        )
        chunk = max(1, _SKIP_ZERO_CHUNK // per_sample)
        if self._levels is None or self._levels.device != codes.device:
            self._levels = self.mapping.levels.to(codes.device)
        levels = self._levels
        total = 0.0
        for i in range(0, codes.shape[0], chunk):
            vecs = self.layer.input_vectors(codes[i : i + chunk])
            total += skip_zero_conversions(vecs, levels, self.schedule, self.tile_rows)
        return total


def _conv_positions(layer: IntegerLayer, hw_in: tuple[int, ...] | torch.Size) -> int:
    """Output positions of a conv layer for an input of spatial size ``hw_in``."""
    n = 1
    for size, k, s, p, d in zip(
        hw_in, layer.kernel_size, layer.stride, layer.padding, layer.dilation, strict=True
    ):
        n *= (size + 2 * p - d * (k - 1) - 1) // s + 1
    return n


def _resolve_hw(hw: HardwareSpec | str | Path) -> HardwareSpec:
    return hw if isinstance(hw, HardwareSpec) else load_hardware(hw)


def _prepare(model: nn.Module, hw: HardwareSpec) -> list[tuple[str, QuantLayer, LayerProbe]]:
    layers = quantized_layers(model)
    if not layers:
        raise HamqError("the model has no quantized layers; convert it with quantize_model first")
    for name, layer in layers:
        if not bool(layer.input_quant.initialized):
            raise HamqError(
                f"layer '{name}': its input quantizer is not calibrated; run a forward pass "
                f"in train mode (or train) before estimating energy"
            )
    out = []
    for name, layer in layers:
        ilayer = integer_layer(name, layer)
        out.append((name, layer, LayerProbe(ilayer, map_layer(ilayer, hw), hw)))
    return out


def _batches(data: object, batch_size: int, samples: int | None) -> Iterator[torch.Tensor]:
    """Model-input batches from a DataBundle, a tensor, or an iterable of tensors / (x, y)."""
    if hasattr(data, "test_batches"):
        for x, _ in data.test_batches(batch_size, samples):  # type: ignore[attr-defined]
            yield x
        return
    if isinstance(data, torch.Tensor):
        n = data.shape[0] if samples is None else min(samples, data.shape[0])
        for i in range(0, n, batch_size):
            yield data[i : min(i + batch_size, n)]
        return
    if not isinstance(data, Iterable):
        raise HamqError(
            f"energy data must be a DataBundle, a tensor or an iterable of batches, "
            f"not {type(data).__name__}"
        )
    seen = 0
    for item in data:
        x = item[0] if isinstance(item, tuple | list) else item
        if samples is not None:
            x = x[: samples - seen]
        if x.shape[0] == 0:
            return
        seen += x.shape[0]
        yield x


def _layer_energy(probe: LayerProbe, sums: LayerSums, hw: HardwareSpec) -> LayerEnergy:
    m, lay = probe.mapping, probe.layer
    cost = layer_cost(m, probe.schedule, sums, hw)
    cells_on = m.cells_on
    return LayerEnergy(
        name=lay.name,
        kind=lay.kind,
        groups=m.groups,
        rows=m.rows,
        cols=m.cols,
        tiles=m.tiles,
        row_tiles=m.row_tiles,
        col_tiles=m.col_tiles,
        utilization=m.utilization,
        cells_on=cells_on,
        on_fraction=cells_on / m.cells_used,
        input_cycles=probe.schedule.cycles,
        vectors=sums.vectors / sums.samples,
        macs=cost.macs,
        conversions=cost.conversions,
        cycles=cost.cycles,
        latency_s=cost.latency_s,
        e_cb_j=cost.e_cb_j,
        e_adc_j=cost.e_adc_j,
        e_periph_j=cost.e_periph_j,
    )


def layer_energy(
    layer: IntegerLayer, codes: torch.Tensor, hw: HardwareSpec | str | Path
) -> LayerEnergy:
    """Energy per inference of one exported layer given its integer input codes.

    Args:
        layer: an exported layer (``hamq.quantization.export.integer_layer``).
        codes: int64 input codes of ``B`` inferences, ``(B, C, H, W)`` or ``(B, ..., K)``.
    """
    hw = _resolve_hw(hw)
    probe = LayerProbe(layer, map_layer(layer, hw), hw)
    probe.add(codes)
    return _layer_energy(probe, probe.sums, hw)


def estimate_energy(
    model: nn.Module,
    data: object,
    hw: HardwareSpec | str | Path,
    samples: int | None = None,
    batch_size: int = 256,
) -> EnergyReport:
    """Exact, data-dependent energy per inference of a converted, calibrated model.

    Args:
        model: output of ``quantize_model`` after calibration or training.
        data: a ``DataBundle`` (its test split), a tensor of model inputs ``(B, ...)``, or
            an iterable of input tensors or ``(x, y)`` batches.
        hw: a ``HardwareSpec``, a preset name or a YAML file.
        samples: use at most this many samples (None: all).
        batch_size: batch size for a DataBundle or a tensor.
    Returns:
        an :class:`EnergyReport` in ``data`` mode, energies per inference (sums / samples).
    """
    hw = _resolve_hw(hw)
    if samples is not None and samples < 1:
        raise HamqError(f"samples = {samples}: must be at least 1")
    if batch_size < 1:
        raise HamqError(f"batch_size = {batch_size}: must be at least 1")
    probes = _prepare(model, hw)
    device = next(model.parameters()).device
    handles = []
    for _, layer, probe in probes:

        def hook(mod: nn.Module, args: tuple[torch.Tensor, ...], probe: LayerProbe = probe) -> None:
            probe.add_input(mod.input_quant, args[0])  # type: ignore[arg-type]

        handles.append(layer.register_forward_pre_hook(hook))
    was_training = model.training
    model.eval()
    n = 0
    try:
        with torch.no_grad():
            for x in _batches(data, batch_size, samples):
                model(x.to(device))
                n += x.shape[0]
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if n == 0:
        raise HamqError("no samples to estimate energy on: the data is empty")
    layers = [_layer_energy(p, replace(p.sums, samples=n), hw) for _, _, p in probes]
    return EnergyReport(hardware=hw.name, mode="data", samples=n, layers=layers)


def static_energy(
    model: nn.Module,
    hw: HardwareSpec | str | Path,
    input_shape: tuple[int, ...],
    activity: float = DEFAULT_ACTIVITY,
) -> EnergyReport:
    """Energy per inference without data: every input magnitude bit is 1 with probability
    ``activity``, independently (zero padding stays zero).

    Args:
        input_shape: one model input without the batch dimension, e.g. ``(1, 49, 10)``.
    """
    hw = _resolve_hw(hw)
    if not 0.0 <= activity <= 1.0:
        raise HamqError(f"activity = {activity}: must be a probability in 0..1")
    probes = _prepare(model, hw)
    device = next(model.parameters()).device
    shapes: dict[str, tuple[int, ...]] = {}
    handles = [
        layer.register_forward_pre_hook(
            lambda mod, args, name=name: shapes.__setitem__(name, tuple(args[0].shape))
        )
        for name, layer, _ in probes
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    layers = []
    for name, _, probe in probes:
        sums = _static_sums(probe, shapes[name], activity)
        layers.append(_layer_energy(probe, sums, hw))
    return EnergyReport(
        hardware=hw.name, mode="static", samples=1, layers=layers, activity=activity
    )


def _static_sums(probe: LayerProbe, shape: tuple[int, ...], p_bit: float) -> LayerSums:
    """Expected sums of one inference (input of ``shape``, batch 1) at bit activity p."""
    lay, g, sched = probe.layer, probe.mapping.groups, probe.schedule
    act, drv = expected_activity(sched, p_bit)
    row_e = probe.row_e_pj.cpu()
    if lay.kind == "conv2d":
        geom = (lay.kernel_size, lay.stride, lay.padding, lay.dilation)
        rows = window_row_sums(torch.ones(shape[1:], dtype=torch.float64), *geom)
        e_cb = act * float((rows.reshape(row_e.shape) * row_e).sum())
        driven = drv * float(rows.sum())
        vectors = float(_conv_positions(lay, shape[2:]))
    else:
        vectors = float(torch.Size(shape[1:-1]).numel())
        e_cb = vectors * act * float(row_e.sum())
        driven = vectors * drv * probe.mapping.rows * g
    conversions = None
    if probe.skip_zero:
        conversions = vectors * static_skip_zero_conversions(
            probe.mapping.levels, sched, probe.tile_rows, p_bit
        )
    return LayerSums(1.0, vectors, e_cb, driven, conversions)


__all__ = [
    "DEFAULT_ACTIVITY",
    "InputSchedule",
    "LayerProbe",
    "estimate_energy",
    "layer_energy",
    "static_energy",
]
