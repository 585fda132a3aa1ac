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
from typing import Any

from redisops.engine.predict import RateParams, predict_sync
from redisops.engine.rules import rdb_version
from redisops.errors import CommandFailed, RedisopsError, VerifyFailed, WaitTimeout
from redisops.model import Address, Finding, NodeInfo, Plan, Step, Topology
from redisops.ops.common import lock_steps, reachable_or_finding, sentinel_finding, unlock_step
from redisops.plan import RunContext, action
from redisops.session import Session

PING_FREEZE = "2147483647"
JOURNAL_KEY = "redisops:journal"


def _promoted_view(target: NodeInfo, offset: int) -> NodeInfo:
    """The target as it will look right after ``REPLICAOF NO ONE`` at ``offset`` (§4.1)."""
    info = dict(target.info)
    info.update(
        {
            "role": "master",
            "master_replid": "f" * 40,  # a fresh id nobody knows
            "master_replid2": target.replid,
            "second_repl_offset": str(offset + 1),
            "master_repl_offset": str(offset),
        }
    )
    for k in ("master_host", "master_port", "master_link_status"):
        info.pop(k, None)
    return NodeInfo(target.address, True, None, info, target.config, None, target.read_at)


def _at_offset(node: NodeInfo, offset: int) -> NodeInfo:
    """``node`` once it has applied everything up to ``offset`` (caught up during the pause)."""
    info = dict(node.info)
    info["master_repl_offset"] = str(offset)
    if node.is_replica:
        info["slave_repl_offset"] = str(offset)
        info["slave_read_repl_offset"] = str(offset)
    return NodeInfo(node.address, True, None, info, node.config, node.role_reply, node.read_at)


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
    mv, tv = rdb_version(master.version or ""), rdb_version(target.version or "")
    if mv is not None and tv is not None and tv < mv:
        findings.append(
            Finding(
                "refuse",
                "version",
                f"{t} runs Redis {target.version}, older than {m} ({master.version}): the other "
                f"replicas could not load its RDB if they ever need a full sync",
                t,
                forceable=True,
            )
        )
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
    unreachable = [n for n in others if not n.reachable]
    for lost in unreachable:
        findings.append(
            Finding(
                "warn",
                "replica_unreachable",
                f"{lost.address} is unreachable: it cannot be repointed now (fence it later)",
                str(lost.address),
            )
        )
    movable = [n for n in others if n.reachable]
    # prediction: every node continues through the target's replid2
    offset = master.offset
    promoted = _promoted_view(target, offset)
    params = RateParams()
    preds = [predict_sync(promoted, _at_offset(master, offset), params)]
    preds += [predict_sync(promoted, _at_offset(n, offset), params) for n in movable]
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
        return _plan_via_sentinel(topo, master, target, session, findings, prediction)
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
        steps.append(
            Step(
                n,
                m,
                "freeze-pings",
                f"stop {m}'s replication PINGs during the switch",
                command=("CONFIG", "SET", "repl-ping-replica-period", PING_FREEZE),
                verify="CONFIG SET returns OK",
                rollback=(
                    "CONFIG",
                    "SET",
                    "repl-ping-replica-period",
                    master.config.get("repl-ping-replica-period", "10"),
                ),
                args={"optional": True},
            )
        )
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
                args={"target": t, "timeout_ms": pause_timeout_ms},
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
            args={"nodes": other_names, "target": t, "on_failure": "continue"},
        )
    )
    n += 1
    if method != "native":
        steps.append(
            Step(
                n,
                m,
                "command",
                f"restore {m}'s PING period",
                command=(
                    "CONFIG",
                    "SET",
                    "repl-ping-replica-period",
                    master.config.get("repl-ping-replica-period", "10"),
                ),
                verify="CONFIG SET returns OK",
                args={"on_failure": "continue"},
            )
        )
        n += 1
    if persist:
        for name in [t, m, *other_names]:
            steps.append(
                Step(
                    n,
                    name,
                    "config-rewrite",
                    f"persist {name}'s new role in its config file",
                    command=("CONFIG", "REWRITE"),
                    verify="CONFIG REWRITE returns OK",
                    args={"on_failure": "continue"},
                )
            )
            n += 1
    steps.append(
        Step(
            n,
            t,
            "verify-switchover",
            "verify the new topology",
            verify=f"{t} the only master; every link up; sync_full unchanged; offsets converge; "
            f"journal key read back from every replica",
            args={"nodes": [m, *other_names], "target": t, "on_failure": "continue"},
        )
    )
    n += 1
    steps.append(unlock_step(t, n))
    summary = (
        f"switchover {m} -> {t} ({method}): writes paused briefly, {len(movable) + 1} node(s) "
        f"continue with partial resyncs"
    )
    return Plan(
        "switchover",
        cluster,
        tuple(steps),
        tuple(findings),
        prediction,
        summary,
        touched=(t, m, *other_names),
    )


def _plan_via_sentinel(
    topo: Topology,
    master: NodeInfo,
    target: NodeInfo,
    session: Session,
    findings: list[Finding],
    prediction: dict[str, Any],
) -> Plan:
    m, t = str(master.address), str(target.address)
    if not session.sentinels:
        findings.append(
            Finding(
                "refuse",
                "no_sentinel",
                "--via-sentinel needs --sentinel HOST:PORT (or sentinels in the inventory)",
            )
        )
    name = session.sentinel_master or "?"
    sentinel = str(session.sentinels[0]) if session.sentinels else "?"
    others = [
        str(n.address)
        for n in topo.descendants(master)
        if n.address != target.address and n.reachable
    ]
    steps = (
        Step(
            1,
            sentinel,
            "sentinel-failover",
            f"ask Sentinel to fail {name} over and wait for the new master",
            command=("SENTINEL", "FAILOVER", name),
            commit=True,
            idempotent=False,
            verify="SENTINEL get-master-addr-by-name changes and that node reports role master",
            args={"name": name, "master": m, "prefer": t},
        ),
        Step(
            2,
            t,
            "verify-switchover",
            "verify the new topology",
            verify="one master; every link up; offsets converge",
            args={
                "nodes": [m, *others],
                "target": t,
                "from_sentinel": True,
                "on_failure": "continue",
            },
        ),
    )
    prediction = {
        **prediction,
        "reason": "Sentinel chooses and promotes a replica, then reconfigures the others "
        "(its choice follows priority, offset, run id: it may differ from --to)",
    }
    return Plan(
        "switchover",
        session.cluster_name,
        steps,
        tuple(findings),
        prediction,
        f"switchover of {name} through Sentinel {sentinel}",
        touched=(m, t, *others),
    )


# ----------------------------------------------------------------------------- routines


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


def _offset(ctx: RunContext, name: str) -> int:
    return int(ctx.node(name).info("replication").get("master_repl_offset", 0))


@action("switch")
def switch(ctx: RunContext, step: Step) -> str:
    """The critical path: pause, catch up, promote, demote, unpause (timed)."""
    master = step.node
    target = str(step.args["target"])
    timeout_ms = int(step.args["timeout_ms"])
    mnode, tnode = ctx.node(master), ctx.node(target)
    taddr = Address.parse(target)
    tnode.connect()
    mnode.connect()
    t0 = time.perf_counter()
    mnode.execute("CLIENT", "PAUSE", str(timeout_ms), "WRITE")
    promoted = False
    try:
        deadline = t0 + timeout_ms / 1000.0 * 0.8
        while True:
            moff = int(mnode.info("replication").get("master_repl_offset", 0))
            toff = int(tnode.info("replication").get("master_repl_offset", 0))
            if toff == moff:
                break
            if toff > moff:
                raise CommandFailed(
                    f"{target} is ahead of {master} ({toff} > {moff}): not its replica?"
                )
            if time.perf_counter() > deadline:
                raise WaitTimeout(
                    f"{target} did not reach {master}'s offset {moff} (at {toff}) within "
                    f"{timeout_ms * 0.8:.0f} ms of paused writes"
                )
            ctx.progress.update("target catching up", toff, moff)
            time.sleep(0.0005)
        caught_up = time.perf_counter()
        tnode.execute("REPLICAOF", "NO", "ONE")
        promoted = True
        ctx.facts["lock_release_on"] = target
        mnode.execute("REPLICAOF", taddr.host, str(taddr.port))
        mnode.execute("CLIENT", "UNPAUSE")
        t1 = time.perf_counter()
    except RedisopsError:
        if not promoted:
            try:
                mnode.execute("CLIENT", "UNPAUSE")
            except RedisopsError:
                pass
        raise
    ctx.facts["pause_ms"] = (t1 - t0) * 1000.0
    ctx.facts["catch_up_ms"] = (caught_up - t0) * 1000.0
    ctx.facts["switch_offset"] = moff
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
    while True:
        state = mnode.info("replication").get("master_failover_state", "no-failover")
        if state == "no-failover":
            break
        if time.perf_counter() > deadline:
            raise WaitTimeout(f"FAILOVER on {master} still {state} after {deadline - t0:.0f}s")
        time.sleep(0.002)
    t1 = time.perf_counter()
    role = ctx.node(target).info("replication").get("role")
    if role != "master":
        raise CommandFailed(
            f"FAILOVER finished but {target} is {role}: Redis aborted it (see its log)"
        )
    ctx.facts["lock_release_on"] = target
    ctx.facts["pause_ms"] = (t1 - t0) * 1000.0
    return f"FAILOVER done in {ctx.facts['pause_ms']:.1f} ms; {target} is master"


@action("repoint")
def repoint(ctx: RunContext, step: Step) -> str:
    taddr = Address.parse(str(step.args["target"]))
    done, failed = [], []
    for name in step.args["nodes"]:
        try:
            ctx.node(name).execute("REPLICAOF", taddr.host, str(taddr.port))
            done.append(name)
        except RedisopsError as exc:
            failed.append(f"{name}: {exc}")
    if failed:
        raise CommandFailed(
            f"could not repoint {len(failed)} replica(s): " + "; ".join(failed),
            hint=f"repoint them with 'redisops attach NODE --to {taddr}' once reachable",
        )
    return f"repointed {len(done)} replica(s)" if done else "no other replica"


@action("verify-switchover")
def verify_switchover(ctx: RunContext, step: Step) -> str:
    target = str(step.args["target"])
    nodes = [str(n) for n in step.args["nodes"]]
    if step.args.get("from_sentinel") and ctx.facts.get("new_master"):
        actual = str(ctx.facts["new_master"])  # Sentinel may have picked another replica
        nodes = sorted({*nodes, target} - {actual})
        target = actual
    tnode = ctx.node(target)
    if tnode.info("replication").get("role") != "master":
        raise VerifyFailed(f"{target} is not a master")
    token = ctx.audit.op_id
    tnode.execute(
        "SET",
        JOURNAL_KEY,
        json.dumps(
            {"op": token, "operation": ctx.plan.operation, "master": target, "at": time.time()}
        ),
        "PX",
        86_400_000,
    )
    deadline = time.monotonic() + 15.0
    pending = set(nodes)
    problems: dict[str, str] = {}
    taddr = Address.parse(target)
    while pending and time.monotonic() < deadline:
        for name in sorted(pending):
            try:
                node = ctx.node(name)
                info = node.info("replication")
                host, port = info.get("master_host"), info.get("master_port")
                if info.get("role") != "slave" or host != taddr.host or port != str(taddr.port):
                    problems[name] = f"replicates from {host}:{port} (role {info.get('role')})"
                    continue
                if info.get("master_link_status") != "up":
                    problems[name] = "link down"
                    continue
                raw = node.execute("GET", JOURNAL_KEY)
                if not raw or json.loads(raw).get("op") != token:
                    problems[name] = "journal key not replicated yet"
                    continue
                pending.discard(name)
                problems.pop(name, None)
            except RedisopsError as exc:
                problems[name] = str(exc)
        if pending:
            ctx.sleep(0.02)
    before: dict[str, dict[str, int]] = ctx.facts.get("counters_before", {})
    full = []
    for name, counters in before.items():
        try:
            after = _counters(ctx, name)
        except RedisopsError:
            continue
        if after["sync_full"] > counters["sync_full"]:
            full.append(f"{name} (+{after['sync_full'] - counters['sync_full']})")
    ctx.facts["full_resyncs"] = len(full)
    if pending:
        raise VerifyFailed(
            "; ".join(f"{n}: {problems.get(n, 'not verified')}" for n in sorted(pending))
        )
    if full:
        raise VerifyFailed("full resync happened on " + ", ".join(full))
    return f"{target} master; {len(nodes)} replica(s) linked and caught up (journal read back); no full resync"
