"""``attach``: make REPLICA a replica of MASTER, predicted, followed and verified.

:func:`plan_attach` is pure (snapshot in, plan out); the step routines registered here
(``recheck``, ``wait-sync``, ``verify-sync``) run it against live nodes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redisops.engine.predict import (
    DatasetSample,
    RateParams,
    SyncPrediction,
    predict_followers,
    predict_returning,
    predict_sync,
)
from redisops.errors import RedisopsError, Refused, ResyncLoop, VerifyFailed, WaitTimeout
from redisops.inventory import Credentials
from redisops.model import REDACTED, Address, Finding, NodeInfo, Plan, Step, Topology
from redisops.ops.common import (
    Options,
    config_unavailable,
    data_keys,
    group_members,
    group_nodes,
    lock_steps,
    persist_refusal,
    persist_step,
    reachable_or_finding,
    sentinel_finding,
    unlock_step,
)
from redisops.plan import RunContext, action, remembered
from redisops.redis_node import RedisNode
from redisops.session import Session

#: PING bytes a master sends each ``repl-ping-replica-period`` (``*1\r\n$4\r\nPING\r\n``)
PING_BYTES = 14


def plan_attach(
    topo: Topology,
    replica_addr: Address,
    master_addr: Address,
    opts: Options,
    creds: Credentials,
    session: Session,
    write_rate: float = 0.0,
    known_followers: Sequence[tuple[NodeInfo, float]] = (),
    *,
    dataset: DatasetSample | None = None,
    as_written: tuple[str, str] | None = None,
) -> Plan:
    """Preflight, steps and prediction for ``REPLICAOF master`` on ``replica``.

    ``known_followers``: replicas last seen under ``replica`` (with the age of that
    knowledge) that are not connected to it now; they will sync from it when they return.
    ``dataset`` (the master's keys, sampled) calibrates the full-sync estimate;
    ``as_written`` is how the operator wrote the two nodes (for messages).
    """
    findings: list[Finding] = []
    replica, f1 = reachable_or_finding(topo, replica_addr, "replica")
    master, f2 = reachable_or_finding(topo, master_addr, "master")
    findings += [f for f in (f1, f2) if f is not None]
    cluster = session.cluster_name
    if replica is None or master is None:
        return Plan(
            "attach", cluster, (), tuple(findings), summary="cannot plan: a node is unreachable"
        )
    r, m = str(replica.address), str(master.address)
    if session.cluster is None:
        # name the lock after the master it is taken on: every operation on this cluster
        # (whatever its seeds, e.g. a standalone node that sorts first) excludes the others
        cluster = _lock_node(topo, master)[0]
    if replica.address == master.address or (replica.run_id and replica.run_id == master.run_id):
        findings.append(Finding("refuse", "same_node", _same_node(r, m, as_written), r))
        return Plan(
            "attach", cluster, (), tuple(findings), summary="cannot attach a node to itself"
        )
    current = replica.master_address
    if replica.is_replica and current is not None and topo.canonical(current) == master.address:
        link = replica.link
        note = "" if link == "up" else f" (its link is {link}: see 'redisops status')"
        return Plan(
            "attach",
            cluster,
            (),
            tuple(findings),
            nothing_to_do=True,
            summary=f"{r} is already a replica of {m}{note}; nothing to do",
        )
    params = RateParams(bandwidth=opts.bandwidth, write_rate=write_rate, dataset=dataset)
    prediction = predict_sync(master, replica, params)
    subs = topo.children(replica)
    followers = predict_followers(
        replica, subs, prediction, master.replid if prediction.sync == "partial" else None, params
    )
    returning = [predict_returning(replica, k, age, prediction) for k, age in known_followers]
    prediction.followers = followers + returning
    findings += _preflight(topo, replica, master, prediction, session, opts)
    if _rollback_command(replica) is None:
        findings.append(
            Finding(
                "refuse",
                "unknown_role",
                f"{r} is neither a master nor a replica with a known master (role "
                f"{replica.role}): there would be nothing to roll back to",
                r,
            )
        )
    findings += _hardened_findings(replica, master, creds, opts, session)
    findings += _masteruser_findings(replica, master, creds)
    for ret, (_, age) in zip(returning, known_followers, strict=True):
        findings.append(
            Finding(
                "warn",
                "returning_replica",
                f"{ret.replica} was a replica of {r} {age:.0f}s ago and is not connected now: "
                f"when it comes back it will {ret.sync}-sync from {r}",
                ret.replica,
            )
        )
    steps = _steps(topo, replica, master, prediction, creds, opts, write_rate)
    return Plan(
        "attach",
        cluster,
        tuple(steps),
        tuple(findings),
        prediction.to_dict(),
        _summary(r, m, prediction, findings),
        touched=tuple(dict.fromkeys((r, m, *[str(s.address) for s in subs], *group_nodes(topo)))),
        members=group_members(topo),
    )


def _summary(r: str, m: str, prediction: SyncPrediction, findings: list[Finding]) -> str:
    """The plan's first line: what is predicted, or that it is refused and why (a refused
    plan does not announce a resync it will not cause)."""
    hard = [f.code for f in findings if f.level == "refuse" and not f.forceable]
    if hard:
        return f"attach {r} to {m}: refused ({', '.join(hard)}); nothing will change"
    text = (
        f"attach {r} to {m}: {prediction.sync} resync predicted "
        f"({_fmt_bytes(prediction.transfer_bytes)}, ~{prediction.estimated_seconds:.1f}s)"
    )
    soft = [f.code for f in findings if f.level == "refuse"]
    return text + (f"; refused unless --force ({', '.join(soft)})" if soft else "")


def _same_node(r: str, m: str, as_written: tuple[str, str] | None) -> str:
    """``127.0.0.1:7000 and localhost:7000 are the same node``, as the operator wrote them."""
    if as_written is not None and as_written[0] != as_written[1]:
        shown = f"{as_written[0]} and {as_written[1]}"
        if r != m or r not in as_written:
            return f"{shown} are the same node ({r}, run id match)"
        return f"{shown} are the same node ({r})"
    return f"{r} and {m} are the same node"


def _preflight(
    topo: Topology,
    replica: NodeInfo,
    master: NodeInfo,
    prediction: SyncPrediction,
    session: Session,
    opts: Options,
) -> list[Finding]:
    """Everything to refuse, confirm or warn about, all at once."""
    r, m = str(replica.address), str(master.address)
    out: list[Finding] = []
    if master.address in {d.address for d in topo.descendants(replica)}:
        out.append(
            Finding(
                "refuse",
                "cycle",
                f"{m} replicates (directly or through others) from {r}: attaching would make a cycle",
                m,
            )
        )
    out += version_findings(replica, master, prediction.sync)
    sentinel = sentinel_finding([replica, master], session, opts.force)
    if sentinel is not None:
        out.append(sentinel)
    leaving = _leaving(topo, replica, master)
    discarded = data_keys(replica)
    if prediction.sync == "full" and discarded:
        out.append(
            Finding(
                "confirm",
                "replica_has_data",
                f"{r} holds {discarded} key{'s' * (discarded != 1)} that the full sync will discard "
                f"(they are replaced by {m}'s dataset)" + (f"; {leaving}" if leaving else ""),
                r,
            )
        )
    if leaving:
        out.append(Finding("warn", "leaves_group", f"{r} {leaving}", r))
    subs = topo.children(replica)
    if subs:
        names = ", ".join(f"{f.replica} ({f.sync})" for f in prediction.followers)
        out.append(
            Finding(
                "warn",
                "has_replicas",
                f"{r} has replicas of its own, which will follow it: {names}",
                r,
            )
        )
    if master.is_replica:
        out.append(
            Finding(
                "warn",
                "chained",
                f"{m} is itself a replica of {master.master_address}: {r} will be a chained "
                f"replica (it gets the stream second-hand; {m}'s link must stay up)",
                m,
            )
        )
    if master.config.get("save", "x") == "" and master.config.get("appendonly") == "no":
        out.append(
            Finding(
                "warn",
                "unsafe_master",
                f'{m} has no persistence (save "", appendonly no): if it restarts it comes back '
                f"empty and every replica copies the empty dataset",
                m,
            )
        )
    for risk in prediction.risks:
        if "fork may need" in risk:
            out.append(Finding("warn", "fork_headroom", risk, m))
        elif "resync loop" in risk:
            out.append(
                Finding(
                    "refuse",
                    "resync_loop",
                    f"{risk} (--force to try anyway)",
                    m,
                    forceable=True,
                )
            )
    stale = _stale_risk(topo, replica, master, prediction)
    if stale:
        out.append(Finding("warn", "prediction_may_go_stale", stale, r))
    return out


def _leaving(topo: Topology, replica: NodeInfo, master: NodeInfo) -> str:
    """``leaves the group of ...`` when the replica replicates within another group now."""
    current = replica.master_address
    if not replica.is_replica or current is None:
        return ""
    top_now = topo.root(replica)
    top_new = topo.root(master) or master
    if top_now is not None and top_now.address == top_new.address:
        return ""
    where = str(topo.canonical(current))
    group = (
        f"whose master is {top_now.address}"
        if top_now is not None and str(top_now.address) != where
        else ""
    )
    return (
        f"is leaving {where}, of which it is a replica now (another replication group"
        + (f" {group}" if group else "")
        + "): that group loses this replica"
    )


def _stale_risk(
    topo: Topology, replica: NodeInfo, master: NodeInfo, prediction: SyncPrediction
) -> str:
    """A partial resync that only holds while the replica's offset stays at or below the new
    master's split point, with the replica's old master alive and still feeding it."""
    if prediction.sync != "partial" or not replica.is_replica or replica.link != "up":
        return ""
    req_id, req_off = prediction.psync
    if req_id != master.replid2 or master.second_repl_offset <= 0:
        return ""
    old = replica.master_address
    room = master.second_repl_offset - req_off
    period = _config_int(topo.parent(replica), "repl-ping-replica-period", 10)
    return (
        f"the partial resync holds only while {replica.address}'s offset stays at or below "
        f"{master.address}'s split point {master.second_repl_offset - 1} (it is at "
        f"{req_off - 1}, {room} byte(s) before it), but it still replicates from {old}, which "
        f"is alive: the next write or PING from there "
        f"(a PING every {period}s, {PING_BYTES} bytes) carries it past, and the move becomes "
        f"a full sync. The prediction is checked again right before REPLICAOF"
    )


def _config_int(node: NodeInfo | None, key: str, default: int) -> int:
    try:
        return int((node.config if node is not None else {}).get(key, default))
    except (TypeError, ValueError):
        return default


def _steps(
    topo: Topology,
    replica: NodeInfo,
    master: NodeInfo,
    prediction: SyncPrediction,
    creds: Credentials,
    opts: Options,
    write_rate: float,
) -> list[Step]:
    r, m = str(replica.address), str(master.address)
    lock_on, local_only = _lock_node(topo, master)
    steps: list[Step] = [lock_steps(lock_on, 1, local_only=local_only)]
    leaving = topo.root(replica) if replica.is_replica else None
    if leaving is not None and str(leaving.address) != lock_on:
        steps.append(
            Step(
                2,
                str(leaving.address),
                "lock-group",
                f"take the lock of the group {r} leaves (master {leaving.address}) too",
                command=("SET", "redisops:lock", "<owner>", "NX", "PX", "<ttl>"),
                precondition="no other redisops operation holds that group's lock",
                verify="SET NX succeeded",
                args={"group": str(leaving.address)},
            )
        )
    steps += [
        Step(
            len(steps) + 1,
            m,
            "baseline",
            f"record {m}'s sync counters",
            command=("INFO", "stats"),
            verify="sync_full / sync_partial_ok read",
        ),
    ]
    if replica.can_run("CONFIG"):  # else it must have masterauth already (a finding says so)
        steps += _auth_steps(replica, master, creds, len(steps) + 1)
    steps.append(
        Step(
            len(steps) + 1,
            r,
            "recheck",
            "predict again from a fresh read of both nodes",
            command=("INFO",),
            verify=f"still a {prediction.sync} resync (stop before acting if it became full)",
            args={
                "master": m,
                "predicted": prediction.sync,
                "bandwidth": opts.bandwidth,
                "write_rate": write_rate,
                "force": opts.force,
            },
        )
    )
    current = replica.master_address
    steps.append(
        Step(
            len(steps) + 1,
            r,
            "command",
            f"point {r} at {m}",
            command=("REPLICAOF", master.address.host, str(master.address.port)),
            precondition=f"{r} is {'a master' if replica.is_master else 'a replica of ' + str(current)}",
            verify=f"ROLE on {r} shows master {m}",
            commit=True,
            idempotent=False,
            rollback=_rollback_command(replica),
        )
    )
    if opts.wait:
        steps.append(
            Step(
                len(steps) + 1,
                r,
                "wait-sync",
                f"follow the {prediction.sync} sync until {r} is in sync",
                verify="link up and offset equal to the master's",
                # what was predicted is read from the plan at run time (ctx.plan.prediction):
                # step arguments are compared when the plan is rebuilt under the lock, and
                # estimates move with every write
                args={"master": m, "timeout": opts.timeout},
            )
        )
    if opts.persist:
        steps.append(persist_step(len(steps) + 1, r))
    if opts.wait:
        steps.append(
            Step(
                len(steps) + 1,
                r,
                "verify-sync",
                "check what happened against the prediction",
                verify=f"{m}: sync_full/sync_partial_ok deltas match the predicted {prediction.sync} sync; "
                f"offsets converge; DBSIZE equal",
                args={"master": m, "predicted": prediction.sync, "on_failure": "continue"},
            )
        )
    steps.append(unlock_step(lock_on, len(steps) + 1))
    return steps


def _auth_steps(replica: NodeInfo, master: NodeInfo, creds: Credentials, n: int) -> list[Step]:
    """What the replica must present to the master: the credentials that work there."""
    if creds.password is None:
        return []
    r, m = str(replica.address), str(master.address)
    out: list[Step] = []
    if creds.username:
        out.append(
            Step(
                n,
                r,
                "command",
                f"let {r} authenticate to {m} as {creds.username}",
                command=("CONFIG", "SET", "masteruser", creds.username),
                precondition=f"{m} requires auth",
                verify="CONFIG SET returns OK",
                rollback=("CONFIG", "SET", "masteruser", replica.config.get("masteruser", "")),
            )
        )
    out.append(
        Step(
            n + len(out),
            r,
            "command",
            f"give {r} the password for {m} ({creds.source})",
            command=("CONFIG", "SET", "masterauth", REDACTED),
            precondition=f"{m} requires auth",
            verify="CONFIG SET returns OK",
            # a rollback puts back the password it had (read at run time, never shown)
            rollback=("CONFIG", "SET", "masterauth", REDACTED),
            args={
                "secret": (3, "password"),
                "remember_config": "masterauth",
                "rollback_secret": (3, remembered(r, "masterauth")),
                "runtime_only": True,
            },
        )
    )
    return out


def version_findings(replica: NodeInfo, master: NodeInfo, sync: str) -> list[Finding]:
    """A replica must be able to load its master's RDB for a full sync; a partial resync
    ships no RDB, so across formats it works but stays the only way to follow."""
    why = replica.cannot_load_from(master)
    if why is None:
        return []
    r, m = str(replica.address), str(master.address)
    if sync == "full":
        return [
            Finding(
                "refuse",
                "version",
                f"{r} cannot take a full sync from {m}: {why}. The sync would fail at the "
                f"load and be retried in a loop. Upgrade {r} first, or attach it to a "
                f"master it can load",
                r,
            )
        ]
    return [
        Finding(
            "warn",
            "partial_only",
            f"{r} continues partially, but {why}: if it ever needs a full sync from {m} "
            f"it cannot load it; upgrade it",
            r,
        )
    ]


def _hardened_findings(
    replica: NodeInfo, master: NodeInfo, creds: Credentials, opts: Options, session: Session
) -> list[Finding]:
    """What cannot be checked or done on nodes where CONFIG is renamed or disabled."""
    out = [
        config_unavailable(
            master, "whether it persists its data (save, appendonly) cannot be checked"
        ),
        config_unavailable(
            replica,
            "its replication settings cannot be read (the prediction assumes Redis defaults)"
            + (
                ", and it cannot be given the master's password (CONFIG SET masterauth): it "
                "must already have masterauth in its redis.conf"
                if creds.password is not None
                else ""
            ),
        ),
        persist_refusal([replica], session) if opts.persist else None,
    ]
    return [f for f in out if f is not None]


def _masteruser_findings(replica: NodeInfo, master: NodeInfo, creds: Credentials) -> list[Finding]:
    """The replica will replicate as the operator's ACL user: that user must be allowed
    the replication handshake on the master, or the sync waits in it until --timeout."""
    if not creds.username or creds.password is None:
        return []
    r, m, user = str(replica.address), str(master.address), creds.username
    before = replica.config.get("masteruser")
    was = f" (it was {before!r})" if before and before != user else ""
    return [
        Finding(
            "warn",
            "masteruser",
            f"{r} will replicate as the ACL user {user!r}{was}: on {m} that user needs "
            f"+psync +replconf +ping, or the sync stays in the handshake",
            r,
        )
    ]


def _lock_node(topo: Topology, master: NodeInfo) -> tuple[str, str | None]:
    """Where the lock key goes (the top master above ``master``), or why only the local
    layer can be taken (that master is unreachable)."""
    top = topo.root(master)
    if top is not None and top.is_master:
        return str(top.address), None
    return str(master.address), f"the master above {master.address} is unreachable"


def _rollback_command(replica: NodeInfo) -> tuple[str, ...] | None:
    """What puts ``replica`` back where it is, or None when its role is unknown."""
    if replica.is_master:
        return ("REPLICAOF", "NO", "ONE")
    addr = replica.master_address
    if not replica.is_replica or addr is None:
        return None
    return ("REPLICAOF", addr.host, str(addr.port))


def _fmt_bytes(n: int) -> str:
    from redisops.output import human_bytes

    return human_bytes(n)


def last_known_followers(topo: Topology, replica: Address) -> list[tuple[NodeInfo, float]]:
    """Nodes last seen replicating from ``replica`` that do not answer now, each as last
    seen with the age of that knowledge (see :mod:`redisops.state`)."""
    from redisops.state import group_of

    known = group_of(replica)
    if known is None:
        return []
    now = time.time()
    out = []
    for addr in known.replicas_of(str(replica)):
        node = topo.get(Address.parse(addr))
        if node is not None and node.reachable:
            continue  # it answers: the topology has it as it is now
        last = known.node(addr)
        if last is not None:
            out.append((last, now - last.read_at))
    return out


# ----------------------------------------------------------------------------- routines


def baseline(ctx: RunContext, master: str) -> dict[str, int]:
    info = ctx.node(master).info("stats", "replication")
    out = {
        "sync_full": int(info.get("sync_full", 0)),
        "sync_partial_ok": int(info.get("sync_partial_ok", 0)),
        "sync_partial_err": int(info.get("sync_partial_err", 0)),
    }
    if "client_output_buffer_limit_disconnections" in info:  # Redis 7.2+, Valkey
        out["obuf_disconnections"] = int(info["client_output_buffer_limit_disconnections"])
    return out


@action("lock-group")
def lock_group(ctx: RunContext, step: Step) -> str:
    """Hold a second group's lock with this operation's (released with it): a replica
    moving between groups changes both, so neither may be changed meanwhile."""
    from redisops.errors import Unreachable

    assert ctx.lock is not None
    master: RedisNode | None
    try:
        master = ctx.node(step.node)
        master.connect()
    except Unreachable:
        master = None
    ctx.lock.acquire_also(str(step.args["group"]), master)
    return f"lock of the group of {step.node} held too"


@action("recheck")
def recheck(ctx: RunContext, step: Step) -> str:
    """Predict again from fresh reads, right before ``REPLICAOF``: a partial that became a
    full sync since the plan (the replica's offset moved past the split point) stops here,
    before anything changed; a full that became partial is reported and continues."""
    master = str(step.args["master"])
    predicted = str(step.args.get("predicted", ""))
    minfo = ctx.session.probe(Address.parse(master))
    rinfo = ctx.session.probe(Address.parse(step.node))
    if not minfo.reachable or not rinfo.reachable:
        bad = minfo if not minfo.reachable else rinfo
        raise Refused(f"{bad.address} cannot be read now ({bad.error}); nothing was changed")
    params = RateParams(
        bandwidth=float(step.args.get("bandwidth", 100e6)),
        write_rate=float(step.args.get("write_rate", 0.0)),
    )
    fresh = predict_sync(minfo, rinfo, params)
    ctx.facts["predicted_sync"] = fresh.sync
    if fresh.sync == predicted:
        ctx.facts["prediction_recheck"] = f"unchanged: {fresh.sync}"
        return f"still a {fresh.sync} resync"
    changed = f"the prediction changed since the plan: {predicted} -> {fresh.sync} ({fresh.reason})"
    ctx.facts["prediction_recheck"] = changed
    if fresh.sync == "full" and not step.args.get("force"):
        raise Refused(
            f"{changed}; nothing was changed",
            hint="rerun the command to see the new plan (a full sync replaces the replica's data)",
        )
    ctx.warnings.append(changed)
    return changed


@dataclass
class SyncWatch:
    """What one wait for a replica's sync has seen: phases and their times, the transfer's
    bytes, and every sign that the master restarts the full sync (a resync loop).

    Pure bookkeeping over the values the wait reads, so it is tested without servers.
    """

    started: float
    sync_full0: int | None = None
    obuf0: int | None = None
    phases: list[tuple[str, float]] = field(default_factory=list)
    restarts: int = 0  # the replica's transfer started over (bytes read went down)
    read_max: int = 0
    total: int = 0
    last_read: int = 0
    fulls: int = 0  # full syncs the master started since the wait began
    obuf_drops: int = 0
    omem_peak: int = 0
    seen_transfer: bool = False
    offsets: list[tuple[float, int]] = field(default_factory=list)  # the master's, first/last

    def observe(
        self,
        now: float,
        phase: str,
        read: int = 0,
        total: int = 0,
        sync_full: int | None = None,
        obuf: int | None = None,
        omem: int = 0,
    ) -> None:
        if not self.phases or self.phases[-1][0] != phase:
            self.phases.append((phase, now))
        if phase == "transfer":
            if read < self.last_read or (
                self.seen_transfer and self.last_read == 0 and read > 0 and self._went_back()
            ):
                self.restarts += 1
            self.seen_transfer = True
            self.last_read = read
            self.read_max = max(self.read_max, read)
            self.total = max(self.total, total)
        elif phase in ("connect", "connecting", "handshake", "waiting for the RDB"):
            if self.seen_transfer and self.last_read > 0:
                self.restarts += 1
            self.last_read = 0
        if sync_full is not None and self.sync_full0 is not None:
            self.fulls = sync_full - self.sync_full0
        if obuf is not None and self.obuf0 is not None:
            self.obuf_drops = obuf - self.obuf0
        self.omem_peak = max(self.omem_peak, omem)

    def master_offset(self, now: float, offset: int) -> None:
        """The master's replication offset now: its write rate during the wait."""
        if not self.offsets:
            self.offsets.append((now, offset))
        else:
            self.offsets[1:] = [(now, offset)]

    @property
    def write_rate(self) -> float | None:
        """Bytes/s of replication stream the master produced during the wait."""
        if len(self.offsets) < 2 or self.offsets[1][0] - self.offsets[0][0] < 0.5:
            return None
        (t0, o0), (t1, o1) = self.offsets
        return max(o1 - o0, 0) / (t1 - t0)

    def _went_back(self) -> bool:
        return len(self.phases) >= 2 and self.phases[-2][0] != "transfer"

    def looping(self) -> bool:
        """The master keeps starting the full sync over: two restarts seen on the replica
        and on the master's counters, or the master counting output-buffer drops."""
        if self.obuf_drops >= 1 and self.fulls >= 2:
            return True
        return (self.fulls >= 3 and self.restarts >= 1) or self.restarts >= 3

    def reached(self) -> str:
        """The furthest phase reached, with what is known about it."""
        if not self.phases:
            return "nothing yet"
        order = ["connect", "connecting", "handshake", "waiting for the RDB", "transfer"]
        order += ["loading", "catching up", "in sync"]
        best = max(self.phases, key=lambda p: order.index(p[0]) if p[0] in order else -1)[0]
        if best == "transfer":
            from redisops.output import human_bytes

            size = (
                f"of {human_bytes(self.total)}"
                if self.total > 0
                else "(diskless: the size is known only at the end)"
            )
            return f"the transfer ({human_bytes(self.read_max)} received {size})"
        if best == "waiting for the RDB":
            return "waiting for the master's RDB (fork, BGSAVE or repl-diskless-sync-delay)"
        return f"the {best} phase" if best != "in sync" else "in sync"

    def measured(self, now: float) -> dict[str, Any]:
        """Seconds per phase and in all, and the RDB bytes seen: for the result JSON."""
        out: list[dict[str, Any]] = []
        for i, (phase, t0) in enumerate(self.phases):
            t1 = self.phases[i + 1][1] if i + 1 < len(self.phases) else now
            out.append({"phase": phase, "seconds": round(t1 - t0, 3)})
        done = bool(self.phases) and self.phases[-1][0] == "in sync"
        return {
            "seconds": round(now - self.started, 3),
            "phases": out,
            # a transfer's size is known from its header (disk-based) or once it ended
            "rdb_bytes": self.total or (self.read_max if done else 0) or None,
            "full_syncs_started": self.fulls,
        }


def _phase(state: str, rinfo: dict[str, str]) -> tuple[str, int, int]:
    """The wait's phase name from ROLE's state and INFO, with bytes read and total."""
    if rinfo.get("loading") == "1":
        return (
            "loading",
            int(rinfo.get("loading_loaded_bytes", 0) or 0),
            int(rinfo.get("loading_total_bytes", 0) or 0),
        )
    if state == "sync":
        read = int(rinfo.get("master_sync_read_bytes", 0) or 0)
        total = max(int(rinfo.get("master_sync_total_bytes", 0) or 0), 0)
        return ("transfer" if read > 0 or total > 0 else "waiting for the RDB"), read, total
    if state == "connected":
        return "catching up", 0, 0
    return state, 0, 0


def _replica_omem(mnode: RedisNode) -> int:
    """The largest output buffer the master holds for a replica now (CLIENT LIST omem)."""
    try:
        text = str(mnode.execute("CLIENT", "LIST", "TYPE", "replica"))
    except RedisopsError:  # optional evidence (ACLs may forbid CLIENT)
        return 0
    peak = 0
    for line in text.splitlines():
        for part in line.split():
            if part.startswith("omem="):
                peak = max(peak, int(part[5:] or 0))
    return peak


@action("wait-sync", waits=True)
def wait_sync(ctx: RunContext, step: Step) -> str:
    """Follow handshake -> waiting for the RDB -> transfer -> loading -> catching up, with
    bytes, rate and ETA; stop early on a resync loop; record what each phase took.

    The master is ``args["master"]``, or, for a server the operation starts itself (a
    restore's throwaway server), the ``address`` in the fact named by ``args["master_fact"]``.
    """
    if "master" in step.args:
        master = str(step.args["master"])
    else:
        master = str(ctx.facts[str(step.args["master_fact"])]["address"])
    timeout = float(step.args.get("timeout", 300))
    rnode, mnode = ctx.node(step.node), ctx.node(master)
    start = time.monotonic()
    base = ctx.facts.get("baseline") or baseline(ctx, master)
    watch = SyncWatch(start, base.get("sync_full"), base.get("obuf_disconnections"))
    if "master" in step.args:  # not a restore's throwaway server (its undo stops it)
        ctx.facts["interrupt_note"] = _interrupt_note(step.node, master)
    catch_from: int | None = None
    polls = 0
    while True:
        rinfo = rnode.info("replication", "persistence")
        role = rnode.execute("ROLE")
        state = str(role[3]) if isinstance(role, list) and len(role) > 3 else "?"
        phase, done, total = _phase(state, rinfo)
        minfo = mnode.info("replication", "stats")
        watch.master_offset(time.monotonic(), int(minfo.get("master_repl_offset", 0) or 0))
        polls += 1
        omem = _replica_omem(mnode) if phase != "catching up" and polls % 3 == 0 else 0
        now = time.monotonic()
        watch.observe(
            now,
            phase,
            done if phase == "transfer" else 0,
            total if phase == "transfer" else 0,
            int(minfo.get("sync_full", 0)),
            int(minfo["client_output_buffer_limit_disconnections"])
            if "client_output_buffer_limit_disconnections" in minfo
            else None,
            omem,
        )
        if phase == "catching up":
            moff = int(minfo.get("master_repl_offset", 0))
            roff = int(rinfo.get("master_repl_offset", 0))
            catch_from = roff if catch_from is None else catch_from
            ctx.progress.update("catching up", roff - catch_from, max(moff - catch_from, 0) or None)
            if roff >= moff:
                watch.observe(now, "in sync")
                _record(ctx, step, watch, now)
                seen = " -> ".join(p for p, _ in watch.phases)
                return f"in sync at offset {roff} after {now - start:.1f}s (phases: {seen})"
        else:
            catch_from = None
            ctx.progress.update(phase, done, total or None)
        if watch.looping():
            _record(ctx, step, watch, now)
            raise ResyncLoop(
                _loop_message(ctx, step, master, watch, mnode), hint=_STOP_HINT.format(r=step.node)
            )
        if now - start > timeout:
            _record(ctx, step, watch, now)
            raise WaitTimeout(
                f"{step.node} did not get in sync with {master} within {timeout:g}s; it reached "
                f"{watch.reached()}: " + diagnose(rinfo, state, minfo, step.node),
                hint="see 'redisops status'; raise --timeout for large datasets",
            )
        ctx.sleep(0.1)


_STOP_HINT = "the replica keeps retrying: stop it with 'redisops detach {r}', or fix the setting and let it retry"


def _interrupt_note(replica: str, master: str) -> str:
    return (
        f"the sync of {replica} from {master} continues on the servers without redisops "
        f"(REPLICAOF was sent); follow it with 'redisops status {replica}', or stop it with "
        f"'redisops detach {replica}' (REPLICAOF NO ONE: it keeps the data it has loaded so far)"
    )


def _record(ctx: RunContext, step: Step, watch: SyncWatch, now: float) -> None:
    """The measured sync beside the prediction, for the result JSON (``observed``)."""
    ctx.facts.pop("interrupt_note", None)
    predicted = ctx.plan.prediction or {}
    measured = watch.measured(now)
    ctx.facts["phases_seen"] = [p["phase"] for p in measured["phases"]]
    ctx.facts["sync_duration"] = {
        "predicted_seconds": predicted.get("estimated_seconds"),
        "measured_seconds": measured["seconds"],
        "predicted_bytes": predicted.get("transfer_bytes"),
        "measured_rdb_bytes": measured["rdb_bytes"],
        "phases": measured["phases"],
        "full_syncs_started": measured["full_syncs_started"],
    }


def _loop_message(
    ctx: RunContext, step: Step, master: str, watch: SyncWatch, mnode: RedisNode
) -> str:
    """The resync loop, named, with its likely cause and the setting to change."""
    from redisops.output import human_bytes

    try:
        obl = mnode.config_get("client-output-buffer-limit").get("client-output-buffer-limit", "")
        rtimeout = mnode.config_get("repl-timeout").get("repl-timeout", "?")
    except RedisopsError:  # the message is still useful without them
        obl, rtimeout = "", "?"
    replica_limit = replica_obl(obl)
    head = (
        f"resync loop: {master} started {watch.fulls} full syncs for {step.node} in "
        f"{time.monotonic() - watch.started:.0f}s and dropped it each time (the replica's "
        f"transfer started over {watch.restarts} time(s)); stopped waiting"
    )
    risks = (ctx.plan.prediction or {}).get("risks", [])
    hint = next((str(r) for r in risks if "resync loop" in str(r)), "")
    if watch.obuf_drops or watch.omem_peak or hint:
        peak = (
            f"; its output buffer for the replica reached {human_bytes(watch.omem_peak)}"
            if watch.omem_peak
            else ""
        )
        drops = (
            f"; the master counts {watch.obuf_drops} output-buffer disconnection(s)"
            if watch.obuf_drops
            else ""
        )
        rate = watch.write_rate
        per = (
            f" (writes arrive at {human_bytes(rate)}/s: every 100 MB of limit holds "
            f"{100 * 1024 * 1024 / rate:.0f}s of sync)"
            if rate
            else ""
        )
        fix = (
            hint.split("Raise ", 1)[-1]
            if "Raise " in hint
            else f"client-output-buffer-limit replica (now {replica_limit}) on {master} above "
            f"what the writes during one full sync add up to{per}"
        )
        return f"{head}{peak}{drops}: the cause is the output-buffer limit. Raise {fix}"
    return (
        f"{head}: the output buffer is not the cause as far as the master shows "
        f"(client-output-buffer-limit replica {replica_limit}); check repl-timeout "
        f"({rtimeout}s) against the transfer and load time, and the master's log"
    )


def replica_obl(text: str) -> str:
    """The replica class of a ``client-output-buffer-limit`` value (Redis 7.0 calls it
    ``slave`` in CONFIG GET).

    >>> replica_obl("normal 0 0 0 slave 1048576 524288 1 pubsub 33554432 8388608 60")
    '1048576 524288 1'
    >>> replica_obl("")
    '?'
    """
    words = text.split()
    for cls in ("slave", "replica"):
        if cls in words:
            i = words.index(cls)
            return " ".join(words[i + 1 : i + 4])
    return "?"


def diagnose(rinfo: dict[str, str], state: str, minfo: dict[str, str], replica: str) -> str:
    """Why a replica is not in sync, from INFO alone."""
    parts = [f"link {rinfo.get('master_link_status', '?')}, state {state}"]
    down = rinfo.get("master_link_down_since_seconds")
    if down not in (None, "-1"):
        parts.append(f"down for {down}s")
    if state in ("connect", "connecting"):
        parts.append("the replica cannot reach the master (address, firewall, NAT?)")
    elif state == "handshake":
        parts.append(
            "stuck in the handshake: check masterauth/masteruser, or the master is waiting to fork "
            "(repl-diskless-sync-delay)"
        )
    elif state == "sync":
        total = int(rinfo.get("master_sync_total_bytes", "0") or 0)
        read = int(rinfo.get("master_sync_read_bytes", "0") or 0)
        if total > 0:
            parts.append(f"transfer {read} of {total} bytes")
        elif read > 0:
            parts.append(
                f"receiving a diskless RDB: {read} bytes so far (its size is known only at the end)"
            )
        else:
            parts.append(
                "the master has not started sending its RDB (waiting for the fork: "
                "repl-diskless-sync-delay, or the master refused PSYNC/SYNC: ACL permissions?)"
            )
    listed = [v for k, v in minfo.items() if k.startswith("slave") and k[5:].isdigit()]
    port = replica.rsplit(":", 1)[-1]
    mine = [v for v in listed if f"port={port}," in v + ","]
    if mine:
        parts.append("the master lists it as " + "; ".join(mine))
    else:
        parts.append(f"the master does not list it among its {len(listed)} replica(s)")
    if int(minfo.get("client_output_buffer_limit_disconnections", 0) or 0):
        parts.append("the master has dropped replicas for output-buffer limits (resync loop?)")
    return ", ".join(parts)


@action("baseline")
def run_baseline(ctx: RunContext, step: Step) -> str:
    ctx.facts["baseline"] = baseline(ctx, step.node)
    return "counters " + ", ".join(f"{k}={v}" for k, v in ctx.facts["baseline"].items())


@action("verify-sync", waits=True)
def verify_sync(ctx: RunContext, step: Step) -> str:
    """Which sync happened (counter deltas) vs the prediction; offsets converge; DBSIZE equal."""
    master = str(step.args["master"])
    predicted = str(ctx.facts.get("predicted_sync") or step.args.get("predicted", ""))
    before: dict[str, int] = ctx.facts.get("baseline", {})
    after = baseline(ctx, master)
    observed = "unknown"
    if before:
        if after["sync_full"] > before["sync_full"]:
            observed = "full"
        elif after["sync_partial_ok"] > before["sync_partial_ok"]:
            observed = "partial"
        else:
            observed = "none"
    ctx.facts["observed_sync"] = observed
    ctx.facts["counters"] = {k: after[k] - before.get(k, 0) for k in after}
    verdict = (
        "prediction confirmed"
        if observed == predicted
        else f"prediction mismatch: predicted {predicted}, observed {observed}"
    )
    ctx.facts["prediction_check"] = verdict
    if observed != predicted and observed != "unknown":
        ctx.warnings.append(verdict)
    rnode, mnode = ctx.node(step.node), ctx.node(master)
    compared = False
    for _ in range(40):
        mi, ri = mnode.info("replication", "keyspace"), rnode.info("replication", "keyspace")
        if mi.get("master_repl_offset") == ri.get("master_repl_offset"):
            mkeys, rkeys = _total_keys(mi), _total_keys(ri)
            if mkeys != rkeys:
                raise VerifyFailed(
                    f"{step.node} has {rkeys} keys but {master} has {mkeys} at the same offset",
                    hint="check for writes on the replica (replica-read-only no?)",
                )
            compared = True
            ctx.facts["offset"] = int(mi.get("master_repl_offset", 0))
            ctx.facts["keys"] = mkeys
            break
        ctx.sleep(0.05)
    if not compared:
        raise VerifyFailed(
            f"offsets of {step.node} and {master} did not converge",
            hint="writes may be too fast for the link; see 'redisops status'",
        )
    return f"{verdict}; offsets equal at {ctx.facts['offset']}; {ctx.facts['keys']} keys on both"


def _total_keys(info: dict[str, str]) -> int:
    from redisops.info import keyspace

    return sum(v["keys"] for v in keyspace(info).values())
