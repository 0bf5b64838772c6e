"""``energy``: the modeled crossbar cell energy E_cb itself, differentiable in the weights.

For each layer, with ``a[r]`` the measured input activity of row ``r`` per inference (sum
over input vectors and cycles of the applied digit / (2**k - 1), as in ``energy.py``) and
``cost[q]`` the read energy of all cells storing integer ``q`` (sum of
``tech.e_cell_pj[level]`` over its column sets and slices)::

    E_cb ~= sum_layers sum_r a[r] * sum_n cost(t[r, n])       (pJ per inference)

where ``t = w / scale`` are the continuous integer-unit weights and ``cost`` is the exact
table linearly interpolated between integers (``surrogates.interp_cost``), so at integer
weights the estimate equals the exact data-mode E_cb of ``hamq.hardware.estimate`` on the
same inputs. Its gradient moves every weight toward its cheaper integer neighbour, weighted
by how often its row is driven and by the per-level energies of the technology.

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
range (``hold_range``). :meth:`estimate_pj` uses the exact table.
Activity is measured on one training batch in ``MEASURE_EVERY``.

**Normalization.** The penalty is ``E_cb / E_unit``, with the detached constant
``E_unit = e_bit_pj * sum_layers sum_r a[r] * N / n_layers``; ``e_bit_pj =
(e_cell_pj[top] - e_cell_pj[0]) / cell_bits`` is the energy of one stored bit ON. The
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
    batch_activity,
    input_schedule,
    window_row_sums,
)
from hamq.hardware.mapping import cell_energy_table
from hamq.hardware.spec import HardwareSpec
from hamq.quantization.convert import quantized_layers
from hamq.quantization.modules import QuantConv2d, QuantLayer
from hamq.regularizers.base import Regularizer, RegularizerConfig, register
from hamq.regularizers.hamming import hold_range
from hamq.regularizers.surrogates import interp_cost, penalty_table

MOMENTUM = 0.1
# Activity is a running average (momentum 0.1, a window of ~10 measurements); measuring on
# one training batch in MEASURE_EVERY still averages over ~80 steps of a slowly moving
# quantity, and takes the measurement's cost (about a fifth of a DS-CNN QAT step) off
# the other steps.
MEASURE_EVERY = 8


def row_activity(layer: QuantLayer, codes: torch.Tensor, schedule: InputSchedule) -> torch.Tensor:
    """Activity of every row summed over input vectors and cycles, per sample.

    Args:
        codes: integer input codes or uint8 magnitudes ``(B, C, H, W)`` or ``(B, ..., K)``.
        schedule: how the codes are applied (``energy.input_schedule``).
    Returns:
        float32 ``(groups, C_in/groups, kh, kw)`` for a conv, ``(K,)`` for a linear layer.
    """
    total = batch_activity(codes, schedule)[0]  # summed over the batch
    b = codes.shape[0]
    if isinstance(layer, QuantConv2d):
        g = layer.groups
        geom = (layer.kernel_size, layer.stride, layer.padding, layer.dilation)
        rows = window_row_sums(total, *geom)  # type: ignore[arg-type]
        shape = (g, layer.in_channels // g, *layer.kernel_size)
        return (rows / b).reshape(shape).to(torch.float32)
    return (total.reshape(-1, total.shape[-1]).sum(0) / b).to(torch.float32)


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
            self._handles.append(layer.register_forward_pre_hook(self._measure_hook(buf)))

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

    @torch.no_grad()
    def measure(self, layer: QuantLayer, buf: str, x: torch.Tensor) -> None:
        """Update buffer ``buf`` with the row activity of input batch ``x``."""
        q = layer.input_quant
        lo, hi = q.int_range
        # |to_int(x)| in place in float, as uint8: the same values, no int64 traffic.
        mag = torch.round(x.detach() / q.scale().detach()).clamp_(lo, hi).abs_()
        rows = row_activity(layer, mag.to(torch.uint8), self._schedule(layer))
        current, measured = getattr(self, buf), getattr(self, f"{buf}_measured")
        if bool(measured):
            current.lerp_(rows.to(current.dtype), MOMENTUM)
        else:
            current.copy_(rows)
            measured.fill_(True)

    def _cost_table(self, bits: int, device: torch.device, training: bool) -> torch.Tensor:
        """The exact per-code energy table, or (``training``) the penalty's surrogate of it."""
        key = (bits, device, training)
        if key not in self._tables:
            t = cell_energy_table(bits, self.hw.representation, self.hw.cell_bits,
                                  self.hw.tech.e_cell_pj)  # fmt: skip
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
            act = getattr(self, self._names[name])
            t = layer.weight_continuous()
            cost = interp_cost(t, self._cost_table(layer.w_bits, t.device, training))
            if training:
                cost = hold_range(cost, t, layer.q_max)
            if isinstance(layer, QuantConv2d):
                act = act.repeat_interleave(layer.out_channels // layer.groups, dim=0)
            act = act.expand_as(cost)  # linear: (K,) broadcast over (N, K)
            terms.append(((act * cost).sum(), act.sum()))
        return terms

    def _e_bit_pj(self) -> float:
        """Energy of one stored bit ON: (top level - level 0) / bits per cell."""
        e = self.hw.tech.e_cell_pj
        return (e[-1] - e[0]) / self.hw.cell_bits

    def estimate_pj(self, model: nn.Module) -> torch.Tensor:
        """The differentiable E_cb estimate per inference, in pJ (scalar)."""
        return torch.stack([e for e, _ in self._layer_terms(model)]).sum()

    def penalty(self, model: nn.Module) -> torch.Tensor:
        terms = self._layer_terms(model, training=True)
        e_pj = torch.stack([e for e, _ in terms]).sum()
        weight_rows = torch.stack([n for _, n in terms]).sum().detach()
        e_unit = self._e_bit_pj() * weight_rows.clamp_min(1e-12) / len(terms)
        return e_pj / e_unit
