"""One value of a config: range checks, and text or YAML coerced to a field's type."""

from __future__ import annotations

import typing
from typing import Any

import yaml

from envsound.errors import ConfigError


def check_value(ok: bool, key: str, value: Any, valid: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is out of range; valid: {valid}")


def coerce_value(value: Any, hint: Any, key: str, source: str) -> Any:
    if hint is str and isinstance(value, str):  # as written: YAML would read "off" or "no" as a bool
        return value
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value) if value != "" else value
        except yaml.YAMLError:
            pass
    if typing.get_origin(hint) is list:  # a YAML list, one item, or "a,b,c" (--set train.lr_milestones=300,600)
        if isinstance(value, str):
            value = [item for item in value.split(",") if item.strip()]
        items = value if isinstance(value, (list, tuple)) else [value]
        return [coerce_value(item, typing.get_args(hint)[0], key, source) for item in items]
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if optional:
            return None
        raise ConfigError(f"{source}: {key} cannot be empty")
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            raise ValueError
        if base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if base is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if base is str:
            return str(value)
    except (TypeError, ValueError):
        pass
    else:
        return value
    raise ConfigError(f"{source}: {key}={value!r} is not a valid {getattr(base, '__name__', base)}")
