"""Reference engine, rate mode: how long the planner takes to predict attaching a replica
to a 10 GB master taking 20 MB/s of writes (the dry run of `redisops attach`).

Usage: python bench/rate_mode.py
Target (issue 3): <= 0.5 s.
"""

from __future__ import annotations

import statistics
import time

from redisops.engine.predict import RateParams, predict_sync
from redisops.info import RoleReply
from redisops.model import Address, NodeInfo

GB = 1024**3


def snapshots() -> tuple[NodeInfo, NodeInfo]:
    master = NodeInfo(
        Address("10.0.0.1", 6379),
        True,
        info={
            "role": "master",
            "master_replid": "a" * 40,
            "master_replid2": "0" * 40,
            "second_repl_offset": "-1",
            "master_repl_offset": str(900 * GB),
            "repl_backlog_active": "1",
            "repl_backlog_size": str(256 << 20),
            "repl_backlog_first_byte_offset": str(900 * GB - (256 << 20) + 1),
            "repl_backlog_histlen": str(256 << 20),
            "used_memory": str(12 * GB),
            "used_memory_dataset": str(10 * GB),
            "total_system_memory": str(64 * GB),
            "latest_fork_usec": "180000",
            "redis_version": "7.0.15",
        },
        config={
            "repl-diskless-sync": "yes",
            "repl-diskless-sync-delay": "5",
            "repl-timeout": "60",
            "repl-backlog-size": str(256 << 20),
            "client-output-buffer-limit": "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        },
        role_reply=RoleReply("master", 900 * GB),
    )
    replica = NodeInfo(
        Address("10.0.0.2", 6379),
        True,
        info={
            "role": "master",
            "master_replid": "b" * 40,
            "master_replid2": "0" * 40,
            "second_repl_offset": "-1",
            "master_repl_offset": "0",
            "repl_backlog_active": "0",
            "used_memory": str(1 << 20),
            "redis_version": "7.0.15",
        },
        role_reply=RoleReply("master", 0),
    )
    return master, replica


def main() -> int:
    master, replica = snapshots()
    params = RateParams(bandwidth=100e6, write_rate=20 * 1024 * 1024)
    times = []
    pred = None
    for _ in range(20):
        t0 = time.perf_counter()
        pred = predict_sync(master, replica, params)
        times.append(time.perf_counter() - t0)
    assert pred is not None
    print("rate mode: attach a replica to a 10 GB master with 20 MB/s of writes at 100 MB/s")
    print(
        f"  prediction: {pred.sync} resync, {pred.transfer_bytes / GB:.1f} GB, ~{pred.estimated_seconds:.0f} s, "
        f"peak output buffer {pred.peak_output_buffer / (1 << 20):.0f} MB"
    )
    for risk in pred.risks:
        print(f"  risk: {risk}")
    print(
        f"  planner time: median {statistics.median(times) * 1000:.2f} ms, max {max(times) * 1000:.2f} ms "
        f"(target <= 500 ms)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
