"""Files under ``$XDG_STATE_HOME/redisops/`` that outlive one command.

- ``check/<cluster>.json``: the health check's state (counter baselines, recent write
  rates, resync streaks, which operation markers were used).
- ``markers.json``: "expected full sync" markers that operations leave, so the full sync
  an attach or a failover causes does not page anyone.
- ``topology/<group>.json``: the last-known topology of each replication group, as the
  last command that read it saw it (status, check, every operation). When the master is
  dead its replicas cannot be discovered from it: ``failover`` and ``status`` use this.

Every file is read and rewritten under an exclusive ``flock`` on ``<file>.lock`` and
replaced atomically (temp file in the same directory, fsync, ``os.replace``), so
overlapping cron runs and concurrent operators never interleave or leave half a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redisops.errors import RedisopsError
from redisops.model import Address, NodeInfo, Topology

#: INFO fields the last-known topology keeps per node (enough to predict its PSYNC).
KNOWN_FIELDS = (
    "role",
    "run_id",
    "redis_version",
    "master_host",
    "master_port",
    "master_link_status",
    "master_link_down_since_seconds",
    "master_replid",
    "master_replid2",
    "master_repl_offset",
    "second_repl_offset",
    "slave_repl_offset",
    "slave_priority",
    "repl_backlog_active",
    "repl_backlog_size",
    "repl_backlog_first_byte_offset",
    "repl_backlog_histlen",
    "connected_slaves",
)
#: A node last seen this long ago is no longer expected back (checks, discovery).
KNOWN_MAX_AGE = 86400.0
#: A node not seen for this long is dropped from the last-known topology.
FORGET_AFTER = 30 * 86400.0
#: How long an operation's "expected full sync" marker stays valid.
MARKER_TTL = 3600.0
LOCK_WAIT = 10.0


class StateError(RedisopsError):
    """A state file cannot be read, locked or written."""


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "redisops"


def safe_name(name: str) -> str:
    """A file name for a cluster or group name.

    >>> safe_name("10.0.0.1:6379"), safe_name("cache/prod")
    ('10.0.0.1_6379', 'cache_prod')
    """
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:120] or "cluster"


@contextlib.contextmanager
def locked(path: Path, wait: float = LOCK_WAIT) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path.lock`` (polling up to ``wait`` seconds)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    with open(lock_path, "a", encoding="utf-8") as f:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StateError(
                        f"state file {path} is locked by another redisops process for over {wait:g}s",
                        hint="is an earlier run stuck? see the processes holding the .lock file",
                    ) from None
                time.sleep(0.02)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def read_json(path: Path) -> dict[str, Any]:
    """The file's JSON object, or ``{}`` when it does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise StateError(f"cannot read state file {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise StateError(
            f"state file {path} is not valid JSON",
            hint="move it away; the next run starts a new baseline",
        ) from None
    if not isinstance(data, dict):
        raise StateError(f"state file {path} does not hold a JSON object")
    return data


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: ``path.<pid>.tmp``, fsync, ``os.replace``.

    The temp name does not end in ``.prom`` (node_exporter's textfile collector reads
    only ``*.prom``), and it is in the same directory, so the rename is atomic.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StateError(f"cannot write {path}: {exc.strerror}") from None


def update_json(path: Path, change: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """Read, change and atomically rewrite ``path`` under its lock; returns what was written."""
    with locked(path):
        data = change(read_json(path))
        write_atomic(path, json.dumps(data, indent=1, sort_keys=True))
        return data


# ----------------------------------------------------------------------------- check state


def check_state_path(cluster: str) -> Path:
    return state_dir() / "check" / f"{safe_name(cluster)}.json"


# ----------------------------------------------------------------------------- markers


def markers_path() -> Path:
    return state_dir() / "markers.json"


def mark_expected_sync(
    master: str, replica: str, op: str, *, now: float | None = None, ttl: float = MARKER_TTL
) -> None:
    """Record that ``replica`` is about to full-sync from ``master`` because of ``op``.

    The health check subtracts it from ``master``'s ``sync_full`` delta and does not alert
    on the replica's link or sync while it lasts. Best effort: an operation never fails
    because this file cannot be written.
    """
    t = time.time() if now is None else now
    marker = {
        "id": uuid.uuid4().hex[:12],
        "master": master,
        "replica": replica,
        "op": op,
        "at": t,
        "until": t + ttl,
    }

    def add(data: dict[str, Any]) -> dict[str, Any]:
        kept = [m for m in data.get("markers", []) if float(m.get("until", 0)) >= t]
        return {"markers": [*kept, marker]}

    with contextlib.suppress(StateError, OSError):
        update_json(markers_path(), add)


def expected_syncs(prediction: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """``(master, replica)`` of every full sync a plan's prediction announces.

    >>> expected_syncs({"sync": "full", "master": "m:1", "replica": "r:2",
    ...                 "followers": [{"sync": "full", "master": "r:2", "replica": "s:3"}]})
    [('m:1', 'r:2'), ('r:2', 's:3')]
    """
    out: list[tuple[str, str]] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, Mapping):
            if obj.get("sync") == "full" and obj.get("master") and obj.get("replica"):
                out.append((str(obj["master"]), str(obj["replica"])))
            for value in obj.values():
                walk(value)
        elif isinstance(obj, list):
            for value in obj:
                walk(value)

    walk(prediction or {})
    return list(dict.fromkeys(out))


def mark_plan(operation: str, prediction: Mapping[str, Any] | None) -> None:
    """Leave a marker for every full sync the plan predicts (called before it acts)."""
    for master, replica in expected_syncs(prediction):
        mark_expected_sync(master, replica, operation)


def load_markers(now: float | None = None) -> list[dict[str, Any]]:
    t = time.time() if now is None else now
    try:
        data = read_json(markers_path())
    except StateError:
        return []
    return [m for m in data.get("markers", []) if float(m.get("until", 0)) >= t]


# ----------------------------------------------------------------------------- last-known topology


def topology_dir() -> Path:
    return state_dir() / "topology"


def _entry(node: NodeInfo, seen_at: float) -> dict[str, Any]:
    info = {k: node.info[k] for k in KNOWN_FIELDS if k in node.info}
    for k, v in node.info.items():
        if k.startswith("slave") and k[5:].isdigit():
            info[k] = v
    config = {
        k: node.config[k] for k in ("replica-priority", "repl-backlog-size") if k in node.config
    }
    return {"seen_at": seen_at, "info": info, "config": config}


@dataclass(frozen=True)
class KnownGroup:
    """A replication group as last seen: its nodes as they were when last reachable."""

    group: str
    recorded_at: float
    source: str
    nodes: Mapping[str, Mapping[str, Any]]

    def node(self, address: str) -> NodeInfo | None:
        """The node as last seen (``read_at`` = when), or None when never seen."""
        entry = self.nodes.get(address)
        if entry is None:
            return None
        return NodeInfo(
            address=Address.parse(address),
            reachable=True,
            info=dict(entry.get("info", {})),
            config=dict(entry.get("config", {})),
            read_at=float(entry.get("seen_at", 0)),
        )

    def seen_at(self, address: str) -> float | None:
        entry = self.nodes.get(address)
        return float(entry["seen_at"]) if entry and "seen_at" in entry else None

    def replicas_of(self, master: str) -> list[str]:
        """Addresses last seen replicating from ``master``."""
        out = []
        want = Address.parse(master)
        for addr in self.nodes:
            n = self.node(addr)
            if n is not None and n.is_replica and n.master_address == want:
                out.append(addr)
        return sorted(out)

    def replicas(self) -> dict[str, float]:
        """Every node last seen as a replica, with when."""
        out: dict[str, float] = {}
        for addr, entry in self.nodes.items():
            if entry.get("info", {}).get("role") == "slave":
                out[addr] = float(entry.get("seen_at", 0))
        return out

    def members(self) -> list[str]:
        return sorted(self.nodes)


def _load_group(path: Path) -> KnownGroup | None:
    try:
        data = read_json(path)
    except StateError:
        return None
    if not data.get("nodes"):
        return None
    return KnownGroup(
        str(data.get("group", path.stem)),
        float(data.get("recorded_at", 0)),
        str(data.get("source", "?")),
        data["nodes"],
    )


def known_groups() -> list[KnownGroup]:
    """Every recorded group, newest first."""
    d = topology_dir()
    if not d.is_dir():
        return []
    groups = [g for p in d.glob("*.json") if (g := _load_group(p)) is not None]
    return sorted(groups, key=lambda g: -g.recorded_at)


def known_group(name: str) -> KnownGroup | None:
    return _load_group(topology_dir() / f"{safe_name(name)}.json")


def group_of(address: Address | str) -> KnownGroup | None:
    """The newest recorded group in which ``address`` was seen."""
    return group_index().get(str(address))


def group_index() -> dict[str, KnownGroup]:
    """Address -> the newest recorded group it was seen in (every file read once)."""
    out: dict[str, KnownGroup] = {}
    for g in known_groups():  # newest first: the first group naming an address wins
        for a in g.nodes:
            out.setdefault(a, g)
    return out


def group_name(topo: Topology, cluster: str | None) -> str | None:
    """The group a topology belongs to: the inventory cluster; else the recorded group
    sharing most members with it (so a group keeps its name across failovers); else its
    master's address."""
    if cluster:
        return cluster
    members = {str(n.address) for n in topo.nodes}
    best: tuple[int, float, str] | None = None
    for g in known_groups():
        overlap = len(members & set(g.nodes))
        if overlap and (best is None or (overlap, g.recorded_at) > best[:2]):
            best = (overlap, g.recorded_at, g.group)
    if best is not None:
        return best[2]
    masters = topo.masters
    if masters:
        return str(masters[0].address)
    reachable = [n for n in topo.nodes if n.reachable]
    return str(reachable[0].address) if reachable else None


def record_topology(
    topo: Topology, cluster: str | None, source: str, now: float | None = None
) -> str | None:
    """Merge what ``topo`` shows into its group's last-known topology; returns the group.

    Nodes reachable now replace their entry; unreachable ones keep the entry from when they
    were last seen. Nothing is written when no node answered. Best effort: a command never
    fails because its state directory is not writable.
    """
    t = time.time() if now is None else now
    seen = [n for n in topo.nodes if n.reachable]
    if not seen:
        return None
    try:
        name = group_name(topo, cluster)
        if name is None:
            return None

        def merge(data: dict[str, Any]) -> dict[str, Any]:
            nodes = {
                a: e for a, e in data.get("nodes", {}).items() if t - _last_heard(e) <= FORGET_AFTER
            }
            for n in seen:
                nodes[str(n.address)] = _entry(n, t)
            return {
                "version": 1,
                "group": name,
                "recorded_at": t,
                "source": source,
                "nodes": nodes,
            }

        update_json(topology_dir() / f"{safe_name(name)}.json", merge)
        return name
    except (StateError, OSError):
        return None


def _last_heard(entry: Mapping[str, Any]) -> float:
    """When a node was last seen, or else named by an operation (see :func:`note_members`)."""
    return float(entry.get("seen_at", entry.get("named_at", 0)))


def note_members(names: Iterable[str], operation: str, now: float | None = None) -> None:
    """After an operation: the nodes it named that its group's record lacks (a master it
    failed over while dead, never seen answering) join that group, as *named* (no
    ``seen_at``), so a command given only that node later still finds its group, e.g. an
    old master that comes back after the failover (see ``Session.with_last_known``)."""
    t = time.time() if now is None else now
    wanted = set(names)
    if not wanted:
        return
    best = max(known_groups(), key=lambda g: len(wanted & set(g.nodes)), default=None)
    if best is None or not wanted & set(best.nodes) or wanted <= set(best.nodes):
        return

    def add(data: dict[str, Any]) -> dict[str, Any]:
        nodes = data.setdefault("nodes", {})
        for name in sorted(wanted - set(nodes)):
            nodes[name] = {"named_at": t, "named_by": operation, "info": {}, "config": {}}
        return data

    with contextlib.suppress(StateError, OSError):
        update_json(topology_dir() / f"{safe_name(best.group)}.json", add)


def note_final_state(final_state: Iterable[Mapping[str, Any]], now: float | None = None) -> None:
    """After an operation: update the role and master of the nodes it moved in every group
    that lists them, so a detached or moved replica is no longer expected where it was."""
    t = time.time() if now is None else now
    moved = {str(r["address"]): r for r in final_state if r.get("reachable")}
    if not moved:
        return
    for g in known_groups():
        if not set(moved) & set(g.nodes):
            continue

        def patch(data: dict[str, Any]) -> dict[str, Any]:
            for addr, row in moved.items():
                entry = data.get("nodes", {}).get(addr)
                if entry is None:
                    continue
                info = entry.setdefault("info", {})
                info["role"] = "slave" if row.get("role") == "replica" else row.get("role")
                master = row.get("master")
                if master:
                    m = Address.parse(str(master))
                    info["master_host"], info["master_port"] = m.host, str(m.port)
                else:
                    info.pop("master_host", None)
                    info.pop("master_port", None)
                entry["seen_at"] = t
            return data

        with contextlib.suppress(StateError, OSError):
            update_json(topology_dir() / f"{safe_name(g.group)}.json", patch)
