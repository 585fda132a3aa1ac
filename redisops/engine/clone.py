"""Engine nodes that continue a real cluster's replication history (``lab up --from-cluster``).

A clone spec (JSON, built from a snapshot by :mod:`redisops.clone`) lists nodes with
lab ports, who replicates from whom, each node's replication ids and offset, its
backlog's length, its replication-relevant config, and the size of a synthetic dataset.
:func:`build_clone_cluster` boots engine nodes so that:

- each master has the real ``master_replid``, ``master_replid2``, ``second_repl_offset``
  and ``master_repl_offset``, and a backlog holding as many bytes as the real one (filled
  with ``PING``s), so ``repl_backlog_first_byte_offset`` is the real one too: a later
  ``PSYNC`` is accepted or refused exactly as on the real master;
- each replica starts from an RDB carrying its real history (as a restarted replica
  does), so it reconnects with ``PSYNC <replid> <offset+1>`` and continues partially;
- replicas of the same history are at their master's offset (the lag of a live cluster is
  not reproduced); a replica of another history keeps it, and will full-sync;
- nodes that were down are booted and then killed: their replicas see a dead master.

The synthetic dataset is ``keys`` string keys of ``value_size`` bytes; replicas of the
same history hold exactly their master's keys.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from redisops.engine.backlog import Backlog
from redisops.engine.clock import WallClock
from redisops.engine.cluster import Cluster
from redisops.engine.keyspace import Keyspace
from redisops.engine.rdb import ReplInfo, image_of
from redisops.engine.state import Storage

PING = b"*1\r\n$4\r\nPING\r\n"  # 14 bytes, as a master's replication cron sends


def synthetic_keyspace(keys: int, value_size: int, databases: int = 16) -> Keyspace:
    """``keys`` keys ``clone:00000000``... of ``value_size`` bytes each, in db 0."""
    ks = Keyspace(databases)
    value = b"x" * max(value_size, 1)
    for i in range(keys):
        ks.set_raw(0, b"clone:%08d" % i, value, None)
    return ks


def _order(nodes: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Masters first, then each replica after its master."""
    by_port = {int(n["port"]): n for n in nodes}
    out: list[Mapping[str, Any]] = []
    placed: set[int] = set()
    pending = list(nodes)
    while pending:
        ready = [
            n
            for n in pending
            if n.get("master") is None
            or int(n["master"]) in placed
            or int(n["master"]) not in by_port
        ]
        if not ready:  # a cycle: boot the rest as they come
            ready = pending[:1]
        for n in ready:
            out.append(n)
            placed.add(int(n["port"]))
            pending.remove(n)
    return out


def _filler(length: int) -> bytes:
    """``length`` bytes of whole PINGs (the tail rounded down to a whole command)."""
    return PING * (length // len(PING))


def build_clone_cluster(spec: Mapping[str, Any], seed: int | None = None) -> Cluster:
    """The engine nodes the spec describes, booted (and the dead ones killed)."""
    cluster = Cluster(
        seed=seed if seed is not None else int.from_bytes(os.urandom(4), "little"),
        clock=WallClock(),
    )
    host = cluster.host
    keyspaces: dict[int, Keyspace] = {}
    down: list[int] = []
    for entry in _order(list(spec["nodes"])):
        port = int(entry["port"])
        config = {str(k): str(v) for k, v in dict(entry.get("config") or {}).items()}
        master_port = int(entry["master"]) if entry.get("master") is not None else None
        offset = int(entry.get("offset") or 0)
        keys, value_size = int(entry.get("keys") or 0), int(entry.get("value_size") or 0)
        if entry.get("dataset") == "master" and master_port in keyspaces:
            ks = keyspaces[master_port]
        else:
            ks = synthetic_keyspace(keys, value_size)
        keyspaces[port] = ks
        if master_port is None:
            node = cluster.add_node(port, config)
            for key, value, _exp in ks.items(0):
                node.keyspace.set_raw(0, key, value, None)
            node.replid = str(entry["replid"])
            node.replid2 = str(entry.get("replid2") or "0" * 40)
            node.second_repl_offset = int(entry.get("second_repl_offset", -1))
        else:
            config["replicaof"] = f"{host} {master_port}"
            storage = Storage()
            storage.rdb = image_of(ks, 0, ReplInfo(str(entry["replid"]), offset, 0))
            node = cluster.add_node(port, config, storage)
        if entry.get("backlog_active"):
            # as long as the real backlog, so a PSYNC is answered as the real node would
            fill = _filler(min(int(entry.get("backlog_histlen") or 0), offset))
            node.master_repl_offset = offset - len(fill)
            node.backlog = Backlog(node.config.get_int("repl-backlog-size"), offset - len(fill))
            node.backlog.feed(fill)
        node.master_repl_offset = offset
        if entry.get("down"):
            down.append(port)
    for port in down:
        cluster.kill(port)
    return cluster
