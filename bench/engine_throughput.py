"""Reference engine, exact mode, in process: how many SET commands per second a master
executes and propagates, with two replicas applying the stream.

Drives the node's dispatch directly (no sockets, no RESP parsing of the client side):
the figure is the engine's own cost. Two figures with replicas: "master side" is the
master executing each SET and propagating it (encode, backlog, queued for both replica
links); "end to end" adds both replicas receiving, applying and forwarding into their own
backlogs, all in the same CPython thread. Checks at the end that every replica has the
master's offset and DEBUG DIGEST.

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


def run(n: int, replicas: int) -> tuple[float, float]:
    """(end-to-end SET/s, master-side SET/s). Master side: the time in the master's
    ``process_command`` (execute, encode, backlog, queue for every replica); end to end
    adds the event-loop turns where links deliver and replicas apply and re-feed."""
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
    process = m.process_command
    master_side = 0.0
    clock = time.perf_counter
    t0 = clock()
    for start in range(0, n, 1024):
        t1 = clock()
        for argv in argvs[start : start + 1024]:
            process(client, argv)
        master_side += clock() - t1
        c.sched.run_soon()  # the event loop turns: links deliver, replicas apply
    elapsed = clock() - t0
    for i in range(replicas):
        r = c.node(7001 + i)
        assert r.master_repl_offset == m.master_repl_offset, "replica offset differs"
        assert r.keyspace.digest() == m.keyspace.digest(), "replica dataset differs"
    return n / elapsed, n / master_side


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
    rows: list[tuple[str, list[float]]] = []
    alone = [run(ns.commands, 0)[0] for _ in range(ns.repeat)]
    both = [run(ns.commands, 2) for _ in range(ns.repeat)]
    rows.append(("master alone", alone))
    rows.append(("master + 2 replicas, master side", [b[1] for b in both]))
    rows.append(("master + 2 replicas, end to end", [b[0] for b in both]))
    for label, rates in rows:
        print(
            f"  {label:<34} best {max(rates):>10,.0f} SET/s   median {statistics.median(rates):>10,.0f} SET/s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
