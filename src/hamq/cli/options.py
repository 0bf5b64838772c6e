"""Options shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


def hardware_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--hw PRESET_OR_FILE`` and repeatable ``--set SECTION.FIELD=VALUE``: the hardware
    to use instead of (or changed from) the one the run recorded; passed as ``hw_name`` and
    ``hw_sets``."""
    func = click.option(
        "--set",
        "hw_sets",
        multiple=True,
        metavar="SECTION.FIELD=VALUE",
        help="Override a hardware field, e.g. --set adc.bits=6 (repeatable).",
    )(func)
    return click.option(
        "--hw",
        "hw_name",
        default=None,
        metavar="PRESET_OR_FILE",
        help="Hardware preset (hamq presets) or YAML file instead of the run's recorded one.",
    )(func)


def crossbar_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--crossbar`` and ``--calibration-samples N``: also compute the accuracy as the
    crossbars compute it (ADC plan calibrated on the validation split, else training
    samples); passed as ``crossbar`` and ``calibration_samples``."""
    func = click.option(
        "--calibration-samples",
        type=click.IntRange(min=1),
        default=None,
        help="Samples of the calibration split for the ADC ranges (default: up to 1000).",
    )(func)
    return click.option(
        "--crossbar",
        is_flag=True,
        help="Also simulate the crossbars bit by bit, with each layer's ADC, and report "
        "their accuracy beside the ideal one.",
    )(func)


def check_crossbar_options(crossbar: bool, calibration_samples: int | None) -> None:
    """Refuse --calibration-samples without --crossbar (it would be silently ignored)."""
    if calibration_samples is not None and not crossbar:
        from hamq.errors import HamqError

        raise HamqError(
            "--calibration-samples sets the ADC calibration of --crossbar; add --crossbar"
        )
