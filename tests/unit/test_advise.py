"""``advise`` numbers against hand-computed cases (checks-and-drift.md §4)."""

from __future__ import annotations

import pytest

from redisops.checks.advise import AdviseInputs, advise
from redisops.model import Address, NodeInfo

MB = 1 << 20
GB = 1 << 30


def master(**config: str) -> NodeInfo:
    cfg = {
        "repl-backlog-size": str(MB),
        "client-output-buffer-limit": "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        "repl-timeout": "60",
        "repl-ping-replica-period": "10",
        "repl-diskless-sync": "yes",
        "repl-diskless-sync-delay": "0",
        "maxmemory": str(12 * GB),
    }
    cfg.update({k.replace("_", "-"): v for k, v in config.items()})
    info = {
        "role": "master",
        "redis_version": "7.0.15",
        "used_memory": str(GB),
        "used_memory_dataset": str(GB),
        "total_system_memory": str(16 * GB),
        "rdb_last_cow_size": "0",
    }
    return NodeInfo(Address("10.0.0.1", 6379), True, info=info, config=cfg)


def row(report, name):  # type: ignore[no-untyped-def]
    (r,) = [r for r in report.rows if r.parameter == name]
    return r


def test_backlog_is_twice_rate_times_tolerated_disconnect_as_in_the_doc_example() -> None:
    # §4.1: W = 4 MB/s, T = 120 s -> >= 960 MB
    report = advise(AdviseInputs(master(), 3, 4 * MB, 120, 100e6, rdb_bytes=400_000_000))
    r = row(report, "repl-backlog-size")
    assert (r.current, r.recommended, r.status) == ("1mb", "960mb", "raise")


def test_replica_buffer_is_rate_times_engine_full_sync_and_never_below_the_backlog() -> None:
    # diskless, no delay: fork 1 GiB x 12 ms/GB = 0.012 s; transfer 400 MB at 100 MB/s = 4 s;
    # load 400 MB at 300 MB/s = 1.333 s  ->  T_sync = 5.345 s; W x T_sync = 21.4 MB
    report = advise(AdviseInputs(master(), 1, 4 * MB, 120, 100e6, rdb_bytes=400_000_000))
    r = row(report, "client-output-buffer-limit replica")
    assert r.inputs["T_sync (engine: fork + save + transfer + load)"] == "5.3s"
    assert r.inputs["W x T_sync"] == "21mb"
    assert r.recommended == "960mb 960mb 60"  # the backlog (960 MB) is the larger
    small = advise(AdviseInputs(master(), 1, 4 * MB, 1, 100e6, rdb_bytes=400_000_000))
    # T = 1 s: backlog 8 MB; W x T_sync = 21.4 MB < 256 MB: today's limit is enough
    assert row(small, "client-output-buffer-limit replica").status == "ok"


def test_repl_timeout_must_exceed_the_longest_stall_and_the_ping_period() -> None:
    ok = advise(AdviseInputs(master(), 1, MB, 10, 100e6, rdb_bytes=400_000_000))
    assert row(ok, "repl-timeout").status == "ok"
    # 30 GB RDB: the replica loads for 30e9 / 300e6 = 100 s > 60 s -> 2 x 100 = 200 s
    big = advise(AdviseInputs(master(), 1, MB, 10, 100e6, rdb_bytes=30_000_000_000))
    r = row(big, "repl-timeout")
    assert (r.status, r.recommended) == ("raise", "200s")


def test_maxmemory_headroom_against_host_memory() -> None:
    # RAM 16 GiB; backlog 960 MB and buffer 960 MB recommended: ceiling
    # min(0.75 x 16384, 0.9 x 16384 - 1920) MB = 12288 MB
    fits = advise(AdviseInputs(master(), 1, 4 * MB, 120, 100e6, rdb_bytes=400_000_000))
    assert row(fits, "maxmemory").status == "ok"
    over = advise(
        AdviseInputs(master(maxmemory=str(14 * GB)), 1, 4 * MB, 120, 100e6, rdb_bytes=400_000_000)
    )
    r = row(over, "maxmemory")
    assert (r.current, r.recommended, r.status) == ("14336mb", "12288mb", "lower")


def test_resync_loop_is_predicted_and_the_recommended_settings_avoid_it() -> None:
    # W = 50 MB/s over a 10 MB/s link: 400 MB take 40 s, the buffer passes 256 MB after ~5 s
    report = advise(AdviseInputs(master(), 1, 50 * MB, 60, 10e6, rdb_bytes=400_000_000))
    loop = report.resync_loop
    assert loop["predicted"] and "hard limit 256 MB" in loop["today"]
    # backlog 2 x 50 MB x 60 s = 6000 MB is above W x T_sync = 50 x 41.3 = 2067 MB
    assert loop["settings"]["client-output-buffer-limit"] == "replica 6000mb 6000mb 60"
    assert loop["with_settings"].startswith("the engine predicts the sync completes")


@pytest.mark.parametrize(("delay", "forks"), [("0", 2), ("5", 1)])
def test_storm_counts_forks_network_and_shares_the_link(delay: str, forks: int) -> None:
    m = master(repl_diskless_sync_delay=delay)
    report = advise(AdviseInputs(m, 4, MB, 60, 100e6, rdb_bytes=100_000_000, hop_ms=0.3))
    storm = report.storm
    assert storm["forks"] == forks
    assert storm["network_bytes"] == 400_000_000
    assert f"{100e6 / 4 / MB:.2f} MB/s" in storm["text"]
    assert storm["tree"]["extra_lag_per_level_ms"] == 0.3
    assert storm["staggered"]["waves"] * storm["staggered"]["at_once"] >= 4


def test_storm_that_loops_gets_a_tree_with_a_smaller_fanout() -> None:
    # 8 replicas share 100 MB/s: 12.5 MB/s each, 400 MB take 32 s; W = 10 MB/s fills 256 MB in
    # ~25.6 s -> loop. For one replica today's 256 MB limit is enough (W x T_sync = 53 MB,
    # backlog 2 x 10 MB x 10 s = 200 MB), so the remedies keep it. k at once: transfer 4k s,
    # the buffer grows for 4k + 1.35 s: k = 6 -> 253.5 MB fits, k = 7 -> 293.5 MB loops.
    report = advise(AdviseInputs(master(), 8, 10 * MB, 10, 100e6, rdb_bytes=400_000_000))
    assert report.storm["loops"]
    tree, staggered = report.storm["tree"], report.storm["staggered"]
    assert (tree["fanout"], tree["levels"]) == (6, 2)  # 6 + 36 >= 8
    assert (staggered["at_once"], staggered["waves"]) == (6, 2)
