"""Hardware description of a crossbar accelerator: typed, validated, units in field names.

A description is YAML data (a shipped preset in ``hamq/hardware/presets/`` or a user's own
file) with four sections::

    name: rram-1b
    source: where the numbers come from
    array:   {rows: 128, cols: 128, cell_bits: 1, representation: differential}
    input:   {bits_per_cycle: 1}
    adc:     {bits: 6, col_mux: 8, skip_zero: false}
    timing:  {t_cycle_ns: 10.0}
    tech:    {e_cell_pj: [0.0, 0.1], e_adc_pj: 0.5, e_adc_ref_bits: 6,
              e_driver_pj: 0.0, e_shift_add_pj: 0.0}
"""

from __future__ import annotations

from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from hamq.config_base import Section, validate
from hamq.errors import HamqError, unknown_name
from hamq.files import parse_yaml, read_text
from hamq.hardware.representation import CELL_BITS, Representation

#: Largest array side: 16x the biggest fabricated crossbars (1024 to 4096 rows).
MAX_ARRAY_SIDE = 65536
#: Largest energy of one event (a cell read, a conversion, a row drive), pJ: a microjoule,
#: six orders of magnitude above any published device.
MAX_EVENT_PJ = 1e6
#: Most devices in parallel in one cell (published multi-device cells use 2-8).
MAX_DEVICES_PER_CELL = 64


class ArraySpec(Section):
    """The crossbar array.

    rows, cols: physical rows and columns of one tile (array).
    cell_bits: bits stored per cell (1, 2 or 4); a cell has ``2**cell_bits`` levels.
    representation: how signed weights become stored words (see ``representation.py``).
    skip_empty_columns: a column whose cells in a row tile are all OFF is not converted
        there, and a column all OFF in every tile is not mapped (fewer arrays); both are
        exact (an all-OFF bitline sums to 0).
    slice_levels: how a slice narrower than the cell (the top slice, when the word's bits
        do not fill the last cell) is programmed: ``ladder`` (its codes are the cell's
        lowest levels) or ``spread`` (its codes spread over the cell's whole range, read
        back with a per-column digital gain: larger steps against the same device noise,
        at the read energy of the higher levels). ``representation.spread_factors``.
    devices_per_cell: memory devices in parallel in each cell, on the cell's wordline and
        bitline (IBM's HERMES PCM chip uses several devices per weight): all are
        programmed to the cell's level, the bitline sums their currents and the read-out
        divides by the count. Each device draws its own programming noise, drift exponent
        and read noise (PCM) or lognormal variation and stuck state (RRAM: a stuck device
        moves its cell by ``1/n`` of the way to the top or bottom level), so the cell's
        noise falls about as ``1/sqrt(n)``; each conducts, so a cell read costs ``n``
        times ``tech.e_cell_pj``. The layout (rows, columns, arrays, ADC conversions) does
        not change.
    """

    rows: int = Field(128, gt=0, le=MAX_ARRAY_SIDE)
    cols: int = Field(128, gt=0, le=MAX_ARRAY_SIDE)
    cell_bits: int = 1
    representation: Representation = "differential"
    skip_empty_columns: bool = False
    slice_levels: Literal["ladder", "spread"] = "ladder"
    devices_per_cell: int = Field(1, ge=1, le=MAX_DEVICES_PER_CELL)

    @model_validator(mode="after")
    def _cell_bits(self) -> ArraySpec:
        if self.cell_bits not in CELL_BITS:
            raise ValueError(f"array.cell_bits = {self.cell_bits}: must be one of 1, 2, 4")
        return self


class InputSpec(Section):
    """How activations drive the rows.

    bits_per_cycle: input bits applied per cycle (1 = bit-serial; k > 1 through a k-bit DAC).
        The DAC is modeled as pulse-width modulation: a digit d holds the row at the read
        voltage for d / (2**k - 1) of the cycle, so cell read energy scales linearly with d
        (see ``energy.py``).
    """

    bits_per_cycle: int = Field(1, ge=1, le=8)


AdcPolicy = Literal["full", "fixed", "optimized"]


class AdcLayerSpec(Section):
    """One layer's own ADC (``adc.layers.NAME``): its policy and/or bits."""

    policy: AdcPolicy | None = None
    bits: int | None = Field(None, ge=1, le=16)


class AdcSpec(Section):
    """Column read-out.

    bits: ADC resolution in bits (the ``fixed`` policy's).
    col_mux: columns that share one ADC (they convert one after another).
    skip_zero: skip conversions of columns whose driven cells are all at level 0.
    policy: ``full`` (each layer the lossless bits of its largest bitline sum), ``fixed``
        (``bits``, range calibrated on data) or ``optimized`` (per layer the fewest bits
        that change at most ``tolerance_pp`` percent of a calibration split's predictions);
        see ``simulate.py``. The energy model charges each layer's own bits.
    calibration: how a ``fixed``/``optimized`` range is set from the measured bitline
        sums: ``mse`` (the step of least mean squared conversion error, the default) or
        ``percentile`` (full scale at the ``percentile``-th percentile). On DS-CNN/KWS
        with a 3-bit ADC on rram-1b, MSE kept 82.6% where the 99.99th percentile kept
        67.2% (ideal 83.6%; docs/crossbar.md).
    tolerance_pp: share of the calibration split's predictions (in %) the ``optimized``
        policy may change against lossless ADCs; it bounds the accuracy loss there (pp).
    min_bits: fewest bits the ``optimized`` policy tries.
    layers: per-layer ``{policy, bits}`` by layer name, overriding the above.
    """

    bits: int = Field(6, ge=1, le=16)
    col_mux: int = Field(8, ge=1)
    skip_zero: bool = False
    policy: AdcPolicy = "fixed"
    calibration: Literal["percentile", "mse"] = "mse"
    percentile: float = Field(99.99, gt=0, le=100)
    tolerance_pp: float = Field(0.5, ge=0, le=100)
    min_bits: int = Field(1, ge=1, le=16)
    layers: dict[str, AdcLayerSpec] = Field(default_factory=dict)


class TimingSpec(Section):
    """t_cycle_ns: duration of one input cycle (row drive + one ADC conversion), ns."""

    t_cycle_ns: float = Field(10.0, ge=1e-3, le=1e9)


class TechSpec(Section):
    """Energies of the technology, in picojoules.

    e_cell_pj: read energy of one cell on a driven row, per input bit cycle, for each level
        ``0 .. 2**cell_bits - 1`` (the length must match ``array.cell_bits``).
    e_adc_pj: energy of one conversion at ``e_adc_ref_bits``; other resolutions scale by
        2x per bit (a constant Walden figure of merit).
    e_driver_pj: energy of driving one row for one cycle (row driver / DAC); 0 to ignore.
    e_shift_add_pj: digital shift-and-add per conversion; 0 to ignore.
    e_lfsr_step_pj: one clock of the LFSR address generator of a row-pruned layer's
        index-free layout (register, feedback XOR, compare, address add); 0 to ignore.
    """

    e_cell_pj: tuple[float, ...]
    e_adc_pj: float = Field(ge=0, le=MAX_EVENT_PJ)
    e_adc_ref_bits: int = Field(ge=1, le=16)
    e_driver_pj: float = Field(0.0, ge=0, le=MAX_EVENT_PJ)
    e_shift_add_pj: float = Field(0.0, ge=0, le=MAX_EVENT_PJ)
    e_lfsr_step_pj: float = Field(0.0, ge=0, le=MAX_EVENT_PJ)

    @model_validator(mode="after")
    def _non_negative(self) -> TechSpec:
        for i, e in enumerate(self.e_cell_pj):
            if e < 0:
                raise ValueError(f"tech.e_cell_pj[{i}] = {e}: a cell energy cannot be negative")
            if e > MAX_EVENT_PJ:
                raise ValueError(
                    f"tech.e_cell_pj[{i}] = {e}: above {MAX_EVENT_PJ:g} pJ per cell read; "
                    "energies are in picojoules"
                )
        if self.e_cell_pj and max(self.e_cell_pj) == 0:
            raise ValueError(
                "tech.e_cell_pj is all zero: every crossbar energy would be 0 (and TOPS/W "
                "infinite); give the read energy of each cell level in pJ"
            )
        return self


#: Longest time after programming an evaluation may ask for: 100 years, in seconds.
MAX_TIME_S = 100 * 365.25 * 86400.0


class DeviceSpec(Section):
    """The memory devices of the cells: target conductances and non-idealities.

    Conductances in microsiemens, times in seconds (``noise.py`` has the formulas).

    model: ``pcm`` (IBM aihwkit's ``PCMLikeNoiseModel``: programming noise, drift with a
        per-device exponent, 1/f read noise growing with time) or ``rram`` (lognormal
        conductance variation and stuck-at-ON/OFF cells; no drift).
    g_levels_us: target conductance of each cell level ``0 .. 2**cell_bits - 1``,
        ascending. The bitline current is read in units of the mean level step
        ``(g_top - g_0) / (levels - 1)`` with a reference column of level-0 cells
        subtracted, so a noiseless array with equal steps computes the integer levels.
    g_max_us: the ``g_max`` of the PCM formulas (null: the top level's conductance), the
        conductance the polynomials are normalized by.
    source: where the conductances and rates come from.
    prog_noise_scale, read_noise_scale, drift_scale: PCM scales (1 = aihwkit's fit).
    t0_s: PCM drift reference time (the first read after programming); t_read_s: the 1/f
        noise's read duration.
    sigma_lognormal: RRAM ``g = g_T * exp(sigma * N(0, 1))`` (median at the target).
    stuck_on_rate, stuck_off_rate: RRAM shares of devices stuck at the top / bottom level
        (of cells, with one device per cell; see ``array.devices_per_cell``).
    compensation: drift compensation (PCM): each drift read-out is rescaled by what a
        read right after programming gave.
    compensation_scope: ``layer``, one scalar per layer (aihwkit's
        ``GlobalDriftCompensation``, the default); ``column``, one per output channel, the
        digital output of a logical column after its row tiles are summed (aihwkit's
        ``PerColumnDriftCompensation``; IBM's chips calibrate an affine correction per
        column). It corrects what the layer's mean cannot: channels whose level mixes
        drift at different rates (the drift exponent falls with the conductance).
    """

    model: Literal["pcm", "rram"]
    g_levels_us: tuple[float, ...]
    g_max_us: float | None = Field(None, gt=0, le=1e6)
    source: str = ""
    prog_noise_scale: float = Field(1.0, ge=0, le=1e3)
    read_noise_scale: float = Field(1.0, ge=0, le=1e3)
    drift_scale: float = Field(1.0, ge=0, le=1e3)
    t0_s: float = Field(20.0, gt=0, le=MAX_TIME_S)
    t_read_s: float = Field(250e-9, gt=0, le=1.0)
    sigma_lognormal: float = Field(0.0, ge=0, le=10.0)
    stuck_on_rate: float = Field(0.0, ge=0, le=1)
    stuck_off_rate: float = Field(0.0, ge=0, le=1)
    compensation: bool = True
    compensation_scope: Literal["layer", "column"] = "layer"

    @model_validator(mode="after")
    def _levels(self) -> DeviceSpec:
        g = self.g_levels_us
        if any(v < 0 for v in g):
            raise ValueError(f"device.g_levels_us = {list(g)}: conductances cannot be negative")
        if any(b <= a for a, b in pairwise(g)):
            raise ValueError(
                f"device.g_levels_us = {list(g)}: must rise strictly from level 0 to the top"
            )
        if self.stuck_on_rate + self.stuck_off_rate > 1:
            raise ValueError(
                f"device.stuck_on_rate + stuck_off_rate = "
                f"{self.stuck_on_rate + self.stuck_off_rate:g}: at most 1 (shares of cells)"
            )
        return self

    @property
    def g_top_us(self) -> float:
        """The PCM formulas' ``g_max``."""
        return self.g_max_us if self.g_max_us is not None else self.g_levels_us[-1]

    @property
    def g_step_us(self) -> float:
        """The mean conductance step between levels (one bitline unit)."""
        g = self.g_levels_us
        return (g[-1] - g[0]) / (len(g) - 1)


class HardwareSpec(Section):
    """A complete crossbar accelerator description (see the module docstring)."""

    name: str = "custom"
    source: str = ""
    array: ArraySpec = ArraySpec()
    input: InputSpec = InputSpec()
    adc: AdcSpec = AdcSpec()
    timing: TimingSpec = TimingSpec()
    tech: TechSpec
    device: DeviceSpec | None = None

    @property
    def e_cell_read_pj(self) -> tuple[float, ...]:
        """Read energy of one cell at each level, pJ per driven input bit cycle:
        ``tech.e_cell_pj`` times ``array.devices_per_cell`` (each device conducts)."""
        n = self.array.devices_per_cell
        return tuple(e * n for e in self.tech.e_cell_pj)

    @model_validator(mode="after")
    def _levels(self) -> HardwareSpec:
        levels = 2**self.array.cell_bits
        if len(self.tech.e_cell_pj) != levels:
            raise ValueError(
                f"tech.e_cell_pj has {len(self.tech.e_cell_pj)} entries but "
                f"array.cell_bits = {self.array.cell_bits} gives {levels} levels; give one "
                f"energy per level"
            )
        if self.adc.col_mux > self.array.cols:
            raise ValueError(
                f"adc.col_mux = {self.adc.col_mux} exceeds array.cols = {self.array.cols}: "
                f"an ADC cannot share more columns than the array has"
            )
        return self

    @property
    def representation(self) -> Representation:
        return self.array.representation

    @property
    def cell_bits(self) -> int:
        return self.array.cell_bits

    def device_problem(self) -> str | None:
        """Why the ``device`` section cannot give this array's noise (None: it can). Checked
        where noise is asked for, not on load: an energy-only study may change
        ``array.cell_bits`` without rewriting the conductances."""
        if self.device is None:
            return (
                f"hardware '{self.name}' has no device section (conductance per level and "
                f"noise model)"
            )
        levels = 2**self.array.cell_bits
        if len(self.device.g_levels_us) != levels:
            return (
                f"device.g_levels_us has {len(self.device.g_levels_us)} entries but "
                f"array.cell_bits = {self.array.cell_bits} gives {levels} levels; give one "
                f"conductance per level"
            )
        return None

    def adc_policy(self, layer: str) -> tuple[str, int]:
        """(policy, bits) of layer ``layer``: its ``adc.layers`` entry, else the ADC's own."""
        own = self.adc.layers.get(layer)
        policy = own.policy if own is not None and own.policy is not None else self.adc.policy
        bits = own.bits if own is not None and own.bits is not None else self.adc.bits
        return policy, bits

    def e_adc_pj_at(self, bits: int | None = None) -> float:
        """Energy of one conversion at ``bits`` (default: this ADC's), in pJ."""
        b = self.adc.bits if bits is None else bits
        return self.tech.e_adc_pj * 2.0 ** (b - self.tech.e_adc_ref_bits)


def preset_names() -> list[str]:
    """Names of the presets shipped with hamq."""
    folder = resources.files("hamq.hardware") / "presets"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _read_yaml(text: str, source: str) -> dict[str, Any]:
    data = parse_yaml(text, source)
    if data is None:
        raise HamqError(
            f"{source} is empty; it must hold a hardware description (see hamq presets)"
        )
    if not isinstance(data, dict):
        raise HamqError(
            f"{source} must hold a YAML mapping (key: value), not {type(data).__name__}"
        )
    return data


def load_hardware(name_or_path: str | Path, **overrides: Any) -> HardwareSpec:
    """A preset by name, or a user's YAML file, with dotted-key overrides applied.

    ``overrides`` maps section.field (``array.cell_bits``) or a section name to a value;
    e.g. ``load_hardware("rram-1b", **{"array.representation": "shifted"})``.
    """
    text, source = _hardware_text(str(name_or_path))
    data = _read_yaml(text, source)
    for key, value in overrides.items():
        node = data
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise HamqError(f"hardware override '{key}': '{p}' is not a section")
        node[leaf] = value
    return validate(HardwareSpec, data, source=f"hardware description {source}")


def _hardware_text(name_or_path: str) -> tuple[str, str]:
    path = Path(name_or_path)
    if name_or_path.endswith((".yaml", ".yml")) or path.is_file():
        if not path.exists() and not path.is_symlink():
            raise HamqError(
                f"hardware file '{name_or_path}' does not exist; give a YAML file or one of "
                f"the presets: {', '.join(preset_names())}"
            )
        return read_text(path, "hardware file"), str(path)
    names = preset_names()
    if name_or_path not in names:
        raise unknown_name("hardware preset", name_or_path, names)
    folder = resources.files("hamq.hardware") / "presets"
    return (folder / f"{name_or_path}.yaml").read_text(), f"preset '{name_or_path}'"


def hardware_from_dict(data: dict[str, Any], source: str) -> HardwareSpec:
    """A hardware description from a plain mapping (as recorded in a run's ``run.json``)."""
    if not isinstance(data, dict):
        raise HamqError(f"{source} must be a mapping of hardware sections")
    return validate(HardwareSpec, data, source=f"hardware description {source}")


def override_hardware(hw: HardwareSpec, sets: list[str], source: str) -> HardwareSpec:
    """``hw`` with dotted ``section.field=value`` overrides (``--set adc.bits=6``), validated."""
    from hamq.training.config import apply_overrides

    data = apply_overrides(hw.model_dump(mode="json"), sets)
    return validate(HardwareSpec, data, source=f"hardware description {source}")
