"""Energy of a converted model: stream data through it (``estimate_energy``) or assume an
input-bit activity (``static_energy``). A layer's energy is computed in ``energy.py``
(``layer_cost``); this module runs the model and collects what that needs.

One :class:`LayerProbe` per quantized layer collects the additive sums of every batch of
integer input codes its rows see (``energy.batch_sums``; nothing per sample is kept) and
the layer's mapping. Both come from the model's own quantized forward: while it runs
under ``_probing``

- a calibrated input quantizer's forward is replaced by one that computes the codes once
  (``energy.quantize_codes``), hands them to the probe and returns ``codes * scale``;
- the layer's ``weight_fake`` is replaced by one that quantizes the weights once, maps the
  integers on the first call (``mapping.map_weights``) and returns ``codes * scale``.

Both return the values of the fake-quantized forward they stand in for (a zero may lose
its sign; ``tests/test_energy_model.py`` checks that the outputs are equal), so counting
needs no second quantization of every activation and weight. A quantizer with a learned
step (LSQ) keeps its forward and a forward pre-hook quantizes its input again with
``scale()``, as ``to_int`` does. Everything is put back when the block ends, on error too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path

import torch
from torch import nn

from hamq.errors import HamqError
from hamq.hardware.crossbar import lossless_bits
from hamq.hardware.energy import (
    InputSchedule,
    LayerEnergy,
    LayerSums,
    batch_sums,
    expected_sums,
    input_schedule,
    input_vectors,
    layer_cost,
    quantize_codes,
    skip_zero_conversions,
    static_skip_zero_conversions,
)
from hamq.hardware.mapping import (
    ConvGeometry,
    LayerMapping,
    check_storage,
    conv_geometry,
    map_weights,
)
from hamq.hardware.report import EnergyReport
from hamq.hardware.spec import HardwareSpec, load_hardware
from hamq.quantization.convert import quantized_layers
from hamq.quantization.export import IntegerLayer
from hamq.quantization.modules import ActQuantizer, QuantLayer
from hamq.sparsity.masks import RowLayout

DEFAULT_ACTIVITY = 0.5
"""Static mode's default probability that an input magnitude bit is 1: uniformly
distributed codes. Post-ReLU activations are usually sparser, so data mode is preferred."""

# Input vectors materialized at once when counting skip_zero conversions.
_SKIP_ZERO_CHUNK = 1 << 22


class LayerProbe:
    """Collects what one layer's report row needs: the additive sums of the integer input
    codes its rows see (:class:`~hamq.hardware.energy.LayerSums`), the shape of one sample
    of its input, and its mapping once its integer weights are known.

    Args:
        name: the layer's name; conv: its conv geometry (None: linear); groups: group
            blocks; rows: crossbar rows of one block, K; w_bits: weight bits.
    """

    def __init__(
        self,
        name: str,
        conv: ConvGeometry | None,
        groups: int,
        rows: int,
        w_bits: int,
        schedule: InputSchedule,
        hw: HardwareSpec,
        row_layout: RowLayout | None = None,
    ) -> None:
        self.name, self.conv, self.groups, self.w_bits = name, conv, groups, w_bits
        self.schedule = schedule
        self.hw = hw
        self.row_layout = row_layout  # the index-free layout's stored rows (None: dense)
        self.kept_rows = None if row_layout is None else row_layout.rows
        self.mapping: LayerMapping | None = None
        self.sample_shape: tuple[int, ...] | None = None
        stored = rows if row_layout is None else row_layout.rows.numel()
        zeros = torch.zeros(groups, stored, dtype=torch.float64)
        self.sums = LayerSums(0.0, 0.0, zeros, 0.0, 0.0 if hw.adc.skip_zero else None)
        self._levels: torch.Tensor | None = None  # cell levels, for skip_zero only

    def set_weights(self, codes: torch.Tensor) -> None:
        """Map the layer's integer weights (``(C_out, ...)``, any integer dtype)."""
        self.mapping = map_weights(self.name, codes.cpu(), self.conv, self.groups,
                                   self.w_bits, self.hw, self.row_layout)  # fmt: skip

    def add(self, codes: torch.Tensor, magnitudes: torch.Tensor | None = None) -> None:
        """Add one batch of integer input codes, ``(B, C, H, W)`` or ``(B, ..., K)``
        (integer or integer-valued float); ``magnitudes``: ``|codes|`` as uint8, when at
        hand (the signs matter only for ``adc.skip_zero``, which needs the weights first)."""
        mag = codes if magnitudes is None else magnitudes
        sums = batch_sums(mag, self.schedule, self.conv, self.groups, self.kept_rows)
        if self.hw.adc.skip_zero:
            sums = replace(sums, conversions=self._skip_zero(codes))
        self.sums = self.sums + sums
        self.sample_shape = tuple(codes.shape[1:])

    def _skip_zero(self, codes: torch.Tensor) -> float:
        m = self.mapping
        if m is None:
            raise RuntimeError("skip_zero conversions need the layer's weights: set_weights first")
        taps = 1 if m.conv is None else m.conv.kernel_size[0] * m.conv.kernel_size[1]
        chunk = max(1, _SKIP_ZERO_CHUNK // max(1, codes[0].numel() * taps))
        if self._levels is None or self._levels.device != codes.device:
            self._levels = m.levels.to(codes.device)
        total = 0.0
        for i in range(0, codes.shape[0], chunk):
            vecs = input_vectors(codes[i : i + chunk], m)
            total += skip_zero_conversions(vecs, self._levels, self.schedule, m.tile_rows)
        return total

    def report(self, sums: LayerSums, adc_bits: dict[str, int] | None = None) -> LayerEnergy:
        """The layer's report row for ``sums`` (``energy.layer_cost``), its conversions
        charged at :func:`layer_adc_bits`."""
        if self.mapping is None:
            raise RuntimeError(f"layer '{self.name}': no weights mapped")
        bits = layer_adc_bits(self.hw, self.mapping, self.schedule, adc_bits)
        return layer_cost(self.mapping, self.schedule, sums, self.hw, bits)


def layer_adc_bits(
    hw: HardwareSpec,
    mapping: LayerMapping,
    schedule: InputSchedule,
    planned: dict[str, int] | None = None,
) -> int:
    """The ADC bits a layer's conversions cost: its entry in ``planned`` (an ADC plan,
    ``simulate.plan_adc``), else by its policy: ``full``, the lossless bits of its largest
    bitline sum; ``fixed``, its bits; ``optimized`` needs a plan (calibration data)."""
    if planned is not None and mapping.name in planned:
        return planned[mapping.name]
    policy, bits = hw.adc_policy(mapping.name)
    if policy == "full":
        top = int(mapping.tile_column_sums.max()) * (2**schedule.bits_per_cycle - 1)
        return lossless_bits(top)
    if policy == "optimized":
        raise HamqError(
            f"layer '{mapping.name}': adc.policy = optimized chooses its bits on calibration "
            f"data; measure with an ADC plan (hamq energy RUN uses the run's validation "
            f"split) or set adc.policy to full or fixed"
        )
    return bits


def _quantize_and_probe(quant: ActQuantizer, probe: LayerProbe, x: torch.Tensor) -> torch.Tensor:
    """A calibrated quantizer's eval forward, ``fake_quant(x, scale, lo, hi)``, that also
    hands the codes to ``probe``: one quantization serves both."""
    lo, hi = quant.int_range
    scale = quant.scale()
    codes, mag = quantize_codes(x, scale, lo, hi)
    probe.add(codes, mag)
    return codes.mul_(scale)


def _probe_input(probe: LayerProbe, layer: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
    """Forward pre-hook: quantize the layer's input as ``to_int`` does and probe it."""
    quant: ActQuantizer = layer.input_quant  # type: ignore[assignment]
    lo, hi = quant.int_range
    codes, mag = quantize_codes(args[0].detach(), quant.scale().detach(), lo, hi)
    probe.add(codes, mag)


def _weight_codes(layer: QuantLayer, scale: torch.Tensor | None = None) -> torch.Tensor:
    """``clamp(round(w / scale))`` of ``weight_int()`` as a new float tensor."""
    q = layer.q_max
    scale = layer.weight_scale() if scale is None else scale
    return torch.div(layer.weight.detach(), scale).clamp_(-q, q).round_()


def _fake_weights_and_probe(layer: QuantLayer, probe: LayerProbe) -> torch.Tensor:
    """The layer's ``weight_fake()``, ``fake_quant(w, scale, -q_max, q_max)``, that also maps
    its integer weights the first time: the forward's own weight quantization serves both
    (ResNet-18 has 11M weights)."""
    scale = layer.weight_scale()
    codes = _weight_codes(layer, scale)
    if probe.mapping is None:
        probe.set_weights(codes.to(torch.int8))
    return codes.mul_(scale)


@contextmanager
def _probing(probes: list[tuple[str, QuantLayer, LayerProbe]]) -> Iterator[None]:
    """While the block runs (eval mode, no grad), feed every layer's input codes and
    integer weights to its probe."""
    patched: list[tuple[nn.Module, str]] = []
    handles = []
    try:
        for _, layer, probe in probes:
            layer.weight_fake = partial(_fake_weights_and_probe, layer, probe)  # type: ignore[method-assign]
            patched.append((layer, "weight_fake"))
            quant = layer.input_quant
            if quant.mode == "calibrated":
                quant.forward = partial(_quantize_and_probe, quant, probe)  # type: ignore[method-assign]
                patched.append((quant, "forward"))
            else:
                handles.append(layer.register_forward_pre_hook(partial(_probe_input, probe)))
        yield
    finally:
        for module, attr in patched:
            delattr(module, attr)
        for h in handles:
            h.remove()
        for _, layer, probe in probes:
            if probe.mapping is None:  # the layer did not run
                probe.set_weights(_weight_codes(layer).to(torch.int8))


def _resolve_hw(hw: HardwareSpec | str | Path) -> HardwareSpec:
    return hw if isinstance(hw, HardwareSpec) else load_hardware(hw)


def calibrated_layers(model: nn.Module, purpose: str) -> list[tuple[str, QuantLayer]]:
    """The quantized layers of a converted model whose input quantizers are calibrated;
    raises :class:`HamqError` (naming the layer) before ``purpose`` otherwise."""
    layers = quantized_layers(model)
    if not layers:
        raise HamqError("the model has no quantized layers; convert it with quantize_model first")
    for name, layer in layers:
        if not bool(layer.input_quant.initialized):
            raise HamqError(
                f"layer '{name}': its input quantizer is not calibrated; run a forward pass "
                f"in train mode (or train) before {purpose}"
            )
    return layers


def _prepare(model: nn.Module, hw: HardwareSpec) -> list[tuple[str, QuantLayer, LayerProbe]]:
    layers = calibrated_layers(model, "estimating energy")
    out = []
    for name, layer in layers:
        check_storage(name, layer.w_bits, hw)
        conv = conv_geometry(layer)
        groups = layer.groups if isinstance(layer, nn.Conv2d) else 1
        q = layer.input_quant
        schedule = input_schedule(q.bits, bool(q.signed), hw.input.bits_per_cycle)
        probe = LayerProbe(name, conv, groups, layer.weight[0].numel(), layer.w_bits,
                           schedule, hw, layer.row_layout)  # fmt: skip
        if hw.adc.skip_zero:  # counting skipped conversions needs the cells from batch 1
            probe.set_weights(_weight_codes(layer).to(torch.int8))
        out.append((name, layer, probe))
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


def layer_energy(
    layer: IntegerLayer, codes: torch.Tensor, hw: HardwareSpec | str | Path
) -> LayerEnergy:
    """Energy per inference of one exported layer given its integer input codes.

    Args:
        layer: an exported layer (``hamq.quantization.export.integer_layer``).
        codes: int64 input codes of ``B`` inferences, ``(B, C, H, W)`` or ``(B, ..., K)``.
    """
    hw = _resolve_hw(hw)
    schedule = input_schedule(layer.a_bits, layer.a_signed, hw.input.bits_per_cycle)
    probe = LayerProbe(layer.name, conv_geometry(layer), layer.groups, layer.rows,
                       layer.w_bits, schedule, hw)  # fmt: skip
    probe.set_weights(layer.w_int)
    probe.add(codes)
    return probe.report(probe.sums)


def estimate_energy(
    model: nn.Module,
    data: object,
    hw: HardwareSpec | str | Path,
    samples: int | None = None,
    batch_size: int = 256,
    adc_bits: dict[str, int] | None = None,
) -> EnergyReport:
    """Exact, data-dependent energy per inference of a converted, calibrated model.

    Args:
        model: output of ``quantize_model`` after calibration or training.
        data: a ``DataBundle`` (its test split), a tensor of model inputs ``(B, ...)``, or
            an iterable of input tensors or ``(x, y)`` batches.
        hw: a ``HardwareSpec``, a preset name or a YAML file.
        samples: use at most this many samples (None: all).
        batch_size: batch size for a DataBundle or a tensor.
        adc_bits: ADC bits per layer name (an ADC plan); other layers by their policy.
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
    was_training = model.training
    model.eval()
    n = 0
    try:
        with _probing(probes), torch.no_grad():
            for x in _batches(data, batch_size, samples):
                model(x.to(device))
                n += x.shape[0]
    finally:
        model.train(was_training)
    if n == 0:
        raise HamqError("no samples to estimate energy on: the data is empty")
    layers = [p.report(replace(p.sums, samples=n), adc_bits) for _, _, p in probes]
    return EnergyReport(hardware=hw.name, mode="data", samples=n, layers=layers)


def static_energy(
    model: nn.Module,
    hw: HardwareSpec | str | Path,
    input_shape: tuple[int, ...],
    activity: float = DEFAULT_ACTIVITY,
    adc_bits: dict[str, int] | None = None,
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
    was_training = model.training
    model.eval()
    try:  # one forward for the weights and the shape of every layer's input
        with _probing(probes), torch.no_grad():
            model(torch.zeros((1, *input_shape), device=device))
    finally:
        model.train(was_training)
    layers = []
    for _, _, p in probes:
        if p.sample_shape is None:
            raise HamqError(f"layer '{p.name}' received no input in a forward pass")
        sums = expected_sums(p.sample_shape, p.schedule, p.conv, p.groups, activity,
                             p.kept_rows)  # fmt: skip
        if hw.adc.skip_zero:
            levels = p.mapping.levels  # type: ignore[union-attr]
            per_vector = static_skip_zero_conversions(levels, p.schedule, hw.array.rows, activity)
            sums = replace(sums, conversions=sums.vectors * per_vector)
        layers.append(p.report(sums, adc_bits))
    return EnergyReport(
        hardware=hw.name, mode="static", samples=1, layers=layers, activity=activity
    )


__all__ = [
    "DEFAULT_ACTIVITY",
    "InputSchedule",
    "LayerProbe",
    "estimate_energy",
    "layer_energy",
    "static_energy",
]
