"""What differs between the servers redisops drives: Redis 6.2 and 7.x, and Valkey.

Every version-aware rule lives here, stated once, so the probe, the planners and the
engine's predictions cannot disagree about it. Pure: no I/O.

Tested with real binaries (``tests/servers.py`` fetches them): Redis 6.2.14, Redis 7.0.15
and Valkey 8.1.8. Facts marked *measured* were observed on those binaries here.

* **Identity.** Valkey answers ``redis_version:7.2.4`` (what clients check) plus
  ``server_name:valkey`` and ``valkey_version:8.1.8``; Redis has neither field.
* **RDB format.** A full sync ships an RDB; a server refuses a format newer than the one
  it writes (*measured*: "Can't handle RDB format version 10" on 6.2, 11 on 7.0, 12 on
  Valkey 8.1 even with ``rdb-version-check relaxed``), and the replica retries the full
  sync forever. Partial resyncs ship no RDB, so they work across formats (*measured*:
  Redis 7.0 continues partially under a promoted Valkey 8.1 replica).
* **Commands.** ``CLIENT PAUSE ... WRITE``, ``CLIENT UNPAUSE`` and ``FAILOVER`` exist since
  6.2. ``INFO a b`` (several sections) and ``CONFIG GET a b`` (several parameters) only
  since 7.0: 6.2 answers "syntax error" / "wrong number of arguments".
* **Configuration.** ``enable-debug-command`` exists since 7.0 (6.2 has DEBUG always on and
  refuses to start with the directive). Valkey 8 adds ``dual-channel-replication-enabled``
  and defaults ``repl-backlog-size`` to 10 MB.
* **Replication buffers.** Up to 6.2 every replica has its own output buffer (N replicas
  in a full sync hold N copies of the stream); 7.0 shares one replication buffer with the
  backlog, and since 7.0.10 a replica's hard output-buffer limit is at least the backlog
  size. Valkey keeps the 7.x behaviour.
* **Dual-channel full sync (Valkey 8+).** With ``dual-channel-replication-enabled yes`` on
  both sides, the RDB goes over a second connection while the replica itself buffers the
  stream: the master's output buffer for that replica stays small.

>>> s = identify({"redis_version": "7.2.4", "server_name": "valkey", "valkey_version": "8.1.8"})
>>> str(s), s.rdb_format, s.multi_section_info
('valkey 8.1.8', 11, True)
>>> r = identify({"redis_version": "6.2.14"})
>>> str(r), r.rdb_format, r.multi_section_info, r.has_failover
('redis 6.2.14', 9, False, True)
>>> unloadable(r, identify({"redis_version": "7.0.15"}))
'redis 6.2.14 reads RDB formats up to 9 and redis 7.0.15 writes 10'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

#: RDB format version each Redis release line writes (and the newest it loads).
REDIS_RDB_FORMATS = {
    (2, 8): 6,
    (3, 0): 6,
    (3, 2): 8,
    (4, 0): 8,
    (5, 0): 9,
    (6, 0): 9,
    (6, 2): 9,
    (7, 0): 10,
    (7, 2): 11,
    (7, 4): 12,
    (8, 0): 12,
}

#: The same for Valkey (7.2 forked from Redis 7.2.4; 8.x kept format 11 on purpose so
#: that Redis 7.2 can still replicate from it; 9.0 moved to 80, leaving 12-79 to Redis).
VALKEY_RDB_FORMATS = {
    (7, 2): 11,
    (8, 0): 11,
    (8, 1): 11,
    (9, 0): 80,
}

#: Formats Valkey 9+ calls "foreign" (written by Redis 7.4 and later): loaded only with
#: ``rdb-version-check relaxed``. Valkey 8.1.8 refuses them even then (measured).
FOREIGN_RDB_FORMATS = range(12, 80)

_VERSION_LINE = re.compile(r"^(Redis|Valkey) server v=(\d+\.\d+\.\d+)", re.IGNORECASE)


def _release(version: str) -> tuple[int, int, int] | None:
    """``"7.0.15"`` -> ``(7, 0, 15)``; None for anything else.

    >>> _release("6.2.14"), _release("7.2"), _release("unstable")
    ((6, 2, 14), (7, 2, 0), None)
    """
    parts = version.split(".")
    try:
        nums = [int(p) for p in parts[:3]]
    except ValueError:
        return None
    if len(nums) < 2:
        return None
    return (nums[0], nums[1], nums[2] if len(nums) > 2 else 0)


def _lookup(table: Mapping[tuple[int, int], int], release: tuple[int, int, int]) -> int | None:
    best: int | None = None
    for key, fmt in sorted(table.items()):
        if key <= release[:2]:
            best = fmt
    return best


@dataclass(frozen=True, slots=True)
class Server:
    """One server build as it identifies itself: product, its own version, and the
    ``redis_version`` it reports (the same for Redis; 7.2.4 for every Valkey so far)."""

    product: str  # "redis" | "valkey"
    version: str
    redis_version: str

    def __str__(self) -> str:
        return f"{self.product} {self.version}"

    @property
    def release(self) -> tuple[int, int, int] | None:
        return _release(self.version)

    @property
    def is_valkey(self) -> bool:
        return self.product == "valkey"

    def _redis_at_least(self, major: int, minor: int, patch: int = 0) -> bool:
        """Valkey forked from Redis 7.2.4 and has everything Redis had up to there."""
        if self.is_valkey:
            return (major, minor, patch) <= (7, 2, 4)
        rel = self.release
        return rel is not None and rel >= (major, minor, patch)

    @property
    def rdb_format(self) -> int | None:
        """The RDB format version it writes (None for a version this table does not know)."""
        rel = self.release
        if rel is None:
            return None
        return _lookup(VALKEY_RDB_FORMATS if self.is_valkey else REDIS_RDB_FORMATS, rel)

    # -- commands and protocol --------------------------------------------------------
    @property
    def multi_section_info(self) -> bool:
        """``INFO server replication`` (several sections in one command): 7.0+."""
        return self._redis_at_least(7, 0)

    @property
    def multi_config_get(self) -> bool:
        """``CONFIG GET a b`` (several parameters in one command): 7.0+."""
        return self._redis_at_least(7, 0)

    @property
    def has_failover(self) -> bool:
        """The ``FAILOVER`` command (coordinated switchover by the server): 6.2+."""
        return self._redis_at_least(6, 2)

    @property
    def has_pause_write(self) -> bool:
        """``CLIENT PAUSE <ms> WRITE`` and ``CLIENT UNPAUSE``: 6.2+."""
        return self._redis_at_least(6, 2)

    @property
    def has_enable_debug_command(self) -> bool:
        """The ``enable-debug-command`` directive (DEBUG is off by default): 7.0+."""
        return self._redis_at_least(7, 0)

    # -- replication ----------------------------------------------------------------------
    @property
    def shared_replication_buffer(self) -> bool:
        """7.0+: replicas share one buffer with the backlog; before, one copy per replica."""
        return self._redis_at_least(7, 0)

    @property
    def obuf_hard_limit_at_least_backlog(self) -> bool:
        """7.0.10+: a replica's hard output-buffer limit is raised to ``repl-backlog-size``."""
        return self._redis_at_least(7, 0, 10)

    @property
    def has_dual_channel(self) -> bool:
        """Valkey 8.0+: ``dual-channel-replication-enabled`` (RDB on a second connection)."""
        rel = self.release
        return self.is_valkey and rel is not None and rel >= (8, 0, 0)


def identify(info: Mapping[str, str]) -> Server | None:
    """The server behind an INFO reply (``# Server`` section), or None without one."""
    redis_version = info.get("redis_version")
    if not redis_version:
        return None
    if info.get("server_name") == "valkey" or "valkey_version" in info:
        return Server("valkey", info.get("valkey_version", redis_version), redis_version)
    return Server("redis", redis_version, redis_version)


def rdb_format_of(product: str, version: str) -> int | None:
    """The RDB format ``product`` (``redis`` or ``valkey``) ``version`` writes.

    >>> rdb_format_of("valkey", "8.1.8"), rdb_format_of("redis", "8.0.2")
    (11, 12)
    """
    return Server(product.lower(), version, version).rdb_format


def can_load_rdb(version: str, rdb_format: int, product: str = "redis") -> bool | None:
    """Whether ``product`` ``version`` loads an RDB file of format ``rdb_format``, for a
    binary known only by its version (``redis-check-rdb -v``, ``redis-server --version``);
    None when the version is unknown. With a node at hand, use its :class:`Server`.

    >>> can_load_rdb("7.0.15", 10), can_load_rdb("7.0.15", 11), can_load_rdb("6.2.14", 10)
    (True, False, False)
    >>> can_load_rdb("8.1.8", 11, "valkey"), can_load_rdb("?", 9)
    (True, None)
    """
    return can_load(Server(product.lower(), version, version), rdb_format)


def from_version_output(text: str) -> Server | None:
    """The server from ``redis-server --version`` / ``valkey-server --version``.

    >>> str(from_version_output("Valkey server v=8.1.8 sha=00000000:1 malloc=libc bits=64"))
    'valkey 8.1.8'
    >>> from_version_output("Redis server v=6.2.14 sha=40305114:0").redis_version
    '6.2.14'
    """
    m = _VERSION_LINE.match(text.strip())
    if m is None:
        return None
    product, version = m.group(1).lower(), m.group(2)
    # Valkey 7.2 - 8.x all report this to clients (INFO redis_version, HELLO)
    return Server(product, version, version if product == "redis" else "7.2.4")


def can_load(loader: Server, fmt: int, *, relaxed: bool = False) -> bool | None:
    """Whether ``loader`` can load an RDB of format ``fmt`` (None: unknown version).

    ``relaxed`` is Valkey's ``rdb-version-check relaxed``: from 9.0 it lets Valkey try
    Redis's own formats (12-79) as long as they hold nothing it does not know.

    >>> valkey9 = Server("valkey", "9.0.0", "7.2.4")
    >>> can_load(valkey9, 12), can_load(valkey9, 12, relaxed=True), can_load(valkey9, 80)
    (False, True, True)
    """
    own = loader.rdb_format
    if own is None:
        return None
    if loader.is_valkey and fmt in FOREIGN_RDB_FORMATS and fmt < own:
        return relaxed
    return fmt <= own


def unloadable(loader: Server, writer: Server, *, relaxed: bool = False) -> str | None:
    """Why ``loader`` cannot take a full sync (an RDB) from ``writer``; None when it can
    or when either version is unknown (redisops does not refuse what it cannot judge)."""
    fmt = writer.rdb_format
    if fmt is None:
        return None
    ok = can_load(loader, fmt, relaxed=relaxed)
    if ok is None or ok:
        return None
    return f"{loader} reads RDB formats up to {loader.rdb_format} and {writer} writes {fmt}"


def partial_only_note(node: Server, master: Server) -> str | None:
    """When ``node`` can follow ``master`` only through partial resyncs (it could not
    load ``master``'s RDB), a sentence saying so and what it implies; None otherwise."""
    why = unloadable(node, master)
    if why is None:
        return None
    return (
        f"{why}: it can follow {master} only by partial resync; if it ever needs a full "
        f"sync (backlog overrun, restart without its RDB) it retries the sync in a loop "
        f"until it is upgraded"
    )
