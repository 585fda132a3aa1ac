"""What an RDB file says about itself, read while it streams past.

An RDB file starts with ``REDIS`` and four ASCII digits, the format version (Valkey 9 and
later write ``VALKEY`` and three digits), and ends with an 8-byte CRC64 of everything
before it, little endian; a trailer of 0 means the file was written with
``rdbchecksum no`` and there is nothing to check (``src/rdb.c`` says so in its log).
:class:`RdbDigest` computes the file's SHA-256 and that CRC64 in one pass over the bytes
as they are copied, so checking a backup never reads it twice.

The CRC is Redis's CRC-64/Jones (reflected, polynomial 0xad93d23594c935a9), computed with
``anycrc`` (C, several GB/s): the pure-Python loop in :mod:`redisops.engine.rdb` is right but
runs at about 10 MB/s, too slow for gigabyte files.

>>> import io
>>> from redisops.engine.rdb import crc64
>>> body = b"REDIS0010" + b"\\xff"
>>> d = RdbDigest()
>>> for piece in (body[:3], body[3:], crc64(body).to_bytes(8, "little")):
...     d.update(piece)
>>> facts = d.facts()
>>> facts.format_version, facts.crc_status, facts.size
(10, 'ok', 18)
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redisops.errors import ExitCode, RedisopsError
from redisops.versions import can_load_rdb, rdb_format_of

if TYPE_CHECKING:  # pragma: no cover
    from redisops.host import Host

TRAILER = 8
PREFIX_BYTES = 4096  # enough for the aux fields Redis writes after the header
_HEADER = re.compile(rb"^(?:REDIS(\d{4})|VALKEY(\d{3}))")
HEADER_BYTES = 9


class RdbError(RedisopsError):
    """An RDB file (or a backup of one) is not what it should be."""

    exit_code = ExitCode.VERIFY_FAILED


def rdb_format_version(head: bytes) -> int:
    """The format version in an RDB file's first bytes.

    >>> rdb_format_version(b"REDIS0009..."), rdb_format_version(b"REDIS0011"), rdb_format_version(b"VALKEY080")
    (9, 11, 80)
    >>> rdb_format_version(b"GARBAGE!!")
    Traceback (most recent call last):
    ...
    redisops.backup.rdbfile.RdbError: not an RDB file (it starts with b'GARBAGE!!', not REDIS and a version)
    """
    m = _HEADER.match(head)
    if m is None:
        raise RdbError(
            f"not an RDB file (it starts with {head[:HEADER_BYTES]!r}, not REDIS and a version)"
        )
    return int(m.group(1) or m.group(2))


def _crc_model() -> Any:
    import anycrc

    return anycrc.Model("CRC64-REDIS")


@dataclass(frozen=True)
class RdbFacts:
    """Size, SHA-256, format version and CRC64 of one RDB file."""

    size: int
    sha256: str
    head: bytes
    crc_stored: int | None  # None: the file is shorter than a trailer
    crc_computed: int

    @property
    def format_version(self) -> int | None:
        try:
            return rdb_format_version(self.head)
        except RdbError:
            return None

    @property
    def crc_status(self) -> str:
        """``ok``, ``absent`` (written with ``rdbchecksum no``) or ``mismatch``."""
        if self.crc_stored is None:
            return "mismatch"
        if self.crc_stored == 0:
            return "absent"
        return "ok" if self.crc_stored == self.crc_computed else "mismatch"

    def problems(self) -> list[str]:
        """What is wrong with the file as an RDB (empty when nothing is)."""
        out: list[str] = []
        try:
            rdb_format_version(self.head)
        except RdbError as exc:
            out.append(exc.message)
        if self.crc_stored is None:
            out.append(f"the file is {self.size} bytes, too short to be an RDB")
        elif self.crc_status == "mismatch":
            out.append(
                f"CRC64 mismatch: the trailer says {self.crc_stored:016x}, the content "
                f"gives {self.crc_computed:016x} (the file is damaged or truncated)"
            )
        return out

    @property
    def aux(self) -> dict[str, str]:
        """The aux fields at the start of the file (``redis-ver``, ``ctime``, ``repl-id``...)."""
        return parse_aux(self.head)

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "sha256": self.sha256,
            "rdb_version": self.format_version,
            "crc64": None if self.crc_stored is None else f"{self.crc_stored:016x}",
            "crc_status": self.crc_status,
        }


class RdbDigest:
    """SHA-256 of every byte and CRC64 of all but the last 8, fed block by block.

    The last 8 bytes seen so far are held back from the CRC, since they may be the
    trailer; when the next block arrives they were not, and go in first.
    """

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self._crc_model = _crc_model()
        self._crc = 0
        self._tail = b""
        self._head = b""
        self.size = 0

    def update(self, block: bytes | bytearray | memoryview) -> None:
        view = memoryview(block)
        n = len(view)
        if not n:
            return
        self._sha.update(view)
        self.size += n
        if len(self._head) < PREFIX_BYTES:
            self._head += bytes(view[: PREFIX_BYTES - len(self._head)])
        if n >= TRAILER:
            if self._tail:
                self._crc = self._crc_model.calc(self._tail, self._crc)
            self._crc = self._crc_model.calc(view[:-TRAILER], self._crc)
            self._tail = bytes(view[-TRAILER:])
        else:
            joined = self._tail + bytes(view)
            cut = len(joined) - TRAILER
            if cut > 0:
                self._crc = self._crc_model.calc(joined[:cut], self._crc)
                joined = joined[cut:]
            self._tail = joined

    def facts(self) -> RdbFacts:
        stored = int.from_bytes(self._tail, "little") if len(self._tail) == TRAILER else None
        return RdbFacts(self.size, self._sha.hexdigest(), self._head, stored, self._crc)


_OP_AUX = 0xFA


def _length(data: bytes, i: int) -> tuple[int | None, int, bool]:
    """``(value, next index, is an integer encoding)`` of an RDB length at ``data[i]``."""
    first = data[i]
    kind = first >> 6
    if kind == 0:
        return first & 0x3F, i + 1, False
    if kind == 1:
        return ((first & 0x3F) << 8) | data[i + 1], i + 2, False
    if first == 0x80:
        return int.from_bytes(data[i + 1 : i + 5], "big"), i + 5, False
    if first == 0x81:
        return int.from_bytes(data[i + 1 : i + 9], "big"), i + 9, False
    if kind == 3 and (first & 0x3F) <= 2:
        return first & 0x3F, i + 1, True
    return None, i, False  # LZF-compressed string: not expected in aux fields


def _string(data: bytes, i: int) -> tuple[str, int]:
    value, j, is_int = _length(data, i)
    if value is None:
        raise IndexError("unsupported string encoding")
    if is_int:
        width = (1, 2, 4)[value]
        if j + width > len(data):
            raise IndexError("truncated")
        return str(int.from_bytes(data[j : j + width], "little", signed=True)), j + width
    if j + value > len(data):
        raise IndexError("truncated")
    return data[j : j + value].decode("utf-8", "replace"), j + value


def writer_version(aux: dict[str, str]) -> str:
    """The server that wrote the RDB, from its aux fields: Redis's ``redis-ver`` as is,
    Valkey's ``valkey-ver`` as ``valkey X`` (Valkey writes no ``redis-ver``, and its
    ``INFO redis_version`` is a compatibility number, 7.2.4, that names no real writer).

    >>> writer_version({"redis-ver": "7.0.15"}), writer_version({"valkey-ver": "8.1.8"})
    ('7.0.15', 'valkey 8.1.8')
    """
    if aux.get("valkey-ver"):
        return f"valkey {aux['valkey-ver']}"
    return aux.get("redis-ver", "")


def server_label(version: str) -> str:
    """A catalogue's ``redis_version`` as a server name: ``redis 7.0.15``, ``valkey 8.1.8``.

    >>> server_label("7.0.15"), server_label("valkey 8.1.8"), server_label("")
    ('redis 7.0.15', 'valkey 8.1.8', '')
    """
    if not version or " " in version:
        return version
    return f"redis {version}"


def parse_aux(head: bytes) -> dict[str, str]:
    """The aux fields (opcode 0xFA, two strings each) after the 9-byte header.

    >>> parse_aux(b"REDIS0010\\xfa\\x09redis-ver\\x067.0.15\\xfa" + bytes([10]) + b"redis-bits\\xc0\\x40")
    {'redis-ver': '7.0.15', 'redis-bits': '64'}
    """
    out: dict[str, str] = {}
    i = HEADER_BYTES
    try:
        while i < len(head) and head[i] == _OP_AUX:
            key, i = _string(head, i + 1)
            value, i = _string(head, i)
            out[key] = value
    except IndexError:
        pass
    return out


def digest_stream(src: Any, chunk: int = 1 << 20) -> RdbFacts:
    """Read ``src`` (a binary file object) to the end through an :class:`RdbDigest`."""
    d = RdbDigest()
    while True:
        block = src.read(chunk)
        if not block:
            return d.facts()
        d.update(block)


def digest_file(path: str) -> RdbFacts:
    with open(path, "rb") as fh:
        return digest_stream(fh)


# ----------------------------------------------------------------------------- redis-check-rdb


@dataclass(frozen=True)
class CheckRdb:
    """What ``redis-check-rdb`` said about a file."""

    status: str  # ok | failed | skipped
    detail: str
    tool: str = ""  # e.g. "redis-check-rdb 7.0.15"
    keys: int | None = None
    expires: int | None = None
    already_expired: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "detail": self.detail,
            "tool": self.tool,
            "keys": self.keys,
            "expires": self.expires,
            "already_expired": self.already_expired,
        }


_INFO_COUNT = re.compile(r"^\[info\] (\d+) (keys read|expires|already expired)\s*$", re.M)
_ERROR_LINE = re.compile(r"^\[offset \d+\] (?!Checking|AUX|Selecting|Checksum|\\o/).*$", re.M)


def check_rdb_tool(host: Host | None = None) -> tuple[str, str] | None:
    """``(path, version)`` of ``redis-check-rdb`` on ``host`` (default: this machine)."""
    if host is None:
        path = shutil.which("redis-check-rdb")
        if path is None:
            return None
        from redisops.host import LocalHost

        host = LocalHost()
    else:
        found = host.run(["sh", "-c", "command -v redis-check-rdb"], timeout=10)
        if not found.ok:
            return None
        path = found.text().strip()
    try:
        # redis-check-rdb is redis-server under another name: -v prints the server version
        out = host.run([path, "-v"], timeout=10)
    except RedisopsError:
        return None
    m = re.search(r"v=(\d+\.\d+\.\d+)", out.text()) or re.search(r"(\d+\.\d+\.\d+)", out.text())
    return (path, m.group(1)) if m else (path, "")


def run_check_rdb(
    path: str, rdb_format: int | None, host: Host | None = None, timeout: float = 3600.0
) -> CheckRdb:
    """Run ``redis-check-rdb`` on ``path`` when installed and able to read the format.

    An older checker rejects a newer format ("Can't handle RDB format version"): it is then
    skipped and the reason is said, rather than reported as damage.
    """
    from redisops.host import LocalHost

    tool = check_rdb_tool(host)
    if tool is None:
        return CheckRdb("skipped", "redis-check-rdb is not installed")
    binary, version = tool
    name = f"redis-check-rdb {version}".strip()
    if rdb_format is not None and version and can_load_rdb(version, rdb_format) is False:
        return CheckRdb(
            "skipped",
            f"{name} reads RDB formats up to {rdb_format_of('redis', version)}, this file is format {rdb_format}",
            name,
        )
    result = (host or LocalHost()).run([binary, path], timeout=timeout)
    text = result.text() + result.stderr.decode("utf-8", "replace")
    counts = {kind: int(n) for n, kind in _INFO_COUNT.findall(text)}
    if result.ok and "RDB looks OK" in text:
        return CheckRdb(
            "ok",
            f"{counts.get('keys read', 0)} keys",
            name,
            counts.get("keys read"),
            counts.get("expires"),
            counts.get("already expired"),
        )
    return CheckRdb("failed", first_error(text) or f"exited {result.exit_status}", name)


def first_error(text: str) -> str:
    """The line of ``redis-check-rdb`` output that says what is wrong.

    >>> first_error("[offset 0] Checking RDB file x\\n--- RDB ERROR DETECTED ---\\n"
    ...             "[offset 41] Unexpected EOF reading RDB file\\n[additional info] ...")
    '[offset 41] Unexpected EOF reading RDB file'
    """
    lines: Sequence[str] = text.splitlines()
    for line in lines:
        if _ERROR_LINE.match(line) or "Wrong RDB checksum" in line:
            return line.strip()
    for line in lines:
        if "error" in line.lower() or "can't" in line.lower():
            return line.strip()
    return ""
