"""Small state types shared by the node and its replication and server-command modules."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from redisops.engine.clock import Timer
from redisops.engine.rdb import RdbImage
from redisops.engine.resp import encode_command

NULL_REPLID = "0" * 40
REDIS_VERSION = "7.0.15"

PING_ARGV = [b"ping"]
PING_BYTES = encode_command(PING_ARGV)  # 14 bytes, lower case (§3.4)
GETACK_ARGV = [b"REPLCONF", b"GETACK", b"*"]
GETACK_BYTES = encode_command(GETACK_ARGV)  # 37 bytes
MULTI_ARGV = [b"MULTI"]
EXEC_ARGV = [b"EXEC"]
MULTI_BYTES = encode_command(MULTI_ARGV)  # 15 bytes
EXEC_BYTES = encode_command(EXEC_ARGV)  # 14 bytes


class ReplState(IntEnum):
    """Replica-side link state (``REPL_STATE_*``)."""

    NONE = 0
    CONNECT = 1
    CONNECTING = 2
    RECEIVE_PING_REPLY = 3
    SEND_HANDSHAKE = 4
    RECEIVE_AUTH_REPLY = 5
    RECEIVE_PORT_REPLY = 6
    RECEIVE_IP_REPLY = 7
    RECEIVE_CAPA_REPLY = 8
    SEND_PSYNC = 9
    RECEIVE_PSYNC_REPLY = 10
    TRANSFER = 11
    CONNECTED = 12

    @property
    def role_name(self) -> str:
        """The state as ROLE prints it (§7)."""
        if self is ReplState.NONE:
            return "none"
        if self is ReplState.CONNECT:
            return "connect"
        if self is ReplState.CONNECTING:
            return "connecting"
        if self is ReplState.TRANSFER:
            return "sync"
        if self is ReplState.CONNECTED:
            return "connected"
        return "handshake"

    @property
    def in_handshake(self) -> bool:
        return ReplState.RECEIVE_PING_REPLY <= self <= ReplState.RECEIVE_PSYNC_REPLY


class Failover(IntEnum):
    NO_FAILOVER = 0
    WAIT_FOR_SYNC = 1
    IN_PROGRESS = 2

    @property
    def info_name(self) -> str:
        return ("no-failover", "waiting-for-sync", "failover-in-progress")[self]


@dataclass
class CachedMaster:
    """What a replica remembers of its master, to PSYNC with later."""

    replid: str
    reploff: int
    db: int = 0


@dataclass
class EngineTiming:
    """How long the slow things take. Defaults are typical of a server-class host; the
    planner replaces them with measurements (``--bandwidth``, ``latest_fork_usec``...)."""

    fork_ms_per_gb: float = 12.0  # page-table copy at fork
    rdb_produce_bps: float = 400e6  # serialisation speed of the BGSAVE child
    disk_write_bps: float = 500e6
    rdb_load_bps: float = 300e6  # replica parsing the RDB
    # replica loading, as measured on redis-server 7.0 (bench/estimates.py): a cost per key
    # and one per byte of the dataset rebuilt in memory
    load_keys_per_s: float = 2.5e6
    load_dataset_bps: float = 500e6


@dataclass
class Storage:
    """The node's disk: survives kill and restart (owned by the lab or the simulation)."""

    rdb: RdbImage | None = None
    config_file: str | None = None  # CONFIG REWRITE needs one, as in Redis
    rewritten: list[str] | None = None  # what the last CONFIG REWRITE wrote
    #: told of every RDB saved to "disk" (the lab server writes it as a file; the engine
    #: itself does no I/O)
    on_save: Callable[[RdbImage], None] | None = None
    #: told of every CONFIG REWRITE (the lab server writes the node's config file)
    on_rewrite: Callable[[list[str]], None] | None = None

    def store(self, image: RdbImage) -> None:
        self.rdb = image
        if self.on_save is not None:
            self.on_save(image)

    def rewrite(self, lines: list[str]) -> None:
        self.rewritten = lines
        if self.on_rewrite is not None:
            self.on_rewrite(lines)


@dataclass
class Bgsave:
    """A BGSAVE child in flight."""

    kind: str  # "disk" | "socket"
    started_ms: int
    image: RdbImage
    for_replication: bool
    timer: Timer | None = None


def new_replid(rng: random.Random) -> str:
    """40 lower-case hex characters, like ``getRandomHexChars()``."""
    return f"{rng.getrandbits(160):040x}"
