"""Connections between engine nodes, with injectable faults.

A :class:`Connection` is a pair of :class:`Endpoint` s. What one side sends is delivered
to the other through the scheduler, never synchronously (so a reply never re-enters the
sender's stack), after the link's one-way ``delay_ms`` and at its ``bandwidth`` (bytes/s,
``None`` = unlimited). Several sends in one event are delivered together, which is what
lets the exact engine move hundreds of thousands of commands a second.

Faults, per pair of addresses (both directions): ``partition`` (packets silently dropped:
connections stay open and nothing arrives, so timeouts fire, as with a pulled cable),
``disconnect`` (connections reset now, as with ``CLIENT KILL`` or a RST), ``delay`` and
``bandwidth``. A node that is down refuses new connections.

Segments carry bytes, optionally with the commands already parsed (``frames``), so a
replica applying a live stream does not parse what its master just encoded; bytes (and so
offsets) are always exact. A full-sync RDB travels as one :class:`RdbTransfer` segment
whose size drives the transfer time and progress.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from redisops.engine.clock import Scheduler, Timer

if TYPE_CHECKING:  # pragma: no cover
    from redisops.engine.rdb import RdbImage

LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0", "::"}

HostPort = tuple[str, int]


def normalise_host(host: str) -> str:
    """Loopback names all mean this machine: the lab's nodes listen there.

    >>> normalise_host("LOCALHOST"), normalise_host("::1"), normalise_host("10.0.0.1")
    ('127.0.0.1', '127.0.0.1', '10.0.0.1')
    """
    h = host.lower()
    return "127.0.0.1" if h in LOOPBACK or h.startswith("127.") else h


@dataclass
class RdbTransfer:
    """A full-sync payload: the RDB image and how it is framed on the wire."""

    image: RdbImage
    size: int
    eof_mark: bytes | None = None  # diskless: $EOF:<40 bytes>

    @property
    def wire_size(self) -> int:
        if self.eof_mark is not None:
            return 5 + 40 + 2 + self.size + 40
        return len(b"$%d\r\n" % self.size) + self.size


@dataclass(slots=True)
class Segment:
    data: bytes = b""
    frames: list[list[bytes]] | None = None
    rdb: RdbTransfer | None = None
    stream: bool = False  # replication stream bytes (counted in output-buffer usage)

    @property
    def size(self) -> int:
        return self.rdb.wire_size if self.rdb is not None else len(self.data)


class Conn(Protocol):
    """What a node needs from a connection to a client (in-process endpoint or TCP socket)."""

    peer_ip: str
    peer_port: int

    def write(
        self, data: bytes, frames: list[list[bytes]] | None = None, *, stream: bool = False
    ) -> None: ...
    def write_rdb(
        self, transfer: RdbTransfer, on_sent: Callable[[], None] | None = None
    ) -> None: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def pending_stream_bytes(self) -> int: ...


class Endpoint:
    """One end of an in-process connection."""

    def __init__(self, conn: Connection, side: int, local: HostPort, remote: HostPort) -> None:
        self.connection = conn
        self.side = side
        self.local = local
        self.peer_ip, self.peer_port = remote
        self.on_data: Callable[[list[Segment]], None] = lambda segs: None
        self.on_close: Callable[[], None] = lambda: None
        self.on_rdb_progress: Callable[[int, int], None] = lambda done, total: None
        self._closed = False

    @property
    def peer(self) -> Endpoint:
        return self.connection.ends[1 - self.side]

    @property
    def closed(self) -> bool:
        return self._closed

    def write(
        self, data: bytes, frames: list[list[bytes]] | None = None, *, stream: bool = False
    ) -> None:
        if not self._closed and data:
            self.connection.send(self.side, Segment(data, frames, None, stream))

    __slots__ = (
        "_closed",
        "connection",
        "local",
        "on_close",
        "on_data",
        "on_rdb_progress",
        "peer_ip",
        "peer_port",
        "side",
    )

    def write_rdb(self, transfer: RdbTransfer, on_sent: Callable[[], None] | None = None) -> None:
        if not self._closed:
            self.connection.send(self.side, Segment(rdb=transfer), on_sent)

    def pending_stream_bytes(self) -> int:
        return self.connection.pending_stream[self.side]

    def close(self) -> None:
        self.connection.close(reset=True)


class Connection:
    """Two endpoints and the link parameters between them."""

    def __init__(self, network: Network, a: HostPort, b: HostPort) -> None:
        self.network = network
        self.ends = (Endpoint(self, 0, a, b), Endpoint(self, 1, b, a))
        self.key = network.pair_key(a, b)
        self.closed = False
        self.pending_stream = [0, 0]
        self._outbox: list[list[tuple[Segment, Callable[[], None] | None]]] = [[], []]
        self._scheduled = [False, False]
        self._busy_until = [0.0, 0.0]  # bandwidth-limited transmitter free time (ms, float)
        self._timers: list[Timer] = []

    @property
    def scheduler(self) -> Scheduler:
        return self.network.scheduler

    def send(self, side: int, seg: Segment, on_sent: Callable[[], None] | None = None) -> None:
        if self.closed:
            return
        if seg.stream:
            self.pending_stream[side] += len(seg.data)
        link = self.network.links.get(self.key) or _NO_FAULTS
        if link.partitioned:
            return  # dropped on the floor; the sender does not know
        if link.bandwidth is None and link.delay_ms == 0 and seg.rdb is None:
            self._outbox[side].append((seg, on_sent))
            if not self._scheduled[side]:
                self._scheduled[side] = True
                self.scheduler.call_soon(lambda: self._flush(side))
            return
        now = float(self.scheduler.now_ms())
        start = max(now, self._busy_until[side])
        duration = (seg.size / link.bandwidth * 1000.0) if link.bandwidth else 0.0
        self._busy_until[side] = start + duration
        arrive = start + duration + link.delay_ms
        if seg.rdb is not None and link.bandwidth:
            self._schedule_progress(side, seg.rdb, start, duration)
        self._timers.append(
            self.scheduler.call_at(
                int(arrive + 0.999), lambda: self._deliver(side, [(seg, on_sent)])
            )
        )

    def _schedule_progress(
        self, side: int, transfer: RdbTransfer, start: float, duration: float
    ) -> None:
        steps = min(int(duration // 100), 1000)  # a progress tick every ~100 ms of transfer
        for i in range(1, steps):
            at = start + duration * i / steps
            done = int(transfer.wire_size * i / steps)
            self._timers.append(
                self.scheduler.call_at(
                    int(at), functools.partial(self._progress, side, done, transfer.wire_size)
                )
            )

    def _progress(self, side: int, done: int, total: int) -> None:
        if not self.closed and not (self.network.links.get(self.key) or _NO_FAULTS).partitioned:
            self.ends[1 - side].on_rdb_progress(done, total)

    def _flush(self, side: int) -> None:
        self._scheduled[side] = False
        batch, self._outbox[side] = self._outbox[side], []
        self._deliver(side, batch)

    def _deliver(self, side: int, batch: list[tuple[Segment, Callable[[], None] | None]]) -> None:
        # bytes written before a close still arrive (TCP delivers them before the FIN)
        if (self.network.links.get(self.key) or _NO_FAULTS).partitioned:
            for seg, _ in batch:
                if seg.stream:
                    self.pending_stream[side] -= len(seg.data)
            return
        receiver = self.ends[1 - side]
        segs = []
        for seg, on_sent in batch:
            if seg.stream:
                self.pending_stream[side] -= len(seg.data)
            if on_sent is not None:
                on_sent()
            segs.append(seg)
        if self.network.is_frozen(receiver.local):
            self.network.hold(receiver.local, lambda: self._receive(receiver, segs))
        else:
            self._receive(receiver, segs)

    def _receive(self, receiver: Endpoint, segs: list[Segment]) -> None:
        receiver.on_data(segs)

    def close(self, reset: bool = True) -> None:
        if self.closed:
            return
        self.closed = True
        for t in self._timers:
            t.cancel()
        self.network.connections.discard(self)
        self.network.links.pop(self.key, None)
        for end in self.ends:
            end._closed = True
        # both sides learn about it, each in its own event; a frozen reader learns it after
        # reading what had already arrived
        for end in self.ends:
            if self.network.is_frozen(end.local):
                self.network.hold(end.local, end.on_close)
            else:
                self.scheduler.call_soon(end.on_close)
        self.network.owners.pop(self.ends[0].local, None)


@dataclass
class Link:
    partitioned: bool = False
    delay_ms: int = 0
    bandwidth: float | None = None  # bytes per second


_NO_FAULTS = Link()


@dataclass
class Network:
    """Where engine nodes listen and how they reach each other.

    Faults are set per pair of *nodes* (their listening addresses): they apply to the
    connections open between them now and to those opened later.
    """

    scheduler: Scheduler
    listeners: dict[HostPort, Callable[[Endpoint], None]] = field(default_factory=dict)
    connections: set[Connection] = field(default_factory=set)
    links: dict[frozenset[HostPort], Link] = field(default_factory=dict)  # per connection
    node_links: dict[frozenset[HostPort], Link] = field(default_factory=dict)  # per node pair
    owners: dict[HostPort, HostPort] = field(default_factory=dict)  # ephemeral -> node
    frozen: dict[HostPort, list[Callable[[], None]]] = field(default_factory=dict)
    _next_port: int = 40000

    @staticmethod
    def key(host: str, port: int) -> HostPort:
        return (normalise_host(host), port)

    def pair_key(self, a: HostPort, b: HostPort) -> frozenset[HostPort]:
        return frozenset((a, b))

    def link(self, key: frozenset[HostPort]) -> Link:
        link = self.links.get(key)
        if link is None:
            link = self.links[key] = Link()
        return link

    def owner_of(self, hp: HostPort) -> HostPort:
        return self.owners.get(hp, hp)

    # ---------------------------------------------------------------- listening
    def listen(self, host: str, port: int, accept: Callable[[Endpoint], None]) -> None:
        self.listeners[self.key(host, port)] = accept

    def unlisten(self, host: str, port: int) -> None:
        self.listeners.pop(self.key(host, port), None)

    def connect(self, owner: HostPort, host: str, port: int) -> Endpoint | None:
        """Open a connection from node ``owner`` to ``host:port``; None when refused."""
        target = self.key(host, port)
        accept = self.listeners.get(target)
        if accept is None:
            return None
        self._next_port += 1
        local = (owner[0], self._next_port)
        self.owners[local] = owner
        conn = Connection(self, local, target)
        self.connections.add(conn)
        template = self.node_links.get(self.pair_key(owner, target))
        if template is not None:
            self.links[conn.key] = Link(template.partitioned, template.delay_ms, template.bandwidth)
        accept(conn.ends[1])
        return conn.ends[0]

    # ---------------------------------------------------------------- faults
    def _between(self, a: HostPort, b: HostPort) -> list[Connection]:
        out = []
        for conn in self.connections:
            owners = {self.owner_of(conn.ends[0].local), self.owner_of(conn.ends[1].local)}
            if owners == {a, b}:
                out.append(conn)
        return out

    def _update(self, a: HostPort, b: HostPort, apply: Callable[[Link], None]) -> None:
        a, b = self.key(*a), self.key(*b)
        apply(self.node_links.setdefault(self.pair_key(a, b), Link()))
        for conn in self._between(a, b):
            apply(self.link(conn.key))

    def partition(self, a: HostPort, b: HostPort, on: bool = True) -> None:
        """Silently drop traffic between two nodes (existing and new connections)."""

        def apply(link: Link) -> None:
            link.partitioned = on

        self._update(a, b, apply)

    def set_delay(self, a: HostPort, b: HostPort, delay_ms: int) -> None:
        def apply(link: Link) -> None:
            link.delay_ms = delay_ms

        self._update(a, b, apply)

    def set_bandwidth(self, a: HostPort, b: HostPort, bytes_per_sec: float | None) -> None:
        def apply(link: Link) -> None:
            link.bandwidth = bytes_per_sec

        self._update(a, b, apply)

    def disconnect(self, a: HostPort, b: HostPort) -> int:
        """Reset every connection between two nodes now; returns how many."""
        conns = self._between(self.key(*a), self.key(*b))
        for conn in conns:
            conn.close()
        return len(conns)

    # ---------------------------------------------------------------- frozen nodes (SIGSTOP)
    def freeze(self, node: HostPort) -> None:
        self.frozen.setdefault(node, [])

    def is_frozen(self, hp: HostPort) -> bool:
        return bool(self.frozen) and self.owner_of(hp) in self.frozen

    def hold(self, hp: HostPort, callback: Callable[[], None]) -> None:
        self.frozen[self.owner_of(hp)].append(callback)

    def thaw(self, node: HostPort) -> None:
        for cb in self.frozen.pop(node, []):
            self.scheduler.call_soon(cb)

    def close_all(self, node: HostPort) -> None:
        """The node died: every connection it had is reset."""
        for conn in list(self.connections):
            if node in (self.owner_of(conn.ends[0].local), self.owner_of(conn.ends[1].local)):
                conn.close()

    def describe(self) -> dict[str, Any]:
        return {
            "connections": len(self.connections),
            "listeners": sorted(f"{h}:{p}" for h, p in self.listeners),
        }
