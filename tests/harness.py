"""Real server processes for tests, on free loopback ports.

``RedisFactory(dir, server).start()`` spawns the factory's server (Redis 7.0 from the
Debian package by default; Redis 6.2 or Valkey 8.1 from ``tests/servers.py``) with a temp
dir, ``--save ""`` and a log file, waits for PING and returns a :class:`RedisProc`;
``start(server=...)`` picks another server for one node (mixed clusters). ``close()`` kills
everything it started. Helpers build master/replica/chained topologies and wait (polling,
bounded) until links are up and offsets converge.
"""

from __future__ import annotations

import itertools
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
import redis

from tests.servers import DEFAULT, ServerSpec, in_ci

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
HAVE_REDIS = DEFAULT.available
SKIP_REASON = DEFAULT.problem() or ""


def missing(reason: str) -> None:
    """Skip a test whose tool is missing on a developer's machine; fail it under
    ``CI=true`` (CI must never go green by skipping)."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing test tool fails)", pytrace=False)
    pytest.skip(reason)


def require(spec: ServerSpec) -> ServerSpec:
    """``spec``, or skip/fail the test (see :func:`missing`) when it cannot run here."""
    problem = spec.problem()
    if problem is not None:
        missing(problem)
    return spec


_used_ports: set[int] = set()


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (and we have not handed out)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _used_ports and port < 60000:
            _used_ports.add(port)
            return int(port)
    raise RuntimeError("no free port")


def wait_until(
    cond: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = cond()
            if value:
                return value
        except (redis.RedisError, OSError) as exc:
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what}"
        + (f" (last error: {last_exc})" if last_exc else "")
    )


class RedisProc:
    """One redis-server process."""

    def __init__(
        self,
        factory: RedisFactory,
        port: int,
        config: Mapping[str, str],
        name: str,
        server: ServerSpec | None = None,
    ) -> None:
        self.factory = factory
        self.server = server or factory.server
        self.port = port
        self.config = dict(config)
        self.name = name
        self.dir = factory.base_dir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.logfile = self.dir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.password: str | None = config.get("requirepass")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        binary = self.server.binary()
        assert binary is not None, self.server.problem()
        args = [
            str(binary),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(self.dir),
            "--logfile",
            str(self.logfile),
            "--daemonize",
            "no",
            "--protected-mode",
            "no",
        ]
        if self.server.server.has_enable_debug_command:  # 6.2 has DEBUG on, and no directive
            args += ["--enable-debug-command", "local"]
        for key, value in self.config.items():
            args += [f"--{key}", value]
        return args

    def start(self, wait: bool = True) -> RedisProc:
        self.proc = subprocess.Popen(
            self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=self.dir
        )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 10.0) -> None:
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                log = (
                    self.logfile.read_text(errors="replace")[-2000:]
                    if self.logfile.exists()
                    else ""
                )
                raise AssertionError(
                    f"{self.server} on {self.port} exited with {self.proc.returncode}: {log}"
                )
            try:
                return bool(self.client(socket_timeout=0.5).ping())
            except redis.BusyLoadingError:
                return False

        wait_until(ready, timeout, what=f"{self.server} :{self.port} to answer PING")

    def client(self, **kwargs: Any) -> redis.Redis:
        kwargs.setdefault("socket_timeout", 5)
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=self.password,
            decode_responses=True,
            **kwargs,
        )

    def info(self, section: str = "replication") -> dict[str, Any]:
        return dict(self.client().info(section))

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL and reap: the node is gone, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM (a clean shutdown that saves if persistence is on) and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def restart(self, wait: bool = True) -> RedisProc:
        self.stop()
        return self.start(wait)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class RedisFactory:
    """Starts server processes (``server``, unless one is named per node) and kills them
    all on ``close()``."""

    def __init__(self, base_dir: Path, server: ServerSpec = DEFAULT) -> None:
        self.base_dir = base_dir
        self.server = server
        self.procs: list[RedisProc] = []

    def start(
        self,
        config: Mapping[str, str] | None = None,
        *,
        port: int | None = None,
        wait: bool = True,
        server: ServerSpec | None = None,
    ) -> RedisProc:
        cfg = dict(config or {})
        for attempt in range(5):
            p = port or free_port()
            proc = RedisProc(self, p, cfg, f"node{len(self.procs)}-{p}", server)
            try:
                proc.start(wait)
            except AssertionError:
                proc.kill()
                if port is not None or attempt == 4:
                    raise
                continue
            self.procs.append(proc)
            return proc
        raise AssertionError(f"could not start {server or self.server}")  # pragma: no cover

    def close(self) -> None:
        for proc in self.procs:
            try:
                proc.kill()
            except Exception:
                pass
        self.procs.clear()


# ----------------------------------------------------------------------------- topologies


class RedisLike(Protocol):
    """What the topology helpers need of a node: a :class:`RedisProc` or a lab node."""

    port: int
    password: str | None

    def client(self, **kwargs: Any) -> redis.Redis: ...

    def info(self, section: str = "replication") -> dict[str, Any]: ...


N = TypeVar("N", bound=RedisLike)


def replicate(replica: RedisLike, master: RedisLike) -> None:
    with replica.client() as c:
        if master.password:
            c.config_set("masterauth", master.password)
        c.execute_command("REPLICAOF", "127.0.0.1", master.port)


def wait_link_up(replica: RedisLike, timeout: float = 20.0) -> None:
    wait_until(
        lambda: replica.info().get("master_link_status") == "up",
        timeout,
        what=f"127.0.0.1:{replica.port} link up",
    )


def wait_in_sync(master: RedisLike, replicas: Iterable[RedisLike], timeout: float = 20.0) -> int:
    """Until every replica is connected with the master's offset; returns the offset."""
    reps = list(replicas)

    def synced() -> int | None:
        off = int(master.info()["master_repl_offset"])
        for r in reps:
            info = r.info()
            if info.get("master_link_status") != "up" or int(info["master_repl_offset"]) != off:
                return None
        return off or -1

    return max(int(wait_until(synced, timeout, what="offsets to converge")), 0)


def star_of(nodes: list[N]) -> list[N]:
    """Attach ``nodes[1:]`` to ``nodes[0]`` and wait until every link is up."""
    for r in nodes[1:]:
        replicate(r, nodes[0])
    for r in nodes[1:]:
        wait_link_up(r)
    return nodes


def chain(
    factory: RedisFactory, n: int, config: Mapping[str, str] | None = None
) -> list[RedisProc]:
    """n nodes: node0 master, node1 its replica, node2 replica of node1, ..."""
    nodes = [factory.start(config) for _ in range(n)]
    for upper, lower in itertools.pairwise(nodes):
        replicate(lower, upper)
    for node in nodes[1:]:
        wait_link_up(node)
    return nodes


def star(
    factory: RedisFactory, replicas: int, config: Mapping[str, str] | None = None
) -> list[RedisProc]:
    """A master and ``replicas`` replicas attached directly to it."""
    return star_of([factory.start(config) for _ in range(replicas + 1)])


FAST_SYNC = {"repl-diskless-sync-delay": "0"}
