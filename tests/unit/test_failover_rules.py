"""Failover candidate selection (Sentinel's rules) and the failover plan, over hand-built
snapshots: the dead master is simply absent from the world (unreachable)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from redisops.model import Address, NodeInfo, Topology
from redisops.ops.failover import (
    Candidate,
    KnownMembers,
    known_members,
    plan_failover,
    rank_candidates,
)
from redisops.session import build_session
from tests.builders import master, replica, rid, topology

DEAD = "127.0.0.1:7000"
A, B, C, D = "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003", "127.0.0.1:7004"
OLD = rid("old history")


def down(
    address: str,
    *,
    offset: int,
    priority: int = 100,
    since: int = 5,
    replicas: tuple[str, ...] = (),
    **extra: str,
) -> NodeInfo:
    """A replica of the dead master, its link down for ``since`` seconds; ``extra`` INFO
    fields override the builder's."""
    node = replica(
        address,
        DEAD,
        offset=offset,
        link="down",
        down_since=since,
        priority=priority,
        replid=OLD,
        replicas=replicas,
    )
    return replace(node, info={**node.info, **extra})


def world(*nodes: NodeInfo) -> Topology:
    return topology(*nodes, seeds=[str(n.address) for n in nodes])


def ranked(*nodes: NodeInfo, max_disconnect: int = 60) -> dict[str, Candidate]:
    return {
        c.address: c for c in rank_candidates(world(*nodes), Address.parse(DEAD), max_disconnect)
    }


def session():  # type: ignore[no-untyped-def]
    return build_session(seeds=[A])


def test_lowest_priority_wins_before_the_offset() -> None:
    c = ranked(down(A, offset=900, priority=100), down(B, offset=500, priority=10))
    assert c[B].chosen and not c[A].chosen
    assert c[A].eligible
    assert c[A].reason == f"priority 100; {B} has the lower (preferred) 10"
    # the loss of choosing B is shown all the same
    assert c[B].gap_bytes == 400 and c[A].gap_bytes == 0


def test_highest_offset_wins_among_equal_priorities_and_the_gap_is_shown() -> None:
    c = ranked(down(A, offset=700), down(B, offset=1000), down(C, offset=1000 - 64))
    assert c[B].chosen
    assert c[B].reason == "priority 100, highest offset 1000"
    assert (c[A].gap_bytes, c[C].gap_bytes) == (300, 64)
    assert c[A].reason == f"300 bytes behind {B}"


def test_equal_offsets_are_broken_by_the_smaller_run_id_and_the_tie_is_explained() -> None:
    c = ranked(down(A, offset=500), down(B, offset=500), down(C, offset=500))
    winner = min((A, B, C), key=lambda a: rid("run:" + a))
    assert c[winner].chosen
    others = sorted({A, B, C} - {winner})
    assert c[winner].reason == (
        f"priority 100, highest offset 500; tie on offset with "
        f"{', '.join(sorted(others, key=lambda a: rid('run:' + a)))} broken by the smaller run id"
    )
    for other in others:
        assert c[other].reason == f"same offset as {winner}, larger run id"


def test_priority_zero_loading_and_syncing_replicas_are_never_chosen() -> None:
    c = ranked(
        down(A, offset=100),
        down(B, offset=900, priority=0),
        down(C, offset=900, loading="1"),
        down(D, offset=900, master_sync_in_progress="1"),
    )
    assert c[A].chosen
    assert c[B].reason == "replica-priority 0: never promoted"
    assert c[C].reason.startswith("loading or in a full sync")
    assert c[D].reason.startswith("loading or in a full sync")
    assert not any(c[x].eligible for x in (B, C, D))
    # the gap is measured against the most advanced replica whose dataset is complete: B
    # (priority 0 keeps it from being promoted, not from being caught up from); the loading
    # and syncing ones do not count
    assert c[A].gap_bytes == 800 and c[A].ahead == B
    assert c[A].reason == (
        f"priority 100, offset 100: 800 bytes behind {B}, which it catches up from before it "
        f"is promoted"
    )


def test_a_replica_whose_link_is_up_does_not_see_the_master_down() -> None:
    c = ranked(down(A, offset=100), replica(B, DEAD, offset=200, replid=OLD))
    assert c[A].chosen
    assert c[B].reason == f"its link to {DEAD} is up: the master is not down for this replica"


def test_a_replica_disconnected_long_before_the_others_is_dropped() -> None:
    nodes = (down(A, offset=100, since=3), down(B, offset=900, since=3 + 61))
    c = ranked(*nodes)
    assert c[A].chosen and not c[B].eligible
    assert c[B].reason.startswith("disconnected 64s ago, 61s before the freshest replica (> 60s)")
    assert ranked(*nodes, max_disconnect=120)[B].chosen


def test_every_replica_with_priority_zero_refuses_the_failover() -> None:
    topo = world(down(A, offset=100, priority=0), down(B, offset=100, priority=0))
    plan = plan_failover(topo, Address.parse(DEAD), session())
    assert plan.steps == ()
    [refusal] = plan.refusals(force=True)
    assert refusal.code == "no_eligible"
    assert f"{A}: replica-priority 0: never promoted" in refusal.message
    assert plan.prediction is not None and plan.prediction["chosen"] is None


def test_a_master_that_answers_is_refused_and_switchover_is_suggested() -> None:
    m = master(DEAD, offset=100, replicas=[A], replid=OLD)
    topo = world(m, replica(A, DEAD, offset=100, replid=OLD))
    plan = plan_failover(topo, Address.parse(DEAD), session())
    codes = [f.code for f in plan.refusals(force=True)]
    assert "master_alive" in codes
    assert "redisops switchover" in next(
        f.message for f in plan.findings if f.code == "master_alive"
    )
    # and a probe that answered once is enough, even if discovery missed it
    gone = world(down(A, offset=100))
    plan = plan_failover(gone, Address.parse(DEAD), session(), dead_confirmed=False)
    assert "master_alive" in [f.code for f in plan.refusals()]


def test_a_named_replica_behind_another_catches_up_from_it_first_and_nothing_is_lost() -> None:
    topo = world(down(A, offset=1000), down(B, offset=600))
    plan = plan_failover(topo, Address.parse(DEAD), session(), to=Address.parse(B), auto=False)
    assert plan.refusals() == []
    assert plan.prediction is not None and plan.prediction["chosen"] == B
    assert plan.prediction["catch_up"] == {"from": A, "bytes": 400}
    assert plan.prediction["writes_lost"] == []
    [note] = [f for f in plan.findings if f.code == "catch_up"]
    assert note.message.startswith(f"{B} is 400 bytes behind {A}: it catches up from {A}")
    assert "nothing acknowledged by a replica is lost" in plan.summary
    # A stands in as master (a replica serves PSYNC only with its link up), B resyncs from
    # it, then a zero-loss switch hands the role to B
    steps = [(s.action, s.node) for s in plan.steps]
    assert steps[:8] == [
        ("confirm-down", DEAD),
        ("lock-local", B),
        ("baseline-all", B),
        ("command", A),
        ("repoint", A),
        ("wait-sync", B),
        ("freeze-pings", A),
        ("switch", A),
    ]
    promote, repoint, switch = plan.steps[3], plan.steps[4], plan.steps[7]
    assert promote.command == ("REPLICAOF", "NO", "ONE") and promote.commit
    assert repoint.args["nodes"] == [B]
    assert switch.args["target"] == B
    # B resyncs partially from A's backlog (A's old id is its replid2 after the promotion)
    assert {p["replica"]: p["sync"] for p in plan.prediction["replicas"]} == {B: "partial"}
    verify = next(s for s in plan.steps if s.action == "verify-switchover")
    assert verify.node == B and verify.args["nodes"] == [A]


def test_diverged_histories_have_no_loss_free_path_and_need_accept_data_loss() -> None:
    other = rid("another history")
    topo = world(
        down(A, offset=1000),
        replace(
            down(B, offset=5000, priority=10),
            info={
                **down(B, offset=5000).info,
                "master_replid": other,
                "db0": "keys=40,expires=0,avg_ttl=0",
            },
        ),
    )
    plan = plan_failover(topo, Address.parse(DEAD), session(), to=Address.parse(A), auto=False)
    [refusal] = plan.refusals(force=True)
    assert refusal.code == "data_loss"
    assert (
        f"no loss-free path: promoting {A} discards a diverged history (about 40 keys) on {B}"
        in (refusal.message)
    )
    assert "--accept-data-loss" in refusal.message
    assert f"LOSES a diverged history (about 40 keys) on {B}" in plan.summary
    accepted = plan_failover(
        topo,
        Address.parse(DEAD),
        session(),
        to=Address.parse(A),
        auto=False,
        accept_data_loss=True,
    )
    assert accepted.refusals() == [] and accepted.steps
    assert [f.level for f in accepted.findings if f.code == "data_loss"] == ["warn"]


def test_a_group_that_already_has_a_master_refuses_a_second_failover() -> None:
    promoted = master(A, offset=1000, replicas=[B], replid=rid("new"))
    topo = world(promoted, replica(B, A, offset=1000, replid=rid("new")))
    plan = plan_failover(topo, Address.parse(DEAD), session(), to=Address.parse(B), auto=False)
    refusal = next(f for f in plan.refusals(force=True) if f.code == "already_failed_over")
    assert refusal.node == A
    assert f"{A} is already a master in this group: {DEAD} was already failed over" in (
        refusal.message
    )
    assert plan.steps == ()


def test_without_an_inventory_the_plan_says_other_replicas_of_the_dead_master_are_unseen() -> None:
    a = down(A, offset=1000, replicas=(C,))
    topo = topology(a, replica(C, A, offset=1000, replid=OLD), seeds=[C])
    known = KnownMembers((Address.parse(C), Address.parse(A)), "the seeds", False)
    plan = plan_failover(topo, Address.parse(DEAD), session(), known=known)
    [warning] = [f for f in plan.findings if f.code == "membership_incomplete"]
    assert "give every replica as a SEED, or use --cluster" in warning.message
    assert "reachable from the seeds" in plan.summary
    assert f"({A}, {C})" in warning.message
    assert DEAD in plan.members and f"run:{rid('run:' + A)}" in plan.members


def test_a_named_priority_zero_replica_needs_force() -> None:
    topo = world(down(A, offset=100), down(B, offset=100, priority=0))
    plan = plan_failover(topo, Address.parse(DEAD), session(), to=Address.parse(B), auto=False)
    [refusal] = plan.refusals()
    assert refusal.code == "ineligible" and refusal.forceable
    assert plan.refusals(force=True) == []


def test_the_plan_promotes_repoints_every_other_replica_and_fences_the_old_master() -> None:
    a = down(A, offset=1000, replicas=(C,))
    chained = replica(C, A, offset=1000, replid=OLD)
    topo = world(a, down(B, offset=990), chained)
    plan = plan_failover(topo, Address.parse(DEAD), session(), persist=True)
    assert plan.refusals() == []
    assert plan.prediction is not None and plan.prediction["chosen"] == A
    actions = [(s.action, s.node) for s in plan.steps]
    assert actions[:7] == [
        ("confirm-down", DEAD),
        ("lock-local", A),
        ("baseline-all", A),
        ("command", A),
        ("repoint", A),
        ("clear-stale-lock", A),
        ("fence-record", A),
    ]
    assert [a for a, _ in actions[-3:]] == ["config-rewrite", "verify-switchover", "unlock"]
    promote = plan.steps[3]
    assert promote.command == ("REPLICAOF", "NO", "ONE") and promote.commit
    repoint = plan.steps[4]
    assert repoint.command == ("REPLICAOF", "127.0.0.1", "7001")
    assert repoint.args["nodes"] == [B]  # C already hangs below A
    assert plan.steps[6].args["old"] == DEAD and plan.steps[6].args["new"] == A
    assert plan.prediction["sync"] == "partial"
    # every candidate is listed for the table output, with its offset, gap and verdict
    notes = [f.message for f in plan.findings if f.code == "candidate"]
    assert notes[0].startswith(f"candidate {A}: offset 1000 (0 bytes behind the most advanced")
    assert "CHOSEN" in notes[0]
    assert notes[1].startswith(f"candidate {B}: offset 990 (10 bytes behind the most advanced")


def test_a_sentinel_managed_set_is_refused_unless_forced() -> None:
    topo = world(down(A, offset=100, redisops_sentinel_subscribers="3"), down(B, offset=100))
    plan = plan_failover(topo, Address.parse(DEAD), session())
    [refusal] = plan.refusals()
    assert refusal.code == "sentinel_managed" and refusal.forceable
    assert plan.steps == ()
    forced = plan_failover(topo, Address.parse(DEAD), session(), force=True)
    assert forced.refusals(force=True) == [] and forced.steps


def test_an_unreachable_seed_is_a_warning_not_a_candidate() -> None:
    topo = topology(down(A, offset=100), seeds=[A, B])
    plan = plan_failover(topo, Address.parse(DEAD), session())
    assert plan.refusals() == []
    [warning] = [f for f in plan.findings if f.code == "replica_unreachable"]
    assert warning.node == B and warning.level == "warn"
    assert plan.prediction is not None
    assert [c["address"] for c in plan.prediction["candidates"]] == [A]


def test_the_inventory_node_list_is_the_known_membership_of_the_group(tmp_path: Path) -> None:
    inventory = tmp_path / "redisops.yml"
    inventory.write_text(f"clusters:\n  cache:\n    nodes: [{A}, {B}, {C}]\n")
    sess = build_session(cluster="cache", inventory=inventory)
    topo = world(down(A, offset=100))
    known = known_members(sess, topo, Address.parse(DEAD))
    assert known.complete
    assert {str(a) for a in known.addresses} == {DEAD, A, B, C}
    plan = plan_failover(topo, Address.parse(DEAD), sess, known=known)
    assert "membership_incomplete" not in [f.code for f in plan.findings]
    assert {B, C} <= set(plan.members)  # locked too, though unread
