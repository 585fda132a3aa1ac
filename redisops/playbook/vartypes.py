"""Typed values: playbook vars (``--var k=v``) and action arguments (``with:``).

Each type turns what the user wrote (text on the command line, or a YAML value) into
the value expressions see, or raises :class:`ValueError` with what was expected:

>>> coerce("address", "redis://10.0.0.1:6380")
'10.0.0.1:6380'
>>> coerce("duration", "1m30s"), coerce("duration", "250ms"), coerce("duration", 5)
(90.0, 0.25, 5.0)
>>> coerce("size", "64mb"), coerce("int", "12"), coerce("bool", "yes")
(67108864, 12, True)
>>> coerce("addresses", "10.0.0.1:6379, 10.0.0.2")
['10.0.0.1:6379', '10.0.0.2:6379']
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from redisops.errors import BadInput

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.I)


def _address(value: Any) -> str:
    from redisops.model import parse_target

    if not isinstance(value, str):
        raise ValueError("expected HOST:PORT")
    try:
        return str(parse_target(value).address)
    except BadInput as exc:
        raise ValueError(exc.message) from None


def _addresses(value: Any) -> list[str]:
    items = value if isinstance(value, list) else str(value).split(",")
    return [_address(str(v).strip()) for v in items if str(v).strip()]


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a whole number, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    raise ValueError("expected a whole number")


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError("expected a number") from None


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ValueError("expected true or false")


def parse_duration(value: Any) -> float:
    """Seconds from ``30s``, ``5m``, ``1h``, ``250ms``, ``1m30s`` or a bare number (seconds)."""
    from redisops.units import parse_duration as parse

    if isinstance(value, bool):
        raise ValueError("expected a duration like 30s, got a boolean")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    try:
        return parse(str(value), option="duration")
    except BadInput:
        raise ValueError("expected a duration like 30s, 5m, 250ms or 1m30s") from None


def parse_size(value: Any) -> int:
    """Bytes from ``64mb``, ``1gb``, ``512k`` or a bare number (Redis's units: 1k = 1024)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise ValueError("expected a size like 64mb, 1gb or a number of bytes")
    number, prefix = float(m.group(1)), m.group(2).lower()
    return int(number * 1024 ** ("kmgt".index(prefix) + 1 if prefix else 0))


def _str(value: Any) -> str:
    if isinstance(value, (dict, list)):
        raise ValueError("expected text")
    return "" if value is None else str(value)


def _any(value: Any) -> Any:
    return value


def _list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    raise ValueError("expected a list")


#: type name -> (converter, how it is written for humans)
TYPES: dict[str, tuple[Callable[[Any], Any], str]] = {
    "str": (_str, "text"),
    "int": (_int, "a whole number"),
    "float": (_float, "a number"),
    "bool": (_bool, "true or false"),
    "duration": (parse_duration, "a duration like 30s, 5m or 250ms"),
    "size": (parse_size, "a size like 64mb"),
    "address": (_address, "HOST:PORT"),
    "addresses": (_addresses, "HOST:PORT[,HOST:PORT...]"),
    "list": (_list, "a list"),
    "expr": (_str, "an expression"),
    "any": (_any, "any value"),
}


def coerce(kind: str, value: Any) -> Any:
    """``value`` as type ``kind`` (ValueError saying what was expected)."""
    fn, _ = TYPES[kind]
    return fn(value)


def describe(kind: str) -> str:
    return TYPES[kind][1]
