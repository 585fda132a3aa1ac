"""The conformance backend for the reference engine: the offline lab's RESP server.

One ``python -m redisops.engine.server`` process hosts every node of a test, each on its
own loopback port (redis-py and raw sockets talk to it exactly as to redis-server); the
process controls of :class:`~tests.engine.conformance.backend.Node` go through the lab's
control socket (ADD, KILL, STOP, START, PAUSE, RESUME).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import redis

from redisops.errors import RedisopsError
from redisops.lab import control_call
from tests.harness import free_port, wait_until

#: What tests/harness.py passes to every redis-server on its command line.
HARNESS_DEFAULTS = {"enable-debug-command": "local", "protected-mode": "no"}


class EngineNode:
    def __init__(self, backend: EngineBackend, port: int) -> None:
        self._backend = backend
        self._port = port

    @property
    def port(self) -> int:
        return self._port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._port}"

    def client(self, **kwargs: Any) -> redis.Redis:
        kwargs.setdefault("socket_timeout", 5)
        return redis.Redis(host="127.0.0.1", port=self._port, decode_responses=True, **kwargs)

    def _gone(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self._port), timeout=0.2):
                return False
        except OSError:
            return True

    def kill(self) -> None:
        self._backend.control("KILL", str(self._port))

    def stop(self) -> None:
        self._backend.control("STOP", str(self._port))
        wait_until(self._gone, 20, what=f"engine node {self._port} to shut down")

    def start(self) -> None:
        self._backend.control("START", str(self._port))
        self._backend.wait_ready(self._port)

    def pause(self) -> None:
        self._backend.control("PAUSE", str(self._port))

    def resume(self) -> None:
        self._backend.control("RESUME", str(self._port))

    def __repr__(self) -> str:
        return f"EngineNode({self.address})"


class EngineBackend:
    name = "engine"

    def __init__(self, base_dir: Path) -> None:
        base_dir.mkdir(parents=True, exist_ok=True)
        self.control_path = base_dir / "control.sock"
        self.log = base_dir / "lab.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "redisops.engine.server",
                    "--control",
                    str(self.control_path),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_until(self.control_path.exists, 20, what="engine lab control socket")

    def control(self, *args: str) -> Any:
        try:
            return control_call(str(self.control_path), *args, timeout=30)
        except RedisopsError as exc:
            raise RuntimeError(
                f"lab control {args}: {exc} ({self.log.read_text()[-500:]})"
            ) from None

    def wait_ready(self, port: int) -> None:
        def ready() -> bool:
            try:
                return bool(redis.Redis(port=port, socket_timeout=0.5).ping())
            except redis.BusyLoadingError:
                return False

        wait_until(ready, 20, what=f"engine node {port} to answer PING")

    def start_node(self, config: Mapping[str, str] | None = None) -> EngineNode:
        cfg = {**HARNESS_DEFAULTS, **dict(config or {})}
        for _ in range(5):
            port = free_port()
            try:
                self.control("ADD", str(port), *[x for kv in cfg.items() for x in kv])
            except RuntimeError as exc:
                if "Address already in use" in str(exc):
                    continue
                raise
            self.wait_ready(port)
            return EngineNode(self, port)
        raise RuntimeError("no free port for an engine node")

    def close(self) -> None:
        try:
            self.control("SHUTDOWN")
        except (OSError, RuntimeError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        _ = time
