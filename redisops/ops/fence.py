"""``fence``: turn an old master that came back into a replica of the new master.

Whatever it accepted after the failover is not in the new master's history: the plan says
how many bytes that is (from its offset against the new master's ``second_repl_offset``)
and needs ``--yes`` when it is not zero, because the resync discards them.
"""

from __future__ import annotations

import json
import time

from redisops.engine.predict import RateParams, predict_sync
from redisops.errors import BadInput
from redisops.model import NULL_REPLID, Address, Finding, NodeInfo, Plan, Step, Topology
from redisops.ops.common import (
    group_members,
    group_nodes,
    lock_steps,
    persist_refusal,
    persist_step,
    reachable_or_finding,
    unlock_step,
)
from redisops.ops.service import service_steps
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


#: ``--fence``: how an old master is kept from coming back as a master, on its host (SSH)
FENCE_MODES = ("stop", "config")


def check_fence_mode(mode: str | None) -> None:
    if mode is not None and mode not in FENCE_MODES:
        raise BadInput(f"--fence {mode!r} is not known", hint="use --fence stop or --fence config")


def host_fence_steps(
    mode: str, old: Address, new: Address, n: int, session: Session, *, timeout: float = 60.0
) -> list[Step]:
    """Steps that fence ``old`` on its machine: ``stop`` its service (and check nothing
    answers), or ``config``: write ``replicaof NEW`` into its config file so a restart brings
    it back as a replica. Both continue on failure (the host may be as dead as the node)."""
    o = str(old)
    if mode == "stop":
        return service_steps(
            session,
            old,
            "stop",
            n,
            timeout=timeout,
            why=" so it cannot come back as a master",
            keep_going=True,
        )
    return [
        Step(
            n,
            o,
            "fence-config",
            f"write replicaof {new} into {o}'s config file (a restart brings it back as a replica)",
            command=("replicaof", new.host, str(new.port)),
            verify="read back from the file",
            args={"master": str(new), "on_failure": "continue"},
        )
    ]


@action("fence-config")
def run_fence_config(ctx: RunContext, step: Step) -> str:
    from redisops.ops.confedit import fence_config

    return fence_config(ctx.session, Address.parse(step.node), Address.parse(step.args["master"]))


def _plan_fence_stop(
    topo: Topology, old_addr: Address, new_addr: Address, session: Session
) -> Plan:
    """``fence --fence stop``: stop the returning old master's service instead of resyncing
    it (its writes stay on its disk for inspection); the fence record stays in place."""
    findings: list[Finding] = []
    new, finding = reachable_or_finding(topo, new_addr, "new master")
    if finding is not None:
        findings.append(finding)
    o = str(topo.canonical(old_addr))
    n = str(new.address) if new is not None else str(new_addr)
    if new is not None and not new.is_master:
        findings.append(Finding("refuse", "not_master", f"{n} is not a master", n))
    steps = [lock_steps(n, 1), *host_fence_steps("stop", old_addr, new_addr, 2, session)]
    steps.append(unlock_step(n, len(steps) + 1))
    return Plan(
        "fence",
        session.cluster_name,
        tuple(steps),
        tuple(findings),
        summary=f"fence {o}: stop its service (it stays recorded as fenced on {n})",
        touched=(o, n),
    )


def plan_fence(
    topo: Topology,
    old_addr: Address,
    new_addr: Address,
    session: Session,
    *,
    persist: bool = False,
    timeout: float = 300.0,
    fence_mode: str | None = None,
) -> Plan:
    check_fence_mode(fence_mode)
    if fence_mode == "stop":
        return _plan_fence_stop(topo, old_addr, new_addr, session)
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
    shared = _shared_history(old, new)
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
    elif lost < 0 and shared:
        findings.append(
            Finding(
                "confirm",
                "diverged_history",
                f"{o} and {n} share an earlier history ({shared[:8]}) but diverged after it: "
                f"each went on with its own writes, so a full sync replaces {o}'s "
                f"{old.keys} keys (its writes since the split are lost; copy what matters first)",
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
    persist_block = persist_refusal([old], session) if persist else None
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
    if fence_mode == "config":
        steps += host_fence_steps("config", old.address, new.address, k, session)
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


def _shared_history(old: NodeInfo, new: NodeInfo) -> str | None:
    """A replication id both nodes carry (current or previous) without one continuing the
    other: they descend from the same history and diverged (two promotions of it)."""
    ids_old = {old.replid, old.replid2} - {NULL_REPLID, ""}
    ids_new = {new.replid, new.replid2} - {NULL_REPLID, ""}
    common = ids_old & ids_new
    return sorted(common)[0] if common else None


@action("fence-resolve")
def fence_resolve(ctx: RunContext, step: Step) -> str:
    old = str(step.args["old"])
    unfence(ctx.node(step.node), old)
    return f"{old} is a replica again; fence record updated"
