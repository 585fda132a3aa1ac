"""Whole-process wall of ``redisops check`` on fleets of real redis-server processes.

For 3, 10, 50 and 200 local nodes (one master, the rest its replicas: redis-server
processes on free loopback ports, ``save 3600 1`` so the group is healthy; ``redisops lab``
stops at 32 nodes, so this script starts its own), after one
warm-up run that writes the state file, the median wall of N runs of
``redisops check MASTER --format nagios``; then the same 50-node group with one replica
frozen by SIGSTOP (``--deadline 1``). Also printed: the import/start-up floor (a process
that imports what ``check`` imports, and exits) and its share of each wall, and the run's
own in-process duration (``redisops_last_run_duration_seconds``).

Usage: python bench/check_fleet.py [--runs 7] [--sizes 3,10,50,200]
Targets (issue 14): 50 nodes <= 1.0 s, 200 nodes <= 2.0 s, 50/3 <= 2.5, a frozen node adds
no more than its deadline.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from redisops import lab

IMPORTS = (
    "import redisops.cli, redisops.cli.check, redisops.session, redisops.redis_node, "
    "redisops.checks.health, redisops.output_checks, redisops.state, redis"
)


def wall(
    cmd: list[str], env: dict[str, str], runs: int, ok: tuple[int, ...] = (0, 1, 2)
) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        out.append(time.perf_counter() - t0)
        if proc.returncode not in ok:
            raise SystemExit(
                f"{' '.join(cmd)} exited {proc.returncode}: {proc.stdout}{proc.stderr}"
            )
    return out


def in_process(redisops: str, master: str, env: dict[str, str], extra: list[str]) -> float:
    proc = subprocess.run(
        [redisops, "check", master, "--format", "prometheus", *extra],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("redisops_last_run_duration_seconds"):
            return float(line.rsplit(" ", 1)[1])
    raise SystemExit(f"no duration in the output: {proc.stdout[-500:]}{proc.stderr}")


def start_fleet(n: int, base: Path) -> tuple[list[int], list[subprocess.Popen[bytes]]]:
    """n redis-server processes, the first the master of all the others, links up."""
    port0 = lab.free_base_port(n, start=20000)
    ports = list(range(port0, port0 + n))
    procs = []
    for p in ports:
        d = base / str(p)
        d.mkdir(parents=True)
        procs.append(
            subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(p),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "3600 1",
                    "--dir",
                    str(d),
                    "--logfile",
                    str(d / "log"),
                    "--repl-diskless-sync-delay",
                    "0",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    clients = [redis.Redis(port=p, socket_timeout=5) for p in ports]
    deadline = time.monotonic() + 60
    for c in clients:
        while True:
            try:
                c.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise SystemExit("redis-server did not start") from None
                time.sleep(0.05)
    for c in clients[1:]:
        c.execute_command("REPLICAOF", "127.0.0.1", ports[0])
    while int(clients[0].info("replication")["connected_slaves"]) < n - 1 or any(
        c.info("replication").get("master_link_status") != "up" for c in clients[1:]
    ):
        if time.monotonic() > deadline:
            raise SystemExit("replicas did not connect")
        time.sleep(0.1)
    for c in clients:
        c.close()
    return ports, procs


def stop_fleet(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.send_signal(signal.SIGCONT)
        p.kill()
    for p in procs:
        p.wait()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--sizes", default="3,10,50,200")
    ns = ap.parse_args()
    sizes = [int(s) for s in ns.sizes.split(",")]
    redisops = str(Path(sys.executable).parent / "redisops")
    import compileall

    import redisops as package

    compileall.compile_dir(str(Path(package.__file__).parent), quiet=1)
    floor_cmd = [sys.executable, "-c", IMPORTS]
    medians: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "XDG_STATE_HOME": str(Path(tmp) / "state")}
        for n in sizes:
            ports, procs = start_fleet(n, Path(tmp) / f"fleet{n}")
            master = f"127.0.0.1:{ports[0]}"
            try:
                cmd = [redisops, "check", master, "--format", "nagios"]
                wall(cmd, env, 1)  # warm-up: the state file and the last-known topology
                samples = wall(cmd, env, ns.runs)
                # the floor is measured beside each size: this shared VM's speed drifts
                floor = statistics.median(wall(floor_cmd, dict(os.environ), ns.runs, ok=(0,)))
                med = medians[n] = statistics.median(samples)
                own = in_process(redisops, master, env, [])
                print(
                    f"{n:4d} nodes: median {med * 1000:7.1f} ms  (min {min(samples) * 1000:.1f}, "
                    f"max {max(samples) * 1000:.1f}); in-process run {own * 1000:.1f} ms; "
                    f"import/start-up floor {floor * 1000:.0f} ms = {floor / med:.0%} of it"
                )
                if n == 50:
                    deadline = 1.0
                    pid = procs[-1].pid
                    os.kill(pid, signal.SIGSTOP)
                    try:
                        fz = wall([*cmd, "--deadline", str(deadline)], env, ns.runs)
                    finally:
                        os.kill(pid, signal.SIGCONT)
                    fmed = statistics.median(fz)
                    print(
                        f"  50 nodes, one frozen (SIGSTOP, --deadline {deadline:g}): median "
                        f"{fmed * 1000:.1f} ms, +{(fmed - med) * 1000:.0f} ms over healthy "
                        f"(target <= +{deadline * 1000:.0f} ms: "
                        f"{'met' if fmed - med <= deadline else 'MISSED'})"
                    )
            finally:
                stop_fleet(procs)
    for n, target in ((50, 1.0), (200, 2.0)):
        if n in medians:
            print(
                f"target {n} nodes <= {target:g} s: {'met' if medians[n] <= target else 'MISSED'} ({medians[n]:.3f} s)"
            )
    if 3 in medians and 50 in medians:
        ratio = medians[50] / medians[3]
        print(f"target 50/3 ratio <= 2.5: {'met' if ratio <= 2.5 else 'MISSED'} ({ratio:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
