"""RESP2: encoding commands and replies, and an incremental parser.

Reply values used throughout the engine:

============================  =====================
Python value                  RESP2
============================  =====================
``bytes``                     bulk string ``$n``
``int`` (not ``bool``)        integer ``:n``
``None``                      nil bulk ``$-1``
``NIL_ARRAY``                 nil array ``*-1``
``list``                      array ``*n``
``SimpleString("OK")``        ``+OK``
``ErrorReply("ERR x")``       ``-ERR x``
============================  =====================

>>> encode_command([b"SET", b"foo", b"bar"])
b'*3\\r\\n$3\\r\\nSET\\r\\n$3\\r\\nfoo\\r\\n$3\\r\\nbar\\r\\n'
>>> len(encode_command([b"SELECT", b"0"]))
23
>>> encode_reply([SimpleString("OK"), 3, None, b"x"])
b'*4\\r\\n+OK\\r\\n:3\\r\\n$-1\\r\\n$1\\r\\nx\\r\\n'
"""

from __future__ import annotations

from collections.abc import Sequence


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

Reply = bytes | int | None | list["Reply"] | SimpleString | ErrorReply | _NilArray


_BULK_HDR = [b"$%d\r\n" % i for i in range(1024)]
_ARRAY_HDR = [b"*%d\r\n" % i for i in range(64)]
_CRLF = b"\r\n"


def encode_command(argv: Sequence[bytes]) -> bytes:
    """The exact bytes Redis writes to the replication stream for ``argv``.

    Length headers come from precomputed tables: this runs once per propagated command.
    """
    n = len(argv)
    parts = [_ARRAY_HDR[n] if n < 64 else b"*%d\r\n" % n]
    hdr = _BULK_HDR
    for arg in argv:
        size = len(arg)
        parts += (hdr[size] if size < 1024 else b"$%d\r\n" % size, arg, _CRLF)
    return b"".join(parts)


def encode_reply(value: Reply) -> bytes:
    out: list[bytes] = []
    _encode_into(value, out)
    return b"".join(out)


def _encode_into(value: Reply, out: list[bytes]) -> None:
    if isinstance(value, bytes):
        out.append(b"$%d\r\n%s\r\n" % (len(value), value))
    elif isinstance(value, ErrorReply):
        out.append(b"-" + value.encode() + b"\r\n")
    elif isinstance(value, SimpleString):
        out.append(b"+" + value.encode() + b"\r\n")
    elif isinstance(value, bool):  # pragma: no cover - defensive
        out.append(b":%d\r\n" % int(value))
    elif isinstance(value, int):
        out.append(b":%d\r\n" % value)
    elif value is None:
        out.append(b"$-1\r\n")
    elif value is NIL_ARRAY:
        out.append(b"*-1\r\n")
    elif isinstance(value, list):
        out.append(b"*%d\r\n" % len(value))
        for item in value:
            _encode_into(item, out)
    elif isinstance(value, str):
        data = value.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    else:  # pragma: no cover - programming error
        raise TypeError(f"cannot encode reply {value!r}")


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
    """Incremental parser for replies (used by the engine's own replica links and tests).

    >>> p = ReplyParser()
    >>> p.feed(b"+FULLRESYNC abc 0\\r\\n:5\\r\\n*2\\r\\n$1\\r\\na\\r\\n$-1\\r\\n")
    >>> p.replies()
    ['FULLRESYNC abc 0', 5, [b'a', None]]
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
        if kind == 0x2B:
            self._pos = nxt
            return True, SimpleString(body.decode())
        if kind == 0x2D:
            self._pos = nxt
            return True, ErrorReply(body.decode())
        if kind == 0x3A:
            self._pos = nxt
            return True, int(body)
        if kind == 0x24:
            n = int(body)
            if n < 0:
                self._pos = nxt
                return True, None
            if nxt + n + 2 > len(buf):
                return False, None
            self._pos = nxt + n + 2
            return True, bytes(buf[nxt : nxt + n])
        if kind == 0x2A:
            n = int(body)
            if n < 0:
                self._pos = nxt
                return True, NIL_ARRAY
            self._pos = nxt
            items: list[Reply] = []
            for _ in range(n):
                ok, item = self._parse(self._pos)
                if not ok:
                    return False, None
                items.append(item)
            return True, items
        raise ProtocolError(f"unexpected reply type byte {chr(kind)!r}")
