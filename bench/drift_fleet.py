"""``redisops drift`` over a 50-node replication group on this machine.

Starts N redis-server processes (default 50: one master, N-1 replicas), each from its own
``redis.conf`` (half of them spelling the same settings with aliases and other units, one
with a runtime change not persisted so there is something to find), then times, as the
median (and min/max) wall time of R runs:

* in-process: discovery + reading every node (INFO, CONFIG GET *, the file) + comparison,
  which is what the nodes-read-concurrently requirement is about;
* the whole command as a user runs it: ``redisops drift <master> --format json`` in a new
  process (Python start-up included).

Usage: python bench/drift_fleet.py [--nodes 50] [--runs 5]
Target (issue 15): drift of 50 local nodes <= 1.0 s wall.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from redisops.ops.drift import drift_report
from redisops.session import build_session

SPELLINGS = (
    "maxmemory 1gb\nslave-read-only yes\nhash-max-ziplist-entries 256\nsave 900 1\nsave 300 10\n",
    "maxmemory 1073741824\nreplica-read-only YES\nhash-max-listpack-entries 256\nsave 300 10 900 1\n",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(
    server: str, base: Path, i: int, master_port: int | None
) -> tuple[int, subprocess.Popen[bytes]]:
    for _ in range(5):
        port = free_port()
        d = base / f"n{i}-{port}"
        d.mkdir(parents=True)
        conf = d / "redis.conf"
        lines = [
            f"port {port}",
            "bind 127.0.0.1",
            f'dir "{d}"',
            f'logfile "{d}/redis.log"',
            'save ""',
            "repl-diskless-sync-delay 0",
            SPELLINGS[i % 2],
        ]
        if master_port is not None:
            lines.append(f"replicaof 127.0.0.1 {master_port}")
        conf.write_text("\n".join(lines) + "\n")
        proc = subprocess.Popen(
            [server, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        client = redis.Redis(port=port, socket_timeout=1)
        for _ in range(500):
            if proc.poll() is not None:
                break
            try:
                client.ping()
                return port, proc
            except redis.ConnectionError:
                time.sleep(0.01)
        proc.kill()
    raise SystemExit("could not start redis-server")


def wait_linked(master_port: int, replicas: int) -> None:
    client = redis.Redis(port=master_port, decode_responses=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        info = client.info("replication")
        online = sum(
            1
            for k, v in info.items()
            if k.startswith("slave") and isinstance(v, dict) and v.get("state") == "online"
        )
        if online >= replicas:
            return
        time.sleep(0.1)
    raise SystemExit(f"only {online} of {replicas} replicas online")


def show(label: str, samples: list[float], target: float | None = None) -> None:
    med = statistics.median(samples)
    verdict = (
        ""
        if target is None
        else f" (target <= {target:.0f} ms: {'met' if med <= target else 'MISSED'})"
    )
    print(
        f"{label:<46} median {med:7.1f} ms   min {min(samples):7.1f}   max {max(samples):7.1f}{verdict}"
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=50)
    ap.add_argument("--runs", type=int, default=5)
    ns = ap.parse_args()
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server not installed")
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="redisops-drift-bench-") as tmp:
        try:
            t0 = time.perf_counter()
            master_port, p = start(server, Path(tmp), 0, None)
            procs.append(p)
            for i in range(1, ns.nodes):
                procs.append(start(server, Path(tmp), i, master_port)[1])
            wait_linked(master_port, ns.nodes - 1)
            redis.Redis(port=master_port).config_set("timeout", "30")  # one finding to report
            print(
                f"{ns.nodes} nodes up and linked in {time.perf_counter() - t0:.1f}s; load {os.getloadavg()[0]:.2f}"
            )
            seed = f"127.0.0.1:{master_port}"
            inproc, findings = [], 0
            for _ in range(ns.runs + 1):
                t = time.perf_counter()
                with build_session(seeds=[seed]) as session:
                    topo = session.discover()
                    configs, report = drift_report(session, topo)
                inproc.append((time.perf_counter() - t) * 1000)
                findings = len([f for f in report.findings if f.severity != "info"])
                assert len(configs) == ns.nodes, len(configs)
            cli = []
            for _ in range(ns.runs + 1):
                t = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-m", "redisops", "drift", seed, "--format", "json"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    check=False,
                )
                cli.append((time.perf_counter() - t) * 1000)
                if done.returncode not in (0, 11):
                    raise SystemExit(f"redisops drift exited {done.returncode}")
            print(f"findings per run: {findings} (the not-persisted timeout on the master)")
            show(f"drift of {ns.nodes} nodes, in-process", inproc[1:], 1000)
            show(f"redisops drift ({ns.nodes} nodes), new process", cli[1:], 1000)
        finally:
            for p in procs:
                p.kill()
            for p in procs:
                p.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
