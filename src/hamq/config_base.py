"""Typed, validated configuration: the shared base and the error formatting.

Every config section is a pydantic model with ``extra='forbid'``: an unknown key is an
error that names the closest valid key, so a typo never silently builds a different model.
"""

from __future__ import annotations

from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict

from hamq.errors import HamqError, closest


class Section(BaseModel):
    """Base of every config section: strict keys, validated on assignment, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _field_names(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Names (and aliases) valid at ``loc`` inside ``model``, for typo suggestions."""
    current: Any = model
    for part in loc[:-1]:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = _lookup_field(current, str(part))
        if field is None:
            return []
        current = field.annotation
    if not (isinstance(current, type) and issubclass(current, BaseModel)):
        return []
    names = []
    for fname, finfo in current.model_fields.items():
        names.append(finfo.alias or fname)
    return names


def _lookup_field(model: type[BaseModel], name: str) -> Any:
    for fname, finfo in model.model_fields.items():
        if name in (fname, finfo.alias):
            return finfo
    return None


def format_validation_error(
    err: pydantic.ValidationError, model: type[BaseModel], source: str = "config"
) -> HamqError:
    """Turn pydantic's multi-line error into one line naming field, value and what is allowed."""
    parts = []
    for e in err.errors():
        loc = tuple(e["loc"])
        where = ".".join(str(p) for p in loc) or "(top level)"
        if e["type"] == "extra_forbidden":
            key = str(loc[-1])
            hint = closest(key, _field_names(model, loc))
            valid = ", ".join(sorted(_field_names(model, loc)))
            parts.append(f"unknown key '{where}'{hint}; allowed keys here: {valid}")
            continue
        value = e.get("input")
        msg = e["msg"]
        if e["type"] == "literal_error":
            ctx = e.get("ctx", {}).get("expected", "")
            hint = closest(
                str(value), [s.strip().strip("'") for s in ctx.replace(" or ", ", ").split(",")]
            )
            msg = f"must be one of {ctx}{hint}"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if not loc:
            parts.append(msg)
            continue
        if isinstance(value, dict):  # a check across a section's fields
            parts.append(f"{where}: {msg}")
            continue
        parts.append(f"{where} = {value!r}: {msg}")
    return HamqError(f"invalid {source}: " + "; ".join(parts))


def validate(model: type[BaseModel], data: dict[str, Any], source: str = "config") -> Any:
    """Build ``model`` from ``data`` or raise :class:`HamqError` with a one-line message."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as err:
        raise format_validation_error(err, model, source) from None
