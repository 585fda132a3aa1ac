"""Configuration values in one canonical form, so that equal settings compare equal.

Raw string comparison is what makes config checkers cry wolf (``1gb`` vs ``1073741824``,
``YES`` vs ``yes``, ``save`` lines in another order; Patroni's pending-restart flags that
never clear are the same mistake). Each key is normalised by its type in the server's table
(:mod:`redisops.checks.versions`), with Redis's own parsing rules:

* memory: ``k`` = 1000, ``kb`` = 1024, ``m`` = 10**6, ``mb`` = 2**20, ``g``/``gb`` likewise,
  case-insensitive (``memtoll``); CONFIG GET prints plain bytes;
* bool and enum: lower case; int: the integer;
* ``save``: the set of (seconds, changes) pairs; several file lines accumulate, ``save ""``
  clears;
* ``client-output-buffer-limit``: ``{class: (hard, soft, seconds)}`` in bytes, ``replica``
  read as ``slave``; file lines merge per class over the defaults;
* ``notify-keyspace-events``: a set of flags (``A`` expanded);
* lists (``latency-tracking-info-percentiles``...): the numbers, in order.

>>> normalise("maxmemory", "1GB", "memory"), normalise("maxmemory", "1073741824", "memory")
('1073741824', '1073741824')
>>> normalise("save", "300 10 3600 1", "save") == normalise("save", "3600 1 300 10", "save")
True
>>> normalise("notify-keyspace-events", "KEA", "flags"), normalise("notify-keyspace-events", "AKE", "flags")
('$AEKdeghlstxz', '$AEKdeghlstxz')
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from redisops.engine.config import memtoll

#: The classes of client-output-buffer-limit, in CONFIG GET order.
OBL_CLASSES = ("normal", "slave", "pubsub")
#: What ``A`` stands for in notify-keyspace-events (``NOTIFY_ALL``, Redis 7.0).
_NOTIFY_ALL = "g$lshzxetd"


def normalise(key: str, value: str, kind: str) -> str:
    """``value`` of ``key`` in canonical form (unparsable values are returned as given)."""
    if kind in ("bool", "enum"):
        return value.lower()
    if kind == "int":
        try:
            return str(int(value))
        except ValueError:
            return value
    if kind == "memory":
        if value.endswith("%"):
            return value
        n = memtoll(value)
        return value if n is None else str(n)
    if kind == "save":
        return save_text(save_pairs([value.split()]))
    if kind == "obl":
        try:
            return obl_text(merge_obl(obl_default(), [value.split()]))
        except ValueError:
            return value
    if kind == "flags":
        return flags_text(value)
    if kind in ("list", "special"):
        return " ".join(_number(w) for w in value.split())
    return value


def _number(word: str) -> str:
    try:
        return f"{float(word):g}"
    except ValueError:
        return word


# ----------------------------------------------------------------------------- save


def save_pairs(lines: Iterable[Sequence[str]]) -> list[tuple[int, int]]:
    """The save points of several ``save`` lines (``save ""`` clears what came before).

    >>> save_pairs([["900", "1"], ["300", "10"]]), save_pairs([["900", "1"], [""], ["60", "5"]])
    ([(300, 10), (900, 1)], [(60, 5)])
    """
    points: set[tuple[int, int]] = set()
    for words in lines:
        args = [w for w in words if w != ""]
        if not args:
            points.clear()
            continue
        for i in range(0, len(args) - 1, 2):
            try:
                points.add((int(args[i]), int(args[i + 1])))
            except ValueError:
                continue
    return sorted(points)


def save_text(points: Sequence[tuple[int, int]]) -> str:
    """Save points as CONFIG GET prints them (longest interval first).

    >>> save_text([(60, 10000), (3600, 1)])
    '3600 1 60 10000'
    """
    return " ".join(f"{s} {c}" for s, c in sorted(points, reverse=True))


# ----------------------------------------------------------------------------- output buffers

Limits = dict[str, tuple[int, int, int]]


def obl_default() -> Limits:
    """Redis's compiled-in client-output-buffer-limit (every version in the tables)."""
    return {
        "normal": (0, 0, 0),
        "slave": (256 * 1024 * 1024, 64 * 1024 * 1024, 60),
        "pubsub": (32 * 1024 * 1024, 8 * 1024 * 1024, 60),
    }


def merge_obl(base: Limits, lines: Iterable[Sequence[str]]) -> Limits:
    """``base`` with each ``class hard soft seconds`` group of ``lines`` applied.

    >>> merge_obl(obl_default(), [["replica", "1gb", "512mb", "120"]])["slave"]
    (1073741824, 536870912, 120)
    """
    out = dict(base)
    for words in lines:
        if len(words) % 4:
            raise ValueError("client-output-buffer-limit takes groups of 4 arguments")
        for i in range(0, len(words), 4):
            cls = words[i].lower()
            cls = "slave" if cls == "replica" else cls
            hard, soft = memtoll(words[i + 1]), memtoll(words[i + 2])
            if cls not in OBL_CLASSES or hard is None or soft is None:
                raise ValueError(f"bad client-output-buffer-limit group {words[i : i + 4]}")
            out[cls] = (hard, soft, int(words[i + 3]))
    return out


def obl_text(limits: Limits) -> str:
    return " ".join(f"{c} {limits[c][0]} {limits[c][1]} {limits[c][2]}" for c in OBL_CLASSES)


def obl_class(text: str, cls: str = "slave") -> tuple[int, int, int]:
    """One class of a normalised client-output-buffer-limit.

    >>> obl_class("normal 0 0 0 slave 1 2 3 pubsub 4 5 6")
    (1, 2, 3)
    """
    return merge_obl(obl_default(), [text.split()])[cls]


# ----------------------------------------------------------------------------- flags


def flags_text(value: str) -> str:
    """notify-keyspace-events as a sorted flag set, with ``A`` expanded (plus ``A`` kept as a
    marker when every flag it stands for is on, as Redis prints it)."""
    flags = set(value)
    if "A" in flags:
        flags |= set(_NOTIFY_ALL)
    if set(_NOTIFY_ALL) <= flags:
        flags.add("A")
    return "".join(sorted(flags))
