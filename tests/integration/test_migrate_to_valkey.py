"""The shipped ``migrate-to-valkey`` playbook on a mixed cluster of real servers: a Redis
7.0.15 master and replica, and a Valkey 8.1.8 node that joins, takes over as master with
no lost write, and keeps the Redis nodes replicating by partial resync.

The embedded lab cannot model a Valkey node (its engine is Redis 7.0.15, and a
``redis-server`` engine lab runs one binary for all its nodes): on the lab the playbook's
dry run refuses the non-Valkey node, which is what it must do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.harness import (
    FAST_SYNC,
    RedisFactory,
    RedisProc,
    replicate,
    require,
    star_of,
    wait_link_up,
)
from tests.integration.lab_fixture import (
    LabBackend,
    Run,
    cli,
    lab_fixture,  # noqa: F401 - fixture
    state_home_fixture,  # noqa: F401 - fixture (audit and locks in a temp dir)
)
from tests.integration.writer import Writer
from tests.servers import REDIS_7_0, VALKEY_8_1

#: the playbook's health checks fail on critical findings, and a master with replicas and
#: no persistence is one (restarted, it would empty every replica): these nodes persist
PERSIST = {**FAST_SYNC, "save": "3600 1"}

#: step ids of the shipped playbook (``redisops playbook show migrate-to-valkey``)
ATTACH, SWITCH, ASSERT_PARTIAL, AFTER, REPLACE = "5.1", "8", "9", "10", "13"


def mixed(factory: RedisFactory) -> tuple[RedisProc, RedisProc, RedisProc]:
    """Redis 7.0 master with a Redis 7.0 replica, and a standalone Valkey 8.1 node; some data."""
    m = factory.start(PERSIST, server=require(REDIS_7_0))
    r = factory.start(PERSIST, server=require(REDIS_7_0))
    v = factory.start(PERSIST, server=require(VALKEY_8_1))
    replicate(r, m)
    wait_link_up(r)
    with m.client() as c:
        c.mset({f"seed:{i}": "v" * 32 for i in range(200)})
    return m, r, v


def migrate(m: RedisProc, v: RedisProc, *args: str) -> Run:
    return cli(
        "playbook", "run", "migrate-to-valkey",
        "--var", f"master={m.address}", "--var", f"valkey={v.address}", *args,
    )  # fmt: skip


def steps(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in doc["steps"]}


def role(node: RedisProc) -> tuple[str, str | None]:
    info = node.info()
    master = f"{info['master_host']}:{info['master_port']}" if info["role"] == "slave" else None
    return info["role"], master


def counters(nodes: list[RedisProc]) -> dict[str, tuple[int, int]]:
    """Per node, ``(sync_full, sync_partial_ok)`` it has served."""
    out = {}
    for n in nodes:
        stats = n.info("stats")
        out[n.address] = (int(stats["sync_full"]), int(stats["sync_partial_ok"]))
    return out


def test_the_shipped_migrate_to_valkey_playbook_is_valid() -> None:
    res = cli("playbook", "validate", "migrate-to-valkey", "--format", "json")
    assert res.code == 0, res
    assert res.json["valid"] and res.json["path"].endswith("playbooks/migrate-to-valkey.yml")
    shown = cli("playbook", "show", "migrate-to-valkey", "--format", "json")
    assert shown.code == 0, shown
    assert [v["name"] for v in shown.json["vars"]][:2] == ["master", "valkey"]


@pytest.mark.redis_server
def test_dry_run_on_a_mixed_cluster_predicts_each_step_and_names_the_partial_only_redis_nodes(
    redis_factory: RedisFactory,
) -> None:
    m, r, v = mixed(redis_factory)
    before = {n.address: role(n) for n in (m, r, v)}
    served = counters([m, r, v])

    res = migrate(m, v, "--dry-run", "--format", "json")
    assert res.code == 0, res
    by_id = steps(res.json)
    assert not by_id["1"]["predicted"] and by_id["1"]["registered"]["master"] == m.address
    assert by_id["2"]["registered"]["nodes"][v.address]["server"] == "valkey"

    attach = by_id[ATTACH]
    assert attach["predicted"] and attach["registered"]["outcome"] == "predicted"
    assert attach["registered"]["prediction"]["sync"] == "full"  # Valkey loads format 10
    assert attach["plan"]["steps"], "the dry run shows the attach plan"
    assert "version" not in {f["code"] for f in attach["registered"]["findings"]}

    switch = by_id[SWITCH]
    assert switch["predicted"] and switch["plan"]["steps"]
    assert switch["registered"]["prediction"]["sync"] == "partial"
    partial_only = {
        f["node"]: f for f in switch["registered"]["findings"] if f["code"] == "partial_only"
    }
    assert set(partial_only) == {m.address, r.address}
    for f in partial_only.values():
        assert f["level"] == "warn"
        assert "redis 7.0.15 reads RDB formats up to 10 and valkey 8.1.8 writes 11" in f["message"]
        assert "only by partial resync" in f["message"]

    after = by_id[AFTER]["registered"]  # a read after the predicted switchover sees it
    assert after["predicted"] and after["master"] == v.address
    assert set(after["replicas"]) == {m.address, r.address}
    replace = by_id[REPLACE]["registered"]
    assert m.address in replace["asked"] and r.address in replace["asked"]
    assert "ONLY BY PARTIAL RESYNC" in replace["asked"]
    assert res.json["journal"] is None

    # the text an operator reads: each step's plan with its prediction and the warning
    text = migrate(m, v, "--dry-run")
    assert text.code == 0, text
    assert "Prediction (reference engine):" in text.stdout
    assert f"{v.address} <- {m.address}: FULL resync" in text.stdout
    assert "[WARNING]" in text.stdout and "only by partial resync" in text.stdout
    assert "would ask:" in text.stdout

    assert {n.address: role(n) for n in (m, r, v)} == before  # nothing changed
    assert counters([m, r, v]) == served


@pytest.mark.redis_server
def test_migration_under_a_continuous_writer_loses_no_write_and_fully_syncs_no_redis_node(
    redis_factory: RedisFactory, tmp_path: Path
) -> None:
    m, r, v = mixed(redis_factory)
    served = counters([m, r, v])
    journal = tmp_path / "runs"

    with Writer([m.port, r.port, v.port]) as writer:
        res = migrate(m, v, "--yes", "--journal-dir", str(journal))
    assert res.code == 0, res
    print(f"\nmigrate-to-valkey: write window {writer.window_ms:.1f} ms")

    assert role(v) == ("master", None)
    assert role(m) == ("slave", v.address) and role(r) == ("slave", v.address)
    assert writer.lost_on(v.port) == []
    assert v.port in writer.ports_written  # the writer really moved to the Valkey master
    # only the Valkey node's attach was a full sync (served by the Redis master); after
    # the switchover both Redis nodes continued partially under Valkey
    now = counters([m, r, v])
    assert now[m.address][0] == served[m.address][0] + 1
    assert now[r.address][0] == served[r.address][0]
    assert now[v.address][0] == served[v.address][0]
    assert now[v.address][1] == served[v.address][1] + 2

    # the run output says which nodes can now only resync partially
    for node in (m, r):
        assert f"preflight warning: {node.address} continues partially" in res.stdout
    assert "only by partial resync" in res.stdout
    assert "replace the remaining Redis nodes one at a time (confirm): ok" in res.stdout

    (path,) = journal.glob("*.jsonl")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    done = {rec["id"]: rec for rec in records if rec["type"] == "step"}
    assert done[ATTACH]["registered"]["observed_sync"] == "full"
    switch = done[SWITCH]["registered"]
    assert switch["outcome"] == "applied" and switch["new_master"] == v.address
    assert switch["observed"]["full_resyncs"] == 0
    assert done[ASSERT_PARTIAL]["status"] == "ok"
    assert records[-1]["type"] == "end" and records[-1]["exit_code"] == 0


def test_on_the_embedded_lab_the_dry_run_refuses_a_node_that_is_not_valkey(
    lab: LabBackend,
) -> None:
    """The lab's nodes are Redis 7.0.15: it cannot stand in for a Valkey node, and the
    playbook refuses (exit 5) before planning anything rather than migrate to Redis."""
    m, r, other = lab.start(3)
    star_of([m, r])
    res = cli(
        "playbook", "run", "migrate-to-valkey", "--var", f"master={m.address}",
        "--var", f"valkey={other.address}", "--dry-run", "--format", "json",
    )  # fmt: skip
    assert res.code == 5, res
    by_id = steps(res.json)
    assert by_id["3"]["status"] == "failed"
    assert 'reachable Valkey servers (servers: ["redis"])' in by_id["3"]["summary"]
    assert ATTACH not in by_id
