"""Planning ``attach`` and ``detach`` from hand-built snapshots: every preflight finding, the
steps and their commands, and the predicted resync (no Redis needed)."""

from __future__ import annotations

import json
from typing import Any

from redisops.inventory import ConnectOptions, Credentials, Secret
from redisops.model import Address, NodeInfo, Plan
from redisops.ops.attach import diagnose, plan_attach
from redisops.ops.common import Options
from redisops.ops.detach import plan_detach
from redisops.plan import remembered
from redisops.session import Session
from tests.builders import master, replica, rid, topology, unreachable

M, R1, R2, S, X = (
    "10.0.0.1:6379",
    "10.0.0.2:6379",
    "10.0.0.3:6379",
    "10.0.0.4:6379",
    "10.0.0.5:6379",
)
OLD = rid("repl")  # the builders' default history, shared by a master and its replicas
NO_CREDS = Credentials()


def session(*sentinels: str) -> Session:
    return Session(options=ConnectOptions(), sentinels=tuple(Address.parse(s) for s in sentinels))


def plan(
    *nodes: NodeInfo,
    rep: str,
    to: str,
    opts: Options | None = None,
    creds: Credentials = NO_CREDS,
    sess: Session | None = None,
    write_rate: float = 0.0,
) -> Plan:
    topo = topology(*nodes, seeds=[rep, to])
    return plan_attach(
        topo,
        Address.parse(rep),
        Address.parse(to),
        opts or Options(),
        creds,
        sess or session(),
        write_rate,
    )


def codes(p: Plan, level: str | None = None) -> list[str]:
    return [f.code for f in p.findings if level is None or f.level == level]


def finding(p: Plan, code: str) -> Any:
    return next(f for f in p.findings if f.code == code)


def actions(p: Plan) -> list[str]:
    return [s.action for s in p.steps]


def step(p: Plan, action: str, n: int = 0) -> Any:
    return [s for s in p.steps if s.action == action][n]


def keys(n: int) -> dict[str, str]:
    return {"db0": f"keys={n},expires=0,avg_ttl=0"}


def three() -> tuple[NodeInfo, NodeInfo, NodeInfo]:
    """A master at offset 1000 with two in-sync replicas (backlogs [1, 1000])."""
    return (
        master(M, offset=1000, replicas=[R1, R2], **keys(10)),
        replica(R1, M, offset=1000, **keys(10)),
        replica(R2, M, offset=1000, **keys(10)),
    )


# ----------------------------------------------------------------------------- predictions


def test_a_fresh_node_attached_to_a_master_is_a_predicted_full_resync() -> None:
    m = master(M, offset=1000, **keys(10))
    fresh = master(X, replid=rid("fresh"))
    p = plan(m, fresh, rep=X, to=M)
    assert p.refusals() == [] and not p.nothing_to_do
    pred = p.prediction
    assert pred is not None
    assert pred["sync"] == "full"
    assert "unknown to the master" in pred["reason"]
    assert pred["transfer_bytes"] > 0
    assert actions(p) == [
        "lock",
        "baseline",
        "recheck",
        "command",
        "wait-sync",
        "verify-sync",
        "unlock",
    ]
    point = step(p, "command")
    assert point.node == X
    assert point.command == ("REPLICAOF", "10.0.0.1", "6379")
    assert point.commit and not point.idempotent
    assert point.rollback == ("REPLICAOF", "NO", "ONE")  # it was a master
    assert step(p, "lock").node == M and step(p, "unlock").node == M
    assert step(p, "verify-sync").args["predicted"] == "full"
    # the lock (file and key) is named after the master it is taken on
    assert p.cluster == M
    assert "full resync predicted" in p.summary


def test_relocating_a_replica_under_its_sibling_is_a_predicted_partial_resync() -> None:
    m, r1, r2 = three()
    p = plan(m, r1, r2, rep=R2, to=R1)
    pred = p.prediction
    assert pred is not None
    assert pred["sync"] == "partial"
    assert "same replication id" in pred["reason"] and "inside the backlog" in pred["reason"]
    assert pred["psync"] == {"replid": OLD, "offset": 1001}
    assert pred["transfer_bytes"] == 0  # nothing written since: the backlog has it all
    # its keys are kept by a partial resync: no confirmation needed
    assert "replica_has_data" not in codes(p)
    # undo = back under its old master; the lock is on the top master
    assert step(p, "command").rollback == ("REPLICAOF", "10.0.0.1", "6379")
    assert step(p, "lock").node == M
    assert p.cluster == M


def test_a_replica_that_is_behind_inside_the_backlog_is_a_partial_resync() -> None:
    m = master(M, offset=5000, replicas=[R1, R2])
    r1 = replica(R1, M, offset=5000)
    r2 = replica(R2, M, offset=4000, link="down")  # cut off, cached master at 4000
    p = plan(m, r1, r2, rep=R2, to=R1)
    assert p.prediction is not None
    assert p.prediction["sync"] == "partial"
    assert p.prediction["psync"]["offset"] == 4001
    assert p.prediction["transfer_bytes"] == 1000
    assert "inside the backlog" in p.prediction["reason"]


def test_attaching_after_the_backlog_was_overrun_is_a_predicted_full_resync() -> None:
    m = master(M, offset=90_000, replicas=[R1, R2])
    # R1's backlog now holds only offsets 70000..90000
    r1 = replica(
        R1,
        M,
        offset=90_000,
        repl_backlog_first_byte_offset="70000",
        repl_backlog_histlen="20001",
    )
    r2 = replica(R2, M, offset=1000, link="down", **keys(3))
    p = plan(m, r1, r2, rep=R2, to=R1)
    assert p.prediction is not None
    assert p.prediction["sync"] == "full"
    assert "backlog overrun" in p.prediction["reason"]
    # a full sync replaces its data: the keys are counted and --yes is required
    f = finding(p, "replica_has_data")
    assert f.level == "confirm" and "3 keys" in f.message


def test_reattaching_a_detached_node_is_a_full_resync_because_of_its_new_id() -> None:
    m = master(M, offset=2000)
    detached = master(
        X,
        offset=1500,
        replid=rid("new history"),
        master_replid2=OLD,
        second_repl_offset="1001",
    )
    p = plan(m, detached, rep=X, to=M)
    assert p.prediction is not None
    assert p.prediction["sync"] == "full"
    assert p.prediction["psync"]["replid"] == rid("new history")
    assert "unknown to the master" in p.prediction["reason"]


def test_the_prediction_document_has_the_documented_shape() -> None:
    m = master(M, offset=1000)
    p = plan(m, master(X, replid=rid("x")), rep=X, to=M)
    doc = json.loads(json.dumps(p.to_dict()))
    assert doc["operation"] == "attach"
    for s in doc["steps"]:
        assert {"n", "node", "action", "command", "verify"} <= set(s)
    assert [s["n"] for s in doc["steps"]] == list(range(1, len(doc["steps"]) + 1))
    pred = doc["prediction"]
    assert pred["sync"] in ("full", "partial")
    assert isinstance(pred["reason"], str) and pred["reason"]
    assert isinstance(pred["transfer_bytes"], int)
    assert isinstance(pred["estimated_seconds"], float | int)
    assert isinstance(pred["risks"], list)
    assert "result" not in doc  # only when applied


# ----------------------------------------------------------------------------- preflight


def test_an_unreachable_master_is_refused_with_no_steps() -> None:
    r = master(X, replid=rid("x"))
    p = plan(r, unreachable(M), rep=X, to=M)
    assert codes(p, "refuse") == ["unreachable"]
    assert "connection refused" in finding(p, "unreachable").message
    assert p.steps == ()


def test_an_unreachable_replica_is_refused() -> None:
    p = plan(master(M), unreachable(X, "authentication failed"), rep=X, to=M)
    assert codes(p, "refuse") == ["unreachable"]
    assert "authentication failed" in p.findings[0].message


def test_a_node_cannot_be_attached_to_itself() -> None:
    p = plan(master(M), rep=M, to=M)
    assert codes(p, "refuse") == ["same_node"]
    assert p.steps == ()


def test_a_node_cannot_be_attached_to_itself_under_another_address() -> None:
    m = master(M)
    topo = topology(m, seeds=[M, "10.9.9.9:6379"], aliases={"10.9.9.9:6379": M})
    p = plan_attach(
        topo, Address.parse("10.9.9.9:6379"), Address.parse(M), Options(), NO_CREDS, session()
    )
    assert codes(p, "refuse") == ["same_node"]


def test_same_run_id_at_two_addresses_is_the_same_node() -> None:
    m = master(M)
    twin = master(X, run_id=m.run_id or "")
    p = plan(m, twin, rep=X, to=M)
    assert codes(p, "refuse") == ["same_node"]


def test_attaching_a_master_under_its_own_replica_is_a_cycle() -> None:
    m = master(M, offset=100, replicas=[R1])
    r1 = replica(R1, M, offset=100, replicas=[S])
    s = replica(S, R1, offset=100)
    p = plan(m, r1, s, rep=M, to=S)
    assert "cycle" in codes(p, "refuse")
    assert S in finding(p, "cycle").message


def test_already_a_replica_of_that_master_is_nothing_to_do() -> None:
    m, r1, r2 = three()
    p = plan(m, r1, r2, rep=R1, to=M)
    assert p.nothing_to_do
    assert p.steps == () and p.refusals() == []
    assert "already a replica" in p.summary and "nothing to do" in p.summary


def test_already_attached_with_the_link_down_says_so() -> None:
    m = master(M, offset=100, replicas=[])
    r = replica(R1, M, offset=50, link="down")
    p = plan(m, r, rep=R1, to=M)
    assert p.nothing_to_do
    assert "link is down" in p.summary


def test_keys_a_full_sync_would_discard_are_counted_and_need_confirmation() -> None:
    m = master(M, offset=1000)
    full_of_data = master(X, replid=rid("x"), offset=500, **keys(42))
    p = plan(m, full_of_data, rep=X, to=M)
    f = finding(p, "replica_has_data")
    assert f.level == "confirm" and f.node == X
    assert "42 keys" in f.message
    assert p.refusals() == []


def test_an_empty_replica_needs_no_confirmation() -> None:
    p = plan(master(M, offset=1000), master(X, replid=rid("x")), rep=X, to=M)
    assert "replica_has_data" not in codes(p)


def test_the_replicas_own_replicas_are_named_with_what_they_will_do() -> None:
    m = master(M, offset=1000, **keys(5))
    other = master(X, replid=rid("x"), offset=300, replicas=[S])
    sub = replica(S, X, offset=300, replid=rid("x"))
    p = plan(m, other, sub, rep=X, to=M)
    f = finding(p, "has_replicas")
    assert f.level == "warn"
    assert S in f.message and "(full)" in f.message
    assert p.prediction is not None
    (follower,) = p.prediction["followers"]
    assert follower["replica"] == S and follower["sync"] == "full"
    assert S in p.touched


def test_sub_replicas_of_a_partially_resyncing_replica_stay_connected() -> None:
    m = master(M, offset=1000, replicas=[R1, R2])
    r1 = replica(R1, M, offset=1000)
    r2 = replica(R2, M, offset=1000, replicas=[S])
    s = replica(S, R2, offset=1000)
    p = plan(m, r1, r2, s, rep=R2, to=R1)
    assert p.prediction is not None and p.prediction["sync"] == "partial"
    assert S in finding(p, "has_replicas").message
    assert [f["sync"] for f in p.prediction["followers"]] == ["none"]


def test_a_master_that_is_itself_a_replica_makes_a_chained_replica() -> None:
    m = master(M, offset=1000, replicas=[R1])
    r1 = replica(R1, M, offset=1000)
    fresh = master(X, replid=rid("x"))
    p = plan(m, r1, fresh, rep=X, to=R1)
    f = finding(p, "chained")
    assert f.level == "warn" and f.node == R1 and M in f.message
    assert p.refusals() == []
    assert step(p, "command").command == ("REPLICAOF", "10.0.0.2", "6379")
    assert step(p, "lock").node == M  # the top of the chain


def test_a_newer_master_the_replica_cannot_load_is_refused() -> None:
    m = master(M, offset=1000, redis_version="7.2.4")
    old = master(X, replid=rid("x"), redis_version="7.0.15")
    p = plan(m, old, rep=X, to=M)
    f = finding(p, "version")
    assert f.level == "refuse" and not f.forceable
    assert "redis 7.2.4 writes 11" in f.message and "formats up to 10" in f.message
    assert "retried in a loop" in f.message
    assert p.refusals(force=True) == [f]


def test_a_partial_resync_across_formats_is_allowed_with_a_warning() -> None:
    valkey = {"redis_version": "7.2.4", "server_name": "valkey", "valkey_version": "8.1.8"}
    m = master(M, offset=1000, replicas=[R1, R2], **valkey)
    r1 = replica(R1, M, offset=1000, **valkey)
    r2 = replica(R2, M, offset=1000)  # Redis 7.0, continuing under Valkey after a migration
    p = plan(m, r1, r2, rep=R2, to=R1)
    assert p.prediction is not None and p.prediction["sync"] == "partial"
    assert p.refusals() == []
    f = finding(p, "partial_only")
    assert f.level == "warn" and f.node == R2 and "valkey 8.1.8 writes 11" in f.message


def test_an_older_master_is_fine() -> None:
    m = master(M, offset=1000, redis_version="6.2.14")
    p = plan(m, master(X, replid=rid("x")), rep=X, to=M)
    assert "version" not in codes(p)


def test_an_unknown_version_is_not_refused() -> None:
    m = master(M, offset=1000, redis_version="unstable")
    p = plan(m, master(X, replid=rid("x")), rep=X, to=M)
    assert "version" not in codes(p)


def test_auth_gives_the_replica_masteruser_and_masterauth_from_the_same_source() -> None:
    creds = Credentials("ops", Secret("pl4in-s3cret"), "env REDISCLI_AUTH")
    m = master(M, offset=1000)
    r = master(X, replid=rid("x"), config={"masteruser": "old-user"})
    p = plan(m, r, rep=X, to=M, creds=creds)
    user, auth = [s for s in p.steps if s.command and s.command[:2] == ("CONFIG", "SET")]
    assert user.command == ("CONFIG", "SET", "masteruser", "ops")
    assert user.rollback == ("CONFIG", "SET", "masteruser", "old-user")
    assert auth.command == ("CONFIG", "SET", "masterauth", "***")
    assert auth.args["secret"] == (3, "password")
    # a rollback restores the password the replica had, read when the step runs
    assert auth.rollback == ("CONFIG", "SET", "masterauth", "***")
    assert auth.args["remember_config"] == "masterauth"
    assert auth.args["rollback_secret"] == (3, remembered(X, "masterauth"))
    assert "env REDISCLI_AUTH" in auth.description
    # both come before the point of no return
    point = step(p, "command", 2)
    assert point.command == ("REPLICAOF", "10.0.0.1", "6379")
    assert user.n < auth.n < point.n
    assert "pl4in-s3cret" not in json.dumps(p.to_dict())


def test_a_password_without_a_user_sets_only_masterauth() -> None:
    creds = Credentials(None, Secret("pw"), "file /etc/pw")
    p = plan(master(M, offset=10), master(X, replid=rid("x")), rep=X, to=M, creds=creds)
    sets = [s.command for s in p.steps if s.command and s.command[:2] == ("CONFIG", "SET")]
    assert sets == [("CONFIG", "SET", "masterauth", "***")]


def test_replicating_as_the_operators_acl_user_names_the_permissions_it_needs() -> None:
    creds = Credentials("ops", Secret("pw"), "env REDISCLI_AUTH")
    p = plan(master(M, offset=10), master(X, replid=rid("x")), rep=X, to=M, creds=creds)
    f = finding(p, "masteruser")
    assert f.level == "warn" and f.node == X
    assert "'ops'" in f.message and "+psync +replconf +ping" in f.message
    bare = Credentials(None, Secret("pw"), "env REDISCLI_AUTH")
    p = plan(master(M, offset=10), master(X, replid=rid("x")), rep=X, to=M, creds=bare)
    assert "masteruser" not in codes(p)


def test_no_credentials_no_auth_steps() -> None:
    p = plan(master(M, offset=10), master(X, replid=rid("x")), rep=X, to=M)
    assert not [s for s in p.steps if s.command and s.command[:2] == ("CONFIG", "SET")]


def test_a_master_without_persistence_is_warned_about() -> None:
    m = master(M, offset=10, config={"save": "", "appendonly": "no"})
    p = plan(m, master(X, replid=rid("x")), rep=X, to=M)
    f = finding(p, "unsafe_master")
    assert f.level == "warn" and f.node == M and "comes back empty" in f.message


def test_a_master_with_rdb_snapshots_or_aof_is_not_warned_about() -> None:
    for config in ({"save": "3600 1", "appendonly": "no"}, {"save": "", "appendonly": "yes"}):
        m = master(M, offset=10, config=config)
        p = plan(m, master(X, replid=rid("x")), rep=X, to=M)
        assert "unsafe_master" not in codes(p), config


def test_too_little_memory_for_the_fork_is_warned_about() -> None:
    m = master(
        M,
        offset=10,
        used_memory=str(3 * 1024**3),
        used_memory_dataset=str(2 * 1024**3),
        total_system_memory=str(4 * 1024**3),
    )
    p = plan(m, master(X, replid=rid("x")), rep=X, to=M)
    f = finding(p, "fork_headroom")
    assert f.level == "warn" and "6144 MB" in f.message and "4096 MB" in f.message


def test_enough_memory_for_the_fork_is_not_warned_about() -> None:
    m = master(M, offset=10, used_memory="1000000", total_system_memory=str(8 * 1024**3))
    p = plan(m, master(X, replid=rid("x")), rep=X, to=M)
    assert "fork_headroom" not in codes(p)


def test_writes_faster_than_the_output_buffer_can_hold_predict_a_resync_loop() -> None:
    m = master(
        M,
        offset=10,
        used_memory=str(4 * 1024**3),
        used_memory_dataset=str(4 * 1024**3),
        config={"client-output-buffer-limit": "normal 0 0 0 slave 2097152 1048576 10"},
    )
    p = plan(m, master(X, replid=rid("x")), rep=X, to=M, write_rate=20e6)
    # a dry run that predicts a loop refuses (exit 5) unless --force
    loop = finding(p, "resync_loop")
    assert loop.level == "refuse" and loop.forceable
    assert p.refusals(force=True) == []
    assert p.prediction is not None
    assert any("resync loop" in r for r in p.prediction["risks"])
    # it names the setting to change, its value now, and one that holds
    assert "client-output-buffer-limit replica (now 2mb 1mb 10)" in loop.message
    assert 'CONFIG SET client-output-buffer-limit "replica ' in loop.message


def test_a_node_a_sentinel_watches_is_refused_unless_forced() -> None:
    m = master(M, offset=10, redisops_sentinel_subscribers="1")
    p = plan(m, master(X, replid=rid("x")), rep=X, to=M)
    f = finding(p, "sentinel_managed")
    assert f.level == "refuse" and f.forceable and M in f.message
    assert p.refusals(force=True) == []
    assert p.steps  # the plan exists: --force can act on it


def test_a_given_sentinel_refuses_too() -> None:
    p = plan(
        master(M, offset=10),
        master(X, replid=rid("x")),
        rep=X,
        to=M,
        sess=session("10.0.0.10:26379"),
    )
    assert "sentinel_managed" in codes(p, "refuse")


def test_every_finding_is_reported_at_once() -> None:
    m = master(
        M,
        offset=10,
        redis_version="7.2.0",
        redisops_sentinel_subscribers="2",
        config={"save": "", "appendonly": "no"},
    )
    r = master(X, replid=rid("x"), **keys(7))
    p = plan(m, r, rep=X, to=M)
    assert set(codes(p)) >= {"version", "sentinel_managed", "unsafe_master", "replica_has_data"}


# ----------------------------------------------------------------------------- options


def test_no_wait_stops_after_replicaof() -> None:
    p = plan(
        master(M, offset=10), master(X, replid=rid("x")), rep=X, to=M, opts=Options(wait=False)
    )
    assert actions(p) == ["lock", "baseline", "recheck", "command", "unlock"]


def test_persist_rewrites_the_config_and_finishes_forward_if_that_fails() -> None:
    p = plan(
        master(M, offset=10), master(X, replid=rid("x")), rep=X, to=M, opts=Options(persist=True)
    )
    assert actions(p) == [
        "lock",
        "baseline",
        "recheck",
        "command",
        "wait-sync",
        "config-rewrite",
        "verify-sync",
        "unlock",
    ]
    rewrite = step(p, "config-rewrite")
    assert rewrite.node == X and rewrite.command == ("CONFIG", "REWRITE")
    assert rewrite.args["on_failure"] == "continue"


def test_the_timeout_reaches_the_wait_step() -> None:
    p = plan(
        master(M, offset=10), master(X, replid=rid("x")), rep=X, to=M, opts=Options(timeout=7.5)
    )
    # only what does not move with the data: the plan is rebuilt under the lock and its
    # steps compared; the wait reads what was predicted from the plan's prediction
    assert step(p, "wait-sync").args == {"master": M, "timeout": 7.5}


# ----------------------------------------------------------------------------- diagnosis


def test_the_timeout_diagnosis_names_the_handshake_and_what_the_master_lists() -> None:
    rinfo = {"master_link_status": "down", "master_link_down_since_seconds": "4"}
    minfo = {
        "slave0": "ip=127.0.0.1,port=7002,state=online,offset=10,lag=0",
        "slave_expires_tracked_keys": "0",
    }
    text = diagnose(rinfo, "handshake", minfo, "127.0.0.1:7001")
    assert "down for 4s" in text and "masterauth" in text
    assert "does not list it among its 1 replica(s)" in text
    assert "slave_expires" not in text and "master lists 0" not in text


def test_the_timeout_diagnosis_of_a_transfer_that_never_started() -> None:
    rinfo = {"master_link_status": "down", "master_sync_total_bytes": "-1"}
    minfo = {"slave0": "ip=127.0.0.1,port=7001,state=wait_bgsave,offset=0,lag=0"}
    text = diagnose(rinfo, "sync", minfo, "127.0.0.1:7001")
    assert "has not started sending its RDB" in text
    assert "lists it as ip=127.0.0.1,port=7001,state=wait_bgsave" in text


# ----------------------------------------------------------------------------- detach


def detach_plan(
    *nodes: NodeInfo, node: str, opts: Options | None = None, sess: Session | None = None
) -> Plan:
    topo = topology(*nodes, seeds=[node])
    return plan_detach(topo, Address.parse(node), opts or Options(), sess or session())


def test_detach_promotes_keeps_data_and_its_replicas_follow_by_partial_resync() -> None:
    m = master(M, offset=1000, replicas=[R1])
    r1 = replica(R1, M, offset=1000, replicas=[S], **keys(9))
    s = replica(S, R1, offset=1000)
    p = detach_plan(m, r1, s, node=R1)
    assert p.refusals() == [] and not p.nothing_to_do
    assert actions(p) == [
        "lock",
        "baseline",
        "command",
        "record-detach",
        "verify-detach",
        "unlock",
    ]
    assert step(p, "record-detach").args["from"] == M
    promote = step(p, "command")
    assert promote.node == R1 and promote.command == ("REPLICAOF", "NO", "ONE") and promote.commit
    assert step(p, "baseline").node == R1
    assert step(p, "verify-detach").args["subs"] == [S]
    assert step(p, "verify-detach").args["old_replid"] == OLD
    # the lock is on the old master; the promoted node's replicated copy of it is dropped
    assert step(p, "lock").node == M
    assert step(p, "unlock").args["drop_copies"] == [R1]
    assert p.cluster == M
    pred = p.prediction
    assert pred is not None
    assert pred["sync"] == "none" and pred["transfer_bytes"] == 0
    assert pred["replid2"] == OLD and pred["second_repl_offset"] == 1001
    assert [(f["replica"], f["sync"]) for f in pred["followers"]] == [(S, "partial")]
    becomes = finding(p, "becomes_master")
    assert "9 keys" in becomes.message and "two masters" in becomes.message
    assert S in finding(p, "followers").message


def test_detaching_a_master_is_nothing_to_do() -> None:
    p = detach_plan(master(M), node=M)
    assert p.nothing_to_do and p.steps == ()
    assert "already a master" in p.summary


def test_detaching_an_unreachable_node_is_refused() -> None:
    p = detach_plan(unreachable(R1), node=R1)
    assert codes(p, "refuse") == ["unreachable"]


def test_detaching_a_replica_whose_link_is_down_warns() -> None:
    m = master(M, offset=1000)
    r = replica(R1, M, offset=700, link="down")
    p = detach_plan(m, r, node=R1)
    assert "offset 700" in finding(p, "link_down").message


def test_detaching_a_sentinel_watched_replica_is_refused_unless_forced() -> None:
    m = master(M, offset=10, replicas=[R1])
    r = replica(R1, M, offset=10, redisops_sentinel_subscribers="1")
    p = detach_plan(m, r, node=R1)
    assert [f.code for f in p.refusals()] == ["sentinel_managed"]
    assert p.refusals(force=True) == []


def test_detach_with_persist_rewrites_the_config() -> None:
    m = master(M, offset=10, replicas=[R1])
    r = replica(R1, M, offset=10)
    p = detach_plan(m, r, node=R1, opts=Options(persist=True))
    assert actions(p) == [
        "lock",
        "baseline",
        "command",
        "record-detach",
        "verify-detach",
        "config-rewrite",
        "unlock",
    ]
    assert step(p, "config-rewrite").args["on_failure"] == "continue"
