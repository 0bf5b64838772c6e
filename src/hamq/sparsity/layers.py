"""LFSR masks on a converted model: resolve them per layer, attach, fix, check, store.

A layer's mask is described by a :class:`LayerMask` (polynomial, seed, sparsity, form, and
the weight shape and kept count it was made for, to check against) and rebuilt from it by
:func:`hamq.sparsity.masks.lfsr_mask`; runs store these descriptions, never indices. On a
layer the mask lives in the non-persistent buffer ``weight_mask`` (see
``quantization/modules.py``); it acts on the weight once ``mask_fixed`` is set.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from hamq.errors import HamqError, closest
from hamq.quantization.config import QuantConfig
from hamq.quantization.convert import quantize_model, quantized_layers
from hamq.quantization.modules import QuantLayer
from hamq.sparsity.config import SparsityConfig
from hamq.sparsity.lfsr import Form, degree, lfsr_period, poly_str
from hamq.sparsity.masks import Granularity, RowLayout, kept_total, lfsr_mask, row_layout


class LfsrWarning(UserWarning):
    """A mask made with a polynomial that is not primitive (some indices unreachable)."""


@dataclass(frozen=True)
class LayerMask:
    """What a layer's mask is made from, and the weight it was made for.

    name: module name; shape: the weight shape; sparsity: fraction pruned; poly: the
    polynomial's exponents (constant 1 implied); seed: the register's start state;
    form: ``fibonacci`` or ``galois``; kept: weights kept (``masks.kept_total``);
    granularity: ``weight`` or ``row`` (stored only when ``row``, so descriptions written
    before row masks existed still load).
    """

    name: str
    shape: tuple[int, ...]
    sparsity: float
    poly: tuple[int, ...]
    seed: int
    form: Form
    kept: int
    granularity: Granularity = "weight"

    def build(self, device: torch.device | str | None = None) -> torch.Tensor:
        """The boolean mask (True = kept), shape ``self.shape``; HamqError naming the layer
        when the LFSR cannot make it."""
        try:
            mask = lfsr_mask(self.shape, self.sparsity, self.poly, self.seed, self.form,
                             self.granularity)  # fmt: skip
        except ValueError as err:  # MaskError, or a bad stored polynomial / seed
            raise HamqError(f"sparsity mask of layer '{self.name}': {err}") from None
        return mask.to(device)

    def row_layout(self) -> RowLayout | None:
        """The index-free layout's kept rows (row granularity), None for a weight-granular
        mask (mapped dense)."""
        if self.granularity != "row":
            return None
        return row_layout(self.shape, self.sparsity, self.poly, self.seed, self.form)

    def describe(self) -> str:
        rows = ", rows" if self.granularity == "row" else ""
        return (
            f"{poly_str(self.poly)}, seed {self.seed}, {self.form}, sparsity {self.sparsity}{rows}"
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"], d["poly"] = list(self.shape), list(self.poly)
        if self.granularity == "weight":
            del d["granularity"]
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str) -> LayerMask:
        """Parse a stored description; HamqError naming ``where`` if it is malformed."""
        fields = ("name", "shape", "sparsity", "poly", "seed", "form", "kept")
        if not isinstance(d, dict) or sorted(set(d) - {"granularity"}) != sorted(fields):
            raise HamqError(
                f"{where}: a stored mask needs exactly the keys {', '.join(fields)} "
                f"(and optionally granularity)"
            )
        try:
            return cls(
                name=str(d["name"]),
                shape=tuple(int(x) for x in d["shape"]),
                sparsity=float(d["sparsity"]),
                poly=tuple(int(x) for x in d["poly"]),
                seed=int(d["seed"]),
                form=d["form"],
                kept=int(d["kept"]),
                granularity=d.get("granularity", "weight"),
            )
        except (TypeError, ValueError) as err:
            raise HamqError(
                f"{where}: malformed stored mask of '{d.get('name')}' ({err})"
            ) from None


def resolve_masks(
    model: nn.Module, cfg: SparsityConfig, skip: Iterable[str] = ()
) -> list[LayerMask]:
    """The mask of every quantized layer of a converted ``model`` with sparsity above 0.

    ``cfg.layers`` may name only quantized layers (HamqError with the closest name; a layer
    in ``skip`` is kept in float and cannot be pruned).
    """
    layers = dict(quantized_layers(model))
    skip = set(skip)
    for name in cfg.layers:
        if name in skip:
            raise HamqError(
                f"sparsity.layers names '{name}', which quant.skip keeps in float: only "
                f"quantized layers are pruned"
            )
        if name not in layers:
            raise HamqError(
                f"sparsity.layers names '{name}', which is not a quantized layer of the model"
                f"{closest(name, layers)}; quantized layers: {', '.join(layers)}"
            )
    out = []
    for name, layer in layers.items():
        over = cfg.layers.get(name)
        sparsity = cfg.sparsity if over is None or over.sparsity is None else over.sparsity
        seed = cfg.seed if over is None or over.seed is None else over.seed
        if sparsity == 0:
            continue
        shape = tuple(layer.weight.shape)
        kept = kept_total(shape, sparsity, cfg.granularity)
        out.append(
            LayerMask(name, shape, sparsity, cfg.poly, seed, cfg.form, kept, cfg.granularity)
        )
    return out


def warn_not_primitive(masks: Iterable[LayerMask]) -> None:
    """One :class:`LfsrWarning` per (polynomial, seed, form) that is not primitive."""
    seen = set()
    for m in masks:
        key = (m.poly, m.seed, m.form)
        if key in seen:
            continue
        seen.add(key)
        full = 2 ** degree(m.poly) - 1
        period = lfsr_period(m.poly, m.seed, m.form)
        if period != full:
            warnings.warn(
                f"LFSR polynomial {poly_str(m.poly)} is not primitive: from seed {m.seed} its "
                f"period is {period}, not {full}, so some weights can never be kept",
                LfsrWarning,
                stacklevel=2,
            )


def float_model_masks(model: nn.Module, quant: QuantConfig, cfg: SparsityConfig) -> list[LayerMask]:
    """The masks of the float ``model`` as it will be converted (model unchanged); a
    quantized layer keeps its float module's name, so each names a float module too."""
    if not cfg.enabled:
        return []
    probe = copy.deepcopy(model).to("cpu")
    quantize_model(probe, quant)
    return resolve_masks(probe, cfg, quant.skip)


def check_config(model: nn.Module, quant: QuantConfig, cfg: SparsityConfig) -> list[LayerMask]:
    """Resolve and build every mask of the float ``model`` as it will be converted, so a
    bad layer name or a too-short LFSR cycle fails before any training (model unchanged)."""
    masks = float_model_masks(model, quant, cfg)
    for m in masks:
        m.build()
    warn_not_primitive(masks)  # after the errors, so a failing run shows only its error
    return masks


def _layer(model: nn.Module, name: str) -> QuantLayer:
    layers = dict(quantized_layers(model))
    if name not in layers:
        raise HamqError(
            f"a stored mask names layer '{name}', which is not a quantized layer of the model"
            f"{closest(name, layers)}"
        )
    return layers[name]


def attach_masks(model: nn.Module, masks: Iterable[LayerMask]) -> None:
    """Put each layer's mask in its ``weight_mask`` buffer (not yet fixed)."""
    for m in masks:
        layer = _layer(model, m.name)
        if tuple(layer.weight.shape) != m.shape:
            raise HamqError(
                f"the mask of layer '{m.name}' was made for weight shape {list(m.shape)}, but "
                f"the layer's weight is {list(layer.weight.shape)}: it does not fit"
            )
        layer.weight_mask = m.build(layer.weight.device)
        layer.row_layout = m.row_layout()
        layer.mask_fixed = False


def masked_layers(model: nn.Module) -> list[tuple[str, QuantLayer]]:
    """The quantized layers that carry a mask, in module order."""
    return [(n, x) for n, x in quantized_layers(model) if x.weight_mask is not None]


@torch.no_grad()
def fix_masks(model: nn.Module) -> None:
    """Hard pruning: weights outside each mask set to exactly 0 and kept there (idempotent)."""
    for _, layer in masked_layers(model):
        layer.weight.mul_(layer.weight_mask)  # type: ignore[arg-type]
        layer.mask_fixed = True


@torch.no_grad()
def violations(model: nn.Module) -> list[tuple[str, int]]:
    """(layer, count) of non-zero weights outside each attached mask."""
    out = []
    for name, layer in masked_layers(model):
        n = int((layer.weight[~layer.weight_mask] != 0).sum())  # type: ignore[operator]
        if n:
            out.append((name, n))
    return out


def check_weights(model: nn.Module, masks: list[LayerMask], where: str) -> None:
    """HamqError naming the first layer whose weights outside its mask are not all 0."""
    bad = violations(model)
    if bad:
        name, n = bad[0]
        m = next(x for x in masks if x.name == name)
        raise HamqError(
            f"{where}: layer '{name}' has {n} non-zero weight(s) outside its LFSR mask "
            f"({m.describe()}): the stored mask parameters disagree with its weights"
        )


def zero_pruned_after_step(optimizer: torch.optim.Optimizer, model: nn.Module) -> None:
    """After every ``optimizer.step()``, zero the pruned weights again.

    The masked forward already gives them zero gradient, but Adam's momentum from the
    regularized phase and decoupled weight decay would still move them off 0. Installed
    once per optimizer.
    """
    if getattr(optimizer, "_hamq_masks_hooked", False):
        return

    def hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        with torch.no_grad():
            for _, layer in masked_layers(model):
                if layer.mask_fixed:
                    layer.weight.mul_(layer.weight_mask)  # type: ignore[arg-type]

    optimizer.register_step_post_hook(hook)
    optimizer._hamq_masks_hooked = True  # type: ignore[attr-defined]


def prune_float(
    model: nn.Module, optimizer: torch.optim.Optimizer, masks: Iterable[LayerMask]
) -> None:
    """Sparse float training: set the weights outside each mask of the float ``model`` to
    exactly 0 and zero them again after every ``optimizer.step()`` (momentum and weight
    decay would move them), so every forward is the pruned network's (idempotent on a
    resumed, already pruned model; hooked once per optimizer)."""
    modules = dict(model.named_modules())
    pairs = [(modules[m.name].weight, m.build(modules[m.name].weight.device)) for m in masks]

    @torch.no_grad()
    def apply(*_: Any) -> None:
        for weight, mask in pairs:
            weight.mul_(mask)

    apply()
    if not getattr(optimizer, "_hamq_float_masks_hooked", False):
        optimizer.register_step_post_hook(apply)
        optimizer._hamq_float_masks_hooked = True  # type: ignore[attr-defined]


def masks_to_meta(masks: Iterable[LayerMask]) -> list[dict[str, Any]]:
    return [m.to_dict() for m in masks]


def masks_from_meta(data: Any, where: str) -> list[LayerMask]:
    if not isinstance(data, list):
        raise HamqError(f"{where}: stored masks must be a list, not {type(data).__name__}")
    return [LayerMask.from_dict(d, where) for d in data]


def restore_masks(
    model: nn.Module,
    cfg: SparsityConfig,
    skip: Iterable[str],
    stored: Any,
    where: str,
) -> list[LayerMask]:
    """Rebuild a loaded run's masks and check them against its config and its weights.

    ``stored`` is the ``masks`` entry of the weights file's metadata (None when absent:
    a run without sparsity, or written before hamq stored masks). The masks the config
    resolves to must equal the stored ones; each must fit its layer; the weights outside
    every mask must be exactly 0. The masks are then fixed on the model.
    """
    expected = resolve_masks(model, cfg, skip)
    got = [] if stored is None else masks_from_meta(stored, where)
    if got != expected:
        exp, have = {m.name: m for m in expected}, {m.name: m for m in got}
        for name in [*exp, *(n for n in have if n not in exp)]:
            a, b = exp.get(name), have.get(name)
            if a == b:
                continue
            if a is not None and b is not None and a.shape != b.shape:
                raise HamqError(
                    f"{where}: the stored mask of layer '{name}' was made for weight shape "
                    f"{list(b.shape)}, but the layer's weight is {list(a.shape)}: it does not fit"
                )
            said = "no mask" if b is None else b.describe()
            want = "no mask" if a is None else a.describe()
            raise HamqError(
                f"{where}: the stored mask parameters of layer '{name}' ({said}) disagree "
                f"with the run's config ({want})"
            )
    attach_masks(model, got)
    check_weights(model, got, where)
    fix_masks(model)
    return got
