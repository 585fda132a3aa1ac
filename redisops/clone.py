"""A copy of a real cluster for rehearsals: what ``redisops lab up --from-cluster`` builds.

:func:`clone_spec` turns a topology snapshot into a clone spec (JSON) that
:mod:`redisops.engine.clone` boots as embedded-engine nodes on loopback ports: the same
topology (who replicates from whom, chained replicas included), the same replication
ids and offsets, the same backlog length, the replication-relevant config, and a
synthetic dataset of the same size class. Nodes that are down in the real cluster are
down in the copy (a dead master's history is taken from its replicas).

What is not copied, and why: the data itself (a synthetic dataset of the same key count,
up to ``max_keys``, and the same size class, up to ``max_bytes``); passwords and ACLs
(the copy has no auth); the lag of a live replica (replicas of the master's history start
at its offset); TLS and announce settings (the copy is on loopback).

Pure: snapshots in, a dict out (plus the address map real -> lab).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redisops.model import NULL_REPLID, NodeInfo, Topology

#: the config keys a copy takes from the real node (what decides replication behaviour)
CLONED_CONFIG = (
    "repl-backlog-size",
    "repl-backlog-ttl",
    "repl-timeout",
    "repl-ping-replica-period",
    "repl-diskless-sync",
    "repl-diskless-sync-delay",
    "repl-diskless-sync-max-replicas",
    "repl-diskless-load",
    "replica-priority",
    "replica-read-only",
    "replica-serve-stale-data",
    "client-output-buffer-limit",
    "min-replicas-to-write",
    "min-replicas-max-lag",
    "save",
    "appendonly",
    "maxmemory",
)
MAX_KEYS = 100_000
MAX_BYTES = 64 * 1024 * 1024
LAB_HOST = "127.0.0.1"


def size_class(n: int) -> int:
    """The power of two at or above ``n`` (at least 1 KB): the dataset's size class.

    >>> size_class(0), size_class(1500), size_class(1 << 20)
    (1024, 2048, 1048576)
    """
    out = 1024
    while out < n:
        out *= 2
    return out


def _dataset_bytes(node: NodeInfo) -> int:
    for key in ("used_memory_dataset", "used_memory"):
        raw = node.info.get(key)
        if raw and raw.isdigit():
            return int(raw) - (870_000 if key == "used_memory" else 0)
    return node.keys * 64


def _dataset(node: NodeInfo, max_keys: int, max_bytes: int) -> dict[str, Any]:
    keys = node.keys
    real_bytes = max(_dataset_bytes(node), 0)
    cls = size_class(real_bytes) if keys else 0
    cloned_keys = min(keys, max_keys)
    total = min(cls, max_bytes)
    value_size = max(total // cloned_keys - 16, 1) if cloned_keys else 0
    return {
        "keys": cloned_keys,
        "value_size": value_size,
        "real_keys": keys,
        "real_bytes": real_bytes,
        "size_class": cls,
        "cloned_bytes": cloned_keys * (value_size + 16),
    }


PING_BYTES = 14  # the filler unit of a copied backlog (see redisops.engine.clone)


def _aligned(offset: int, anchor: int) -> int:
    """``offset`` moved back to a whole number of PINGs before ``anchor`` (never ahead), so
    a PSYNC from any copied node lands on a command boundary of the filler.

    >>> _aligned(1000, 1000), _aligned(990, 1000), _aligned(986, 1000)
    (1000, 986, 986)
    """
    return anchor - -(-(anchor - offset) // PING_BYTES) * PING_BYTES


def _history(node: NodeInfo, offset: int) -> dict[str, Any]:
    """The backlog a copied node starts with: as long as the real one (whole PINGs)."""
    histlen = min(node.backlog_histlen, offset) // PING_BYTES * PING_BYTES
    return {"backlog_active": node.backlog_active or histlen > 0, "backlog_histlen": histlen}


def _config(node: NodeInfo) -> dict[str, str]:
    return {k: node.config[k] for k in CLONED_CONFIG if k in node.config}


def clone_spec(
    topo: Topology,
    base_port: int,
    *,
    max_keys: int = MAX_KEYS,
    max_bytes: int = MAX_BYTES,
) -> dict[str, Any]:
    """The clone spec of ``topo`` on ports from ``base_port`` (see the module docstring)."""
    order = list(topo.nodes)
    ports = {str(n.address): base_port + i for i, n in enumerate(order)}
    children: dict[str, list[NodeInfo]] = {}
    for n in order:
        if n.reachable and n.is_replica and n.master_address is not None:
            children.setdefault(str(topo.canonical(n.master_address)), []).append(n)
    # one anchor per history: its master's offset (or, with the master dead, the highest
    # offset its replicas have); every copied offset is aligned to it, and none is ahead of
    # it (nodes are read one after another: a replica read later may look ahead)
    anchors: dict[str, int] = {}
    for n in order:
        if n.reachable and n.replid and n.is_master:
            anchors.setdefault(n.replid, n.offset)
    for n in order:
        if n.reachable and n.replid and n.replid not in anchors:
            anchors[n.replid] = max(k.offset for k in order if k.reachable and k.replid == n.replid)
    top = [n for n in order if n.reachable and n.is_master]
    nodes: list[dict[str, Any]] = []
    for n in order:
        name = str(n.address)
        entry: dict[str, Any] = {"port": ports[name], "address": name, "down": not n.reachable}
        if n.reachable:
            anchor = anchors.get(n.replid, n.offset)
            offset = _aligned(min(n.offset, anchor), anchor)
            entry.update(
                config=_config(n),
                replid=n.replid,
                offset=offset,
                real_offset=n.offset,
                **_history(n, offset),
                **_dataset(n, max_keys, max_bytes),
            )
            master = topo.parent(n) if n.is_replica else None
            if n.is_replica and n.master_address is not None:
                mname = str(topo.canonical(n.master_address))
                entry["master"] = ports.get(mname)
                same = master is None or not master.reachable or master.replid == n.replid
                entry["dataset"] = "master" if same else "own"
            else:
                entry.update(
                    master=None,
                    replid2=n.replid2 or NULL_REPLID,
                    second_repl_offset=n.second_repl_offset,
                    dataset="own",
                )
        elif children.get(name):
            # a dead master, seen through its replicas: their history, the best offset
            best = max(children[name], key=lambda k: k.offset)
            entry.update(
                master=None,
                config=_config(best),
                replid=best.replid,
                replid2=NULL_REPLID,
                second_repl_offset=-1,
                offset=anchors.get(best.replid, best.offset),
                dataset="own",
                **_history(best, best.offset),
                **_dataset(best, max_keys, max_bytes),
            )
        elif top:
            # a node that does not answer and that nobody follows: a replica of the master
            entry.update(
                master=ports[str(top[0].address)],
                config={},
                replid=top[0].replid,
                offset=top[0].offset,
                dataset="master",
                keys=0,
                value_size=0,
            )
        else:
            continue
        nodes.append(entry)
    return {
        "nodes": nodes,
        "addresses": {name: f"{LAB_HOST}:{port}" for name, port in ports.items()},
        "not_copied": [
            "the data: a synthetic dataset of the same key count and size class",
            "passwords and ACLs: the copy has no auth",
            "replica lag: offsets are exact to 14 bytes (whole PINGs in the copied backlogs)",
            "TLS and announce settings: the copy is on loopback",
        ],
    }


def address_map(spec: Mapping[str, Any]) -> dict[str, str]:
    """Real address -> lab address."""
    return {str(k): str(v) for k, v in dict(spec.get("addresses") or {}).items()}


def describe(spec: Mapping[str, Any]) -> list[str]:
    """The copy in words: each lab node, the real node it copies, and what was not copied."""
    from redisops.output import human_bytes

    labs = address_map(spec)
    lines = []
    for node in spec["nodes"]:
        role = "master" if node.get("master") is None else "replica"
        what = f"{role}, offset {node.get('offset')}, {node.get('keys', 0)} keys"
        if node.get("real_keys") is not None:
            what += (
                f" (real: {node['real_keys']} keys, {human_bytes(node.get('real_bytes'))}; "
                f"copy: {human_bytes(node.get('cloned_bytes'))})"
            )
        down = ", DOWN as in the real cluster" if node.get("down") else ""
        lines.append(f"  {labs.get(node['address'], '?')}  copies {node['address']}: {what}{down}")
    lines.append("  not copied: " + "; ".join(spec.get("not_copied", [])))
    return lines
