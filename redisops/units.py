"""Human units on the command line.

>>> parse_rate("100MB"), parse_rate("1gbit"), parse_rate("250"), parse_rate("512KB/s")
(100000000.0, 125000000.0, 250000000.0, 512000.0)
"""

from __future__ import annotations

import re

from redisops.errors import BadInput

_RATE = re.compile(
    r"^\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?)(b|bit|bits|byte|bytes)?\s*(/s|ps)?\s*$", re.I
)
_SCALE = {"": 1e0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


def parse_rate(text: str, *, option: str = "--bandwidth") -> float:
    """Bytes per second from ``100MB``, ``1gbit``, ``512KB/s``; a bare number means MB/s."""
    m = _RATE.match(text)
    if not m:
        raise BadInput(
            f"{option} {text!r} is not a rate",
            hint="e.g. 100MB, 1gbit, 512KB/s (a bare number is MB/s)",
        )
    value, prefix, binary, unit, _ = m.groups()
    number = float(value)
    if not prefix and not unit:
        return number * 1e6
    scale = (
        (1024 ** "kmgt".index(prefix.lower()) * 1024)
        if binary and prefix
        else _SCALE[prefix.lower()]
    )
    if unit and unit.lower().startswith("bit"):
        return number * scale / 8
    return number * scale


_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]+)\s*(ms|s|m|h|d)?", re.I)
_SECONDS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str, *, option: str) -> float:
    """Seconds from ``5s``, ``500ms``, ``2m``, ``1h``, ``1d`` or ``1m30s``; a bare number is
    seconds.

    >>> parse_duration("5s", option="--sample"), parse_duration("2m", option="-t"), parse_duration("0.5", option="-t")
    (5.0, 120.0, 0.5)
    >>> parse_duration("1m30s", option="-t"), parse_duration("250ms", option="-t")
    (90.0, 0.25)
    """
    body = text.strip()
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(body):
        if m.start() != pos or (m.group(2) is None and m.end() != len(body)):
            break
        total += float(m.group(1)) * _SECONDS[(m.group(2) or "s").lower()]
        pos = m.end()
    if not body or pos != len(body):
        raise BadInput(f"{option} {text!r} is not a duration", hint="e.g. 5s, 500ms, 2m, 1h, 1m30s")
    return total
