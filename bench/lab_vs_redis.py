"""The offline lab against redis-server, same machine, same run: redis-benchmark.

Starts a 1 master + 2 replicas lab on the embedded engine and the same with redis-server
processes, runs ``redis-benchmark -t set,get -n N -q`` against each master, and prints
requests per second and the ratio embedded / redis-server.

Usage: python bench/lab_vs_redis.py [-n 20000]
Target (issue 3): ratio >= 0.2.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

from redisops.lab import free_base_port


def bench(port: int, n: int) -> dict[str, float]:
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-t", "set,get", "-n", str(n), "-q"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rates = {}
    for line in out.replace("\r", "\n").splitlines():
        m = re.match(r"^(SET|GET): ([0-9.]+) requests per second", line.strip())
        if m:
            rates[m.group(1)] = float(m.group(2))
    return rates


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=20000)
    ns = ap.parse_args()
    if not shutil.which("redis-benchmark") or not shutil.which("redis-server"):
        raise SystemExit(
            "needs redis-benchmark and redis-server (apt-get install redis-server redis-tools)"
        )
    results = {}
    for engine in ("redis-server", "embedded"):
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, REDISOPS_LAB_DIR=os.path.join(tmp, "lab"))
            port = free_base_port(3)
            cmd = [sys.executable, "-m", "redisops", "lab"]
            subprocess.run(
                [*cmd, "up", "--engine", engine, "--base-port", str(port)],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            try:
                results[engine] = bench(port, ns.n)
            finally:
                subprocess.run([*cmd, "down"], env=env, check=False, stdout=subprocess.DEVNULL)
    print(f"redis-benchmark -t set,get -n {ns.n} -q, against the master of a 1+2 lab")
    for engine, rates in results.items():
        print(f"  {engine:<13} SET {rates['SET']:>10,.0f} req/s   GET {rates['GET']:>10,.0f} req/s")
    for op in ("SET", "GET"):
        ratio = results["embedded"][op] / results["redis-server"][op]
        print(f"  ratio embedded / redis-server, {op}: {ratio:.2f} (target >= 0.2)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
