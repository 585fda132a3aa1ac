"""redis-server processes started from real config files (the drift tests need files).

``start_from_file(factory, "maxmemory 1gb\\n")`` writes ``redis.conf`` in the node's own
directory, with the lines every test node needs (port, loopback bind, dir, log, no
persistence) first and the test's text after them, starts ``redis-server redis.conf`` and
registers the process with the factory, which kills it at teardown.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

from tests.harness import REDIS_SERVER, RedisFactory, RedisProc, free_port


class ConfNode(RedisProc):
    """A :class:`RedisProc` whose configuration is a file, not command-line options."""

    def __init__(self, factory: RedisFactory, port: int, name: str, server: str) -> None:
        super().__init__(factory, port, {}, name)
        self.conf = self.dir / "redis.conf"
        self.server = server

    def argv(self) -> list[str]:
        return [self.server, str(self.conf)]

    def base_lines(self) -> str:
        return (
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            f'dir "{self.dir}"\n'
            f'logfile "{self.logfile}"\n'
            "daemonize no\n"
            "protected-mode no\n"
            'save ""\n'
            "repl-diskless-sync-delay 0\n"
        )

    def write(self, text: str, includes: Mapping[str, str] | None = None) -> None:
        for name, body in (includes or {}).items():
            (self.dir / name).write_text(body)
        self.conf.write_text(self.base_lines() + text)

    def start(self, wait: bool = True) -> ConfNode:
        self.proc = subprocess.Popen(
            self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=self.dir
        )
        if wait:
            self.wait_ready()
        return self


def start_from_file(
    factory: RedisFactory,
    text: str = "",
    *,
    includes: Mapping[str, str] | None = None,
    server: str = REDIS_SERVER,
) -> ConfNode:
    """A node running ``server`` on its own ``redis.conf`` (base lines + ``text``).

    ``includes`` are written next to it (name -> content); refer to them from ``text`` by
    absolute path via ``{dir}``, which is replaced with the node's directory.
    """
    for attempt in range(5):
        port = free_port()
        node = ConfNode(factory, port, f"conf{len(factory.procs)}-{port}", server)
        node.write(text.replace("{dir}", str(node.dir)), includes)
        try:
            node.start()
        except AssertionError:
            node.kill()
            if attempt == 4:
                raise
            continue
        factory.procs.append(node)
        return node
    raise AssertionError("could not start redis-server")  # pragma: no cover


def node_dir(node: ConfNode) -> Path:
    return node.dir
