"""Hand-built node snapshots for pure tests (no Redis needed).

``master("10.0.0.1:6379", offset=100, replicas=["10.0.0.2:6379"])`` gives a NodeInfo as
the adapter would have read it, with INFO field names exactly as Redis 7.0 writes them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from redisops.info import RoleReply
from redisops.model import Address, NodeInfo, Topology
from redisops.topology import discover

NULL = "0" * 40


def rid(seed: str) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()


def addr(text: str) -> Address:
    return Address.parse(text)


def _base(
    address: str, role: str, offset: int, replid: str, extra: Mapping[str, str]
) -> dict[str, str]:
    info = {
        "redis_version": "7.0.15",
        "run_id": rid("run:" + address),
        "role": role,
        "master_replid": replid,
        "master_replid2": NULL,
        "master_repl_offset": str(offset),
        "second_repl_offset": "-1",
        "repl_backlog_active": "1" if offset else "0",
        "repl_backlog_size": "1048576",
        "repl_backlog_first_byte_offset": "1" if offset else "0",
        "repl_backlog_histlen": str(offset),
        "used_memory": "1000000",
        "loading": "0",
        "master_failover_state": "no-failover",
        "connected_slaves": "0",
        "sync_full": "0",
        "sync_partial_ok": "0",
        "sync_partial_err": "0",
    }
    info.update(extra)
    return info


def master(
    address: str,
    *,
    offset: int = 0,
    replicas: Iterable[str] = (),
    replid: str | None = None,
    lags: Mapping[str, int] | None = None,
    offsets: Mapping[str, int] | None = None,
    config: Mapping[str, str] | None = None,
    **extra: str,
) -> NodeInfo:
    reps = list(replicas)
    fields = _base(address, "master", offset, replid or rid("repl"), extra)
    fields["connected_slaves"] = str(len(reps))
    for i, r in enumerate(reps):
        a = addr(r)
        off = (offsets or {}).get(r, offset)
        lag = (lags or {}).get(r, 0)
        fields[f"slave{i}"] = f"ip={a.host},port={a.port},state=online,offset={off},lag={lag}"
    return NodeInfo(
        address=addr(address),
        reachable=True,
        info=fields,
        config=dict(config or {"replica-priority": "100"}),
        role_reply=RoleReply("master", offset),
    )


def replica(
    address: str,
    master_of: str,
    *,
    offset: int = 0,
    link: str = "up",
    replicas: Iterable[str] = (),
    replid: str | None = None,
    state: str | None = None,
    priority: int = 100,
    down_since: int | None = None,
    **extra: str,
) -> NodeInfo:
    m = addr(master_of)
    fields = _base(address, "slave", offset, replid or rid("repl"), extra)
    fields.update(
        {
            "master_host": m.host,
            "master_port": str(m.port),
            "master_link_status": link,
            "master_last_io_seconds_ago": "0" if link == "up" else "-1",
            "master_sync_in_progress": "0",
            "slave_read_repl_offset": str(offset),
            "slave_repl_offset": str(offset),
            "slave_priority": str(priority),
            "slave_read_only": "1",
            "replica_announced": "1",
        }
    )
    if link == "down":
        fields["master_link_down_since_seconds"] = str(down_since if down_since is not None else 5)
    reps = list(replicas)
    fields["connected_slaves"] = str(len(reps))
    for i, r in enumerate(reps):
        a = addr(r)
        fields[f"slave{i}"] = f"ip={a.host},port={a.port},state=online,offset={offset},lag=0"
    role_state = state or ("connected" if link == "up" else "connect")
    return NodeInfo(
        address=addr(address),
        reachable=True,
        info=fields,
        config={"replica-priority": str(priority)},
        role_reply=RoleReply(
            "slave", offset if link == "up" else -1, (), m.host, m.port, role_state
        ),
    )


def unreachable(address: str, error: str = "connection refused") -> NodeInfo:
    return NodeInfo(address=addr(address), reachable=False, error=error)


def world(*nodes: NodeInfo, aliases: Mapping[str, str] | None = None):  # type: ignore[no-untyped-def]
    """A prober over hand-built nodes: unknown addresses are unreachable; ``aliases`` maps
    another address to a node (same run_id answers there)."""
    by_addr = {n.address: n for n in nodes}
    alias_map = {addr(k): addr(v) for k, v in (aliases or {}).items()}

    def probe(a: Address) -> NodeInfo:
        if a in alias_map:
            target = by_addr[alias_map[a]]
            return NodeInfo(
                address=a,
                reachable=True,
                info=target.info,
                config=target.config,
                role_reply=target.role_reply,
            )
        return by_addr.get(a) or unreachable(str(a))

    return probe


def topology(
    *nodes: NodeInfo, seeds: Iterable[str] | None = None, aliases: Mapping[str, str] | None = None
) -> Topology:
    """Discover over hand-built nodes, from ``seeds`` (default: the first node)."""
    start = [addr(s) for s in seeds] if seeds is not None else [nodes[0].address]
    return discover(start, world(*nodes, aliases=aliases), parallel=False)
