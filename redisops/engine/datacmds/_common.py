"""Helpers shared by the data commands: argument parsing, glob matching, SCAN.

Error texts are Redis 7.0's, raised as :class:`CommandError`.
"""

from __future__ import annotations

from redisops.engine.command import NOT_INTEGER, SYNTAX, CommandError, ExecContext
from redisops.engine.datacmds._num import (
    LLONG_MAX,
    parse_strtoul_cursor,
    parse_timeout_ms,
    string2ll,
)
from redisops.engine.keyspace import TYPE_NAMES, Value
from redisops.engine.resp import Reply

#: ``proto-max-bulk-len``: APPEND/SETRANGE refuse to build longer strings.
PROTO_MAX_BULK_LEN = 512 * 1024 * 1024


def opt(arg: bytes) -> bytes:
    """An option token as ``strcasecmp()`` sees it: lower-case, ending at a NUL byte."""
    if 0 in arg:
        arg = arg[: arg.index(0)]
    return arg.lower()


def get_ll(arg: bytes, msg: str = NOT_INTEGER) -> int:
    """``getLongLongFromObjectOrReply()`` (a C long is 64 bits, so also ``getLong``)."""
    value = string2ll(arg)
    if value is None:
        raise CommandError(msg)
    return value


def get_range_long(arg: bytes, low: int, high: int, msg: str | None = None) -> int:
    """``getRangeLongFromObjectOrReply()``."""
    value = string2ll(arg)
    if value is None:
        raise CommandError(msg or NOT_INTEGER)
    if not low <= value <= high:
        raise CommandError(msg or f"ERR value is out of range, value must between {low} and {high}")
    return value


def get_positive_long(arg: bytes, msg: str | None = None) -> int:
    """``getPositiveLongFromObjectOrReply()``: 0..LONG_MAX."""
    return get_range_long(arg, 0, LLONG_MAX, msg or "ERR value is out of range, must be positive")


def block_deadline(ctx: ExecContext, arg: bytes) -> int:
    """``getTimeoutFromObjectOrReply()`` in seconds: absolute deadline in ms, 0 = forever."""
    ms = parse_timeout_ms(arg)
    if ms is None:
        raise CommandError("ERR timeout is not a float or out of range")
    if ms < 0:
        raise CommandError("ERR timeout is negative")
    return ms + ctx.now_ms if ms > 0 else 0


def check_string_length(ctx: ExecContext, size: int) -> None:
    """``checkStringLength()``; the master's stream is exempt (``mustObeyClient``)."""
    if size > PROTO_MAX_BULK_LEN and ctx.mode != "replica_apply":
        raise CommandError("ERR string exceeds maximum allowed size (proto-max-bulk-len)")


# ----------------------------------------------------------------------------- glob


def _signed(c: int) -> int:
    """A byte as a signed C ``char`` (x86), which is how ``[a-z]`` ranges compare."""
    return c - 256 if c >= 128 else c


def stringmatch(pattern: bytes, string: bytes) -> bool:
    """Redis ``stringmatchlen()`` (case-sensitive): ``*``, ``?``, ``[...]``, ``\\`` escapes.

    >>> stringmatch(b"h?llo*", b"hello world"), stringmatch(b"h[^e]llo", b"hello")
    (True, False)
    >>> stringmatch(b"a[b-d]c", b"acc"), stringmatch(b"a\\\\*", b"a*"), stringmatch(b"x[", b"x")
    (True, True, False)
    """
    try:
        return _match(pattern, 0, len(pattern), string, 0, len(string), [False])
    except RecursionError:  # thousands of '*': Redis would just be slow
        return False


def _match(
    pat: bytes, p: int, plen: int, s: bytes, i: int, slen: int, skip_longer: list[bool]
) -> bool:
    n = len(pat)
    while plen and slen:
        c = pat[p]
        if c == 0x2A:  # '*'
            while plen and (pat[p + 1] if p + 1 < n else 0) == 0x2A:
                p += 1
                plen -= 1
            if plen == 1:
                return True
            while slen:
                if _match(pat, p + 1, plen - 1, s, i, slen, skip_longer):
                    return True
                if skip_longer[0]:
                    return False
                i += 1
                slen -= 1
            skip_longer[0] = True
            return False
        if c == 0x3F:  # '?'
            i += 1
            slen -= 1
        elif c == 0x5B:  # '['
            p += 1
            plen -= 1
            negate = (pat[p] if p < n else 0) == 0x5E
            if negate:
                p += 1
                plen -= 1
            matched = False
            while True:
                pc = pat[p] if p < n else 0
                if pc == 0x5C and plen >= 2:
                    p += 1
                    plen -= 1
                    if pat[p] == s[i]:
                        matched = True
                elif pc == 0x5D:
                    break
                elif plen == 0:
                    p -= 1
                    plen += 1
                    break
                elif plen >= 3 and pat[p + 1] == 0x2D:
                    start, end = _signed(pat[p]), _signed(pat[p + 2])
                    if start > end:
                        start, end = end, start
                    p += 2
                    plen -= 2
                    if start <= _signed(s[i]) <= end:
                        matched = True
                elif pc == s[i]:
                    matched = True
                p += 1
                plen -= 1
            if negate:
                matched = not matched
            if not matched:
                return False
            i += 1
            slen -= 1
        else:
            if c == 0x5C and plen >= 2:
                p += 1
                plen -= 1
            if pat[p] != s[i]:
                return False
            i += 1
            slen -= 1
        p += 1
        plen -= 1
        if slen == 0:
            while (pat[p] if p < n else 0) == 0x2A:
                p += 1
                plen -= 1
            break
    return plen == 0 and slen == 0


# ----------------------------------------------------------------------------- SCAN


def parse_cursor(arg: bytes) -> int:
    cursor = parse_strtoul_cursor(arg)
    if cursor is None:
        raise CommandError("ERR invalid cursor")
    return cursor


class ScanOptions:
    """COUNT / MATCH / TYPE of a SCAN-family command, parsed like ``scanGenericCommand()``."""

    __slots__ = ("count", "pattern", "type_name")

    def __init__(self, argv: list[bytes], start: int, keyspace_scan: bool) -> None:
        self.count = 10
        self.pattern: bytes | None = None
        self.type_name: bytes | None = None
        i = start
        argc = len(argv)
        while i < argc:
            name = opt(argv[i])
            more = argc - i >= 2
            if name == b"count" and more:
                self.count = get_ll(argv[i + 1])
                if self.count < 1:
                    raise CommandError(SYNTAX)
            elif name == b"match" and more:
                pattern = argv[i + 1]
                self.pattern = None if pattern == b"*" else pattern
            elif name == b"type" and keyspace_scan and more:
                self.type_name = argv[i + 1]
            else:
                raise CommandError(SYNTAX)
            i += 2

    def keep(self, element: bytes) -> bool:
        return self.pattern is None or stringmatch(self.pattern, element)


def scan_reply(cursor: int, elements: list[bytes]) -> list[Reply]:
    items: list[Reply] = list(elements)
    return [b"%d" % cursor, items]


def type_name(value: Value | None) -> str:
    return "none" if value is None else TYPE_NAMES[type(value)]
