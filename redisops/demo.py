"""``./dev demo``: the main job, end to end, on the embedded engine (no Redis needed).

Starts a lab of four nodes on free loopback ports, attaches replicas (each plan's
predicted resync verified), writes some data, moves and detaches replicas, switches the
master over with no lost write, kills the new master and fails over, fences the dead
master when it comes back as a master, then stops the lab. Every step is the real
``redisops`` command line, printed before it runs. ``--base-port PORT`` moves the lab.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from redisops import lab


def run(args: list[str], env: dict[str, str], check: bool = True) -> int:
    print(f"\n$ redisops {' '.join(shlex.quote(a) for a in args)}", flush=True)
    proc = subprocess.run([sys.executable, "-m", "redisops", *args], env=env, check=False)
    if check and proc.returncode != 0:
        raise SystemExit(f"demo step failed with exit code {proc.returncode}")
    return proc.returncode


def parse_args(argv: list[str] | None) -> int:
    """The demo's one option: ``--base-port PORT`` (default: the first free block of four
    from 17000 up). Returns the base port."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="./dev demo", description="The main job, end to end, on the embedded engine."
    )
    parser.add_argument(
        "--base-port",
        type=int,
        metavar="PORT",
        help="port of the first of the four lab nodes (default: the first free ones from 17000)",
    )
    args = parser.parse_args(argv)
    if args.base_port is None:
        return lab.free_base_port(4)
    if not 1024 <= args.base_port <= 65535 - 4:
        parser.error(f"--base-port {args.base_port} is out of range (1024 to 65531)")
    return int(args.base_port)


def main(argv: list[str] | None = None) -> int:
    base = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="redisops-demo-") as tmp:
        env = dict(
            os.environ,
            REDISOPS_LAB_DIR=str(Path(tmp) / "lab"),
            XDG_STATE_HOME=str(Path(tmp) / "state"),
        )
        m, r1, r2, spare = (f"127.0.0.1:{base + i}" for i in range(4))
        run(["lab", "up", "--nodes", "4", "--base-port", str(base), "--topology", "none"], env)
        try:
            run(["attach", r1, "--to", m, "--yes", "--sample", "0"], env)
            run(["attach", r2, "--to", m, "--yes", "--sample", "0"], env)
            _write_keys(base, 2000)
            run(["status", m], env)
            print(
                "\n# Move a replica under its sibling: same history, offset inside the backlog -> partial"
            )
            run(["attach", r2, "--to", r1, "--dry-run", "--sample", "0"], env)
            run(["attach", r2, "--to", r1, "--yes", "--sample", "0"], env)
            print("\n# A fresh node with no shared history -> full resync, predicted and verified")
            run(["attach", spare, "--to", m, "--yes", "--sample", "0"], env)
            run(["detach", spare, "--yes"], env)
            run(["status", m, r1, r2], env)
            print(
                "\n# Planned switchover under load: writes pause only until the target has the"
                "\n# master's exact offset; no acknowledged write lost, partial resyncs only"
            )
            run(["switchover", "--to", r1, "--yes"], env)
            print(
                "\n# The new master dies: rank the candidates the way Sentinel would, then fail over"
            )
            run(["lab", "kill", r1], env)
            run(["failover", "--master", r1, m, r2, "--auto", "--dry-run"], env)
            run(["failover", "--master", r1, m, r2, "--auto", "--yes"], env)
            new = _master_of([m, r2])
            print("\n# The dead master comes back, as a master (its config says so): split brain")
            run(["lab", "restart", r1], env)
            code = run(["status", new, r1], env, check=False)
            print(f"(exit code {code}: problems found)")
            run(["fence", r1, "--to", new, "--yes"], env)
            run(["status", new], env)
        finally:
            run(["lab", "down"], env, check=False)
    print("\ndemo finished: every command above ran against the embedded engine")
    return 0


def _master_of(addresses: list[str]) -> str:
    """The one of ``addresses`` whose ROLE says master (asked over RESP like any client)."""
    for addr in addresses:
        host, port = addr.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(b"*1\r\n$4\r\nROLE\r\n")
            if b"master" in s.recv(1 << 16)[:32]:
                return addr
    raise SystemExit(f"demo: no master among {', '.join(addresses)}")


def _write_keys(base: int, count: int) -> None:
    """Some data on the master, through the RESP protocol like any client."""
    print(f"\n# write {count} keys to the master", flush=True)
    with socket.create_connection(("127.0.0.1", base)) as s:
        payload = b"".join(
            b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v)
            for k, v in (
                (f"user:{i}".encode(), (f"value-{i}-" + "x" * 64).encode()) for i in range(count)
            )
        )
        s.sendall(payload)
        got = b""
        while got.count(b"+OK\r\n") < count:
            got += s.recv(1 << 16)


if __name__ == "__main__":
    raise SystemExit(main())
