"""The data every layer shares: addresses, node snapshots, topologies, problems.

Everything here is an immutable value built by the adapters (observe) and read by
``ops/``, ``checks/``, the engine (predict) and the renderer. No I/O.

>>> parse_target("10.0.0.2:6380").address
Address(host='10.0.0.2', port=6380)
>>> str(parse_target("[::1]:7000").address)
'[::1]:7000'
>>> parse_target("rediss://ops@cache.example:6390")
NodeSpec(address=Address(host='cache.example', port=6390), username='ops', tls=True)
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

from redisops.errors import BadInput
from redisops.info import (
    ReplicaEntry,
    RoleReply,
    as_int,
    keyspace,
    replica_entries,
)
from redisops.versions import Server, identify, unloadable

DEFAULT_PORT = 6379
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
NULL_REPLID = "0" * 40


@dataclass(frozen=True, slots=True, order=True)
class Address:
    """A Redis endpoint. ``str()`` gives the canonical ``host:port`` (IPv6 bracketed)."""

    host: str
    port: int

    def __str__(self) -> str:
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> Address:
        """Parse ``host[:port]``; see :func:`parse_target` for URLs and errors."""
        return parse_target(text).address


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """What the user named on the command line: an address, maybe a user, maybe TLS."""

    address: Address
    username: str | None = None
    tls: bool = False


def _check_port(text: str, original: str) -> int:
    if not text.isdigit():
        raise BadInput(
            f"invalid port {text!r} in {original!r}",
            hint="a port is a number from 1 to 65535, e.g. 10.0.0.1:6379",
        )
    port = int(text)
    if not 1 <= port <= 65535:
        raise BadInput(
            f"port {port} in {original!r} is out of range",
            hint="a port is a number from 1 to 65535",
        )
    return port


def _check_host(host: str, original: str) -> str:
    if not host:
        raise BadInput(
            f"missing host in {original!r}", hint="write it as HOST:PORT, e.g. 10.0.0.1:6379"
        )
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if not _HOSTNAME.match(host) or ".." in host:
            raise BadInput(
                f"invalid host {host!r} in {original!r}",
                hint="use a hostname, an IPv4 address or a bracketed IPv6 address like [::1]:6379",
            ) from None
        return host
    return str(ip) if ip.version == 6 else host


def _split_hostport(text: str, original: str) -> Address:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise BadInput(f"unclosed '[' in {original!r}", hint="write IPv6 as [::1]:6379")
        host = text[1:end]
        rest = text[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise BadInput(f"invalid IPv6 address {host!r} in {original!r}") from None
        if not rest:
            return Address(str(ipaddress.IPv6Address(host)), DEFAULT_PORT)
        if not rest.startswith(":"):
            raise BadInput(
                f"unexpected {rest!r} after ']' in {original!r}", hint="write IPv6 as [::1]:6379"
            )
        return Address(str(ipaddress.IPv6Address(host)), _check_port(rest[1:], original))
    if text.count(":") > 1:
        raise BadInput(
            f"ambiguous address {original!r}",
            hint="put IPv6 addresses in brackets, e.g. [::1]:6379",
        )
    host, sep, port = text.partition(":")
    if sep and not port:
        raise BadInput(f"missing port after ':' in {original!r}", hint="write it as HOST:PORT")
    return Address(
        _check_host(host, original), _check_port(port, original) if sep else DEFAULT_PORT
    )


def parse_target(text: str) -> NodeSpec:
    """Parse a node as the user writes it.

    Accepted: ``host:port``, ``host`` (port 6379), ``[v6]:port``, ``redis://[user@]host[:port]``,
    ``rediss://...`` (TLS). A password in the URL is refused: secrets never go on the
    command line (use ``REDISCLI_AUTH`` or ``--password-file``).

    >>> parse_target("cache-1").address.port
    6379
    >>> parse_target("redis://h:1/0").address
    Address(host='h', port=1)
    """
    original = text
    text = text.strip()
    if not text:
        raise BadInput("empty address", hint="write it as HOST:PORT, e.g. 10.0.0.1:6379")
    if any(c.isspace() for c in text):
        raise BadInput(f"address {original!r} contains white space", hint="write it as HOST:PORT")
    username: str | None = None
    tls = False
    if "://" in text:
        scheme, _, rest = text.partition("://")
        scheme = scheme.lower()
        if scheme not in ("redis", "rediss"):
            raise BadInput(
                f"unsupported scheme {scheme!r} in {original!r}",
                hint="use redis:// or rediss:// (TLS), or plain HOST:PORT",
            )
        tls = scheme == "rediss"
        rest, _, path = rest.partition("/")
        if path not in ("", "0"):
            raise BadInput(
                f"database path '/{path}' in {original!r} is not supported",
                hint="replication is per server; drop the /DB suffix",
            )
        if "?" in rest or "#" in rest:
            raise BadInput(f"query strings are not supported in {original!r}")
        if "@" in rest:
            userinfo, _, rest = rest.rpartition("@")
            if ":" in userinfo:
                raise BadInput(
                    "a password in the address is not accepted (it would show in the process list and shell history)",
                    hint="set REDISCLI_AUTH or use --password-file, and keep only the user in the URL",
                )
            if not userinfo:
                raise BadInput(f"empty user name before '@' in {original!r}")
            username = userinfo
        if not rest:
            raise BadInput(f"missing host in {original!r}", hint="e.g. redis://10.0.0.1:6379")
    elif "@" in text or "/" in text:
        raise BadInput(
            f"invalid address {original!r}",
            hint="write it as HOST:PORT, or as a redis://[user@]host:port URL",
        )
    return NodeSpec(_split_hostport(rest if "://" in text else text, original), username, tls)


# --------------------------------------------------------------------------- snapshots


@dataclass(frozen=True)
class NodeInfo:
    """One node as read at one moment: INFO fields, ROLE, selected CONFIG values.

    ``reachable=False`` nodes carry only ``address``, ``error``, ``error_kind`` (why it could
    not be read: ``down``: nothing listens; ``auth``: credentials refused; ``not_redis``:
    something else answers on the port; ``no_reply``: connected, but no answer within the
    deadline; ``unknown``) and ``service`` (``not-redis`` when something else answers
    there). ``unavailable`` names the commands redisops needs that the node does not know
    (renamed or disabled with ``rename-command``).
    """

    address: Address
    reachable: bool
    error: str | None = None
    info: Mapping[str, str] = field(default_factory=dict)
    config: Mapping[str, str] = field(default_factory=dict)
    role_reply: RoleReply | None = None
    read_at: float = 0.0  # unix time of the read
    rtt_ms: float | None = None
    error_kind: str | None = None
    service: str = "redis"  # redis | not-redis
    unavailable: frozenset[str] = frozenset()

    # -- identity ---------------------------------------------------------------
    @property
    def run_id(self) -> str | None:
        return self.info.get("run_id")

    @property
    def server(self) -> Server | None:
        """Which server this is (Redis or Valkey, its version), from INFO server."""
        return identify(self.info)

    @property
    def version(self) -> str | None:
        """The server's own version (``valkey_version`` on Valkey, not its ``7.2.4``)."""
        server = self.server
        return server.version if server is not None else None

    def cannot_load_from(self, master: NodeInfo) -> str | None:
        """Why this node could not load ``master``'s RDB, so a full sync from it would fail
        and be retried in a loop; None when it can (or a version is unknown)."""
        mine, theirs = self.server, master.server
        if mine is None or theirs is None:
            return None
        relaxed = self.config.get("rdb-version-check") == "relaxed"
        return unloadable(mine, theirs, relaxed=relaxed)

    @property
    def redis_mode(self) -> str:
        """``standalone``, ``sentinel`` or ``cluster`` (INFO server ``redis_mode``)."""
        return self.info.get("redis_mode", "standalone")

    @property
    def role(self) -> str:
        """``master``, ``replica``, ``sentinel`` or ``unknown`` (unreachable)."""
        if self.redis_mode == "sentinel" or (
            self.role_reply is not None and self.role_reply.role == "sentinel"
        ):
            return "sentinel"
        r = self.info.get("role")
        if r == "slave":
            return "replica"
        return r or "unknown"

    @property
    def unfit(self) -> str | None:
        """Why this node cannot be a master or replica redisops manages, or None.

        >>> NodeInfo(Address("h", 1), True, info={"redis_mode": "cluster"}).unfit[:37]
        'runs in cluster mode (cluster_enabled'
        >>> NodeInfo(Address("h", 1), True, info={"redis_mode": "standalone"}).unfit is None
        True
        """
        if self.service == "not-redis":
            return f"is {self.error or 'not a Redis server'}"
        if self.role == "sentinel":
            return (
                "is a Redis Sentinel, not a data node: give the master or replica it monitors "
                "(SENTINEL get-master-addr-by-name), or pass it as --sentinel"
            )
        if self.redis_mode == "cluster" or self.info.get("cluster_enabled") == "1":
            return (
                "runs in cluster mode (cluster_enabled:1): Redis Cluster manages its "
                "replication (CLUSTER FAILOVER, redis-cli --cluster), not REPLICAOF"
            )
        return None

    def can_run(self, command: str) -> bool:
        """Whether the node knows ``command`` under the name the session uses for it."""
        return command.upper() not in self.unavailable

    @property
    def is_master(self) -> bool:
        return self.role == "master"

    @property
    def is_replica(self) -> bool:
        return self.role == "replica"

    # -- replication --------------------------------------------------------------
    @cached_property
    def master_address(self) -> Address | None:
        # cached (the snapshot is immutable): topology walks ask for it O(nodes^2) times
        host = self.info.get("master_host")
        port = as_int(self.info.get("master_port"))
        if not host or port is None:
            return None
        return _info_address(host, port)

    @property
    def link(self) -> str | None:
        return self.info.get("master_link_status") if self.is_replica else None

    @property
    def link_down_seconds(self) -> int | None:
        return as_int(self.info.get("master_link_down_since_seconds"))

    @property
    def last_io_seconds(self) -> int | None:
        return as_int(self.info.get("master_last_io_seconds_ago")) if self.is_replica else None

    @property
    def sync_in_progress(self) -> bool:
        return self.info.get("master_sync_in_progress") == "1"

    @property
    def loading(self) -> bool:
        return self.info.get("loading") == "1"

    @property
    def repl_state(self) -> str | None:
        """The replica link state from ROLE (``connect``, ``handshake``, ``sync``, ...)."""
        if self.role_reply is not None and self.role_reply.role == "slave":
            return self.role_reply.state
        return None

    @property
    def offset(self) -> int:
        return as_int(self.info.get("master_repl_offset"), 0) or 0

    @property
    def replica_offset(self) -> int | None:
        """``slave_repl_offset`` (applied) of a replica."""
        return as_int(self.info.get("slave_repl_offset")) if self.is_replica else None

    @property
    def replid(self) -> str:
        return self.info.get("master_replid", "")

    @property
    def replid2(self) -> str:
        return self.info.get("master_replid2", NULL_REPLID)

    @property
    def second_repl_offset(self) -> int:
        return as_int(self.info.get("second_repl_offset"), -1) or -1

    @property
    def backlog_active(self) -> bool:
        return self.info.get("repl_backlog_active") == "1"

    @property
    def backlog_size(self) -> int:
        return as_int(self.info.get("repl_backlog_size"), 0) or 0

    @property
    def backlog_first_byte(self) -> int:
        return as_int(self.info.get("repl_backlog_first_byte_offset"), 0) or 0

    @property
    def backlog_histlen(self) -> int:
        return as_int(self.info.get("repl_backlog_histlen"), 0) or 0

    @property
    def backlog_range(self) -> tuple[int, int] | None:
        """Inclusive ``(first, last)`` stream offsets the backlog still holds, or None."""
        if not self.backlog_active or self.backlog_histlen <= 0:
            return None
        first = self.backlog_first_byte
        return (first, first + self.backlog_histlen - 1)

    @cached_property
    def replicas(self) -> list[ReplicaEntry]:
        return replica_entries(self.info)

    @property
    def announced_address(self) -> Address | None:
        """Where this replica tells its master it listens (``replica-announce-ip/port``),
        when that differs from the address it was read at."""
        ip = self.config.get("replica-announce-ip") or self.address.host
        port = as_int(self.config.get("replica-announce-port"), 0) or self.address.port
        announced = Address(ip, port)
        return None if announced == self.address else announced

    @property
    def replica_priority(self) -> int | None:
        value = self.config.get("replica-priority", self.info.get("slave_priority"))
        return as_int(value)

    @property
    def read_only(self) -> bool | None:
        """Whether a replica refuses client writes (None for masters: not applicable)."""
        if not self.is_replica:
            return None
        if "slave_read_only" in self.info:
            return self.info["slave_read_only"] == "1"
        value = self.config.get("replica-read-only")
        return None if value is None else value == "yes"

    @property
    def failover_state(self) -> str | None:
        return self.info.get("master_failover_state")

    # -- memory / data --------------------------------------------------------------
    @property
    def used_memory(self) -> int | None:
        return as_int(self.info.get("used_memory"))

    @property
    def maxmemory(self) -> int | None:
        return as_int(self.info.get("maxmemory"))

    @property
    def keys(self) -> int:
        return sum(db["keys"] for db in keyspace(self.info).values())

    def stat(self, name: str) -> int:
        return as_int(self.info.get(name), 0) or 0

    @property
    def sync_progress(self) -> dict[str, int | float] | None:
        if not self.sync_in_progress:
            return None
        return {
            "total_bytes": as_int(self.info.get("master_sync_total_bytes"), 0) or 0,
            "read_bytes": as_int(self.info.get("master_sync_read_bytes"), 0) or 0,
            "left_bytes": as_int(self.info.get("master_sync_left_bytes"), 0) or 0,
            "perc": float(self.info.get("master_sync_perc", "0") or 0),
        }


@lru_cache(maxsize=4096)
def _info_address(host: str, port: int) -> Address:
    """The address INFO names (``master_host``/``master_port``), normalised like user input."""
    try:
        return _split_hostport(f"[{host}]:{port}" if ":" in host else f"{host}:{port}", host)
    except BadInput:
        return Address(host, port)


@lru_cache(maxsize=4096)
def _entry_address(ip: str, port: int) -> Address:
    """The address a ``slaveN`` line names (raises :class:`BadInput` when unusable)."""
    return _split_hostport(f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}", ip)


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with the topology or a node, for humans and for JSON."""

    node: str | None
    kind: str
    message: str
    severity: str = "critical"  # critical | warning

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "kind": self.kind,
            "severity": self.severity,
            "message": self.message,
        }


@dataclass(frozen=True)
class Topology:
    """The nodes discovered from some seeds, how they link, and what is wrong.

    ``nodes`` is ordered: masters first (by address), each followed depth-first by its
    replicas, then anything not attached to a known master.
    """

    nodes: tuple[NodeInfo, ...]
    problems: tuple[Problem, ...] = ()
    aliases: Mapping[Address, Address] = field(default_factory=dict)  # other address -> canonical
    sentinel: Mapping[str, Any] | None = None

    def get(self, address: Address) -> NodeInfo | None:
        return self._by_address.get(self.aliases.get(address, address))

    @cached_property
    def _by_address(self) -> dict[Address, NodeInfo]:
        out: dict[Address, NodeInfo] = {}
        for node in self.nodes:
            out.setdefault(node.address, node)
        return out

    def canonical(self, address: Address) -> Address:
        return self.aliases.get(address, address)

    @property
    def masters(self) -> list[NodeInfo]:
        return [n for n in self.nodes if n.is_master]

    def parent(self, node: NodeInfo) -> NodeInfo | None:
        m = node.master_address
        return self.get(m) if m is not None else None

    def children(self, node: NodeInfo) -> list[NodeInfo]:
        return list(self._children.get(node.address, ()))

    @cached_property
    def _children(self) -> dict[Address, list[NodeInfo]]:
        # one pass instead of one per call: tree walks of a 200-node group call it per node
        out: dict[Address, list[NodeInfo]] = {}
        for n in self.nodes:
            if n.is_replica and n.master_address is not None:
                out.setdefault(self.canonical(n.master_address), []).append(n)
        return out

    def roots(self) -> list[NodeInfo]:
        """Where a tree drawing starts: masters, then unreachable or unknown nodes that have
        replicas, then replicas whose master was never reached, then one node per cycle."""
        out = sorted((n for n in self.nodes if n.is_master), key=lambda n: n.address)
        out += sorted(
            (n for n in self.nodes if not n.is_master and not n.is_replica), key=lambda n: n.address
        )
        out += sorted(
            (n for n in self.nodes if n.is_replica and self.parent(n) is None),
            key=lambda n: n.address,
        )
        covered = {n.address for n in out}
        for n in out[:]:
            covered.update(d.address for d in self.descendants(n))
        for n in sorted(self.nodes, key=lambda n: n.address):
            if n.address not in covered:
                out.append(n)
                covered.add(n.address)
                covered.update(d.address for d in self.descendants(n))
        return out

    def descendants(self, node: NodeInfo) -> list[NodeInfo]:
        out: list[NodeInfo] = []
        seen = {node.address}
        stack = list(reversed(self.children(node)))
        while stack:
            n = stack.pop()
            if n.address in seen:
                continue
            seen.add(n.address)
            out.append(n)
            stack.extend(reversed(self.children(n)))
        return out

    def root(self, node: NodeInfo) -> NodeInfo | None:
        """The top master above ``node`` (itself if a master); None on a cycle or a gap."""
        seen: set[Address] = set()
        cur: NodeInfo | None = node
        while cur is not None and cur.is_replica:
            if cur.address in seen:
                return None
            seen.add(cur.address)
            cur = self.parent(cur)
        return cur if cur is not None and cur.reachable else None

    def depth(self, node: NodeInfo) -> int:
        d, seen, cur = 0, set(), node
        while cur is not None and cur.is_replica and cur.address not in seen:
            seen.add(cur.address)
            cur = self.parent(cur)  # type: ignore[assignment]
            d += 1
        return d

    def lag_bytes(self, node: NodeInfo) -> int | None:
        """Bytes the replica is behind the top master of its chain.

        Offsets compare only within one history (same replid); a replica of an unreachable
        master, or on a cycle, has no meaningful lag.
        """
        if not node.is_replica or not node.reachable:
            return None
        top = self.root(node)
        if top is None or top.replid != node.replid:
            return None
        return max(top.offset - node.offset, 0)

    def lag_seconds(self, node: NodeInfo) -> int | None:
        """Seconds since the replica's last ACK, as its master sees it."""
        parent = self.parent(node)
        if parent is None or not parent.reachable:
            return None
        for entry in parent.replicas:
            if self.entry_matches(entry, node):
                return entry.lag
        return None

    def entry_matches(self, entry: ReplicaEntry, node: NodeInfo) -> bool:
        try:
            addr = _entry_address(entry.ip, entry.port)
        except BadInput:
            return False
        return self.canonical(addr) == node.address

    def reachable_nodes(self) -> Iterable[NodeInfo]:
        return (n for n in self.nodes if n.reachable)

    def record(self, node: NodeInfo) -> dict[str, Any]:
        """The stable JSON record of one node (``status --format json`` and later commands)."""
        if not node.reachable:
            return {
                "address": str(node.address),
                "reachable": False,
                "role": "unknown",
                "error": node.error,
                "unreachable_cause": node.error_kind or "unknown",
            }
        master = node.master_address
        brange = node.backlog_range
        server = node.server
        return {
            "address": str(node.address),
            "reachable": True,
            "role": node.role,
            "master": str(self.canonical(master))
            if master is not None and node.is_replica
            else None,
            "link": node.link,
            "link_down_seconds": node.link_down_seconds if node.link == "down" else None,
            "repl_state": node.repl_state,
            "offset": node.offset,
            "lag_bytes": self.lag_bytes(node),
            "lag_seconds": self.lag_seconds(node),
            "last_io_seconds": node.last_io_seconds,
            "sync_in_progress": node.sync_in_progress,
            "sync_progress": node.sync_progress,
            "loading": node.loading,
            "read_only": node.read_only,
            "replica_priority": node.replica_priority,
            "replid": node.replid,
            "replid2": node.replid2,
            "second_repl_offset": node.second_repl_offset,
            "backlog_active": node.backlog_active,
            "backlog_size": node.backlog_size,
            "backlog_first_byte": brange[0] if brange else None,
            "backlog_last_byte": brange[1] if brange else None,
            "backlog_histlen": node.backlog_histlen,
            "server": server.product if server is not None else None,
            "version": node.version,
            "redis_version": node.info.get("redis_version"),
            "rdb_format": server.rdb_format if server is not None else None,
            "used_memory": node.used_memory,
            "keys": node.keys,
            "run_id": node.run_id,
            "replicas": [e.to_dict() for e in node.replicas],
            "failover_state": node.failover_state,
            "aliases": sorted(str(a) for a, c in self.aliases.items() if c == node.address),
        }


# --------------------------------------------------------------------------- plans

REDACTED = "***"


@dataclass(frozen=True, slots=True)
class Finding:
    """A preflight result: ``refuse`` blocks the plan (unless forced), ``warn`` is shown."""

    level: str  # refuse | warn | info
    code: str
    message: str
    node: str | None = None
    forceable: bool = False  # --force overrides this refusal

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "code": self.code,
            "node": self.node,
            "message": self.message,
            "forceable": self.forceable,
        }


@dataclass(frozen=True)
class Step:
    """One ordered action of a plan.

    ``command`` is the exact Redis command (with any secret shown as ``***``); ``action``
    names the executor routine that runs it (``command`` for a plain command); ``args``
    carries what the routine needs. ``rollback`` is the command that undoes the step, if
    any. A step with ``commit=True`` is the point of no return: once it succeeded, a later
    failure finishes forward instead of rolling back.
    """

    n: int
    node: str
    action: str
    description: str
    command: tuple[str, ...] | None = None
    precondition: str = ""
    verify: str = ""
    rollback: tuple[str, ...] | None = None
    idempotent: bool = True
    commit: bool = False
    args: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "node": self.node,
            "action": self.action,
            "description": self.description,
            "command": list(self.command) if self.command is not None else None,
            "precondition": self.precondition,
            "verify": self.verify,
            "rollback": list(self.rollback) if self.rollback is not None else None,
        }


@dataclass(frozen=True)
class Plan:
    """Everything a mutating command will do, decided before anything is touched."""

    operation: str
    cluster: str
    steps: tuple[Step, ...]
    findings: tuple[Finding, ...] = ()
    prediction: Mapping[str, Any] | None = None
    summary: str = ""
    nothing_to_do: bool = False
    touched: tuple[str, ...] = ()  # nodes whose state the result reports
    #: the replication group's identity for the lock: addresses (aliases too) and
    #: ``run:<id>`` names of every member (see :func:`redisops.lock.identities`)
    members: tuple[str, ...] = ()

    def refusals(self, force: bool = False) -> list[Finding]:
        return [f for f in self.findings if f.level == "refuse" and not (force and f.forceable)]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "operation": self.operation,
            "cluster": self.cluster,
            "summary": self.summary,
            "nothing_to_do": self.nothing_to_do,
            "findings": [f.to_dict() for f in self.findings],
            "steps": [s.to_dict() for s in self.steps],
        }
        if self.prediction is not None:
            out["prediction"] = dict(self.prediction)
        return out
