"""CLI start-up cost: what a cron-run ``redisops`` pays per invocation.

Starts a 3-node chain of real redis-server processes on free loopback ports (a
``redisops lab --engine redis-server --topology chain``) and prints,
as the median (and min/max) wall time of N runs each:

* ``redisops --help``
* ``redisops status <master>`` (table) and ``--format json``
* the floor: ``redis-cli info replication`` three times (one per node), in one shell

Usage: python bench/cli_startup.py [--runs 10] [--server redis-7.0|redis-6.2|valkey-8.1]
Targets (issue 2): --help <= 200 ms, status of a 3-node cluster <= 400 ms (median of 10).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from redisops import lab

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.servers import BY_NAME, DEFAULT  # the repository's test servers


def timed(cmd: list[str] | str, runs: int, shell: bool = False) -> list[float]:
    out = []
    for _ in range(runs + 1):  # the first run warms the page cache, not counted
        t0 = time.perf_counter()
        proc = subprocess.run(
            cmd, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
        )
        out.append((time.perf_counter() - t0) * 1000)
        if proc.returncode not in (0, 4):
            raise SystemExit(f"{cmd} failed with {proc.returncode}")
    return out[1:]


def show(label: str, samples: list[float], target: float | None = None) -> None:
    med = statistics.median(samples)
    verdict = (
        ""
        if target is None
        else f" (target <= {target:.0f} ms: {'met' if med <= target else 'MISSED'})"
    )
    print(
        f"{label:<44} median {med:7.1f} ms   min {min(samples):7.1f}   max {max(samples):7.1f}{verdict}"
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--server", choices=sorted(BY_NAME), default=DEFAULT.name)
    ns = ap.parse_args()
    spec = BY_NAME[ns.server]
    redis_cli = shutil.which("redis-cli")
    redisops = str(Path(sys.executable).parent / "redisops")
    if spec.problem() is not None or not redis_cli:
        raise SystemExit(spec.problem() or "needs redis-cli (apt-get install redis-tools)")
    # An installed package is byte-compiled (pip does it); a source checkout under
    # PYTHONDONTWRITEBYTECODE=1 would recompile every module on every run.
    import compileall

    import redisops as package

    compileall.compile_dir(str(Path(package.__file__).parent), quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        lab_dir = Path(tmp) / "lab"
        state = lab.up(
            lab_dir,
            engine="redis-server",
            nodes=3,
            base_port=lab.free_base_port(3),
            topology="chain",
            binary=str(spec.binary()),
        )
        ports = state.ports
        try:
            env_note = f"python {sys.version.split()[0]}, {os.cpu_count()} cores"
            print(f"redisops CLI start-up, median of {ns.runs} runs ({env_note}), {state.server}")
            show("redisops --help", timed([redisops, "--help"], ns.runs), 200)
            master = f"127.0.0.1:{ports[0]}"
            show(
                "redisops status (3-node chain, table)",
                timed([redisops, "status", master], ns.runs),
                400,
            )
            show(
                "redisops status (3-node chain, json)",
                timed([redisops, "status", master, "-o", "json"], ns.runs),
                400,
            )
            floor = " && ".join(f"{redis_cli} -p {p} info replication" for p in ports)
            show("floor: redis-cli info replication x3", timed(floor, ns.runs, shell=True))
            show("floor: python -c pass", timed([sys.executable, "-c", "pass"], ns.runs))
        finally:
            lab.down(lab_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
