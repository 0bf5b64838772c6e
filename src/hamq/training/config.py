"""The run config: one validated object, loaded from YAML with ``--set key=value`` overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from hamq.config_base import Section, validate
from hamq.data import DATASETS, DataConfig
from hamq.errors import HamqError, closest, unknown_name
from hamq.files import load_yaml_file, parse_yaml
from hamq.hardware.representation import CELL_BITS, Representation
from hamq.hardware.spec import MAX_DEVICES_PER_CELL
from hamq.models import MODELS, ModelConfig
from hamq.quantization.config import QuantConfig
from hamq.regularizers import REGULARIZERS, RegularizerConfig
from hamq.sparsity.config import SparsityConfig
from hamq.training.analog import AnalogTrainConfig

#: Largest seed: torch generators take 64-bit seeds and each epoch's generator is seeded with
#: ``seed * 1_000_003 + epoch``, which stays below 2**63 for 32-bit seeds.
MAX_SEED = 2**32 - 1
#: Most epochs of a stage (a guard against a typo of a few digits, not a real limit).
MAX_EPOCHS = 100_000


class HardwareRef(Section):
    """The crossbar the regularizers and cell statistics assume.

    preset: a shipped preset name (``hamq presets``) or a YAML file.
    representation, cell_bits, slice_levels, compensation_scope: override the preset's
        (null keeps the preset's); ``slice_levels: spread`` programs a narrow top slice
        over the cell's whole range (``docs/noise.md``), which noise-aware training then
        draws; ``compensation_scope`` is the device's drift compensation per ``layer`` or
        per output ``column``, which noise-aware training then applies.
    devices_per_cell: devices in parallel in each cell (null keeps the preset's; see
        ``array.devices_per_cell``): noise-aware training draws each device's noise, and
        the energy regularizer prices every device's read.
    """

    preset: str = "rram-1b"
    representation: Representation | None = None
    cell_bits: int | None = None
    slice_levels: Literal["ladder", "spread"] | None = None
    compensation_scope: Literal["layer", "column"] | None = None
    devices_per_cell: int | None = Field(None, ge=1, le=MAX_DEVICES_PER_CELL)

    @field_validator("cell_bits")
    @classmethod
    def _cell_bits(cls, v: int | None) -> int | None:
        if v is not None and v not in CELL_BITS:
            raise ValueError("must be one of 1, 2, 4")
        return v

    def overrides(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.representation is not None:
            out["array.representation"] = self.representation
        if self.cell_bits is not None:
            out["array.cell_bits"] = self.cell_bits
        if self.slice_levels is not None:
            out["array.slice_levels"] = self.slice_levels
        if self.compensation_scope is not None:
            out["device.compensation_scope"] = self.compensation_scope
        if self.devices_per_cell is not None:
            out["array.devices_per_cell"] = self.devices_per_cell
        return out


SELECT_TOLERANCE = 0.005  # train.select_tolerance by default: half a point of validation


class TrainSection(Section):
    """The optimization.

    float_epochs: epochs of float pre-training before conversion (0 = QAT from scratch).
    qat_epochs: epochs of quantization-aware training with the regularizer (>= 1).
    optimizer: ``sgd`` (momentum, Nesterov) or ``adam``.
    lr: peak learning rate of the float stage; qat_lr: of the QAT stage (null = lr / 10
        when there was float pre-training, else lr).
    weight_decay: decoupled for adam (AdamW), L2 for sgd; not applied to BN or biases.
    schedule: ``cosine`` (per step, to 0 at the end of each stage) or ``constant``.
    warmup_epochs: linear warm-up at the start of the float stage.
    label_smoothing: cross-entropy label smoothing.
    device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    amp: bfloat16 autocast of the training forwards, on CUDA or the CPU (on a CPU with
        AVX512-BF16 a ResNet-20 float step is 1.47x faster than float32, BENCHMARKS.md;
        on a CPU without it, much slower). Evaluation always runs in float32.
    amp_qat: whether the QAT stage runs under that autocast too (with ``amp``). false keeps
        QAT in float32, so that its fake-quantized forward is exactly the integer path the
        crossbar simulation computes: bfloat16 holds 8 significant bits, so an 8-bit
        input code divided by its step could round to the neighbouring code.
    channels_last: train conv nets in the NHWC memory format (CPU and CUDA).
    init_from: float weights to start from: a run folder (its ``float.safetensors``, saved
        by every run at the end of its float stage) or such a file. With float_epochs = 0
        QAT starts from them (qat_lr; null = lr / 10); with float_epochs > 0 a float stage
        of its own (lr, warm-up, schedule) retrains them first, e.g. the pruned network of
        ``sparsity.from_float``.
    select: which QAT epoch's weights the run keeps and reports: ``best_val`` (highest
        validation accuracy; on a tie the later epoch, whose regularizer has acted longer),
        ``last``, or ``regularized``: of the QAT epochs whose validation accuracy is within
        ``select_tolerance`` of the best one, the one whose regularizer term (its value on
        the epoch's final weights, lambda included) is lowest; on a tie the more accurate,
        then the later. best_val keeps the least regularized epoch whenever the term costs
        validation accuracy (a 4-epoch HamQ run keeps epoch 0); ``regularized`` says, before
        training, how much validation accuracy the energy may cost. Without a regularizer
        it is best_val. The test part never chooses: it is evaluated once, on the kept
        weights. (``training/select.py``)
    select_tolerance: under ``regularized``, how far (a fraction, 0.005 = 0.5 points) an
        epoch's validation accuracy may trail the best selectable epoch's.
    distill: weight of knowledge distillation in the QAT loss, in [0, 1): ``(1 - distill)
        * CE + distill * T**2 * KL(teacher || student)`` at temperature
        ``distill_temperature``; the teacher is the float model the QAT stage starts from
        (this run's float stage, or ``init_from``'s float weights), frozen. 0 = off.
        (``training/distill.py``)
    distill_temperature: the softmax temperature T of that term (> 0).
    teacher: the float weights that teach instead (a run folder, its
        ``float.safetensors``, or such a file), e.g. the dense float model for a pruned
        network's QAT; null = the float model the stage starts from.
    distill_float: distil in the float stage too (same weight and temperature), from
        ``teacher`` or else ``init_from``'s float weights: a float retrain of a pruned
        network (``sparsity.from_float``) then learns from the dense model it was cut from.
    select_from: the first QAT epoch (0-based) ``best_val`` may keep. A regularizer needs
        epochs to act; on a small validation split an early epoch can win by noise and
        undo it (DS-CNN/KWS, HamQ: epoch 0 kept on one fold of three, with twice the ON
        cells of the others; RESULTS.md). Fix it before training, for every arm alike.
    """

    float_epochs: int = Field(10, ge=0, le=MAX_EPOCHS)
    qat_epochs: int = Field(10, ge=1, le=MAX_EPOCHS)
    optimizer: Literal["sgd", "adam"] = "adam"
    lr: float = Field(1e-2, gt=0)
    qat_lr: float | None = Field(None, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: int = Field(0, ge=0, le=MAX_EPOCHS)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = False
    amp_qat: bool = True
    channels_last: bool = False
    init_from: str | None = None
    select: Literal["best_val", "last", "regularized"] = "best_val"
    select_from: int = Field(0, ge=0, le=MAX_EPOCHS)
    select_tolerance: float = Field(SELECT_TOLERANCE, ge=0, lt=1)
    distill: float = Field(0.0, ge=0, lt=1)
    distill_temperature: float = Field(4.0, gt=0, le=100)
    teacher: str | None = None
    distill_float: bool = False

    @model_validator(mode="after")
    def _init_from(self) -> TrainSection:
        if self.distill == 0 and self.distill_temperature != 4.0:
            raise ValueError(
                "train.distill_temperature is set but train.distill is 0 (no distillation); "
                "set train.distill above 0 or drop distill_temperature"
            )
        if self.distill == 0 and (self.teacher is not None or self.distill_float):
            what = "teacher" if self.teacher is not None else "distill_float"
            raise ValueError(
                f"train.{what} is set but train.distill is 0 (no distillation); set "
                f"train.distill above 0 or drop {what}"
            )
        if self.distill_float and self.float_epochs == 0:
            raise ValueError(
                "train.distill_float with train.float_epochs = 0: there is no float stage to "
                "distil in; drop distill_float or give float epochs"
            )
        no_source = self.init_from is None and self.teacher is None
        if self.distill > 0 and self.float_epochs == 0 and no_source:
            raise ValueError(
                f"train.distill = {self.distill} needs a float model to learn from: give "
                "train.float_epochs > 0, train.init_from or train.teacher (QAT from scratch "
                "has none)"
            )
        if self.select_from >= self.qat_epochs:
            raise ValueError(
                f"train.select_from = {self.select_from}: must be below train.qat_epochs = "
                f"{self.qat_epochs} (it is the first QAT epoch selection may keep)"
            )
        if self.select != "regularized" and self.select_tolerance != SELECT_TOLERANCE:
            raise ValueError(
                f"train.select_tolerance = {self.select_tolerance} only applies to "
                f"train.select = regularized (here {self.select}); set select: regularized "
                "or drop select_tolerance"
            )
        if not self.amp and not self.amp_qat:
            raise ValueError(
                "train.amp_qat = false only matters with train.amp = true (it keeps QAT in "
                "float32 under a bfloat16 float stage); set train.amp = true or drop amp_qat"
            )
        return self

    @property
    def epochs(self) -> int:
        return self.float_epochs + self.qat_epochs

    def stage_lr(self, stage: str) -> float:
        """Peak learning rate of a stage (QAT after float weights: qat_lr or lr / 10)."""
        if stage == "float":
            return self.lr
        if self.float_epochs == 0 and self.init_from is None:
            return self.qat_lr if self.qat_lr is not None else self.lr
        return self.qat_lr if self.qat_lr is not None else self.lr / 10


class TrainConfig(Section):
    """A whole training run. Every field is documented in its section class."""

    seed: int = Field(0, ge=0, le=MAX_SEED)
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    quant: QuantConfig = QuantConfig()
    regularizer: RegularizerConfig = RegularizerConfig()
    hardware: HardwareRef = HardwareRef()
    train: TrainSection = TrainSection()
    sparsity: SparsityConfig = SparsityConfig()
    analog: AnalogTrainConfig = AnalogTrainConfig()

    @model_validator(mode="after")
    def _sparsity_phases(self) -> TrainConfig:
        self.sparsity.check_epochs(self.train.qat_epochs)
        return self

    @model_validator(mode="after")
    def _selection_needs_validation(self) -> TrainConfig:
        if self.train.select != "last" and self.data.validation_percent == 0:
            raise ValueError(
                f"train.select = {self.train.select} needs a validation part, but "
                "data.validation_percent "
                "is 0; set train.select = last or give data.validation_percent > 0"
            )
        return self

    @model_validator(mode="after")
    def _names(self) -> TrainConfig:
        if self.model.name not in MODELS:
            raise ValueError(str(unknown_name("model.name", self.model.name, MODELS)))
        if self.data.name not in DATASETS:
            raise ValueError(str(unknown_name("data.name", self.data.name, DATASETS)))
        if self.regularizer.name == "prune":
            raise ValueError(
                "regularizer.name = 'prune': the network-level term is set in the sparsity "
                "section (sparsity.sparsity, sparsity.lambda) and adds to regularizer, which "
                "names the main term (none, hamming, l1, bits, energy)"
            )
        regs = ["none", *(r for r in REGULARIZERS if r != "prune")]
        if self.regularizer.name not in regs:
            raise ValueError(str(unknown_name("regularizer.name", self.regularizer.name, regs)))
        return self

    def to_plain(self) -> dict[str, Any]:
        """JSON/YAML-ready dict (aliases used, so ``regularizer.lambda``).

        A ``sparsity`` (no mask) or ``analog`` (no noise) section at its defaults, and
        ``train.select_from`` at 0 and ``train.select_tolerance`` at its default, are left
        out, so a dense run's config reads as it did before the section existed and its
        saved run folders and checkpoints still match it (resume, sweep reuse).
        """
        exclude = {
            name for name, default in (("sparsity", SparsityConfig()),
                                       ("analog", AnalogTrainConfig()))
            if getattr(self, name) == default
        }  # fmt: skip
        plain = self.model_dump(mode="json", by_alias=True, exclude=exclude or None)
        if self.train.select_from == 0:  # likewise a field added in 0.4
            del plain["train"]["select_from"]
        if self.train.select_tolerance == SELECT_TOLERANCE:  # and one added in 0.5
            del plain["train"]["select_tolerance"]
        return plain


def _parse_value(text: str) -> Any:
    """A ``--set`` value: YAML scalar/list syntax (``1e-3``, ``true``, ``[a, b]``, ``null``);
    text that is not YAML stays a string, and YAML aliases are refused."""
    try:
        return parse_yaml(text, "--set value")
    except HamqError as err:
        if "alias" in str(err):
            raise HamqError(f"--set value '{text}': {err}") from None
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` strings to a nested dict (returns a new dict)."""
    import copy

    out = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise HamqError(f"--set '{item}' is not key=value (e.g. --set regularizer.lambda=0.01)")
        key, _, raw = item.partition("=")
        parts = key.strip().split(".")
        if not all(parts):
            raise HamqError(
                f"--set '{item}': the key '{key}' has an empty part; write section.field=value"
                " (e.g. --set quant.w_bits=4)"
            )
        node = out
        *parents, leaf = parts
        for p in parents:
            child = node.setdefault(p, {})
            if not isinstance(child, dict):
                raise HamqError(f"--set '{key}': '{p}' is a value, not a section")
            node = child
        node[leaf] = _parse_value(raw)
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """The run config from a YAML file (or the defaults) with overrides applied."""
    data: dict[str, Any] = {}
    source = "config"
    if path is not None:
        p = Path(path)
        loaded = load_yaml_file(p, "config file")
        if not isinstance(loaded, dict):
            raise HamqError(
                f"config file '{p}' must hold a mapping of sections, not a {type(loaded).__name__}"
            )
        data = loaded
        source = f"config '{p}'"
    data = apply_overrides(data, overrides or [])
    return validate(TrainConfig, data, source=source)


def known_sections() -> list[str]:
    return list(TrainConfig.model_fields)


__all__ = [
    "HardwareRef",
    "TrainConfig",
    "TrainSection",
    "apply_overrides",
    "closest",
    "load_config",
]
