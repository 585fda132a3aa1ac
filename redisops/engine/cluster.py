"""A simulated deployment: engine nodes on one network and one clock, with fault drills.

This is how tests, the planner and benchmarks drive the engine in process:

>>> c = Cluster()
>>> m, r = c.add_node(7000, {"repl-diskless-sync-delay": "0"}), c.add_node(7001)
>>> c.run(1100)  # the nodes have been up for a second
>>> c.client(7001).call("REPLICAOF", "127.0.0.1", "7000")
'OK'
>>> c.run_until(lambda: r.repl_state.role_name == "connected", 10_000)
True
>>> c.client(7000).call("SET", "foo", "bar")
'OK'
>>> c.run(10)
>>> m.master_repl_offset, r.master_repl_offset
(54, 54)
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from redisops.engine.clock import Clock, Scheduler, VirtualClock
from redisops.engine.network import Endpoint, HostPort, Network, Segment
from redisops.engine.node import Node
from redisops.engine.resp import ErrorReply, ProtocolError, Reply, ReplyParser, encode_command
from redisops.engine.state import EngineTiming, Storage


class ReplyError(Exception):
    """An error reply, raised by :meth:`SimClient.call` when ``raise_errors`` is set."""


class SimClient:
    """An in-process client connection to one node."""

    def __init__(self, cluster: Cluster, ep: Endpoint) -> None:
        self.cluster = cluster
        self.ep = ep
        self.parser = ReplyParser()
        self.replies: list[Reply] = []
        self.raw = bytearray()
        self.raw_only = False
        self.closed = False
        ep.on_data = self._on_data
        ep.on_close = self._on_close

    def _on_data(self, segs: list[Segment]) -> None:
        for seg in segs:
            if seg.data:
                self.raw += seg.data
                if not self.raw_only:
                    self.parser.feed(seg.data)
        if self.raw_only:
            return
        try:
            self.replies.extend(self.parser.replies())
        except ProtocolError:
            self.raw_only = True  # e.g. a replication stream starting mid-command: keep raw bytes

    def _on_close(self) -> None:
        self.closed = True

    def send(self, *args: Any) -> None:
        self.ep.write(encode_command([_b(a) for a in args]))

    def call(self, *args: Any, timeout_ms: int = 60_000) -> Any:
        """Send one command and run the simulation until its reply arrives.

        Bulk strings come back as ``str`` when they decode as UTF-8 (like
        ``decode_responses=True``); error replies come back as :class:`ErrorReply`.
        """
        want = len(self.replies) + 1
        self.send(*args)
        if not self.cluster.run_until(lambda: len(self.replies) >= want or self.closed, timeout_ms):
            raise TimeoutError(f"no reply to {args!r} within {timeout_ms} ms")
        if len(self.replies) < want:
            raise ConnectionError("connection closed")
        return _decode(self.replies[want - 1])

    def close(self) -> None:
        self.ep.close()


def _b(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


def _decode(value: Reply) -> Any:
    if isinstance(value, ErrorReply):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return value
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


class Cluster:
    """Engine nodes sharing a network and a clock (virtual by default)."""

    def __init__(
        self,
        seed: int = 0,
        clock: Clock | None = None,
        timing: EngineTiming | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.sched = Scheduler(clock or VirtualClock())
        self.network = Network(self.sched)
        self.rng = random.Random(seed)
        self.timing = timing or EngineTiming()
        self.host = host
        self.nodes: dict[int, Node] = {}
        self.storage: dict[int, Storage] = {}
        self.configs: dict[int, dict[str, str]] = {}
        self._client_seq = 0

    # ------------------------------------------------------------------ nodes
    def add_node(
        self, port: int, config: dict[str, str] | None = None, storage: Storage | None = None
    ) -> Node:
        """Boot a node; ``storage`` is its disk (an RDB it starts from), empty by default."""
        self.configs[port] = dict(config or {})
        self.storage[port] = storage if storage is not None else Storage()
        return self._boot(port)

    def _boot(self, port: int) -> Node:
        node = Node(
            self.host,
            port,
            self.network,
            self.configs[port],
            self.storage[port],
            random.Random(self.rng.getrandbits(64)),
            self.timing,
        )
        self.nodes[port] = node
        node.start()
        return node

    def node(self, port: int) -> Node:
        return self.nodes[port]

    def client(self, port: int) -> SimClient:
        self._client_seq += 1
        ep = self.network.connect(("client", self._client_seq), self.host, port)
        if ep is None:
            raise ConnectionRefusedError(f"nothing listens on {self.host}:{port}")
        return SimClient(self, ep)

    def call(self, port: int, *args: Any) -> Any:
        c = self.client(port)
        try:
            return c.call(*args)
        finally:
            c.close()

    # ------------------------------------------------------------------ time
    def run(self, ms: int) -> None:
        self.sched.run_for(ms)

    def run_until(self, cond: Callable[[], bool], timeout_ms: int = 60_000) -> bool:
        if cond():
            return True
        return self.sched.run_for(timeout_ms, cond)

    # ------------------------------------------------------------------ faults
    def kill(self, port: int) -> None:
        """SIGKILL: nothing saved, connections reset."""
        self.nodes[port].crash()

    def stop(self, port: int, save: bool | None = None) -> None:
        """SIGTERM / SHUTDOWN: saves the RDB (with replication info) when ``save`` is
        configured, or when ``save=True``."""
        node = self.nodes[port]
        if save or (save is None and node.config.get("save")):
            node.save_now()
        node.crash()

    def start(self, port: int) -> Node:
        """Start a stopped or killed node again from its disk."""
        old = self.nodes.get(port)
        if old is not None and old.alive:
            raise RuntimeError(f"node {port} is running")
        return self._boot(port)

    def restart(self, port: int, save: bool | None = None) -> Node:
        self.stop(port, save)
        return self.start(port)

    def pause(self, port: int) -> None:
        """SIGSTOP: the node stops processing; its sockets stay open."""
        self.nodes[port].freeze()

    def resume(self, port: int) -> None:
        self.nodes[port].thaw()

    def _hp(self, port: int) -> HostPort:
        return (self.host, port)

    def partition(self, a: int, b: int, on: bool = True) -> None:
        self.network.partition(self._hp(a), self._hp(b), on)

    def disconnect(self, a: int, b: int) -> int:
        return self.network.disconnect(self._hp(a), self._hp(b))

    def set_delay(self, a: int, b: int, ms: int) -> None:
        self.network.set_delay(self._hp(a), self._hp(b), ms)

    def set_bandwidth(self, a: int, b: int, bytes_per_sec: float | None) -> None:
        self.network.set_bandwidth(self._hp(a), self._hp(b), bytes_per_sec)

    # ------------------------------------------------------------------ helpers
    def replicate(
        self, replica: int, master: int, wait: bool = True, timeout_ms: int = 60_000
    ) -> None:
        self.call(replica, "REPLICAOF", self.host, master)
        if wait:
            node = self.nodes[replica]
            ok = self.run_until(lambda: node.repl_state.role_name == "connected", timeout_ms)
            if not ok:
                raise TimeoutError(f"{replica} did not connect to {master}")

    def in_sync(self, *ports: int) -> bool:
        offsets = {self.nodes[p].master_repl_offset for p in ports}
        return len(offsets) == 1
