"""What a replication conformance scenario needs from "a Redis node", and nothing more.

A scenario talks to nodes only through this surface: TCP on a loopback port (redis-py via
:meth:`Node.client`, or raw sockets built from :attr:`Node.port`), plus the process
controls below. Any backend able to host Redis-speaking nodes on ``127.0.0.1`` and to
crash, stop, restart and freeze them can run the suite: today :class:`RealRedisBackend`
(``redis-server`` 7.0 processes via ``tests/harness.py``), later the engine's offline lab.

Configuration is a flat ``dict[str, str]`` of ``redis.conf`` directives (``"save": "3600 1"``,
``"replicaof": "127.0.0.1 6379"``, ``"repl-backlog-size": "16384"``...), applied at start
and again at every :meth:`Node.start`. Whatever is changed later with ``CONFIG SET`` or
``REPLICAOF`` lives only until the node goes down, exactly as with ``redis-server``
without ``CONFIG REWRITE``.

Restart semantics (what survives ``stop()``/``kill()`` + ``start()``):

* ``kill()`` is a crash: nothing is saved; ``start()`` loads whatever RDB is on disk.
* ``stop()`` is a clean shutdown (SIGTERM): if the node has save points (config ``save``
  non-empty, see :data:`PERSISTENT`) it waits for lagging replicas as SHUTDOWN does and
  writes an RDB carrying the dataset *and* the replication info (``repl-id``,
  ``repl-offset``, ``repl-stream-db``); ``start()`` then loads it. Without save points
  nothing is written, as with ``redis-server --save ""``.

So "restart keeping the dataset and replication info" is: start the node with
``PERSISTENT`` in its config, then ``stop()`` and ``start()``.

The DEBUG subcommands the scenarios may use are limited to ``DEBUG SLEEP``,
``DEBUG SET-ACTIVE-EXPIRE``, ``DEBUG DIGEST`` and ``DEBUG RELOAD``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import redis

from tests.harness import RedisFactory, RedisProc

PERSISTENT: dict[str, str] = {"save": "3600 1"}
"""Config making ``stop()`` save the dataset and replication info (no timed save fires
during a test: it needs an hour)."""


@runtime_checkable
class Node(Protocol):
    """One Redis-speaking node listening on ``127.0.0.1:port``."""

    @property
    def port(self) -> int: ...

    @property
    def address(self) -> str:
        """``"127.0.0.1:<port>"``."""
        ...

    def client(self, **kwargs: Any) -> redis.Redis:
        """A redis-py client (``decode_responses=True``); kwargs go to ``redis.Redis``."""
        ...

    def kill(self) -> None:
        """Crash: the node vanishes at once (connections reset, nothing saved)."""
        ...

    def stop(self) -> None:
        """Clean shutdown as on SIGTERM; returns once the node is gone (see module doc)."""
        ...

    def start(self) -> None:
        """Start again on the same port with the start-up config, loading from disk;
        returns once the node answers PING (after loading)."""
        ...

    def pause(self) -> None:
        """Freeze (SIGSTOP): sockets stay open, nothing is processed, no timers run."""
        ...

    def resume(self) -> None:
        """Unfreeze (SIGCONT): processing continues where it stopped."""
        ...


@runtime_checkable
class Backend(Protocol):
    """A factory of nodes; ``close()`` kills every node it started."""

    name: str

    def start_node(self, config: Mapping[str, str] | None = None) -> Node: ...

    def close(self) -> None: ...


# ----------------------------------------------------------------------------- real redis-server


class RealNode:
    """A :class:`Node` backed by one ``redis-server`` process of ``tests/harness.py``."""

    def __init__(self, proc: RedisProc) -> None:
        self._proc = proc

    @property
    def port(self) -> int:
        return self._proc.port

    @property
    def address(self) -> str:
        return self._proc.address

    def client(self, **kwargs: Any) -> redis.Redis:
        return self._proc.client(**kwargs)

    def kill(self) -> None:
        self._proc.kill()

    def stop(self) -> None:
        self._proc.stop()

    def start(self) -> None:
        self._proc.start(wait=True)

    def pause(self) -> None:
        self._proc.pause()

    def resume(self) -> None:
        self._proc.resume()

    def __repr__(self) -> str:
        return f"RealNode({self.address})"


class RealRedisBackend:
    """Nodes are ``redis-server`` 7.0 processes (``--save ""`` unless config says otherwise)."""

    name = "real"

    def __init__(self, base_dir: Path) -> None:
        self._factory = RedisFactory(base_dir)

    def start_node(self, config: Mapping[str, str] | None = None) -> RealNode:
        return RealNode(self._factory.start(config))

    def close(self) -> None:
        self._factory.close()
