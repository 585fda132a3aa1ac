"""Clusters that mix servers: the live migration Redis 7.0 -> Valkey 8.1, the upgrade
Redis 6.2 -> 7.0, and the RDB-format rule (a replica cannot load a newer master's RDB,
so a full sync from it fails in a loop) that attach enforces and switchover warns about.

Measured by hand first: a Valkey 8.1.8 replica full-syncs from Redis 7.0.15; promoted
with writes paused, the old Redis master continues under it with a partial resync
(``sync_partial_ok:1``, ``sync_full:0``) and keeps replicating.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from redisops.model import Address
from redisops.redis_node import RedisNode
from tests.harness import (
    FAST_SYNC,
    RedisFactory,
    RedisProc,
    replicate,
    require,
    wait_link_up,
    wait_until,
)
from tests.integration.ops_helpers import invoke, invoke_json, master_of, role_of, sync_counters
from tests.integration.predictions import record_switchover
from tests.integration.writer import Writer
from tests.servers import REDIS_6_2, REDIS_7_0, VALKEY_8_1, ServerSpec

pytestmark = pytest.mark.redis_server


@pytest.fixture(autouse=True)
def _servers() -> None:
    for spec in (REDIS_7_0, REDIS_6_2, VALKEY_8_1):
        require(spec)


def start(
    factory: RedisFactory, spec: ServerSpec, config: dict[str, str] | None = None
) -> RedisProc:
    return factory.start({**FAST_SYNC, **(config or {})}, server=spec)


def findings(doc: dict[str, Any], code: str) -> dict[str, dict[str, Any]]:
    """``{node: finding}`` of the findings with ``code``."""
    return {f["node"]: f for f in doc["findings"] if f["code"] == code}


def attached(env: dict[str, str], replica: RedisProc, master: RedisProc) -> dict[str, Any]:
    code, doc, result = invoke_json(
        env, "attach", replica.address, "--to", master.address, "--yes", "--sample", "0"
    )
    assert code == 0, result.stderr
    assert doc["result"]["observed"]["prediction_check"] == "prediction confirmed"
    return doc


def full_syncs(nodes: list[RedisProc]) -> dict[str, int]:
    return {n.address: sync_counters(n)[0] for n in nodes}


def in_sync_everywhere(master: RedisProc, replicas: list[RedisProc], key: str) -> None:
    """A write on ``master`` reaches every replica (the links really replicate)."""
    master.client().set(key, "1")
    for r in replicas:
        wait_link_up(r)
    for r in replicas:
        wait_until(lambda r=r: r.client().get(key) == "1", 15, what=f"{key} on {r.address}")


# ----------------------------------------------------------------------------- migration


@pytest.mark.parametrize("method", ["redisops", "native"])
def test_live_migration_from_redis_7_0_to_valkey_8_1_loses_no_write_and_needs_no_full_sync(
    redis_factory: RedisFactory, env: dict[str, str], method: str
) -> None:
    m = start(redis_factory, REDIS_7_0)
    r = start(redis_factory, REDIS_7_0)
    v = start(redis_factory, VALKEY_8_1)
    replicate(r, m)
    wait_link_up(r)
    # the Valkey node joins as a replica: a full sync, which it can load (format 10 <= 11)
    doc = attached(env, v, m)
    assert doc["prediction"]["sync"] == "full"
    assert "version" not in {f["code"] for f in doc["findings"]}
    nodes = [m, r, v]
    in_sync_everywhere(m, [r, v], "before")
    full_before = full_syncs(nodes)

    dry = invoke_json(env, "switchover", "--to", v.address, "--method", method, "--dry-run")[1]
    partial_only = findings(dry, "partial_only")
    assert set(partial_only) == {m.address, r.address}
    for f in partial_only.values():
        assert f["level"] == "warn"
        assert "redis 7.0.15 reads RDB formats up to 10 and valkey 8.1.8 writes 11" in f["message"]
        assert "only by partial resync" in f["message"]
    table = invoke(env, "switchover", "--to", v.address, "--dry-run")
    assert table.exit_code == 0 and "[WARNING]" in table.stdout
    assert "only by partial resync" in table.stdout

    with Writer([n.port for n in nodes]) as writer:
        code, doc, result = invoke_json(
            env, "switchover", "--to", v.address, "--method", method, "--yes"
        )
    assert code == 0, result.stderr
    print(f"\n7.0 -> valkey 8.1 ({method}): write window {writer.window_ms:.1f} ms")
    assert doc["result"]["outcome"] == "applied"
    assert doc["prediction"]["sync"] == "partial"
    assert doc["result"]["observed"]["full_resyncs"] == 0
    assert role_of(v) == "master"
    assert master_of(m) == v.address and master_of(r) == v.address
    assert writer.lost_on(v.port) == []
    assert full_syncs(nodes) == full_before
    in_sync_everywhere(v, [m, r], "after")  # the Redis nodes keep replicating from Valkey
    record_switchover("redis-7.0 -> valkey-8.1", doc)

    code, status = invoke_json(env, "status", v.address)[:2]
    servers = {n["address"]: (n["server"], n["version"], n["rdb_format"]) for n in status["nodes"]}
    assert servers == {
        v.address: ("valkey", "8.1.8", 11),
        m.address: ("redis", "7.0.15", 10),
        r.address: ("redis", "7.0.15", 10),
    }


def test_upgrade_switchover_from_redis_6_2_to_redis_7_0_keeps_the_old_nodes_partially(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    m = start(redis_factory, REDIS_6_2)
    r = start(redis_factory, REDIS_6_2)
    new = start(redis_factory, REDIS_7_0)
    replicate(r, m)
    wait_link_up(r)
    assert attached(env, new, m)["prediction"]["sync"] == "full"  # 7.0 loads format 9
    nodes = [m, r, new]
    in_sync_everywhere(m, [r, new], "before")
    full_before = full_syncs(nodes)
    with Writer([n.port for n in nodes]) as writer:
        code, doc, result = invoke_json(env, "switchover", "--to", new.address, "--yes")
    assert code == 0, result.stderr
    assert set(findings(doc, "partial_only")) == {m.address, r.address}
    assert (
        "redis 6.2.14 reads RDB formats up to 9 and redis 7.0.15 writes 10"
        in (findings(doc, "partial_only")[m.address]["message"])
    )
    assert doc["result"]["observed"]["full_resyncs"] == 0
    assert writer.lost_on(new.port) == []
    assert full_syncs(nodes) == full_before
    in_sync_everywhere(new, [m, r], "after")
    record_switchover("redis-6.2 -> redis-7.0", doc)


def test_failover_to_a_valkey_replica_warns_about_the_redis_replica_and_resyncs_it_partially(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    m = start(redis_factory, REDIS_7_0)
    r = start(redis_factory, REDIS_7_0)
    v = start(redis_factory, VALKEY_8_1)
    for node in (r, v):
        replicate(node, m)
    in_sync_everywhere(m, [r, v], "before")
    full_before = full_syncs([r, v])
    m.kill()
    seeds = (r.address, v.address)
    code, doc, result = invoke_json(
        env, "failover", "--master", m.address, *seeds, "--to", v.address, "--yes"
    )
    assert code == 0, result.stderr
    assert set(findings(doc, "partial_only")) == {r.address}
    assert doc["prediction"]["sync"] == "partial"
    assert role_of(v) == "master" and master_of(r) == v.address
    assert full_syncs([r, v]) == full_before
    in_sync_everywhere(v, [r], "after")
    record_switchover("redis-7.0 -> valkey-8.1", doc)


def test_switching_back_from_valkey_to_redis_is_refused_as_a_downgrade_unless_forced(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    v = start(redis_factory, VALKEY_8_1)
    r = start(redis_factory, REDIS_7_0)
    replicate(r, v)  # a Valkey master cannot full-sync a Redis 7.0 replica: it never links
    code, doc, _ = invoke_json(env, "switchover", "--to", r.address, "--dry-run")
    assert code == 5
    version = findings(doc, "version")[r.address]
    assert version["forceable"] and "downgrade" in version["message"]
    assert "older than" in version["message"]


# ----------------------------------------------------------------------------- attach


@pytest.mark.parametrize(
    ("replica_spec", "master_spec", "fmt"),
    [(REDIS_7_0, VALKEY_8_1, "up to 10 and valkey 8.1.8 writes 11"),
     (REDIS_6_2, REDIS_7_0, "up to 9 and redis 7.0.15 writes 10")],
    ids=["redis-7.0-under-valkey-8.1", "redis-6.2-under-redis-7.0"],
)  # fmt: skip
def test_attaching_a_replica_that_cannot_load_the_masters_rdb_is_refused_with_the_reason(
    redis_factory: RedisFactory,
    env: dict[str, str],
    replica_spec: ServerSpec,
    master_spec: ServerSpec,
    fmt: str,
) -> None:
    master = start(redis_factory, master_spec)
    replica = start(redis_factory, replica_spec)
    master.client().set("k", "v")
    result = invoke(
        env, "attach", replica.address, "--to", master.address, "--yes", "--sample", "0"
    )
    assert result.exit_code == 5, result.stdout
    assert f"reads RDB formats {fmt}" in result.stdout + result.stderr
    assert "retried in a loop" in result.stdout + result.stderr
    assert role_of(replica) == "master"  # nothing was touched
    code, doc, _ = invoke_json(
        env, "attach", replica.address, "--to", master.address, "--dry-run", "--sample", "0"
    )
    assert code == 5
    refusal = findings(doc, "version")[replica.address]
    assert refusal["level"] == "refuse" and not refusal["forceable"]
    # the prediction says it too
    assert any("cannot load" in risk for risk in doc["prediction"]["risks"])


def test_what_the_server_does_when_it_cannot_load_the_rdb_is_what_attach_refuses(
    redis_factory: RedisFactory,
) -> None:
    """The rule behind the refusal, on the real binaries: pointed at a Valkey master by
    hand, Redis 7.0 never links and logs the format it cannot handle."""
    v = start(redis_factory, VALKEY_8_1)
    r = start(redis_factory, REDIS_7_0)
    v.client().set("k", "v")
    replicate(r, v)
    wait_until(
        lambda: "Can't handle RDB format version 11" in r.logfile.read_text(errors="replace"),
        15,
        what="the load failure in the replica's log",
    )
    assert r.info()["master_link_status"] == "down"
    assert int(v.info("stats")["sync_full"]) >= 1


# ----------------------------------------------------------------------------- status


def test_status_identifies_every_server_of_a_mixed_cluster(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    m = start(redis_factory, REDIS_6_2)  # the oldest at the top: everyone can load format 9
    r7 = start(redis_factory, REDIS_7_0)
    v = start(redis_factory, VALKEY_8_1)
    for r in (r7, v):
        replicate(r, m)
    for r in (r7, v):
        wait_link_up(r)
    code, doc = invoke_json(env, "status", m.address)[:2]
    assert code == 0, doc["problems"]
    got = {n["address"]: (n["server"], n["version"], n["redis_version"], n["rdb_format"])
           for n in doc["nodes"]}  # fmt: skip
    assert got == {
        m.address: ("redis", "6.2.14", "6.2.14", 9),
        r7.address: ("redis", "7.0.15", "7.0.15", 10),
        v.address: ("valkey", "8.1.8", "7.2.4", 11),
    }
    table = invoke(env, "status", m.address)
    assert table.exit_code == 0
    # the default view's tree says which node runs what when they differ
    assert "redis 6.2.14, RDB 9" in table.stdout and "valkey 8.1.8, RDB 11" in table.stdout
    wide = invoke(env, "status", m.address, "-o", "wide")  # and -o wide has the fields
    assert "SERVER" in wide.stdout and "RDB" in wide.stdout


def test_a_redis_6_2_node_is_read_in_one_round_trip(
    redis_factory: RedisFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """6.2 has no multi-section INFO: the probe sends one INFO per section, all in the same
    write, and reads every field (the node is never reported unreachable for its age)."""
    node6 = start(redis_factory, REDIS_6_2)
    writes: list[int] = []
    with RedisNode(Address.parse(node6.address)) as node:
        node.connect()
        assert node._conn is not None
        send = node._conn.send_packed_command

        def counted(command: Any, check_health: bool = True) -> None:
            writes.append(1)
            send(command, check_health)

        monkeypatch.setattr(node._conn, "send_packed_command", counted)
        snap = node.probe()
    assert len(writes) == 1
    assert snap.reachable, snap.error
    assert snap.role == "master" and snap.version == "6.2.14"
    assert snap.info["connected_clients"] and snap.info["used_memory"] and snap.run_id
    assert snap.config["repl-backlog-size"] == "1048576"
    assert snap.server is not None and snap.server.rdb_format == 9


@pytest.mark.parametrize("spec", [REDIS_7_0, REDIS_6_2, VALKEY_8_1], ids=str)
def test_each_server_comes_with_its_rdb_checker(
    redis_factory: RedisFactory, spec: ServerSpec
) -> None:
    """The fetched binary doubles as redis-check-rdb / valkey-check-rdb (the same executable
    under that name): it checks an RDB its server wrote (for the backup work)."""
    node = start(redis_factory, spec)
    node.client().set("k", "v")
    node.client().save()
    checker = spec.check_rdb()
    assert checker is not None, spec
    out = subprocess.run(
        [str(checker), str(node.dir / "dump.rdb")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "RDB looks OK" in out.stdout
