"""Models by name. Every model is a plain ``nn.Module`` of Conv2d/Linear/BatchNorm layers,
built for a given input shape and class count, so ``quantize_model`` converts any of them."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import Field
from torch import nn

from hamq.config_base import Section
from hamq.errors import unknown_name
from hamq.models.dscnn import DSCNN
from hamq.models.resnet import resnet18_cifar, resnet20_cifar
from hamq.models.small import MLP, DigitsCNN


class ModelConfig(Section):
    """name: a registered model; width: channel multiplier (1.0 = as published)."""

    name: str = "digits-cnn"
    width: float = Field(1.0, gt=0, le=4)


ModelFactory = Callable[[tuple[int, ...], int, float], nn.Module]
MODELS: dict[str, ModelFactory] = {
    "digits-cnn": lambda shape, n, w: DigitsCNN(shape[0], n, w),
    "mlp": lambda shape, n, w: MLP(shape, n, w),
    "ds-cnn": lambda shape, n, w: DSCNN(shape[0], n, w),
    "resnet18": lambda shape, n, w: resnet18_cifar(shape[0], n, w),
    "resnet20": lambda shape, n, w: resnet20_cifar(shape[0], n, w),
}


def build_model(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The model named in ``cfg`` for inputs of ``input_shape`` (C, H, W) and ``num_classes``."""
    if cfg.name not in MODELS:
        raise unknown_name("model", cfg.name, MODELS)
    return MODELS[cfg.name](tuple(input_shape), num_classes, cfg.width)


__all__ = ["MODELS", "ModelConfig", "build_model"]
