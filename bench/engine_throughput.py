"""Reference engine, exact mode, in process: how many SET commands per second a master
executes and propagates, with two replicas applying the stream.

Drives the node's dispatch directly (no sockets, no RESP parsing of the client side):
the figure is the engine's own cost: execute, encode, backlog, two replica links, two
replicas applying and forwarding into their own backlogs. Checks at the end that every
replica has the master's offset and DEBUG DIGEST.

Usage: python bench/engine_throughput.py [--commands 200000]
Target (issue 3): >= 200,000 propagated SETs/s with two replicas.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import timeit

from redisops.engine.cluster import Cluster


def run(n: int, replicas: int) -> float:
    c = Cluster()
    cfg = {
        "repl-diskless-sync-delay": "0",
        "repl-ping-replica-period": "3600",
        "enable-debug-command": "yes",
    }
    m = c.add_node(7000, dict(cfg))
    for i in range(replicas):
        c.add_node(7001 + i, dict(cfg))
        c.replicate(7001 + i, 7000)
    sim = c.client(7000)
    sim.ep.on_data = lambda segs: None  # the client ignores its +OK replies
    client = next(x for x in m.clients.values() if not x.is_replica)
    argvs = [[b"SET", b"key:%d" % (i % 10_000), b"value-%d" % i] for i in range(n)]
    gc.collect()
    t0 = time.perf_counter()
    for i, argv in enumerate(argvs):
        m.process_command(client, argv)
        if i & 1023 == 1023:
            c.sched.run_soon()  # the event loop turns: links deliver, replicas apply
    c.sched.run_soon()
    elapsed = time.perf_counter() - t0
    for i in range(replicas):
        r = c.node(7001 + i)
        assert r.master_repl_offset == m.master_repl_offset, "replica offset differs"
        assert r.keyspace.digest() == m.keyspace.digest(), "replica dataset differs"
    return n / elapsed


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--commands", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ns = ap.parse_args()
    print(f"reference engine, exact mode, {ns.commands} SETs, best and median of {ns.repeat}")
    # shared VMs change speed from minute to minute: a fixed loop says how fast this one
    # is right now, so figures from different runs can be compared
    calib = min(timeit.repeat("for i in range(100_000): x = i * 2", number=10, repeat=7))
    print(f"  cpu check: 1M-iteration loop {calib * 1000:.1f} ms (lower is faster)")
    for replicas in (0, 2):
        rates = [run(ns.commands, replicas) for _ in range(ns.repeat)]
        label = "master alone" if replicas == 0 else f"master + {replicas} replicas (end to end)"
        print(
            f"  {label:<38} best {max(rates):>10,.0f} SET/s   median {statistics.median(rates):>10,.0f} SET/s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
