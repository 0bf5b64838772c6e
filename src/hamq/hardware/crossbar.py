"""What a crossbar computes: the bit-level arithmetic of one mapped layer, with its ADC.

The energy model (``energy.py``) says what an inference *costs*; this module says what the
same arrays *compute*. It reads the same :class:`~hamq.hardware.mapping.LayerMapping`
(cell levels, tiles) and :class:`~hamq.hardware.energy.InputSchedule` (passes, digits per
cycle), so the two cannot disagree on the layout.

For input vector ``v``, pass ``p`` (sign ``+1``, or ``-1`` for the negative part of signed
inputs), input digit ``d`` (``k = bits_per_cycle`` bits, LSB digit first), row tile ``t``
and physical column ``c``::

    P[v,p,d,t,c] = sum_{r in tile t} digit_d(x_p[v, r]) * level[r, c]        bitline sum
    Q            = ADC(P)                                                    per conversion
    y[v, n]      = sum_p sign_p * ( sum_d 2**(k*d) sum_t sum_{c of n} place[c] * Q[v,p,d,t,c]
                                    - offset * sum_r x_p[v, r] )

``place[c]`` is the weight of column ``c`` in the recombination (:func:`place_values`):
``set_sign * 2**(cell_bits * slice)`` with ``set_sign = -1`` for the negative column set of
a differential pair (the *differential subtraction*, done digitally after both columns are
converted, as the energy model's one conversion per physical column assumes), and
``-2**(bits-1)`` for the MSB column of a two's-complement word (the *sign slice*).
``offset = 2**(bits-1)`` for shifted unsigned weights: removed digitally with the sum of
the inputs of the vector (which the digital periphery knows exactly), as in DNN+NeuroSim;
0 otherwise.

**The ADC.** ``Q = step * clamp(round(P / step), 0, 2**bits - 1)`` (round half to even):
``2**bits`` output codes spaced ``step`` apart from 0. The range is ``[0, step * (2**bits -
1)]``. The offset of the transfer is fixed at 0: bitline sums of non-negative digits and
levels start at 0, 0 is by far the most frequent sum, and a zero sum then converts to 0
exactly, so skipping a conversion (``skip_zero``, empty columns) never changes a result.
``step = 1`` with ``2**bits - 1 >= P_max`` is lossless (:func:`lossless_bits`).

**What a column sum cannot compute.** A sign-magnitude weight multiplies its magnitude by
a sign stored in another bit of the same word; a two's-complement word in cells of more
than one bit puts the sign bit inside a multi-level cell next to magnitude bits. A bitline
sum is linear in the cell levels, so neither can be recombined from column sums:
:func:`check_simulatable` refuses both with the fix (they remain valid for the energy
model, which only counts cells).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hamq.hardware.energy import InputSchedule
from hamq.hardware.mapping import ConvGeometry, ceil_div
from hamq.hardware.representation import Representation, column_sets, n_slices

#: Largest bitline sum a float32 matrix product holds exactly (its 24-bit mantissa).
_F32_EXACT = 2**24


def check_simulatable(bits: int, rep: Representation, cell_bits: int) -> None:
    """Raise ValueError (naming the field and the fix) when column sums cannot compute
    ``bits``-bit weights stored as ``rep`` in ``cell_bits``-bit cells."""
    if rep == "sign_magnitude":
        raise ValueError(
            "array.representation = sign_magnitude: a bitline sum cannot apply a sign stored "
            "in another bit of the word; simulate with differential, twos_complement or "
            "shifted"
        )
    if rep == "twos_complement" and cell_bits > 1:
        raise ValueError(
            f"array.representation = twos_complement with array.cell_bits = {cell_bits}: the "
            f"sign bit shares a multi-level cell with magnitude bits, and a bitline sum "
            f"cannot weight it negatively; use cell_bits: 1, or differential or shifted"
        )


def place_values(bits: int, rep: Representation, cell_bits: int) -> torch.Tensor:
    """Recombination weight of each of a weight's physical columns, float64
    ``(cells_per_weight,)``, in the mapping's column order (set-major, LSB slice first)."""
    check_simulatable(bits, rep, cell_bits)
    n = n_slices(bits, rep, cell_bits)
    place = 2.0 ** (torch.arange(n, dtype=torch.float64) * cell_bits)
    if rep == "twos_complement":  # 1-bit cells: the top slice is the sign bit
        place[-1] = -(2.0 ** (bits - 1))
    if column_sets(rep) == 2:
        return torch.cat((place, -place))
    return place


def word_offset(bits: int, rep: Representation) -> int:
    """What the stored word adds to the weight: ``2**(bits-1)`` for shifted, else 0."""
    return 2 ** (bits - 1) if rep == "shifted" else 0


def max_partial_sum(rows: int, bits_per_cycle: int, cell_bits: int) -> int:
    """Largest bitline sum of a row tile with ``rows`` driven rows: every digit and every
    level at its maximum, ``rows * (2**k - 1) * (2**cell_bits - 1)``."""
    return rows * (2**bits_per_cycle - 1) * (2**cell_bits - 1)


def lossless_bits(p_max: int) -> int:
    """Fewest ADC bits that convert every sum ``0 .. p_max`` exactly (step 1)."""
    return max(1, int(p_max).bit_length())


@dataclass(frozen=True)
class AdcTransfer:
    """An ADC's transfer: ``bits`` codes spaced ``step`` apart from 0 (see the module
    docstring). ``step >= 1`` (a finer step than one bitline unit resolves nothing)."""

    bits: int
    step: float = 1.0

    def __post_init__(self) -> None:
        if not 1 <= self.bits <= 24:
            raise ValueError(f"ADC bits = {self.bits}: must be in 1..24")
        if not self.step >= 1.0:
            raise ValueError(f"ADC step = {self.step}: must be at least 1 bitline unit")

    @property
    def full_scale(self) -> float:
        """Largest converted value, ``step * (2**bits - 1)``."""
        return self.step * (2**self.bits - 1)

    def lossless_for(self, p_max: int) -> bool:
        """Whether every sum ``0 .. p_max`` converts exactly."""
        return self.step == 1.0 and 2**self.bits - 1 >= p_max

    def convert(self, p: torch.Tensor) -> torch.Tensor:
        """Converted values of bitline sums ``p`` (float tensor, any shape; a new tensor)."""
        return self.convert_(p.clone())

    def convert_(self, p: torch.Tensor) -> torch.Tensor:
        """:meth:`convert` in place (``p`` is overwritten and returned)."""
        return self.codes_(p).mul_(self.step) if self.step != 1.0 else self.codes_(p)

    def codes_(self, p: torch.Tensor) -> torch.Tensor:
        """The output codes ``clamp(round(p / step), 0, 2**bits - 1)`` of sums ``p``, in
        place (integers, exact in float32). The division is done in ``p``'s dtype: in
        float32 a sum exactly half a step from two codes may round either way."""
        top = float(2**self.bits - 1)
        if self.step == 1.0:  # integer sums round to themselves; noisy sums to a code
            return p.round_().clamp_(0.0, top)
        return p.div_(self.step).round_().clamp_(0.0, top)


def full_scale_transfer(bits: int, p_max: int) -> AdcTransfer:
    """A ``bits``-bit ADC whose range covers the largest possible sum ``p_max`` (no
    calibration data): lossless when the bits suffice, else ``step = p_max / (2**bits-1)``."""
    return AdcTransfer(bits, max(1.0, p_max / (2**bits - 1)))


def crossbar_mvm(
    vectors: torch.Tensor,
    levels: torch.Tensor,
    schedule: InputSchedule,
    place: torch.Tensor,
    offset: int,
    tile_rows: int,
    adc: AdcTransfer | None = None,
    observe: Callable[[torch.Tensor], None] | None = None,
    noisy: bool = False,
) -> torch.Tensor:
    """The integer outputs of a mapped layer for a batch of input vectors, as the arrays
    compute them (every bitline sum through ``adc``; None: ideal conversions).

    Columns whose every conversion is provably lossless (:func:`lossless_columns`) are
    summed in one matrix product of the inputs with their recombined levels; only the
    others go through the per-digit, per-tile bitline sums and the ADC.

    Args:
        vectors: integer input codes ``(G, V, K)`` (signed codes go in two passes).
        levels: cell levels ``(G, K, cols)``, any numeric dtype, ``cols = N *
            place.numel()`` in the mapping's weight-major column order.
        schedule: passes and digits of the inputs (``energy.input_schedule``).
        place: :func:`place_values`; offset: :func:`word_offset`.
        tile_rows: rows of one array; the K rows split into ``ceil(K / tile_rows)`` tiles.
        noisy: ``levels`` are real-valued (noisy conductances in bitline units,
            ``noise.py``): every column goes through its ADC (no column is provably
            lossless), unless ``adc`` is None.
        observe: called with the bitline sums of every column before conversion, one
            float ``(G*T, V, cols)`` block per pass and digit (all columns go through the
            bitline sums then), e.g. to build a calibration histogram; the block is
            overwritten after the call (copy it to keep it).
    Returns:
        float64 ``(G, V, N)``: equal to ``vectors @ weights`` when every conversion is
        lossless.
    """
    g, v, k = vectors.shape
    cols = levels.shape[-1]
    cpw = place.numel()
    n = cols // cpw
    col_place = place.to(torch.float64).repeat(n)  # (cols,)
    lossy = (
        torch.ones(cols, dtype=torch.bool)
        if observe is not None or (noisy and adc is not None)
        else (~lossless_columns(levels, schedule, tile_rows, adc))
    )
    out = torch.zeros(g, v, n, dtype=torch.float64)
    exact = ~lossy
    if bool(exact.any()):  # recombined levels of the lossless columns, one product
        w = levels.to(torch.float64)[..., exact] * col_place[exact]  # (G, K, cols')
        w = torch.zeros(g, k, n, dtype=torch.float64).index_add_(
            -1, torch.arange(cols)[exact] // cpw, w
        )
        out += torch.bmm(vectors.to(torch.float64), w)
    if bool(lossy.any()):
        idx = torch.arange(cols)[lossy]
        per_col = _converted_columns(vectors, levels[..., idx], schedule, tile_rows, adc, observe)
        out.index_add_(-1, idx // cpw, per_col * col_place[idx])
    if offset:
        out -= offset * vectors.sum(-1, keepdim=True).to(torch.float64)
    return out


def lossless_columns(
    levels: torch.Tensor, schedule: InputSchedule, tile_rows: int, adc: AdcTransfer | None
) -> torch.Tensor:
    """bool ``(cols,)``: columns whose bitline sum, in every group block and row tile,
    never exceeds what ``adc`` converts exactly (all of them when ``adc`` is None): the
    sum of the column's levels in the tile times the largest digit."""
    cols = levels.shape[-1]
    if adc is None:
        return torch.ones(cols, dtype=torch.bool)
    g, k = levels.shape[:2]
    t = ceil_div(k, tile_rows)
    padded = torch.nn.functional.pad(levels.to(torch.float64), (0, 0, 0, t * tile_rows - k))
    bound = padded.reshape(g, t, tile_rows, cols).sum(2) * (2**schedule.bits_per_cycle - 1)
    worst = bound.amax((0, 1))  # (cols,)
    if adc.step == 1.0:
        return worst <= 2**adc.bits - 1
    return worst == 0


def _converted_columns(
    vectors: torch.Tensor,
    levels: torch.Tensor,
    schedule: InputSchedule,
    tile_rows: int,
    adc: AdcTransfer | None,
    observe: Callable[[torch.Tensor], None] | None,
) -> torch.Tensor:
    """``sum_p sign_p sum_d 2**(k*d) sum_t ADC(P[v,p,d,t,c])`` for every column of
    ``levels`` ``(G, K, cols)``: float64 ``(G, V, cols)``.

    One batched product per (pass, digit) over all group blocks and row tiles; float32
    wherever its 24-bit mantissa holds every sum exactly, float64 otherwise.
    """
    g, v, k = vectors.shape
    cols = levels.shape[-1]
    t = ceil_div(k, tile_rows)
    tile_rows = min(tile_rows, k)  # a layer shorter than the array pads nothing
    pad = t * tile_rows - k
    kk = schedule.bits_per_cycle
    top_level = float(levels.max()) if levels.numel() else 0.0
    p_max = min(k, tile_rows) * (2**kk - 1) * top_level
    exact_f32 = p_max < _F32_EXACT
    dtype = torch.float32 if exact_f32 else torch.float64
    # Integer codes are summed (the step, one per layer, multiplies the total once), so
    # float32 accumulation is exact while the largest total fits its mantissa.
    code_max = p_max if adc is None else min(p_max, 2**adc.bits - 1)
    acc_dtype = (
        torch.float32 if code_max * 2.0**schedule.magnitude_bits * t < _F32_EXACT else torch.float64
    )
    lv = torch.nn.functional.pad(levels.to(dtype), (0, 0, 0, pad))  # (G, T*R, cols)
    lv = lv.reshape(g * t, tile_rows, cols)
    out = torch.zeros(g, v, cols, dtype=acc_dtype)
    mask = 2**kk - 1
    for sign in (1, -1)[: schedule.passes]:
        x = (vectors * sign).clamp_(min=0).to(torch.int32)  # (G, V, K)
        x = torch.nn.functional.pad(x, (0, pad))  # (G, V, T*R)
        x = x.reshape(g, v, t, tile_rows).transpose(1, 2).reshape(g * t, v, tile_rows)
        pass_sum = torch.zeros(g, v, cols, dtype=acc_dtype)
        for d in reversed(range(schedule.digits)):  # Horner: MSB digit first
            digit = ((x >> (kk * d)) & mask).to(dtype)
            sums = torch.bmm(digit, lv)  # (G*T, V, cols)
            if observe is not None:
                observe(sums)
            if adc is not None:
                adc.codes_(sums)  # sums is this digit's own buffer
            if t == 1 and dtype == acc_dtype:
                tile_sum = sums.reshape(g, v, cols)
            else:
                tile_sum = sums.reshape(g, t, v, cols).sum(1, dtype=acc_dtype)
            pass_sum = tile_sum.add_(pass_sum, alpha=2**kk)  # Horner step, in place
        out.add_(pass_sum, alpha=sign)
    out = out.to(torch.float64)
    return out if adc is None or adc.step == 1.0 else out.mul_(adc.step)


def crossbar_conv2d(
    codes: torch.Tensor,
    levels: torch.Tensor,
    schedule: InputSchedule,
    place: torch.Tensor,
    offset: int,
    conv: ConvGeometry,
    groups: int,
    adc: AdcTransfer | None = None,
    observe: Callable[[torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """:func:`crossbar_mvm` of a convolution whose rows fit one array (one row tile), by
    convolving each input digit with the cell levels of every column: the bitline sums
    of all output positions at once, without unfolding the input. Every column goes
    through ``adc`` (a lossless column converts to itself). Same arithmetic, same values
    to ``observe`` (as one ``(B, G*cols, H', W')`` block per pass and digit).

    Args:
        codes: integer input codes ``(B, C_in, H, W)``.
        levels: cell levels ``(G, K, cols)``, ``K = C_in / G * kh * kw`` (one row tile).
    Returns:
        float64 ``(B, G * N, H', W')`` in the layer's output channel order.
    """
    g, k, cols = levels.shape
    cpw = place.numel()
    n = cols // cpw
    if adc is None and observe is None:  # ideal conversions: recombine, then one conv
        return _recombined_conv2d(codes, levels, place, offset, conv, groups)
    kk = schedule.bits_per_cycle
    mask = 2**kk - 1
    top_level = max(float(levels.max()), 0.0) if levels.numel() else 0.0
    p_max = k * (2**kk - 1) * top_level
    dtype = torch.float32 if p_max < _F32_EXACT else torch.float64
    code_max = p_max if adc is None else min(p_max, 2**adc.bits - 1)
    place64 = place.to(torch.float64)
    # float32 accumulation and recombination while every total fits its mantissa
    total_max = code_max * 2.0**schedule.magnitude_bits * float(place64.abs().sum())
    acc_dtype = torch.float32 if total_max < _F32_EXACT else torch.float64
    c_in = codes.shape[1] // groups
    weight = levels.to(dtype).permute(0, 2, 1).reshape(g * cols, c_in, *conv.kernel_size)
    ints = codes.to(torch.int32)

    def bitline_sums(digit: torch.Tensor) -> torch.Tensor:
        """(B, G*cols, H', W') sums of one digit plane. oneDNN on CPU is several times
        slower for a depthwise conv with a channel multiplier, and for channels-first
        inputs, than for cols plain depthwise convs and channels-last inputs."""
        if c_in == 1 and g > 1 and cols > 1:
            per_col = weight.reshape(g, cols, 1, *conv.kernel_size)
            planes = [F.conv2d(digit, per_col[:, j], None, conv.stride, conv.padding,
                               conv.dilation, g) for j in range(cols)]  # fmt: skip
            return torch.stack(planes, 2).reshape(digit.shape[0], g * cols, *planes[0].shape[2:])
        digit = digit.contiguous(memory_format=torch.channels_last)
        return F.conv2d(digit, weight, None, conv.stride, conv.padding, conv.dilation, g)

    acc: torch.Tensor | None = None
    for sign in (1, -1)[: schedule.passes]:
        x = (ints * sign).clamp_(min=0)
        pass_sum: torch.Tensor | None = None
        for d in reversed(range(schedule.digits)):  # Horner: MSB digit first
            digit = x if schedule.digits == 1 else (x >> (kk * d)) & mask
            sums = bitline_sums(digit.to(dtype))
            if observe is not None:
                observe(sums)
            if adc is not None:
                adc.codes_(sums)
            sums = sums.to(acc_dtype)
            pass_sum = sums if pass_sum is None else sums.add_(pass_sum, alpha=2**kk)
        assert pass_sum is not None
        acc = pass_sum if acc is None else acc.sub_(pass_sum)
    assert acc is not None
    b, _, h, w = acc.shape
    per_col = acc.view(b, g, n, cpw, h, w)  # a view in either memory format
    out = per_col[:, :, :, 0] * float(place64[0])
    for j in range(1, cpw):  # recombine the columns of each weight, one slice at a time
        out.add_(per_col[:, :, :, j], alpha=float(place64[j]))
    out = out.reshape(b, g * n, h, w).to(torch.float64)
    if adc is not None and adc.step != 1.0:
        out.mul_(adc.step)
    if offset:
        ones = torch.ones(g, c_in, *conv.kernel_size, dtype=torch.float64)
        xsum = F.conv2d(codes.to(torch.float64), ones, None, conv.stride, conv.padding,
                        conv.dilation, groups)  # fmt: skip
        out -= offset * xsum.repeat_interleave(n, dim=1)
    return out


def _recombined_conv2d(
    codes: torch.Tensor,
    levels: torch.Tensor,
    place: torch.Tensor,
    offset: int,
    conv: ConvGeometry,
    groups: int,
) -> torch.Tensor:
    """The convolution with each weight's columns recombined (``sum place * level -
    offset``): what every bitline sum through ideal conversions adds up to. float32 where
    every product sum fits its mantissa, else float64."""
    g, k, cols = levels.shape
    cpw = place.numel()
    w = levels.to(torch.float64).reshape(g, k, cols // cpw, cpw) @ place.to(torch.float64)
    w = w - offset  # (G, K, N)
    bound = k * float(codes.abs().max()) * float(w.abs().max()) if codes.numel() else 0.0
    dtype = torch.float32 if bound < _F32_EXACT else torch.float64
    weight = w.permute(0, 2, 1).reshape(-1, codes.shape[1] // groups, *conv.kernel_size)
    x = codes.to(dtype)
    if groups == 1:
        x = x.contiguous(memory_format=torch.channels_last)
    out = F.conv2d(x, weight.to(dtype), None, conv.stride, conv.padding, conv.dilation, groups)
    return out.to(torch.float64)


def reference_mvm(
    vectors: torch.Tensor,
    levels: torch.Tensor,
    schedule: InputSchedule,
    place: torch.Tensor,
    offset: int,
    tile_rows: int,
    adc: AdcTransfer | None = None,
) -> torch.Tensor:
    """:func:`crossbar_mvm` by explicit loops over vectors, passes, digits, tiles and
    columns: slow, for tests only."""
    g, v, k = vectors.shape
    cols = levels.shape[-1]
    cpw = place.numel()
    out = torch.zeros(g, v, cols // cpw, dtype=torch.float64)
    kk = schedule.bits_per_cycle
    for gi in range(g):
        for vi in range(v):
            for sign in (1, -1)[: schedule.passes]:
                x = [max(0, int(sign * vectors[gi, vi, r])) for r in range(k)]
                for c in range(cols):
                    total = 0.0
                    for di in range(schedule.digits):
                        for start in range(0, k, tile_rows):
                            p = 0
                            for r in range(start, min(start + tile_rows, k)):
                                digit = (x[r] >> (kk * di)) & (2**kk - 1)
                                p += digit * int(levels[gi, r, c])
                            q = (
                                float(p)
                                if adc is None
                                else float(
                                    adc.convert(torch.tensor([float(p)], dtype=torch.float64))[0]
                                )
                            )
                            total += q * 2.0 ** (kk * di)
                    out[gi, vi, c // cpw] += sign * total * float(place[c % cpw])
                if offset:
                    out[gi, vi, :] -= sign * offset * sum(x)
    return out


__all__ = [
    "AdcTransfer",
    "check_simulatable",
    "crossbar_conv2d",
    "crossbar_mvm",
    "full_scale_transfer",
    "lossless_bits",
    "lossless_columns",
    "max_partial_sum",
    "place_values",
    "reference_mvm",
    "word_offset",
]
