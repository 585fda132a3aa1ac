"""The health-check catalogue (checks-and-drift.md §2): pure functions over one snapshot.

:func:`run_checks` takes a :class:`CheckInput` (the discovered topology, the previous
run's samples from the state file, the markers operations left, thresholds, and what
else is known: inventory, last-known replicas, host facts, newest backup) and returns the
:class:`~redisops.checks.result.Report` plus the state to store for the next run. No I/O.

Each check has an id, a value, warn/crit ranges (defaults from the doc or derived from the
node's own configuration; ``--warn ID=RANGE`` / ``--crit ID=RANGE`` override them) and a
message that says what to do.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redisops.checks.counters import Delta, compare, next_sample, sample_of
from redisops.checks.ranges import NO_THRESHOLDS, Range, Thresholds
from redisops.checks.result import CheckResult, Report, Sample, Status, judge
from redisops.hostfacts import HostFacts
from redisops.info import as_int
from redisops.model import Address, NodeInfo, Topology
from redisops.topology import fence_records

#: ``newest_verified_backup(group) -> (unix time, has a verified off-host copy) | None``:
#: what the backup catalogue (issue 13) provides; None while no backup exists.
BackupLookup = Callable[[str], "tuple[float, bool] | None"]

DAY = 86400.0
#: How long an operation's "expected full sync" marker explains a resync.
MARKER_SLACK = 5.0


@dataclass(frozen=True)
class CheckInput:
    cluster: str
    topology: Topology
    now: float
    thresholds: Thresholds = NO_THRESHOLDS
    #: nodes the inventory lists for the cluster (its replicas are expected)
    inventory: tuple[Address, ...] = ()
    expect_replicas: int | None = None
    #: replicas of this group in the last-known topology, seen recently enough to be
    #: expected back (``redisops.state.KNOWN_MAX_AGE``): address -> last seen (unix time)
    known_replicas: Mapping[str, float] = field(default_factory=dict)
    #: the previous run's per-node samples (state file), keyed by address
    previous: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: "expected full sync" markers left by operations (see redisops.state)
    markers: Sequence[Mapping[str, Any]] = ()
    consumed: frozenset[str] = frozenset()
    interval: float = 60.0
    #: None: not read (no SSH configured, no ``--host-facts``); else the facts of each
    #: node's host (:func:`redisops.ops.hostfacts.host_facts`) per address (missing: not read)
    host_facts: Mapping[str, HostFacts | None] | None = None
    backup: tuple[float, bool] | None = None
    backup_catalogue: bool = False


@dataclass
class _Run:
    """One evaluation: the input plus what checks derive and share."""

    inp: CheckInput
    deltas: dict[str, Delta] = field(default_factory=dict)
    samples: dict[str, dict[str, Any]] = field(default_factory=dict)
    streaks: dict[str, int] = field(default_factory=dict)
    consumed: set[str] = field(default_factory=set)

    @property
    def topo(self) -> Topology:
        return self.inp.topology

    def result(
        self,
        cid: str,
        node: NodeInfo | str | None,
        message: str,
        value: float | None = None,
        *,
        uom: str = "",
        warn: Range | None = None,
        crit: Range | None = None,
        status: Status | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> CheckResult:
        """A result whose status comes from the effective ranges (or is given)."""
        warn, crit = self.inp.thresholds.pick(cid, warn, crit)
        if status is None:
            status = judge(value, warn, crit) if value is not None else Status.OK
        name = str(node.address) if isinstance(node, NodeInfo) else node
        return CheckResult(cid, name, status, message, value, uom, warn, crit, dict(fields or {}))

    def markers_for(
        self, *, master: str | None = None, replica: str | None = None
    ) -> list[Mapping[str, Any]]:
        out = []
        for m in self.inp.markers:
            if master is not None and m.get("master") != master:
                continue
            if replica is not None and m.get("replica") != replica:
                continue
            if float(m.get("until", 0)) < self.inp.now:
                continue
            out.append(m)
        return out


def cfg_int(node: NodeInfo, key: str, default: int) -> int:
    value = as_int(node.config.get(key))
    return default if value is None else value


def _reachable(run: _Run) -> list[NodeInfo]:
    return [n for n in run.topo.nodes if n.reachable]


def _replicas(run: _Run) -> list[NodeInfo]:
    return [n for n in run.topo.nodes if n.reachable and n.is_replica]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# ----------------------------------------------------------------------------- topology


def check_reachable(run: _Run) -> Iterable[CheckResult]:
    for node in run.topo.nodes:
        if node.reachable:
            rtt = (node.rtt_ms or 0.0) / 1000.0
            yield run.result(
                "reachable", node, f"answers ({node.role}, {rtt * 1000:.1f} ms)", rtt, uom="s"
            )
        else:
            yield run.result(
                "reachable",
                node,
                f"{node.address} does not answer: {node.error}; check the process, the host and "
                f"the network (an unreachable Redis is critical)",
                status=Status.CRITICAL,
            )


def check_masters(run: _Run) -> Iterable[CheckResult]:
    masters = [n for n in _reachable(run) if n.is_master]
    names = ", ".join(str(m.address) for m in masters)
    if len(masters) == 1:
        msg = f"one master: {names}"
    elif not masters:
        msg = _no_master_message(run)
    else:
        msg = (
            f"{len(masters)} masters ({names}): split brain; fence the stale one with "
            f"'redisops fence OLD --to NEW'"
        )
    yield run.result(
        "topology.masters",
        None,
        msg,
        len(masters),
        crit=Range(1, 1),
        fields={"masters": [str(m.address) for m in masters]},
    )


def _no_master_message(run: _Run) -> str:
    """What to do with no reachable master: fail over when a replica exists to promote
    (naming the dead master when its replicas agree on it), else bring the node back."""
    replicas = [n for n in _reachable(run) if n.is_replica]
    if not replicas and not run.inp.known_replicas:
        return (
            "no reachable master and no replica to promote: writes fail; bring the master back "
            "(its process, host, network): there is nothing to fail over to"
        )
    dead = {str(run.topo.canonical(n.master_address)) for n in replicas if n.master_address}
    name = dead.pop() if len(dead) == 1 else "DEAD"
    return f"no reachable master: writes fail; run 'redisops failover --master {name} --auto'"


def _good(run: _Run, node: NodeInfo) -> bool:
    return node.is_replica and node.link == "up" and run.topo.root(node) is not None


def check_replicas(run: _Run) -> Iterable[CheckResult]:
    topo, inp = run.topo, run.inp
    replicas = _replicas(run)
    good = [n for n in replicas if _good(run, n)]
    good_names = {str(n.address) for n in good}
    inventory = [topo.canonical(a) for a in inp.inventory]
    expected: int | None
    missing: list[str] = []
    if inp.expect_replicas is not None:
        expected, source = inp.expect_replicas, "--expect-replicas"
    elif len(inventory) > 1:
        expected, source = len(inventory) - 1, "the inventory"
        masters = {n.address for n in topo.masters}
        missing = [
            _why_missing(topo, str(a), None)
            for a in inventory
            if str(a) not in good_names and a not in masters
        ]
    else:
        recent = dict(inp.known_replicas)
        if recent:
            known = set(recent) | good_names
            expected, source = len(known), "the last-known topology"
            missing = [
                _why_missing(topo, a, inp.now - recent[a])
                for a in sorted(recent)
                if a not in good_names
            ]
        else:
            expected, source = None, ""
    wrong: list[str] = []
    group = {n.address for n in topo.nodes}
    for n in replicas:
        m = n.master_address
        if m is not None and topo.canonical(m) not in group:
            wrong.append(f"{n.address} follows {m}, which is not in the group")
        elif inventory and m is not None and topo.canonical(m) not in inventory:
            wrong.append(f"{n.address} follows {m}, which the inventory does not list")
    crit = Range.below(expected) if expected is not None else None
    warn = (
        Range(0, expected) if expected is not None and source != "the last-known topology" else None
    )
    if expected is None:
        msg = f"{_plural(len(good), 'replica')} in sync links (no expectation: give --expect-replicas or an inventory)"
    else:
        msg = f"{len(good)} of {expected} expected replicas connected (expected from {source})"
    if missing:
        msg += "; missing: " + ", ".join(missing)
    fields: dict[str, Any] = {
        "connected": sorted(good_names),
        "expected": expected,
        "source": source,
    }
    result = run.result(
        "topology.replicas", None, msg, len(good), warn=warn, crit=crit, fields=fields
    )
    if result.status is Status.WARNING and expected is not None and len(good) > expected:
        result = run.result(
            "topology.replicas",
            None,
            msg + f"; more than the {expected} expected: update the inventory or --expect-replicas",
            len(good),
            warn=warn,
            crit=crit,
            fields=fields,
        )
    if wrong:
        result = run.result(
            "topology.replicas",
            None,
            result.message + "; " + "; ".join(wrong),
            len(good),
            warn=warn,
            crit=crit,
            status=Status.CRITICAL,
            fields=fields,
        )
    yield result


def _why_missing(topo: Topology, address: str, age: float | None) -> str:
    node = topo.get(Address.parse(address))
    if node is None:
        why = "not found"
    elif not node.reachable:
        why = "does not answer"
    elif node.is_master:
        why = "runs as a master"
    elif node.link != "up":
        why = f"link to {node.master_address} down"
    else:
        why = f"its master {node.master_address} is not in sync with the group"
    seen = f", last seen {age:.0f}s ago" if age is not None else ""
    return f"{address} ({why}{seen})"


def check_fenced(run: _Run) -> Iterable[CheckResult]:
    """An old master a failover fenced, running as a master again (returned unfenced)."""
    bad = []
    for record in fence_records(run.topo):
        try:
            addr = Address.parse(str(record.get("address")))
        except Exception:
            continue
        node = run.topo.get(addr)
        if node is not None and node.reachable and node.is_master:
            new = record.get("new_master")
            bad.append(
                f"{node.address} (failed over to {new}): run 'redisops fence {node.address} --to {new}'"
            )
    if bad:
        yield run.result(
            "topology.fenced_master",
            None,
            "an old master came back as a master: " + "; ".join(bad),
            len(bad),
            status=Status.CRITICAL,
        )
    else:
        yield run.result("topology.fenced_master", None, "no fenced old master runs as a master", 0)


# ----------------------------------------------------------------------------- replication


def _expected_sync(run: _Run, node: NodeInfo) -> Mapping[str, Any] | None:
    found = run.markers_for(replica=str(node.address))
    return found[-1] if found else None


def check_link(run: _Run) -> Iterable[CheckResult]:
    for n in _replicas(run):
        down = n.link_down_seconds
        if n.link == "up":
            yield run.result("repl.link", n, f"link to {n.master_address} up", 0, uom="s")
            continue
        since = "never connected" if down is None or down < 0 else f"down for {down}s"
        marker = _expected_sync(run, n)
        if marker is not None and (
            n.sync_in_progress
            or n.loading
            or n.repl_state in ("handshake", "sync", "connecting", "connect")
        ):
            yield run.result(
                "repl.link",
                n,
                f"link to {n.master_address} {since}: the full sync {marker.get('op', 'an operation')} started is expected",
                max(down or 0, 0),
                uom="s",
                status=Status.OK,
            )
            continue
        yield run.result(
            "repl.link",
            n,
            f"link to {n.master_address} is down ({since}, state {n.repl_state or '?'}): see its log and "
            f"'redisops status {n.address}'",
            max(down, 0) if down is not None else None,
            uom="s",
            status=Status.CRITICAL,
            fields={"master_link_down_since_seconds": down, "state": n.repl_state},
        )


def check_last_io(run: _Run) -> Iterable[CheckResult]:
    for n in _replicas(run):
        if n.link != "up" or n.last_io_seconds is None:
            continue
        period = cfg_int(n, "repl-ping-replica-period", 10)
        yield run.result(
            "repl.last_io",
            n,
            f"last I/O from the master {n.last_io_seconds}s ago (it pings every {period}s)",
            n.last_io_seconds,
            uom="s",
            warn=Range(0, 30),
            crit=Range(0, 60),
        )


def _master_config(run: _Run, node: NodeInfo) -> NodeInfo:
    parent = run.topo.parent(node)
    return parent if parent is not None and parent.reachable else node


def check_lag_seconds(run: _Run) -> Iterable[CheckResult]:
    for n in _replicas(run):
        lag: int | None
        if n.link == "up":
            lag = run.topo.lag_seconds(n)
            how = "since its last ACK, as its master sees it"
        else:
            parts = [
                v for v in (n.link_down_seconds, n.last_io_seconds) if v is not None and v >= 0
            ]
            lag = max(parts) if parts else None
            how = "link down: since the link went down"
        if lag is None:
            continue
        max_lag = cfg_int(_master_config(run, n), "min-replicas-max-lag", 10)
        timeout = cfg_int(n, "repl-timeout", 60)
        crit_end = max(math.ceil(timeout / 2) - 1, 0)
        yield run.result(
            "repl.lag_seconds",
            n,
            f"{lag}s behind ({how})",
            lag,
            uom="s",
            warn=Range(0, max_lag),
            crit=Range(0, crit_end),
        )


def check_lag_bytes(run: _Run) -> Iterable[CheckResult]:
    for n in _replicas(run):
        lag = run.topo.lag_bytes(n)
        if lag is None:
            continue
        top = run.topo.root(n)
        assert top is not None
        backlog = cfg_int(top, "repl-backlog-size", top.backlog_size or 1024 * 1024)
        yield run.result(
            "repl.lag_bytes",
            n,
            f"{lag} bytes behind {top.address} (backlog {backlog} bytes: past it a reconnect "
            f"cannot be partial)",
            lag,
            uom="B",
            warn=Range(0, backlog * 0.5),
            crit=Range(0, backlog * 0.9),
        )


def check_backlog_coverage(run: _Run) -> Iterable[CheckResult]:
    for n in _reachable(run):
        if not n.backlog_active:
            if n.is_master:
                yield run.result("repl.backlog_coverage", n, "no backlog (no replicas)")
            continue
        size = n.backlog_size
        timeout = cfg_int(n, "repl-timeout", 60)
        warn, crit = Range.below(timeout + 60), Range.below(timeout)
        delta = run.deltas.get(str(n.address))
        peak = delta.peak_rate if delta is not None else None
        if peak is None:
            yield run.result(
                "repl.backlog_coverage",
                n,
                "no write rate yet (the next run measures it against this baseline)",
                warn=warn,
                crit=crit,
            )
            continue
        if peak <= 0:
            yield run.result(
                "repl.backlog_coverage",
                n,
                "no writes: any disconnection resyncs partially",
                warn=warn,
                crit=crit,
            )
            continue
        coverage = size / peak
        msg = (
            f"backlog {size} bytes covers {coverage:.0f}s at the peak write rate "
            f"{peak:.0f} B/s: a replica disconnected longer needs a full resync"
        )
        worst: tuple[float, str] | None = None
        for entry in n.replicas:
            lag = max(n.offset - entry.offset, 0)
            left = max(size - lag, 0) / peak
            if worst is None or left < worst[0]:
                worst = (left, f"{entry.ip}:{entry.port}")
        if worst is not None:
            msg += f"; {worst[1]} can stay disconnected {worst[0]:.0f}s more"
        yield run.result(
            "repl.backlog_coverage",
            n,
            msg,
            round(coverage, 3),
            uom="s",
            warn=warn,
            crit=crit,
            fields={"repl_backlog_size": size, "peak_rate": peak, "repl_timeout": timeout},
        )


def check_resync_loop(run: _Run) -> Iterable[CheckResult]:
    for n in _reachable(run):
        name = str(n.address)
        delta = run.deltas.get(name)
        prev_streak = int(run.inp.previous.get(name, {}).get("resync_streak", 0) or 0)
        serving = bool(n.replicas) or n.is_master
        if delta is None or delta.baseline is not None:
            run.streaks[name] = prev_streak if delta is not None and delta.stale else 0
            if serving:
                why = delta.baseline if delta is not None else "no sample"
                yield run.result(
                    "repl.resync_loop",
                    n,
                    f"counters: {why}",
                    fields={"sync_full": n.stat("sync_full")},
                )
            continue
        full, err = delta.get("sync_full"), delta.get("sync_partial_err")
        if not serving and not full and not err:
            run.streaks[name] = 0
            continue
        t0 = run.inp.now - delta.seconds - MARKER_SLACK
        usable = [
            m
            for m in run.markers_for(master=name)
            if str(m.get("id")) not in run.inp.consumed and float(m.get("at", 0)) >= t0
        ]
        explained = min(len(usable), max(full, err))
        for m in usable[:explained]:
            run.consumed.add(str(m.get("id")))
        loose = max(full - explained, 0) + max(err - explained, 0)
        streak = prev_streak + 1 if loose else 0
        run.streaks[name] = streak
        note = " (master_replid changed: a failover happened)" if delta.failover else ""
        msg = (
            f"{full} full resync(s) and {err} denied partial resync(s) in the last "
            f"{delta.seconds:.0f}s, {explained} expected by an operation{note}"
        )
        status: Status | None = None
        if loose:
            msg += (
                f"; unexplained ones in {streak} consecutive run(s): a replica keeps full-syncing "
                f"(backlog too small for its outages, or the output-buffer limit drops it: see "
                f"repl.backlog_coverage, repl.output_buffer and the master's log)"
            )
            if streak >= 2:
                status = Status.CRITICAL
        yield run.result(
            "repl.resync_loop",
            n,
            msg,
            loose,
            warn=Range.above(0),
            status=status,
            fields={
                "sync_full_delta": full,
                "sync_partial_err_delta": err,
                "explained": explained,
                "streak": streak,
            },
        )


def check_sync_in_progress(run: _Run) -> Iterable[CheckResult]:
    for n in _replicas(run):
        if not (n.sync_in_progress or n.loading):
            yield run.result("repl.sync_in_progress", n, "not syncing", 0, uom="B")
            continue
        left = as_int(n.info.get("master_sync_left_bytes"), 0) or 0
        what = "loading its dataset" if n.loading else f"full sync in progress, {left} bytes left"
        marker = _expected_sync(run, n)
        if marker is not None:
            yield run.result(
                "repl.sync_in_progress",
                n,
                f"{what}: expected ({marker.get('op', 'an operation')})",
                max(left, 0),
                uom="B",
                status=Status.OK,
            )
        else:
            yield run.result(
                "repl.sync_in_progress",
                n,
                f"{what}: the replica serves stale or no data until it ends",
                max(left, 0),
                uom="B",
                status=Status.WARNING,
            )


def _obl_hard(node: NodeInfo) -> int | None:
    from redisops.engine.config import parse_obl

    try:
        return parse_obl(node.config.get("client-output-buffer-limit", ""))["slave"][0]
    except (ValueError, KeyError):
        return None


def check_output_buffer(run: _Run) -> Iterable[CheckResult]:
    for n in _reachable(run):
        hard = _obl_hard(n)
        if hard is None:
            continue
        backlog = cfg_int(n, "repl-backlog-size", n.backlog_size or 1024 * 1024)
        status: Status | None = None
        msg = f"replica output-buffer hard limit {hard or 'unlimited'} (backlog {backlog})"
        if hard and hard < backlog:
            if n.server is not None and n.server.obuf_hard_limit_at_least_backlog:
                status = Status.WARNING
                msg += (
                    ": below the backlog; Redis 7 uses the backlog size instead, set it explicitly"
                )
            else:
                status = Status.CRITICAL
                msg += ": below the backlog, a replica is dropped before the backlog can serve it (resync loop)"
        delta = run.deltas.get(str(n.address))
        drops = (
            delta.get("client_output_buffer_limit_disconnections")
            if delta and delta.baseline is None
            else 0
        )
        if drops:
            status = Status.WARNING if status is None else status
            msg += f"; {drops} client(s) dropped for output-buffer limits since the last run"
        yield run.result(
            "repl.output_buffer",
            n,
            msg,
            hard,
            uom="B",
            status=status,
            fields={
                "client-output-buffer-limit": n.config.get("client-output-buffer-limit"),
                "repl-backlog-size": backlog,
            },
        )


def check_min_replicas(run: _Run) -> Iterable[CheckResult]:
    for n in _reachable(run):
        if not n.is_master:
            continue
        need = cfg_int(n, "min-replicas-to-write", 0)
        good = as_int(n.info.get("min_slaves_good_slaves"))
        if need <= 0:
            yield run.result(
                "repl.min_replicas", n, "min-replicas-to-write 0: writes never wait for replicas"
            )
            continue
        if good is None:
            good = sum(
                1
                for e in n.replicas
                if e.state == "online" and e.lag <= cfg_int(n, "min-replicas-max-lag", 10)
            )
        msg = f"{good} good replica(s), min-replicas-to-write {need}"
        if good < need:
            msg += ": the master refuses writes (NOREPLICAS)"
        yield run.result("repl.min_replicas", n, msg, good, crit=Range.below(need))


def check_writable_replica(run: _Run) -> Iterable[CheckResult]:
    for n in _replicas(run):
        ro = n.read_only
        if ro is False:
            yield run.result(
                "repl.writable_replica",
                n,
                "replica-read-only no: writes made here diverge and vanish at the next full sync",
                0,
                status=Status.WARNING,
            )
        else:
            yield run.result("repl.writable_replica", n, "read-only", 1)


def check_repl_timeout(run: _Run) -> Iterable[CheckResult]:
    for n in _reachable(run):
        if "repl-timeout" not in n.config:
            continue
        timeout = cfg_int(n, "repl-timeout", 60)
        period = cfg_int(n, "repl-ping-replica-period", 10)
        if timeout <= period:
            frozen = (
                " (the ping period looks frozen by an interrupted switchover)"
                if period >= 2**31 - 1
                else ""
            )
            msg = (
                f"repl-timeout {timeout}s <= repl-ping-replica-period {period}s{frozen}: idle links "
                f"time out; set repl-timeout above the ping period"
            )
            status = Status.CRITICAL
        else:
            msg, status = f"repl-timeout {timeout}s > ping period {period}s", Status.OK
        yield run.result("config.repl_timeout", n, msg, timeout, uom="s", status=status)


# ----------------------------------------------------------------------------- persistence


def check_bgsave(run: _Run) -> Iterable[CheckResult]:
    for n in _reachable(run):
        status_text = n.info.get("rdb_last_bgsave_status")
        if status_text is None:
            continue
        if status_text == "ok":
            yield run.result("persist.bgsave", n, "last BGSAVE ok", 0)
            continue
        stop = n.config.get("stop-writes-on-bgsave-error", "yes") == "yes"
        saves = bool(n.config.get("save", "").strip())
        if stop and saves:
            msg = (
                "last BGSAVE failed and stop-writes-on-bgsave-error is on: writes fail with MISCONF; "
                "fix the cause (disk space, permissions of dir, fork) in the Redis log"
            )
            status = Status.CRITICAL
        else:
            msg = "last BGSAVE failed: no fresh snapshot on disk; see the Redis log (disk space, dir, fork)"
            status = Status.WARNING
        yield run.result("persist.bgsave", n, msg, 1, status=status)


def check_aof(run: _Run) -> Iterable[CheckResult]:
    for n in _reachable(run):
        if n.info.get("aof_enabled") != "1":
            if "aof_enabled" in n.info:
                yield run.result("persist.aof", n, "AOF off")
            continue
        if n.info.get("aof_last_write_status") == "err":
            yield run.result(
                "persist.aof",
                n,
                "AOF write failed: Redis refuses writes until it can append again (disk?)",
                1,
                status=Status.CRITICAL,
            )
            continue
        problems = []
        if n.info.get("aof_last_bgrewrite_status") == "err":
            problems.append("the last AOF rewrite failed")
        delta = run.deltas.get(str(n.address))
        grew = delta.get("aof_delayed_fsync") if delta is not None and delta.baseline is None else 0
        if grew:
            problems.append(f"{grew} delayed fsync(s) since the last run (slow disk)")
        if problems:
            yield run.result("persist.aof", n, "; ".join(problems), 1, status=Status.WARNING)
        else:
            yield run.result("persist.aof", n, "AOF ok", 0)


def check_backup_age(run: _Run) -> Iterable[CheckResult]:
    inp = run.inp
    warn, crit = Range(0, DAY), Range(0, 2 * DAY)
    if inp.backup is not None:
        when, offhost = inp.backup
        age = max(inp.now - when, 0.0)
        msg = f"newest verified backup {age / 3600:.1f}h old"
        status = None
        if not offhost:
            msg += "; it has no verified off-host copy"
            if judge(age, warn, crit) is Status.OK:
                status = Status.WARNING
        yield run.result(
            "persist.backup_age",
            None,
            msg,
            round(age, 1),
            uom="s",
            warn=warn,
            crit=crit,
            status=status,
        )
        return
    saves = [
        (n.stat("rdb_last_save_time"), n) for n in _reachable(run) if n.stat("rdb_last_save_time")
    ]
    if not saves:
        return
    when, node = max(saves, key=lambda p: p[0])
    age = max(inp.now - when, 0.0)
    if inp.backup_catalogue:  # backups are expected and none verified: the alarm the seeds ask for
        yield run.result(
            "persist.backup_age",
            None,
            f"no verified backup of {inp.cluster} in the backup catalogue "
            f"($REDISOPS_BACKUP_DEST); the newest RDB save, {age / 3600:.1f}h ago on "
            f"{node.address}, never left the host",
            round(age, 1),
            uom="s",
            warn=warn,
            crit=crit,
            status=Status.CRITICAL,
            fields={"node": str(node.address)},
        )
        return
    yield run.result(
        "persist.backup_age",
        None,
        f"newest RDB save {age / 3600:.1f}h ago on {node.address} (rdb_last_save_time; no "
        f"backup catalogue: replication snapshots count too, and it never left the host)",
        round(age, 1),
        uom="s",
        warn=warn,
        crit=crit,
        fields={"node": str(node.address)},
    )


def check_unsafe_master(run: _Run) -> Iterable[CheckResult]:
    for n in _reachable(run):
        if not n.is_master or "save" not in n.config:
            continue
        no_rdb = not n.config.get("save", "").strip()
        no_aof = n.config.get("appendonly", "no") == "no"
        replicas = as_int(n.info.get("connected_slaves"), 0) or 0
        if no_rdb and no_aof and replicas > 0:
            yield run.result(
                "hazard.unsafe_master",
                n,
                f'master without persistence (save "", appendonly no) with {_plural(replicas, "replica")}: '
                f"if it restarts (auto-restart) it comes back empty and every replica copies the empty "
                f"dataset; enable persistence on it, or never restart it automatically",
                1,
                status=Status.CRITICAL,
            )
        else:
            yield run.result("hazard.unsafe_master", n, "persistence on, or no replicas", 0)


# ----------------------------------------------------------------------------- memory, host


def check_memory(run: _Run) -> Iterable[CheckResult]:
    for n in _reachable(run):
        used = n.used_memory
        limit = n.maxmemory or n.stat("total_system_memory")
        if not used or not limit:
            continue
        pct = 100.0 * used / limit
        of = "maxmemory" if n.maxmemory else "host RAM (no maxmemory)"
        yield run.result(
            "mem.used",
            n,
            f"used_memory {used} bytes = {pct:.1f}% of {of}",
            round(pct, 2),
            uom="%",
            warn=Range(0, 90),
        )


def check_fork_headroom(run: _Run) -> Iterable[CheckResult]:
    for n in _reachable(run):
        ram = n.stat("total_system_memory")
        if not ram:
            continue
        basis = n.maxmemory or n.stat("used_memory_rss")
        pct = 100.0 * basis / ram
        what = "maxmemory" if n.maxmemory else "used_memory_rss (no maxmemory)"
        msg = f"{what} is {pct:.1f}% of host RAM"
        cow = n.stat("rdb_last_cow_size")
        if cow:
            msg += f"; last fork copied {cow} bytes on write"
        fork = n.stat("latest_fork_usec")
        if fork:
            msg += f"; last fork took {fork / 1000:.1f} ms"
        yield run.result(
            "mem.fork_headroom",
            n,
            msg + " (a fork can need up to 2x under writes)",
            round(pct, 2),
            uom="%",
            warn=Range(0, 75),
            crit=Range(0, 90),
        )


def check_host_kernel(run: _Run) -> Iterable[CheckResult]:
    facts = run.inp.host_facts
    if facts is None:
        yield run.result("host.kernel", None, "not checked (no SSH configured)")
        return
    for n in _reachable(run):
        mine = facts.get(str(n.address))
        if mine is None or (mine.overcommit_memory is None and mine.thp_enabled is None):
            why = f": {mine.errors[0]}" if mine is not None and mine.errors else ""
            yield run.result(
                "host.kernel",
                n,
                f"not checked (host facts could not be read{why})",
                status=Status.UNKNOWN,
            )
            continue
        problems = []
        overcommit = mine.overcommit_memory
        if overcommit is not None and overcommit != 1:
            problems.append(
                f"vm.overcommit_memory = {overcommit} (not 1): a fork for BGSAVE or a full sync can fail"
            )
        if mine.thp_enabled == "always" and n.config.get("disable-thp", "yes") == "no":
            problems.append(
                "transparent huge pages [always] with disable-thp no: latency spikes and memory bloat after fork"
            )
        if problems:
            yield run.result(
                "host.kernel", n, "; ".join(problems), len(problems), status=Status.WARNING
            )
        else:
            yield run.result("host.kernel", n, "overcommit_memory 1; THP not forced on", 0)


#: id -> (check, what it looks at). The order is the order of the output.
CATALOGUE: dict[str, tuple[Callable[[_Run], Iterable[CheckResult]], str]] = {
    "reachable": (check_reachable, "PING round trip; connect/AUTH failure is critical"),
    "topology.masters": (check_masters, "exactly one master among the nodes"),
    "topology.replicas": (
        check_replicas,
        "replicas connected vs expected (--expect-replicas, inventory, last-known)",
    ),
    "topology.fenced_master": (
        check_fenced,
        "an old master fenced by a failover runs as a master again",
    ),
    "repl.link": (check_link, "master_link_status, master_link_down_since_seconds"),
    "repl.last_io": (check_last_io, "master_last_io_seconds_ago"),
    "repl.lag_seconds": (check_lag_seconds, "seconds since the replica's last ACK (or link down)"),
    "repl.lag_bytes": (check_lag_bytes, "master offset minus replica offset, vs the backlog"),
    "repl.backlog_coverage": (
        check_backlog_coverage,
        "seconds a replica may be disconnected and still resync partially",
    ),
    "repl.resync_loop": (
        check_resync_loop,
        "unexplained sync_full / sync_partial_err between runs",
    ),
    "repl.sync_in_progress": (check_sync_in_progress, "master_sync_in_progress, loading"),
    "repl.output_buffer": (
        check_output_buffer,
        "replica client-output-buffer-limit vs repl-backlog-size",
    ),
    "repl.min_replicas": (check_min_replicas, "min_slaves_good_slaves vs min-replicas-to-write"),
    "repl.writable_replica": (check_writable_replica, "replica-read-only"),
    "config.repl_timeout": (check_repl_timeout, "repl-timeout vs repl-ping-replica-period"),
    "persist.bgsave": (check_bgsave, "rdb_last_bgsave_status, stop-writes-on-bgsave-error"),
    "persist.aof": (
        check_aof,
        "aof_last_write_status, aof_last_bgrewrite_status, aof_delayed_fsync",
    ),
    "persist.backup_age": (
        check_backup_age,
        "newest verified backup (catalogue) or rdb_last_save_time",
    ),
    "hazard.unsafe_master": (check_unsafe_master, "master with replicas and no persistence"),
    "mem.used": (check_memory, "used_memory vs maxmemory (or host RAM)"),
    "mem.fork_headroom": (check_fork_headroom, "maxmemory (or RSS) vs host RAM"),
    "host.kernel": (check_host_kernel, "vm.overcommit_memory, transparent huge pages (SSH)"),
}


def run_checks(inp: CheckInput, only: Iterable[str] = ()) -> tuple[Report, dict[str, Any]]:
    """Every check of the catalogue (or ``only`` those ids) over one snapshot.

    Returns the report and the new state: ``{"nodes": {addr: sample}, "consumed": [...]}``.
    """
    run = _Run(inp)
    max_age = 3 * inp.interval
    for node in inp.topology.nodes:
        if not node.reachable:
            continue
        name = str(node.address)
        now_sample = sample_of(node, inp.now)
        delta = compare(inp.previous.get(name), now_sample, max_age)
        run.deltas[name] = delta
        run.samples[name] = now_sample
    wanted = list(only) or list(CATALOGUE)
    results: list[CheckResult] = []
    for cid in wanted:
        results.extend(CATALOGUE[cid][0](run))
    if "repl.resync_loop" not in wanted:
        list(check_resync_loop(run))  # keeps the streaks right in the state
    nodes: dict[str, Any] = {}
    for name, prev in inp.previous.items():
        if inp.now - float(prev.get("t", 0)) <= 7 * DAY:
            nodes[name] = dict(prev)  # unreachable now: keep its last sample
    for name, sample in run.samples.items():
        delta = run.deltas[name]
        if delta.stale:
            continue  # an overlapping run stored a newer sample: keep it
        nodes[name] = next_sample(sample, delta, run.streaks.get(name, 0))
    consumed = sorted((set(inp.consumed) | run.consumed) & {str(m.get("id")) for m in inp.markers})
    report = Report(
        inp.cluster,
        tuple(results),
        tuple(metrics(inp, results)),
        inp.now,
        len(inp.topology.nodes),
    )
    return report, {"nodes": nodes, "consumed": consumed}


# ----------------------------------------------------------------------------- metrics

#: Prometheus metric name -> (type, help). Every series ``check`` writes is listed here.
METRICS: dict[str, tuple[str, str]] = {
    "redisops_check_status": (
        "gauge",
        "Nagios state of one check on one node (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).",
    ),
    "redisops_status": ("gauge", "Worst state of the run (Nagios code)."),
    "redisops_up": ("gauge", "1 when the node answered the probe."),
    "redisops_node_role": ("gauge", "1 for the role the node has (master or replica)."),
    "redisops_repl_link_up": ("gauge", "1 when the replica's link to its master is up."),
    "redisops_repl_lag_bytes": (
        "gauge",
        "Bytes the replica is behind the top master of its chain.",
    ),
    "redisops_repl_lag_seconds": (
        "gauge",
        "Seconds since the replica's last ACK, or since its link went down.",
    ),
    "redisops_repl_backlog_coverage_seconds": (
        "gauge",
        "Seconds of writes (at the peak rate) the replication backlog holds.",
    ),
    "redisops_repl_offset_bytes": ("gauge", "master_repl_offset of the node."),
    "redisops_sync_full_total": ("counter", "Full resyncs served by the node (INFO sync_full)."),
    "redisops_sync_partial_ok_total": (
        "counter",
        "Partial resyncs accepted by the node (INFO sync_partial_ok).",
    ),
    "redisops_sync_partial_err_total": (
        "counter",
        "Partial resyncs denied by the node (INFO sync_partial_err).",
    ),
    "redisops_masters": ("gauge", "Reachable masters in the replication group."),
    "redisops_replicas_connected": ("gauge", "Replicas with their link up in the group."),
    "redisops_backup_age_seconds": (
        "gauge",
        "Age of the newest verified backup, or of the newest RDB save.",
    ),
    "redisops_last_run_timestamp_seconds": ("gauge", "Unix time the check run finished."),
    "redisops_last_run_success": (
        "gauge",
        "1 when the check run itself worked (its state is not UNKNOWN).",
    ),
    "redisops_last_run_duration_seconds": ("gauge", "Seconds the check run took."),
}


def metrics(inp: CheckInput, results: Sequence[CheckResult]) -> list[Sample]:
    """The Prometheus samples of one run (the textfile adds the run's own timing)."""
    c = inp.cluster
    topo = inp.topology
    out: list[Sample] = []

    def add(name: str, value: float, **labels: str) -> None:
        out.append(Sample(name, {"cluster": c, **labels}, float(value)))

    for r in results:
        add("redisops_check_status", int(r.status), check=r.id, redis_addr=r.node or "")
    for n in topo.nodes:
        a = str(n.address)
        add("redisops_up", 1 if n.reachable else 0, redis_addr=a)
        if not n.reachable:
            continue
        add("redisops_node_role", 1, redis_addr=a, role=n.role)
        add("redisops_repl_offset_bytes", n.offset, redis_addr=a)
        for counter in ("sync_full", "sync_partial_ok", "sync_partial_err"):
            add(f"redisops_{counter}_total", n.stat(counter), redis_addr=a)
        if n.is_replica:
            add("redisops_repl_link_up", 1 if n.link == "up" else 0, redis_addr=a)
    for r in results:
        if r.value is None or r.node is None:
            continue
        if r.id == "repl.lag_bytes":
            add("redisops_repl_lag_bytes", r.value, redis_addr=r.node)
        elif r.id == "repl.lag_seconds":
            add("redisops_repl_lag_seconds", r.value, redis_addr=r.node)
        elif r.id == "repl.backlog_coverage":
            add("redisops_repl_backlog_coverage_seconds", r.value, redis_addr=r.node)
    for r in results:
        if r.id == "topology.masters" and r.value is not None:
            add("redisops_masters", r.value)
        elif r.id == "topology.replicas" and r.value is not None:
            add("redisops_replicas_connected", r.value)
        elif r.id == "persist.backup_age" and r.value is not None:
            add("redisops_backup_age_seconds", r.value)
    return out
