"""The ``sparsity`` section of a run config: LFSR masks, the ``prune`` term and its phases."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator, model_validator

from hamq.config_base import Section
from hamq.sparsity.lfsr import DEFAULT_POLY, FORMS, Form, check_poly, check_seed
from hamq.sparsity.masks import Granularity, sparsity_fraction

Update = Literal["gradient", "proximal"]


def _check_sparsity(v: float) -> float:
    sparsity_fraction(v)  # ValueError outside [0, 1)
    return v


class LayerSparsity(Section):
    """A per-layer override; a field left out (null) takes the section's value.

    sparsity: fraction of this layer's weights pruned, in [0, 1) (0 = keep it dense).
    seed: LFSR start state for this layer, in ``1 .. 2**n - 1`` (n = the degree of ``poly``).
    """

    sparsity: float | None = None
    seed: int | None = Field(None, ge=1)

    @field_validator("sparsity")
    @classmethod
    def _sparsity(cls, v: float | None) -> float | None:
        return None if v is None else _check_sparsity(v)

    @model_validator(mode="after")
    def _not_empty(self) -> LayerSparsity:
        if self.sparsity is None and self.seed is None:
            raise ValueError("a layer override sets nothing; give sparsity and/or seed")
        return self


class SparsityConfig(Section):
    """Network-level sparsity with LFSR-regenerated masks (``docs/sparsity.md``).

    The run keeps its masks as these parameters (per layer: polynomial, seed, sparsity),
    never as indices; every mask is rebuilt from them by the rule of ``sparsity/masks.py``.

    sparsity: fraction of each quantized layer's weights pruned, in [0, 1); 0 (the
        default) leaves every layer dense unless ``layers`` says otherwise.
    poly: exponents of the LFSR feedback polynomial's non-constant terms (the constant 1
        is implied): ``[9, 4]`` is x^9 + x^4 + 1, primitive (period 511). A polynomial
        that is not primitive is accepted with a warning giving its period, and is an
        error for a layer that its shorter cycle cannot cover.
    seed: the register's start state at each layer's first weight, in ``1 .. 2**n - 1``.
    form: ``fibonacci`` (external XOR) or ``galois`` (internal XOR) register; the same
        polynomial gives a different order of states, hence a different mask.
    granularity: ``weight`` (each weight kept or pruned; the arrays stay dense, pruned
        cells at level 0) or ``row`` (whole crossbar rows pruned, the same in every column,
        so the arrays store only the kept rows, in LFSR order, and the LFSR regenerates
        their input addresses: the index-free layout). See ``docs/sparsity.md``.
    layers: per-layer overrides keyed by layer name (as in ``model.named_modules()``, e.g.
        ``features.3``): ``{sparsity: 0.9, seed: 7}``; a name that is not a quantized layer
        is an error naming the closest one. On the command line give the whole mapping:
        ``--set 'sparsity.layers={features.3: {sparsity: 0.9}}'``.
    lambda: weight of the ``prune`` term, lambda * sum over layers of the L2 norm of the
        integer-unit weights outside the mask (``regularizers/prune.py``), during the QAT
        epochs before the masks are fixed; 0 = prune with no regularized phase.
    update: how the ``prune`` term acts: ``gradient`` (a loss term, the default, as in the
        paper) or ``proximal`` (after each optimizer step, the term's proximal operator at
        the step's learning rate: the pruned weights shrink toward 0 and never past it, so
        they settle instead of oscillating under SGD momentum; ``sparsity/proximal.py``).
        ``proximal`` needs ``lambda`` above 0.
    finetune_epochs: the last ``finetune_epochs`` of ``train.qat_epochs`` run with the
        masks fixed (pruned weights exactly 0, their gradients masked); null = half of
        ``train.qat_epochs``, rounded up. The QAT epochs before them are the regularized
        phase; the masks are fixed at the start of the first fine-tune epoch.
    from_float: the masks act from the first float epoch: the float stage trains the
        pruned network itself (an LFSR mask does not depend on the weights, so it is known
        before training), from the model's initialization or from ``train.init_from``'s
        dense float weights, hard-pruned first (a float retrain of the pruned network);
        every QAT epoch then fine-tunes with the masks fixed. There is no regularized
        phase, so ``lambda`` must be 0 and ``finetune_epochs`` unset. Why: 4 QAT epochs
        at lr <= 0.01 cannot repair a random removal of half a ResNet-20's rows
        (``docs/sparsity.md``).
    clear_columns: bit-column sparsity after training, for arrays that skip all-OFF
        columns (``array.skip_empty_columns``): once the kept epoch is selected, every
        physical column of a row tile with at most this many ON cells (the run's hardware
        mapping: its tile rows, representation, cell bits and index-free layout) is
        emptied by moving each of its weights to the nearest code that is OFF there, in
        the tile's empty columns and in the others being cleared; a column holding a
        range-setting weight is left (``sparsity/column_clear.py``). The test accuracy,
        energy and crossbar accuracy are those of the cleared weights; the record keeps
        the validation accuracy before and after. 0 (the default) = off. It needs no
        mask, so it applies to dense runs too.
    clear_max_move: with ``clear_columns``, a column is cleared only if none of its
        weights moves by more than this many codes (default 3: within the lowest 2-bit
        cell). Clearing a high slice moves the largest weights: on ResNet-20 with no limit
        it cost 1.7 pp (``docs/sparsity.md``).
    """

    sparsity: float = 0.0
    poly: tuple[int, ...] = DEFAULT_POLY
    seed: int = Field(1, ge=1)
    form: Form = "fibonacci"
    granularity: Granularity = "weight"
    layers: dict[str, LayerSparsity] = Field(default_factory=dict)
    lambda_: float = Field(0.0, ge=0, alias="lambda")
    finetune_epochs: int | None = Field(None, ge=1)
    from_float: bool = False
    update: Update = "gradient"
    clear_columns: int = Field(0, ge=0, le=4096)
    clear_max_move: int = Field(3, ge=1, le=255)

    @field_validator("sparsity")
    @classmethod
    def _sparsity(cls, v: float) -> float:
        return _check_sparsity(v)

    @field_validator("poly")
    @classmethod
    def _poly(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        return check_poly(v)

    @model_validator(mode="after")
    def _consistent(self) -> SparsityConfig:
        check_seed(self.seed, self.poly)
        for name, layer in self.layers.items():
            if layer.seed is None:
                continue
            try:
                check_seed(layer.seed, self.poly)
            except ValueError as err:
                raise ValueError(f"sparsity.layers.{name}.seed: {err}") from None
            if (layer.sparsity if layer.sparsity is not None else self.sparsity) == 0:
                raise ValueError(
                    f"sparsity.layers.{name}.seed is set but the layer has sparsity 0, so no "
                    f"mask is made; give it a sparsity above 0 or drop the seed"
                )
        if self.from_float and self.lambda_ > 0:
            raise ValueError(
                f"sparsity.lambda = {self.lambda_} with sparsity.from_float: the masks act "
                f"from the first float epoch, so the weights outside them are 0 already and "
                f"the prune term has nothing to push; set lambda to 0 or from_float to false"
            )
        if self.enabled and self.update == "proximal" and self.lambda_ == 0:
            raise ValueError(
                "sparsity.update = proximal with sparsity.lambda = 0: the proximal step "
                "would do nothing; set lambda above 0 (e.g. 0.01) or update to gradient"
            )
        if self.from_float and self.finetune_epochs is not None:
            raise ValueError(
                "sparsity.finetune_epochs is set with sparsity.from_float: every QAT epoch "
                "fine-tunes with the masks fixed; drop finetune_epochs"
            )
        if self.clear_max_move != 3 and self.clear_columns == 0:
            raise ValueError(
                f"sparsity.clear_max_move = {self.clear_max_move} with clear_columns = 0: "
                f"nothing is cleared; set sparsity.clear_columns (e.g. 2) or drop it"
            )
        if not self.enabled:
            # Never accept an option that would be silently ignored.
            unused = [
                f
                for f, default in (
                    ("poly", DEFAULT_POLY),
                    ("seed", 1),
                    ("form", "fibonacci"),
                    ("granularity", "weight"),
                    ("lambda", 0.0),
                    ("finetune_epochs", None),
                    ("from_float", False),
                    ("update", "gradient"),
                )
                if getattr(self, "lambda_" if f == "lambda" else f) != default
            ]
            if unused:
                raise ValueError(
                    f"sparsity.{unused[0]} is set but every layer has sparsity 0, so no mask "
                    f"is made; set sparsity.sparsity (or a layer's) above 0"
                )
        return self

    @property
    def enabled(self) -> bool:
        """True when some layer gets a mask (a sparsity above 0)."""
        return self.sparsity > 0 or any(
            (x.sparsity if x.sparsity is not None else self.sparsity) > 0
            for x in self.layers.values()
        )

    def finetune(self, qat_epochs: int) -> int:
        """Fine-tune epochs (masks fixed) out of ``qat_epochs``."""
        if self.from_float:
            return qat_epochs
        if self.finetune_epochs is not None:
            return self.finetune_epochs
        return math.ceil(qat_epochs / 2)

    def check_epochs(self, qat_epochs: int) -> None:
        """ValueError when the phases do not fit ``qat_epochs``."""
        if not self.enabled:
            return
        ft = self.finetune(qat_epochs)
        if ft > qat_epochs:
            raise ValueError(
                f"sparsity.finetune_epochs = {ft} exceeds train.qat_epochs = {qat_epochs}"
            )
        if self.lambda_ > 0 and ft == qat_epochs:
            raise ValueError(
                f"sparsity.lambda = {self.lambda_} acts before the masks are fixed, but "
                f"sparsity.finetune_epochs = train.qat_epochs = {qat_epochs} leaves no epoch "
                f"for it; lower finetune_epochs or set lambda to 0"
            )


__all__ = ["FORMS", "LayerSparsity", "SparsityConfig"]
