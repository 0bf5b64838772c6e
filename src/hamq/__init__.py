"""hamq: energy-aware quantized training for analog compute-in-memory accelerators.

Pipeline (one sub-package per stage)::

    data -> models -> quantization (+ regularizers) -> training -> checkpoint
         -> hardware (representation, mapping, energy) -> experiments (sweeps, reports) -> cli
"""

from hamq.errors import HamqError

__version__ = "0.4.0"
__all__ = ["HamqError", "__version__"]
