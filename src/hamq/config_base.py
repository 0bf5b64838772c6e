"""Typed, validated configuration: the shared base and the error formatting.

Every config section is a pydantic model with ``extra='forbid'``: an unknown key is an
error that names the closest valid key, so a typo never silently builds a different model.
Numbers must be finite (``.inf`` and ``.nan`` are refused everywhere: an infinite learning
rate or lambda trains NaN weights), a boolean is never taken for a number (YAML's
``true`` would otherwise become a learning rate of 1.0) and a switch is ``true`` or
``false``, not 0, 1 or a string.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from hamq.errors import HamqError, closest

#: Longest value shown in a validation error (a hostile value must not flood the message).
MAX_VALUE_CHARS = 80


def _admits_bool(annotation: Any) -> bool:
    """Whether a field of this type may hold a bool (bool itself, Any, or a union with it)."""
    if annotation is bool or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_admits_bool(a) for a in typing.get_args(annotation))
    return False


def _element_type(annotation: Any) -> Any:
    """The element type of a list/tuple field (the non-None member of an optional one)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for a in typing.get_args(annotation):
            if a is not type(None):
                return _element_type(a)
    if origin in (list, tuple):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return args[0] if args else Any
    return None


class Section(BaseModel):
    """Base of every config section: strict keys, finite numbers, immutable."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_number(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name is None:
            return value
        annotation = cls.model_fields[info.field_name].annotation
        if isinstance(value, bool) and not _admits_bool(annotation):
            raise ValueError("is a boolean (true/false); give a value of the field's type")
        if annotation is bool and not isinstance(value, bool):
            raise ValueError("must be true or false")
        element = _element_type(annotation)
        if (
            element is not None
            and isinstance(value, list | tuple)
            and any(isinstance(v, bool) for v in value)
            and not _admits_bool(element)
        ):
            raise ValueError("holds a boolean (true/false); give values of the field's type")
        return value


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
            # (its message names the field already when it starts with "section.")
            parts.append(msg if msg.startswith(f"{where}.") else f"{where}: {msg}")
            continue
        shown = repr(value)
        if len(shown) > MAX_VALUE_CHARS:
            shown = shown[: MAX_VALUE_CHARS - 3] + "..."
        parts.append(f"{where} = {shown}: {msg}")
    return HamqError(f"invalid {source}: " + "; ".join(parts))


def _not_unicode(value: Any, where: str = "") -> str | None:
    """The dotted place of the first string holding lone surrogates (undecodable bytes that
    Python smuggles in from argv or file names), or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return where or "(top level)"
        return None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return None
    for key, sub in items:
        found = _not_unicode(key, where) if isinstance(key, str) else None
        found = found or _not_unicode(sub, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None


def validate(model: type[BaseModel], data: dict[str, Any], source: str = "config") -> Any:
    """Build ``model`` from ``data`` or raise :class:`HamqError` with a one-line message."""
    try:
        where = _not_unicode(data)
        if where is not None:
            raise HamqError(
                f"invalid {source}: {where} holds bytes that are not UTF-8 text; write it in UTF-8"
            )
        return model.model_validate(data)
    except pydantic.ValidationError as err:
        raise format_validation_error(err, model, source) from None
    except RecursionError:
        raise HamqError(f"invalid {source}: values nested too deeply") from None
