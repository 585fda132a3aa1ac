"""A throwaway ``redis-server`` started on a backup file, on any host.

Used by ``backup verify --load-test`` (on this machine) and by the online restore (on the
node's host, which then replicates from it). It is started through the
:class:`~redisops.host.Host` protocol, so the same code serves a local node and, through
the SSH layer, a remote one: ``redis-server -`` reads its configuration from standard
input, so the one-off password never appears on a command line (``ps``), and
``daemonize yes`` returns once the server forked. It never writes: no save points, no AOF,
and it is stopped with ``SHUTDOWN NOSAVE``; its directory holds only a link to (or a copy
of) the backup file.
"""

from __future__ import annotations

import contextlib
import posixpath
import secrets
import time
from dataclasses import dataclass, field

from redisops.errors import RedisopsError, Unreachable
from redisops.host import Host, HostError
from redisops.inventory import ConnectOptions, Credentials, Secret
from redisops.model import Address
from redisops.redis_node import RedisNode
from redisops.retry import NO_RETRY


@dataclass
class Throwaway:
    """A running throwaway server: its address, password, directory and host."""

    host: Host
    address: Address
    password: Secret
    workdir: str
    pidfile: str
    logfile: str
    binary: str
    stopped: bool = field(default=False)

    @property
    def options(self) -> ConnectOptions:
        return ConnectOptions(Credentials(password=self.password, source="throwaway"))

    def node(self) -> RedisNode:
        return RedisNode(self.address, self.options, NO_RETRY)

    def log_tail(self) -> str:
        try:
            lines = self.host.read_bytes(self.logfile).decode("utf-8", "replace").splitlines()
        except HostError:
            return ""
        return lines[-1] if lines else ""

    def stop(self) -> None:
        """``SHUTDOWN NOSAVE``; its directory is removed afterwards."""
        if self.stopped:
            return
        with contextlib.suppress(RedisopsError), self.node() as n:
            n.execute("SHUTDOWN", "NOSAVE")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.host.stat(self.pidfile) is not None:
            time.sleep(0.05)
        with contextlib.suppress(HostError):
            self.host.run(["rm", "-rf", "--", self.workdir], timeout=60)
        self.stopped = True


def server_config(
    port: int, bind: str, workdir: str, dbfilename: str, password: str, pidfile: str, logfile: str
) -> bytes:
    from redisops.redisconf import format_line

    lines = [
        ("port", str(port)),
        ("bind", bind),
        ("dir", workdir),
        ("dbfilename", dbfilename),
        ("daemonize", "yes"),
        ("pidfile", pidfile),
        ("logfile", logfile),
        ("save", ""),
        ("appendonly", "no"),
        ("requirepass", password),
        ("enable-debug-command", "yes"),
        ("repl-diskless-sync", "yes"),
        ("repl-diskless-sync-delay", "0"),
        ("protected-mode", "no"),
    ]
    return ("\n".join(format_line(k, [v]) for k, v in lines) + "\n").encode()


def start_throwaway(
    host: Host,
    rdb: str,
    *,
    binary: str,
    port: int,
    bind: str = "127.0.0.1",
    copy: bool = False,
    timeout: float = 3600.0,
) -> Throwaway:
    """Start ``binary`` on ``host`` loading ``rdb`` (linked, or copied with ``copy``) and
    return once it has loaded the file and answers."""
    made = host.run(["mktemp", "-d", "/tmp/redisops-throwaway-XXXXXX"], timeout=30).check(host.name)
    workdir = made.text().strip()
    name = "backup.rdb"
    target = posixpath.join(workdir, name)
    host.run(
        ["cp" if copy else "ln", *([] if copy else ["-s"]), "--", rdb, target], timeout=timeout
    ).check(host.name)
    password = secrets.token_hex(24)
    pidfile, logfile = posixpath.join(workdir, "redis.pid"), posixpath.join(workdir, "redis.log")
    cfg = server_config(port, bind, workdir, name, password, pidfile, logfile)
    server = Throwaway(
        host, Address(bind, port), Secret(password), workdir, pidfile, logfile, binary
    )
    started = host.run([binary, "-"], input=cfg, timeout=60)
    if not started.ok:
        server.stop()
        raise HostError(
            f"{host.name}: {binary} did not start: {started.stderr.decode(errors='replace').strip()}"
        )
    try:
        wait_loaded(server, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def wait_loaded(server: Throwaway, timeout: float) -> None:
    """Until the server answers with its dataset loaded (``loading:0``)."""
    started = time.monotonic()
    while True:
        try:
            with server.node() as n:
                if n.info("persistence").get("loading") == "0":
                    return
        except Unreachable:
            pass
        waited = time.monotonic() - started
        if waited > 5 and server.host.stat(server.pidfile) is None:
            # a daemonized redis-server writes its pid file at once: it is gone
            raise RedisopsError(
                f"the throwaway redis-server on {server.address} exited: {server.log_tail()}"
            )
        if waited > timeout:
            raise RedisopsError(
                f"the throwaway redis-server on {server.address} did not load the backup "
                f"within {timeout:g}s: {server.log_tail()}"
            )
        time.sleep(0.05)


def dataset_facts(node: RedisNode) -> dict[str, object]:
    """Keys per db, total, and ``DEBUG DIGEST`` (None when DEBUG is not allowed)."""
    from redisops.errors import CommandFailed
    from redisops.info import keyspace

    ks = keyspace(node.info("keyspace"))
    digest: str | None
    try:
        digest = str(node.execute("DEBUG", "DIGEST"))
    except CommandFailed:
        digest = None
    return {
        "keys": sum(v["keys"] for v in ks.values()),
        "expires": sum(v["expires"] for v in ks.values()),
        "keyspace": {f"db{db}": v for db, v in ks.items()},
        "digest": digest,
    }
