"""Real Redis Sentinels (``redis-server CONFIG --sentinel``) for tests.

Each sentinel gets its own generated config file in a temp dir (Sentinel rewrites it), a
free loopback port and a log file; ``close()`` kills them all. The timings are low so a
test does not wait long: ``down-after-milliseconds`` 1000, ``failover-timeout`` 5000.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import redis

from tests.harness import REDIS_SERVER, free_port, wait_until

MASTER_NAME = "mymaster"


class SentinelProc:
    def __init__(self, port: int, directory: Path, master_port: int, quorum: int) -> None:
        self.port = port
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "sentinel.conf"
        self.conf.write_text(
            "\n".join(
                [
                    f"port {port}",
                    "bind 127.0.0.1",
                    "protected-mode no",
                    "daemonize no",
                    f'dir "{self.dir}"',
                    f'logfile "{self.dir / "sentinel.log"}"',
                    "sentinel resolve-hostnames no",
                    "sentinel announce-hostnames no",
                    f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} {quorum}",
                    f"sentinel down-after-milliseconds {MASTER_NAME} 1000",
                    f"sentinel failover-timeout {MASTER_NAME} 5000",
                    f"sentinel parallel-syncs {MASTER_NAME} 2",
                    "",
                ]
            )
        )
        self.proc = subprocess.Popen(
            [REDIS_SERVER, str(self.conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            cwd=self.dir,
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=2, decode_responses=True
        )

    def command(self, *args: Any) -> Any:
        return self.client().execute_command(*args)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class SentinelSet:
    """``count`` sentinels monitoring the master on ``master_port`` as ``mymaster``."""

    def __init__(self, base_dir: Path, master_port: int, count: int = 3, quorum: int = 2) -> None:
        self.sentinels: list[SentinelProc] = []
        try:
            for i in range(count):
                self.sentinels.append(
                    SentinelProc(free_port(), base_dir / f"sentinel{i}", master_port, quorum)
                )
            for s in self.sentinels:
                wait_until(
                    lambda s=s: s.command("PING"), 10, what=f"sentinel {s.address} to answer"
                )
        except BaseException:
            self.close()
            raise

    @property
    def addresses(self) -> list[str]:
        return [s.address for s in self.sentinels]

    def master_address(self) -> str:
        host, port = self.sentinels[0].command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
        return f"{host}:{port}"

    def wait_ready(self, replicas: int, timeout: float = 20.0) -> None:
        """Until every sentinel knows the replicas and the others, and CKQUORUM says OK."""

        def ready() -> bool:
            for s in self.sentinels:
                if len(s.command("SENTINEL", "REPLICAS", MASTER_NAME)) < replicas:
                    return False
                if len(s.command("SENTINEL", "SENTINELS", MASTER_NAME)) < len(self.sentinels) - 1:
                    return False
            return str(self.sentinels[0].command("SENTINEL", "CKQUORUM", MASTER_NAME)).startswith(
                "OK"
            )

        wait_until(ready, timeout, interval=0.1, what="the sentinels to see each other")

    def close(self) -> None:
        for s in self.sentinels:
            try:
                s.kill()
            except Exception:
                pass
        self.sentinels.clear()
