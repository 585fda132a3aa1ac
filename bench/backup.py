"""Backup transfer speed: the verified fetch against a plain copy of the same RDB file.

A redis-server on a free loopback port is filled with ``DEBUG POPULATE`` (values of
``--value-size`` bytes, ``rdbcompression no`` so the file is as large as the data) until
the RDB is about ``--size-mb``; one ``BGSAVE`` writes it. Then, in the same run and with
the page cache warm for all (the file is read once first):

* ``cp``: the floor for moving the bytes on this machine;
* ``redisops fetch``: :func:`redisops.backup.take.fetch_verified`'s copy pass through
  :class:`~redisops.host.LocalHost`: SHA-256 and CRC64 computed while copying, the source
  host's SHA-256 computed at the same time (a second reader), fsync;
* ``redis-check-rdb``: the separate check that follows;
* for reference, SHA-256 alone and CRC64 alone over the file.

Then, over a real sshd on a free loopback port (tests/ssh/sshd.py; keys generated for the
run), the same file is fetched by OpenSSH ``scp`` and by redisops's SFTP fetch
(:class:`~redisops.ssh.remote.SSHHost`: the reading thread keeps ``READ_DEPTH`` requests
of ``READ_REQUEST`` bytes in flight) without and with the verification work (SHA-256 and
CRC64 in a second thread here, the "remote" host's SHA-256 at the same time), in
``--runs`` rounds of scp, plain, verified; each round's ratio to that round's scp, and the
medians, are printed with the load average (the machine is shared: ratios within a round
are steadier than rates). Issue 13's target: the verified SFTP fetch at least 0.8 of scp.

Usage: python bench/backup.py [--size-mb 1024] [--value-size 1000] [--runs 5]
       [--rdb PATH --sftp-only]   (reuse an RDB file; skip the local comparisons)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from redisops import lab
from redisops.backup.rdbfile import run_check_rdb
from redisops.backup.take import copy_once
from redisops.host import CHUNK, LocalHost
from redisops.plan import NullProgress

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.ssh.sshd


def start_server(tmp: Path) -> tuple[subprocess.Popen[bytes], redis.Redis]:
    port = lab.free_base_port(1, 23000)
    proc = subprocess.Popen(
        [
            lab.redis_server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(tmp),
            "--save",
            "",
            "--rdbcompression",
            "no",
            "--enable-debug-command",
            "local",
        ],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port, socket_timeout=600)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    return proc, client


def make_rdb(client: redis.Redis, size_mb: int, value_size: int) -> float:
    keys = size_mb * 1024 * 1024 // (value_size + 30)
    client.execute_command("DEBUG", "POPULATE", keys, "key", value_size)
    t0 = time.perf_counter()
    client.bgsave()
    while client.info("persistence")["rdb_bgsave_in_progress"]:
        time.sleep(0.1)
    return time.perf_counter() - t0


def rate(nbytes: int, seconds: float) -> str:
    return f"{nbytes / seconds / 1e6:8.1f} MB/s ({seconds:6.2f} s)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--value-size", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rdb", type=Path, help="use this RDB file instead of making one")
    ap.add_argument("--sftp-only", action="store_true", help="only SFTP against scp")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-backup-") as tmp_s:
        tmp = Path(tmp_s)
        if args.rdb is not None and args.sftp_only:
            sftp_vs_scp(tmp, args.rdb, args.rdb.stat().st_size, args.runs)
            return
        proc, client = start_server(tmp)
        try:
            bgsave_s = make_rdb(client, args.size_mb, args.value_size)
        finally:
            client.shutdown(nosave=True)
            proc.wait(30)
        rdb = tmp / "dump.rdb"
        size = rdb.stat().st_size
        print(f"RDB: {size / 1e6:.0f} MB, BGSAVE {bgsave_s:.1f} s")
        with open(rdb, "rb") as fh:  # warm the page cache for every contender
            while fh.read(CHUNK):
                pass
        out = tmp / "copy.rdb"
        t0 = time.perf_counter()
        subprocess.run(["cp", str(rdb), str(out)], check=True)
        subprocess.run(["sync", str(out)], check=True)
        cp_s = time.perf_counter() - t0
        out.unlink()
        t0 = time.perf_counter()
        facts, source_sha, _, changed = copy_once(LocalHost(), str(rdb), out, NullProgress())
        fetch_s = time.perf_counter() - t0
        assert not changed and facts.sha256 == source_sha and facts.crc_status == "ok"
        t0 = time.perf_counter()
        check = run_check_rdb(str(out), facts.format_version)
        check_s = time.perf_counter() - t0
        out.unlink()
        with open(rdb, "rb") as fh:
            t0 = time.perf_counter()
            h = hashlib.sha256()
            for block in iter(lambda: fh.read(CHUNK), b""):
                h.update(block)
            sha_s = time.perf_counter() - t0
        with open(rdb, "rb") as fh:
            import anycrc

            model, crc = anycrc.Model("CRC64-REDIS"), 0
            t0 = time.perf_counter()
            for block in iter(lambda: fh.read(CHUNK), b""):
                crc = model.calc(block, crc)
            crc_s = time.perf_counter() - t0
        print(f"cp + sync                       {rate(size, cp_s)}")
        print(
            f"redisops fetch (sha+crc+source) {rate(size, fetch_s)}  ratio to cp {cp_s / fetch_s:.2f}"
        )
        print(f"redis-check-rdb ({check.status})          {rate(size, check_s)}")
        print(f"sha256 alone                    {rate(size, sha_s)}")
        print(f"crc64 alone (anycrc)            {rate(size, crc_s)}")
        sftp_vs_scp(tmp, rdb, size, args.runs)


def sftp_vs_scp(tmp: Path, rdb: Path, size: int, runs: int) -> None:
    from redisops.inventory import SSHSettings
    from redisops.retry import NO_RETRY
    from redisops.ssh import remote
    from redisops.ssh.pool import SSHPool
    from redisops.ssh.settings import Resolver, SSHOptions
    from tests.ssh.sshd import HAVE_SSHD, SSHWorld, make_keys

    if not HAVE_SSHD:
        print("SFTP vs scp: sshd is not installed (apt-get install openssh-server)")
        return
    world = SSHWorld(tmp / "ssh", make_keys(tmp / "keys"))
    os.environ["HOME"] = str(world.home)  # known_hosts and ssh_config: the run's own
    srv = world.server()
    world.trust(srv)
    key = str(world.client_key.path)
    pool = SSHPool(retry=NO_RETRY)
    node = Resolver(SSHOptions()).node("127.0.0.1", SSHSettings(port=srv.port, identity_file=key))
    host = pool.host(node)
    out = tmp / "fetched.rdb"
    scp = [
        "scp", "-q", "-P", str(srv.port), "-i", key, "-o", "BatchMode=yes",
        "-o", f"UserKnownHostsFile={world.known_hosts}", f"root@127.0.0.1:{rdb}", str(out),
    ]  # fmt: skip

    def run_scp() -> float:
        t0 = time.perf_counter()
        subprocess.run(scp, check=True)
        with open(out, "rb") as fh:
            os.fsync(fh.fileno())
        took = time.perf_counter() - t0
        out.unlink()
        return took

    def run_plain() -> float:  # SFTP reads into a file, no verification
        t0 = time.perf_counter()
        with host.open_read(str(rdb)) as src, open(out, "wb") as dst:
            for block in iter(lambda: src.read(CHUNK), b""):
                dst.write(block)
            os.fsync(dst.fileno())
        took = time.perf_counter() - t0
        out.unlink()
        return took

    def run_verified() -> float:
        t0 = time.perf_counter()
        facts, source_sha, _, _ = copy_once(host, str(rdb), out, NullProgress())
        took = time.perf_counter() - t0
        assert facts.sha256 == source_sha and facts.crc_status == "ok"
        out.unlink()
        return took

    times: dict[str, list[float]] = {"scp": [], "sftp": [], "verified": []}
    load = os.getloadavg()
    try:
        run_plain()  # connection and SFTP session up before timing
        cipher = host.conn.transport.remote_cipher
        print(
            f"over the loopback sshd ({cipher}; {remote.READ_DEPTH} SFTP reads of "
            f"{remote.READ_REQUEST} bytes in flight), {runs} rounds of scp, plain, verified:"
        )
        for n in range(runs):
            for name, fn in (("scp", run_scp), ("sftp", run_plain), ("verified", run_verified)):
                times[name].append(fn())
            print(
                f"  round {n + 1}: "
                + ", ".join(f"{k} {size / v[-1] / 1e6:.0f} MB/s" for k, v in times.items())
            )
    finally:
        pool.close()
        world.close()
    print(f"load average {load[0]:.2f} before, {os.getloadavg()[0]:.2f} after")

    def ratio(name: str) -> str:
        per_round = [s / t for s, t in zip(times["scp"], times[name], strict=True)]
        return (
            f"ratio to scp: median {statistics.median(per_round):.2f} "
            f"(rounds {min(per_round):.2f}-{max(per_round):.2f})"
        )

    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"scp                             {rate(size, med['scp'])}")
    print(f"SFTP fetch, no verification     {rate(size, med['sftp'])}  {ratio('sftp')}")
    print(f"SFTP fetch, verified            {rate(size, med['verified'])}  {ratio('verified')}")


if __name__ == "__main__":
    main()
