"""What a dry run believes the cluster looks like after the steps it has only predicted.

A dry run reads the real cluster for every read-only step, but the mutating steps before
it did not happen. So that later ``when:`` conditions, asserts and plans see the state
the procedure will really meet, every predicted step leaves an *effect* (this node
becomes a replica of that one; this one is promoted; this one goes down), and each
later read is the real read with those effects applied on top: a replica made to
follow a new master has that master's history, offset and (after a full sync) keys, its
own replicas follow it, and every master lists its replicas again. The nodes whose
values are predicted rather than read are named, so the output and the registered
values say which is which.

Pure functions over snapshots, plus :class:`World`, which reads through a session.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redisops.model import NULL_REPLID, Address, NodeInfo, Topology

if TYPE_CHECKING:  # pragma: no cover
    from redisops.session import Session


@dataclass(frozen=True)
class Replicate:
    """``node`` replicates from ``master``, link up and caught up (``full``: after a full sync)."""

    node: str
    master: str
    full: bool = False


@dataclass(frozen=True)
class Promote:
    """``REPLICAOF NO ONE`` on ``node``: a master with a new id, its old one as replid2."""

    node: str


@dataclass(frozen=True)
class Down:
    """``node`` stops answering."""

    node: str


Effect = Replicate | Promote | Down


def _replicas_fields(info: dict[str, str]) -> None:
    for key in [k for k in info if k.startswith("slave") and k[5:].isdigit()]:
        del info[key]
    info["connected_slaves"] = "0"


def _new_id(node: str, old: str) -> str:
    return hashlib.sha1(f"predicted:{node}:{old}".encode()).hexdigest()


def apply_effects(
    nodes: Mapping[Address, NodeInfo], effects: Iterable[Effect]
) -> tuple[dict[Address, NodeInfo], set[str]]:
    """The snapshots with ``effects`` applied, and the addresses whose values are predicted.

    >>> from redisops.model import Address, NodeInfo
    >>> m = NodeInfo(Address("h", 1), True, info={"role": "master", "master_replid": "a" * 40,
    ...     "master_repl_offset": "100", "db0": "keys=5,expires=0,avg_ttl=0"})
    >>> r = NodeInfo(Address("h", 2), True, info={"role": "master", "master_replid": "b" * 40,
    ...     "master_repl_offset": "7"})
    >>> out, predicted = apply_effects({m.address: m, r.address: r}, [Replicate("h:2", "h:1", True)])
    >>> out[r.address].role, str(out[r.address].master_address), out[r.address].offset, out[r.address].keys
    ('replica', 'h:1', 100, 5)
    >>> out[m.address].replicas[0].port, sorted(predicted)
    (2, ['h:1', 'h:2'])
    """
    infos: dict[str, dict[str, str]] = {}
    base: dict[str, NodeInfo] = {}
    for addr, node in nodes.items():
        base[str(addr)] = node
        infos[str(addr)] = dict(node.info)
    down: set[str] = set()
    touched: set[str] = set()
    for eff in effects:
        if eff.node not in infos:
            continue
        touched.add(eff.node)
        info = infos[eff.node]
        if isinstance(eff, Down):
            down.add(eff.node)
        elif isinstance(eff, Promote):
            down.discard(eff.node)
            old = info.get("master_replid", "")
            offset = int(info.get("master_repl_offset", "0") or 0)
            info["role"] = "master"
            for key in [
                k
                for k in info
                if k.startswith(
                    (
                        "master_host",
                        "master_port",
                        "master_link",
                        "master_sync",
                        "master_last_io",
                        "slave_repl",
                        "slave_read_repl",
                    )
                )
            ]:
                del info[key]
            info["master_replid"] = _new_id(eff.node, old)
            info["master_replid2"] = old
            info["second_repl_offset"] = str(offset + 1)
        else:
            down.discard(eff.node)
            host, _, port = eff.master.rpartition(":")
            info["role"] = "slave"
            info["master_host"] = host.strip("[]")
            info["master_port"] = port
            info["master_link_status"] = "up"
            info["master_sync_in_progress"] = "0"
            info["loading"] = "0"
            info["master_link_down_since_seconds"] = "-1"
            info["master_last_io_seconds_ago"] = "0"
            if eff.full:
                master = infos.get(eff.master, {})
                for key in [k for k in info if k.startswith("db") and k[2:].isdigit()]:
                    del info[key]
                info.update(
                    {k: v for k, v in master.items() if k.startswith("db") and k[2:].isdigit()}
                )
                info["master_replid2"] = NULL_REPLID
                info["second_repl_offset"] = "-1"
                # loading the RDB, a replica starts a backlog right after the master's
                # offset (empty until the stream flows): what later PSYNCs to it are
                # judged against, e.g. the old master's once it is promoted
                synced_at = master.get("master_repl_offset") or info.get("master_repl_offset")
                info["repl_backlog_active"] = "1"
                info["repl_backlog_first_byte_offset"] = str(int(synced_at or 0) + 1)
                info["repl_backlog_histlen"] = "0"
    _follow(infos, touched, down)
    predicted = _predicted(infos, touched)
    _relist(infos, down)
    out: dict[Address, NodeInfo] = {}
    for name, node in base.items():
        if name in down:
            out[node.address] = NodeInfo(node.address, False, "down (predicted by the dry run)")
        elif name in predicted:
            out[node.address] = NodeInfo(
                node.address, True, None, infos[name], node.config, None, node.read_at
            )
        else:
            out[node.address] = NodeInfo(
                node.address,
                node.reachable,
                node.error,
                infos[name],
                node.config,
                node.role_reply,
                node.read_at,
                node.rtt_ms,
            )
    return out, predicted


def _master_of(info: Mapping[str, str]) -> str | None:
    if info.get("role") != "slave" or not info.get("master_host"):
        return None
    host = info["master_host"]
    return (
        f"[{host}]:{info.get('master_port')}"
        if ":" in host
        else f"{host}:{info.get('master_port')}"
    )


def _predicted(infos: Mapping[str, dict[str, str]], touched: set[str]) -> set[str]:
    """The touched nodes, their masters (whose replica lists change) and everything below."""
    out = set(touched)
    for name in touched:
        master = _master_of(infos.get(name, {}))
        if master is not None and master in infos:
            out.add(master)
    changed = True
    while changed:
        changed = False
        for name, info in infos.items():
            if name not in out and _master_of(info) in out:
                out.add(name)
                changed = True
    return out


def _follow(infos: dict[str, dict[str, str]], touched: set[str], down: set[str]) -> None:
    """Replicas below a changed node take its history and offset (they resync from it),
    top down; a replica of a node that is down has its link down."""
    order: list[str] = []
    pending = set(infos)
    while pending:
        ready = [n for n in pending if (_master_of(infos[n]) or "") not in pending]
        if not ready:  # a cycle: leave it as read
            break
        order.extend(sorted(ready))
        pending -= set(ready)
    affected = set(touched)
    for name in order:
        info = infos[name]
        master = _master_of(info)
        if master is None or master not in infos:
            continue
        if master in affected or name in affected:
            affected.add(name)
            if master in down:
                info["master_link_status"] = "down"
                continue
            minfo = infos[master]
            info["master_replid"] = minfo.get("master_replid", "")
            offset = minfo.get("master_repl_offset", "0")
            info["master_repl_offset"] = offset
            info["slave_repl_offset"] = offset
            info["slave_read_repl_offset"] = offset


def _relist(infos: dict[str, dict[str, str]], down: set[str]) -> None:
    """Every master's ``slaveN`` lines from its replicas' predicted ``master_host``."""
    children: dict[str, list[str]] = {}
    for name, info in infos.items():
        master = _master_of(info)
        if master is not None and name not in down:
            children.setdefault(master, []).append(name)
    for name, info in infos.items():
        if name in down:
            continue
        mine = sorted(children.get(name, []))
        listed = {k for k in info if k.startswith("slave") and k[5:].isdigit()}
        if not mine and not listed:
            continue
        _replicas_fields(info)
        for i, child in enumerate(mine):
            host, _, port = child.rpartition(":")
            offset = infos[child].get(
                "slave_repl_offset", infos[child].get("master_repl_offset", "0")
            )
            info[f"slave{i}"] = (
                f"ip={host.strip('[]')},port={port},state=online,offset={offset},lag=0"
            )
        info["connected_slaves"] = str(len(mine))


@dataclass
class World:
    """The cluster as a dry run sees it: real reads with the predicted effects on top."""

    effects: list[Effect] = field(default_factory=list)
    #: addresses whose values in the last read were predicted, not read
    predicted: set[str] = field(default_factory=set)
    #: (parameter, node) pairs a predicted ``drift --fix`` brings back to the reference
    fixed: set[tuple[str, str]] = field(default_factory=set)

    def add(self, *effects: Effect) -> None:
        self.effects.extend(effects)

    def discover(self, session: Session, extra: Iterable[Address] = ()) -> Topology:
        """Discovery from the session's seeds (and ``extra``) with the effects applied."""
        from redisops.topology import discover

        extra = list(extra)
        if not self.effects:
            self.predicted = set()
            return session.discover(extra)
        named = {Address.parse(n) for e in self.effects for n in _names(e)}
        seeds = [s.address for s in session.seeds] + extra
        real = session.discover([*extra, *sorted(named)])
        snapshots = {n.address: n for n in real.nodes}
        changed, predicted = apply_effects(snapshots, self.effects)
        self.predicted = predicted

        def prober(address: Address) -> NodeInfo:
            node = changed.get(real.canonical(address))
            return node if node is not None else session.probe(address)

        return discover([*seeds, *sorted(named)], prober)


def _names(effect: Effect) -> tuple[str, ...]:
    if isinstance(effect, Replicate):
        return (effect.node, effect.master)
    return (effect.node,)
