"""Switchover under a continuous writer: redisops vs Redis's FAILOVER vs the naive runbook.

For each run: a fresh 1 master + 2 replicas of real redis-server on loopback
(``repl-diskless-sync-delay 0``), a client writing ``SET k<i> i`` in a loop that follows
the master (on an error it asks every node for ROLE, as the reference scripts do), then:

* ``redisops``: ``redisops switchover --to <replica1> --yes`` as a subprocess;
* ``native``: ``FAILOVER TO <replica1> TIMEOUT 5000``, polled to completion (the
  reference script in shared/bench/native_failover.py);
* ``naive``: ``REPLICAOF NO ONE`` on replica1, then repoint replica2 and the old master
  (shared/bench/naive_failover.py).

Printed per run and as medians: the write-unavailability window (largest gap between
acknowledged writes), acknowledged writes lost (missing on the new master afterwards),
full resyncs (``sync_full`` deltas over all nodes), and for redisops the pause it measured.

Usage: python bench/switchover.py [--runs 5] [--server redis-7.0|redis-6.2|valkey-8.1]
                                 [--target-server SERVER] [--methods redisops,native,naive]
``--server`` picks the binary every node runs (``tests/servers.py`` finds it: Redis 7.0
from Debian, Redis 6.2 and Valkey 8.1 from ``.cache/servers``, which ``./dev test`` or
``python -m tests.servers fetch`` fills). ``--target-server valkey-8.1`` with ``--server
redis-7.0`` measures the live migration: only the target runs Valkey.
Targets (issue 5): redisops loses 0 writes, makes 0 full resyncs, median window <= 50 ms,
about ten times shorter than native FAILOVER; issue 11: zero loss and a window <= 10 ms on
every server.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis

from redisops import lab

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.servers import BY_NAME, DEFAULT  # the repository's test servers


class Cluster:
    """A fresh 1 master + 2 replicas of ``binary``: a ``redisops lab`` (star). With
    ``target_binary`` the switchover target (the first replica) runs that server instead,
    in a lab of its own, attached to the master (a migration, e.g. Redis 7.0 -> Valkey)."""

    def __init__(self, tmp: Path, binary: str, target_binary: str | None = None) -> None:
        self.dirs = [tmp / "lab"]
        if target_binary is None:
            state = lab.up(
                self.dirs[0],
                engine="redis-server",
                nodes=3,
                base_port=lab.free_base_port(3),
                binary=binary,
            )
            self.ports = state.ports
        else:
            main = lab.up(
                self.dirs[0],
                engine="redis-server",
                nodes=2,
                base_port=lab.free_base_port(2),
                binary=binary,
            )
            self.dirs.append(tmp / "lab-target")
            target = lab.up(
                self.dirs[1],
                engine="redis-server",
                nodes=1,
                topology="none",
                base_port=lab.free_base_port(1, start=main.ports[-1] + 1),
                binary=target_binary,
            )
            self.ports = [main.ports[0], target.ports[0], main.ports[1]]
        self.nodes = {p: redis.Redis(port=p, socket_timeout=2, protocol=2) for p in self.ports}
        if target_binary is not None:
            t = self.nodes[self.ports[1]]
            t.execute_command("REPLICAOF", "127.0.0.1", self.ports[0])
            deadline = time.monotonic() + 30
            while t.info("replication").get("master_link_status") != "up":
                if time.monotonic() > deadline:
                    raise SystemExit("the target did not link up with the master")
                time.sleep(0.05)

    def current_master(self) -> int | None:
        for p, r in self.nodes.items():
            try:
                if r.execute_command("ROLE")[0] == b"master":
                    return p
            except redis.RedisError:
                pass
        return None

    def sync_full(self) -> int:
        return sum(int(r.info("stats")["sync_full"]) for r in self.nodes.values())

    def close(self) -> None:
        for d in self.dirs:
            lab.down(d)


def writer(cluster: Cluster, acked: list[tuple[float, int]], stop: threading.Event) -> None:
    i, port = 0, cluster.ports[0]
    c = redis.Redis(port=port, socket_timeout=2, protocol=2)
    while not stop.is_set():
        try:
            c.set(f"k{i}", i)
            acked.append((time.perf_counter(), i))
            i += 1
        except redis.RedisError:
            p = cluster.current_master()
            if p and p != port:
                port = p
                c = redis.Redis(port=port, socket_timeout=2, protocol=2)


def switch(method: str, cluster: Cluster) -> dict[str, float]:
    m, t, o = cluster.ports
    if method == "redisops":
        env = dict(os.environ, XDG_STATE_HOME=tempfile.mkdtemp())
        proc = subprocess.run(
            [
                str(Path(sys.executable).parent / "redisops"),
                "switchover",
                "--to",
                f"127.0.0.1:{t}",
                "--yes",
                "-o",
                "json",
            ],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(
                f"redisops switchover failed ({proc.returncode}): {proc.stderr[-400:]}"
            )
        observed = json.loads(proc.stdout)["result"]["observed"]
        return {"pause_ms": float(observed.get("pause_ms", 0.0))}
    nodes = cluster.nodes
    if method == "native":
        nodes[m].execute_command("FAILOVER", "TO", "127.0.0.1", t, "TIMEOUT", 5000)
        while nodes[m].info("replication").get("master_failover_state") != "no-failover":
            time.sleep(0.001)
        return {}
    nodes[t].execute_command("REPLICAOF", "NO", "ONE")
    nodes[o].execute_command("REPLICAOF", "127.0.0.1", t)
    nodes[m].execute_command("REPLICAOF", "127.0.0.1", t)
    return {}


def one_run(method: str, binary: str, target_binary: str | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(Path(tmp), binary, target_binary)
        try:
            full0 = cluster.sync_full()
            acked: list[tuple[float, int]] = []
            stop = threading.Event()
            th = threading.Thread(target=writer, args=(cluster, acked, stop), daemon=True)
            th.start()
            time.sleep(1.0)
            extra = switch(method, cluster)
            time.sleep(1.5)
            stop.set()
            th.join(10)
            window = max(b[0] - a[0] for a, b in itertools.pairwise(acked)) * 1000
            newm = cluster.current_master()
            assert newm is not None
            pipe = cluster.nodes[newm].pipeline(transaction=False)
            for _, i in acked:
                pipe.exists(f"k{i}")
            lost = sum(1 for x in pipe.execute() if not x)
            time.sleep(0.5)
            full = cluster.sync_full() - full0
            return {
                "window_ms": window,
                "lost": lost,
                "full_resyncs": full,
                "acked": len(acked),
                **extra,
            }
        finally:
            cluster.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--server", choices=sorted(BY_NAME), default=DEFAULT.name)
    ap.add_argument(
        "--target-server",
        choices=sorted(BY_NAME),
        help="the switchover target runs this server (a migration from --server)",
    )
    ap.add_argument("--methods", default="redisops,native,naive")
    ns = ap.parse_args()
    specs = [BY_NAME[ns.server]] + ([BY_NAME[ns.target_server]] if ns.target_server else [])
    for spec in specs:
        if spec.problem() is not None:
            raise SystemExit(spec.problem())
    binary = str(specs[0].binary())
    target_binary = str(specs[1].binary()) if len(specs) > 1 else None
    print(" -> ".join(f"{s.name} ({s.binary()})" for s in specs), flush=True)
    results: dict[str, list[dict[str, float]]] = {}
    for method in ns.methods.split(","):
        results[method] = []
        for n in range(ns.runs):
            r = one_run(method, binary, target_binary)
            results[method].append(r)
            pause = f" pause {r['pause_ms']:.1f} ms" if "pause_ms" in r else ""
            print(
                f"{method:<9} run {n + 1}: window {r['window_ms']:7.1f} ms  lost {r['lost']:4.0f}  "
                f"full resyncs {r['full_resyncs']:.0f}  acked {r['acked']:.0f}{pause}",
                flush=True,
            )
    print()
    print(f"{'method':<9} {'median window':>14} {'windows (ms)':<40} {'lost':<12} {'full resyncs'}")
    medians = {}
    for method, runs in results.items():
        med = statistics.median(r["window_ms"] for r in runs)
        medians[method] = med
        windows = ", ".join(f"{r['window_ms']:.0f}" for r in runs)
        lost = ", ".join(f"{r['lost']:.0f}" for r in runs)
        full = ", ".join(f"{r['full_resyncs']:.0f}" for r in runs)
        print(f"{method:<9} {med:11.1f} ms  {windows:<40} {lost:<12} {full}")
    if "native" in medians and medians.get("redisops"):
        ratio = medians["native"] / medians["redisops"]
        print(f"\nnative FAILOVER median window / redisops median window = {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
