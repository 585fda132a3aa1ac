"""Number parsing and formatting exactly as Redis 7.0 does it in C.

Redis parses integers with its own strict ``string2ll()``, doubles with glibc ``strtod()``
and ``INCRBYFLOAT``/``HINCRBYFLOAT``/blocking timeouts with ``strtold()``, i.e. the x86-64
80-bit *long double* (64-bit significand). Python floats are IEEE doubles, so long-double
arithmetic is emulated here with exact fractions rounded to 64 significant bits; that is
what makes ``INCRBYFLOAT k 0.1`` answer ``0.1`` (not ``0.10000000000000001``) like Redis.

>>> string2ll(b"-12"), string2ll(b"012"), string2ll(b"+1"), string2ll(b"-0")
(-12, None, None, None)
>>> ld_format_human(ld_add(ld_parse(b"0")[1], ld_parse(b"0.1")[1]))
b'0.1'
>>> ld_format_human(ld_add(ld_parse(b"10.5")[1], ld_parse(b"0.1")[1]))
b'10.6'
>>> fmt_double(0.1), fmt_double(float("-inf")), fmt_double(3.0)
(b'0.10000000000000001', b'-inf', b'3')
>>> d2string(1e17), d2string(-0.0), d2string(2.5)
(b'100000000000000000', b'-0', b'2.5')
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Literal

LLONG_MAX = (1 << 63) - 1
LLONG_MIN = -(1 << 63)
ULONG_MAX = (1 << 64) - 1

#: ``MAX_LONG_DOUBLE_CHARS``: Redis's ``string2ld()`` refuses inputs this long or longer.
MAX_LONG_DOUBLE_CHARS = 5 * 1024

# C isspace() in the "C" locale.
_C_SPACE = frozenset(b" \t\n\v\f\r")

# The longest prefix glibc strtod()/strtold() consume (after optional leading spaces).
_STRTOD = re.compile(
    rb"""[ \t\n\v\f\r]*
    (?P<num>
      (?P<sign>[+-]?)
      (?:
        (?P<hex>0[xX](?:(?P<hi>[0-9a-fA-F]+)(?:\.(?P<hf1>[0-9a-fA-F]*))?|\.(?P<hf2>[0-9a-fA-F]+))
           (?:[pP](?P<hexp>[+-]?[0-9]+))?)
       |(?P<dec>(?:(?P<di>[0-9]+)(?:\.(?P<df1>[0-9]*))?|\.(?P<df2>[0-9]+))
           (?:[eE](?P<dexp>[+-]?[0-9]+))?)
       |(?P<inf>[iI][nN][fF](?:[iI][nN][iI][tT][yY])?)
       |(?P<nan>[nN][aA][nN](?:\([0-9A-Za-z_]*\))?)
      )
    )""",
    re.VERBOSE,
)

# A decimal exponent beyond these bounds over/underflows every C floating type, so it is
# decided without building huge integers.
_EXP_CLAMP = 20000


class _Parsed:
    """A strtod()/strtold() result: exact value (or inf/nan) and characters consumed."""

    __slots__ = ("consumed", "exact", "special")

    def __init__(self, consumed: int, exact: Fraction | None, special: float | None) -> None:
        self.consumed = consumed
        self.exact = exact
        self.special = special


def _scan(s: bytes) -> _Parsed:
    """Parse the longest numeric prefix of ``s`` as glibc does (``consumed=0``: none)."""
    m = _STRTOD.match(s)
    if m is None:
        return _Parsed(0, None, None)
    neg = m.group("sign") == b"-"
    if m.group("inf") is not None:
        return _Parsed(m.end(), None, -math.inf if neg else math.inf)
    if m.group("nan") is not None:
        return _Parsed(m.end(), None, math.nan)
    if m.group("hex") is not None:
        ipart = m.group("hi") or b""
        fpart = m.group("hf1") or m.group("hf2") or b""
        digits = (ipart + fpart) or b"0"
        exp2 = int(m.group("hexp") or b"0") - 4 * len(fpart)
        exp2 = max(-_EXP_CLAMP * 4, min(_EXP_CLAMP * 4, exp2))
        mant = int.from_bytes(bytes.fromhex((b"0" * (len(digits) & 1) + digits).decode()), "big")
        value = Fraction(mant << exp2) if exp2 >= 0 else Fraction(mant, 1 << -exp2)
    else:
        ipart = m.group("di") or b""
        fpart = m.group("df1") or m.group("df2") or b""
        digits = (ipart + fpart).lstrip(b"0") or b"0"
        exp10 = int(m.group("dexp") or b"0") - len(fpart)
        mant = _dec_to_int(digits)
        if mant and exp10 + len(digits) > _EXP_CLAMP:
            return _Parsed(m.end(), None, -math.inf if neg else math.inf)
        if mant and exp10 + len(digits) < -_EXP_CLAMP:
            mant = 0
        value = Fraction(mant * 10**exp10) if exp10 >= 0 else Fraction(mant, 10**-exp10)
    return _Parsed(m.end(), -value if neg else value, None)


# Python refuses int<->str conversions above 4300 digits; long doubles reach ~4933.
_CHUNK = 4000
_CHUNK_POW = 10**_CHUNK


def _dec_to_int(digits: bytes) -> int:
    value = 0
    for start in range(0, len(digits), _CHUNK):
        part = digits[start : start + _CHUNK]
        value = value * 10 ** len(part) + int(part)
    return value


def _int_to_dec(n: int) -> bytes:
    if n < _CHUNK_POW:
        return b"%d" % n
    high, low = divmod(n, _CHUNK_POW)
    return _int_to_dec(high) + b"%0*d" % (_CHUNK, low)


# ----------------------------------------------------------------------------- integers


def string2ll(s: bytes) -> int | None:
    """Redis ``string2ll()``: canonical decimal int64 only (no ``+``, spaces or leading 0)."""
    if not s or len(s) >= 21:
        return None
    try:
        v = int(s)
    except ValueError:
        return None
    if b"%d" % v != s or v > LLONG_MAX or v < LLONG_MIN:
        return None
    return v


def parse_strtoul_cursor(s: bytes) -> int | None:
    """SCAN cursor parsing: ``strtoul(s, &end, 10)`` must consume everything.

    An empty string is cursor 0 (strtoul converts nothing and stops at the NUL), a
    leading space is refused, ``-1`` wraps around like C.
    """
    if s and s[0] in _C_SPACE:
        return None
    if not s:
        return 0
    m = re.fullmatch(rb"([+-]?)([0-9]+)", s)
    if m is None:
        return None
    v = int(m.group(2))
    if v > ULONG_MAX:
        return None
    return (-v) & ULONG_MAX if m.group(1) == b"-" else v


# ----------------------------------------------------------------------------- doubles


def string2d(s: bytes) -> float | None:
    """Redis ``string2d()`` (``strtod`` that must consume all, no range error, not NaN)."""
    if not s or s[0] in _C_SPACE:
        return None
    p = _scan(s)
    if p.consumed != len(s):
        return None
    if p.special is not None:
        return None if math.isnan(p.special) else p.special
    assert p.exact is not None
    value = _to_double(p.exact)
    if math.isinf(value) or (value == 0.0 and p.exact != 0):
        return None  # ERANGE: overflow or underflow to zero
    return value


def strtod_full(s: bytes) -> float | None:
    """``strtod()`` whose end pointer must reach the end; range errors ignored.

    This is how sorted-set score ranges are parsed (``zslParseRange``): leading spaces and
    the empty string (value 0) are accepted, ``1e999`` is infinity, NaN is refused. The C
    string ends at the first NUL byte.

    >>> strtod_full(b""), strtod_full(b" 1.5"), strtod_full(b"1e999"), strtod_full(b"1x")
    (0.0, 1.5, inf, None)
    """
    s = s.split(b"\0", 1)[0]
    if not s:
        return 0.0
    p = _scan(s)
    if p.consumed != len(s):
        return None
    if p.special is not None:
        return None if math.isnan(p.special) else p.special
    assert p.exact is not None
    return _to_double(p.exact)


def _to_double(q: Fraction) -> float:
    try:
        return float(q)  # correctly rounded (round-half-even)
    except OverflowError:
        return math.inf if q > 0 else -math.inf


def fmt_double(d: float) -> bytes:
    """``addReplyDouble()`` in RESP2: ``%.17g``, with ``inf``/``-inf`` spelled out."""
    if d == math.inf:
        return b"inf"
    if d == -math.inf:
        return b"-inf"
    return b"%.17g" % d


def d2string(d: float) -> bytes:
    """Redis ``d2string()``: how listpack sorted sets store a score as text."""
    if math.isinf(d):
        return b"inf" if d > 0 else b"-inf"
    if d == 0.0:
        return b"-0" if math.copysign(1.0, d) < 0 else b"0"
    if -(LLONG_MAX // 2) <= d <= LLONG_MAX // 2 and d == int(d):
        return b"%d" % int(d)
    return b"%.17g" % d


# ----------------------------------------------------------------------------- long double

# x87 extended precision: 64-bit significand, normal exponents down to -16382, smallest
# subnormal 2**-16445, overflow at 2**16384.
_LD_MANT = 64
_LD_EMIN = -16382
_LD_MAX_EXP = 16384

#: Exact value of an x86-64 ``long double`` (finite values only; overflow returns ``None``).
LongDouble = Fraction


def ld_round(q: Fraction) -> Fraction | None:
    """Round an exact value to the nearest long double (ties to even); None on overflow."""
    if q == 0:
        return Fraction(0)
    neg = q < 0
    n, d = abs(q.numerator), q.denominator
    e = n.bit_length() - d.bit_length()
    if (n << max(0, -e)) < (d << max(0, e)):
        e -= 1  # now 2**e <= |q| < 2**(e+1)
    if e >= _LD_MAX_EXP:
        return None
    lsb = max(e, _LD_EMIN) - (_LD_MANT - 1)  # weight of the last significand bit
    if lsb >= 0:
        m, r = divmod(n, d << lsb)
        half = d << lsb
    else:
        m, r = divmod(n << -lsb, d)
        half = d
    if 2 * r > half or (2 * r == half and m & 1):
        m += 1
    value = Fraction(m << lsb) if lsb >= 0 else Fraction(m, 1 << -lsb)
    if value >= Fraction(1 << _LD_MAX_EXP):
        return None
    return -value if neg else value


LdKind = Literal["finite", "inf", "error"]


def ld_parse(s: bytes) -> tuple[LdKind, LongDouble | None]:
    """Redis ``string2ld()``: ``("finite", v)``; ``("inf", None)`` for a literal infinity,
    which ``strtold()`` accepts (callers then fail with "NaN or Infinity" errors); and
    ``("error", None)`` for anything else, including overflow and underflow to zero.

    >>> ld_parse(b"1e4933"), ld_parse(b"-inf"), ld_parse(b" 1"), ld_parse(b"0x10")
    (('error', None), ('inf', None), ('error', None), ('finite', Fraction(16, 1)))
    """
    if not s or len(s) >= MAX_LONG_DOUBLE_CHARS or s[0] in _C_SPACE:
        return "error", None
    p = _scan(s)
    if p.consumed != len(s):
        return "error", None
    if p.special is not None:
        return ("error", None) if math.isnan(p.special) else ("inf", None)
    assert p.exact is not None
    value = ld_round(p.exact)
    if value is None or (value == 0 and p.exact != 0):
        return "error", None  # ERANGE
    return "finite", value


def ld_add(a: LongDouble | None, b: LongDouble | None) -> LongDouble | None:
    """Long-double ``a + b``; None when an operand is None or the sum overflows."""
    if a is None or b is None:
        return None
    return ld_round(a + b)


def ld_format_human(v: LongDouble) -> bytes:
    """``ld2string(..., LD_STR_HUMAN)``: ``%.17Lf`` with trailing zeros (and dot) removed."""
    scaled = round(abs(v) * 10**17)  # Fraction.__round__: exact, ties to even like printf
    ipart, fpart = divmod(scaled, 10**17)
    text = (_int_to_dec(ipart) + b".%017d" % fpart).rstrip(b"0").rstrip(b".")
    if v < 0 and text != b"0":
        text = b"-" + text
    return text


def parse_timeout_ms(s: bytes) -> int | None:
    """Blocking timeout in seconds (decimal) to milliseconds: ``(long long)ceill(t*1000.0)``.

    Returns None when the text is not a float (infinity counts as a float: it converts to
    ``LLONG_MIN`` in C and is then reported as negative, as is any out-of-range value).
    """
    kind, value = ld_parse(s)
    if kind == "error":
        return None
    if kind == "inf" or value is None:
        return LLONG_MIN
    product = ld_round(value * 1000)
    if product is None:
        return LLONG_MIN
    ms = math.ceil(product)
    return ms if LLONG_MIN <= ms <= LLONG_MAX else LLONG_MIN
