"""``fence``: turn an old master that came back into a replica of the new master.

Whatever it accepted after the failover is not in the new master's history: the plan says
how many bytes that is (from its offset against the new master's ``second_repl_offset``)
and needs ``--yes`` when it is not zero, because the resync discards them.
"""

from __future__ import annotations

import json
import time

from redisops.engine.predict import RateParams, predict_sync
from redisops.model import Address, Finding, Plan, Step, Topology
from redisops.ops.common import (
    group_members,
    group_nodes,
    lock_steps,
    persist_refusal,
    persist_step,
    reachable_or_finding,
    unlock_step,
)
from redisops.plan import RunContext, action
from redisops.redis_node import RedisNode
from redisops.session import Session
from redisops.topology import FENCE_KEY


def _read_record(node: RedisNode) -> dict[str, list[dict[str, object]]]:
    raw = node.execute("GET", FENCE_KEY)
    try:
        record = json.loads(raw) if raw else {}
    except ValueError:
        record = {}
    fenced = record.get("fenced") if isinstance(record, dict) else None
    return {
        "fenced": [e for e in fenced if isinstance(e, dict)] if isinstance(fenced, list) else []
    }


def write_fence_record(
    node: RedisNode, old: str, new: str, *, old_run_id: str | None = None, op: str | None = None
) -> None:
    """Record on the (new) master ``node`` that ``old`` must not come back as a master.

    The key replicates everywhere; ``status`` reads it and reports ``old`` as a critical
    split brain if it answers as a master again, until ``redisops fence`` resolves it.
    """
    record = _read_record(node)
    fenced = [e for e in record["fenced"] if e.get("address") != old]
    fenced.append(
        {"address": old, "run_id": old_run_id, "new_master": new, "at": time.time(), "op": op}
    )
    node.execute("SET", FENCE_KEY, json.dumps({"fenced": fenced}))


def unfence(node: RedisNode, address: str) -> bool:
    """Drop ``address`` from the fence record on ``node``; whether it was there."""
    fenced = _read_record(node)["fenced"]
    kept = [e for e in fenced if e.get("address") != address]
    if len(kept) == len(fenced):
        return False
    if kept:
        node.execute("SET", FENCE_KEY, json.dumps({"fenced": kept}))
    else:
        node.execute("DEL", FENCE_KEY)
    return True


def plan_fence(
    topo: Topology,
    old_addr: Address,
    new_addr: Address,
    session: Session,
    *,
    persist: bool = False,
    timeout: float = 300.0,
) -> Plan:
    findings: list[Finding] = []
    old, f1 = reachable_or_finding(topo, old_addr, "old master")
    new, f2 = reachable_or_finding(topo, new_addr, "new master")
    findings += [f for f in (f1, f2) if f is not None]
    cluster = session.cluster_name
    if old is None or new is None:
        return Plan(
            "fence", cluster, (), tuple(findings), summary="cannot plan: a node is unreachable"
        )
    o, n = str(old.address), str(new.address)
    if old.address == new.address:
        findings.append(Finding("refuse", "same_node", f"{o} and {n} are the same node"))
        return Plan("fence", cluster, (), tuple(findings))
    if not new.is_master:
        findings.append(Finding("refuse", "not_master", f"{n} is not a master", n))
    if (
        old.is_replica
        and old.master_address is not None
        and topo.canonical(old.master_address) == new.address
    ):
        return Plan(
            "fence",
            cluster,
            (),
            tuple(findings),
            nothing_to_do=True,
            summary=f"{o} already replicates from {n}; nothing to do",
        )
    pred = predict_sync(new, old, RateParams())
    lost = 0
    if new.replid2 == old.replid and new.second_repl_offset > 0:
        lost = max(old.offset - (new.second_repl_offset - 1), 0)
    elif old.replid not in (new.replid, new.replid2):
        lost = -1
    if lost > 0:
        findings.append(
            Finding(
                "confirm",
                "writes_after_failover",
                f"{o} accepted {lost} bytes of writes after the failover; the resync discards "
                f"them (copy what matters first)",
                o,
            )
        )
    elif lost < 0:
        findings.append(
            Finding(
                "confirm",
                "unrelated_history",
                f"{o} has a history unrelated to {n} ({old.replid[:8]}): a full sync replaces its "
                f"{old.keys} keys",
                o,
            )
        )
    persist_block = persist_refusal([old]) if persist else None
    if persist_block is not None:
        findings.append(persist_block)
    steps = [
        lock_steps(n, 1),
        Step(
            2,
            n,
            "baseline",
            f"record {n}'s sync counters",
            command=("INFO", "stats"),
            verify="read",
        ),
        Step(
            3,
            o,
            "command",
            f"make {o} a replica of {n}",
            command=("REPLICAOF", new.address.host, str(new.address.port)),
            verify=f"{o} replicates from {n}",
            commit=True,
            idempotent=False,
        ),
        Step(
            4,
            o,
            "wait-sync",
            f"follow the {pred.sync} sync",
            verify="in sync",
            args={"master": n, "timeout": timeout},
        ),
    ]
    k = 5
    if persist:
        steps.append(persist_step(k, o, "the fence"))
        k += 1
    steps.append(
        Step(
            k,
            o,
            "verify-sync",
            "check the resync against the prediction",
            verify="counters match; offsets converge",
            args={"master": n, "predicted": pred.sync, "on_failure": "continue"},
        )
    )
    k += 1
    steps.append(
        Step(
            k,
            n,
            "fence-resolve",
            f"mark {o} as fenced in the record",
            command=("SET", FENCE_KEY, "<rec>"),
            verify="record updated",
            args={"old": o, "on_failure": "continue"},
        )
    )
    k += 1
    steps.append(unlock_step(n, k))
    prediction = {**pred.to_dict(), "writes_discarded_bytes": max(lost, 0)}
    return Plan(
        "fence",
        cluster,
        tuple(steps),
        tuple(findings),
        prediction,
        f"fence {o}: make it a replica of {n} ({pred.sync} resync predicted)",
        touched=tuple(dict.fromkeys((o, n, *group_nodes(topo)))),
        members=group_members(topo),
    )


@action("fence-resolve")
def fence_resolve(ctx: RunContext, step: Step) -> str:
    old = str(step.args["old"])
    unfence(ctx.node(step.node), old)
    return f"{old} is a replica again; fence record updated"
