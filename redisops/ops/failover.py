"""``failover``: the master is gone. Promote the best replica, repoint the rest, fence the
old master so it cannot come back as a master unnoticed.

The candidate rules are Sentinel's (``sentinelSelectSlave()``): skip replicas that are
unreachable, loading or syncing, that have ``replica-priority 0``, or whose link went down
long before the others' (they stopped replicating before the master died); then prefer the
lowest priority, then the highest replication offset, then the smallest run id. Every
candidate is shown with its offset, the bytes it is behind the best one (writes that would
be lost by choosing it), and why it was or was not chosen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from redisops.engine.predict import RateParams, predict_sync
from redisops.errors import Refused
from redisops.lock import LOCK_KEY
from redisops.model import Address, Finding, NodeInfo, Plan, Step, Topology
from redisops.ops.common import persist_step, sentinel_finding
from redisops.ops.fence import write_fence_record
from redisops.ops.switchover import _at_offset, _promoted_view, followers_of
from redisops.plan import RunContext, action
from redisops.retry import RetryPolicy
from redisops.session import Session
from redisops.state import KnownGroup
from redisops.topology import FENCE_KEY


@dataclass
class Candidate:
    address: str
    offset: int
    priority: int | None
    run_id: str
    link_down_seconds: int | None
    eligible: bool
    reason: str
    gap_bytes: int = 0
    chosen: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "offset": self.offset,
            "priority": self.priority,
            "run_id": self.run_id,
            "link_down_seconds": self.link_down_seconds,
            "eligible": self.eligible,
            "chosen": self.chosen,
            "gap_bytes": self.gap_bytes,
            "reason": self.reason,
        }


def replicas_of(topo: Topology, dead: Address) -> list[NodeInfo]:
    """Direct replicas of ``dead`` (they name it as master); the candidates."""
    out = []
    for n in topo.nodes:
        if (
            n.reachable
            and n.is_replica
            and n.master_address is not None
            and topo.canonical(n.master_address) == dead
        ):
            out.append(n)
    return out


def rank_candidates(topo: Topology, dead: Address, max_disconnect: int = 60) -> list[Candidate]:
    direct = replicas_of(topo, dead)
    downs = [
        n.link_down_seconds
        for n in direct
        if n.link_down_seconds is not None and n.link_down_seconds >= 0
    ]
    freshest = min(downs) if downs else 0
    cands: list[Candidate] = []
    for n in direct:
        prio = n.replica_priority
        down = n.link_down_seconds
        reason = ""
        if n.loading or n.sync_in_progress:
            reason = "loading or in a full sync: its dataset is incomplete"
        elif prio == 0:
            reason = "replica-priority 0: never promoted"
        elif n.link == "up":
            reason = f"its link to {dead} is up: the master is not down for this replica"
        elif down is not None and down >= 0 and down - freshest > max_disconnect:
            reason = (
                f"disconnected {down}s ago, {down - freshest}s before the freshest replica "
                f"(> {max_disconnect}s): it stopped replicating well before the master died"
            )
        elif n.repl_state in ("handshake", "sync") and down == -1:
            reason = "never finished its sync with the master"
        cands.append(
            Candidate(
                str(n.address),
                n.replica_offset if n.replica_offset is not None else n.offset,
                prio,
                n.run_id or "",
                down,
                not reason,
                reason,
            )
        )
    eligible = sorted(
        (c for c in cands if c.eligible),
        key=lambda c: (c.priority if c.priority is not None else 100, -c.offset, c.run_id),
    )
    best_offset = max((c.offset for c in cands if c.eligible), default=0)
    for c in cands:
        c.gap_bytes = max(best_offset - c.offset, 0)
    for i, c in enumerate(eligible):
        if i == 0:
            c.chosen = True
            ties = [o for o in eligible[1:] if o.offset == c.offset and o.priority == c.priority]
            c.reason = f"priority {c.priority}, highest offset {c.offset}" + (
                f"; tie on offset with {', '.join(o.address for o in ties)} broken by the smaller "
                f"run id"
                if ties
                else ""
            )
        else:
            first = eligible[0]
            if (c.priority or 100) > (first.priority or 100):
                c.reason = f"priority {c.priority}; {first.address} has the lower (preferred) {first.priority}"
            elif c.offset < first.offset:
                c.reason = f"{c.gap_bytes} bytes behind {first.address}"
            else:
                c.reason = f"same offset as {first.address}, larger run id"
    order = {c.address: i for i, c in enumerate(eligible)}
    return sorted(cands, key=lambda c: (not c.eligible, order.get(c.address, 0), c.address))


def plan_failover(
    topo: Topology,
    dead: Address,
    session: Session,
    *,
    to: Address | None = None,
    auto: bool = True,
    force: bool = False,
    max_disconnect: int = 60,
    dead_confirmed: bool = True,
    persist: bool = False,
    known: KnownGroup | None = None,
) -> Plan:
    findings: list[Finding] = []
    cluster = session.cluster_name
    dead_node = topo.get(dead)
    d = str(dead)
    if known is not None:
        findings.extend(known_replica_findings(topo, dead, known))
    if (dead_node is not None and dead_node.reachable) or not dead_confirmed:
        findings.append(
            Finding(
                "refuse",
                "master_alive",
                f"{d} answers: it is not dead. Use 'redisops switchover' for a planned change "
                f"(it loses no writes)",
                d,
            )
        )
    cands = rank_candidates(topo, dead, max_disconnect)
    for lost in topo.nodes:
        if not lost.reachable and lost.address != dead:
            findings.append(
                Finding(
                    "warn",
                    "replica_unreachable",
                    f"{lost.address} is unreachable: it is not a candidate and cannot be "
                    f"repointed now; attach it to the new master once it is back",
                    str(lost.address),
                )
            )
    if not cands:
        findings.append(
            Finding(
                "refuse",
                "no_replicas",
                f"no reachable replica of {d} was found "
                f"(give replica addresses as seeds, or --cluster"
                + (
                    ""
                    if known is not None
                    else f"; no command has recorded {d} in the last-known topology"
                )
                + ")",
            )
        )
        return Plan(
            "failover",
            cluster,
            (),
            tuple(findings),
            {"candidates": []},
            summary=f"failover of {d}: no candidate",
        )
    chosen: Candidate | None = None
    if to is not None:
        chosen = next((c for c in cands if Address.parse(c.address) == topo.canonical(to)), None)
        if chosen is None:
            findings.append(
                Finding("refuse", "not_a_replica", f"{to} is not a reachable replica of {d}")
            )
        elif not chosen.eligible:
            findings.append(
                Finding(
                    "refuse",
                    "ineligible",
                    f"{to} is not eligible: {chosen.reason}",
                    str(to),
                    forceable=chosen.priority == 0,
                )
            )
        for c in cands:
            c.chosen = chosen is not None and c.address == chosen.address
        if chosen is not None and chosen.gap_bytes:
            best = next(c for c in cands if c.eligible and c.gap_bytes == 0)
            findings.append(
                Finding(
                    "warn",
                    "not_best",
                    f"{to} is {chosen.gap_bytes} bytes behind {best.address}: promoting it loses "
                    f"those writes (the others will full-sync from it)",
                    str(to),
                )
            )
    else:
        chosen = next((c for c in cands if c.chosen), None)
        if chosen is None:
            findings.append(
                Finding(
                    "refuse",
                    "no_eligible",
                    f"no replica of {d} is eligible: "
                    + "; ".join(f"{c.address}: {c.reason}" for c in cands),
                )
            )
    for c in cands:
        mark = "CHOSEN" if c.chosen else ("eligible" if c.eligible else "not eligible")
        findings.append(
            Finding(
                "info",
                "candidate",
                f"candidate {c.address}: offset {c.offset} ({c.gap_bytes} bytes behind the best), "
                f"priority {c.priority}, run id {c.run_id[:8]}: {mark}: {c.reason}",
                c.address,
            )
        )
    sentinel = sentinel_finding([n for n in topo.nodes if n.reachable], session, force)
    if sentinel is not None:
        findings.append(sentinel)
    prediction: dict[str, Any] = {
        "candidates": [c.to_dict() for c in cands],
        "chosen": chosen.address if chosen else None,
    }
    if chosen is None or (
        findings and any(f.level == "refuse" and not (force and f.forceable) for f in findings)
    ):
        return Plan(
            "failover",
            cluster,
            (),
            tuple(findings),
            prediction,
            summary=f"failover of {d}: cannot proceed",
            touched=tuple(c.address for c in cands),
        )
    new = str(chosen.address)
    new_node = topo.get(Address.parse(new))
    assert new_node is not None
    promoted = _promoted_view(new_node, chosen.offset)
    others = [
        n
        for n in topo.nodes
        if n.reachable
        and n.is_replica
        and str(n.address) != new
        and n.address not in {x.address for x in topo.descendants(new_node)}
    ]
    preds = [
        predict_sync(
            promoted,
            _at_offset(n, n.replica_offset if n.replica_offset is not None else n.offset),
            RateParams(),
        )
        for n in others
    ]
    for p in preds:
        if p.sync == "full":
            findings.append(
                Finding(
                    "warn",
                    "full_resync",
                    f"{p.replica} is ahead of {new} or has another history: it will full-sync "
                    f"(its extra writes are lost)",
                    p.replica,
                )
            )
    prediction.update(
        {
            "sync": "partial" if all(p.sync == "partial" for p in preds) else "full",
            "reason": f"{new} is promoted with REPLICAOF NO ONE: its history stays valid as replid2 up to offset "
            f"{chosen.offset + 1}; replicas at or below that offset continue partially",
            "transfer_bytes": sum(p.transfer_bytes for p in preds),
            "estimated_seconds": 0.0,
            "risks": [r for p in preds for r in p.risks],
            "replicas": [p.to_dict() for p in preds],
            "writes_lost_vs_best": chosen.gap_bytes,
        }
    )
    steps: list[Step] = [
        Step(
            1,
            d,
            "confirm-down",
            f"confirm {d} is down (several probes)",
            command=("PING",),
            verify="every probe fails",
            args={"probes": 3, "interval": 0.5},
        ),
        Step(
            2,
            new,
            "lock-local",
            "take the local cluster lock (the master is dead)",
            verify="flock held",
        ),
        Step(
            3,
            new,
            "baseline-all",
            "record sync counters on the replicas",
            command=("INFO", "stats"),
            verify="counters read",
            args={"nodes": [new, *[str(x.address) for x in others]]},
        ),
        Step(
            4,
            new,
            "command",
            f"promote {new}",
            command=("REPLICAOF", "NO", "ONE"),
            verify="ROLE shows master",
            commit=True,
            idempotent=False,
        ),
        Step(
            5,
            new,
            "repoint",
            f"repoint the other replicas to {new}",
            command=("REPLICAOF", new_node.address.host, str(new_node.address.port)),
            verify="links up",
            args={
                "nodes": [str(n.address) for n in others],
                "target": new,
                "on_failure": "continue",
            },
        ),
        Step(
            6,
            new,
            "clear-stale-lock",
            f"drop the lock key {new} copied from the dead master, if any",
            command=("DEL", "redisops:lock"),
            verify="no lock key left by an operation that died with the master",
            args={"on_failure": "continue"},
        ),
        Step(
            7,
            new,
            "fence-record",
            f"record that {d} must not come back as a master",
            command=("SET", FENCE_KEY, "<record>"),
            verify="record written on the new master",
            args={
                "old": d,
                "old_run_id": dead_node.run_id if dead_node else None,
                "new": new,
                "on_failure": "continue",
            },
        ),
    ]
    n = 8
    if persist:
        for name in [new, *[str(x.address) for x in others]]:
            steps.append(persist_step(n, name, "its new role"))
            n += 1
    steps.append(
        Step(
            n,
            new,
            "verify-switchover",
            "verify the new topology",
            verify=f"{new} the only master; every link up; journal key read back",
            args={
                "nodes": [str(x.address) for x in others],
                "target": new,
                "followers": followers_of(topo, new_node),
                "expected_full": sum(1 for p in preds if p.sync == "full"),
                "on_failure": "continue",
            },
        )
    )
    n += 1
    steps.append(Step(n, new, "unlock", "release the cluster lock", verify="released"))
    summary = (
        f"failover of dead master {d}: promote {new} (offset {chosen.offset}), repoint "
        f"{len(others)} replica(s), fence {d}"
    )
    return Plan(
        "failover",
        cluster,
        tuple(steps),
        tuple(findings),
        prediction,
        summary,
        touched=(new, *[str(x.address) for x in others]),
    )


def known_replica_findings(topo: Topology, dead: Address, known: KnownGroup) -> list[Finding]:
    """What the last-known topology adds: how old it is, and replicas of ``dead`` seen then
    that do not answer now (they are neither candidates nor repointed)."""
    now = time.time()
    age = now - known.recorded_at
    out = [
        Finding(
            "info",
            "last_known",
            f"replicas taken from the last-known topology of {known.group}, recorded {age:.0f}s ago "
            f"by {known.source}, and probed again now",
        )
    ]
    for addr in known.replicas_of(str(dead)):
        node = topo.get(Address.parse(addr))
        if node is None or not node.reachable:
            seen = known.seen_at(addr) or now
            out.append(
                Finding(
                    "warn",
                    "known_replica_unreachable",
                    f"{addr} was a replica of {dead} {now - seen:.0f}s ago and does not answer now: "
                    f"not a candidate; attach it to the new master once it is back",
                    addr,
                )
            )
    return out


def confirm_down(
    session: Session,
    address: Address,
    probes: int = 3,
    interval: float = 0.5,
    sleep: Any = time.sleep,
) -> bool:
    """True when every probe over ``probes * interval`` seconds fails (tenacity-driven)."""
    policy = RetryPolicy(attempts=probes, wait_initial=interval, wait_max=interval, sleep=sleep)

    def probe() -> bool:
        info = session.probe(address)
        if info.reachable:
            return True
        raise ConnectionError(info.error or "unreachable")

    try:
        policy.call(probe, retry_on=(ConnectionError,))
    except ConnectionError:
        return True
    return False


@action("confirm-down")
def run_confirm_down(ctx: RunContext, step: Step) -> str:
    if not confirm_down(
        ctx.session,
        Address.parse(step.node),
        int(step.args.get("probes", 3)),
        float(step.args.get("interval", 0.5)),
        ctx.sleep,
    ):
        raise Refused(
            f"{step.node} answered a probe: it is alive", hint="use 'redisops switchover' instead"
        )
    return "down: every probe failed"


@action("clear-stale-lock")
def run_clear_stale_lock(ctx: RunContext, step: Step) -> str:
    """A lock key the dead master had replicated would block every later operation for up
    to its TTL: this failover holds the lock for the cluster now (locally), so drop it."""
    node = ctx.node(step.node)
    raw = node.execute("GET", LOCK_KEY)
    if not raw:
        return "no stale lock"
    node.execute("DEL", LOCK_KEY)
    ctx.warnings.append(f"removed a lock left by an operation that died with the old master: {raw}")
    return "stale lock removed"


@action("lock-local")
def run_lock_local(ctx: RunContext, step: Step) -> str:
    assert ctx.lock is not None
    ctx.lock.acquire(None)
    ctx.facts["lock_release_on"] = None
    return "local lock held"


@action("fence-record")
def run_fence_record(ctx: RunContext, step: Step) -> str:
    old = str(step.args["old"])
    write_fence_record(
        ctx.node(step.node),
        old,
        str(step.args["new"]),
        old_run_id=step.args.get("old_run_id"),
        op=ctx.audit.op_id,
    )
    return f"{old} recorded as fenced"
