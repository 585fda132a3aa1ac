"""``./dev demo``: the seeds' story, end to end, on the embedded engine (no Redis needed).

A master with two replicas takes writes; a new replica is attached (its full sync
predicted, then verified); a replica's configuration drifts and is fixed; a verified
backup is taken from a replica; the master is switched over to a replica under a live write
load (the write pause measured, every acknowledged write checked on the new master); the
new master is killed and the ``master-down`` playbook promotes the best replica, repoints
the other and records the dead master as fenced; the dead master comes back as a master
(its config says so: a split brain), is fenced, and the final health check is green.

Every step is the real ``redisops`` command line, printed before it runs, and is
verified: a command's exit code must be the expected one, and the demo checks the data
itself (key counts, acknowledged writes, roles). It exits 0 only if every step verified.
``--base-port PORT`` moves the lab.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from redisops import lab


class DemoFailed(SystemExit):
    def __init__(self, message: str) -> None:
        super().__init__(f"demo: {message}")


def say(text: str) -> None:
    print(f"\n# {text}", flush=True)


def run(args: list[str], env: dict[str, str], expect: int = 0) -> str:
    """``redisops ARGS``, printed, its output shown; its exit code must be ``expect``."""
    print(f"\n$ redisops {' '.join(shlex.quote(a) for a in args)}", flush=True)
    proc = subprocess.run(
        [sys.executable, "-m", "redisops", *args],
        env=env,
        check=False,
        stdout=subprocess.PIPE,
        text=True,
    )
    sys.stdout.write(proc.stdout)
    sys.stdout.flush()
    if proc.returncode != expect:
        raise DemoFailed(f"'{args[0]}' exited {proc.returncode}, expected {expect}")
    return proc.stdout


def call(address: str, *args: str) -> str:
    """One command over RESP, like any client; the first line of the reply."""
    host, port = address.rsplit(":", 1)
    payload = b"*%d\r\n" % len(args) + b"".join(
        b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args
    )
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(payload)
        reply = s.recv(1 << 16).decode(errors="replace")
    return reply.split("\r\n", 1)[0]


def config_get(address: str, key: str) -> str:
    host, port = address.rsplit(":", 1)
    cmd = b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key.encode())
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(cmd)
        reply = s.recv(1 << 16).decode(errors="replace").split("\r\n")
    return reply[4] if len(reply) > 4 else ""


def offset(address: str) -> int:
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"*2\r\n$4\r\nINFO\r\n$11\r\nreplication\r\n")
        text = b""
        while b"master_repl_offset:" not in text or not text.endswith(b"\r\n"):
            text += s.recv(1 << 16)
    line = text.split(b"master_repl_offset:", 1)[1].split(b"\r\n", 1)[0]
    return int(line)


def settle(master: str, replicas: list[str], timeout: float = 15.0) -> None:
    """Until every replica has the master's offset (the writes above have replicated)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        want = offset(master)
        if all(offset(r) >= want for r in replicas):
            return
        time.sleep(0.05)
    raise DemoFailed(f"the replicas of {master} did not catch up within {timeout:.0f}s")


def dbsize(address: str) -> int:
    return int(call(address, "DBSIZE").lstrip(":"))


def role(address: str) -> str:
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"*1\r\n$4\r\nROLE\r\n")
        return "master" if b"master" in s.recv(1 << 16)[:32] else "replica"


def write_keys(address: str, count: int, prefix: str = "user") -> None:
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        payload = b"".join(
            b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v)
            for k, v in (
                (f"{prefix}:{i}".encode(), (f"value-{i}-" + "x" * 64).encode())
                for i in range(count)
            )
        )
        s.sendall(payload)
        got = b""
        while got.count(b"+OK\r\n") < count:
            got += s.recv(1 << 16)


class Writer(threading.Thread):
    """Writes ``order:N`` keys to the master one by one until it stops accepting them;
    remembers every write it got an OK for (an acknowledged write)."""

    def __init__(self, address: str) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.acknowledged: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        host, port = self.address.rsplit(":", 1)
        try:
            with socket.create_connection((host, int(port)), timeout=10) as s:
                i = 0
                while not self.stop.is_set():
                    key = f"order:{i}"
                    s.sendall(
                        b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$2\r\nok\r\n" % (len(key), key.encode())
                    )
                    reply = s.recv(1024)
                    if not reply.startswith(b"+OK"):
                        return  # READONLY: the old master was demoted
                    self.acknowledged.append(key)
                    i += 1
        except OSError:
            return  # the old master dropped its clients: only acknowledged writes count


def parse_args(argv: list[str] | None) -> int:
    """The demo's one option: ``--base-port PORT`` (default: the first free block of four
    from 17000 up). Returns the base port."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="./dev demo", description="The seeds' story, end to end, on the embedded engine."
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
    t0 = time.monotonic()
    base = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="redisops-demo-") as tmp:
        env = dict(
            os.environ,
            REDISOPS_LAB_DIR=str(Path(tmp) / "lab"),
            XDG_STATE_HOME=str(Path(tmp) / "state"),
        )
        env.pop("REDISCLI_AUTH", None)
        m, r1, r2, new = (f"127.0.0.1:{base + i}" for i in range(4))
        inventory = Path(tmp) / "redisops.yml"
        inventory.write_text(f"clusters:\n  demo:\n    nodes: [{m}, {r1}, {r2}, {new}]\n")
        say(
            "Four empty nodes on the embedded engine (pure Python: no Redis installed), with\n"
            "# RDB persistence on (a master without it is a hazard the health checks report)"
        )
        run(
            [
                "lab", "up", "--nodes", "4", "--base-port", str(base), "--topology", "none",
                "--config", "save=3600 1",
            ],
            env,
        )  # fmt: skip
        try:
            story(env, m, r1, r2, new, inventory, Path(tmp) / "backups")
        finally:
            run(["lab", "down"], env)
    print(f"\ndemo finished in {time.monotonic() - t0:.1f}s: every step verified")
    return 0


def story(
    env: dict[str, str], m: str, r1: str, r2: str, new: str, inventory: Path, backups: Path
) -> None:
    say("A master and two replicas (REPLICAOF, then follow the sync until in sync)")
    run(["attach", r1, "--to", m, "--yes", "--sample", "0"], env)
    run(["attach", r2, "--to", m, "--yes", "--sample", "0"], env)
    say("Writes: 2000 keys on the master; then the health checks (Nagios exit codes)")
    write_keys(m, 2000)
    settle(m, [r1, r2])
    run(["status", m], env)
    run(["check", m], env)

    say(
        "A new replica, with a playbook: it has no shared history with the master, so the\n"
        "# engine predicts a FULL resync (RDB transfer); the attach verifies the counters agree"
    )
    out = run(
        [
            "playbook",
            "run",
            "add-replica",
            "--var",
            f"replica={new}",
            "--var",
            f"master={m}",
            "--yes",
        ],
        env,
    )
    if "prediction confirmed" not in out:
        raise DemoFailed("the attach did not confirm its predicted full sync")
    if dbsize(new) != dbsize(m):
        raise DemoFailed(f"{new} has {dbsize(new)} keys, the master {dbsize(m)}")

    say(
        "Someone raised repl-backlog-size on one replica by hand (CONFIG SET, not persisted):\n"
        "# the replicas no longer match, and a failover to that node would change the backlog"
    )
    call(r2, "CONFIG", "SET", "repl-backlog-size", "4mb")
    run(["drift", m], env, expect=11)
    say("Fix it with a playbook: set it back to the master's value, persist it, check again")
    run(["playbook", "run", "drift-remediation", "--var", f"master={m}", "--yes"], env)
    if config_get(r2, "repl-backlog-size") != config_get(m, "repl-backlog-size"):
        raise DemoFailed("repl-backlog-size still differs after the fix")

    say(
        "A verified RDB backup with a playbook: taken from a replica (the fork stays off the\n"
        "# master), copied, size and SHA-256 compared, the RDB's CRC64 and redis-check-rdb"
    )
    out = run(
        [
            "playbook", "run", "backup-rdb", "--var", f"node={m}",
            "--var", f"dest={backups}", "--yes",
        ],
        env,
    )  # fmt: skip
    taken = list(backups.rglob("*.rdb"))
    if not taken or "verified in" not in out:
        raise DemoFailed("no verified backup")
    print(f"backup file: {taken[0]} ({taken[0].stat().st_size} bytes)")

    say(
        "Planned switchover under a live write load, rehearsed first on a copy of the cluster:\n"
        "# writes pause only until the target has the master's exact offset; every write the\n"
        "# old master acknowledged must be on the new master"
    )
    writer = Writer(m)
    writer.start()
    time.sleep(0.3)
    out = run(
        [
            "playbook", "run", "planned-switchover", "--var", f"master={m}", "--var", f"target={r1}",
            "--rehearse", "--yes",
        ],
        env,
    )  # fmt: skip
    writer.stop.set()
    writer.join(5)
    missing = [k for k in writer.acknowledged if call(r1, "EXISTS", k) != ":1"]
    print(
        f"\n{len(writer.acknowledged)} writes acknowledged by the old master; missing on the new one: {len(missing)}"
    )
    if missing or not writer.acknowledged:
        raise DemoFailed(f"{len(missing)} acknowledged writes lost")
    pause = re.findall(r"writes paused ([0-9.]+) ms", out)
    if len(pause) != 2:  # the rehearsal's and the real run's
        raise DemoFailed("the switchover did not report its write pause")
    print(f"writes paused {pause[1]} ms on the real cluster ({pause[0]} ms on the copy)")

    say("The new master dies (SIGKILL)")
    run(["lab", "kill", r1], env)
    say(
        "The master-down playbook, from the dead master's address only: confirm it is down,\n"
        "# find its replicas (inventory), rank them by Sentinel's rules, fail over, fence it, check"
    )
    out = run(
        [
            "playbook", "run", "master-down", "--var", f"master={r1}", "--var", "interval=0.2s",
            "--inventory", str(inventory), "--yes",
        ],
        env,
    )  # fmt: skip
    masters = [a for a in (m, r2, new) if role(a) == "master"]
    if len(masters) != 1:
        raise DemoFailed(f"expected one master after master-down, found {masters}")
    top = masters[0]

    say("The dead master comes back - as a master (its config says so): a split brain")
    run(["lab", "restart", r1], env)
    run(["status", top, r1], env, expect=4)
    say(
        "Fence it: it becomes a replica of the new master (its writes since the failover are discarded)"
    )
    run(["fence", r1, "--to", top, "--yes"], env)
    if role(r1) != "replica":
        raise DemoFailed(f"{r1} is still a master after the fence")

    say("Final check: one master, every replica linked, every health check OK")
    run(["status", top], env)
    run(["check", top, "--expect-replicas", "3"], env)


if __name__ == "__main__":
    raise SystemExit(main())
