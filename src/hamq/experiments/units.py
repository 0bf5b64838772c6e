"""Readable energy units for tables and plots: one SI prefix per column or axis."""

from __future__ import annotations

from collections.abc import Iterable

# (name, joules per unit), largest first.
ENERGY_UNITS: tuple[tuple[str, float], ...] = (
    ("J", 1.0),
    ("mJ", 1e-3),
    ("µJ", 1e-6),
    ("nJ", 1e-9),
    ("pJ", 1e-12),
    ("fJ", 1e-15),
)


def energy_unit(values_j: Iterable[float | None]) -> tuple[str, float]:
    """The unit (name, joules per unit) in which the largest magnitude of ``values_j``
    (joules; None ignored) reads between 1 and 1000: 5.5e-7 J -> ("nJ", 1e-9), shown as
    550. With no non-zero value, nJ."""
    top = max((abs(v) for v in values_j if v is not None), default=0.0)
    if top == 0.0:
        return "nJ", 1e-9
    for name, size in ENERGY_UNITS:
        if top >= size:
            return name, size
    return ENERGY_UNITS[-1]
