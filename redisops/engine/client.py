"""Client state on a node: a normal client, a replica (master side) or the master link.

Mirrors the parts of Redis's ``client`` struct that replication and the lab observe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from redisops.engine.resp import RequestParser

if TYPE_CHECKING:  # pragma: no cover
    from redisops.engine.command import CommandSpec
    from redisops.engine.network import Conn


class SlaveState(IntEnum):
    """A replica's state as its master sees it (``SLAVE_STATE_*``)."""

    WAIT_BGSAVE_START = 6
    WAIT_BGSAVE_END = 7
    SEND_BULK = 8
    ONLINE = 9

    @property
    def info_name(self) -> str:
        if self in (SlaveState.WAIT_BGSAVE_START, SlaveState.WAIT_BGSAVE_END):
            return "wait_bgsave"
        return "send_bulk" if self is SlaveState.SEND_BULK else "online"


@dataclass
class Blocked:
    """A client parked on keys (BLPOP...), on WAIT, or postponed by CLIENT PAUSE."""

    kind: str  # "keys" | "wait" | "pause"
    argv: list[bytes]
    spec: CommandSpec | None = None
    keys: list[bytes] = field(default_factory=list)
    db: int = 0
    deadline_ms: int = 0
    timeout_reply: Any = None
    wait_offset: int = 0
    wait_replicas: int = 0


class Client:
    """One connection to a node."""

    __slots__ = (
        "_repl_state",
        "_start_stream_on_ack",
        "ack_off",
        "ack_time_ms",
        "announced_ip",
        "authenticated",
        "blocked",
        "capa",
        "closed",
        "conn",
        "created_ms",
        "db",
        "dirty_cas",
        "id",
        "is_master",
        "is_replica",
        "last_interaction_ms",
        "listening_port",
        "multi",
        "multi_error",
        "name",
        "obuf_soft_since_ms",
        "out",
        "out_stream",
        "parser",
        "pending",
        "psync_initial_offset",
        "repl_last_partial_write_ms",
        "resp",
        "stream_hook",
        "sync_ready_offset",
        "username",
        "watched",
    )

    def __init__(self, cid: int, conn: Conn, now_ms: int) -> None:
        self.id = cid
        self.conn = conn
        self.db = 0
        self.name = ""
        self.username = "default"
        self.parser = RequestParser()
        self.multi: list[tuple[CommandSpec, list[bytes]]] | None = None
        self.multi_error = False
        self.watched: set[tuple[int, bytes]] = set()
        self.dirty_cas = False
        self.authenticated = False
        self.resp = 2  # the protocol its replies use: HELLO 3 switches, RESET goes back
        self.blocked: Blocked | None = None
        self.pending: list[list[bytes]] = []  # commands received while blocked
        self.closed = False
        self.created_ms = now_ms
        self.last_interaction_ms = now_ms
        self.is_master = False
        self.is_replica = False
        # replica bookkeeping (master side)
        # Called before a change of repl_state / start_stream_on_ack: the master feeds
        # what it propagated so far, so it goes to the replicas as they were then.
        self.stream_hook: Callable[[], None] | None = None
        self._repl_state: SlaveState | None = None
        self.capa: set[str] = set()
        self.listening_port = 0
        self.announced_ip: str | None = None
        self.ack_off = 0
        self.ack_time_ms = now_ms
        self.psync_initial_offset = 0
        self._start_stream_on_ack = False
        self.obuf_soft_since_ms = 0
        self.repl_last_partial_write_ms = now_ms
        self.sync_ready_offset = 0
        # written at the end of the event-loop iteration (handleClientsWithPendingWrites)
        self.out: list[bytes] = []  # replies
        # replication stream items queued for this replica (the master flushes every
        # replica with a non-empty queue at the end of the iteration)
        self.out_stream: list[tuple[bytes, list[list[bytes]] | None]] = []

    @property
    def repl_state(self) -> SlaveState | None:
        return self._repl_state

    @repl_state.setter
    def repl_state(self, value: SlaveState | None) -> None:
        if self.stream_hook is not None:
            self.stream_hook()
        self._repl_state = value

    @property
    def start_stream_on_ack(self) -> bool:
        return self._start_stream_on_ack

    @start_stream_on_ack.setter
    def start_stream_on_ack(self, value: bool) -> None:
        if self.stream_hook is not None:
            self.stream_hook()
        self._start_stream_on_ack = value

    @property
    def out_stream_bytes(self) -> int:
        """Stream bytes queued here and not yet written (a few items: the master queues
        one per event-loop turn)."""
        return sum(len(item[0]) for item in self.out_stream)

    def is_gone(self) -> bool:
        """Closed (a method, not the attribute: callers re-check it after running commands)."""
        return self.closed

    @property
    def addr(self) -> str:
        ip = self.conn.peer_ip
        return f"[{ip}]:{self.conn.peer_port}" if ":" in ip else f"{ip}:{self.conn.peer_port}"

    @property
    def replica_ip(self) -> str:
        return self.announced_ip or self.conn.peer_ip
