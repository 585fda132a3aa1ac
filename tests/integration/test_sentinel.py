"""Sentinel awareness, against three real sentinels (``redis-server --sentinel``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import FAST_SYNC, RedisFactory, RedisProc, replicate, wait_in_sync
from tests.integration.ops_helpers import (
    invoke,
    invoke_json,
    master_of,
    role_of,
    sync_counters,
)
from tests.integration.sentinel_harness import MASTER_NAME, SentinelSet
from tests.integration.writer import Writer

pytestmark = pytest.mark.redis_server


@pytest.fixture
def managed(
    redis_factory: RedisFactory, tmp_path: Path
) -> Iterator[tuple[list[RedisProc], SentinelSet]]:
    """A master, a replica, a replica Sentinel must never promote, and 3 sentinels."""
    m = redis_factory.start(FAST_SYNC)
    target = redis_factory.start(FAST_SYNC)
    never = redis_factory.start({**FAST_SYNC, "replica-priority": "0"})
    for r in (target, never):
        replicate(r, m)
    m.client().set("k", "v")
    wait_in_sync(m, [target, never])
    sentinels = SentinelSet(tmp_path / "sentinels", m.port)
    try:
        sentinels.wait_ready(replicas=2)
        yield [m, target, never], sentinels
    finally:
        sentinels.close()


def _sentinel_args(sentinels: SentinelSet) -> list[str]:
    return [arg for a in sentinels.addresses for arg in ("--sentinel", a)]


def test_status_shows_the_sentinel_view_and_quorum_and_finds_the_master_through_it(
    managed: tuple[list[RedisProc], SentinelSet], env: dict[str, str], tmp_path: Path
) -> None:
    (m, target, never), sentinels = managed
    # no seed at all: the master comes from SENTINEL get-master-addr-by-name
    code, doc, _ = invoke_json(env, "status", *_sentinel_args(sentinels))
    assert code == 0, doc["problems"]
    assert {n["address"] for n in doc["nodes"]} == {m.address, target.address, never.address}
    view = doc["sentinel"]
    assert view["name"] == MASTER_NAME
    assert view["master"] == m.address
    assert view["agree"] is True
    assert view["quorum"].startswith("OK")
    assert [s["master"] for s in view["sentinels"]] == [m.address] * 3
    # or from the inventory, which names the sentinels and the master's name
    inventory = tmp_path / "redisops.yml"
    inventory.write_text(
        "clusters:\n  cache:\n"
        f"    nodes: [{target.address}]\n"
        f"    sentinels: [{', '.join(sentinels.addresses)}]\n"
        f"    sentinel_master: {MASTER_NAME}\n"
    )
    code, doc, _ = invoke_json(env, "status", "--cluster", "cache", "--inventory", str(inventory))
    assert code == 0, doc["problems"]
    assert doc["sentinel"]["master"] == m.address and doc["sentinel"]["quorum"].startswith("OK")
    table = invoke(env, "status", target.address, "--sentinel", sentinels.addresses[0])
    assert table.exit_code == 0, table.stdout
    assert f"Sentinel view of '{MASTER_NAME}': master {m.address}" in table.stdout
    assert "quorum: OK" in table.stdout


def test_status_reports_a_sentinel_that_is_down_and_a_second_master(
    managed: tuple[list[RedisProc], SentinelSet], env: dict[str, str]
) -> None:
    (m, target, _never), sentinels = managed
    sentinels.sentinels[2].kill()
    # a replica promoted behind Sentinel's back: two masters, Sentinel still names m
    target.client().execute_command("REPLICAOF", "NO", "ONE")
    code, doc, _ = invoke_json(env, "status", target.address, *_sentinel_args(sentinels))
    assert code == 4
    entries = {s["address"]: s for s in doc["sentinel"]["sentinels"]}
    assert entries[sentinels.addresses[2]]["status"].startswith("unreachable")
    assert doc["sentinel"]["master"] == m.address
    kinds = [p["kind"] for p in doc["problems"]]
    assert "multiple_masters" in kinds


def test_manual_switchover_of_a_sentinel_managed_set_is_refused_unless_forced(
    managed: tuple[list[RedisProc], SentinelSet], env: dict[str, str]
) -> None:
    (m, target, _never), _sentinels = managed
    # even without --sentinel: the nodes show Sentinel's hello subscription
    result = invoke(env, "switchover", "--to", target.address, "--yes")
    assert result.exit_code == 5
    assert "Sentinel monitors" in result.stderr and "--via-sentinel" in result.stderr
    assert role_of(m) == "master"
    forced = invoke(env, "switchover", "--to", target.address, "--force", "--dry-run")
    assert forced.exit_code == 0
    assert "OVERRIDDEN (--force)" in forced.stdout


def test_switchover_via_sentinel_loses_no_acknowledged_write_and_resyncs_partially(
    managed: tuple[list[RedisProc], SentinelSet], env: dict[str, str]
) -> None:
    (m, target, never), sentinels = managed
    full_before = {n.address: sync_counters(n)[0] for n in (m, target, never)}
    with Writer([m.port, target.port, never.port]) as writer:
        code, doc, result = invoke_json(
            env,
            "switchover",
            "--to",
            target.address,
            "--via-sentinel",
            "--yes",
            *_sentinel_args(sentinels),
        )
    assert code == 0, (result.stderr, doc.get("result"))
    print(
        f"\nswitchover via Sentinel: write window {writer.window_ms:.1f} ms, "
        f"pause {doc['result']['observed']['pause_ms']:.1f} ms"
    )
    steps = [s["action"] for s in doc["steps"]]
    assert steps == [
        "lock",
        "baseline-all",
        "freeze-pings",
        "sentinel-failover",
        "command",
        "verify-switchover",
    ]
    assert doc["steps"][3]["command"] == ["SENTINEL", "FAILOVER", MASTER_NAME]
    observed = doc["result"]["observed"]
    assert observed["new_master"] == target.address  # the only replica it may promote
    assert observed["full_resyncs"] == 0
    assert sentinels.master_address() == target.address
    assert role_of(target) == "master"
    assert master_of(m) == target.address  # demoted right away, not seconds later
    assert master_of(never) == target.address
    assert {n.address: sync_counters(n)[0] for n in (m, target, never)} == full_before
    assert writer.lost_on(target.port) == []
    assert target.client().get("k") == "v"
