"""Redis's C number parsing/formatting as emulated by the data plane.

Expected values are what redis-server 7.0.15 answers for the corresponding commands
(e.g. ``INCRBYFLOAT`` for long doubles, ``ZSCORE`` for ``%.17g``).
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from redisops.engine.datacmds._common import stringmatch
from redisops.engine.datacmds._num import (
    LLONG_MIN,
    d2string,
    fmt_double,
    ld_add,
    ld_format_human,
    ld_parse,
    ld_round,
    parse_strtoul_cursor,
    parse_timeout_ms,
    string2d,
    string2ll,
    strtod_full,
)


@pytest.mark.parametrize(
    "text,value",
    [
        (b"0", 0),
        (b"-1", -1),
        (b"9223372036854775807", 2**63 - 1),
        (b"-9223372036854775808", -(2**63)),
        (b"9223372036854775808", None),
        (b"01", None),
        (b"+1", None),
        (b"-0", None),
        (b" 1", None),
        (b"1 ", None),
        (b"1_0", None),
        (b"", None),
        (b"1.0", None),
    ],
)
def test_string2ll_is_strict(text: bytes, value: int | None) -> None:
    assert string2ll(text) == value


def test_string2d_and_score_ranges() -> None:
    assert string2d(b"1.5") == 1.5
    assert string2d(b"-inf") == -math.inf
    assert string2d(b"1e400") is None  # ERANGE
    assert string2d(b"1e-400") is None
    assert string2d(b"4.9e-324") == 5e-324  # a subnormal is fine
    assert string2d(b"nan") is None
    assert string2d(b" 1") is None
    assert string2d(b"0x1p4") == 16.0
    assert strtod_full(b"") == 0.0
    assert strtod_full(b"\t2") == 2.0
    assert strtod_full(b"1e400") == math.inf
    assert strtod_full(b"2\x00junk") == 2.0  # the C string ends at NUL
    assert strtod_full(b"nan") is None
    assert strtod_full(b" ") is None


@pytest.mark.parametrize(
    "a,b,expected",
    [
        (b"0", b"0.1", b"0.1"),
        (b"0.1", b"0.2", b"0.3"),
        (b"0.3", b"1e3", b"1000.29999999999999999"),
        (b"10.50", b"0.1", b"10.6"),
        (b"5.0e3", b"2.0e2", b"5200"),
        (b"0.003", b"1e-20", b"0.003"),
        (b"0", b"-0.0", b"0"),
        (b"1", b"-1e-30", b"1"),
        (b"-1", b"-0.5", b"-1.5"),
    ],
)
def test_long_double_sums_print_like_redis(a: bytes, b: bytes, expected: bytes) -> None:
    total = ld_add(ld_parse(a)[1], ld_parse(b)[1])
    assert total is not None
    assert ld_format_human(total) == expected


def test_long_double_edges() -> None:
    assert ld_parse(b"1e4933") == ("error", None)  # overflow
    assert ld_parse(b"1e-5000") == ("error", None)  # underflow to zero
    assert ld_parse(b"inf")[0] == "inf"
    assert ld_parse(b"x" * 10 + b"1")[0] == "error"
    assert ld_parse(b"1" * 5200)[0] == "error"  # longer than MAX_LONG_DOUBLE_CHARS
    big = ld_parse(b"1.18e4932")[1]
    assert ld_add(big, big) is None
    assert ld_round(Fraction(2**64 + 1)) == 2**64  # ties to even at 64 bits
    assert ld_round(Fraction(2**64 + 3)) == 2**64 + 4
    assert ld_format_human(Fraction(-1, 10**30)) == b"0"


def test_timeouts() -> None:
    assert parse_timeout_ms(b"1.5") == 1500
    assert parse_timeout_ms(b"0") == 0
    assert parse_timeout_ms(b"0.0011") == 2  # ceil
    assert parse_timeout_ms(b"-1") == -1000
    assert parse_timeout_ms(b"inf") == LLONG_MIN  # reported as negative
    assert parse_timeout_ms(b"x") is None


def test_double_formatting() -> None:
    assert fmt_double(0.1) == b"0.10000000000000001"
    assert fmt_double(1e20) == b"1e+20"
    assert fmt_double(-0.0) == b"-0"
    assert fmt_double(math.inf) == b"inf"
    assert d2string(1e17) == b"100000000000000000"
    assert d2string(1e20) == b"1e+20"
    assert d2string(0.5) == b"0.5"
    assert d2string(-math.inf) == b"-inf"


def test_scan_cursor_parsing() -> None:
    assert parse_strtoul_cursor(b"0") == 0
    assert parse_strtoul_cursor(b"") == 0
    assert parse_strtoul_cursor(b"+7") == 7
    assert parse_strtoul_cursor(b"-1") == 2**64 - 1
    assert parse_strtoul_cursor(b" 1") is None
    assert parse_strtoul_cursor(b"18446744073709551616") is None
    assert parse_strtoul_cursor(b"1x") is None


@pytest.mark.parametrize(
    "pattern,string,match",
    [
        (b"*", b"", False),  # as in C; KEYS * finds "" through its match-all shortcut
        (b"h?llo", b"hello", True),
        (b"h*llo", b"heeeello", True),
        (b"h[ae]llo", b"hallo", True),
        (b"h[^e]llo", b"hello", False),
        (b"h[a-b]llo", b"hbllo", True),
        (b"[z-a]", b"m", True),  # reversed ranges are swapped
        (b"a\\*b", b"a*b", True),
        (b"a\\*b", b"axb", False),
        (b"a[", b"a", False),
        (b"[\xf0-\xff]*", b"\xfe", True),
        (b"[a-\xff]", b"b", False),  # signed chars: \xff is -1, so the range is [-1, 97]
        (b"**a", b"bca", True),
        (b"?", b"", False),
    ],
)
def test_glob(pattern: bytes, string: bytes, match: bool) -> None:
    assert stringmatch(pattern, string) is match
