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
