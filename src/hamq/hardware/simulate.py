"""Crossbar inference of a converted model: every quantized layer computed by its arrays
(``crossbar.py``), with the ADC each layer is given.

Pipeline::

    model --crossbar_layers--> one LayerSim per quantized layer (mapping, schedule, levels)
          --calibrate-------->  bitline-sum histograms on calibration data
          --plan_adc--------->  one AdcTransfer per layer (policy: full / fixed / optimized)
          --simulating------->  the model's forward with each layer's accumulation replaced
                                by crossbar_mvm through its ADC

A simulated layer computes ``y = s_x * s_w[c] * acc[c] + bias[c]`` where ``acc`` is the
crossbar's integer accumulation (float64) and ``s_x``, ``s_w`` the scales of the QAT
forward; with lossless ADCs ``acc`` equals the integer convolution exactly.

**ADC policies** (``adc.policy`` in the hardware description, ``adc.layers`` per layer):

- ``full``: ``lossless_bits`` of the layer's largest possible bitline sum, step 1. The
  bound comes from the stored weights (the largest column sum of levels in any row tile
  times the largest digit), which the mapping knows: sparse weights need fewer bits.
- ``fixed``: ``adc.bits`` (or the layer's own). Lossless when the bound fits; otherwise
  the range comes from the bitline sums measured on calibration data: the
  ``adc.percentile``-th percentile (``adc.calibration: percentile``) or the step that
  minimizes the mean squared conversion error (``mse``), both computed exactly from a
  histogram of the integer sums; without calibration data, the full scale of the bound.
- ``optimized``: per layer, the fewest bits (each with its calibrated range) such that at
  most ``adc.tolerance_pp`` percent of the calibration split's predictions differ from
  those of the crossbar with lossless ADCs; layers are decided one after another, each
  with the earlier ones at their chosen bits, so the tolerance bounds the whole network's
  accuracy loss on that split (it can fall by at most the share of changed predictions).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hamq.errors import HamqError
from hamq.hardware.crossbar import (
    AdcTransfer,
    check_simulatable,
    crossbar_conv2d,
    crossbar_mvm,
    full_scale_transfer,
    lossless_bits,
    lossless_columns,
    place_values,
    word_offset,
)
from hamq.hardware.energy import InputSchedule, input_schedule, input_vectors
from hamq.hardware.estimate import calibrated_layers
from hamq.hardware.mapping import LayerMapping, conv_geometry, map_weights
from hamq.hardware.noise import (
    Programmed,
    compensation_readout,
    conductances_at,
    level_units,
    program,
)
from hamq.hardware.spec import DeviceSpec, HardwareSpec
from hamq.quantization.convert import quantized_layers
from hamq.quantization.modules import QuantLayer

#: Elements of bitline sums materialized at once (float32: 32 MiB).
_CHUNK_ELEMENTS = 1 << 23


class LayerSim:
    """One quantized layer on its arrays: mapping, input schedule, cell levels, its ADC."""

    def __init__(self, name: str, layer: QuantLayer, hw: HardwareSpec) -> None:
        q = layer.input_quant
        rep, cb = hw.representation, hw.cell_bits
        try:
            check_simulatable(layer.w_bits, rep, cb)
        except ValueError as err:
            raise HamqError(f"hardware {hw.name}, layer '{name}': {err}") from None
        groups = layer.groups if isinstance(layer, nn.Conv2d) else 1
        codes = layer.weight_int().detach().cpu().to(torch.int8)
        self.name = name
        self.mapping: LayerMapping = map_weights(
            name, codes, conv_geometry(layer), groups, layer.w_bits, hw, layer.row_layout
        )
        self.schedule: InputSchedule = input_schedule(
            q.bits, bool(q.signed), hw.input.bits_per_cycle
        )
        self.place = place_values(layer.w_bits, rep, cb)
        self.offset = word_offset(layer.w_bits, rep)
        self.levels = self.mapping.levels.to(torch.float32)
        sums = self.mapping.tile_column_sums  # (G, T, cols)
        self.p_max = int(sums.max()) * (2**self.schedule.bits_per_cycle - 1)
        self.transfer: AdcTransfer | None = None  # None: ideal
        self.histogram: torch.Tensor | None = None  # counting (calibration running)
        self.calibration: torch.Tensor | None = None  # the last calibration's histogram
        self.weights = codes.to(torch.float64)  # exact integers, for lossless layers
        self._lossless: dict[AdcTransfer, bool] = {}
        self.ideal_levels = self.levels
        self.cells: Programmed | None = None  # after program(): the devices' state
        self.noisy = False  # levels are noisy conductances (read_at), not the integers
        # drift compensation, applied to the digital outputs: a float per layer, or a
        # float64 tensor (C_out,) per output channel (``device.compensation_scope``)
        self.gain: float | torch.Tensor = 1.0
        self._per_channel = False
        self._reference_readout = torch.ones((), dtype=torch.float64)
        self.skip_empty = hw.array.skip_empty_columns
        self.devices_per_cell = hw.array.devices_per_cell
        # While an ADC plan is searched (``_optimize``): the outputs of this layer's last
        # inputs at its current transfer, so the forwards of a search, which change one
        # layer's ADC at a time, recompute only that layer and those after it.
        self.memo: dict[tuple[AdcTransfer | None, tuple], torch.Tensor] | None = None

    # ------------------------------------------------------------ non-idealities

    def readout(self, levels: torch.Tensor) -> torch.Tensor:
        """Mean absolute recombined weight of cell ``levels`` (bitline units), the read-out
        of aihwkit's drift compensation (its one-hot inputs read each weight): over the
        layer (0-d), or per output channel ``(C_out,)`` with ``compensation_scope:
        column``."""
        g, k, cols = levels.shape
        cpw = self.place.numel()
        w = levels.to(torch.float64).reshape(g, k, cols // cpw, cpw) @ self.place  # (G, K, N)
        return compensation_readout(w.permute(0, 2, 1).reshape(-1, k), self._per_channel)

    def program(self, device: DeviceSpec, gen: torch.Generator) -> None:
        """Program the layer's cells (one draw per device) and take the compensation's
        reference read-out."""
        levels = self.mapping.levels
        self.cells = program(levels, device, gen, self._stretch(), self.devices_per_cell)
        self._per_channel = device.compensation_scope == "column"
        self._reference_readout = self.readout(self._units(self.cells.programmed_us(), device))

    def read_at(self, t_s: float, device: DeviceSpec, gen: torch.Generator) -> None:
        """The programmed cells ``t_s`` seconds later: the levels the bitlines see from
        now on, and the compensation gain (PCM with ``device.compensation``)."""
        if self.cells is None:
            raise RuntimeError("read_at() before program()")
        units = self._units(conductances_at(self.cells, t_s, device, gen), device)
        self.levels, self.noisy = units.to(torch.float32), True
        self.gain = 1.0
        if device.compensation and device.model == "pcm":
            gain = self._reference_readout / self.readout(units)
            self.gain = gain if self._per_channel else float(gain)

    def _units(self, g_us: torch.Tensor, device: DeviceSpec) -> torch.Tensor:
        """Bitline units of conductances; cells of a column left unmapped or unconverted
        in a tile (``skip_empty_columns``: all OFF there) contribute nothing."""
        units = level_units(g_us, device, self._stretch())
        if self.skip_empty:
            m = self.mapping
            empty = (m.tile_column_sums == 0).repeat_interleave(m.tile_rows, dim=1)
            units = units.masked_fill(empty[:, : units.shape[1]], 0.0)
        return units

    def _stretch(self) -> torch.Tensor | None:
        """Each column's level stretch (``array.slice_levels: spread``), None when all 1."""
        return self.mapping.stretch if self.mapping.stretched else None

    def clear_noise(self) -> None:
        """Back to the ideal integer levels."""
        self.levels, self.noisy, self.gain, self.cells = self.ideal_levels, False, 1.0, None

    @property
    def lossless_bits(self) -> int:
        """Fewest ADC bits (step 1) that convert every bitline sum of the layer exactly."""
        return lossless_bits(self.p_max)

    def start_histogram(self) -> None:
        """Count every bitline sum of the following forwards (calibration)."""
        if self.noisy:
            raise RuntimeError("calibrate on the ideal levels: call clear_noise() first")
        self.histogram = torch.zeros(self.p_max + 1, dtype=torch.int64)

    def _observe(self, sums: torch.Tensor) -> None:
        assert self.histogram is not None
        self.histogram += torch.bincount(sums.reshape(-1).long(), minlength=self.p_max + 1)

    def provably_lossless(self) -> bool:
        """Whether every conversion of the layer is exact with its transfer (then the
        crossbar computes the integer convolution, which :meth:`accumulate` does
        directly)."""
        if self.transfer is None:
            return True
        if self.transfer not in self._lossless:
            mask = lossless_columns(self.levels, self.schedule, self.mapping.tile_rows,
                                    self.transfer)  # fmt: skip
            self._lossless[self.transfer] = bool(mask.all())
        return self._lossless[self.transfer]

    def _integer_product(self, codes: torch.Tensor) -> torch.Tensor:
        m = self.mapping
        x, w = codes.to(torch.float64), self.weights
        if m.conv is None:
            return F.linear(x, w)
        c = m.conv
        return F.conv2d(x, w, None, c.stride, c.padding, c.dilation, m.groups)

    def accumulate(self, codes: torch.Tensor) -> torch.Tensor:
        """The crossbar's integer accumulations for a batch of input codes, float64, in
        the layout of the layer's output (``(B, C_out, H', W')`` or ``(..., C_out)``)."""
        if self.histogram is None and not self.noisy and self.provably_lossless():
            return self._integer_product(codes)
        memo = self.memo if self.histogram is None and not self.noisy else None
        if memo is None:
            return self._simulate(codes)
        key = (self.transfer, _digest(codes))
        if key not in memo:
            if any(k[0] != self.transfer for k in memo):  # another ADC: earlier sums useless
                memo.clear()
            memo[key] = self._simulate(codes)
        return memo[key].clone()

    def _simulate(self, codes: torch.Tensor) -> torch.Tensor:
        """:meth:`accumulate` through the crossbar model (no shortcut, no memo)."""
        m = self.mapping
        observe = self._observe if self.histogram is not None else None
        if m.conv is not None and m.row_tiles == 1 and m.row_layout is None:  # by convolution
            return self._direct(codes, observe)
        per_sample = max(1, codes[0].numel()) * m.cols * m.row_tiles
        chunk = max(1, _CHUNK_ELEMENTS // per_sample)
        parts = []
        for i in range(0, codes.shape[0], chunk):
            part = codes[i : i + chunk]
            y = crossbar_mvm(input_vectors(part, m), self.levels, self.schedule, self.place,
                             self.offset, m.tile_rows, self.transfer, observe,
                             self.noisy)  # fmt: skip
            parts.append(self._layout(y, part.shape))
        out = torch.cat(parts)
        return self._compensated(out, codes)

    def _direct(
        self, codes: torch.Tensor, observe: Callable[[torch.Tensor], None] | None
    ) -> torch.Tensor:
        """:meth:`accumulate` of a one-row-tile convolution (``crossbar_conv2d``), in
        chunks of samples."""
        m = self.mapping
        assert m.conv is not None
        h_out, w_out = self._out_size(codes.shape)
        per_sample = max(1, m.cols * m.groups * h_out * w_out)
        chunk = max(1, _CHUNK_ELEMENTS // per_sample)
        parts = [
            crossbar_conv2d(codes[i : i + chunk], self.levels, self.schedule, self.place,
                            self.offset, m.conv, m.groups, self.transfer, observe)
            for i in range(0, codes.shape[0], chunk)
        ]  # fmt: skip
        out = torch.cat(parts)
        return self._compensated(out, codes)

    def _compensated(self, out: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Apply the drift compensation gain to the analog part of ``out``: the arrays'
        sum, not the word offset the periphery removes exactly (``gain * (out + offset *
        sum x) - offset * sum x``)."""
        gain = self.gain
        if isinstance(gain, float):
            if gain == 1.0:
                return out
        elif self.mapping.conv is not None:  # per channel of (B, C_out, H', W')
            gain = gain.view(-1, 1, 1)
        out.mul_(gain)
        if self.offset:
            ones = torch.ones_like(self.weights)
            out += (gain - 1.0) * self.offset * self._input_sums(codes, ones)
        return out

    def _input_sums(self, codes: torch.Tensor, ones: torch.Tensor) -> torch.Tensor:
        """Per output, the sum of the inputs its rows see (the layer with all weights 1)."""
        m = self.mapping
        x = codes.to(torch.float64)
        if m.conv is None:
            return F.linear(x, ones)
        c = m.conv
        return F.conv2d(x, ones, None, c.stride, c.padding, c.dilation, m.groups)

    def _out_size(self, in_shape: torch.Size) -> list[int]:
        c = self.mapping.conv
        assert c is not None
        return [
            (size + 2 * p - d * (k - 1) - 1) // s + 1
            for size, k, s, p, d in zip(in_shape[2:], c.kernel_size, c.stride, c.padding,
                                        c.dilation, strict=True)
        ]  # fmt: skip

    def _layout(self, y: torch.Tensor, in_shape: torch.Size) -> torch.Tensor:
        """``(G, V, N)`` accumulations to the layer's output layout."""
        m = self.mapping
        g, _, n = y.shape
        if m.conv is None:
            return y.reshape(*in_shape[:-1], n)
        b = in_shape[0]
        hw_out = self._out_size(in_shape)
        y = y.reshape(g, b, -1, n).permute(1, 0, 3, 2)  # (B, G, N, L)
        return y.reshape(b, g * n, *hw_out)


def crossbar_layers(model: nn.Module, hw: HardwareSpec) -> list[LayerSim]:
    """One :class:`LayerSim` per quantized layer of a converted, calibrated model."""
    layers = calibrated_layers(model, "simulating the crossbar")
    return [LayerSim(name, layer, hw) for name, layer in layers]


def _simulated_forward(layer: QuantLayer, sim: LayerSim, x: torch.Tensor) -> torch.Tensor:
    """The layer's eval forward with the integer accumulation done by the crossbar."""
    codes = layer.input_quant.to_int(x).cpu()
    acc = sim.accumulate(codes).to(x.device)
    w_scale = layer.weight_scale().detach().reshape(-1).to(torch.float64)
    shape = (1, -1, 1, 1) if acc.dim() == 4 and sim.mapping.conv is not None else (-1,)
    scale = float(layer.input_quant.scale().detach()) * w_scale.reshape(shape)
    y = acc * scale
    if layer.bias is not None:
        y = y + layer.bias.detach().to(torch.float64).reshape(shape)
    return y.to(x.dtype)


@contextmanager
def simulating(model: nn.Module, sims: list[LayerSim]) -> Iterator[None]:
    """While the block runs, every quantized layer's forward is its crossbar (eval mode,
    no gradient); put back on exit, on error too."""
    by_name = {s.name: s for s in sims}
    patched = []
    was_training = model.training
    model.eval()
    try:
        for name, layer in quantized_layers(model):
            if name in by_name:
                layer.forward = partial(_simulated_forward, layer, by_name[name])  # type: ignore[method-assign]
                patched.append(layer)
        with torch.no_grad():
            yield
    finally:
        for layer in patched:
            del layer.forward
        model.train(was_training)


def count_correct_batches(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
) -> tuple[int, int]:
    """(correct, samples) of the model's argmax predictions over ``(x, y)`` batches."""
    device = next(model.parameters()).device
    correct = total = 0
    with torch.no_grad():
        for x, y in batches:
            pred = model(x.to(device)).argmax(-1).cpu()
            correct += int((pred == y.cpu()).sum())
            total += int(y.numel())
    return correct, total


# ---------------------------------------------------------------- calibration and plans


def percentile_transfer(histogram: torch.Tensor, bits: int, percentile: float) -> AdcTransfer:
    """A ``bits``-bit ADC whose full scale is the ``percentile``-th percentile of the
    non-zero bitline sums counted in ``histogram`` (entry ``h`` counts sums equal to ``h``;
    zero sums convert exactly at any range and, with ``skip_zero`` or
    ``skip_empty_columns``, are not converted at all, so they do not set the range)."""
    histogram = histogram.clone()
    histogram[0] = 0  # zero sums: empty columns and undriven rows, often never converted
    total = int(histogram.sum())
    if total == 0:
        return AdcTransfer(bits)
    cdf = histogram.cumsum(0).to(torch.float64)
    rank = torch.tensor(percentile / 100.0 * total, dtype=torch.float64)
    top = int(torch.searchsorted(cdf, rank))
    top = min(max(top, 1), histogram.numel() - 1)
    return AdcTransfer(bits, max(1.0, top / (2**bits - 1)))


def conversion_mse(histogram: torch.Tensor, adc: AdcTransfer) -> float:
    """Mean squared conversion error of ``adc`` over the sums counted in ``histogram``."""
    values = torch.arange(histogram.numel(), dtype=torch.float64)
    err = adc.convert(values) - values
    w = histogram.to(torch.float64)
    return float((w * err**2).sum() / w.sum().clamp_min(1.0))


def mse_transfer(histogram: torch.Tensor, bits: int, candidates: int = 200) -> AdcTransfer:
    """The ``bits``-bit ADC with the smallest mean squared conversion error over the
    sums in ``histogram``, among ``candidates`` steps spaced geometrically from 1 to the
    step whose full scale is the largest sum seen."""
    seen = torch.nonzero(histogram).reshape(-1)
    top = int(seen.max()) if seen.numel() else 1
    widest = max(1.0, top / (2**bits - 1))
    steps = torch.logspace(0.0, torch.log10(torch.tensor(widest)).item(), candidates,
                           dtype=torch.float64)  # fmt: skip
    best = min((conversion_mse(histogram, AdcTransfer(bits, float(s))), float(s)) for s in steps)
    return AdcTransfer(bits, best[1])


@dataclass(frozen=True)
class LayerAdc:
    """The ADC one layer gets, and why: ``policy`` (full / fixed / optimized), ``bits``,
    ``step`` (bitline units per code), ``range_from`` (lossless / percentile 99.99 / mse /
    full scale), ``lossless_bits`` (what a lossless conversion of this layer needs)."""

    name: str
    policy: str
    bits: int
    step: float
    range_from: str
    lossless_bits: int

    @property
    def transfer(self) -> AdcTransfer:
        return AdcTransfer(self.bits, self.step)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibrate(
    model: nn.Module,
    sims: list[LayerSim],
    batches: Iterable[torch.Tensor],
    only: set[str] | None = None,
) -> int:
    """Histograms of the bitline sums of every layer (or those named in ``only``) over
    ``batches`` of model inputs, with ideal conversions; returns the samples seen."""
    for s in sims:
        s.transfer = None
        if only is None or s.name in only:
            s.start_histogram()
    n = 0
    device = next(model.parameters()).device
    try:
        with simulating(model, sims):
            for x in batches:
                model(x.to(device))
                n += x.shape[0]
    finally:
        for s in sims:
            s.calibration, s.histogram = s.histogram, None
    return n


def calibrated_adc(sim: LayerSim, hw: HardwareSpec, bits: int, policy: str) -> LayerAdc:
    """A ``bits``-bit ADC for ``sim``: lossless when the bits suffice, else its range from
    the calibration histogram (``adc.calibration``), or the full scale without one."""
    need = sim.lossless_bits
    if bits >= need:
        return LayerAdc(sim.name, policy, bits, 1.0, "lossless", need)
    hist = sim.calibration
    if hist is None:
        t = full_scale_transfer(bits, sim.p_max)
        return LayerAdc(sim.name, policy, bits, t.step, "full scale", need)
    if hw.adc.calibration == "mse":
        t, how = mse_transfer(hist, bits), "mse"
    else:
        t = percentile_transfer(hist, bits, hw.adc.percentile)
        how = f"percentile {hw.adc.percentile:g}"
    return LayerAdc(sim.name, policy, bits, t.step, how, need)


def check_adc_layers(hw: HardwareSpec, sims: list[LayerSim]) -> None:
    """Refuse ``adc.layers`` entries that name no quantized layer (one line, the names)."""
    names = {s.name for s in sims}
    unknown = sorted(set(hw.adc.layers) - names)
    if unknown:
        raise HamqError(
            f"adc.layers names {', '.join(repr(u) for u in unknown)}, not a quantized layer "
            f"of this model; its layers are: {', '.join(sorted(names))}"
        )


def plan_adc(
    model: nn.Module,
    sims: list[LayerSim],
    hw: HardwareSpec,
    calibration: list[tuple[torch.Tensor, torch.Tensor]] | None,
) -> list[LayerAdc]:
    """One :class:`LayerAdc` per layer from the hardware's policies, calibrated on
    ``calibration`` (``(x, y)`` batches of a split that is never the test set; None: no
    data, ranges at full scale and no ``optimized`` policy). Sets each sim's transfer."""
    check_adc_layers(hw, sims)
    policies = {s.name: hw.adc_policy(s.name) for s in sims}
    if calibration is not None:  # only layers whose bits may not be lossless need one
        need = {
            s.name for s in sims
            if policies[s.name][0] == "optimized"
            or (policies[s.name][0] == "fixed" and policies[s.name][1] < s.lossless_bits)
        }  # fmt: skip
        if need:
            calibrate(model, sims, (x for x, _ in calibration), need)
    elif any(p == "optimized" for p, _ in policies.values()):
        raise HamqError(
            "adc.policy = optimized needs calibration data (a validation split or "
            "--calibration-samples); none was given"
        )
    plan: dict[str, LayerAdc] = {}
    for s in sims:
        policy, bits = policies[s.name]
        if policy == "full":
            plan[s.name] = LayerAdc(s.name, "full", s.lossless_bits, 1.0, "lossless",
                                    s.lossless_bits)  # fmt: skip
        elif policy == "fixed":
            plan[s.name] = calibrated_adc(s, hw, bits, "fixed")
    for s in sims:  # ideal for every layer not decided yet
        s.transfer = plan[s.name].transfer if s.name in plan else None
    optimized = [s for s in sims if policies[s.name][0] == "optimized"]
    if optimized:
        assert calibration is not None
        plan.update(_optimize(model, sims, optimized, hw, calibration))
    return [plan[s.name] for s in sims]


def _digest(codes: torch.Tensor) -> tuple:
    """A key for a batch of input codes: shape, dtype and a BLAKE2b digest of the bytes."""
    data = codes.detach().cpu().contiguous()
    raw = data.reshape(-1).view(torch.uint8).numpy()
    return (tuple(data.shape), str(data.dtype), hashlib.blake2b(raw, digest_size=16).digest())


@contextmanager
def memoized(sims: list[LayerSim], enabled: bool = True) -> Iterator[None]:
    """While the block runs, each layer reuses its simulated outputs for inputs it has seen
    at its current ADC transfer (bit-identical: the simulation is deterministic without
    noise); cleared on exit."""
    for s in sims:
        s.memo = {} if enabled else None
    try:
        yield
    finally:
        for s in sims:
            s.memo = None


#: ``_optimize`` memoizes the layers' outputs (:func:`memoized`); False only to compare.
MEMOIZE_SEARCH = True


def _predictions(
    model: nn.Module, sims: list[LayerSim], batches: list[tuple[torch.Tensor, torch.Tensor]]
) -> torch.Tensor:
    """Argmax predictions of the model on its crossbars over ``batches`` (int64, CPU)."""
    device = next(model.parameters()).device
    with simulating(model, sims):
        return torch.cat([model(x.to(device)).argmax(-1).cpu() for x, _ in batches])


def _optimize(
    model: nn.Module,
    all_sims: list[LayerSim],
    layers: list[LayerSim],
    hw: HardwareSpec,
    calibration: list[tuple[torch.Tensor, torch.Tensor]],
) -> dict[str, LayerAdc]:
    """Fewest bits per layer such that at most ``adc.tolerance_pp`` percent of the
    calibration predictions differ from those with lossless ADCs on these layers (the
    other layers at their planned ADCs); binary search per layer (assumed monotone in
    bits), layers in order, each with the earlier ones at their chosen bits.

    Changed predictions rather than accuracy: the accuracy can fall by at most the share
    of changed predictions, and that share is a paired count, free of the label noise of
    an accuracy difference on a small split (on 300 KWS clips an accuracy has a standard
    error near 2 pp, four times a 0.5 pp tolerance; a plan chosen on it lost 7 pp on test).
    """
    with memoized(all_sims, MEMOIZE_SEARCH):
        for s in layers:
            s.transfer = None
        reference = _predictions(model, all_sims, calibration)
        allowed = hw.adc.tolerance_pp / 100.0 * reference.numel()
        out = {}
        for s in layers:
            hi = s.lossless_bits
            lo = min(hw.adc.min_bits, hi)
            best = calibrated_adc(s, hw, hi, "optimized")
            while lo < hi:
                mid = (lo + hi) // 2
                trial = calibrated_adc(s, hw, mid, "optimized")
                s.transfer = trial.transfer
                changed = int((_predictions(model, all_sims, calibration) != reference).sum())
                if changed <= allowed:
                    hi, best = mid, trial
                else:
                    lo = mid + 1
            s.transfer = best.transfer
            out[s.name] = best
        return out


def crossbar_accuracy(
    model: nn.Module,
    sims: list[LayerSim],
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[int, int]:
    """(correct, samples) of the model computed by its crossbars with their transfers."""
    with simulating(model, sims):
        return count_correct_batches(model, batches)


__all__ = [
    "LayerAdc",
    "LayerSim",
    "calibrate",
    "calibrated_adc",
    "conversion_mse",
    "count_correct_batches",
    "crossbar_accuracy",
    "crossbar_layers",
    "mse_transfer",
    "percentile_transfer",
    "plan_adc",
    "simulating",
]
