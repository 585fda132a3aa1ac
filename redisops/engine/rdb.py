"""RDB images: what BGSAVE produces, a full sync transfers and a restart loads.

An image holds a copy of the keyspace (not bytes: the engine never needs to parse its own
RDB), its estimated size in RDB bytes, and the replication info Redis stores as aux fields
(``repl-id``, ``repl-offset``, ``repl-stream-db``), written only when
``rdbPopulateSaveInfo()`` yields it (§4.4 of the spec).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from redisops.engine.keyspace import Keyspace

RDB_HEADER_BYTES = 9 + 120  # "REDIS0010" + aux fields (version, bits, ctime, used-mem...)


@dataclass(frozen=True)
class ReplInfo:
    """The replication aux fields of an RDB."""

    replid: str
    offset: int
    stream_db: int


@dataclass
class RdbImage:
    keyspace: Keyspace
    size: int
    keys: int
    saved_at_ms: int
    repl: ReplInfo | None = None


def image_of(keyspace: Keyspace, now_ms: int, repl: ReplInfo | None) -> RdbImage:
    """Snapshot ``keyspace`` (copy-on-write at fork time, in Redis terms)."""
    snap = keyspace.copy()
    keys = sum(snap.dbsize(db) for db in range(snap.databases))
    size = RDB_HEADER_BYTES + snap.rdb_size_estimate() + 9  # + EOF opcode and CRC64
    return RdbImage(snap, size, keys, now_ms, repl)


# ----------------------------------------------------------------------------- RDB bytes
#
# Only needed when something outside the engine asks for an RDB over TCP (a real
# redis-server replicating from a lab node, ``redis-cli --rdb``). Encodings are the plain
# ones every Redis 7.0 loads: RDB_TYPE_STRING/LIST/SET/ZSET_2/HASH, raw strings.

_RDB_TYPE = {"string": 0, "list": 1, "set": 2, "zset": 5, "hash": 4}
_OP_AUX, _OP_RESIZEDB, _OP_EXPIRETIME_MS, _OP_SELECTDB, _OP_EOF = 0xFA, 0xFB, 0xFC, 0xFE, 0xFF


def _crc64_table() -> list[int]:
    poly = 0x95AC9329AC4BC9B5  # Redis's crc64 (Jones), reflected
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC64 = _crc64_table()


def crc64(data: bytes, crc: int = 0) -> int:
    """Redis's CRC-64/Jones. ``crc64(b"123456789") == 0xe9c6d914c4b8d9ca``.

    >>> hex(crc64(b"123456789"))
    '0xe9c6d914c4b8d9ca'
    """
    table = _CRC64
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def _len(n: int) -> bytes:
    if n < 1 << 6:
        return bytes([n])
    if n < 1 << 14:
        return bytes([0x40 | (n >> 8), n & 0xFF])
    if n <= 0xFFFFFFFF:
        return b"\x80" + n.to_bytes(4, "big")
    return b"\x81" + n.to_bytes(8, "big")


def _str(s: bytes) -> bytes:
    return _len(len(s)) + s


def dump(image: RdbImage) -> bytes:
    """Serialise ``image`` as an RDB version 10 file (what Redis 7.0 writes and loads)."""
    import struct

    from redisops.engine.keyspace import TYPE_NAMES, ZSet

    out = bytearray(b"REDIS0010")
    aux: list[tuple[bytes, bytes]] = [
        (b"redis-ver", b"7.0.15"),
        (b"redis-bits", b"64"),
        (b"ctime", str(image.saved_at_ms // 1000).encode()),
        (b"used-mem", str(image.size).encode()),
    ]
    if image.repl is not None:
        aux += [
            (b"repl-stream-db", str(image.repl.stream_db).encode()),
            (b"repl-id", image.repl.replid.encode()),
            (b"repl-offset", str(image.repl.offset).encode()),
        ]
    aux.append((b"aof-base", b"0"))
    for k, v in aux:
        out += bytes([_OP_AUX]) + _str(k) + _str(v)
    ks = image.keyspace
    for db in range(ks.databases):
        size = ks.dbsize(db)
        if not size:
            continue
        out += bytes([_OP_SELECTDB]) + _len(db)
        out += bytes([_OP_RESIZEDB]) + _len(size) + _len(ks.expires_count(db))
        for key, value, expire in ks.items(db):
            if expire is not None:
                out += bytes([_OP_EXPIRETIME_MS]) + struct.pack("<q", expire)
            kind = TYPE_NAMES[type(value)]
            out += bytes([_RDB_TYPE[kind]]) + _str(key)
            if isinstance(value, bytes):
                out += _str(value)
            elif isinstance(value, ZSet):
                out += _len(len(value))
                for score, member in value.order:
                    out += _str(member) + struct.pack("<d", score)
            elif isinstance(value, dict):
                out += _len(len(value))
                for f, v in value.items():
                    out += _str(f) + _str(v)
            else:  # list (deque) or set
                out += _len(len(value))
                for item in value:
                    out += _str(item)
    out.append(_OP_EOF)
    out += crc64(bytes(out)).to_bytes(8, "little")
    return bytes(out)
