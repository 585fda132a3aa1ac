"""Redis nodes the SSH tests change on their "host": one started from a config file we
write (so there is a file to edit), one that only a fake service command starts and stops."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import redis

from tests.harness import REDIS_SERVER, free_port, wait_until


class ConfRedis:
    """redis-server started from a config file we write (so there is a file to edit)."""

    def __init__(self, base: Path, lines: list[str], password: str | None = None) -> None:
        self.port = free_port()
        self.dir = base / f"conf redis {self.port}"
        self.dir.mkdir(parents=True)
        self.conf = self.dir / "redis.conf"
        self.password = password
        head = [
            f"port {self.port}",
            "bind 127.0.0.1",
            f'dir "{self.dir}"',
            'save ""',
            "repl-diskless-sync-delay 0",
            f'logfile "{self.dir / "redis.log"}"',
        ]
        self.conf.write_text("\n".join([*head, *lines]) + "\n")
        os.chmod(self.conf, 0o640)
        self.proc = subprocess.Popen(
            [REDIS_SERVER, str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        wait_until(self.up, what=f"redis-server from {self.conf}")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        return redis.Redis(
            port=self.port, password=self.password, socket_timeout=2, decode_responses=True
        )

    def up(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)

    def restart(self) -> None:
        """Kill it and start it again from its config file (as a service restart would)."""
        self.stop()
        self.proc = subprocess.Popen(
            [REDIS_SERVER, str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        wait_until(self.up, what=f"redis-server restarted from {self.conf}")


FAKE_SERVICE = """#!/bin/sh
# a service manager for one redis-server: $1 is the verb
pidfile={dir}/redis.pid
running() {{ [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }}
echo "$1" >> {dir}/calls.log
case "$1" in
  start) running && exit 0
         exec {server} --port {port} --bind 127.0.0.1 --daemonize yes --pidfile "$pidfile" \\
              --dir {dir} --save '' --logfile {dir}/redis.log --repl-diskless-sync-delay 0 ;;
  stop) running || exit 0
        kill "$(cat "$pidfile")"
        while running; do sleep 0.05; done ;;
  restart) "$0" stop && "$0" start ;;
  status) running || exit 3 ;;
  *) echo "unknown verb $1" >&2; exit 2 ;;
esac
"""


class ServicedNode:
    """A redis-server only the fake service command starts and stops."""

    def __init__(self, base: Path) -> None:
        self.dir = base / "serviced node"  # a space: every path is quoted on the way
        self.dir.mkdir(parents=True)
        self.port = free_port()
        self.script = self.dir / "fake service.sh"
        self.script.write_text(
            FAKE_SERVICE.format(dir=_sh(self.dir), server=REDIS_SERVER, port=self.port)
        )
        self.script.chmod(0o755)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def template(self) -> str:
        return f"{_sh(self.script)} {{verb}}"

    def calls(self) -> list[str]:
        path = self.dir / "calls.log"
        return path.read_text().split() if path.exists() else []

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, decode_responses=True)

    def up(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def start(self) -> None:
        subprocess.run([str(self.script), "start"], check=True)
        wait_until(self.up, what="the serviced redis-server")

    def kill(self) -> None:
        pidfile = self.dir / "redis.pid"
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass


def _sh(path: Path) -> str:
    return "'" + str(path).replace("'", "'\\''") + "'"
