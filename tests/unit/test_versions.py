"""The version rules (redisops.versions): identity, RDB formats, commands, buffers, and
what the planners and predictions do with them, over hand-built snapshots."""

from __future__ import annotations

import pytest

from redisops.engine.predict import RateParams, predict_sync
from redisops.model import Address
from redisops.ops.switchover import plan_switchover
from redisops.session import build_session
from redisops.versions import Server, can_load, from_version_output, identify, unloadable
from tests.builders import master, replica, rid, topology

VALKEY = {"redis_version": "7.2.4", "server_name": "valkey", "valkey_version": "8.1.8"}
REDIS_62 = {"redis_version": "6.2.14"}
REDIS_70 = {"redis_version": "7.0.15"}


def test_valkey_is_told_apart_from_the_redis_7_2_it_reports() -> None:
    s = identify(VALKEY)
    assert s is not None and (s.product, s.version, s.redis_version) == ("valkey", "8.1.8", "7.2.4")
    r = identify({"redis_version": "7.2.4"})
    assert r is not None and (r.product, r.version) == ("redis", "7.2.4")
    assert identify({}) is None  # a Sentinel-less, INFO-less reply: unknown, not an error


@pytest.mark.parametrize(
    ("info", "fmt"),
    [(REDIS_62, 9), (REDIS_70, 10), ({"redis_version": "7.2.4"}, 11),
     ({"redis_version": "7.4.1"}, 12), (VALKEY, 11),
     ({**VALKEY, "valkey_version": "9.0.0"}, 80), ({"redis_version": "unstable"}, None)],
)  # fmt: skip
def test_rdb_format_per_server(info: dict[str, str], fmt: int | None) -> None:
    s = identify(info)
    assert s is not None and s.rdb_format == fmt


def test_a_server_refuses_a_newer_format_and_says_which() -> None:
    r62, r70, vk = identify(REDIS_62), identify(REDIS_70), identify(VALKEY)
    assert r62 is not None and r70 is not None and vk is not None
    assert (
        unloadable(r62, r70) == "redis 6.2.14 reads RDB formats up to 9 and redis 7.0.15 writes 10"
    )
    assert (
        unloadable(r70, vk) == "redis 7.0.15 reads RDB formats up to 10 and valkey 8.1.8 writes 11"
    )
    assert unloadable(vk, r70) is None and unloadable(r70, r62) is None
    redis74 = identify({"redis_version": "7.4.1"})
    assert redis74 is not None
    assert unloadable(vk, redis74) is not None  # measured: 8.1.8 refuses 12, even relaxed
    assert unloadable(vk, redis74, relaxed=True) is not None
    assert unloadable(r70, Server("redis", "unstable", "unstable")) is None  # cannot judge


def test_valkey_9_loads_redis_formats_only_when_relaxed() -> None:
    valkey9 = Server("valkey", "9.0.0", "7.2.4")
    assert can_load(valkey9, 12) is False and can_load(valkey9, 12, relaxed=True) is True
    assert can_load(valkey9, 11) is True and can_load(valkey9, 80) is True


def test_which_commands_each_server_has() -> None:
    r62, r70, vk = identify(REDIS_62), identify(REDIS_70), identify(VALKEY)
    assert r62 is not None and r70 is not None and vk is not None
    assert (r62.multi_section_info, r70.multi_section_info, vk.multi_section_info) == (
        False,
        True,
        True,
    )
    assert all(s.has_failover and s.has_pause_write for s in (r62, r70, vk))
    assert not r62.has_enable_debug_command and r70.has_enable_debug_command
    assert not identify({"redis_version": "6.0.16"}).has_failover  # type: ignore[union-attr]
    assert (r62.shared_replication_buffer, r70.shared_replication_buffer) == (False, True)
    assert vk.has_dual_channel and not r70.has_dual_channel


def test_version_output_of_each_binary() -> None:
    assert str(from_version_output("Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc")) == (
        "redis 7.0.15"
    )
    valkey = from_version_output("Valkey server v=8.1.8 sha=00000000:1 malloc=libc bits=64")
    assert valkey is not None and valkey.redis_version == "7.2.4"
    assert from_version_output("KeyDB server v=6.3.4") is None


# ----------------------------------------------------------------------------- planners

M, V, R = "127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"
HIST = rid("history")


def migration(**target_extra: str):  # type: ignore[no-untyped-def]
    """Redis 7.0 master M with replicas V (Valkey 8.1) and R (Redis 7.0)."""
    return topology(
        master(M, offset=1000, replicas=[V, R], replid=HIST),
        replica(V, M, offset=1000, replid=HIST, **{**VALKEY, **target_extra}),
        replica(R, M, offset=1000, replid=HIST),
        seeds=[M],
    )


def test_switchover_to_valkey_warns_that_the_redis_nodes_then_follow_only_partially() -> None:
    topo = migration()
    p = plan_switchover(topo, Address.parse(M), Address.parse(V), build_session(seeds=[M]))
    assert p.refusals() == []
    warned = {f.node: f for f in p.findings if f.code == "partial_only"}
    assert set(warned) == {M, R}
    assert all(f.level == "warn" for f in warned.values())
    assert "valkey 8.1.8 writes 11" in warned[M].message
    assert p.prediction is not None and p.prediction["sync"] == "partial"


def test_switchover_refuses_a_node_that_would_need_a_full_sync_it_cannot_load() -> None:
    topo = topology(
        master(M, offset=1000, replicas=[V, R], replid=HIST),
        replica(V, M, offset=1000, replid=HIST, **VALKEY),
        replica(R, M, offset=1000, replid=rid("another history")),  # cannot continue
        seeds=[M],
    )
    p = plan_switchover(topo, Address.parse(M), Address.parse(V), build_session(seeds=[M]))
    refused = [f for f in p.refusals() if f.code == "cannot_load"]
    assert [f.node for f in refused] == [R] and refused[0].forceable
    assert p.refusals(force=True) == []


def test_switchover_from_valkey_back_to_redis_is_a_forceable_downgrade() -> None:
    topo = topology(
        master(V, offset=1000, replicas=[M], replid=HIST, **VALKEY),
        replica(M, V, offset=1000, replid=HIST),
        seeds=[V],
    )
    p = plan_switchover(topo, Address.parse(V), Address.parse(M), build_session(seeds=[V]))
    (f,) = p.refusals()
    assert f.code == "version" and f.forceable and "downgrade" in f.message


# ----------------------------------------------------------------------------- predictions


def test_a_full_sync_the_replica_cannot_load_is_predicted_to_fail_in_a_loop() -> None:
    m = master(V, offset=1000, replid=HIST, **VALKEY)
    fresh = master(R, replid=rid("fresh"))
    pred = predict_sync(m, fresh, RateParams())
    assert pred.sync == "full"
    assert "cannot complete" in pred.reason
    assert "retried in a loop" in pred.risks[0]


def test_redis_6_2_full_syncs_note_per_replica_buffers_and_no_hard_limit_raise() -> None:
    obl = "normal 0 0 0 slave 1048576 0 0 pubsub 33554432 8388608 60"
    cfg = {"client-output-buffer-limit": obl, "repl-backlog-size": "8388608"}
    old = master(M, offset=1000, replid=HIST, config=cfg, **REDIS_62)
    new = master(M, offset=1000, replid=HIST, config=cfg, **REDIS_70)
    fresh = master(R, replid=rid("fresh"))
    params = RateParams(write_rate=2 * 1024 * 1024, rdb_bytes=1_000_000_000)
    p62, p70 = predict_sync(old, fresh, params), predict_sync(new, fresh, params)
    assert any("own output buffer" in n for n in p62.notes) and p70.notes == []
    # 6.2 drops the replica at its 1 MB hard limit; 7.0.10+ raises the limit to the 8 MB
    # backlog first, so it gets further before the same loop
    assert any("hard limit 1 MB" in risk for risk in p62.risks)
    assert any("hard limit 8 MB" in risk for risk in p70.risks)


def test_a_dual_channel_valkey_sync_is_said_to_be_not_modelled() -> None:
    dual = {"dual-channel-replication-enabled": "yes"}
    m = master(V, offset=1000, replid=HIST, config=dual, **VALKEY)
    r = master(R, replid=rid("fresh"), config=dual, **VALKEY)
    pred = predict_sync(m, r, RateParams())
    assert any("dual-channel" in n and "not modelled" in n for n in pred.notes)
    off = predict_sync(master(V, offset=1000, replid=HIST, **VALKEY), r, RateParams())
    assert off.notes == []
