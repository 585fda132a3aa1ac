"""SSH fan-out: ``redisops host-facts`` on 1 and 10 hosts against OpenSSH one host at a time.

Starts 10 "hosts" on loopback, each an sshd of its own (own port, generated keys, loopback
only) next to a redis-server, all known in a known_hosts file, and prints the median (and
min/max) wall time of N runs of:

* ``redisops host-facts`` for 1 node and for 10 nodes (``--cluster``, the whole CLI process:
  interpreter, imports, SSH handshakes in parallel, one command per host, Redis INFO);
* the same facts through OpenSSH: ``ssh HOST sh -c SCRIPT`` (the very script host-facts
  runs) once per host, one after another, for 1, 3 and 10 hosts;
* the library call alone (``host_facts(session, nodes)`` in this process, fresh session each
  run: what a health check pays once the interpreter is up).

Target (issue 12): 10 hosts with redisops in at most the time OpenSSH takes for 3.

Everything runs on this machine, so the ten "hosts" share its cores with the client: the
fan-out cannot be faster than the servers' own work. Each SSH command runs the login
account's shell, which sources its rc files; the second pass skips them (see below) to
show the SSH layer's own cost.

Usage: python bench/ssh_fanout.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.ssh.sshd, tests.harness

from redisops.hostfacts import FACTS_SCRIPT
from tests.harness import RedisFactory
from tests.ssh.sshd import HAVE_SSHD, SSHServer, SSHWorld, make_keys

HOSTS = 10


def timed(cmd: list[str], env: dict[str, str], runs: int) -> list[float]:
    out = []
    for _ in range(runs + 1):  # the first run warms caches, not counted
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, check=False)
        out.append((time.perf_counter() - t0) * 1000)
        if proc.returncode != 0:
            raise SystemExit(f"{cmd[:3]}... failed ({proc.returncode}): {proc.stderr[-500:]!r}")
    return out[1:]


def openssh(world: SSHWorld, servers: list[SSHServer], dirs: list[str], runs: int) -> list[float]:
    """Wall time of one ``ssh`` per host, one after another."""
    ssh = shutil.which("ssh") or "ssh"
    out = []
    for _ in range(runs + 1):
        t0 = time.perf_counter()
        for srv, d in zip(servers, dirs, strict=True):
            remote = shlex.join(["sh", "-c", FACTS_SCRIPT, "sh", "", d, "", "true"])
            subprocess.run(
                [
                    ssh,
                    "-p",
                    str(srv.port),
                    "-i",
                    str(world.client_key.path),
                    "-o",
                    f"UserKnownHostsFile={world.known_hosts}",
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    "IdentitiesOnly=yes",
                    srv.host,
                    remote,
                ],
                env=world.env(),
                capture_output=True,
                check=True,
            )
        out.append((time.perf_counter() - t0) * 1000)
    return out[1:]


def in_process(env: dict[str, str], inv: Path, cluster: str, runs: int) -> list[float]:
    os.environ.update(env)
    os.environ.pop("SSH_AUTH_SOCK", None)
    from redisops.ops.hostfacts import host_facts
    from redisops.session import build_session
    from redisops.ssh.settings import SSHOptions

    out = []
    for _ in range(runs + 1):
        t0 = time.perf_counter()
        session = build_session(cluster=cluster, inventory=inv, ssh=SSHOptions())
        with session:
            facts = host_facts(session, [s.address for s in session.seeds])
        out.append((time.perf_counter() - t0) * 1000)
        bad = [f for f in facts.values() if f.host == "unreachable"]
        if bad:
            raise SystemExit(f"host-facts failed: {bad[0].errors}")
    return out[1:]


def show(label: str, samples: list[float]) -> float:
    med = statistics.median(samples)
    print(f"{label:<52} median {med:7.1f} ms   min {min(samples):7.1f}   max {max(samples):7.1f}")
    return med


def measure(runs: int, session_env: dict[str, str] | None) -> None:
    redisops = str(Path(sys.executable).parent / "redisops")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        world = SSHWorld(base / "ssh", make_keys(base / "keys"))
        factory = RedisFactory(base / "redis")
        try:
            servers = [world.server(session_env=session_env) for _ in range(HOSTS)]
            for srv in servers:
                world.trust(srv)
            nodes = [factory.start() for _ in range(HOSTS)]
            dirs = [str(n.dir) for n in nodes]
            key = str(world.client_key.path)
            clusters = {
                f"c{k}": {
                    "nodes": [
                        {"address": n.address, "ssh": {"port": s.port, "identity_file": key}}
                        for n, s in list(zip(nodes, servers, strict=True))[:k]
                    ]
                }
                for k in (1, HOSTS)
            }
            inv = base / "redisops.yml"
            inv.write_text(yaml.safe_dump({"clusters": clusters}))
            env = world.env()
            cli1 = show(
                "redisops host-facts, 1 host (CLI process)",
                timed([redisops, "host-facts", "-c", "c1", "--inventory", str(inv)], env, runs),
            )
            cli10 = show(
                f"redisops host-facts, {HOSTS} hosts (CLI process)",
                timed(
                    [redisops, "host-facts", "-c", f"c{HOSTS}", "--inventory", str(inv)],
                    env,
                    runs,
                ),
            )
            o1 = show("OpenSSH ssh, 1 host", openssh(world, servers[:1], dirs[:1], runs))
            o3 = show(
                "OpenSSH ssh, 3 hosts one after another",
                openssh(world, servers[:3], dirs[:3], runs),
            )
            o10 = show(
                f"OpenSSH ssh, {HOSTS} hosts one after another",
                openssh(world, servers, dirs, runs),
            )
            lib1 = show("host_facts() in process, 1 host", in_process(env, inv, "c1", runs))
            lib10 = show(
                f"host_facts() in process, {HOSTS} hosts", in_process(env, inv, f"c{HOSTS}", runs)
            )
            verdict = "met" if cli10 <= o3 else "MISSED"
            print(f"  ratio redisops {HOSTS} hosts / OpenSSH {HOSTS} hosts: {cli10 / o10:.2f}")
            print(
                f"  ratio redisops {HOSTS} hosts / OpenSSH 3 hosts:  {cli10 / o3:.2f} ({verdict})"
            )
            print(f"  ratio redisops 1 host / OpenSSH 1 host:      {cli1 / o1:.2f}")
            print(f"  in process: {HOSTS} hosts cost {lib10 / lib1:.1f}x one host")
        finally:
            factory.close()
            world.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ns = ap.parse_args()
    if not HAVE_SSHD or not shutil.which("redis-server"):
        raise SystemExit(
            "needs /usr/sbin/sshd and redis-server (apt-get install openssh-server redis-server)"
        )
    print(
        f"SSH fan-out, median of {ns.runs} runs "
        f"(python {sys.version.split()[0]}, {os.cpu_count()} cores, loopback sshd)"
    )
    print("\n[1] sessions as the login account has them (its shell rc files run per session)")
    measure(ns.runs, None)
    print(
        "\n[2] login shell rc skipped (sshd SetEnv SHLVL=1: Debian's bash then does not "
        "source ~/.bashrc for ssh commands)"
    )
    measure(ns.runs, {"SHLVL": "1"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
