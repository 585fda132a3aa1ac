"""``redisops failover`` against real redis-server processes: the master is dead."""

from __future__ import annotations

import json

import pytest

from tests.harness import FAST_SYNC, RedisFactory, replicate, star, wait_in_sync, wait_until
from tests.integration.ops_helpers import (
    final_state,
    invoke,
    invoke_json,
    master_of,
    role_of,
    sync_counters,
)
from tests.integration.predictions import record_switchover

pytestmark = pytest.mark.redis_server


@pytest.mark.every_server
def test_equal_offsets_tie_is_broken_by_the_smaller_run_id_and_explained(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    m, a, b = star(redis_factory, 2, FAST_SYNC)
    for i in range(50):
        m.client().set(f"k{i}", i)
    wait_in_sync(m, [a, b])
    m.kill()
    run_ids = {n.address: n.info("server")["run_id"] for n in (a, b)}
    first = min(run_ids, key=lambda k: run_ids[k])
    second = a.address if first == b.address else b.address
    seeds = (a.address, b.address)

    code, doc, _ = invoke_json(
        env, "failover", "--master", m.address, *seeds, "--auto", "--dry-run"
    )
    assert code == 0
    pred = doc["prediction"]
    assert pred["chosen"] == first
    cands = {c["address"]: c for c in pred["candidates"]}
    assert cands[first]["offset"] == cands[second]["offset"] > 0
    assert cands[first]["chosen"] and not cands[second]["chosen"]
    assert cands[first]["gap_bytes"] == cands[second]["gap_bytes"] == 0
    assert f"tie on offset with {second} broken by the smaller run id" in cands[first]["reason"]
    assert cands[second]["reason"] == f"same offset as {first}, larger run id"
    assert pred["replicas"][0]["sync"] == "partial"
    assert role_of(a) == role_of(b) == "slave"  # a dry run changes nothing

    full_before = sync_counters(a)[0], sync_counters(b)[0]
    code, doc, result = invoke_json(
        env, "failover", "--master", m.address, *seeds, "--auto", "--yes"
    )
    assert code == 0, result.stderr
    new, old = (a, b) if first == a.address else (b, a)
    assert role_of(new) == "master" and master_of(old) == new.address
    wait_in_sync(new, [old])
    assert (sync_counters(a)[0], sync_counters(b)[0]) == full_before  # partial resync only
    assert new.client().dbsize() >= 50
    assert final_state(doc["result"])[old.address]["master"] == new.address
    fenced = json.loads(new.client().get("redisops:fence"))["fenced"]
    assert [f["address"] for f in fenced] == [m.address]
    assert [f["new_master"] for f in fenced] == [new.address]


def test_table_output_lists_every_candidate_with_offset_gap_and_reason(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    m, a, b = star(redis_factory, 2, FAST_SYNC)
    # b stops receiving: the master now needs a password b does not have
    m.client().config_set("requirepass", "pw")
    m.password = "pw"
    a.client().config_set("masterauth", "pw")
    m.client().execute_command("CLIENT", "KILL", "TYPE", "replica")
    wait_until(lambda: a.info()["master_link_status"] == "up", 10, what="a back in")
    for i in range(20):
        m.client().set(f"k{i}", "x" * 50)
    wait_until(
        lambda: a.info()["master_repl_offset"] == m.client().info()["master_repl_offset"],
        10,
        what="a in sync",
    )
    m.kill()
    result = invoke(
        env, "failover", "--master", m.address, a.address, b.address, "--auto", "--dry-run"
    )
    assert result.exit_code == 0, result.stderr
    out = " ".join(result.stdout.split())  # findings wrap to the terminal width
    a_off, b_off = int(a.info()["slave_repl_offset"]), int(b.info()["slave_repl_offset"])
    assert a_off > b_off
    assert (
        f"candidate {a.address}: offset {a_off} (0 bytes behind the most advanced replica)" in out
    )
    assert f"CHOSEN: priority 100, highest offset {a_off}" in out
    assert (
        f"candidate {b.address}: offset {b_off} ({a_off - b_off} bytes behind the most advanced replica)"
        in out
    )
    assert f"eligible: {a_off - b_off} bytes behind {a.address}" in out
    assert f"promote {a.address} (offset {a_off})" in out


def test_every_replica_with_priority_zero_is_refused(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    m = redis_factory.start(FAST_SYNC)
    reps = [redis_factory.start({**FAST_SYNC, "replica-priority": "0"}) for _ in range(2)]
    for r in reps:
        replicate(r, m)
    wait_in_sync(m, reps)
    m.kill()
    code, doc, result = invoke_json(
        env, "failover", "--master", m.address, *(r.address for r in reps), "--auto", "--yes"
    )
    assert code == 5
    assert "no replica of" in result.stderr and "is eligible" in result.stderr
    assert doc["prediction"]["chosen"] is None
    assert all(
        c["reason"] == "replica-priority 0: never promoted" for c in doc["prediction"]["candidates"]
    )
    assert all(role_of(r) == "slave" for r in reps)


def test_a_master_that_answers_is_refused_with_a_pointer_to_switchover(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    m, a = star(redis_factory, 1, FAST_SYNC)
    result = invoke(env, "failover", "--master", m.address, a.address, "--to", a.address, "--yes")
    assert result.exit_code == 5
    assert f"{m.address} answers: it is not dead" in result.stderr
    assert "redisops switchover" in result.stderr
    assert role_of(m) == "master" and master_of(a) == m.address


@pytest.mark.every_server
def test_failover_to_a_named_replica_repoints_the_others_including_chained_ones(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    m, a, b = star(redis_factory, 2, FAST_SYNC)
    c = redis_factory.start(FAST_SYNC)
    replicate(c, a)  # chained under the replica that is not promoted
    for i in range(30):
        m.client().set(f"k{i}", i)
    wait_in_sync(m, [a, b, c])
    m.kill()
    result = invoke(
        env, "failover", "--master", m.address, a.address, b.address, "--to", b.address, "--yes"
    )
    assert result.exit_code == 0, result.stderr
    assert role_of(b) == "master"
    assert master_of(a) == b.address
    assert master_of(c) == b.address  # moved up from under a
    wait_in_sync(b, [a, c])
    assert sync_counters(b)[0] == 0


def test_a_lock_left_by_an_operation_that_died_with_the_master_is_cleared(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    m, a, b = star(redis_factory, 2, FAST_SYNC)
    # an operation held the cluster lock on the master when it died: the key reached the replicas
    holder = json.dumps(
        {
            "token": "t",
            "operator": "alice",
            "host": "h",
            "pid": 1,
            "operation": "attach",
            "since": 0,
        }
    )
    m.client().set("redisops:lock", holder, px=900_000)
    wait_in_sync(m, [a, b])
    m.kill()
    result = invoke(
        env, "failover", "--master", m.address, a.address, b.address, "--to", a.address, "--yes"
    )
    assert result.exit_code == 0, result.stderr
    assert a.client().get("redisops:lock") is None
    assert "removed a lock left by an operation that died with the old master" in result.stdout
    wait_in_sync(a, [b])
    # the cluster is usable at once: a switchover is not blocked by the dead operation's lock
    back = invoke(env, "switchover", "--to", b.address, "--master", a.address, "--yes")
    assert back.exit_code == 0, back.stderr


@pytest.mark.every_server
def test_a_named_replica_behind_another_catches_up_from_it_and_nothing_is_lost(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    """--to a replica that is behind another one: the other one has acknowledged writes the
    chosen one never saw. It stands in as master until the chosen one has them (a full sync
    here: 30 MB is beyond its 1 MB backlog), then hands over with a zero-loss switch."""
    m, a, b = star(redis_factory, 2, FAST_SYNC)
    for i in range(10):
        m.client().set(f"k{i}", i)
    wait_in_sync(m, [a, b])
    # a, stopped, misses the next writes (more than the kernel's socket buffers hold: the
    # rest dies in the master's output buffer); b gets them all
    a.pause()
    blob = b"x" * 100_000
    pipe = m.client().pipeline(transaction=False)
    for i in range(10, 310):
        pipe.set(f"k{i}", blob)
    pipe.execute()
    wait_in_sync(m, [b])
    m.kill()
    a.resume()
    seeds = (a.address, b.address)

    code, doc, _ = invoke_json(
        env, "failover", "--master", m.address, *seeds, "--to", a.address, "--dry-run"
    )
    assert code == 0
    assert doc["prediction"]["catch_up"]["from"] == b.address
    assert doc["prediction"]["writes_lost"] == []
    assert [r["sync"] for r in doc["prediction"]["replicas"]] == ["full"]  # a, from b
    assert "nothing acknowledged by a replica is lost" in doc["summary"]

    full_before = sync_counters(b)[0]
    code, doc, result = invoke_json(
        env, "failover", "--master", m.address, *seeds, "--to", a.address, "--yes"
    )
    assert code == 0, result.stderr
    verify = next(s for s in doc["result"]["steps"] if s["action"] == "verify-switchover")
    assert verify["result"] == "ok"
    assert "1 full resync(s), as predicted" in verify["detail"]
    assert sync_counters(b)[0] == full_before + 1  # b served a's catch-up
    assert role_of(a) == "master" and master_of(b) == a.address
    record_switchover(redis_factory.server.name, doc)
    wait_in_sync(a, [b])
    for node in (a, b):  # nothing acknowledged is lost, on either node
        assert len(node.client().keys("k*")) == 310


def test_known_replicas_that_refuse_the_credentials_are_named_as_such_not_as_missing(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    m, a = star(redis_factory, 1, FAST_SYNC)
    assert invoke(env, "status", m.address).exit_code == 0  # records the last-known topology
    a.client().config_set("requirepass", "s3cret")  # and the operator has no password
    m.kill()
    result = invoke(env, "failover", "--master", m.address, "--auto", "--yes")
    assert result.exit_code == 5
    assert f"{a.address} answered but refused the credentials" in result.stderr
    assert "REDISCLI_AUTH" in result.stderr
    assert "does not answer" not in result.stdout
    status = invoke(env, "status", a.address)
    assert f"{a.address} refuses the credentials; last seen" in status.stdout
