"""``energy``: the modeled crossbar cell energy E_cb itself, differentiable in the weights.

Per layer it goes through the functions of the energy model (``hamq/hardware/energy.py``)
that data mode and static mode use::

    a[r]    = row_activity(input_activity(codes)) / B     measured activity of row r
    rowE[r] = row_sums(cost(t), groups)[r] = sum_n cost(t[r, n])      (``mapping.row_sums``)
    E_cb   ~= sum_layers e_cb_pj(a, rowE)                             (pJ per inference)

where ``t = w / scale`` are the continuous integer-unit weights and ``cost[q]`` the read
energy of all cells storing integer ``q`` (``mapping.cell_energy_table``: the sum of
``tech.e_cell_pj[level]``, times ``array.devices_per_cell``, over its column sets and
slices), linearly interpolated between
integers (``surrogates.interp_cost``). At integer weights ``rowE`` is the mapping's exact
row energy, so the estimate equals the exact data-mode E_cb of ``hamq.hardware.estimate``
on the same inputs. Its gradient moves every weight toward its cheaper integer neighbour,
weighted by how often its row is driven and by the per-level energies of the technology.

**Activity.** ``attach(model)`` installs forward pre-hooks on the quantized layers; in
training mode each forward measures every row's activity from the integer input codes and
updates a running average (momentum 0.1, the first measurement replaces it) kept in a buffer
per layer (``act_<i>``, shape ``(groups, C_in/groups, kh, kw)`` or ``(K,)``). A layer not yet
measured counts every row with activity 1.

**Training penalty.** As for ``hamming`` (``docs/regularizers.md``), the penalty uses a
surrogate of the cost table (the exact table only pulls weights into the nearest local
minimum): by default (``surrogate: envelope``) its lower envelope at ``regularizer.slope``
stored bits' energy per integer unit, or (``surrogate: interp``) the table smoothed by a
Gaussian of ``regularizer.smooth`` integer units; and it holds the weights that set the
range (``hold_range``). :meth:`estimate_pj` uses the exact table (``surrogate=True``: the
penalty's table, before normalization). The envelope never exceeds the exact table and
equals it at its attractor codes, so at integer weights the surrogate E_cb is at most the
exact one, and equal when every weight sits on an attractor.
Activity is measured on one training batch in ``MEASURE_EVERY``.

**Batch activity** (``regularizer.activity: batch``). E_cb is bilinear in what the rows
are driven with and what the cells store, and the measured mode trains only the second
factor. With ``batch`` the hooks keep each layer's continuous input codes
``u = clamp(x / step, lo, hi)`` (with gradient) from the training forward, and the penalty
is that batch's E_cb per inference::

    m[i]   = A_s(|u[i]|) summed over the batch          surrogate activity of input i
    a[r]   = row_activity(m) / B                         (the same pure function)
    E_cb  ~= sum_layers e_cb_pj(a, rowE * kept)

``A_s`` is the lower envelope (``surrogates.envelope_table``, at ``regularizer.slope``
input bits per integer unit) of the exact activity table of the layer's input schedule
(``energy.activity_table``: popcount of the code for bit-serial inputs), interpolated, so
the gradient pulls each input toward the nearest code that drives fewer rows, weighted by
the energy of the rows it drives; ``kept`` zeroes the rows an index-free (row-pruned)
layout does not store, whose inputs cost nothing. :meth:`estimate_pj` rounds ``u`` and
uses the exact tables: the exact data-mode E_cb of the last training batch (of its
first ``BATCH_SAMPLES`` samples, which the penalty prices). The
normalizer ``E_unit`` is fixed at the first batch (a buffer, restored on resume), so the
penalty falls as the activity does instead of being renormalized away.

**Normalization.** The penalty is ``E_cb / E_unit``, with the detached constant
``E_unit = e_bit_pj * sum_layers sum_r a[r] * N / n_layers``; ``e_bit_pj =
(e_cell_pj[top] - e_cell_pj[0]) / cell_bits`` (times the devices per cell, as every
cost, so the penalty does not change with that count) is the energy of one stored bit ON. The
penalty is then ``n_layers`` times the activity-weighted mean cost per weight in "ON bits",
the scale of ``hamming`` (sum over layers of the mean Hamming weight per weight), so the
same lambda grid applies; unlike ``hamming`` the layers are weighted by their true share of
E_cb, so its gradient is that of E_cb itself.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from hamq.errors import HamqError
from hamq.hardware.energy import (
    InputSchedule,
    activity_table,
    e_cb_pj,
    input_activity,
    input_schedule,
    quantize_codes,
    row_activity,
)
from hamq.hardware.mapping import cell_energy_table, conv_geometry, row_sums
from hamq.hardware.spec import HardwareSpec
from hamq.quantization.convert import quantized_layers
from hamq.quantization.modules import ActQuantizer, QuantConv2d, QuantLayer
from hamq.regularizers.base import Regularizer, RegularizerConfig, register
from hamq.regularizers.hamming import hold_range
from hamq.regularizers.surrogates import interp_cost, interp_lookup, penalty_table

MOMENTUM = 0.1
# Activity is a running average (momentum 0.1, a window of ~10 measurements); measuring on
# one training batch in MEASURE_EVERY still averages over ~80 steps of a slowly moving
# quantity, and takes the measurement's cost (about a fifth of a DS-CNN QAT step) off
# the other steps.
MEASURE_EVERY = 8
# activity: batch prices the E_cb of the first BATCH_SAMPLES samples of each training batch
# (batches are shuffled, so an unbiased estimate of E_cb per inference): the surrogate of
# every input element is the term's cost, 2.2x a ResNet-20 QAT step on all 128 samples
# (BENCHMARKS.md), and a quarter of them carry the same expected gradient.
BATCH_SAMPLES = 32


@register("energy")
class EnergyRegularizer(Regularizer):
    """Differentiable E_cb per inference from per-level cell energies and measured activity."""

    def __init__(self, cfg: RegularizerConfig, hw: HardwareSpec) -> None:
        super().__init__(cfg, hw)
        self.sigma = cfg.smooth
        self.surrogate = cfg.surrogate
        self.slope = cfg.slope
        self._tables: dict[tuple[int, torch.device, bool], torch.Tensor] = {}
        self._names: dict[str, str] = {}
        self._calls: dict[str, int] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self.batch_activity = cfg.activity == "batch"
        # activity: batch: each layer's continuous input codes of the last training forward
        self._inputs: dict[str, torch.Tensor] = {}
        self._act_tables: dict[tuple[InputSchedule, torch.device, bool], torch.Tensor] = {}
        if self.batch_activity:  # (measured-mode state dicts keep their old keys)
            self.register_buffer("e_unit_pj", torch.tensor(0.0))  # 0: not yet fixed

    def attach(self, model: nn.Module) -> None:
        """Create one activity buffer per quantized layer and the hooks that measure it."""
        for h in self._handles:
            h.remove()
        self._handles = []
        for i, (name, layer) in enumerate(quantized_layers(model)):
            buf = f"act_{i}"
            if isinstance(layer, QuantConv2d):
                shape = (layer.groups, layer.in_channels // layer.groups, *layer.kernel_size)
            else:
                shape = (layer.in_features,)
            self.register_buffer(buf, torch.ones(shape, device=layer.weight.device))
            self.register_buffer(f"{buf}_measured", torch.tensor(False))
            self._names[name] = buf
            if self.batch_activity:  # after the quantizer's forward: the step it used
                hook = layer.input_quant.register_forward_hook(self._input_hook(buf))
            else:
                hook = layer.register_forward_pre_hook(self._measure_hook(buf))
            self._handles.append(hook)

    def _input_hook(self, buf: str) -> Callable[..., None]:
        def hook(quant: nn.Module, args: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
            if quant.training:
                x = args[0][:BATCH_SAMPLES]
                self._inputs[buf] = self.continuous_codes(quant, x)  # type: ignore[arg-type]

        return hook

    def _measure_hook(self, buf: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...]], None]:
        def hook(mod: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            if not mod.training:
                return
            n = self._calls.get(buf, 0)
            self._calls[buf] = n + 1
            if n % MEASURE_EVERY == 0 or not bool(getattr(self, f"{buf}_measured")):
                self.measure(mod, buf, args[0])  # type: ignore[arg-type]

        return hook

    def _schedule(self, layer: QuantLayer) -> InputSchedule:
        q = layer.input_quant
        return input_schedule(q.bits, bool(q.signed), self.hw.input.bits_per_cycle)

    @staticmethod
    def continuous_codes(q: ActQuantizer, x: torch.Tensor) -> torch.Tensor:
        """``clamp(x / step, lo, hi)`` of a layer's input, with gradient, at the step the
        quantizer ``q`` has just used (rounded, the codes the rows are driven with)."""
        lo, hi = q.int_range
        return torch.clamp(x / q.scale(), lo, hi)

    def _activity_table(
        self, schedule: InputSchedule, device: torch.device, training: bool
    ) -> torch.Tensor:
        """Read activity of every code ``-(2**m - 1) .. 2**m - 1`` (symmetric in the sign,
        the layout ``interp_cost`` indexes): exact, or (``training``) its lower envelope."""
        key = (schedule, device, training)
        if key not in self._act_tables:
            table = activity_table(schedule)[0]
            if training:
                table = penalty_table(table, "envelope", self.sigma, self.slope)
            both = torch.cat((table.flip(0)[:-1], table))
            self._act_tables[key] = both.to(device=device, dtype=torch.float32)
        return self._act_tables[key]

    def _batch_row_activity(
        self, name: str, layer: QuantLayer, training: bool
    ) -> tuple[torch.Tensor, int]:
        """(row activity per inference ``(groups, K)``, batch size) of the last training
        batch: differentiable in the inputs (``training``) or exact."""
        buf = self._names[name]
        u = self._inputs.get(buf)
        if u is None:
            raise HamqError(
                "the energy regularizer (activity: batch) has no inputs of layer "
                f"'{name}': call it after a training-mode forward of the model"
            )
        table = self._activity_table(self._schedule(layer), u.device, training)
        if training:
            per_input = interp_lookup(u, table)
        else:
            per_input = table[(u.detach().round() + (table.numel() - 1) // 2).long()]
        rows = row_activity(per_input.sum(0), conv_geometry(layer), _groups(layer))
        return rows / u.shape[0], u.shape[0]

    @torch.no_grad()
    def measure(self, layer: QuantLayer, buf: str, x: torch.Tensor) -> None:
        """Update buffer ``buf`` with the row activity per sample of input batch ``x``."""
        q = layer.input_quant
        lo, hi = q.int_range
        _, mag = quantize_codes(x.detach(), q.scale().detach(), lo, hi)
        act, _ = input_activity(mag, self._schedule(layer))
        rows = row_activity(act, conv_geometry(layer), _groups(layer)) / x.shape[0]
        current, measured = getattr(self, buf), getattr(self, f"{buf}_measured")
        rows = rows.reshape(current.shape).to(current.dtype)
        if bool(measured):
            current.lerp_(rows, MOMENTUM)
        else:
            current.copy_(rows)
            measured.fill_(True)

    def _cost_table(self, bits: int, device: torch.device, training: bool) -> torch.Tensor:
        """The exact per-code energy table, or (``training``) the penalty's surrogate of it."""
        key = (bits, device, training)
        if key not in self._tables:
            t = cell_energy_table(bits, self.hw.representation, self.hw.cell_bits,
                                  self.hw.e_cell_read_pj,
                                  self.hw.array.slice_levels == "spread")  # fmt: skip
            if training:
                # slope in ON bits per unit -> pJ per unit: one stored bit's energy.
                slope_pj = self.slope * self._e_bit_pj()
                t = penalty_table(t.to(torch.float64), self.surrogate, self.sigma, slope_pj)
            self._tables[key] = t.to(device=device, dtype=torch.float32)
        return self._tables[key]

    def _layer_terms(
        self, model: nn.Module, training: bool = False
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(E_cb estimate in pJ, activity-weighted weight count) of every quantized layer.

        ``training``: the training penalty's surrogate table and range hold; else exact.
        """
        if not self._names:
            raise HamqError("the energy regularizer was not attached; call attach(model) first")
        terms = []
        for name, layer in quantized_layers(model):
            t = layer.weight_continuous()
            cost = interp_cost(t, self._cost_table(layer.w_bits, t.device, training))
            if training:
                cost = hold_range(cost, t, layer.range_code)
            row_e_pj = row_sums(cost, _groups(layer))  # (groups, K)
            if self.batch_activity:
                act, _ = self._batch_row_activity(name, layer, training)
                row_e_pj = row_e_pj * _kept_rows(layer, row_e_pj)
            else:
                act = getattr(self, self._names[name]).reshape(row_e_pj.shape)
            weights_per_row = cost.shape[0] // row_e_pj.shape[0]
            terms.append((e_cb_pj(act, row_e_pj), act.sum() * weights_per_row))
        return terms

    def _e_bit_pj(self) -> float:
        """Energy of one stored bit ON: (top level - level 0) / bits per cell."""
        e = self.hw.e_cell_read_pj
        return (e[-1] - e[0]) / self.hw.cell_bits

    def estimate_pj(self, model: nn.Module, surrogate: bool = False) -> torch.Tensor:
        """The differentiable E_cb estimate per inference, in pJ (scalar).

        ``surrogate``: evaluate the training penalty's table (and range hold) instead of the
        exact one: the penalty before normalization.
        """
        return torch.stack([e for e, _ in self._layer_terms(model, surrogate)]).sum()

    def penalty(self, model: nn.Module) -> torch.Tensor:
        terms = self._layer_terms(model, training=True)
        e_pj = torch.stack([e for e, _ in terms]).sum()
        weight_rows = torch.stack([n for _, n in terms]).sum().detach()
        e_unit = self._e_bit_pj() * weight_rows.clamp_min(1e-12) / len(terms)
        if self.batch_activity:
            if float(self.e_unit_pj) == 0.0:  # fixed at the first batch
                self.e_unit_pj.copy_(e_unit.to(self.e_unit_pj))
            e_unit = self.e_unit_pj
        return e_pj / e_unit


def _groups(layer: QuantLayer) -> int:
    return layer.groups if isinstance(layer, QuantConv2d) else 1


def _kept_rows(layer: QuantLayer, like: torch.Tensor) -> torch.Tensor:
    """1 on the rows the layer's layout stores, 0 on those an index-free (row-pruned)
    layout leaves out; ``like``'s shape ``(groups, K)``, dtype and device."""
    keep = torch.ones_like(like).detach()
    if layer.row_layout is not None:
        keep.zero_()
        keep[:, layer.row_layout.rows.to(like.device)] = 1
    return keep
