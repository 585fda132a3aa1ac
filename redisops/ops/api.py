"""The operations, as one public API: a request in, an :class:`Operation` (a plan, and how
to plan it again) out; :func:`gate` says whether an operation may run; :func:`execute` is
the one way an approved operation runs.

The CLI commands (which only parse options into a request and render what comes back)
and the playbook actions call these same functions, so a playbook step is exactly the
command an operator would type: the same reading, preflight, prediction, lock, audit,
executor and verification.

Every entry point reads the cluster through ``read`` (default: the session's discovery);
a playbook's dry run passes a reader that applies the effects of the steps it has only
predicted, so later plans are made against the state the procedure will meet.

>>> AttachRequest("10.0.0.2:6379", "10.0.0.1:6379").seeds()
['10.0.0.2:6379', '10.0.0.1:6379']
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redisops.errors import ExitCode
from redisops.ops.check import CheckRequest, run_check

if TYPE_CHECKING:  # pragma: no cover
    from redisops.audit import AuditLog
    from redisops.backup.dest import DestSpec
    from redisops.backup.take import BackupOutcome, BackupRequest
    from redisops.checks.drift import DriftReport, NodeConfig
    from redisops.engine.predict import DatasetSample
    from redisops.model import Address, NodeInfo, Plan, Topology
    from redisops.plan import PlanResult, Progress
    from redisops.session import Session

__all__ = [
    "AttachRequest",
    "CheckRequest",
    "DetachRequest",
    "DriftRequest",
    "FailoverRequest",
    "FenceRequest",
    "Operation",
    "RestoreRequest",
    "ServiceRequest",
    "SwitchoverRequest",
    "WaitSyncRequest",
    "attach",
    "backup",
    "detach",
    "drift",
    "drift_fix",
    "execute",
    "failover",
    "failover_seeds",
    "fence",
    "gate",
    "lock_ttl",
    "restore",
    "run_check",
    "service",
    "status",
    "switchover",
    "wait_sync",
]

#: how an entry point reads the cluster: ``read(session, extra_addresses)``
Reader = Callable[["Session", Sequence["Address"]], "Topology"]


def live(session: Session, extra: Sequence[Address] = ()) -> Topology:
    """The cluster as it is now (the default reader)."""
    return session.discover(list(extra))


@dataclass
class Operation:
    """A planned operation: its plan, how to plan it again from a fresh read (the executor
    does so once the lock is held), what to tell the operator first, and the data the plan
    was made from (e.g. the drift report a fix comes from)."""

    plan: Plan
    replan: Callable[[], Plan] | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    #: secrets a step needs (e.g. a backup's decryption key): in memory only, never shown
    remembered: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class AttachRequest:
    replica: str
    master: str
    persist: bool = False
    force: bool = False
    wait: bool = True
    timeout: float = 300.0
    bandwidth: float = 100e6  # bytes/s assumed by the prediction
    write_rate: float | None = None  # bytes/s; None: measured over ``sample`` seconds
    sample: float = 1.0

    def seeds(self) -> list[str]:
        return [self.replica, self.master]


@dataclass(frozen=True)
class DetachRequest:
    replica: str
    persist: bool = False
    force: bool = False

    def seeds(self) -> list[str]:
        return [self.replica]


@dataclass(frozen=True)
class SwitchoverRequest:
    to: str
    master: str | None = None  # default: the one Sentinel names, else the target's master
    extra_seeds: tuple[str, ...] = ()
    method: str = "redisops"  # or native
    via_sentinel: bool = False
    max_lag_bytes: int = 1024 * 1024
    pause_timeout_ms: int = 5000
    persist: bool = False
    force: bool = False

    def seeds(self) -> list[str]:
        return [self.to, *([self.master] if self.master else []), *self.extra_seeds]


@dataclass(frozen=True)
class FailoverRequest:
    master: str  # the dead one
    to: str | None = None  # None: chosen by Sentinel's rules
    extra_seeds: tuple[str, ...] = ()
    max_disconnect: int = 60
    accept_data_loss: bool = False
    persist: bool = False
    force: bool = False
    probes: int = 3
    interval: float = 0.3
    #: a caller that knows the master is down (a dry run that predicted it) skips the probes
    known_down: bool = False
    fence_mode: str | None = None  # stop | config: also fence it on its machine (SSH)

    def seeds(self) -> list[str]:
        return [*self.extra_seeds, self.master]


@dataclass(frozen=True)
class FenceRequest:
    old: str
    to: str
    persist: bool = False
    force: bool = False
    timeout: float = 300.0
    fence_mode: str | None = None  # stop | config: fence it on its machine too (SSH)

    def seeds(self) -> list[str]:
        return [self.old, self.to]


@dataclass(frozen=True)
class DriftRequest:
    reference: str | None = None  # default: the master
    config_files: Mapping[str, str] = field(default_factory=dict)  # node -> path on its host


# ----------------------------------------------------------------------------- entry points


def status(session: Session, *, read: Reader = live) -> Topology:
    """The topology as ``redisops status`` shows it: from the seeds (and the master the
    Sentinels name), plus any old master a failover fenced that answers again, completed
    from the last-known topology, with the Sentinel view and its problems."""
    from redisops.errors import BadInput, RedisopsError, Unreachable
    from redisops.model import Address, Topology
    from redisops.topology import fence_records, sentinel_problems

    view = None
    if session.sentinels:
        from redisops.ops.sentinel import master_addr, sentinel_view

        view = sentinel_view(session)
    extra: list[Address] = []
    if view is not None and view.get("name"):
        for entry in view["sentinels"]:
            if entry.get("master"):
                extra.append(Address.parse(str(entry["master"])))
        if not extra:
            try:
                found = master_addr(session, session.sentinels[0], str(view["name"]))
            except RedisopsError:
                found = None
            if found is not None:
                extra.append(found)
    if not session.seeds and not extra and view is not None:
        down = [e for e in view["sentinels"] if e.get("reachable") is False]
        if down and len(down) == len(view["sentinels"]):
            raise Unreachable(
                "no node to start from: no sentinel answered ("
                + "; ".join(f"{e['address']}: {e['status']}" for e in down)
                + ")",
                hint="check the --sentinel addresses, or give a SEED address",
            )
    if not session.seeds and not extra:
        raise BadInput(
            "no node to start from: no sentinel named a master",
            hint="give a SEED address, --cluster NAME, or --sentinel-master",
        )
    extra = list(dict.fromkeys(extra))
    topo = read(session, extra)
    # an old master fenced by a failover is not linked to anything: look for it explicitly
    fenced: list[Address] = []
    for record in fence_records(topo):
        try:
            addr = Address.parse(str(record.get("address")))
        except BadInput:
            continue
        if topo.get(addr) is None:
            fenced.append(addr)
    returned = [n.address for n in session.probe_all(fenced) if n.reachable]
    if returned:
        topo = read(session, [*extra, *returned])
    topo = session.with_last_known(topo, [*extra, *returned])
    if view is None:
        return topo
    problems = (*topo.problems, *sentinel_problems(topo, view))
    problems = tuple(sorted(problems, key=lambda p: p.severity != "critical"))
    return Topology(topo.nodes, problems, topo.aliases, sentinel=view)


def attach(
    session: Session,
    req: AttachRequest,
    *,
    read: Reader = live,
    sleep: Callable[[float], None] = time.sleep,
) -> Operation:
    """``REPLICAOF master`` on ``replica``: preflight, predicted resync, steps, verification."""
    from redisops.model import parse_target
    from redisops.ops.attach import last_known_followers, plan_attach
    from redisops.ops.common import Options, measure_write_rate

    rspec, mspec = parse_target(req.replica), parse_target(req.master)
    # a replica of REPLICA that is reconnecting is not listed by it: the last-known
    # topology names it (probed again if it answers, predicted from what was seen if not)
    topo = session.with_last_known(read(session, []))
    rate = req.write_rate
    if rate is None:
        rate = 0.0
        master_node = topo.get(mspec.address)
        if master_node is not None and master_node.reachable and req.sample > 0:
            top = topo.root(master_node) or master_node
            rate = measure_write_rate(session, top.address, req.sample, sleep)
    opts = Options(
        force=req.force,
        persist=req.persist,
        bandwidth=req.bandwidth,
        write_rate=rate,
        sample_seconds=req.sample,
        timeout=req.timeout,
        wait=req.wait,
    )
    # what the replica must present to the master: the master's own credentials (a user
    # named in its redis://user@ URL counts, not only --user; none when the master turned
    # out to have no password)
    creds = session.credentials_for(mspec.address)
    dataset = _sample_dataset(session, topo.get(mspec.address))

    def make(topo: Topology) -> Plan:
        known = last_known_followers(topo, rspec.address)
        return plan_attach(
            topo,
            rspec.address,
            mspec.address,
            opts,
            creds,
            session,
            rate,
            known,
            dataset=dataset,
            as_written=(req.replica, req.master),
        )

    return Operation(make(topo), lambda: make(session.with_last_known(read(session, []))))


def _sample_dataset(session: Session, master: NodeInfo | None) -> DatasetSample | None:
    """Keys sampled from the master (DUMP sizes) that calibrate the RDB and load estimates."""
    if master is None or not master.reachable or not master.keys:
        return None
    from redisops.ops.estimate import sample_dataset

    with session.fresh_node(master.address) as sampler:
        return sample_dataset(sampler, master)


def detach(session: Session, req: DetachRequest, *, read: Reader = live) -> Operation:
    """``REPLICAOF NO ONE`` on a replica: it keeps its data and becomes a master."""
    from redisops.model import parse_target
    from redisops.ops.common import Options
    from redisops.ops.detach import plan_detach

    address = parse_target(req.replica).address
    opts = Options(force=req.force, persist=req.persist)

    def make() -> Plan:
        return plan_detach(read(session, []), address, opts, session)

    return Operation(make(), make)


def switchover(session: Session, req: SwitchoverRequest, *, read: Reader = live) -> Operation:
    """Planned change of master with no lost write (the master is alive)."""
    from redisops.errors import BadInput
    from redisops.model import parse_target
    from redisops.ops.switchover import current_master, plan_switchover

    if req.method not in ("redisops", "native"):
        raise BadInput(f"method {req.method!r} is not known", hint="use redisops or native")
    target = parse_target(req.to).address

    def make() -> Plan:
        topo, master = current_master(
            session, read(session, []), target, req.master, lambda extra: read(session, extra)
        )
        return plan_switchover(
            topo,
            master,
            target,
            session,
            force=req.force,
            via_sentinel=req.via_sentinel,
            method=req.method,
            max_lag_bytes=req.max_lag_bytes,
            pause_timeout_ms=req.pause_timeout_ms,
            persist=req.persist,
        )

    return Operation(make(), make)


def failover_seeds(
    dead: str, seeds: Sequence[str], cluster: str | None
) -> tuple[list[str], list[str]]:
    """Where a failover starts reading, and what to tell the operator: the given seeds, or
    (none given, no inventory cluster) the members the dead master was last seen with."""
    from redisops.ops.failover import known_note
    from redisops.state import group_of

    if seeds or cluster is not None:
        return list(seeds), []
    record = group_of(dead)
    if record is None:
        return [], []
    return [a for a in record.members() if a != dead], [known_note(record, dead)]


def failover(session: Session, req: FailoverRequest, *, read: Reader = live) -> Operation:
    """The master is dead: confirm it, choose the replica, promote it, repoint the others,
    fence the old master."""
    from dataclasses import replace

    from redisops.model import parse_target
    from redisops.ops.failover import confirm_down, known_members, plan_failover
    from redisops.state import group_of

    dead = parse_target(req.master).address
    # the group as known before this run: its reads record the topology again, and the plan
    # must say how old the knowledge it used is, not that it was recorded a moment ago
    earlier = group_of(str(dead))
    down = req.known_down or confirm_down(session, dead, probes=req.probes, interval=req.interval)

    def make() -> Plan:
        topo = read(session, [])
        known = known_members(session, topo, dead)
        if earlier is not None and known.record is not None and known.record.group == earlier.group:
            known = replace(known, record=earlier)
        unread = [a for a in known.addresses if topo.get(a) is None]
        if unread:
            topo = read(session, unread)
        return plan_failover(
            topo,
            dead,
            session,
            to=parse_target(req.to).address if req.to else None,
            auto=req.to is None,
            force=req.force,
            max_disconnect=req.max_disconnect,
            dead_confirmed=down,
            persist=req.persist,
            accept_data_loss=req.accept_data_loss,
            known=known,
            fence_mode=req.fence_mode,
        )

    return Operation(make(), make)


def fence(session: Session, req: FenceRequest, *, read: Reader = live) -> Operation:
    """Make an old master that came back a replica of the new one."""
    from redisops.model import parse_target
    from redisops.ops.fence import plan_fence

    old, new = parse_target(req.old).address, parse_target(req.to).address

    def make() -> Plan:
        return plan_fence(
            read(session, []),
            old,
            new,
            session,
            persist=req.persist,
            timeout=req.timeout,
            fence_mode=req.fence_mode,
        )

    return Operation(make(), make)


@dataclass
class DriftResult:
    topology: Topology
    configs: list[NodeConfig]
    report: DriftReport


def drift(session: Session, req: DriftRequest) -> DriftResult:
    """Configuration drift of the session's group: across nodes, and running vs file."""
    from redisops.errors import BadInput, Unreachable
    from redisops.model import parse_target
    from redisops.ops.drift import drift_report

    topo = session.discover()
    if not any(n.reachable for n in topo.nodes):
        raise Unreachable("no node of the group could be reached")
    ref = str(topo.canonical(parse_target(req.reference).address)) if req.reference else None
    if ref is not None and topo.get(parse_target(ref).address) is None:
        raise BadInput(f"--reference {req.reference} is not a node of this group")
    configs, report = drift_report(session, topo, reference=ref, config_files=req.config_files)
    return DriftResult(topo, configs, report)


def drift_fix(session: Session, req: DriftRequest) -> Operation:
    """The plan that sets drifted keys back to the reference's values and persists them
    (``extra["report"]``: the drift it fixes)."""
    from redisops.ops.drift import plan_fix

    def make() -> tuple[Plan, DriftResult]:
        found = drift(session, req)
        plan = plan_fix(
            found.topology,
            found.configs,
            found.report,
            session.cluster_name,
            found.report.reference or "",
            dict(req.config_files),
        )
        return plan, found

    plan, found = make()
    return Operation(plan, lambda: make()[0], extra={"report": found.report})


@dataclass(frozen=True)
class WaitSyncRequest:
    replica: str
    master: str | None = None  # default: the replica's master
    timeout: float = 300.0


@dataclass(frozen=True)
class InSync:
    master: str
    offset: int
    detail: str


def wait_sync(
    session: Session,
    req: WaitSyncRequest,
    *,
    progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> InSync:
    """Until the replica's link is up and its offset is its master's (the wait every attach
    ends with); Refused when it is not a replica, WaitTimeout with a diagnosis."""
    from redisops.audit import AuditLog
    from redisops.errors import Refused
    from redisops.model import Address, Plan, Step
    from redisops.ops.attach import wait_sync as follow
    from redisops.plan import NullProgress, RunContext

    address = Address.parse(req.replica)
    node = session.probe(address)
    master = req.master or (str(node.master_address) if node.master_address else None)
    if not node.reachable or not node.is_replica or master is None:
        raise Refused(f"{req.replica} is not a replica ({node.error or node.role})")
    plan = Plan("wait-sync", session.cluster_name, ())
    ctx = RunContext(
        session,
        plan,
        AuditLog(None, plan.operation, plan.cluster),  # a wait changes nothing: no record
        None,
        progress or NullProgress(),
        sleep=sleep,
    )
    step = Step(
        1, req.replica, "wait-sync", "wait", args={"master": master, "timeout": req.timeout}
    )
    detail = follow(ctx, step)
    offset = int(session.node(address).info("replication").get("master_repl_offset", 0))
    return InSync(master, offset, detail)


def backup(
    session: Session,
    req: BackupRequest,
    *,
    key: bytes | None = None,
    progress: Progress | None = None,
    note: Callable[[str], None] = lambda text: None,
) -> BackupOutcome:
    """A verified RDB backup of the session's group (``req.dry_run``: what would be taken
    and pruned); ``key`` encrypts the copies that leave this machine."""
    from redisops.backup.dest import session_connector
    from redisops.backup.take import run_backup

    return run_backup(
        session, req, key=key, connect=session_connector(session), progress=progress, note=note
    )


@dataclass(frozen=True)
class RestoreRequest:
    backup: str  # a backup file, or an id (or ``latest``) at ``dest``
    to: str
    method: str = "online"  # or file
    dest: DestSpec | None = None
    group: str | None = None
    force: bool = False
    timeout: float = 3600.0

    def seeds(self) -> list[str]:
        return [self.to]


def restore(
    session: Session, req: RestoreRequest, *, key: bytes | None = None, read: Reader = live
) -> Operation:
    """Put a backup back on a node (``key``: the backup's decryption key, if encrypted)."""
    from dataclasses import replace

    from redisops.backup.restore import (
        BACKUP_KEY,
        METHODS,
        RestoreOptions,
        plan_restore,
        restore_source,
    )
    from redisops.errors import BadInput
    from redisops.inventory import Secret
    from redisops.model import parse_target

    if req.method not in METHODS:
        raise BadInput(f"--method {req.method!r} is not known", hint="use online or file")
    address = parse_target(req.to).address
    source = restore_source(req.backup, req.dest, req.group)
    if source.encrypted and key is None:
        raise BadInput(f"backup {source.record.id} is encrypted", hint="pass --key-file FILE")
    opts = RestoreOptions(req.method, req.force, req.timeout)

    def make(lock_key_held: bool) -> Plan:
        held = replace(opts, lock_key_held=lock_key_held)
        return plan_restore(read(session, []), address, source, held, session)

    return Operation(
        make(False),
        lambda: make(True),  # under the lock: our lock key on the node is not data it replaces
        remembered={BACKUP_KEY: Secret(key.hex())} if key is not None else {},
    )


@dataclass(frozen=True)
class ServiceRequest:
    node: str
    verb: str  # start | stop | restart
    timeout: float = 60.0

    def seeds(self) -> list[str]:
        return [self.node]


def service(session: Session, req: ServiceRequest, *, read: Reader = live) -> Operation:
    """Start, stop or restart a node's redis-server through its service manager (over SSH,
    or on this machine), then check it from outside."""
    from redisops.errors import BadInput
    from redisops.model import parse_target
    from redisops.ops.service import plan_service

    if req.verb not in ("start", "stop", "restart"):
        raise BadInput(f"unknown service action {req.verb!r}", hint="use start, stop or restart")
    address = parse_target(req.node).address

    def make() -> Plan:
        return plan_service(
            read(session, [address]), address, req.verb, session, timeout=req.timeout
        )

    return Operation(make(), make)


# ----------------------------------------------------------------------------- running


def gate(plan: Plan, force: bool) -> tuple[ExitCode, str] | None:
    """Why ``plan`` may not run (exit code and the refusals), or None: 3 when a needed node
    is unreachable, 5 for any other refusal (``force`` overrides the forceable ones)."""
    refusals = plan.refusals(force)
    if not refusals:
        return None
    code = (
        ExitCode.UNREACHABLE if any(f.code == "unreachable" for f in refusals) else ExitCode.REFUSED
    )
    return code, "; ".join(f.message for f in refusals)


def lock_ttl(plan: Plan, floor: int = 900, margin: int = 300) -> int:
    """Seconds the lock key lives: the operation's longest possible wait (``--timeout``)
    plus a margin, never under ``floor``, so the key cannot expire while the operation is
    still running (e.g. ``attach --timeout 3600`` on a large dataset)."""
    waits = 0.0
    for step in plan.steps:
        try:
            waits += float(step.args.get("timeout", 0) or 0)
        except (TypeError, ValueError):
            continue
    return max(floor, int(waits) + margin)


def execute(
    op: Operation,
    session: Session,
    *,
    force: bool,
    audit_path: Path | None,
    progress: Progress | None = None,
    facts: Mapping[str, Any] | None = None,
    remembered: Mapping[str, Any] | None = None,
    audit: AuditLog | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> PlanResult:
    """Run an approved operation: audit the approval, take the cluster lock (the executor
    re-plans under it), execute, record the final state, audit the result. ``facts`` seed
    what the steps observe; ``remembered`` holds secrets a step needs (never shown)."""
    from redisops.audit import AuditLog, operator
    from redisops.lock import ClusterLock
    from redisops.plan import NullProgress, RunContext
    from redisops.plan import execute as run_plan
    from redisops.state import mark_plan, note_final_state, note_members
    from redisops.testhooks import hold

    plan = op.plan
    hold("approved")
    log = audit or AuditLog(audit_path, plan.operation, plan.cluster)
    log.record(
        step=0,
        action="plan",
        result="approved",
        forced=force,
        overridden=[f.message for f in plan.findings if f.level == "refuse"],
        prediction=plan.prediction,
    )
    lock = ClusterLock(
        plan.cluster,
        plan.operation,
        log.operator or operator(),
        ttl_s=lock_ttl(plan),
        members=plan.members,
    )
    ctx = RunContext(
        session,
        plan,
        log,
        lock,
        progress or NullProgress(),
        facts=dict(facts or {}),
        replan=op.replan,
        force=force,
        sleep=sleep,
    )
    ctx.remembered.update({**op.remembered, **(remembered or {})})  # secrets: never shown
    mark_plan(plan.operation, plan.prediction)  # its predicted full syncs must not page anyone
    result = run_plan(ctx)
    note_final_state(result.final_state)
    if result.outcome in ("applied", "partial", "verify-failed", "timeout"):  # it changed things
        note_members([*plan.touched, *(s.node for s in plan.steps)], plan.operation)
    log.record(
        step=len(plan.steps) + 1,
        action="result",
        result=result.outcome,
        detail=result.message,
        observed=result.observed,
    )
    return result
