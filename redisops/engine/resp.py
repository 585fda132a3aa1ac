"""RESP2 and RESP3: encoding commands and replies, and incremental parsers.

Reply values used throughout the engine. Handlers return the type Redis 7.0 replies with
in RESP3; a RESP2 client gets each as its RESP2 fallback, exactly the bytes it always got
(the containers and strings subclass their fallback's Python type):

============================  =====================  ==========================
Python value                  RESP2                  RESP3 (after ``HELLO 3``)
============================  =====================  ==========================
``bytes``                     bulk string ``$n``     bulk string ``$n``
``int`` (not ``bool``)        integer ``:n``         integer ``:n``
``None``                      nil bulk ``$-1``       null ``_``
``NIL_ARRAY``                 nil array ``*-1``      null ``_``
``list``                      array ``*n``           array ``*n``
``SimpleString("OK")``        ``+OK``                ``+OK``
``ErrorReply("ERR x")``       ``-ERR x``             ``-ERR x``
``MapReply([k, v, ...])``     flat array ``*2n``     map ``%n``
``SetReply([...])``           array ``*n``           set ``~n``
``PairsReply([a, b, ...])``   flat array ``*2n``     ``*n`` of ``*2`` pairs
``float`` (``1.5``)           bulk ``$3 1.5``        double ``,1.5``
``Verbatim(b"text")``         bulk string            verbatim ``=n txt:...``
``True`` / ``False``          ``:1`` / ``:0``        boolean ``#t`` / ``#f``
``RawReply(b"...")``          written as is          written as is
============================  =====================  ==========================

A ``float`` is a double reply (``addReplyDouble()``), printed ``%.17g`` (``inf``,
``-inf``) in both protocols by 7.0: handlers return the number, the encoder formats it.
``PairsReply`` is how 7.0 answers ``ZRANGE ... WITHSCORES`` and ``ZPOPMIN k count``: a
flat member/score array in RESP2, an array of ``[member, score]`` pairs in RESP3.
Redis 7.0's core commands use neither big numbers nor push messages (no pub/sub or client
tracking here), so neither has a type.

The replication stream is always RESP2 command encoding (:func:`encode_command`).

>>> encode_command([b"SET", b"foo", b"bar"])
b'*3\\r\\n$3\\r\\nSET\\r\\n$3\\r\\nfoo\\r\\n$3\\r\\nbar\\r\\n'
>>> len(encode_command([b"SELECT", b"0"]))
23
>>> encode_reply([SimpleString("OK"), 3, None, b"x"])
b'*4\\r\\n+OK\\r\\n:3\\r\\n$-1\\r\\n$1\\r\\nx\\r\\n'
>>> encode_reply(MapReply([b"f", 2.5]), 2)
b'*2\\r\\n$1\\r\\nf\\r\\n$3\\r\\n2.5\\r\\n'
>>> encode_reply(MapReply([b"f", 2.5]), 3)
b'%1\\r\\n$1\\r\\nf\\r\\n,2.5\\r\\n'
>>> encode_reply([None, NIL_ARRAY], 3)
b'*2\\r\\n_\\r\\n_\\r\\n'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


class SimpleString(str):
    """A ``+status`` reply."""

    __slots__ = ()


class ErrorReply(str):
    """A ``-ERR ...`` reply; the text starts with the error code (``ERR``, ``WRONGTYPE``...)."""

    __slots__ = ()


class _NilArray:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NIL_ARRAY"


NIL_ARRAY = _NilArray()
OK = SimpleString("OK")
QUEUED = SimpleString("QUEUED")
PONG = SimpleString("PONG")

Reply = bytes | int | float | None | list["Reply"] | SimpleString | ErrorReply | _NilArray


class Verbatim(bytes):
    """A verbatim string of format ``txt`` (INFO, CLIENT LIST/INFO); RESP2: a bulk string."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Verbatim({bytes(self)!r})"


class RawReply(bytes):
    """A reply already encoded, written as is in either protocol: what EXEC answers for
    the commands of a transaction that ran before a HELLO in it switched the protocol."""

    __slots__ = ()


class MapReply(list[Reply]):
    """A map, stored flat (``[k1, v1, k2, v2, ...]``); RESP2: that flat array."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"MapReply({list(self)!r})"


class SetReply(list[Reply]):
    """A set (SMEMBERS, SINTER, SPOP with a count...); RESP2: an array."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"SetReply({list(self)!r})"


class PairsReply(list[Reply]):
    """Flat ``[a1, b1, a2, b2, ...]``: RESP2 sends it as is, RESP3 as ``[[a1, b1], ...]``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"PairsReply({list(self)!r})"


_BULK_HDR = [b"$%d\r\n" % i for i in range(1024)]
_ARRAY_HDR = [b"*%d\r\n" % i for i in range(64)]
_CRLF = b"\r\n"
_ARRAY1, _ARRAY2, _ARRAY3, _ARRAY4 = _ARRAY_HDR[1:5]


def encode_command(argv: Sequence[bytes]) -> bytes:
    """The exact bytes Redis writes to the replication stream for ``argv``.

    Length headers come from precomputed tables, and the usual short commands (one to
    four arguments with values under 1 KB) are encoded by one unrolled ``join``: this
    runs once per propagated command.
    """
    n = len(argv)
    hdr = _BULK_HDR
    crlf = _CRLF
    try:
        if n == 3:
            a, b, c = argv
            return b"".join(
                (_ARRAY3, hdr[len(a)], a, crlf, hdr[len(b)], b, crlf, hdr[len(c)], c, crlf)
            )
        if n == 2:
            a, b = argv
            return b"".join((_ARRAY2, hdr[len(a)], a, crlf, hdr[len(b)], b, crlf))
        if n == 4:
            a, b, c, d = argv
            return b"".join(
                (
                    _ARRAY4,
                    hdr[len(a)],
                    a,
                    crlf,
                    hdr[len(b)],
                    b,
                    crlf,
                    hdr[len(c)],
                    c,
                    crlf,
                    hdr[len(d)],
                    d,
                    crlf,
                )
            )
        if n == 1:
            (a,) = argv
            return b"".join((_ARRAY1, hdr[len(a)], a, crlf))
    except IndexError:
        pass  # an argument of 1 KB or more: the general path below
    parts = [_ARRAY_HDR[n] if n < 64 else b"*%d\r\n" % n]
    for arg in argv:
        size = len(arg)
        parts += (hdr[size] if size < 1024 else b"$%d\r\n" % size, arg, crlf)
    return b"".join(parts)


def encode_reply(value: Reply, resp: int = 2) -> bytes:
    """``value`` as Redis writes it to a client speaking protocol ``resp`` (2 or 3)."""
    out: list[bytes] = []
    if resp == 2:
        _encode_into(value, out)
    else:
        _encode3_into(value, out)
    return b"".join(out)


def _encode_into(value: Reply, out: list[bytes]) -> None:
    """RESP2. Exact types first, with an ``is`` test each (elements of arrays that are
    bulk strings or doubles are written without a call); subclasses take the general path,
    where each RESP3 type is handled as the RESP2 fallback it subclasses."""
    t = type(value)
    if t is bytes:
        out.append(b"$%d\r\n%s\r\n" % (len(value), value))  # type: ignore[arg-type,str-format]
    elif t is int:
        out.append(b":%d\r\n" % value)  # type: ignore[str-format]
    elif value is None:
        out.append(b"$-1\r\n")
    elif t is list:
        _encode_array(value, out)  # type: ignore[arg-type]
    elif t is SimpleString:
        out.append(b"+" + value.encode() + b"\r\n")  # type: ignore[union-attr]
    elif t is float:  # a double: a bulk string in RESP2
        text = b"%.17g" % value  # type: ignore[str-format]
        out.append(b"$%d\r\n%s\r\n" % (len(text), text))
    elif t is ErrorReply:
        out.append(b"-" + value.encode() + b"\r\n")  # type: ignore[union-attr]
    elif isinstance(value, list):  # MapReply, SetReply, PairsReply: flat arrays in RESP2
        _encode_array(value, out)
    else:
        _encode_other(value, out)


def _encode_array(items: list[Reply], out: list[bytes]) -> None:
    out.append(b"*%d\r\n" % len(items))
    for item in items:
        ti = type(item)
        if ti is bytes:
            out.append(b"$%d\r\n%s\r\n" % (len(item), item))  # type: ignore[arg-type,str-format]
        elif ti is float:
            text = b"%.17g" % item  # type: ignore[str-format]
            out.append(b"$%d\r\n%s\r\n" % (len(text), text))
        else:
            _encode_into(item, out)


def _encode_other(value: Reply, out: list[bytes]) -> None:
    if type(value) is RawReply:
        out.append(value)
    elif isinstance(value, bytes):
        out.append(b"$%d\r\n%s\r\n" % (len(value), value))
    elif isinstance(value, ErrorReply):
        out.append(b"-" + value.encode() + b"\r\n")
    elif isinstance(value, SimpleString):
        out.append(b"+" + value.encode() + b"\r\n")
    elif isinstance(value, bool):  # a boolean's RESP2 fallback is an integer
        out.append(b":%d\r\n" % int(value))
    elif isinstance(value, int):
        out.append(b":%d\r\n" % value)
    elif isinstance(value, float):
        text = b"%.17g" % value
        out.append(b"$%d\r\n%s\r\n" % (len(text), text))
    elif value is None:
        out.append(b"$-1\r\n")
    elif value is NIL_ARRAY:
        out.append(b"*-1\r\n")
    elif isinstance(value, str):
        data = value.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    else:  # pragma: no cover - programming error
        raise TypeError(f"cannot encode reply {value!r}")


def _encode3_into(value: Reply, out: list[bytes]) -> None:
    """RESP3: dispatch on the exact type (subclasses of bytes/list/str/int differ here)."""
    encoder = _RESP3.get(type(value))
    if encoder is not None:
        encoder(value, out)
    elif value is None or value is NIL_ARRAY:
        out.append(b"_\r\n")
    elif isinstance(value, str):  # other str subclasses: bulk, as in RESP2
        data = value.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    else:  # pragma: no cover - programming error
        raise TypeError(f"cannot encode reply {value!r}")


def _r3_bulk(value: bytes, out: list[bytes]) -> None:
    out.append(b"$%d\r\n%s\r\n" % (len(value), value))


def _r3_int(value: int, out: list[bytes]) -> None:
    out.append(b":%d\r\n" % value)


def _r3_bool(value: bool, out: list[bytes]) -> None:
    out.append(b"#t\r\n" if value else b"#f\r\n")


def _r3_raw(value: RawReply, out: list[bytes]) -> None:
    out.append(value)


def _r3_double(value: float, out: list[bytes]) -> None:
    out.append(b",%.17g\r\n" % value)


def _r3_verbatim(value: Verbatim, out: list[bytes]) -> None:
    out.append(b"=%d\r\ntxt:%s\r\n" % (len(value) + 4, value))


def _r3_status(value: SimpleString, out: list[bytes]) -> None:
    out.append(b"+" + value.encode() + b"\r\n")


def _r3_error(value: ErrorReply, out: list[bytes]) -> None:
    out.append(b"-" + value.encode() + b"\r\n")


def _r3_aggregate(prefix: bytes) -> Callable[[list[Reply], list[bytes]], None]:
    def encode(value: list[Reply], out: list[bytes]) -> None:
        out.append(b"%s%d\r\n" % (prefix, len(value)))
        for item in value:
            if type(item) is bytes:
                out.append(b"$%d\r\n%s\r\n" % (len(item), item))
            else:
                _encode3_into(item, out)

    return encode


def _r3_map(value: MapReply, out: list[bytes]) -> None:
    out.append(b"%%%d\r\n" % (len(value) // 2))
    for item in value:
        if type(item) is bytes:
            out.append(b"$%d\r\n%s\r\n" % (len(item), item))
        else:
            _encode3_into(item, out)


def _r3_pairs(value: PairsReply, out: list[bytes]) -> None:
    out.append(b"*%d\r\n" % (len(value) // 2))
    for i in range(0, len(value) - 1, 2):
        first, second = value[i], value[i + 1]
        if type(first) is bytes and type(second) is float:  # member, score
            out.append(b"*2\r\n$%d\r\n%s\r\n,%.17g\r\n" % (len(first), first, second))
        else:
            out.append(b"*2\r\n")
            _encode3_into(first, out)
            _encode3_into(second, out)


_RESP3: dict[type, Callable[[Reply, list[bytes]], None]] = {
    bytes: _r3_bulk,  # type: ignore[dict-item]
    int: _r3_int,  # type: ignore[dict-item]
    bool: _r3_bool,  # type: ignore[dict-item]
    list: _r3_aggregate(b"*"),  # type: ignore[dict-item]
    float: _r3_double,  # type: ignore[dict-item]
    Verbatim: _r3_verbatim,  # type: ignore[dict-item]
    RawReply: _r3_raw,  # type: ignore[dict-item]
    MapReply: _r3_map,  # type: ignore[dict-item]
    SetReply: _r3_aggregate(b"~"),  # type: ignore[dict-item]
    PairsReply: _r3_pairs,  # type: ignore[dict-item]
    SimpleString: _r3_status,  # type: ignore[dict-item]
    ErrorReply: _r3_error,  # type: ignore[dict-item]
}


def as_resp2(value: Reply) -> Reply:
    """``value`` with every RESP3 type replaced by its RESP2 fallback (plain bytes, lists,
    ints): what a RESP2 reader such as a Lua script sees.

    >>> as_resp2(MapReply([b"k", PairsReply([b"m", 1.0, b"n", float("-inf")])]))
    [b'k', [b'm', b'1', b'n', b'-inf']]
    >>> type(as_resp2(Verbatim(b"x"))), as_resp2(True)
    (<class 'bytes'>, 1)
    """
    if isinstance(value, list):
        return [as_resp2(item) for item in value]
    if isinstance(value, bytes):
        return value if type(value) is bytes else bytes(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return b"%.17g" % value
    return value


class ProtocolError(Exception):
    """The peer sent something that is not RESP; Redis answers and closes the connection."""


class RequestParser:
    """Incremental parser for client requests: multibulk arrays and inline commands.

    >>> p = RequestParser()
    >>> p.feed(b"*1\\r\\n$4\\r\\nPI")
    >>> p.commands()
    []
    >>> p.feed(b"NG\\r\\nECHO hi\\r\\n")
    >>> p.commands()
    [[b'PING'], [b'ECHO', b'hi']]
    """

    def __init__(self, max_bulk: int = 512 * 1024 * 1024) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._max_bulk = max_bulk

    def feed(self, data: bytes) -> None:
        self._buf += data

    def pending_bytes(self) -> int:
        return len(self._buf) - self._pos

    def commands(self) -> list[list[bytes]]:
        """Every complete command parsed so far (raises ProtocolError on garbage)."""
        out: list[list[bytes]] = []
        while True:
            cmd = self._next()
            if cmd is None:
                break
            if cmd:
                out.append(cmd)
        if self._pos > 65536 or self._pos == len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
        return out

    def _next(self) -> list[bytes] | None:
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            return None
        if buf[pos] != 0x2A:  # '*': inline command
            end = buf.find(b"\n", pos)
            if end < 0:
                if len(buf) - pos > 64 * 1024:
                    raise ProtocolError("Protocol error: too big inline request")
                return None
            line = bytes(buf[pos:end]).rstrip(b"\r")
            self._pos = end + 1
            return _split_inline(line)
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return None
        try:
            count = int(buf[pos + 1 : end])
        except ValueError:
            raise ProtocolError("Protocol error: invalid multibulk length") from None
        if count > 1024 * 1024:
            raise ProtocolError("Protocol error: invalid multibulk length")
        p = end + 2
        args: list[bytes] = []
        for _ in range(max(count, 0)):
            if p >= len(buf):
                return None
            if buf[p] != 0x24:  # '$'
                raise ProtocolError(f"Protocol error: expected '$', got '{chr(buf[p])}'")
            e = buf.find(b"\r\n", p)
            if e < 0:
                return None
            try:
                n = int(buf[p + 1 : e])
            except ValueError:
                raise ProtocolError("Protocol error: invalid bulk length") from None
            if n < 0 or n > self._max_bulk:
                raise ProtocolError("Protocol error: invalid bulk length")
            start = e + 2
            if start + n + 2 > len(buf):
                return None
            args.append(bytes(buf[start : start + n]))
            p = start + n + 2
        self._pos = p
        return args


def _split_inline(line: bytes) -> list[bytes]:
    """Split an inline command like redis-cli's: spaces separate, quotes group."""
    out: list[bytes] = []
    cur = bytearray()
    quote: int | None = None
    has = False
    i = 0
    while i < len(line):
        c = line[i]
        if quote is not None:
            if c == 0x5C and quote == 0x22 and i + 1 < len(line):  # backslash in "..."
                i += 1
                cur.append(line[i])
            elif c == quote:
                quote = None
            else:
                cur.append(c)
        elif c in (0x22, 0x27):
            quote = c
            has = True
        elif c in (0x20, 0x09):
            if cur or has:
                out.append(bytes(cur))
                cur = bytearray()
                has = False
        else:
            cur.append(c)
        i += 1
    if cur or has:
        out.append(bytes(cur))
    return out


class ReplyParser:
    """Incremental parser for replies, RESP2 or RESP3 (used by the engine's own replica
    links and by tests). RESP3 values come back as the types :func:`encode_reply` takes:
    ``%`` a :class:`MapReply`, ``~`` a :class:`SetReply`, ``,`` a float, ``=`` a
    :class:`Verbatim` (its ``txt:`` prefix removed), ``#`` a bool, ``_`` None, ``(`` an
    int, ``>`` a list, ``!`` an :class:`ErrorReply`. Pairs come back as nested lists.

    >>> p = ReplyParser()
    >>> p.feed(b"+FULLRESYNC abc 0\\r\\n:5\\r\\n*2\\r\\n$1\\r\\na\\r\\n$-1\\r\\n")
    >>> p.replies()
    ['FULLRESYNC abc 0', 5, [b'a', None]]
    >>> p.feed(b"%1\\r\\n$1\\r\\nk\\r\\n,1.5\\r\\n~1\\r\\n#t\\r\\n_\\r\\n=7\\r\\ntxt:abc\\r\\n")
    >>> p.replies()
    [MapReply([b'k', 1.5]), SetReply([True]), None, Verbatim(b'abc')]
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        self._buf += data

    def replies(self) -> list[Reply]:
        out: list[Reply] = []
        while True:
            start = self._pos
            ok, value = self._parse(start)
            if not ok:
                self._pos = start
                break
            out.append(value)
        del self._buf[: self._pos]
        self._pos = 0
        return out

    def _parse(self, pos: int) -> tuple[bool, Reply]:
        buf = self._buf
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return False, None
        kind = buf[pos]
        body = bytes(buf[pos + 1 : end])
        nxt = end + 2
        if kind == 0x2B:  # +
            self._pos = nxt
            return True, SimpleString(body.decode())
        if kind == 0x2D:  # -
            self._pos = nxt
            return True, ErrorReply(body.decode())
        if kind in (0x3A, 0x28):  # : and ( (big number)
            self._pos = nxt
            return True, int(body)
        if kind in (0x24, 0x3D, 0x21):  # $, = (verbatim), ! (blob error)
            n = int(body)
            if n < 0:
                self._pos = nxt
                return True, None
            if nxt + n + 2 > len(buf):
                return False, None
            self._pos = nxt + n + 2
            data = bytes(buf[nxt : nxt + n])
            if kind == 0x3D:
                return True, Verbatim(data[4:])
            if kind == 0x21:
                return True, ErrorReply(data.decode())
            return True, data
        if kind == 0x2C:  # , (a %.17g double: float() reads it back exactly)
            self._pos = nxt
            return True, float(body)
        if kind == 0x5F:  # _
            self._pos = nxt
            return True, None
        if kind == 0x23:  # #
            self._pos = nxt
            return True, body == b"t"
        if kind in (0x2A, 0x25, 0x7E, 0x3E):  # *, % (map), ~ (set), > (push)
            n = int(body)
            if n < 0:
                self._pos = nxt
                return True, NIL_ARRAY
            if kind == 0x25:
                n *= 2
            self._pos = nxt
            items: list[Reply] = []
            for _ in range(n):
                ok, item = self._parse(self._pos)
                if not ok:
                    return False, None
                items.append(item)
            if kind == 0x25:
                return True, MapReply(items)
            if kind == 0x7E:
                return True, SetReply(items)
            return True, items
        raise ProtocolError(f"unexpected reply type byte {chr(kind)!r}")
