"""``redisops switchover`` against real redis-server processes: the happy paths.

Every run has a client writing ``SET k<i> i`` in a loop; afterwards each acknowledged key
must be on the new master. The write-unavailability window is printed, never asserted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness import (
    FAST_SYNC,
    RedisFactory,
    free_port,
    replicate,
    star,
    wait_in_sync,
    wait_link_up,
)
from tests.integration.ops_helpers import (
    final_state,
    invoke,
    invoke_json,
    master_of,
    role_of,
    settle,
    sync_counters,
)
from tests.integration.predictions import record_switchover
from tests.integration.writer import Writer

pytestmark = pytest.mark.redis_server


@pytest.mark.every_server
def test_switchover_loses_no_acknowledged_write_and_repoints_every_replica(
    redis_factory: RedisFactory, env: dict[str, str], tmp_path: Path
) -> None:
    m, target, other = star(redis_factory, 2, FAST_SYNC)
    chained = redis_factory.start(FAST_SYNC)
    replicate(chained, other)
    wait_link_up(chained)
    nodes = [m, target, other, chained]
    settle(m, [target, other, chained])
    full_before = {n.address: sync_counters(n)[0] for n in nodes}
    partial_before = sync_counters(target)[1]

    with Writer([n.port for n in nodes]) as writer:
        code, doc, result = invoke_json(env, "switchover", "--to", target.address, "--yes")
    assert code == 0, result.stderr
    print(
        f"\nredisops switchover: write window {writer.window_ms:.1f} ms, "
        f"pause {doc['result']['observed']['pause_ms']:.1f} ms"
    )

    assert doc["result"]["outcome"] == "applied"
    assert doc["prediction"]["sync"] == "partial"
    observed = doc["result"]["observed"]
    assert observed["pause_ms"] > 0
    assert observed["full_resyncs"] == 0
    assert role_of(target) == "master"
    for node in (m, other, chained):
        assert master_of(node) == target.address, node.address  # chained one moved up too
    wait_in_sync(target, [m, other, chained])
    assert {n.address: sync_counters(n)[0] for n in nodes} == full_before
    assert sync_counters(target)[1] == partial_before + 3  # m, other, chained: all PSYNC
    assert writer.lost_on(target.port) == []
    assert writer.ports_written[-1] == target.port
    record_switchover(redis_factory.server.name, doc)
    state = final_state(doc["result"])
    assert state[target.address]["role"] == "master"
    assert state[m.address]["master"] == target.address
    # the journal key read back everywhere, then deleted; the audit trail; the lock released
    verify = next(s for s in doc["result"]["steps"] if s["action"] == "verify-switchover")
    assert "journal read back" in verify["detail"]
    assert target.client().exists("redisops:journal") == 0
    assert target.client().exists("redisops:lock") == 0
    audit = (tmp_path / "state" / "redisops" / "audit.log").read_text().splitlines()
    actions = [json.loads(line)["action"] for line in audit]
    assert "switch" in actions and actions[-1] == "result"


@pytest.mark.every_server
def test_native_method_runs_failover_then_repoints_the_replica_it_left_behind(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    m, target, other = star(redis_factory, 2, FAST_SYNC)
    settle(m, [target, other])
    full_before = {n.address: sync_counters(n)[0] for n in (m, target, other)}
    with Writer([m.port, target.port, other.port]) as writer:
        code, doc, result = invoke_json(
            env, "switchover", "--to", target.address, "--method", "native", "--yes"
        )
    assert code == 0, result.stderr
    print(f"\nnative FAILOVER switchover: write window {writer.window_ms:.1f} ms")
    assert [s["action"] for s in doc["steps"]][2] == "native-failover"
    assert doc["result"]["observed"]["pause_ms"] > 0
    assert role_of(target) == "master"
    assert master_of(m) == target.address
    assert master_of(other) == target.address  # FAILOVER alone leaves it under m
    assert {n.address: sync_counters(n)[0] for n in (m, target, other)} == full_before
    assert writer.lost_on(target.port) == []
    record_switchover(redis_factory.server.name, doc)


def test_table_output_reports_the_plan_the_pause_window_and_where_every_node_is(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    m, target = star(redis_factory, 1, FAST_SYNC)
    result = invoke(env, "switchover", "--to", target.address, "--master", m.address, "--yes")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "CLIENT PAUSE 5000 WRITE" in out
    assert "Writes paused for" in out
    assert f"{target.address}: master" in out
    assert f"{m.address}: replica of {target.address} (link up)" in out
    assert "warning" not in out


@pytest.mark.every_server
def test_dry_run_prints_the_plan_and_prediction_and_changes_nothing(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    m, target, other = star(redis_factory, 2, FAST_SYNC)
    m.client().set("k", "v")
    settle(m, [target, other])
    code, doc, _ = invoke_json(env, "switchover", "--to", target.address, "--dry-run")
    assert code == 0
    assert doc["dry_run"] is True
    assert [s["action"] for s in doc["steps"]] == [
        "lock",
        "baseline-all",
        "freeze-pings",
        "switch",
        "repoint",
        "command",
        "verify-switchover",
        "unlock",
    ]
    switch = doc["steps"][3]
    assert switch["command"] == ["CLIENT", "PAUSE", "5000", "WRITE"]
    repoint = doc["steps"][4]
    assert repoint["command"] == ["REPLICAOF", "127.0.0.1", str(target.port)]
    pred = doc["prediction"]
    assert pred["sync"] == "partial"
    assert {p["replica"] for p in pred["replicas"]} == {m.address, other.address}
    assert all(p["sync"] == "partial" for p in pred["replicas"])
    assert role_of(m) == "master" and master_of(target) == m.address


def test_refuses_a_priority_zero_target_unless_forced(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    _m, target = star(redis_factory, 1, {**FAST_SYNC, "replica-priority": "0"})
    result = invoke(env, "switchover", "--to", target.address, "--yes")
    assert result.exit_code == 5
    assert "replica-priority 0" in result.stderr
    assert role_of(target) == "slave"
    forced = invoke(env, "switchover", "--to", target.address, "--force", "--dry-run")
    assert forced.exit_code == 0
    assert "OVERRIDDEN (--force)" in forced.stdout


def test_refuses_a_target_that_does_not_replicate_from_the_master(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    m, replica = star(redis_factory, 1, FAST_SYNC)
    stranger = redis_factory.start(FAST_SYNC)
    result = invoke(env, "switchover", "--to", stranger.address, "--master", m.address, "--yes")
    assert result.exit_code == 5
    assert "does not replicate from" in result.stderr
    assert role_of(m) == "master" and master_of(replica) == m.address


def test_refuses_a_target_lagging_more_than_max_lag_bytes(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    m, target = star(redis_factory, 1, FAST_SYNC)
    target.client().execute_command("CLIENT", "PAUSE", "3000", "WRITE")  # stops applying
    m.client().set("k", "x" * 1000)
    result = invoke(
        env, "switchover", "--to", target.address, "--max-lag-bytes", "100", "--dry-run"
    )
    target.client().execute_command("CLIENT", "UNPAUSE")
    assert result.exit_code == 5
    assert "--max-lag-bytes 100" in result.stderr


def test_target_already_master_is_nothing_to_do(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    m, _ = star(redis_factory, 1, FAST_SYNC)
    result = invoke(env, "switchover", "--to", m.address, "--yes")
    assert result.exit_code == 0
    assert "nothing to do" in result.stdout


def test_switchover_of_an_inventory_cluster_is_locked_and_audited_under_its_name(
    redis_factory: RedisFactory, env: dict[str, str], tmp_path: Path
) -> None:
    m, target = star(redis_factory, 1, FAST_SYNC)
    inventory = tmp_path / "redisops.yml"
    inventory.write_text(f"clusters:\n  cache:\n    nodes: [{m.address}, {target.address}]\n")
    code, doc, result = invoke_json(
        env,
        "switchover",
        "--to",
        target.address,
        "--cluster",
        "cache",
        "--inventory",
        str(inventory),
        "--yes",
    )
    assert code == 0, result.stderr
    assert doc["cluster"] == "cache"
    assert master_of(m) == target.address
    records = [
        json.loads(line)
        for line in (tmp_path / "state" / "redisops" / "audit.log").read_text().splitlines()
    ]
    assert {r.get("cluster") for r in records} == {"cache"}
    # the lock is the group's members, whatever the cluster is called (one file per
    # member while it is held: tests/unit/test_lock_audit.py); released, no file is left
    assert list((tmp_path / "state" / "redisops" / "locks").iterdir()) == []


@pytest.mark.every_server
def test_replicas_under_the_target_are_back_on_it_when_the_command_returns(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    """REPLICAOF NO ONE drops the target's own replicas (they must learn its new
    replication id); they reconnect on their next replication cron and drop theirs in
    turn. The switchover verifies them too, so when it returns every one of them, at any
    depth, is linked again with the target's new id and has read the journal key back."""
    m, target = star(redis_factory, 1, FAST_SYNC)
    sub = redis_factory.start(FAST_SYNC)
    subsub = redis_factory.start(FAST_SYNC)
    replicate(sub, target)
    wait_link_up(sub)
    replicate(subsub, sub)
    wait_link_up(subsub)
    settle(m, [target, sub, subsub])
    full_before = {n.address: sync_counters(n)[0] for n in (m, target, sub)}

    code, doc, result = invoke_json(env, "switchover", "--to", target.address, "--yes")
    assert code == 0, result.stderr

    new_id = target.client().info("replication")["master_replid"]
    for node, master in ((sub, target), (subsub, sub)):
        info = node.client().info("replication")  # no waiting: the command waited
        assert info["master_port"] == master.port, node.address
        assert info["master_link_status"] == "up", node.address
        assert info["master_replid"] == new_id, node.address
    assert {n.address: sync_counters(n)[0] for n in (m, target, sub)} == full_before
    verify = next(s for s in doc["result"]["steps"] if s["action"] == "verify-switchover")
    assert "3 replica(s) linked" in verify["detail"]  # the old master, sub and subsub


def test_an_unreachable_target_is_exit_3_naming_why_not_a_missing_master(
    env: dict[str, str],
) -> None:
    target = f"127.0.0.1:{free_port()}"
    result = invoke(env, "switchover", "--to", target, "--yes")
    assert result.exit_code == 3, result.stderr
    assert f"target {target} is unreachable: connection refused" in result.stderr
    assert "--master" not in result.stderr
