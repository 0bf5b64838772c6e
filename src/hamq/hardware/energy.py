"""The crossbar energy and time model: closed form, pure functions, constants from the preset.

Per layer, for input vectors ``v`` (one per output position and sample), input cycles ``t``,
rows ``r`` and physical columns ``c`` (all group blocks)::

    E_cb     = sum_v sum_t sum_r a[v,t,r] * rowEnergy[r]
               rowEnergy[r] = sum_c E_cell[level(r,c)]
    E_adc    = conversions * E_adc(bits)
               E_adc(b) = e_adc_pj * 2**(b - e_adc_ref_bits)   (2x per bit, Walden FOM)
    E_periph = driven_row_cycles * e_driver_pj + conversions * e_shift_add_pj
    cycles   = vectors * input_cycles * mux_steps   (tiles in parallel, layers in sequence)
    TOPS/W   = 2 * MACs / E_total / 1e12

**Inputs.** Unsigned codes (after ReLU) are applied as ``a_bits`` magnitude bits; signed codes
(``|x| <= 2**(a_bits-1) - 1``) as two passes, positive part then negative part, of
``a_bits - 1`` magnitude bits each. With ``k = input.bits_per_cycle`` a DAC applies ``k`` bits
(one *digit* ``d``, LSB digit first) per cycle, so a pass takes ``ceil(m / k)`` cycles.
The DAC is modeled as pulse-width modulation: the row is held at the read voltage for
``d / (2**k - 1)`` of the cycle, so the read energy of a cell scales linearly with the
digit: ``a[v,t,r] = d / (2**k - 1)``. For ``k = 1`` this is the bit-serial case,
``a = x_bit``. A row is *driven* in a cycle when its digit is non-zero.

**ADC.** One conversion per physical column, per row tile, per input cycle, per input
vector. With ``adc.skip_zero`` a conversion is skipped when no cell of that column in that
row tile both sits on a driven row and has a non-zero level: the bitline then carries only
level-0 current, whose ideal result is 0 (detection assumed free). Timing is unchanged.

**Time.** An array has ``ceil(C / col_mux)`` ADCs; column ``c`` uses ADC ``c mod n_adc``
(interleaved), so a tile whose used columns are ``u`` needs ``ceil(min(u, C) / n_adc)``
conversion steps (*mux steps*) per input cycle, one ``t_cycle_ns`` each. All tiles of a
layer run in parallel on their own arrays; layers run one after another.

Functions here take tensors and numbers only; ``estimate.py`` streams data through them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hamq.hardware.mapping import LayerMapping, ceil_div
from hamq.hardware.spec import HardwareSpec

PJ = 1e-12  # joules per picojoule
NS = 1e-9  # seconds per nanosecond


@dataclass(frozen=True)
class InputSchedule:
    """How a layer's integer inputs are applied to the rows.

    passes: 1 for unsigned inputs, 2 for signed (positive part, then negative part).
    magnitude_bits: bits per pass (``a_bits`` unsigned, ``a_bits - 1`` signed).
    bits_per_cycle: DAC resolution ``k``.
    """

    passes: int
    magnitude_bits: int
    bits_per_cycle: int

    @property
    def digits(self) -> int:
        """Cycles per pass: ``ceil(magnitude_bits / bits_per_cycle)``."""
        return ceil_div(self.magnitude_bits, self.bits_per_cycle)

    @property
    def cycles(self) -> int:
        """Input cycles per input vector, all passes."""
        return self.passes * self.digits

    def digit_bits(self, i: int) -> int:
        """Bits in digit ``i`` (the top digit may be narrower than ``bits_per_cycle``)."""
        return min(self.bits_per_cycle, self.magnitude_bits - i * self.bits_per_cycle)


def input_schedule(a_bits: int, a_signed: bool, bits_per_cycle: int) -> InputSchedule:
    """The input schedule of a layer with ``a_bits`` inputs, signed or not."""
    if a_signed:
        return InputSchedule(2, a_bits - 1, bits_per_cycle)
    return InputSchedule(1, a_bits, bits_per_cycle)


def digits_of(magnitude: torch.Tensor, schedule: InputSchedule) -> torch.Tensor:
    """Digits applied per cycle: int64 ``magnitude.shape + (digits,)``, LSB digit first."""
    k = schedule.bits_per_cycle
    shifts = torch.arange(schedule.digits, device=magnitude.device, dtype=torch.int64) * k
    return (magnitude.to(torch.int64).unsqueeze(-1) >> shifts) & (2**k - 1)


def activity_table(schedule: InputSchedule) -> tuple[torch.Tensor, torch.Tensor]:
    """Per input magnitude ``0 .. 2**m - 1``: (read activity, driven cycles), float64.

    activity[x] = sum over digits d of x of ``d / (2**k - 1)`` (popcount(x) when k = 1);
    driven[x] = number of non-zero digits of x.
    """
    mags = torch.arange(2**schedule.magnitude_bits, dtype=torch.int64)
    d = digits_of(mags, schedule).to(torch.float64)
    full = 2**schedule.bits_per_cycle - 1
    return d.sum(-1) / full, (d > 0).sum(-1).to(torch.float64)


_M1, _M2, _M4 = 0x5555555555555555, 0x3333333333333333, 0x0F0F0F0F0F0F0F0F


def popcount_u8(x: torch.Tensor) -> torch.Tensor:
    """Set bits of each value of a uint8 tensor (uint8, same shape).

    SWAR popcount on eight bytes packed in one int64 (Hacker's Delight 5-1): a few integer
    ops on 1/8 of the elements instead of one pass per bit or a table gather.
    """
    flat = x.reshape(-1)
    pad = -flat.numel() % 8
    if pad:
        flat = torch.cat((flat, flat.new_zeros(pad)))
    v = flat.view(torch.int64)
    v = v - ((v >> 1) & _M1)
    v = (v & _M2) + ((v >> 2) & _M2)
    v = (v + (v >> 4)) & _M4
    out = v.view(torch.uint8)
    return (out[: x.numel()] if pad else out).reshape(x.shape)


def batch_activity(
    codes: torch.Tensor, schedule: InputSchedule
) -> tuple[torch.Tensor, torch.Tensor]:
    """Read activity and driven cycles of every input, summed over the batch (dim 0).

    Args:
        codes: integer input codes ``(B, ...)``, any integer dtype (their magnitudes are
            applied; uint8 magnitudes are the fast path).
    Returns:
        float64 ``(activity, driven)``, each of shape ``codes.shape[1:]``, as defined by
        :func:`activity_table`, with fast paths for the common cases.
    """
    mag = codes if codes.dtype == torch.uint8 else codes.abs()
    k, full = schedule.bits_per_cycle, 2**schedule.bits_per_cycle - 1
    if k == 1:  # bit-serial: activity = driven cycles = popcount
        ones = popcount_u8(mag.to(torch.uint8)).sum(0, dtype=torch.int64).to(torch.float64)
        return ones, ones
    if schedule.digits == 1:  # one DAC cycle per pass: activity = x / (2**k - 1)
        act = mag.sum(0, dtype=torch.int64).to(torch.float64) / full
        return act, (mag > 0).sum(0).to(torch.float64)
    digit_sum, driven = activity_table(schedule)
    table = torch.stack((digit_sum * full, driven), -1).to(torch.float32)  # integer valued
    both = F.embedding(mag.long(), table.to(mag.device)).sum(0).to(torch.float64)
    return both[..., 0] / full, both[..., 1]


def expected_activity(schedule: InputSchedule, p_bit: float) -> tuple[float, float]:
    """Expected (read activity, driven cycles) of one input when each magnitude bit is 1
    with probability ``p_bit``, independently (static mode).

    A digit of ``b`` bits has mean ``p_bit * (2**b - 1)`` and is non-zero with probability
    ``1 - (1 - p_bit)**b``. A signed input's magnitude goes to one of the two passes, so the
    sums over passes equal those of one pass.
    """
    full = 2**schedule.bits_per_cycle - 1
    act = drv = 0.0
    for i in range(schedule.digits):
        b = schedule.digit_bits(i)
        act += p_bit * (2**b - 1) / full
        drv += 1.0 - (1.0 - p_bit) ** b
    return act, drv


@dataclass(frozen=True)
class LayerSums:
    """Data-dependent sums of one layer over some samples (additive).

    samples: inferences summed; vectors: input vectors (per block) summed;
    e_cb_pj: crossbar cell energy; driven_row_cycles: (row, cycle) pairs with a non-zero
    digit, all blocks; conversions: ADC conversions performed (None: not counted here,
    i.e. every conversion happens, see :func:`full_conversions`).
    """

    samples: float
    vectors: float
    e_cb_pj: float
    driven_row_cycles: float
    conversions: float | None = None

    def __add__(self, other: LayerSums) -> LayerSums:
        conv = None
        if self.conversions is not None and other.conversions is not None:
            conv = self.conversions + other.conversions
        return LayerSums(
            self.samples + other.samples,
            self.vectors + other.vectors,
            self.e_cb_pj + other.e_cb_pj,
            self.driven_row_cycles + other.driven_row_cycles,
            conv,
        )


def window_row_sums(
    total_map: torch.Tensor,
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
) -> torch.Tensor:
    """Sum over all output positions of the input under every conv row (c_in, kh, kw).

    The rows of a conv layer are (c_in, kh, kw) taps, so ``sum_v sum_r m[v, r] w[r]`` equals
    ``sum_r w[r] * (sum_v m[v, r])``; the inner sum is linear in the map, so the map is
    summed over the batch first and unfolded once: no per-sample unfold, far cheaper than
    the layer itself.

    Args:
        total_map: float ``(C_in, H, W)``: a per-pixel map summed over the batch.
    Returns:
        float64 ``(C_in * kh * kw,)``, channel-major like the conv weight (so block ``g``
        of a grouped conv is the ``g``-th contiguous slice of ``K`` rows).
    """
    cols = F.unfold(
        total_map.unsqueeze(0).to(torch.float64), kernel_size, dilation, padding, stride
    )  # (1, C_in*kh*kw, L)
    return cols[0].sum(-1)


def skip_zero_conversions(
    vectors: torch.Tensor, levels: torch.Tensor, schedule: InputSchedule, tile_rows: int
) -> float:
    """ADC conversions performed with ``skip_zero``, counted exactly.

    Args:
        vectors: int64 input codes ``(G, V, K)`` (signed or not).
        levels: int64 cell levels ``(G, K, cols)``.
    Returns:
        number of (vector, cycle, row tile, column) conversions with at least one driven
        row whose cell in that column has a non-zero level.
    """
    nz = (levels > 0).to(torch.float32)  # (G, K, cols)
    k = vectors.shape[-1]
    signs = (1, -1) if schedule.passes == 2 else (1,)
    total = 0.0
    for sign in signs:
        digits = digits_of((vectors * sign).clamp(min=0), schedule)  # (G, V, K, D)
        for i in range(schedule.digits):
            driven = (digits[..., i] > 0).to(torch.float32)  # (G, V, K)
            for start in range(0, k, tile_rows):
                rows = slice(start, min(start + tile_rows, k))
                hits = torch.bmm(driven[:, :, rows], nz[:, rows, :])  # (G, V, cols)
                total += float((hits > 0).sum())
    return total


def static_skip_zero_conversions(
    levels: torch.Tensor, schedule: InputSchedule, tile_rows: int, p_bit: float
) -> float:
    """Expected conversions per input vector with ``skip_zero`` (static mode).

    Every row's digit is non-zero with probability ``q = 1 - (1 - p_bit)**b`` (halved for
    signed inputs: each pass sees half the inputs), independently, ignoring zero padding;
    a column of a row tile with ``n`` non-zero cells converts with probability
    ``1 - (1 - q)**n``.
    """
    nz = (levels > 0).to(torch.float64)  # (G, K, cols)
    k = levels.shape[1]
    counts = [nz[:, s : s + tile_rows].sum(1) for s in range(0, k, tile_rows)]
    n = torch.stack(counts)  # (tiles, G, cols)
    share = 0.5 if schedule.passes == 2 else 1.0
    total = 0.0
    for i in range(schedule.digits):
        q = share * (1.0 - (1.0 - p_bit) ** schedule.digit_bits(i))
        total += schedule.passes * float((1.0 - (1.0 - q) ** n).sum())
    return total


def full_conversions(mapping: LayerMapping, schedule: InputSchedule) -> int:
    """Conversions per input vector without skipping: cycles x row tiles x columns x groups."""
    return schedule.cycles * mapping.row_tiles * mapping.cols * mapping.groups


def mux_steps(mapping: LayerMapping, hw: HardwareSpec) -> int:
    """Sequential conversions per input cycle in the busiest tile (interleaved ADC sharing)."""
    n_adc = ceil_div(hw.array.cols, hw.adc.col_mux)
    return ceil_div(min(mapping.cols, hw.array.cols), n_adc)


@dataclass(frozen=True)
class LayerCost:
    """Per-inference energy and time of one layer (the closed form applied to its sums)."""

    e_cb_j: float
    e_adc_j: float
    e_periph_j: float
    conversions: float
    cycles: float
    latency_s: float
    macs: float

    @property
    def e_total_j(self) -> float:
        return self.e_cb_j + self.e_adc_j + self.e_periph_j


def layer_cost(
    mapping: LayerMapping, schedule: InputSchedule, sums: LayerSums, hw: HardwareSpec
) -> LayerCost:
    """Energy (J), cycles, latency (s) and MACs of one inference of a layer.

    ``sums`` are totals over ``sums.samples`` inferences; everything is divided by it.
    """
    n = sums.samples
    vectors = sums.vectors / n  # per inference, per block
    conversions = (
        vectors * full_conversions(mapping, schedule)
        if sums.conversions is None
        else sums.conversions / n
    )
    e_adc_pj = conversions * hw.e_adc_pj_at()
    e_periph_pj = (
        sums.driven_row_cycles / n * hw.tech.e_driver_pj + conversions * hw.tech.e_shift_add_pj
    )
    cycles = vectors * schedule.cycles * mux_steps(mapping, hw)
    return LayerCost(
        e_cb_j=sums.e_cb_pj / n * PJ,
        e_adc_j=e_adc_pj * PJ,
        e_periph_j=e_periph_pj * PJ,
        conversions=conversions,
        cycles=cycles,
        latency_s=cycles * hw.timing.t_cycle_ns * NS,
        macs=vectors * mapping.groups * mapping.rows * mapping.weights,
    )


def tops_per_w(macs: float, e_total_j: float) -> float:
    """Throughput per power: ``2 * MACs / energy`` in 1e12 operations per joule (= TOPS/W)."""
    return 2.0 * macs / e_total_j / 1e12 if e_total_j > 0 else float("inf")
