"""Regularizers that lower the crossbar cost of the stored weights.

Every regularizer is built by name from a :class:`RegularizerConfig` and the hardware
description, and is called with the model; the training loop knows nothing else about it.
"""

from hamq.regularizers.base import (
    REGULARIZERS,
    Regularizer,
    RegularizerConfig,
    build_regularizer,
    register,
)

# Importing the modules registers them.
from hamq.regularizers import energy, hamming, l1  # noqa: F401  isort: skip

__all__ = ["REGULARIZERS", "Regularizer", "RegularizerConfig", "build_regularizer", "register"]
