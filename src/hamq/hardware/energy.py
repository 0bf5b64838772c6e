"""The crossbar energy and time model: the one place where a layer's energy is computed.

:func:`layer_cost` turns a layer's additive sums (:class:`LayerSums`) into its row of the
report (:class:`LayerEnergy`). Data mode, static mode and the ``energy`` regularizer reach
E_cb through the same functions, in one direction::

    input codes --input_activity--> activity per input element (summed over the batch)
                --row_activity-->   activity per crossbar row a[r]
    a[r] x rowEnergy[r] --e_cb_pj--> E_cb

Data mode (``estimate.py``) adds one :func:`batch_sums` per batch; static mode builds one
:func:`expected_sums` from an assumed input bit activity; the regularizer calls
:func:`input_activity` and :func:`row_activity` on training batches and :func:`e_cb_pj` with
row energies that are differentiable in the weights. Row energies come from the mapping
(``mapping.py``: ``LayerMapping.row_energy_pj``).

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

Functions here take tensors, numbers and a :class:`~hamq.hardware.mapping.LayerMapping`;
``estimate.py`` streams data through them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

import torch
import torch.nn.functional as F

from hamq.hardware.mapping import ConvGeometry, LayerMapping, ceil_div, popcount_u8
from hamq.hardware.spec import HardwareSpec

PJ = 1e-12  # joules per picojoule
NS = 1e-9  # seconds per nanosecond


# ---------------------------------------------------------------- inputs -> activity


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


# 1.5 * 2**23: adding it to a float32 of magnitude < 2**22 leaves a float whose ulp is 1,
# so the addition itself rounds to the nearest integer, ties to even (IEEE 754, as
# torch.round), and the low mantissa bits then hold 2**22 + that integer.
_ROUND_F32 = 12582912.0


def quantize_codes(
    x: torch.Tensor, scale: torch.Tensor | float, lo: int, hi: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The integer codes an input quantizer applies to the rows, and their magnitudes.

    ``codes = clamp(round(x / scale), lo, hi)`` (round half to even), the values of
    ``ActQuantizer.to_int`` and of the integers inside its fake-quantized forward.

    Args:
        x: float layer input, any shape.
        scale: the quantizer's step (0-d tensor or number).
        lo, hi: the integer range, within -128 .. 255 (a_bits <= 8).
    Returns:
        ``(codes, magnitudes)``: ``codes`` as a new float tensor of ``x``'s dtype and shape
        (integer valued; the caller may scale it in place), ``magnitudes = |codes|`` as
        uint8. For float32 the rounding is one addition of 1.5 * 2**23 and the magnitudes
        are the low byte of the sum's bits: no float -> uint8 cast, which torch does
        element by element, several times slower than the other passes.
    """
    z = torch.div(x, scale).clamp_(lo, hi)
    if z.dtype == torch.float32 and -128 <= lo and hi <= 255:
        low = z.add_(_ROUND_F32).view(torch.int32)
        mag = low.to(torch.uint8) if lo >= 0 else low.to(torch.int8).abs_().view(torch.uint8)
        return z.sub_(_ROUND_F32), mag
    z = z.round_()
    return z, z.abs().to(torch.uint8)


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


def input_activity(
    codes: torch.Tensor, schedule: InputSchedule
) -> tuple[torch.Tensor, torch.Tensor]:
    """Read activity and driven cycles of every input element, summed over the batch.

    Args:
        codes: integer input codes ``(B, ...)``, any integer dtype (their magnitudes are
            applied); uint8 magnitudes (:func:`quantize_codes`) are the fast path.
    Returns:
        float64 ``(activity, driven)``, each of shape ``codes.shape[1:]``:
        ``activity[i] = sum_b sum_t a[b, t, i]`` and ``driven[i]`` = number of (sample,
        cycle) pairs with a non-zero digit, as tabulated by :func:`activity_table`. With
        ``k = 1`` both are the popcount and the same tensor is returned twice.
    """
    mag = codes if codes.dtype == torch.uint8 else codes.abs()
    if mag.dtype != torch.uint8 and schedule.magnitude_bits <= 8:
        mag = mag.to(torch.uint8)
    full = 2**schedule.bits_per_cycle - 1
    if mag.dtype == torch.uint8 and schedule.bits_per_cycle == 1:
        # At most 8 bits per sample: int16 holds the sum of 4095 samples (and is summed
        # 2x faster than int32), int32 that of 2**28.
        acc = torch.int16 if mag.shape[0] <= 4095 else torch.int32
        ones = popcount_u8(mag).sum(0, dtype=acc).to(torch.float64)
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


def row_activity(total: torch.Tensor, conv: ConvGeometry | None, groups: int) -> torch.Tensor:
    """Activity of every crossbar row from a per-input-element map summed over the batch.

    ``sum_v m[v, r] * w[r] = sum_r w[r] * (sum_v m[v, r])`` and the inner sum is linear in
    the map, so the map is summed over the batch first and each row takes its sum once.
    A conv row is a tap ``(c, i, j)``; the input elements it reads over all output positions
    form a grid, so its sum is ``U[i] @ total[c] @ V[j]`` with ``U[i, h] = 1`` where input
    row ``h`` is under kernel row ``i`` at some output row (likewise ``V`` for columns):
    two small matrix products, exact in float64, and zero padding adds nothing.

    Args:
        total: a per-element map summed over the batch, ``(C_in, H, W)`` for a conv
            (``conv`` given), ``(..., K)`` for a linear layer; any dtype.
        groups: group blocks of the layer (1 for a linear layer).
    Returns:
        float64 ``(groups, K)``, rows in the channel-major order of the conv weight.
    """
    if conv is None:
        k = total.shape[-1]
        return total.reshape(-1, k).sum(0, dtype=torch.float64).reshape(1, k)
    h, w = total.shape[-2:]
    c, dev = conv, total.device
    u = _taps(h, c.kernel_size[0], c.stride[0], c.padding[0], c.dilation[0], dev)  # (kh, H)
    v = _taps(w, c.kernel_size[1], c.stride[1], c.padding[1], c.dilation[1], dev)  # (kw, W)
    rows = u @ (total.to(torch.float64) @ v.T)  # (C_in, kh, kw)
    return rows.reshape(groups, -1)


@cache
def _taps(size: int, k: int, s: int, p: int, d: int, device: torch.device) -> torch.Tensor:
    """float64 ``(k, size)``: 1 where input index ``h`` (of ``size`` along one axis) is read
    by kernel index ``i`` at some output position (kernel ``k``, stride ``s``, padding
    ``p``, dilation ``d``), else 0. Cached: the same few geometries come every batch."""
    out = (size + 2 * p - d * (k - 1) - 1) // s + 1
    read = torch.arange(out, device=device) * s - p + d * torch.arange(k, device=device)[:, None]
    hits = (read[..., None] == torch.arange(size, device=device)).any(1)  # (k, size)
    return hits.to(torch.float64)


def vectors_per_sample(
    sample_shape: tuple[int, ...] | torch.Size, conv: ConvGeometry | None
) -> int:
    """Input vectors (per group block) of one sample of shape ``sample_shape`` (no batch
    dimension): output positions of a conv, leading elements of a linear layer's input."""
    if conv is not None:
        return conv.positions(tuple(sample_shape[1:]))
    return int(torch.Size(sample_shape).numel()) // sample_shape[-1]


def input_vectors(codes: torch.Tensor, mapping: LayerMapping) -> torch.Tensor:
    """Row input vectors of a batch of input codes: int64 ``(groups, V, K)``.

    ``V`` = batch * output positions for a convolution, batch (times any leading dims)
    for a linear layer. Zero padding enters as zero inputs, as on the array.
    """
    if mapping.conv is None:
        vecs = codes.reshape(1, -1, codes.shape[-1]).to(torch.int64)
        return _stored_rows(vecs, mapping.kept_rows)
    c = mapping.conv
    cols = F.unfold(codes.to(torch.float64), c.kernel_size, c.dilation, c.padding, c.stride)
    b, _, length = cols.shape  # (B, C_in*kh*kw, L), channel-major
    k = mapping.dense_rows or mapping.rows
    cols = cols.reshape(b, mapping.groups, k, length).permute(1, 0, 3, 2)
    vecs = cols.reshape(mapping.groups, b * length, k).round().to(torch.int64)
    return _stored_rows(vecs, mapping.kept_rows)


def _stored_rows(per_row: torch.Tensor, kept_rows: torch.Tensor | None) -> torch.Tensor:
    """``per_row[..., kept_rows]``: a per-unroll-row quantity on the rows the arrays store
    (the index-free layout's, in storage order), or unchanged when all rows are stored."""
    if kept_rows is None:
        return per_row
    return per_row.index_select(-1, kept_rows.to(per_row.device))


# ---------------------------------------------------------------- activity -> E_cb


def e_cb_pj(row_activity: torch.Tensor, row_energy_pj: torch.Tensor) -> torch.Tensor:
    """Crossbar cell energy ``E_cb = sum_r a[r] * rowEnergy[r]``, in pJ (0-d tensor).

    Args:
        row_activity: ``a[r]``, activity of each row summed over input vectors and cycles,
            ``(groups, K)``.
        row_energy_pj: energy of one full-input read of each row, ``(groups, K)``, pJ:
            exact (``LayerMapping.row_energy_pj``) or differentiable in the weights (the
            ``energy`` regularizer).
    """
    return (row_activity * row_energy_pj).sum()


def e_cb_floor_pj(
    row_activity: torch.Tensor, cells_per_row: torch.Tensor, e_min_pj: float
) -> torch.Tensor:
    """``E_cb`` with every cell at its cheapest state: ``e_min * sum_r a[r] * cells[r]``, pJ.

    Args:
        row_activity: ``a[r]`` as in :func:`e_cb_pj`, ``(groups, K)``.
        cells_per_row: cells each row reads, broadcastable to ``(groups, K)``.
        e_min_pj: the cheapest cell state's read energy.
    """
    return e_min_pj * (row_activity * cells_per_row).sum()


# ---------------------------------------------------------------- ADC conversions


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


def full_conversions(
    mapping: LayerMapping, schedule: InputSchedule, skip_empty: bool = False
) -> int:
    """Conversions per input vector without ``skip_zero``: cycles x row tiles x columns x
    groups, or with ``skip_empty`` (``array.skip_empty_columns``) cycles x the (group, row
    tile, column) triples holding an ON cell."""
    if skip_empty:
        return schedule.cycles * mapping.nonempty_tile_columns
    return schedule.cycles * mapping.row_tiles * mapping.cols * mapping.groups


def mux_steps(mapping: LayerMapping, hw: HardwareSpec) -> int:
    """Sequential conversions per input cycle in the busiest tile (interleaved ADC sharing);
    with ``array.skip_empty_columns`` a block's tiles hold only its mapped columns."""
    n_adc = ceil_div(hw.array.cols, hw.adc.col_mux)
    cols = mapping.cols
    if hw.array.skip_empty_columns:
        cols = max(1, int((mapping.tile_column_sums.sum(1) > 0).sum(-1).max()))
    return ceil_div(min(cols, hw.array.cols), n_adc)


# ---------------------------------------------------------------- the per-layer result


@dataclass(frozen=True)
class LayerSums:
    """Data-dependent sums of one layer over ``samples`` inferences (additive: ``a + b``).

    samples: inferences summed; vectors: input vectors (per block) summed;
    row_activity: float64 ``(groups, K)``, each row's activity summed over input vectors
    and cycles (``sum_v sum_t a[v,t,r]``); driven_row_cycles: (row, cycle) pairs with a
    non-zero digit, all blocks; conversions: ADC conversions performed (None: not counted
    here, i.e. every conversion happens, see :func:`full_conversions`).
    """

    samples: float
    vectors: float
    row_activity: torch.Tensor
    driven_row_cycles: float
    conversions: float | None = None

    def __add__(self, other: LayerSums) -> LayerSums:
        conv = None
        if self.conversions is not None and other.conversions is not None:
            conv = self.conversions + other.conversions
        return LayerSums(
            self.samples + other.samples,
            self.vectors + other.vectors,
            self.row_activity + other.row_activity.to(self.row_activity.device),
            self.driven_row_cycles + other.driven_row_cycles,
            conv,
        )


def batch_sums(
    codes: torch.Tensor,
    schedule: InputSchedule,
    conv: ConvGeometry | None,
    groups: int,
    kept_rows: torch.Tensor | None = None,
) -> LayerSums:
    """The sums of one batch of integer input codes (``(B, C, H, W)`` for a conv, ``(B, ...,
    K)`` for a linear layer; uint8 magnitudes are enough: signs do not change E_cb).
    ``kept_rows``: the rows an index-free layout stores (``mapping.kept_rows``); only they
    are driven. Conversions are not counted here (see :func:`skip_zero_conversions`)."""
    act, drv = input_activity(codes, schedule)
    rows = _stored_rows(row_activity(act, conv, groups), kept_rows)
    driven = rows if drv is act else _stored_rows(row_activity(drv, conv, groups), kept_rows)
    b = codes.shape[0]
    vectors = b * vectors_per_sample(codes.shape[1:], conv)
    return LayerSums(b, vectors, rows, float(driven.sum()))


def expected_sums(
    sample_shape: tuple[int, ...],
    schedule: InputSchedule,
    conv: ConvGeometry | None,
    groups: int,
    p_bit: float,
    kept_rows: torch.Tensor | None = None,
) -> LayerSums:
    """Expected sums of one inference with input of ``sample_shape`` (no batch dimension)
    when every input magnitude bit is 1 with probability ``p_bit`` (static mode).

    Every input element has the same expected activity (:func:`expected_activity`), so the
    rows' activity is that times the number of input elements under each row (zero
    padding excluded): :func:`row_activity` of a map of ones. Conversions are not counted
    here (see :func:`static_skip_zero_conversions`).
    """
    act, drv = expected_activity(schedule, p_bit)
    taps = row_activity(torch.ones(sample_shape, dtype=torch.float64), conv, groups)
    taps = _stored_rows(taps, kept_rows)
    vectors = vectors_per_sample(sample_shape, conv)
    return LayerSums(1.0, float(vectors), act * taps, drv * float(taps.sum()))


def tops_per_w(macs: float, e_total_j: float) -> float:
    """Throughput per power: ``2 * MACs / energy`` in 1e12 operations per joule (= TOPS/W)."""
    return 2.0 * macs / e_total_j / 1e12 if e_total_j > 0 else float("inf")


@dataclass(frozen=True)
class LayerEnergy:
    """One layer of the report, per inference: what :func:`layer_cost` returns.

    rows, cols: crossbar rows (K) and physical columns of one group block; groups: blocks;
    tiles: arrays allocated (groups x row tiles x column tiles); utilization: used cells /
    allocated cells; cells_on: cells at a non-zero level; on_fraction: cells_on / used
    cells; input_cycles: cycles per input vector; vectors: input vectors per inference;
    conversions: ADC conversions; cycles: array cycles; latency_s: seconds; energies in
    joules; adc_bits: the bits each of the layer's conversions is charged at;
    mapped_cols: physical columns mapped (all blocks; fewer than ``groups * cols`` when
    all-OFF columns are not mapped), an area proxy with ``tiles``.

    Index-free layout (row-pruned layers; for other layers the dense figures equal the
    layer's own and the index figures are 0): dense_rows, dense_tiles, dense_cells: ``K``,
    arrays and used cells of the layer had every row been stored; csr_index_bits: the
    index memory a CSR-style layout of the same stored rows would need (one
    ``ceil(log2 K)``-bit row index per stored row), which the LFSR replaces;
    lfsr_clocks: register clocks per inference (one regeneration of the stored rows'
    addresses per input vector); e_lfsr_j: their energy (included in ``e_periph_j``).

    row_activity_mean: mean read activity of a stored row per input vector, summed over
    its cycles: for bit-serial inputs the mean number of 1 bits of the input codes the
    rows read (0 .. input bits). E_cb is this times the rows' mean read energy, times
    rows and vectors: the input side of E_cb, which the weights do not change.
    e_cb_floor_j: the E_cb of the same inputs on the same arrays with every cell at its
    cheapest state (``min(e_cell_pj)``, state 0 on every preset): the least E_cb any
    choice of these weights can draw, so the bound of a regularizer that changes only
    weights (HamQ, ``bits``, L1); only fewer input 1 bits, fewer rows or fewer cells go
    below it (:func:`e_cb_floor_pj`).
    """

    name: str
    kind: str
    groups: int
    rows: int
    cols: int
    tiles: int
    row_tiles: int
    col_tiles: int
    utilization: float
    cells_on: int
    on_fraction: float
    input_cycles: int
    vectors: float
    macs: float
    conversions: float
    cycles: float
    latency_s: float
    e_cb_j: float
    e_adc_j: float
    e_periph_j: float
    adc_bits: int = 0
    mapped_cols: int = 0
    dense_rows: int = 0
    dense_tiles: int = 0
    dense_cells: int = 0
    csr_index_bits: int = 0
    lfsr_clocks: float = 0.0
    e_lfsr_j: float = 0.0
    row_activity_mean: float = 0.0
    e_cb_floor_j: float = 0.0

    @property
    def e_total_j(self) -> float:
        return self.e_cb_j + self.e_adc_j + self.e_periph_j

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["e_cb_ad_j"] = self.e_cb_j + self.e_adc_j
        d["e_total_j"] = self.e_total_j
        d["tops_per_w"] = tops_per_w(self.macs, self.e_total_j)
        return d


def layer_cost(
    mapping: LayerMapping,
    schedule: InputSchedule,
    sums: LayerSums,
    hw: HardwareSpec,
    adc_bits: int | None = None,
) -> LayerEnergy:
    """Energy (J), cycles, latency (s), MACs and mapping figures of one inference of a layer.

    ``sums`` are totals over ``sums.samples`` inferences; everything is divided by it.
    ``adc_bits``: the layer's ADC resolution (default ``adc.bits``).
    """
    n = sums.samples
    vectors = sums.vectors / n  # per inference, per block
    skip_empty = hw.array.skip_empty_columns
    conversions = (
        vectors * full_conversions(mapping, schedule, skip_empty)
        if sums.conversions is None
        else sums.conversions / n
    )
    bits = hw.adc.bits if adc_bits is None else adc_bits
    row_e_pj = mapping.row_energy_pj(hw.e_cell_read_pj)
    cells_read = torch.full((mapping.groups,), float(mapping.cols), dtype=row_e_pj.dtype,
                            device=row_e_pj.device)  # fmt: skip
    if skip_empty:  # unmapped (all-OFF) columns are not on the arrays: no level-0 reads
        mapped = (mapping.tile_column_sums.sum(1) > 0).sum(-1)  # (groups,)
        unmapped = (mapping.cols - mapped).to(row_e_pj.dtype).to(row_e_pj.device)
        row_e_pj = row_e_pj - hw.e_cell_read_pj[0] * unmapped[:, None]
        cells_read = cells_read - unmapped
    activity = sums.row_activity.to(row_e_pj.device)
    e_cb = float(e_cb_pj(activity, row_e_pj)) / n
    e_floor = float(e_cb_floor_pj(activity, cells_read[:, None], min(hw.e_cell_read_pj))) / n
    e_adc_pj = conversions * hw.e_adc_pj_at(bits)
    lfsr_clocks = 0.0 if mapping.row_layout is None else vectors * mapping.row_layout.clocks
    e_lfsr_pj = lfsr_clocks * hw.tech.e_lfsr_step_pj
    e_periph_pj = (
        sums.driven_row_cycles / n * hw.tech.e_driver_pj
        + conversions * hw.tech.e_shift_add_pj
        + e_lfsr_pj
    )
    cycles = vectors * schedule.cycles * mux_steps(mapping, hw)
    cells_on = mapping.cells_on
    return LayerEnergy(
        name=mapping.name,
        kind=mapping.kind,
        groups=mapping.groups,
        rows=mapping.rows,
        cols=mapping.cols,
        tiles=mapping.mapped_tiles if skip_empty else mapping.tiles,
        row_tiles=mapping.row_tiles,
        col_tiles=mapping.col_tiles,
        utilization=(
            mapping.cells_used / (mapping.mapped_tiles * mapping.tile_rows * mapping.tile_cols)
            if skip_empty
            else mapping.utilization
        ),
        cells_on=cells_on,
        on_fraction=cells_on / mapping.cells_used,
        input_cycles=schedule.cycles,
        vectors=vectors,
        macs=vectors * mapping.groups * mapping.rows * mapping.weights,
        conversions=conversions,
        cycles=cycles,
        latency_s=cycles * hw.timing.t_cycle_ns * NS,
        e_cb_j=e_cb * PJ,
        e_adc_j=e_adc_pj * PJ,
        e_periph_j=e_periph_pj * PJ,
        adc_bits=bits,
        mapped_cols=mapping.mapped_cols if skip_empty else mapping.cols * mapping.groups,
        **_layout_figures(mapping, skip_empty),
        lfsr_clocks=lfsr_clocks,
        e_lfsr_j=e_lfsr_pj * PJ,
        row_activity_mean=float(sums.row_activity.sum())
        / n
        / max(1e-12, vectors * mapping.groups * mapping.rows),
        e_cb_floor_j=e_floor * PJ,
    )


def _layout_figures(mapping: LayerMapping, skip_empty: bool) -> dict[str, int]:
    """The dense layout's rows, arrays and cells beside the layer's own, and the bits a
    CSR-style row index would take (:class:`LayerEnergy`)."""
    k = mapping.dense_rows or mapping.rows
    if mapping.row_layout is None:
        tiles = mapping.mapped_tiles if skip_empty else mapping.tiles
        return {"dense_rows": k, "dense_tiles": tiles, "dense_cells": mapping.cells_used,
                "csr_index_bits": 0}  # fmt: skip
    # Dense: every row stored (the pruned ones all at weight 0). With skip_empty_columns
    # the mapped columns are taken as the stored rows': exact where a zero weight is all
    # OFF (not for shifted words, whose zero has ON cells: a lower bound there).
    per_block = (
        (mapping.tile_column_sums.sum(1) > 0).sum(-1) if skip_empty
        else torch.full((mapping.groups,), mapping.cols)
    )  # fmt: skip
    col_tiles = int(torch.clamp(-(-per_block // mapping.tile_cols), min=1).sum())
    return {
        "dense_rows": k,
        "dense_tiles": col_tiles * mapping.dense_row_tiles,
        "dense_cells": mapping.groups * k * mapping.cols,
        "csr_index_bits": mapping.rows * max(1, (k - 1).bit_length()),
    }
