"""``switchover``: planned change of master with no lost write and no full resync.

Method ``redisops`` (default), the critical path in order:

1. ``CONFIG SET repl-ping-replica-period`` to its maximum on the master: its replication
   cron must not feed a 14-byte PING after the target has caught up, or the old master
   would end up *ahead* of the new master's ``second_repl_offset`` and need a full sync
   (§4.3; the "missing PING" hazard).
2. ``CLIENT PAUSE <timeout-ms> WRITE`` on the master: writes wait (they are not refused),
   reads go on; ``timeout-ms`` bounds the pause even if redisops dies here.
3. Poll the target's own ``master_repl_offset`` until it equals the master's (no need to
   wait for the once-a-second ``REPLCONF ACK``; ``WAIT`` would not work either, since a
   paused master sends no ``GETACK``).
4. ``REPLICAOF NO ONE`` on the target (the point of no return): new id, the old one valid
   as replid2 up to offset + 1.
5. ``REPLICAOF target`` on the old master: it caches itself at exactly that offset, so its
   ``PSYNC`` continues through replid2.
6. ``CLIENT UNPAUSE`` on the old master: the writes that waited now get ``READONLY``
   (never acknowledged, so never lost) and clients move to the new master.
7. Off the critical path: repoint every other replica, chained ones included, directly to
   the target; restore the PING period; verify (one master, all links up, partial
   resyncs only: ``sync_full`` unchanged everywhere, offsets converged, a journal key
   written on the new master read back from every replica).

Before step 4 a failure unpauses and restores: the cluster is as it was. After it, the
plan finishes forward and reports where each node is.

Method ``native``: Redis's own ``FAILOVER TO host port TIMEOUT ms``, polled to completion,
then the replicas it leaves chained behind the old master are repointed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from redisops.engine.predict import RateParams, predict_sync
from redisops.errors import (
    CommandFailed,
    RedisopsError,
    RolledBack,
    Unreachable,
    VerifyFailed,
    WaitTimeout,
)
from redisops.model import Address, Finding, NodeInfo, Plan, Step, Topology
from redisops.ops.common import (
    group_members,
    group_nodes,
    lock_steps,
    persist_refusal,
    persist_step,
    reachable_or_finding,
    sentinel_finding,
    unlock_step,
)
from redisops.ops.fence import unfence, write_fence_record
from redisops.ops.promotion import (
    JOURNAL_KEY,
    at_offset,
    command_refusals,
    followers_of,
    freeze_step,
    original_ping_period,
    partial_only_findings,
    promoted_view,
    reconnecting,
    repl_offset,
    restore_pings_step,
    unpause,
)
from redisops.plan import RunContext, action
from redisops.redis_node import RedisNode
from redisops.retry import NO_RETRY
from redisops.session import Session
from redisops.testhooks import hold
from redisops.topology import entry_address


def current_master(
    session: Session,
    topo: Topology,
    target: Address,
    master: str | None,
    read_more: Callable[[list[Address]], Topology] | None = None,
) -> tuple[Topology, Address]:
    """The master to switch away from: ``master`` if given, else the one Sentinel names
    (read with ``read_more`` when the topology lacks it), else the top of the target's tree."""
    from redisops.errors import BadInput
    from redisops.model import parse_target
    from redisops.ops.sentinel import discover_master

    if master:
        return topo, parse_target(master).address
    sentinel_master_addr = discover_master(session) if session.sentinels else None
    if sentinel_master_addr is not None:
        maddr = topo.canonical(sentinel_master_addr)
        if topo.get(maddr) is None:
            topo = (read_more or session.discover)([maddr])
            maddr = topo.canonical(sentinel_master_addr)
        return topo, maddr
    tnode = topo.get(target)
    if tnode is not None and not tnode.reachable:
        raise Unreachable(
            f"target {target} is unreachable: {tnode.error}", kind=tnode.error_kind or "unknown"
        )
    top = topo.root(tnode) if tnode is not None else None
    if top is None:
        raise BadInput(f"cannot tell the current master of {target}", hint="name it with --master")
    return topo, top.address


def _downgrade(master: NodeInfo, target: NodeInfo) -> Finding | None:
    """Refuse (forceable) a target whose server writes an older RDB format: a downgrade."""
    ms, ts = master.server, target.server
    if ms is None or ts is None or ms.rdb_format is None or ts.rdb_format is None:
        return None
    if ts.rdb_format >= ms.rdb_format:
        return None
    t, m = str(target.address), str(master.address)
    return Finding(
        "refuse",
        "version",
        f"{t} runs {ts}, older than {m} ({ms}): switching over to it is a downgrade "
        f"(what {ms} has and {ts} lacks stops working); upgrade {t} first",
        t,
        forceable=True,
    )


def plan_switchover(
    topo: Topology,
    master_addr: Address,
    target_addr: Address,
    session: Session,
    *,
    force: bool = False,
    via_sentinel: bool = False,
    method: str = "redisops",
    max_lag_bytes: int = 1024 * 1024,
    pause_timeout_ms: int = 5000,
    persist: bool = False,
) -> Plan:
    findings: list[Finding] = []
    master, f1 = reachable_or_finding(topo, master_addr, "master")
    target, f2 = reachable_or_finding(topo, target_addr, "target")
    findings += [f for f in (f1, f2) if f is not None]
    cluster = session.cluster_name
    if master is None or target is None:
        return Plan(
            "switchover", cluster, (), tuple(findings), summary="cannot plan: a node is unreachable"
        )
    m, t = str(master.address), str(target.address)
    if not master.is_master:
        findings.append(
            Finding(
                "refuse",
                "not_master",
                f"{m} is not a master (it replicates from {master.master_address}); "
                f"name the current master with --master",
                m,
            )
        )
    if master.address == target.address:
        return Plan(
            "switchover",
            cluster,
            (),
            tuple(findings),
            nothing_to_do=True,
            summary=f"{t} is already the master; nothing to do",
        )
    descendants = {d.address for d in topo.descendants(master)}
    if target.address not in descendants:
        findings.append(Finding("refuse", "not_a_replica", f"{t} does not replicate from {m}", t))
    if target.link != "up":
        findings.append(
            Finding("refuse", "link_down", f"{t}'s link to its master is {target.link}", t)
        )
    lag = topo.lag_bytes(target)
    if lag is None or lag > max_lag_bytes:
        findings.append(
            Finding(
                "refuse",
                "lagging",
                f"{t} lags {lag if lag is not None else '?'} bytes behind {m} "
                f"(--max-lag-bytes {max_lag_bytes})",
                t,
            )
        )
    if target.replica_priority == 0:
        findings.append(
            Finding(
                "refuse",
                "priority_zero",
                f"{t} has replica-priority 0 (marked never to be promoted)",
                t,
                forceable=True,
            )
        )
    downgrade = _downgrade(master, target)
    if downgrade is not None:
        findings.append(downgrade)
    if not via_sentinel:
        sentinel = sentinel_finding([master, target], session, force)
        if sentinel is not None:
            findings.append(
                Finding(
                    "refuse",
                    "sentinel_managed",
                    sentinel.message.replace("--force", "--via-sentinel, or --force"),
                    forceable=True,
                )
            )
    others = [
        n
        for n in topo.descendants(master)
        if n.address != target.address
        and n.address not in {d.address for d in topo.descendants(target)}
    ]
    lost = _unreachable_replicas(topo, [master, *others])
    for name, parent in lost.items():
        findings.append(
            Finding(
                "warn",
                "replica_unreachable",
                f"{name} (a replica of {parent}) is unreachable: it cannot be repointed now, "
                f"so the switchover will end partially applied (exit 8); attach it to {t} once "
                f"it is back (if it announces another address, give its real one as a SEED)",
                name,
            )
        )
    movable = [n for n in others if n.reachable]
    findings += command_refusals(
        {
            "REPLICAOF": [target, master, *movable],
            "CLIENT": [master] if method == "redisops" and not via_sentinel else [],
            "FAILOVER": [master] if method == "native" and not via_sentinel else [],
        }
    )
    if persist:
        findings += [
            f for f in [persist_refusal([target, master, *movable], session)] if f is not None
        ]
    ping_period, ping_note = original_ping_period(master)
    if ping_note is not None and method == "redisops":
        findings.append(ping_note)
    # prediction: every node continues through the target's replid2
    offset = master.offset
    promoted = promoted_view(target, offset)
    params = RateParams()
    preds = [predict_sync(promoted, at_offset(master, offset), params)]
    preds += [predict_sync(promoted, at_offset(n, offset), params) for n in movable]
    full = [p for p in preds if p.sync != "partial"]
    for p in full:
        findings.append(
            Finding(
                "warn",
                "full_resync",
                f"{p.replica} would need a full resync: {p.reason}",
                p.replica,
            )
        )
    followers = [master, *movable, *(d for d in topo.descendants(target) if d.reachable)]
    findings += partial_only_findings(target, followers, {p.replica: p.sync for p in preds})
    prediction: dict[str, Any] = {
        "sync": "partial" if not full else "full",
        "reason": f"{t} is promoted at {m}'s offset ({offset} now) with writes paused: its old id "
        f"{master.replid[:8]} stays valid as replid2, so the old master and every replica "
        f"continue with PSYNC",
        "transfer_bytes": sum(p.transfer_bytes for p in preds),
        "estimated_seconds": 0.0,
        "write_pause": "until the target has the master's offset and the old master is demoted "
        f"(bounded by CLIENT PAUSE {pause_timeout_ms} ms)",
        "risks": [r for p in preds for r in p.risks],
        "replicas": [p.to_dict() for p in preds],
        "method": method,
    }
    if via_sentinel:
        return _plan_via_sentinel(
            topo, master, target, session, findings, prediction, pause_timeout_ms, ping_period
        )
    steps: list[Step] = []
    n = 1
    steps.append(lock_steps(m, n))
    n += 1
    steps.append(
        Step(
            n,
            m,
            "baseline-all",
            "record sync counters and the PING period everywhere",
            command=("INFO", "stats"),
            verify="counters read",
            args={"nodes": [m, t, *[str(x.address) for x in movable]]},
        )
    )
    n += 1
    other_names = [str(x.address) for x in movable]
    if method == "native":
        steps.append(
            Step(
                n,
                m,
                "native-failover",
                f"FAILOVER TO {t} and wait for it to complete",
                command=(
                    "FAILOVER",
                    "TO",
                    target.address.host,
                    str(target.address.port),
                    "TIMEOUT",
                    str(pause_timeout_ms),
                ),
                precondition=f"{t} is online and caught up",
                commit=True,
                idempotent=False,
                verify="master_failover_state back to no-failover; target is master",
                args={"target": t, "timeout_ms": pause_timeout_ms},
            )
        )
        n += 1
    else:
        if ping_period is not None:
            steps.append(freeze_step(n, m, ping_period))
            n += 1
        steps.append(
            Step(
                n,
                m,
                "switch",
                f"pause writes on {m}, wait until {t} has its offset, promote {t}, "
                f"demote {m} under it, unpause",
                command=("CLIENT", "PAUSE", str(pause_timeout_ms), "WRITE"),
                precondition=f"{t} link up, lag <= {max_lag_bytes} bytes",
                verify=f"{t} is master at {m}'s offset; {m} replicates from {t}",
                commit=True,
                idempotent=False,
                args={"target": t, "timeout_ms": pause_timeout_ms, "master_run_id": master.run_id},
            )
        )
        n += 1
    steps.append(
        Step(
            n,
            t,
            "repoint",
            f"repoint every other replica directly to {t}",
            command=("REPLICAOF", target.address.host, str(target.address.port)),
            verify="each replica's link is up with the new master",
            args={"nodes": [*other_names, *lost], "target": t, "on_failure": "continue"},
        )
    )
    n += 1
    if method != "native" and ping_period is not None:
        steps.append(restore_pings_step(n, m, ping_period))
        n += 1
    if persist:
        for name in [t, m, *other_names]:
            steps.append(persist_step(n, name, "its new role"))
            n += 1
    steps.append(
        Step(
            n,
            t,
            "verify-switchover",
            "verify the new topology",
            verify=f"{t} the only master; every link up; sync_full unchanged; offsets converge; "
            f"journal key read back from every replica",
            args={
                "nodes": [m, *other_names],
                "target": t,
                "followers": followers_of(topo, target),
                "on_failure": "continue",
            },
        )
    )
    n += 1
    steps.append(unlock_step(t, n))
    summary = (
        f"switchover {m} -> {t} ({method}): writes paused briefly, {len(movable) + 1} node(s) "
        f"continue with partial resyncs"
        + (f"; {len(lost)} unreachable replica(s) cannot be moved" if lost else "")
    )
    return Plan(
        "switchover",
        cluster,
        tuple(steps),
        tuple(findings),
        prediction,
        summary,
        touched=tuple(dict.fromkeys((t, m, *other_names, *lost, *group_nodes(topo)))),
        members=group_members(topo),
    )


def _unreachable_replicas(topo: Topology, parents: list[NodeInfo]) -> dict[str, str]:
    """Replicas listed by ``parents`` that could not be reached (an unreachable replica has
    no role, so it is no descendant), with the parent that lists each."""
    out: dict[str, str] = {}
    for parent in parents:
        for entry in parent.replicas if parent.reachable else ():
            addr = entry_address(entry)
            lost = topo.get(addr) if addr is not None else None
            if lost is not None and not lost.reachable and lost.unfit is None:
                out.setdefault(str(lost.address), str(parent.address))
    return out


def _plan_via_sentinel(
    topo: Topology,
    master: NodeInfo,
    target: NodeInfo,
    session: Session,
    findings: list[Finding],
    prediction: dict[str, Any],
    pause_timeout_ms: int,
    ping_period: str | None,
) -> Plan:
    """Sentinel does the promotion, redisops makes it lossless: writes are paused on the
    master until every replica Sentinel may choose has its offset, then ``SENTINEL
    FAILOVER``; once Sentinel names the new master, the old one is made its replica at
    that same offset and unpaused (Sentinel alone would leave it writable for seconds)."""
    m, t = str(master.address), str(target.address)
    if not session.sentinels:
        findings.append(
            Finding(
                "refuse",
                "no_sentinel",
                "--via-sentinel needs --sentinel HOST:PORT (or sentinels in the inventory)",
            )
        )
    from redisops.ops.sentinel import master_name

    name = master_name(session) if session.sentinels else None
    if session.sentinels and name is None:
        findings.append(
            Finding(
                "refuse",
                "sentinel_master_name",
                "cannot tell which master the sentinels call this set: name it with "
                "--sentinel-master",
            )
        )
    name = name or "?"
    sentinel = str(session.sentinels[0]) if session.sentinels else "?"
    # Sentinel reconfigures the replicas it knows: the master's own (chained ones stay
    # behind their parent, which follows the new master)
    children = [n for n in topo.children(master) if n.reachable]
    others = [str(n.address) for n in children if n.address != target.address]
    # the ones Sentinel may promote: online, priority not 0
    candidates = [str(n.address) for n in children if n.link == "up" and n.replica_priority != 0]
    freeze = [freeze_step(3, m, ping_period)] if ping_period is not None else []
    restore = [restore_pings_step(5, m, ping_period)] if ping_period is not None else []
    steps = (
        lock_steps(m, 1),
        Step(
            2,
            m,
            "baseline-all",
            "record sync counters everywhere",
            command=("INFO", "stats"),
            verify="counters read",
            args={"nodes": [m, t, *others]},
        ),
        *freeze,
        Step(
            4,
            sentinel,
            "sentinel-failover",
            f"pause writes on {m}, wait until {', '.join(candidates) or 'its replicas'} have "
            f"its offset, ask Sentinel to fail {name} over, demote {m} under the new master, "
            f"unpause",
            command=("SENTINEL", "FAILOVER", name),
            precondition=f"CLIENT PAUSE {pause_timeout_ms} WRITE on {m}; replicas caught up",
            commit=True,
            idempotent=False,
            verify="SENTINEL get-master-addr-by-name changes and that node reports role master",
            args={
                "name": name,
                "master": m,
                "prefer": t,
                "candidates": candidates,
                "timeout_ms": pause_timeout_ms,
            },
        ),
        *restore,
        Step(
            6,
            t,
            "verify-switchover",
            "verify the new topology",
            verify="one master; every link up; sync_full unchanged; journal key read back",
            args={
                "nodes": [m, *others],
                "target": t,
                "from_sentinel": True,
                "timeout": 30.0,
                "on_failure": "continue",
            },
        ),
    )
    prediction = {
        **prediction,
        "reason": "Sentinel chooses and promotes a replica, then reconfigures the others; "
        "writes are paused on the old master meanwhile, so every replica continues with "
        "PSYNC (Sentinel's choice follows priority, offset, run id: it may differ from --to)",
    }
    return Plan(
        "switchover",
        session.cluster_name,
        steps,
        tuple(findings),
        prediction,
        f"switchover of {name} through Sentinel {sentinel}",
        touched=tuple(dict.fromkeys((m, t, *others, *group_nodes(topo)))),
        members=group_members(topo),
    )


# ----------------------------------------------------------------------------- routines

#: Verification stops waiting for a node that has not answered for this long.
GIVE_UP_UNREACHABLE_S = 2.0


def _counters(ctx: RunContext, name: str) -> dict[str, int]:
    info = ctx.node(name).info("stats")
    return {k: int(info.get(k, 0)) for k in ("sync_full", "sync_partial_ok", "sync_partial_err")}


@action("baseline-all")
def baseline_all(ctx: RunContext, step: Step) -> str:
    counters = {}
    for name in step.args["nodes"]:
        try:
            counters[name] = _counters(ctx, name)
        except RedisopsError:
            continue
    ctx.facts["counters_before"] = counters
    return f"{len(counters)} node(s)"


@action("freeze-pings")
def freeze_pings(ctx: RunContext, step: Step) -> str:
    assert step.command is not None
    ctx.node(step.node).execute(*step.command)
    ctx.facts["pings_frozen"] = step.node
    return "replication PINGs suspended for the switch"


def _wait_for_offset(
    ctx: RunContext, mnode: RedisNode, tnode: RedisNode, deadline: float, budget_ms: float
) -> int:
    """Until the target has the (paused) master's offset; returns it. Every read is bounded
    by the pause budget, so a target that stops answering cannot stretch the pause."""
    master, target = str(mnode.address), str(tnode.address)
    while True:
        try:
            moff = repl_offset(mnode, deadline - time.perf_counter())
        except Unreachable as exc:
            raise Unreachable(
                f"{master} stopped answering while {target} was catching up "
                f"({exc.message.removeprefix(master + ': ')}); {target} was not promoted",
                hint=f"if {master} is down, promote a replica with "
                f"'redisops failover --master {master} --auto'",
            ) from None
        try:
            toff = repl_offset(tnode, deadline - time.perf_counter())
        except Unreachable as exc:
            if time.perf_counter() < deadline:
                raise
            raise WaitTimeout(
                f"{target} did not answer within the {budget_ms:.0f} ms pause budget "
                f"({exc.message.removeprefix(target + ': ')})"
            ) from None
        if toff == moff:
            return moff
        if toff > moff:
            raise CommandFailed(
                f"{target} is ahead of {master} ({toff} > {moff}): not its replica?"
            )
        if time.perf_counter() >= deadline:
            raise WaitTimeout(
                f"{target} did not reach {master}'s offset {moff} (at {toff}) within "
                f"{budget_ms:.0f} ms of paused writes"
            )
        ctx.progress.update("target catching up", toff, moff)
        time.sleep(0.0005)


def _role(ctx: RunContext, name: str) -> str | None:
    """The node's role read on a new connection (None when it does not answer)."""
    try:
        with ctx.session.fresh_node(Address.parse(name), NO_RETRY) as node:
            reply = node.execute("ROLE", timeout=1.0)
    except RedisopsError:
        return None
    return str(reply[0]) if isinstance(reply, list) and reply else None


@action("switch")
def switch(ctx: RunContext, step: Step) -> str:
    """The critical path: pause, catch up, promote, demote, unpause (timed).

    Before the promotion any failure unpauses and raises (the plan rolls back). From the
    promotion on it never raises: whatever cannot be done is reported and left to the
    verification, so the plan finishes forward.
    """
    master = step.node
    target = str(step.args["target"])
    timeout_ms = int(step.args["timeout_ms"])
    budget_ms = timeout_ms * 0.8
    mnode, tnode = ctx.node(master), ctx.node(target)
    tnode.connect()
    mnode.connect()
    t0 = time.perf_counter()
    try:
        mnode.execute("CLIENT", "PAUSE", str(timeout_ms), "WRITE")
    except CommandFailed as exc:  # refused (ACL, renamed): writes were never paused
        raise type(exc)(f"{exc.message}; writes were not paused", hint=exc.hint) from None
    except RedisopsError as exc:  # no reply: the pause may have been applied
        raise _unpaused(mnode, exc) from None
    except BaseException:
        unpause(mnode)
        raise
    try:
        hold("switch-paused")
        moff = _wait_for_offset(ctx, mnode, tnode, t0 + budget_ms / 1000.0, budget_ms)
    except RedisopsError as exc:
        raise _unpaused(mnode, exc) from None
    except BaseException:
        unpause(mnode)
        raise
    caught_up = time.perf_counter()
    with ctx.critical():  # promote, demote, unpause: no signal may cut this short
        return _promote_and_demote(ctx, step, mnode, tnode, moff, t0, caught_up)


def _unpaused(mnode: RedisNode, exc: RedisopsError) -> RedisopsError:
    """``exc`` once the master is unpaused, its message saying whether that worked."""
    left = unpause(mnode)
    note = "; writes unpaused" if left is None else f"; could not unpause ({left})"
    return type(exc)(f"{exc.message}{note}", hint=exc.hint)


def _promote_and_demote(
    ctx: RunContext,
    step: Step,
    mnode: RedisNode,
    tnode: RedisNode,
    moff: int,
    t0: float,
    caught_up: float,
) -> str:
    """The second half of :func:`switch`, once the target has the paused master's offset."""
    master, target = step.node, str(step.args["target"])
    timeout_ms = int(step.args["timeout_ms"])
    budget_ms = timeout_ms * 0.8
    taddr = Address.parse(target)
    try:
        tnode.execute("REPLICAOF", "NO", "ONE", timeout=max(budget_ms / 1000.0, 1.0))
    except CommandFailed:
        unpause(mnode)
        raise
    except Unreachable as exc:
        if _role(ctx, target) != "master":
            # no reply: it may still execute the command later. Record it as fenced under
            # the old master so 'status' reports it if it ever shows up as a master.
            unpause(mnode)
            try:
                write_fence_record(mnode, target, master, op=ctx.audit.op_id)
            except RedisopsError:
                pass
            raise Unreachable(
                f"{target} did not answer REPLICAOF NO ONE ({exc.message}); {master} takes "
                f"writes again, but {target} may still turn master when it answers",
                hint=f"check it with 'redisops status {master} {target}'; if it is a master, "
                f"run 'redisops fence {target} --to {master}'",
            ) from None
    ctx.mark_committed()
    promoted = time.perf_counter()
    ctx.facts["lock_release_on"] = target
    ctx.facts["promoted"] = target
    ctx.facts["switch_offset"] = moff
    demote_error: RedisopsError | None = None
    for _attempt in range(2):
        try:
            mnode.execute("REPLICAOF", taddr.host, str(taddr.port), timeout=2.0)
            demote_error = None
            break
        except CommandFailed as exc:
            demote_error = exc
            break
        except Unreachable as exc:
            demote_error = exc
            ctx.sleep(0.05)
    unpause_error = unpause(mnode)
    t1 = time.perf_counter()
    ctx.facts["pause_ms"] = (t1 - t0) * 1000.0
    ctx.facts["catch_up_ms"] = (caught_up - t0) * 1000.0
    ctx.facts["promote_ms"] = (promoted - t0) * 1000.0
    if demote_error is not None:
        ctx.facts["demote_failed"] = master
        try:
            write_fence_record(
                tnode,
                master,
                target,
                old_run_id=step.args.get("master_run_id"),
                op=ctx.audit.op_id,
            )
            fenced = "recorded as fenced"
        except RedisopsError as exc:
            fenced = f"could not be recorded as fenced ({exc})"
        ctx.warnings.append(
            f"{target} was promoted at offset {moff}, but {master} could not be made its "
            f"replica ({demote_error}); {master} is {fenced}: if it answers as a master, run "
            f"'redisops fence {master} --to {target}'"
        )
        return f"{target} promoted at offset {moff}; {master} NOT demoted ({demote_error})"
    if unpause_error is not None:
        ctx.warnings.append(
            f"could not unpause {master} ({unpause_error}); the pause ends by itself after "
            f"{timeout_ms} ms"
        )
    return (
        f"writes paused {ctx.facts['pause_ms']:.1f} ms; {target} promoted at offset {moff}; "
        f"{master} now replicates from it"
    )


@action("native-failover")
def native_failover(ctx: RunContext, step: Step) -> str:
    master = step.node
    target = str(step.args["target"])
    timeout_ms = int(step.args["timeout_ms"])
    assert step.command is not None
    mnode = ctx.node(master)
    t0 = time.perf_counter()
    mnode.execute(*step.command)
    deadline = t0 + timeout_ms / 1000.0 + 5.0
    with ctx.critical():  # Redis runs the FAILOVER now: an interrupt waits for its outcome
        while True:
            state = mnode.info("replication").get("master_failover_state", "no-failover")
            if state == "no-failover":
                break
            if time.perf_counter() > deadline:
                raise WaitTimeout(f"FAILOVER on {master} still {state} after {deadline - t0:.0f}s")
            time.sleep(0.002)
        t1 = time.perf_counter()
        role = _role(ctx, target)
        if role == "master":
            ctx.mark_committed()
            ctx.facts["lock_release_on"] = target
            ctx.facts["promoted"] = target
            ctx.facts["pause_ms"] = (t1 - t0) * 1000.0
    if role != "master":
        raise RolledBack(
            f"FAILOVER ended but {target} is {role or 'not answering'}: Redis aborted it and "
            f"rolled back ({master} is still the master; see its log)"
        )
    return f"FAILOVER done in {ctx.facts['pause_ms']:.1f} ms; {target} is master"


@action("repoint")
def repoint(ctx: RunContext, step: Step) -> str:
    taddr = Address.parse(str(step.args["target"]))
    done, failed, missed = [], [], []
    for name in step.args["nodes"]:
        try:
            ctx.node(name).execute("REPLICAOF", taddr.host, str(taddr.port))
            done.append(name)
        except RedisopsError as exc:
            failed.append(f"{name}: {exc}")
            missed.append(name)
    ctx.facts["not_repointed"] = missed
    if failed:
        raise CommandFailed(
            f"could not repoint {len(failed)} replica(s): " + "; ".join(failed),
            hint=f"repoint them with 'redisops attach NODE --to {taddr}' once reachable",
        )
    return f"repointed {len(done)} replica(s)" if done else "no other replica"


def _check_replica(node: RedisNode, taddr: Address, token: str) -> str | None:
    """None when ``node`` replicates from ``taddr`` with its link up and has the journal."""
    info = node.info("replication")
    host, port = info.get("master_host"), info.get("master_port")
    if info.get("role") != "slave" or host != taddr.host or port != str(taddr.port):
        return f"replicates from {host}:{port} (role {info.get('role')})"
    if info.get("master_link_status") != "up":
        return "link down"
    raw = node.execute("GET", JOURNAL_KEY)
    try:
        op = json.loads(raw).get("op") if raw else None
    except ValueError:
        op = None
    return None if op == token else "journal key not replicated yet"


def _drop_journal(node: RedisNode, token: str) -> None:
    """Delete the journal key once every replica has read it back: it served its purpose
    and must not linger in the operator's dataset (only ours: another operation's stays)."""
    try:
        raw = node.execute("GET", JOURNAL_KEY)
        if raw and json.loads(raw).get("op") == token:
            node.execute("DEL", JOURNAL_KEY)
    except (RedisopsError, ValueError):
        pass  # it expires by itself


@action("verify-switchover", waits=True)
def verify_switchover(ctx: RunContext, step: Step) -> str:
    """One master; every node its replica with the link up and the journal key read back
    (``followers``: replicas already under the new master, at any depth, back on their own
    master); no full resync beyond what the plan predicted (``expected_full``)."""
    target = str(step.args["target"])
    nodes = [str(n) for n in step.args["nodes"]]
    followers = {str(k): str(v) for k, v in dict(step.args.get("followers") or {}).items()}
    expected_full = int(step.args.get("expected_full", 0))
    if step.args.get("from_sentinel") and ctx.facts.get("new_master"):
        actual = str(ctx.facts["new_master"])  # Sentinel may have picked another replica
        nodes = sorted({*nodes, target} - {actual})
        followers.pop(actual, None)
        nodes = [x for x in nodes if x not in followers]
        target = actual
    tnode = ctx.node(target)
    # a promotion may have closed our connection (Sentinel kills clients): reconnect once
    if reconnecting(tnode, lambda: tnode.info("replication")).get("role") != "master":
        raise VerifyFailed(f"{target} is not a master")
    token = ctx.audit.op_id
    journal = json.dumps(
        {"op": token, "operation": ctx.plan.operation, "master": target, "at": time.time()}
    )
    reconnecting(tnode, lambda: tnode.execute("SET", JOURNAL_KEY, journal, "PX", 86_400_000))
    if unfence(tnode, target):  # a legitimate master now: it no longer is a stale one
        ctx.warnings.append(f"{target} was recorded as fenced; the record is cleared")
    problems: dict[str, str] = {}
    for name in ctx.facts.get("not_repointed", []):
        if name in nodes:
            problems[name] = "not repointed (see the repoint step)"
    if ctx.facts.get("demote_failed") in nodes:
        problems[str(ctx.facts["demote_failed"])] = "old master not demoted (see the switch step)"
    masters = dict.fromkeys(nodes, target)
    masters.update({f: m for f, m in followers.items() if f != target})
    pending = {n for n in masters if n not in problems}
    silent_since: dict[str, float] = {}
    deadline = time.monotonic() + float(step.args.get("timeout", 15.0))
    while pending and time.monotonic() < deadline:
        for name in sorted(pending):
            try:
                problem = _check_replica(ctx.node(name), Address.parse(masters[name]), token)
            except Unreachable as exc:
                since = silent_since.setdefault(name, time.monotonic())
                problems[name] = str(exc)
                if time.monotonic() - since > GIVE_UP_UNREACHABLE_S:
                    pending.discard(name)
                continue
            except RedisopsError as exc:
                problem = str(exc)
            silent_since.pop(name, None)
            if problem is None:
                pending.discard(name)
                problems.pop(name, None)
            else:
                problems[name] = problem
        if pending:
            ctx.sleep(0.02)
    before: dict[str, dict[str, int]] = ctx.facts.get("counters_before", {})
    full = []
    full_after: dict[str, int] = {}
    for name, counters in before.items():
        try:
            after = _counters(ctx, name)
        except RedisopsError:
            continue
        full_after[name] = after["sync_full"]
        if after["sync_full"] > counters["sync_full"]:
            full.append(f"{name} (+{after['sync_full'] - counters['sync_full']})")
    full_count = sum(
        after - before[name]["sync_full"]
        for name, after in full_after.items()
        if after > before[name]["sync_full"]
    )
    ctx.facts["full_resyncs"] = full_count
    if problems:  # the journal key stays (it expires in 24 h): evidence for the operator
        raise VerifyFailed("; ".join(f"{n}: {problems[n]}" for n in sorted(problems)))
    _drop_journal(tnode, token)
    if full_count > expected_full:
        raise VerifyFailed(
            "full resync happened on "
            + ", ".join(full)
            + (f" (the plan predicted {expected_full})" if expected_full else "")
        )
    linked = f"{len(masters)} replica(s) linked and caught up (journal read back)"
    if full_count:
        return f"{target} master; {linked}; {full_count} full resync(s), as predicted"
    return f"{target} master; {linked}; no full resync"
