"""``detach``: ``REPLICAOF NO ONE`` on a replica. Data kept; the node becomes a writable
master with a new history (its old one becomes replid2), and its own replicas follow it."""

from __future__ import annotations

import json
import time

from redisops.engine.predict import promotion_effects
from redisops.errors import VerifyFailed
from redisops.model import Address, Finding, Plan, Step, Topology
from redisops.ops.common import (
    Options,
    group_members,
    group_nodes,
    lock_steps,
    persist_refusal,
    persist_step,
    reachable_or_finding,
    sentinel_finding,
    unlock_step,
)
from redisops.plan import RunContext, action
from redisops.session import Session
from redisops.topology import DETACH_KEY


def plan_detach(topo: Topology, replica_addr: Address, opts: Options, session: Session) -> Plan:
    findings: list[Finding] = []
    replica, f = reachable_or_finding(topo, replica_addr, "replica")
    cluster = session.cluster_name
    if replica is None:
        return Plan(
            "detach", cluster, (), (f,) if f else (), summary="cannot plan: the node is unreachable"
        )
    r = str(replica.address)
    if replica.is_master:
        return Plan(
            "detach",
            cluster,
            (),
            (),
            nothing_to_do=True,
            summary=f"{r} is already a master; nothing to do",
        )
    sentinel = sentinel_finding([replica], session, opts.force)
    if sentinel is not None:
        findings.append(sentinel)
    persist = persist_refusal([replica], session) if opts.persist else None
    if persist is not None:
        findings.append(persist)
    subs = topo.descendants(replica)
    old_master = replica.master_address
    effects = promotion_effects(replica)
    findings.append(
        Finding(
            "warn",
            "becomes_master",
            f"{r} keeps its {replica.keys} keys (plus a {DETACH_KEY} record saying this was intended) and becomes a writable master with a new history; it no longer "
            f"receives {old_master}'s writes, and writes sent to it are not replicated back (two masters)",
            r,
        )
    )
    if replica.link != "up":
        findings.append(
            Finding(
                "warn",
                "link_down",
                f"{r}'s link is down: it keeps the data it had at offset {replica.offset}",
                r,
            )
        )
    if subs:
        findings.append(
            Finding(
                "info",
                "followers",
                f"its replicas follow it: {', '.join(str(s.address) for s in subs)} "
                f"(partial resync through replid2)",
                r,
            )
        )
    top = topo.root(replica)
    lock_on = str(top.address) if top is not None and top.is_master else r
    local_only = None if lock_on != r else f"its master {old_master} is unreachable"
    if session.cluster is None:
        # the lock (local file and key) is named after the master it is taken on, so every
        # operation on this cluster, whatever its seeds, excludes every other
        cluster = lock_on
    children = [str(s.address) for s in topo.children(replica)]
    steps = [
        lock_steps(lock_on, 1, local_only=local_only),
        Step(
            2,
            r,
            "baseline",
            f"record {r}'s sync counters (its replicas will resync from it)",
            command=("INFO", "stats"),
            verify="sync_full / sync_partial_ok read",
        ),
        Step(
            3,
            r,
            "command",
            f"promote {r}",
            command=("REPLICAOF", "NO", "ONE"),
            precondition=f"{r} is a replica of {old_master}",
            verify="ROLE shows master; master_replid2 is the old replid",
            commit=True,
            idempotent=False,
            rollback=("REPLICAOF", old_master.host, str(old_master.port)) if old_master else None,
        ),
        Step(
            4,
            r,
            "record-detach",
            f"record on {r} that it was detached on purpose (status tells it from a split brain)",
            command=("SET", DETACH_KEY, "<record>"),
            verify="record written",
            args={"from": str(old_master), "run_id": replica.run_id, "on_failure": "continue"},
        ),
        Step(
            5,
            r,
            "verify-detach",
            "check the promotion",
            verify=f"role master, replid2 = {replica.replid[:8]}"
            + (f"; {len(children)} replica(s) back online by partial resync" if children else ""),
            args={
                "old_replid": replica.replid,
                "subs": children,
                "on_failure": "continue",
            },
        ),
    ]
    n = 6
    if opts.persist:
        steps.append(persist_step(n, r))
        n += 1
    # the promoted node got a copy of the lock key while it was a replica: drop it too
    steps.append(unlock_step(lock_on, n, drop_copies=(r,) if lock_on != r else ()))
    prediction = {
        "sync": "none",
        "reason": effects["reason"],
        "transfer_bytes": 0,
        "estimated_seconds": 0.0,
        "risks": [f.message for f in findings if f.level == "warn"],
        "replid2": effects["replid2"],
        "second_repl_offset": effects["second_repl_offset"],
        "followers": [
            {
                "replica": str(s.address),
                "master": r,
                "sync": "partial",
                "reason": "reconnects after the id shift and continues through replid2",
            }
            for s in topo.children(replica)
        ],
    }
    return Plan(
        "detach",
        cluster,
        tuple(steps),
        tuple(findings),
        prediction,
        f"detach {r} from {old_master}: it becomes a master (no data moves)",
        touched=tuple(dict.fromkeys((r, *[str(s.address) for s in subs], *group_nodes(topo)))),
        members=group_members(topo),
    )


@action("record-detach")
def record_detach(ctx: RunContext, step: Step) -> str:
    """``redisops:detached`` on the promoted node: who it was detached from, when, by which
    operation. It lives in that node's own dataset (nothing replicates it back), and a full
    sync that later makes it a replica again replaces it."""
    record = {
        "address": step.node,
        "run_id": step.args.get("run_id"),
        "from": step.args.get("from"),
        "at": time.time(),
        "op": ctx.audit.op_id,
    }
    ctx.node(step.node).execute("SET", DETACH_KEY, json.dumps(record))
    return f"detached from {record['from']}: recorded"


@action("verify-detach", waits=True)
def verify_detach(ctx: RunContext, step: Step) -> str:
    """Master now, old id in replid2; its replicas reconnected, and how (counter deltas)."""
    node = ctx.node(step.node)
    info = node.info("replication")
    old = str(step.args.get("old_replid", ""))
    if info.get("role") != "master":
        raise VerifyFailed(f"{step.node} is still {info.get('role')}")
    if old and info.get("master_replid2") != old:
        raise VerifyFailed(
            f"{step.node}: replid2 is {info.get('master_replid2')}, expected the old id {old}"
        )
    subs = list(step.args.get("subs", []))
    ctx.facts["replid2"] = info.get("master_replid2")
    ctx.facts["second_repl_offset"] = int(info.get("second_repl_offset", -1))
    if not subs:
        return f"master with new id {info.get('master_replid', '')[:8]}; no replicas to follow it"
    before: dict[str, int] = ctx.facts.get("baseline", {})
    deadline = time.monotonic() + float(step.args.get("timeout", 15.0))
    while True:
        stats = node.info("replication", "stats")
        online = sum(
            1
            for k, v in stats.items()
            if k.startswith("slave") and k[5:].isdigit() and "state=online" in v
        )
        full = int(stats.get("sync_full", 0)) - before.get("sync_full", 0)
        partial = int(stats.get("sync_partial_ok", 0)) - before.get("sync_partial_ok", 0)
        # the replicas were dropped by the id shift: each must come back (a resync each)
        if online >= len(subs) and (not before or full + partial >= len(subs)):
            break
        if time.monotonic() > deadline:
            raise VerifyFailed(
                f"{step.node}: {len(subs)} replica(s) expected back online, {online} are",
                hint="see 'redisops status'",
            )
        ctx.sleep(0.05)
    if before:
        observed = "partial" if full == 0 else "full"
        ctx.facts["observed_sync"] = observed
        ctx.facts["counters"] = {"sync_full": full, "sync_partial_ok": partial}
        verdict = (
            "prediction confirmed"
            if observed == "partial"
            else f"prediction mismatch: predicted partial, observed {full} full resync(s)"
        )
        ctx.facts["prediction_check"] = verdict
        if observed != "partial":
            ctx.warnings.append(verdict)
    else:
        verdict = "resync type not measured"
    return (
        f"master with new id {info.get('master_replid', '')[:8]}; {len(subs)} replica(s) "
        f"back online; {verdict}"
    )
