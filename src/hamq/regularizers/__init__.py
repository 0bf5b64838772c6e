"""Regularizers that lower the crossbar cost of the stored weights.

Every regularizer is built by name from a :class:`RegularizerConfig` and the hardware
description, and is called with the model; the training loop knows nothing else about it.
"""

from hamq.regularizers.base import (
    REGULARIZERS,
    Regularizer,
    RegularizerConfig,
    RegularizerSum,
    build_regularizer,
    register,
)

# Importing the modules registers them.
from hamq.regularizers import bits, columns, energy, hamming, l1, prune  # noqa: F401  isort: skip

__all__ = [
    "REGULARIZERS",
    "Regularizer",
    "RegularizerConfig",
    "RegularizerSum",
    "build_regularizer",
    "register",
]
