"""The switchover plan: preflight findings, steps and prediction, over hand-built snapshots."""

from __future__ import annotations

from dataclasses import replace

from redisops.model import Address, NodeInfo, Plan
from redisops.ops.switchover import plan_switchover
from redisops.session import Session, build_session
from redisops.topology import PING_FREEZE
from tests.builders import master, replica, rid, topology

M, T, OT, CH, X = (f"127.0.0.1:{p}" for p in (7000, 7001, 7002, 7003, 7004))
HIST = rid("history")


def cluster(
    *,
    target: NodeInfo | None = None,
    master_extra: dict[str, str] | None = None,
    other_extra: dict[str, str] | None = None,
) -> list[NodeInfo]:
    """M with replicas T and OT; CH chained below OT; X chained below T."""
    return [
        master(
            M,
            offset=1000,
            replicas=[T, OT],
            replid=HIST,
            config={"replica-priority": "100", "repl-ping-replica-period": "7"},
            **(master_extra or {}),
        ),
        target or replica(T, M, offset=1000, replid=HIST, replicas=[X]),
        replica(OT, M, offset=1000, replid=HIST, replicas=[CH], **(other_extra or {})),
        replica(CH, OT, offset=1000, replid=HIST),
        replica(X, T, offset=1000, replid=HIST),
    ]


def plan(
    nodes: list[NodeInfo] | None = None,
    *,
    target: str = T,
    master_addr: str = M,
    session: Session | None = None,
    **options: object,
) -> Plan:
    topo = topology(*(nodes or cluster()), seeds=[M])
    return plan_switchover(
        topo,
        Address.parse(master_addr),
        Address.parse(target),
        session or build_session(seeds=[target]),
        **options,  # type: ignore[arg-type]
    )


def codes(p: Plan, force: bool = False) -> list[str]:
    return [f.code for f in p.refusals(force)]


def test_the_default_plan_pauses_catches_up_promotes_demotes_then_repoints_the_rest() -> None:
    p = plan(pause_timeout_ms=800)
    assert p.refusals() == []
    assert [s.action for s in p.steps] == [
        "lock",
        "baseline-all",
        "freeze-pings",
        "switch",
        "repoint",
        "command",
        "verify-switchover",
        "unlock",
    ]
    lock, baseline, freeze, switch, repoint, restore, verify, unlock = p.steps
    assert lock.node == M and unlock.node == T  # the key travels with the data
    assert freeze.command == ("CONFIG", "SET", "repl-ping-replica-period", PING_FREEZE)
    assert freeze.rollback == ("CONFIG", "SET", "repl-ping-replica-period", "7")
    assert restore.command == ("CONFIG", "SET", "repl-ping-replica-period", "7")
    assert switch.command == ("CLIENT", "PAUSE", "800", "WRITE")
    assert switch.commit and not switch.idempotent
    assert switch.args["target"] == T and switch.args["timeout_ms"] == 800
    # every other replica, the chained one included, goes directly under the target; the
    # target's own replica stays where it is
    assert repoint.command == ("REPLICAOF", "127.0.0.1", "7001")
    assert repoint.args["nodes"] == [OT, CH]
    assert verify.args["nodes"] == [M, OT, CH]
    assert set(baseline.args["nodes"]) == {M, T, OT, CH}
    assert restore.args["if_fact"] == "pings_frozen"  # restored only if it was frozen
    # the result reports every node of the group, the target's own replica included
    assert set(p.touched) == {M, T, OT, CH, X}


def test_the_prediction_is_partial_for_the_old_master_and_every_replica() -> None:
    p = plan()
    assert p.prediction is not None
    assert p.prediction["sync"] == "partial"
    assert {r["replica"]: r["sync"] for r in p.prediction["replicas"]} == {
        M: "partial",
        OT: "partial",
        CH: "partial",
    }
    assert "replid2" in p.prediction["reason"]


def test_native_method_uses_failover_to_and_then_repoints_the_rest() -> None:
    p = plan(method="native", pause_timeout_ms=3000)
    assert [s.action for s in p.steps] == [
        "lock",
        "baseline-all",
        "native-failover",
        "repoint",
        "verify-switchover",
        "unlock",
    ]
    assert p.steps[2].command == ("FAILOVER", "TO", "127.0.0.1", "7001", "TIMEOUT", "3000")
    assert p.steps[3].args["nodes"] == [OT, CH]


def test_persist_rewrites_the_config_of_every_node_it_moves() -> None:
    p = plan(persist=True)
    rewrites = [s.node for s in p.steps if s.action == "config-rewrite"]
    assert rewrites == [T, M, OT, CH]


def test_a_priority_zero_target_is_refused_unless_forced() -> None:
    target = replica(T, M, offset=1000, replid=HIST, priority=0)
    p = plan(cluster(target=target))
    assert codes(p) == ["priority_zero"]
    assert codes(p, force=True) == []


def test_an_older_target_version_is_refused_unless_forced() -> None:
    target = replica(T, M, offset=1000, replid=HIST, redis_version="6.0.16")
    p = plan(cluster(target=target))
    assert codes(p) == ["version"]
    assert "older than" in p.refusals()[0].message
    assert codes(p, force=True) == []


def test_a_lagging_target_is_refused_and_the_limit_is_configurable() -> None:
    target = replica(T, M, offset=1000 - 5000, replid=HIST)
    assert codes(plan(cluster(target=target))) == []  # 5000 bytes < 1 MiB default
    p = plan(cluster(target=target), max_lag_bytes=4096)
    assert codes(p) == ["lagging"]
    assert "lags 5000 bytes" in p.refusals()[0].message
    assert codes(p, force=True) == ["lagging"]  # not forceable


def test_a_target_with_its_link_down_is_refused() -> None:
    target = replica(T, M, offset=1000, replid=HIST, link="down")
    assert "link_down" in codes(plan(cluster(target=target)), force=True)


def test_a_node_outside_the_masters_tree_is_refused() -> None:
    stranger = master("127.0.0.1:7009", offset=5, replid=rid("other"))
    topo = topology(*cluster(), stranger, seeds=[M, "127.0.0.1:7009"])
    p = plan_switchover(
        topo, Address.parse(M), Address.parse("127.0.0.1:7009"), build_session(seeds=[M])
    )
    assert "not_a_replica" in codes(p, force=True)


def test_naming_a_replica_as_the_master_is_refused() -> None:
    p = plan(master_addr=OT, target=CH)
    assert "not_master" in codes(p, force=True)
    assert f"{OT} is not a master" in p.refusals(force=True)[0].message


def test_an_unreachable_target_cannot_be_planned() -> None:
    nodes = [n for n in cluster() if str(n.address) != T]
    p = plan(nodes)
    assert p.steps == ()
    assert codes(p) == ["unreachable"]


def test_an_unreachable_replica_is_a_warning_and_its_repoint_fails_into_exit_8() -> None:
    nodes = [n for n in cluster() if str(n.address) != CH]
    p = plan(nodes)
    assert p.refusals() == []
    [warning] = [f for f in p.findings if f.code == "replica_unreachable"]
    assert warning.node == CH and warning.level == "warn"
    assert "exit 8" in warning.message
    # it is still on the list: it cannot be moved, so the result cannot be "applied"
    repoint = next(s for s in p.steps if s.action == "repoint")
    assert repoint.args["nodes"] == [OT, CH]
    assert CH in p.touched
    assert "1 unreachable replica(s) cannot be moved" in p.summary


def test_a_frozen_ping_period_is_never_taken_for_the_original() -> None:
    frozen = {"replica-priority": "100", "repl-ping-replica-period": PING_FREEZE}
    nodes = cluster()
    nodes[0] = master(M, offset=1000, replicas=[T, OT], replid=HIST, config=frozen)
    p = plan(nodes)
    freeze = next(s for s in p.steps if s.action == "freeze-pings")
    restore = next(s for s in p.steps if s.args.get("if_fact") == "pings_frozen")
    assert freeze.rollback == ("CONFIG", "SET", "repl-ping-replica-period", "10")
    assert restore.command == ("CONFIG", "SET", "repl-ping-replica-period", "10")
    assert "ping_period_frozen" in [f.code for f in p.findings]


def test_without_config_the_pings_are_neither_frozen_nor_restored_and_the_plan_says_so() -> None:
    nodes = cluster()
    nodes[0] = replace(nodes[0], config={}, unavailable=frozenset({"CONFIG"}))
    p = plan(nodes)
    assert p.refusals() == []
    assert "freeze-pings" not in [s.action for s in p.steps]
    assert not any(s.command and s.command[0] == "CONFIG" for s in p.steps)
    [note] = [f for f in p.findings if f.code == "config_unavailable"]
    assert note.node == M and "cannot be frozen" in note.message
    # --persist needs CONFIG REWRITE on the old master: refused before anything runs
    assert "persist_unavailable" in codes(plan(nodes, persist=True))


def test_a_renamed_replicaof_on_a_node_to_move_is_refused() -> None:
    nodes = cluster()
    nodes[2] = replace(nodes[2], unavailable=frozenset({"REPLICAOF"}))
    p = plan(nodes)
    [refusal] = p.refusals()
    assert refusal.code == "command_unavailable" and refusal.node == OT
    assert "--rename-command REPLICAOF=NEWNAME" in refusal.message


def test_the_target_is_already_the_master_so_nothing_to_do() -> None:
    p = plan(target=M)
    assert p.nothing_to_do and p.steps == ()


def test_a_sentinel_managed_set_is_refused_with_a_pointer_to_via_sentinel() -> None:
    p = plan(cluster(master_extra={"redisops_sentinel_subscribers": "3"}))
    [refusal] = p.refusals()
    assert refusal.code == "sentinel_managed" and refusal.forceable
    assert "--via-sentinel, or --force" in refusal.message
    assert codes(p, force=True) == []
    # naming a sentinel is enough to refuse
    with_sentinel = build_session(seeds=[T], sentinels=["127.0.0.1:26379"])
    assert codes(plan(session=with_sentinel)) == ["sentinel_managed"]


def test_via_sentinel_without_a_sentinel_is_refused() -> None:
    p = plan(via_sentinel=True)
    assert "no_sentinel" in codes(p, force=True)


def test_via_sentinel_pauses_writes_around_sentinel_failover() -> None:
    session = build_session(seeds=[T], sentinels=["127.0.0.1:26379"], sentinel_master="cache")
    never = replica(OT, M, offset=1000, replid=HIST, priority=0, replicas=[CH])
    nodes = [n if str(n.address) != OT else never for n in cluster()]
    p = plan(nodes, session=session, via_sentinel=True, pause_timeout_ms=4000)
    assert p.refusals() == []
    assert [s.action for s in p.steps] == [
        "lock",
        "baseline-all",
        "freeze-pings",
        "sentinel-failover",
        "command",
        "verify-switchover",
    ]
    failover = p.steps[3]
    assert failover.node == "127.0.0.1:26379"
    assert failover.command == ("SENTINEL", "FAILOVER", "cache")
    assert failover.args["candidates"] == [T]  # OT has priority 0: Sentinel never picks it
    assert failover.args["timeout_ms"] == 4000
    # Sentinel moves the master's own replicas; the chained one stays below OT
    assert p.steps[5].args["nodes"] == [M, OT]
