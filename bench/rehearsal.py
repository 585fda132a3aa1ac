"""What a rehearsal costs: copying a real cluster, and a playbook on the copy vs for real.

Starts a 3-node star of real redis-server processes (``redisops lab --engine
redis-server``), fills the master with N keys of 100 bytes (``DEBUG POPULATE``), and prints,
for each N, the median wall time of:

* ``redisops lab up --from-cluster MASTER`` + ``lab down`` (read, copy, boot the engine
  nodes, wait for every copied replica's link: the copy's whole cost);
* ``redisops playbook run planned-switchover --dry-run`` (every read for real, the switch
  predicted);
* ``redisops playbook run planned-switchover --rehearse`` (copy, run it there for real,
  tear the copy down; no real run);
* the same playbook run for real (then switched back outside the timing).

Usage: python bench/rehearsal.py [--runs 3] [--keys 1000,10000,100000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from redisops import lab


def redisops(args: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "redisops", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    took = (time.perf_counter() - t0) * 1000
    if proc.returncode != 0:
        raise SystemExit(
            f"redisops {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-500:]}"
        )
    return took


def call(port: int, *args: str) -> None:
    subprocess.run(["redis-cli", "-p", str(port), *args], check=True, stdout=subprocess.DEVNULL)


def wait_synced(ports: list[int]) -> None:
    import redis

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        offs = {redis.Redis(port=p).info("replication")["master_repl_offset"] for p in ports}
        if len(offs) == 1:
            return
        time.sleep(0.05)
    raise SystemExit("replicas did not catch up")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keys", default="1000,10000,100000")
    ns = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-rehearsal-") as tmp:
        env = dict(os.environ, XDG_STATE_HOME=str(Path(tmp) / "state"))
        env.pop("REDISCLI_AUTH", None)
        base = lab.free_base_port(3, start=21000)
        state = lab.up(Path(tmp) / "real", engine="redis-server", nodes=3, base_port=base)
        m, r1, _r2 = (f"127.0.0.1:{p}" for p in state.ports)
        try:
            for n in (int(k) for k in ns.keys.split(",")):
                call(state.ports[0], "FLUSHALL")
                call(state.ports[0], "DEBUG", "POPULATE", str(n), "key", "100")
                wait_synced(state.ports)
                copy = Path(tmp) / "copy"
                clone = []
                for _ in range(ns.runs):
                    clone.append(
                        redisops(["lab", "up", "--from-cluster", m, "--dir", str(copy)], env)
                    )
                    lab.down(copy)
                pb = [
                    "playbook",
                    "run",
                    "planned-switchover",
                    "--var",
                    f"master={m}",
                    "--var",
                    f"target={r1}",
                ]
                dry = [redisops([*pb, "--dry-run"], env) for _ in range(ns.runs)]
                rehearse = [redisops([*pb, "--rehearse"], env) for _ in range(ns.runs)]
                real = []
                for _ in range(ns.runs):
                    real.append(redisops([*pb, "--yes"], env))
                    redisops(["switchover", "--to", m, "--yes"], env)  # back, not timed
                print(f"{n:>7} keys: copy {statistics.median(clone):7.0f} ms   "
                      f"dry run {statistics.median(dry):6.0f} ms   "
                      f"rehearsal {statistics.median(rehearse):7.0f} ms   "
                      f"real run {statistics.median(real):6.0f} ms   (median of {ns.runs})")  # fmt: skip
        finally:
            lab.down(Path(tmp) / "real")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
