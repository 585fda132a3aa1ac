"""``failover``: the master is gone. Promote the best replica, repoint the rest, fence the
old master so it cannot come back as a master unnoticed.

The candidate rules are Sentinel's (``sentinelSelectSlave()``): skip replicas that are
unreachable, loading or syncing, that have ``replica-priority 0``, or whose link went down
long before the others' (they stopped replicating before the master died); then prefer the
lowest priority, then the highest replication offset, then the smallest run id. Every
candidate is shown with its offset, the bytes it is behind the most advanced replica, and
why it was or was not chosen.

Unlike Sentinel, nothing acknowledged by a replica is lost: a chosen replica that is
behind another replica of the same history first catches up from it. A replica serves
PSYNC only while its own master link is up (``-NOMASTERLINK``), so the most advanced one
is promoted first as a stand-in, the chosen one (and every other replica) resyncs from it,
and a zero-loss switchover (the ``switch`` step) hands the master role over. Where no
loss-free path exists (histories that diverged, a stand-in that cannot be used), the plan
says how many bytes (and keys, where countable) are lost on which nodes, and needs
``--accept-data-loss``.

Before anything, the group must not have a master already: a second failover of the same
dead master (two operators, a retry) is refused ("already failed over to X").
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from redisops.engine.predict import (
    RateParams,
    SyncPrediction,
    applied_offset,
    history_gap,
    predict_sync,
)
from redisops.errors import Refused
from redisops.lock import LOCK_KEY
from redisops.model import Address, Finding, NodeInfo, Plan, Step, Topology
from redisops.ops.common import (
    group_members,
    group_nodes,
    persist_refusal,
    persist_step,
    sentinel_finding,
    unfit_finding,
)
from redisops.ops.fence import host_fence_steps, write_fence_record
from redisops.ops.promotion import (
    at_offset,
    command_refusals,
    followers_of,
    freeze_step,
    original_ping_period,
    partial_only_findings,
    promoted_view,
    restore_pings_step,
)
from redisops.plan import RunContext, action
from redisops.retry import RetryPolicy
from redisops.session import Session
from redisops.state import KNOWN_MAX_AGE, KnownGroup, group_index
from redisops.topology import FENCE_KEY, detach_record


@dataclass
class Candidate:
    address: str
    offset: int
    priority: int | None
    run_id: str
    link_down_seconds: int | None
    eligible: bool
    reason: str
    gap_bytes: int = 0  # behind the most advanced replica of its history
    chosen: bool = False
    ahead: str | None = None  # the most advanced replica it is behind, if any

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
            "ahead": self.ahead,
            "reason": self.reason,
        }


# ----------------------------------------------------------------------------- membership


@dataclass(frozen=True)
class KnownMembers:
    """The members a replication group is known to have, and how complete that is."""

    addresses: tuple[Address, ...]
    source: str
    complete: bool  # False: replicas of the dead master the seeds do not reach are unseen
    record: KnownGroup | None = None  # the last-known topology it came from, if any


def known_members(session: Session, topo: Topology, dead: Address) -> KnownMembers:
    """The members the group of dead master ``dead`` is known to have: the nodes reached
    from the seeds (a dead master cannot list its replicas), plus the inventory's node list
    when the cluster was named with --cluster, plus the members the last-known topology
    (:mod:`redisops.state`) saw in its group within :data:`KNOWN_MAX_AGE`. With one of the
    last two, a failover seeded with one replica still repoints the others and sees a
    master another failover already promoted; with neither, the plan says what it cannot
    see."""
    addresses = [n.address for n in topo.nodes]
    sources: list[str] = []
    if session.cluster is not None:
        addresses += [spec.address for spec in session.cluster.nodes]
        sources.append(f"the inventory's node list of {session.cluster.name}")
    index = group_index()
    record = index.get(str(dead)) or next(
        (index[str(n.address)] for n in topo.nodes if str(n.address) in index), None
    )
    if record is not None:
        now = time.time()
        addresses += [
            Address.parse(a)
            for a in record.members()
            if now - (record.seen_at(a) or 0) <= KNOWN_MAX_AGE
        ]
        sources.append(f"the last-known topology of {record.group}")
    return KnownMembers(
        tuple(dict.fromkeys([*addresses, dead])),
        " and ".join(sources) or "the seeds",
        bool(sources),
        record,
    )


def known_note(known: Any, dead: str) -> str:
    """One line saying which last-known replicas of ``dead`` are used, and how old that is."""
    now = time.time()
    reps = known.replicas_of(dead)
    listed = (
        ", ".join(f"{a} (seen {now - (known.seen_at(a) or now):.0f}s ago)" for a in reps) or "none"
    )
    return (
        f"no seeds given: using the last-known topology of {known.group} (recorded "
        f"{now - known.recorded_at:.0f}s ago by {known.source}); replicas of {dead} then: {listed}; "
        f"probing them now"
    )


# ----------------------------------------------------------------------------- ranking


def replicas_of(topo: Topology, dead: Address) -> list[NodeInfo]:
    """Direct replicas of ``dead`` (they name it as master); the candidates."""
    out = []
    for n in topo.nodes:
        if (
            n.reachable
            and n.is_replica
            and n.unfit is None
            and n.master_address is not None
            and topo.canonical(n.master_address) == dead
        ):
            out.append(n)
    return out


def usable_source(node: NodeInfo) -> bool:
    """Whether a replica's data is complete enough to catch another one up from it."""
    return node.reachable and node.is_replica and not node.loading and not node.sync_in_progress


def most_advanced(topo: Topology, node: NodeInfo) -> tuple[NodeInfo | None, int]:
    """The replica furthest ahead of ``node`` on ``node``'s own history (same ids, so it
    can catch up without losing anything), and by how many bytes; ``(None, 0)`` when no
    replica is ahead. Direct replicas win ties over chained ones (a chained replica is
    never ahead of its master)."""
    best: NodeInfo | None = None
    best_gap = 0
    for other in topo.nodes:
        if other.address == node.address or not usable_source(other) or other.unfit:
            continue
        gap = history_gap(node, other)
        if gap is None or gap <= 0:
            continue
        if (
            best is None
            or gap > best_gap
            or (gap == best_gap and topo.depth(other) < topo.depth(best))
        ):
            best, best_gap = other, gap
    return best, best_gap


def _ineligible(n: NodeInfo, dead: Address, freshest: int, max_disconnect: int) -> str:
    down = n.link_down_seconds
    if n.loading or n.sync_in_progress:
        return "loading or in a full sync: its dataset is incomplete"
    if n.replica_priority == 0:
        return "replica-priority 0: never promoted"
    if n.link == "up":
        return f"its link to {dead} is up: the master is not down for this replica"
    if down is not None and down >= 0 and down - freshest > max_disconnect:
        return (
            f"disconnected {down}s ago, {down - freshest}s before the freshest replica "
            f"(> {max_disconnect}s): it stopped replicating well before the master died"
        )
    if n.repl_state in ("handshake", "sync") and down == -1:
        return "never finished its sync with the master"
    return ""


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
        reason = _ineligible(n, dead, freshest, max_disconnect)
        ahead, gap = most_advanced(topo, n)
        cands.append(
            Candidate(
                str(n.address),
                applied_offset(n),
                n.replica_priority,
                n.run_id or "",
                n.link_down_seconds,
                not reason,
                reason,
                gap,
                ahead=str(ahead.address) if ahead is not None else None,
            )
        )
    eligible = sorted(
        (c for c in cands if c.eligible),
        key=lambda c: (_prio(c), -c.offset, c.run_id),
    )
    for i, c in enumerate(eligible):
        c.chosen = i == 0
        c.reason = _chosen_reason(c, eligible) if i == 0 else _passed_reason(c, eligible[0])
    order = {c.address: i for i, c in enumerate(eligible)}
    return sorted(cands, key=lambda c: (not c.eligible, order.get(c.address, 0), c.address))


def _prio(c: Candidate) -> int:
    return c.priority if c.priority is not None else 100


def _chosen_reason(c: Candidate, eligible: list[Candidate]) -> str:
    """Why the first eligible candidate won, in words that are true of it."""
    rest = eligible[1:]
    if rest and all(_prio(c) < _prio(o) for o in rest):
        head = f"lowest priority {c.priority}"
    else:
        head = f"priority {c.priority}"
    if c.gap_bytes == 0:
        head += f", highest offset {c.offset}"
    else:
        head += (
            f", offset {c.offset}: {c.gap_bytes} bytes behind {c.ahead}, which it catches up "
            f"from before it is promoted"
        )
    ties = [o for o in rest if o.offset == c.offset and _prio(o) == _prio(c)]
    if ties:
        head += (
            f"; tie on offset with {', '.join(o.address for o in ties)} broken by the smaller "
            f"run id"
        )
    return head


def _passed_reason(c: Candidate, first: Candidate) -> str:
    if _prio(c) > _prio(first):
        return f"priority {c.priority}; {first.address} has the lower (preferred) {first.priority}"
    if c.offset < first.offset:
        return f"{first.offset - c.offset} bytes behind {first.address}"
    return f"same offset as {first.address}, larger run id"


# ----------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Loss:
    """What promoting the chosen replica discards on one node."""

    node: str
    bytes: int | None  # None: another history, not measurable in stream bytes
    extra_keys: int  # keys it holds beyond the new master's count (0 when not countable)

    def text(self) -> str:
        size = f"{self.bytes} bytes" if self.bytes is not None else "a diverged history"
        keys = f" (about {self.extra_keys} keys)" if self.extra_keys > 0 else ""
        return f"{size}{keys} on {self.node}"


def losses(topo: Topology, history: NodeInfo, dead: Address) -> list[Loss]:
    """What each reachable replica holds that the new master's ``history`` does not."""
    out = []
    for n in topo.nodes:
        if (
            n.address in (history.address, dead)
            or not n.reachable
            or not n.is_replica
            or n.unfit is not None
            or n.loading
            or n.sync_in_progress
        ):
            continue
        if history_gap(n, history) is not None:
            continue  # a prefix of the new history: nothing of its own to lose
        ahead = history_gap(history, n)
        out.append(Loss(str(n.address), ahead, max(n.keys - history.keys, 0)))
    return out


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
    accept_data_loss: bool = False,
    known: KnownMembers | None = None,
    fence_mode: str | None = None,
) -> Plan:
    findings: list[Finding] = []
    cluster = session.cluster_name
    dead = topo.canonical(dead)  # as its replicas name it
    d = str(dead)
    members = group_members(topo, dead, *(known.addresses if known else ()))
    record = known.record if known is not None else None
    if record is not None:
        findings.extend(known_replica_findings(topo, dead, record))
    findings += _group_findings(topo, dead, dead_confirmed, known)
    cands = rank_candidates(topo, dead, max_disconnect)
    if not cands:
        refused = [str(n.address) for n in topo.nodes if not n.reachable and n.error_kind == "auth"]
        findings.append(
            Finding(
                "refuse",
                "no_replicas",
                f"no reachable replica of {d} was found "
                + (
                    f"({', '.join(refused)} answered but refused the credentials: check "
                    f"REDISCLI_AUTH, --password-file and the user, redis://USER@HOST:PORT)"
                    if refused
                    else "(give replica addresses as seeds, or --cluster"
                    + (
                        ""
                        if record is not None
                        else f"; no command has recorded {d} in the last-known topology"
                    )
                    + ")"
                ),
            )
        )
        return Plan(
            "failover",
            cluster,
            (),
            tuple(findings),
            {"candidates": []},
            summary=f"failover of {d}: no candidate",
            members=members,
        )
    chosen = _choose(topo, cands, to, d, findings)
    for c in cands:
        mark = "CHOSEN" if c.chosen else ("eligible" if c.eligible else "not eligible")
        findings.append(
            Finding(
                "info",
                "candidate",
                f"candidate {c.address}: offset {c.offset} ({c.gap_bytes} bytes behind the most "
                f"advanced replica), priority {c.priority}, run id {c.run_id[:8]}: {mark}: "
                f"{c.reason}",
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
    if chosen is None or any(f.level == "refuse" and not (force and f.forceable) for f in findings):
        return Plan(
            "failover",
            cluster,
            (),
            tuple(findings),
            prediction,
            summary=f"failover of {d}: cannot proceed",
            touched=tuple(c.address for c in cands),
            members=members,
        )
    new_node = topo.get(Address.parse(chosen.address))
    assert new_node is not None  # a candidate is a node of the topology
    source, _gap = most_advanced(topo, new_node)
    if source is not None and not _can_stand_in(source):
        findings.append(
            Finding(
                "warn",
                "no_catch_up",
                f"{chosen.address} cannot catch up from {source.address}: REPLICAOF is renamed "
                f"or disabled there, so it cannot stand in as master",
                str(source.address),
            )
        )
        source = None
    builder = _CatchUpPlan if source is not None else _DirectPlan
    plan = builder(topo, dead, session, new_node, source, persist)
    plan.partial_view = known is not None and not known.complete
    plan.fence_mode = fence_mode
    return plan.build(findings, prediction, accept_data_loss, members)


def _group_findings(
    topo: Topology, dead: Address, dead_confirmed: bool, known: KnownMembers | None
) -> list[Finding]:
    """Is the master really dead, is there a master already, who else is in the group."""
    out: list[Finding] = []
    d = str(dead)
    dead_node = topo.get(dead)
    unfit = unfit_finding(dead_node, "the master") if dead_node is not None else None
    if unfit is not None:
        out.append(unfit)
    elif (dead_node is not None and dead_node.reachable) or not dead_confirmed:
        out.append(
            Finding(
                "refuse",
                "master_alive",
                f"{d} answers: it is not dead. Use 'redisops switchover' for a planned change "
                f"(it loses no writes)",
                d,
            )
        )
    for other in topo.nodes:
        if detach_record(other) is not None:
            continue  # made a separate master on purpose ('redisops detach'): not in the group
        if other.reachable and other.unfit is None and other.is_master and other.address != dead:
            out.append(
                Finding(
                    "refuse",
                    "already_failed_over",
                    f"{other.address} is already a master in this group: {d} was already failed "
                    f"over to it (by another run?); see 'redisops status {other.address}', and "
                    f"use 'redisops switchover' to change the master now",
                    str(other.address),
                )
            )
    # replicas the last-known topology lists are reported by known_replica_findings
    listed = set(known.record.replicas_of(d)) if known and known.record else set()
    for lost in topo.nodes:
        if (
            not lost.reachable
            and lost.address != dead
            and lost.unfit is None
            and str(lost.address) not in listed
        ):
            out.append(
                Finding(
                    "warn",
                    "replica_unreachable",
                    f"{lost.address} is unreachable: it is not a candidate, cannot be repointed "
                    f"now (the failover ends partially applied, exit 8) and any writes only it "
                    f"holds are unknown; attach it to the new master once it is back",
                    str(lost.address),
                )
            )
    if known is not None and not known.complete:
        seen = [str(n.address) for n in topo.nodes if n.reachable and n.is_replica]
        out.append(
            Finding(
                "warn",
                "membership_incomplete",
                f"{d} is dead, so it cannot list its replicas: this plan knows only the ones "
                f"reached from {known.source} ({', '.join(seen) or 'none'}); any other replica "
                f"of {d} is left behind, still pointing at it (give every replica as a SEED, "
                f"or use --cluster)",
            )
        )
    return out


def _choose(
    topo: Topology, cands: list[Candidate], to: Address | None, d: str, findings: list[Finding]
) -> Candidate | None:
    """The candidate to promote: ``--to``'s (checked), or the best one by the rules."""
    if to is None:
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
        return chosen
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
    return chosen


def _can_stand_in(node: NodeInfo) -> bool:
    return node.can_run("REPLICAOF")


def _promote_step(n: int, node: str, why: str) -> Step:
    return Step(
        n,
        node,
        "command",
        f"promote {node}{why}",
        command=("REPLICAOF", "NO", "ONE"),
        verify="ROLE shows master",
        commit=True,
        idempotent=False,
    )


def _repoint_step(n: int, target: NodeInfo, nodes: list[str], *, what: str = "") -> Step:
    t = str(target.address)
    return Step(
        n,
        t,
        "repoint",
        f"repoint {what or 'the other replicas'} to {t}",
        command=("REPLICAOF", target.address.host, str(target.address.port)),
        verify="links up",
        args={"nodes": nodes, "target": t, "on_failure": "continue"},
    )


def resyncs_after_promoting(new: NodeInfo, followers: Iterable[NodeInfo]) -> list[SyncPrediction]:
    """What each follower does when it is pointed at ``new`` once ``new`` is promoted
    (REPLICAOF NO ONE at the offset it applied): partial or full, per the engine."""
    promoted = promoted_view(new, applied_offset(new))
    return [
        predict_sync(promoted, at_offset(n, applied_offset(n)), RateParams()) for n in followers
    ]


class _DirectPlan:
    """Promote the chosen replica at once: it is the most advanced of its history (or no
    replica ahead of it can stand in). Replicas with data it lacks lose it."""

    def __init__(
        self,
        topo: Topology,
        dead: Address,
        session: Session,
        new: NodeInfo,
        source: NodeInfo | None,
        persist: bool,
    ) -> None:
        self.topo, self.dead, self.session, self.new, self.source = topo, dead, session, new, source
        self.persist = persist
        self.d, self.t = str(dead), str(new.address)
        under_new = {x.address for x in topo.descendants(new)}
        self.others = [
            n
            for n in topo.nodes
            if n.reachable
            and n.is_replica
            and n.unfit is None
            and n.address != new.address
            and n.address not in under_new
        ]
        self.lost = [
            str(n.address)
            for n in topo.nodes
            if not n.reachable and n.address != dead and n.unfit is None
        ]
        #: the replicas known are only those the seeds reach (no inventory, no record)
        self.partial_view = False
        self.fence_mode: str | None = None  # --fence: also fence the dead master on its host

    def replicas_text(self) -> str:
        n = len(self.others)
        return f"{n} replica(s)" + (" reachable from the seeds" if self.partial_view else "")

    # the history the new master will carry (for losses): its own, or its stand-in's
    def history(self) -> NodeInfo:
        return self.new

    def build(
        self,
        findings: list[Finding],
        prediction: dict[str, Any],
        accept_data_loss: bool,
        members: tuple[str, ...],
    ) -> Plan:
        preds = self.predictions()
        for p in preds:
            if p.sync == "full":
                findings.append(
                    Finding(
                        "warn",
                        "full_resync",
                        f"{p.replica} will full-sync from {p.master}: {p.reason}",
                        p.replica,
                    )
                )
        findings += partial_only_findings(self.new, self.others, {p.replica: p.sync for p in preds})
        lost = losses(self.topo, self.history(), self.dead)
        loss_text = "; ".join(x.text() for x in lost)
        if lost:
            findings.append(
                Finding(
                    "warn" if accept_data_loss else "refuse",
                    "data_loss",
                    f"no loss-free path: promoting {self.t} discards {loss_text} (those nodes "
                    f"full-sync from it)"
                    + ("" if accept_data_loss else "; pass --accept-data-loss to proceed"),
                )
            )
        findings += command_refusals(self.command_needs())
        if self.persist:
            block = persist_refusal([self.new, *self.others], self.session)
            if block is not None:
                findings.append(block)
        full = sum(1 for p in preds if p.sync == "full")
        prediction.update(
            {
                "sync": "partial" if not full else "full",
                "reason": self.reason(),
                "transfer_bytes": sum(p.transfer_bytes for p in preds),
                "estimated_seconds": 0.0,
                "risks": list(dict.fromkeys(r for p in preds for r in p.risks)),  # once each
                "replicas": [p.to_dict() for p in preds],
                "catch_up": self.catch_up(),
                "writes_lost": [
                    {"node": x.node, "bytes": x.bytes, "keys": x.extra_keys} for x in lost
                ],
            }
        )
        steps = self.steps(full)
        summary = self.summary() + (
            f"; LOSES {loss_text}" if lost else "; nothing acknowledged by a replica is lost"
        )
        touched = (self.t, *[str(x.address) for x in self.others], *self.lost, self.d)
        return Plan(
            "failover",
            self.session.cluster_name,
            tuple(steps),
            tuple(findings),
            prediction,
            summary,
            touched=tuple(dict.fromkeys((*touched, *group_nodes(self.topo)))),
            members=members,
        )

    def command_needs(self) -> dict[str, list[NodeInfo]]:
        return {"REPLICAOF": [self.new, *self.others]}

    def catch_up(self) -> dict[str, Any] | None:
        return None

    def reason(self) -> str:
        return (
            f"{self.t} is promoted with REPLICAOF NO ONE: its history stays valid as replid2 "
            f"up to offset {applied_offset(self.new) + 1}; replicas at or below that offset "
            f"continue partially"
        )

    def predictions(self) -> list[SyncPrediction]:
        return resyncs_after_promoting(self.new, self.others)

    def summary(self) -> str:
        return (
            f"failover of dead master {self.d}: promote {self.t} (offset "
            f"{applied_offset(self.new)}), repoint {self.replicas_text()}, fence {self.d}"
        )

    def steps(self, expected_full: int) -> list[Step]:
        t = self.t
        others = [str(x.address) for x in self.others]
        steps = [
            *self.opening(),
            _promote_step(4, t, ""),
            _repoint_step(5, self.new, others + self.lost),
        ]
        return self.closing(steps, expected_full)

    def opening(self) -> list[Step]:
        nodes = [self.t, *[str(x.address) for x in self.others]]
        return [
            Step(
                1,
                self.d,
                "confirm-down",
                f"confirm {self.d} is down (several probes)",
                command=("PING",),
                verify="every probe fails",
                args={"probes": 3, "interval": 0.5},
            ),
            Step(
                2,
                self.t,
                "lock-local",
                "take the local cluster lock (the master is dead)",
                verify="flock held",
            ),
            Step(
                3,
                self.t,
                "baseline-all",
                "record sync counters on the replicas",
                command=("INFO", "stats"),
                verify="counters read",
                args={"nodes": nodes},
            ),
        ]

    def closing(self, steps: list[Step], expected_full: int) -> list[Step]:
        """Clear a stale lock, fence the old master, persist, verify, unlock."""
        t, d = self.t, self.d
        n = len(steps) + 1
        steps.append(
            Step(
                n,
                t,
                "clear-stale-lock",
                f"drop the lock key {t} copied from the dead master, if any",
                command=("DEL", "redisops:lock"),
                verify="no lock key left by an operation that died with the master",
                args={"on_failure": "continue"},
            )
        )
        dead_node = self.topo.get(self.dead)
        steps.append(
            Step(
                n + 1,
                t,
                "fence-record",
                f"record that {d} must not come back as a master",
                command=("SET", FENCE_KEY, "<record>"),
                verify="record written on the new master",
                args={
                    "old": d,
                    "old_run_id": dead_node.run_id if dead_node else None,
                    "new": t,
                    "on_failure": "continue",
                },
            )
        )
        n += 2
        others = [str(x.address) for x in self.others if x.address != self.new.address]
        if self.persist:
            for name in [t, *others]:
                steps.append(persist_step(n, name, "its new role"))
                n += 1
        if self.fence_mode is not None:
            # on the dead master's machine (SSH): stop its service, or point its config file
            # at the new master; after the point of no return, so a dead host only warns
            fenced = host_fence_steps(self.fence_mode, self.dead, self.new.address, n, self.session)
            steps += fenced
            n += len(fenced)
        steps.append(
            Step(
                n,
                t,
                "verify-switchover",
                "verify the new topology",
                verify=f"{t} the only master; every link up; journal key read back",
                args={
                    "nodes": others,
                    "target": t,
                    "followers": followers_of(self.topo, self.new),
                    "expected_full": expected_full,
                    "on_failure": "continue",
                },
            )
        )
        steps.append(Step(n + 1, t, "unlock", "release the cluster lock", verify="released"))
        return steps


class _CatchUpPlan(_DirectPlan):
    """The chosen replica is behind ``source`` on the same history: ``source`` stands in as
    master (a replica serves PSYNC only with its own master link up), every replica resyncs
    from it, and a zero-loss switch hands the role to the chosen one."""

    def __init__(
        self,
        topo: Topology,
        dead: Address,
        session: Session,
        new: NodeInfo,
        source: NodeInfo | None,
        persist: bool,
    ) -> None:
        super().__init__(topo, dead, session, new, source, persist)
        assert source is not None
        self.stand_in: NodeInfo = source
        self.s = str(source.address)
        keep = {x.address for x in [*topo.descendants(source), *topo.descendants(new)]}
        # first every replica (the chosen one too) follows the stand-in; replicas chained
        # below the stand-in or the chosen one follow their own master
        self.first = [
            n
            for n in topo.nodes
            if n.reachable
            and n.is_replica
            and n.unfit is None
            and n.address != source.address
            and n.address not in keep
        ]
        self.ping_period, self.ping_note = original_ping_period(source)

    def history(self) -> NodeInfo:
        return self.stand_in

    def command_needs(self) -> dict[str, list[NodeInfo]]:
        return {"REPLICAOF": [self.stand_in, *self.first], "CLIENT": [self.stand_in]}

    def catch_up(self) -> dict[str, Any]:
        gap = history_gap(self.new, self.stand_in) or 0
        return {"from": self.s, "bytes": gap}

    def reason(self) -> str:
        gap = history_gap(self.new, self.stand_in) or 0
        return (
            f"{self.t} is {gap} bytes behind {self.s} on the same history: {self.s} is promoted "
            f"first (a replica serves PSYNC only while its own master link is up), {self.t} and "
            f"the other replicas resync from it, then writes on {self.s} are paused until {self.t} "
            f"has its offset and {self.t} takes over (as in a switchover): nothing is lost"
        )

    def predictions(self) -> list[SyncPrediction]:
        return resyncs_after_promoting(self.stand_in, self.first)

    def summary(self) -> str:
        gap = history_gap(self.new, self.stand_in) or 0
        return (
            f"failover of dead master {self.d}: {self.t} is {gap} bytes behind {self.s}, so "
            f"{self.s} stands in as master until {self.t} has caught up, then {self.t} takes "
            f"over; repoint {self.replicas_text()}, fence {self.d}"
        )

    def steps(self, expected_full: int) -> list[Step]:
        s, t = self.s, self.t
        first = [str(x.address) for x in self.first]
        steps = [
            *self.opening(),
            _promote_step(4, s, f" as a stand-in: it holds the most data ({t} catches up from it)"),
            _repoint_step(5, self.stand_in, [*first, *self.lost], what="every other replica"),
        ]
        for name in first:
            # the chosen one must have every byte before the switch; another replica that
            # does not get there in time is reported and resyncs from the new master later
            extra = {} if name == t else {"on_failure": "continue"}
            steps.append(
                Step(
                    len(steps) + 1,
                    name,
                    "wait-sync",
                    f"wait until {name} has {s}'s data",
                    verify="link up and offset equal to the stand-in's",
                    args={"master": s, "timeout": 300.0, **extra},
                )
            )
        if self.ping_period is not None:
            steps.append(freeze_step(len(steps) + 1, s, self.ping_period))
        steps.append(
            Step(
                len(steps) + 1,
                s,
                "switch",
                f"pause writes on {s}, wait until {t} has its offset, promote {t}, demote {s} "
                f"under it, unpause",
                command=("CLIENT", "PAUSE", "5000", "WRITE"),
                precondition=f"{t} in sync with {s}",
                verify=f"{t} is master at {s}'s offset; {s} replicates from {t}",
                idempotent=False,
                args={"target": t, "timeout_ms": 5000, "master_run_id": self.stand_in.run_id},
            )
        )
        rest = [str(x.address) for x in self.others if x.address != self.stand_in.address]
        steps.append(_repoint_step(len(steps) + 1, self.new, rest))
        if self.ping_period is not None:
            steps.append(restore_pings_step(len(steps) + 1, s, self.ping_period))
        return self.closing(steps, expected_full)

    def build(
        self,
        findings: list[Finding],
        prediction: dict[str, Any],
        accept_data_loss: bool,
        members: tuple[str, ...],
    ) -> Plan:
        findings.append(
            Finding(
                "info",
                "catch_up",
                f"{self.t} is {history_gap(self.new, self.stand_in) or 0} bytes behind {self.s}: "
                f"it catches up from {self.s} before it is promoted, so nothing is lost",
                self.t,
            )
        )
        if self.ping_note is not None:
            findings.append(self.ping_note)
        return super().build(findings, prediction, accept_data_loss, members)


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
            why = (
                f"cannot be read now ({node.error})"
                if node and node.error
                else "does not answer now"
            )
            out.append(
                Finding(
                    "warn",
                    "known_replica_unreachable",
                    f"{addr} was a replica of {dead} {now - seen:.0f}s ago and {why}: "
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


@action("lock-local", takes_lock=True)
def run_lock_local(ctx: RunContext, step: Step) -> str:
    if ctx.lock is None:
        raise Refused("internal: the plan takes a lock but the run has none")
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
