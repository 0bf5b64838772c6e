"""Analog non-idealities of the cells: programming noise, drift and read noise, stuck cells.

Pure functions of conductances (microsiemens) and times (seconds), seeded through an
explicit :class:`torch.Generator`. Every physical cell is its own device: a bit-sliced
weight in ``n`` cells (per column set) gets ``n`` independent draws. A cell of
``array.devices_per_cell = m`` devices holds ``m`` devices at its level, each with its own
draws; the bitline sums their currents and the read-out divides by ``m``, so the cell reads
their mean.

**PCM** is IBM aihwkit's ``PCMLikeNoiseModel`` (``aihwkit/inference/noise/pcm.py``,
Nandakumar et al., ICECS 2019), with ``g = g_T / g_max``:

- programming: ``sigma = (0.26348 + 1.9650 g - 1.1731 g**2) * g_max / 25``,
  ``g_prog = max(g_T + s_prog * sigma * N(0, 1), 0)``;
- drift exponent per device: ``nu = s_drift * |mu + sd * N(0, 1)|`` with
  ``mu = clamp(-0.0155 ln g + 0.0244, 0.049, 0.1)`` and
  ``sd = clamp(-0.0125 ln g - 0.0059, 0.008, 0.045)`` (``g`` clipped at 1e-7);
- at ``t`` seconds after programming, with ``t' = t + t0``:
  ``g_drift = g_prog * (t' / t0)**(-nu)`` (for ``t > 0``) and the accumulated 1/f read
  noise ``q = min(0.0088 / max((g_prog / g_max)**0.65, 1e-3), 0.2)``,
  ``g(t) = max(g_drift + s_read * |g_drift| * q * sqrt(ln((t' + t_r) / (2 t_r))) * N(0, 1), 0)``.

``t`` counts from the end of programming, as aihwkit's ``t_inference``; the law is
evaluated at ``t + t0``, so every ``t >= 0`` is defined and negative times are refused.

**RRAM**: ``g = g_T * exp(sigma * N(0, 1))`` (lognormal, median at the target), then a
share ``stuck_on_rate`` of the cells at the top level's conductance and ``stuck_off_rate``
at level 0's; no drift (a programmed RRAM cell is read the same at every ``t``).

**Drift compensation** (aihwkit's ``GlobalDriftCompensation``): per layer, the mean
absolute recombined weight read right after programming, divided by the same read at
``t``, multiplies the layer's digital outputs. With ``device.compensation_scope: column``
(aihwkit's ``PerColumnDriftCompensation``) the same ratio is taken per output channel.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch

from hamq.errors import HamqError
from hamq.hardware.crossbar import place_values, word_offset
from hamq.hardware.representation import (
    Representation,
    cell_levels,
    interpolate_levels,
    spread_factors,
)
from hamq.hardware.spec import MAX_TIME_S, DeviceSpec

#: aihwkit's programming-noise polynomial (uS at g_max = 25 uS) and its reference g_max.
PCM_PROG_COEFF = (0.26348, 1.9650, -1.1731)
PCM_PROG_G_MAX_REF_US = 25.0
#: aihwkit's lower clip of relative conductances in the drift fit.
_ZERO_CLIP = 1e-7


def _randn(like: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Standard normal draws shaped as ``like``, from ``gen`` (on its device)."""
    z = torch.randn(like.shape, generator=gen, dtype=like.dtype, device=gen.device)
    return z.to(like.device)


def pcm_programming_sigma_us(g_target_us: torch.Tensor, g_max_us: float) -> torch.Tensor:
    """Standard deviation of PCM programming noise at each target conductance, uS."""
    g = g_target_us / g_max_us
    c0, c1, c2 = PCM_PROG_COEFF
    return (c0 + c1 * g + c2 * g * g) * (g_max_us / PCM_PROG_G_MAX_REF_US)


def pcm_program(
    g_target_us: torch.Tensor, g_max_us: float, gen: torch.Generator, scale: float = 1.0
) -> torch.Tensor:
    """Programmed conductances ``max(g_T + scale * sigma(g_T) * N(0, 1), 0)``, uS."""
    noise = _randn(g_target_us, gen)
    sigma = pcm_programming_sigma_us(g_target_us, g_max_us)
    return (g_target_us + scale * sigma * noise).clamp_(min=0.0)


def pcm_drift_exponents(
    g_target_us: torch.Tensor, g_max_us: float, gen: torch.Generator, scale: float = 1.0
) -> torch.Tensor:
    """Per-device drift exponents ``nu`` (from the *target* conductance, as aihwkit)."""
    g = (g_target_us / g_max_us).abs().clamp(min=_ZERO_CLIP)
    mu = (-0.0155 * g.log() + 0.0244).clamp(0.049, 0.1)
    sd = (-0.0125 * g.log() - 0.0059).clamp(0.008, 0.045)
    noise = _randn(g, gen)
    return (mu + sd * noise).abs() * scale


def pcm_read_sigma(t_s: float, t_read_s: float, t0_s: float) -> float:
    """The time factor ``sqrt(ln((t + t0 + t_r) / (2 t_r)))`` of the accumulated 1/f
    noise ``t_s`` seconds after programming."""
    t = t_s + t0_s
    return math.sqrt(math.log((t + t_read_s) / (2 * t_read_s)))


def pcm_at(
    g_prog_us: torch.Tensor,
    nu: torch.Tensor,
    t_s: float,
    device: DeviceSpec,
    gen: torch.Generator,
) -> torch.Tensor:
    """PCM conductances ``t_s`` seconds after programming: drift, then 1/f read noise."""
    check_time(t_s)
    g_max = device.g_top_us
    t = t_s + device.t0_s
    g_drift = g_prog_us * (t / device.t0_s) ** (-nu) if t_s > 0 else g_prog_us.clone()
    q = (0.0088 / ((g_prog_us.abs() / g_max) ** 0.65).clamp(min=1e-3)).clamp(max=0.2)
    sigma = q * pcm_read_sigma(t_s, device.t_read_s, device.t0_s)
    noise = _randn(g_prog_us, gen)
    return (g_drift + g_drift.abs() * device.read_noise_scale * sigma * noise).clamp_(min=0.0)


def rram_program(
    g_target_us: torch.Tensor, device: DeviceSpec, gen: torch.Generator
) -> torch.Tensor:
    """RRAM conductances after programming: lognormal variation, then stuck cells."""
    g = g_target_us * torch.exp(device.sigma_lognormal * _randn(g_target_us, gen))
    u = torch.rand(g_target_us.shape, generator=gen, dtype=torch.float64, device=gen.device)
    u = u.to(g_target_us.device)
    g = torch.where(u < device.stuck_on_rate, device.g_levels_us[-1], g)
    stuck_off = (u >= device.stuck_on_rate) & (u < device.stuck_on_rate + device.stuck_off_rate)
    return torch.where(stuck_off, device.g_levels_us[0], g)


@dataclass(frozen=True)
class Programmed:
    """The devices of one array after programming: conductances (uS) and, for PCM, each
    device's drift exponent. The last dimension holds the devices of a cell
    (``devices_per_cell``, 1 for a cell of one device)."""

    g_prog_us: torch.Tensor
    nu: torch.Tensor | None

    def programmed_us(self) -> torch.Tensor:
        """Each cell's programmed conductance as its bitline reads it: the mean of its
        devices (uS), the cells' shape."""
        return self.g_prog_us.mean(dim=-1)


def target_conductances(
    levels: torch.Tensor, device: DeviceSpec, stretch: torch.Tensor | None = None
) -> torch.Tensor:
    """Target conductance (uS, float64) of every cell from its integer level; with
    ``stretch`` (per cell, broadcast on the last dimension: ``array.slice_levels: spread``)
    at the fractional level ``level * stretch``, interpolated between the table's levels."""
    table = torch.tensor(device.g_levels_us, dtype=torch.float64, device=levels.device)
    if stretch is None:
        return table[levels.long()]
    return interpolate_levels(table, levels.to(torch.float64) * stretch.to(levels.device))


def program(
    levels: torch.Tensor,
    device: DeviceSpec,
    gen: torch.Generator,
    stretch: torch.Tensor | None = None,
    devices_per_cell: int = 1,
) -> Programmed:
    """Program cells at integer ``levels`` (any shape): ``devices_per_cell`` devices per
    cell, one draw each, at the target conductances of :func:`target_conductances` (the
    devices on a new last dimension; one device per cell draws what one draw per cell
    did)."""
    if devices_per_cell < 1:
        raise ValueError(f"devices_per_cell = {devices_per_cell}: at least 1")
    g_t = target_conductances(levels, device, stretch).unsqueeze(-1)
    g_t = g_t.expand(*g_t.shape[:-1], devices_per_cell)
    if device.model == "rram":
        return Programmed(rram_program(g_t, device, gen), None)
    g_max = device.g_top_us
    g_prog = pcm_program(g_t, g_max, gen, device.prog_noise_scale)
    return Programmed(g_prog, pcm_drift_exponents(g_t, g_max, gen, device.drift_scale))


def conductances_at(
    cells: Programmed, t_s: float, device: DeviceSpec, gen: torch.Generator
) -> torch.Tensor:
    """Conductances (uS) of programmed cells ``t_s`` seconds after programming, as their
    bitlines read them (the mean of each cell's devices; the cells' shape)."""
    check_time(t_s)
    if cells.nu is None:
        return cells.programmed_us()
    return pcm_at(cells.g_prog_us, cells.nu, t_s, device, gen).mean(dim=-1)


def level_units(
    g_us: torch.Tensor, device: DeviceSpec, stretch: torch.Tensor | None = None
) -> torch.Tensor:
    """Conductances as bitline units: ``(g - g_0) / step`` (a reference column of level-0
    cells is subtracted; one unit per mean level step), divided by each column's
    ``stretch`` (its digital read-out gain). Exact levels when noiseless."""
    units = (g_us - device.g_levels_us[0]) / device.g_step_us
    return units if stretch is None else units / stretch.to(units.device)


def read_weights(
    codes: torch.Tensor,
    w_bits: int,
    rep: Representation,
    cell_bits: int,
    device: DeviceSpec,
    t_s: float,
    gen: torch.Generator,
    spread: bool = False,
    devices_per_cell: int = 1,
) -> torch.Tensor:
    """The integer weights ``codes`` as noisy arrays give them back ``t_s`` seconds after
    programming (ideal conversions): every cell of every weight programmed and read with
    its own draws, the columns recombined with their place values, the word offset
    removed, and the drift compensation of the tensor applied (PCM; per output channel,
    the first dimension, with ``compensation_scope: column``). float64,
    ``codes``' shape; equal to ``codes`` for a noiseless device with equal level steps.
    ``spread``: ``array.slice_levels: spread`` (narrow slices over the whole range);
    ``devices_per_cell``: ``array.devices_per_cell``.
    What noise-aware training injects (``training/analog.py``)."""
    levels = cell_levels(codes, w_bits, rep, cell_bits).reshape(*codes.shape, -1)
    place = place_values(w_bits, rep, cell_bits).to(codes.device)
    stretch = spread_factors(w_bits, rep, cell_bits, spread).to(codes.device) if spread else None
    cells = program(levels, device, gen, stretch, devices_per_cell)
    w_prog = level_units(cells.programmed_us(), device, stretch) @ place
    w_t = level_units(conductances_at(cells, t_s, device, gen), device, stretch) @ place
    if device.compensation and device.model == "pcm":
        w_t = w_t * compensation_gain(w_prog, w_t, device.compensation_scope == "column")
    return w_t - word_offset(w_bits, rep)


def compensation_readout(w: torch.Tensor, per_channel: bool) -> torch.Tensor:
    """The drift compensation's read-out of recombined weights ``w`` (output channels
    on the first dimension): their mean absolute value, per channel or over the tensor
    (a 0-d tensor), clamped away from zero."""
    a = w.abs()
    m = a.reshape(a.shape[0], -1).mean(dim=1) if per_channel else a.mean()
    return m.clamp_min(1e-12)


def compensation_gain(w_ref: torch.Tensor, w_t: torch.Tensor, per_channel: bool) -> torch.Tensor:
    """The gain that brings the read-out of ``w_t`` back to that of ``w_ref``, shaped to
    broadcast over ``w_t`` (``(C, 1, ...)`` per channel, 0-d per tensor)."""
    gain = compensation_readout(w_ref, per_channel) / compensation_readout(w_t, per_channel)
    return gain.reshape(-1, *[1] * (w_t.dim() - 1)) if per_channel else gain


def check_time(t_s: float) -> None:
    """Refuse a time the device laws do not define (negative, or past 100 years)."""
    if not (0.0 <= t_s <= MAX_TIME_S):
        raise HamqError(
            f"time after programming {t_s:g} s: must be in 0 .. {MAX_TIME_S:g} s (100 "
            f"years); t counts from the end of programming (the drift law is evaluated at "
            f"t + t0)"
        )


_UNITS_S = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0,
            "w": 7 * 86400.0, "y": 365.25 * 86400.0}  # fmt: skip
_TIME = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]*)\s*$")


def parse_time(text: str) -> float:
    """Seconds in ``text``: a number with an optional unit (s, m/min, h, d, w, y):
    ``1s``, ``1h``, ``1d``, ``1y``, ``3600``."""
    m = _TIME.match(text.lower())
    if m is None or m.group(2) not in _UNITS_S:
        raise HamqError(
            f"time '{text}': give a non-negative number with an optional unit s, m, h, d, w "
            f"or y (e.g. 1s, 1h, 1d, 1y)"
        )
    t = float(m.group(1)) * _UNITS_S[m.group(2)]
    check_time(t)
    return t


def parse_times(text: str) -> list[float]:
    """Comma-separated times (``1s,1h,1d,1y``) in seconds, in the order given."""
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise HamqError("--t is empty; give times such as 1s,1h,1d,1y")
    return [parse_time(p) for p in parts]


def time_label(t_s: float) -> str:
    """A short label of a time: 0s, 1s, 1h, 1d, 1y, 25s, 1.5h."""
    for unit, size in (("y", _UNITS_S["y"]), ("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if t_s >= size:
            return f"{t_s / size:g}{unit}"
    return f"{t_s:g}s"


__all__ = [
    "PCM_PROG_COEFF",
    "Programmed",
    "check_time",
    "conductances_at",
    "level_units",
    "parse_time",
    "parse_times",
    "pcm_at",
    "pcm_drift_exponents",
    "pcm_program",
    "pcm_programming_sigma_us",
    "pcm_read_sigma",
    "program",
    "read_weights",
    "rram_program",
    "target_conductances",
    "time_label",
]
