"""Parsing of Redis ``INFO`` text and ``ROLE`` replies (pure functions).

``INFO`` is ``# Section`` headers followed by ``field:value`` lines; a few values are
themselves ``k=v,k=v`` lists (``slave0:ip=...,port=...``, ``db0:keys=1,expires=0``).

>>> fields = parse_info("# Replication\\r\\nrole:master\\r\\nconnected_slaves:1\\r\\n"
...                     "slave0:ip=127.0.0.1,port=7001,state=online,offset=54,lag=0\\r\\n")
>>> fields["role"], fields["connected_slaves"]
('master', '1')
>>> replica_entries(fields)[0].port
7001
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_SLAVE_FIELD = re.compile(r"^slave(\d+)$")
_DB_FIELD = re.compile(r"^db(\d+)$")


def parse_info(text: str) -> dict[str, str]:
    """Flatten INFO text into ``{field: value}``; section headers and blanks are skipped.

    >>> parse_info("# Server\\nredis_version:7.0.15\\n\\n# Clients\\nconnected_clients:2")
    {'redis_version': '7.0.15', 'connected_clients': '2'}
    """
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if sep:
            out[key] = value
    return out


def parse_kv_list(value: str) -> dict[str, str]:
    """Parse ``ip=127.0.0.1,port=7001`` into a dict.

    >>> parse_kv_list("keys=3,expires=1,avg_ttl=0")
    {'keys': '3', 'expires': '1', 'avg_ttl': '0'}
    """
    out: dict[str, str] = {}
    for part in value.split(","):
        k, sep, v = part.partition("=")
        if sep:
            out[k] = v
    return out


def as_int(value: str | None, default: int | None = None) -> int | None:
    """Parse an INFO integer, tolerating absence and junk.

    >>> as_int("42"), as_int(None), as_int("x", -1)
    (42, None, -1)
    """
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        try:
            return int(float(value))
        except ValueError:
            return default


@dataclass(frozen=True, slots=True)
class ReplicaEntry:
    """One ``slaveN`` line of a master's INFO replication: the master's view of a replica."""

    index: int
    ip: str
    port: int
    state: str
    offset: int
    lag: int

    def to_dict(self) -> dict[str, object]:
        return {
            "ip": self.ip,
            "port": self.port,
            "state": self.state,
            "offset": self.offset,
            "lag": self.lag,
        }


def replica_entries(fields: Mapping[str, str]) -> list[ReplicaEntry]:
    """The ``slaveN`` lines, in N order.

    IPv6 replicas are listed bare (``ip=::1``), which is why the value is split on ``,``
    and ``=`` only.
    """
    entries: list[ReplicaEntry] = []
    for key, value in fields.items():
        m = _SLAVE_FIELD.match(key)
        if not m:
            continue
        kv = parse_kv_list(value)
        entries.append(
            ReplicaEntry(
                index=int(m.group(1)),
                ip=kv.get("ip", ""),
                port=as_int(kv.get("port"), 0) or 0,
                state=kv.get("state", ""),
                offset=as_int(kv.get("offset"), 0) or 0,
                lag=as_int(kv.get("lag"), 0) or 0,
            )
        )
    entries.sort(key=lambda e: e.index)
    return entries


def keyspace(fields: Mapping[str, str]) -> dict[int, dict[str, int]]:
    """``{db: {"keys": n, "expires": n}}`` from the Keyspace section.

    >>> keyspace({"db0": "keys=2,expires=1,avg_ttl=0", "db3": "keys=1,expires=0,avg_ttl=0"})
    {0: {'keys': 2, 'expires': 1}, 3: {'keys': 1, 'expires': 0}}
    """
    out: dict[int, dict[str, int]] = {}
    for key, value in fields.items():
        m = _DB_FIELD.match(key)
        if not m:
            continue
        kv = parse_kv_list(value)
        out[int(m.group(1))] = {
            "keys": as_int(kv.get("keys"), 0) or 0,
            "expires": as_int(kv.get("expires"), 0) or 0,
        }
    return out


@dataclass(frozen=True, slots=True)
class RoleReply:
    """A parsed ``ROLE`` reply.

    Master: ``role="master"``, ``offset``, ``replicas`` = ``[(ip, port, ack_offset)]`` (only
    ONLINE replicas). Replica: ``role="slave"``, ``master_host``, ``master_port``, ``state``
    (``none|connect|connecting|handshake|sync|connected``), ``offset`` (``-1`` without a
    master client). Sentinel: ``role="sentinel"``.
    """

    role: str
    offset: int = -1
    replicas: tuple[tuple[str, int, int], ...] = ()
    master_host: str | None = None
    master_port: int | None = None
    state: str | None = None


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def parse_role(reply: Sequence[object]) -> RoleReply:
    """Parse a ROLE reply as redis-py returns it (bytes or str elements).

    >>> parse_role([b"slave", b"127.0.0.1", 7000, b"connected", 54]).state
    'connected'
    >>> parse_role([b"master", 54, [[b"127.0.0.1", b"7001", b"54"]]]).replicas
    (('127.0.0.1', 7001, 54),)
    """
    if not reply:
        raise ValueError("empty ROLE reply")
    role = _text(reply[0])
    if role == "master":
        reps: list[tuple[str, int, int]] = []
        raw = reply[2] if len(reply) > 2 else []
        if isinstance(raw, (list, tuple)):
            for item in raw:
                if isinstance(item, (list, tuple)) and len(item) >= 3:
                    reps.append((_text(item[0]), int(_text(item[1])), int(_text(item[2]))))
        return RoleReply(role="master", offset=int(_text(reply[1])), replicas=tuple(reps))
    if role == "slave":
        return RoleReply(
            role="slave",
            master_host=_text(reply[1]),
            master_port=int(_text(reply[2])),
            state=_text(reply[3]),
            offset=int(_text(reply[4])),
        )
    return RoleReply(role=role)
