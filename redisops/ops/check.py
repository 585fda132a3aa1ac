"""``check``: the health-check catalogue over a live cluster (the ``redisops check``
command and the playbook ``check`` action call :func:`run_check`).

Reading is the session's; judging is :mod:`redisops.checks.health` (pure); this module
joins them with the state file (counter baselines between runs), the markers operations
leave (an attach's expected full sync pages nobody), the last-known topology, host facts
and the backup catalogue when present.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from redisops.checks.health import BackupLookup
    from redisops.checks.result import Report
    from redisops.hostfacts import HostFacts
    from redisops.model import Topology
    from redisops.session import Session


@dataclass(frozen=True)
class CheckRequest:
    """What a check run takes besides the cluster (defaults: the command's)."""

    warn: tuple[str, ...] = ()  # ID=RANGE, Nagios syntax
    crit: tuple[str, ...] = ()
    expect_replicas: int | None = None
    state_file: Path | None = None
    interval: float = 60.0
    only: tuple[str, ...] = ()
    host_facts: bool = False
    sample: float = 0.0  # seconds: probe again when a node has no write-rate baseline
    record: bool = True  # write the state file and the last-known topology


def run_check(
    session: Session, req: CheckRequest, *, now: float, topo: Topology | None = None
) -> Report:
    """The catalogue over the session's cluster (``topo``: already read, e.g. a dry run's
    predicted topology); thresholds and expectations from the request, then the inventory."""
    from redisops.checks.health import CATALOGUE
    from redisops.checks.ranges import Thresholds

    cluster_cfg = session.cluster
    settings = cluster_cfg.checks if cluster_cfg is not None else None
    thresholds = Thresholds.parse(
        [*(f"{k}={v}" for k, v in (settings.warn if settings else {}).items()), *req.warn],
        [*(f"{k}={v}" for k, v in (settings.crit if settings else {}).items()), *req.crit],
        known=CATALOGUE,
    )
    expect = req.expect_replicas
    if expect is None and settings is not None:
        expect = settings.expect_replicas
    if topo is None:
        topo = session.with_last_known(session.discover())
    earlier: dict[str, dict[str, Any]] = {}
    if req.sample > 0:
        path = req.state_file or state_path(session, topo)
        topo, earlier, now = sample_again(session, topo, req.sample, path, req.interval, now)
    ssh = any(session.ssh_settings(n.address) is not None for n in topo.nodes)
    facts = read_host_facts(session, topo) if (req.host_facts or ssh) else None
    return evaluate(
        session,
        topo,
        thresholds,
        expect,
        req.state_file,
        req.interval,
        list(req.only),
        now,
        facts,
        earlier,
        record=req.record,
    )


def evaluate(
    session: Session,
    topo: Any,
    thresholds: Any,
    expect_replicas: int | None,
    state_file: Path | None,
    interval: float,
    only: list[str],
    now: float,
    host_facts: Mapping[str, HostFacts | None] | None = None,
    earlier: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    record: bool = True,
) -> Report:
    """Run the catalogue over ``topo`` with the state file, markers and last-known topology,
    then record the topology and the new state (``record=False``: write nothing).
    ``earlier``: samples taken this run (see :func:`sample_again`), used instead of the
    state file's for those nodes."""
    from redisops import state
    from redisops.checks.health import CheckInput, run_checks

    cluster_name, group, cluster = names(session, topo)
    known = state.known_group(group) if group else None
    masters = {str(n.address) for n in topo.masters}
    known_replicas = {
        a: t
        for a, t in (known.replicas() if known else {}).items()
        if a not in masters and now - t <= state.KNOWN_MAX_AGE
    }
    markers = state.load_markers(now)
    backup_lookup = newest_verified_backup_source()
    backup = backup_lookup(cluster) if backup_lookup is not None else None
    inventory = (
        tuple(s.address for s in session.cluster.nodes) if session.cluster is not None else ()
    )
    path = state_file or state.check_state_path(cluster)
    holder: dict[str, Report] = {}

    def change(data: dict[str, Any]) -> dict[str, Any]:
        inp = CheckInput(
            cluster=cluster,
            topology=topo,
            now=now,
            thresholds=thresholds,
            inventory=inventory,
            expect_replicas=expect_replicas,
            known_replicas=known_replicas,
            previous={**data.get("nodes", {}), **(earlier or {})},
            markers=markers,
            consumed=frozenset(data.get("consumed", [])),
            interval=interval,
            host_facts=host_facts,
            backup=backup,
            backup_catalogue=backup_lookup is not None,
        )
        report, new = run_checks(inp, only)
        holder["report"] = report
        return {"version": 1, "cluster": cluster, **new}

    if not record:  # a dry run: read the baselines, write nothing
        change(state.read_json(path))
        return holder["report"]
    state.update_json(path, change)
    state.record_topology(topo, cluster_name or group, "check", now)
    return holder["report"]


def names(session: Session, topo: Any) -> tuple[str | None, str | None, str]:
    """(inventory cluster name, replication group name, the name the state file is under)."""
    from redisops import state

    cluster_name = session.cluster.name if session.cluster is not None else None
    group = state.group_name(topo, cluster_name)
    return cluster_name, group, cluster_name or group or session.cluster_name


def state_path(session: Session, topo: Any) -> Path:
    """The check's state file for this group (see :func:`redisops.state.check_state_path`)."""
    from redisops import state

    return state.check_state_path(names(session, topo)[2])


def sample_again(
    session: Session,
    topo: Any,
    seconds: float,
    path: Path,
    interval: float,
    first: float,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Any, dict[str, dict[str, Any]], float]:
    """checks-and-drift.md §2.1: a node with a backlog and no usable baseline in the state
    file (a first run) has no write rate; sample it now (taken at ``first``), probe the
    group again ``seconds`` later, and return (the new topology, the first samples, when the
    second probe started). Nothing to do when every node has a baseline."""
    from redisops import state
    from redisops.checks.counters import sample_of, without_rate

    previous = state.read_json(path).get("nodes", {})
    lacking = without_rate(previous, topo.nodes, first, 3 * interval)
    if not lacking:
        return topo, {}, first
    earlier = {str(n.address): sample_of(n, first) for n in lacking}
    sleep(seconds)
    again = time.time()
    return session.with_last_known(session.discover()), earlier, again


def read_host_facts(session: Session, topo: Any) -> dict[str, HostFacts | None]:
    """``{address: facts}`` for every reachable node, gathered by
    :func:`redisops.ops.hostfacts.host_facts` (this machine directly, others over SSH). A
    host that cannot be read (a refused host key included) gives facts whose ``errors`` say
    why, and the check says UNKNOWN for its nodes."""
    from redisops.errors import RedisopsError
    from redisops.hostfacts import HostFacts
    from redisops.ops.hostfacts import host_facts

    nodes = [n.address for n in topo.nodes if n.reachable]
    try:
        found = host_facts(session, nodes)
    except RedisopsError as exc:  # a host key refused: no host of the run is read
        return {str(a): HostFacts(str(a), "unreachable", errors=(f"host: {exc}",)) for a in nodes}
    return {str(a): facts for a, facts in found.items()}


def newest_verified_backup_source() -> BackupLookup | None:
    """``group -> (time, has a verified off-host copy) | None`` from the backup catalogue at
    ``$REDISOPS_BACKUP_DEST`` (docs/backup.md); None when no destination is configured (the
    check then uses ``rdb_last_save_time``)."""
    import os

    dest = os.environ.get("REDISOPS_BACKUP_DEST")
    if not dest:
        return None
    from redisops.backup.catalogue import newest_verified_backup

    def lookup(group: str) -> tuple[float, bool] | None:
        record = newest_verified_backup(dest, group)
        return None if record is None else (record.taken_at, record.offhost_copy)

    return lookup
