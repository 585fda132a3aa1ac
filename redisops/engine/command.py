"""The contract between command handlers (the data plane) and a node (the replication plane).

A handler is a plain function ``handler(ctx, argv) -> Reply`` registered with a
:class:`CommandSpec`. It reads and writes ``ctx.keyspace`` in ``ctx.db``, raises
:class:`CommandError` for error replies, and tells the node what to propagate:

* ``ctx.dirty += n`` when it changed data. The node propagates the command's argv *as the
  client spelled it* (``set``, not ``SET``) only when ``dirty`` moved: a no-op write such
  as ``DEL missing`` propagates nothing.
* ``ctx.rewrite(argv)`` replaces what is propagated for this command (``SET k v PXAT t``
  for ``SET k v EX 10``); rewritten command names are upper-case, as Redis writes them.
* ``ctx.also_propagate(argv)`` emits an extra op right now (lazy-expiry ``DEL``, the
  ``SREM`` batches of ``SPOP k n``); together with ``ctx.prevent_propagation()`` it
  replaces the command entirely.
* ``ctx.signal_key_ready(key)`` after pushing to a list or zset, so blocked clients are
  served; ``ctx.touch(key)`` whenever a key is modified (WATCH), done by the keyspace
  helpers.
* ``ctx.force_propagate()`` (FLUSHDB/FLUSHALL, Redis's ``forceCommandPropagation()``):
  propagate the command even though ``dirty`` did not move (flushing an empty db).

Order within one command: every ``also_propagate`` op in the order emitted, then the
command itself (rewritten or not) if ``dirty`` moved and propagation was not prevented.
So a lazily expired key touched by ``APPEND`` gives ``DEL k`` then ``append k x``.

The node collects every op of one execution unit (a command, or a whole ``EXEC``), inserts
``SELECT`` when the db changes, wraps in ``MULTI``/``EXEC`` when there is more than one op,
and appends the bytes to the backlog and to every replica: that part is
``redisops.engine.node``.

Expiry policy (``ctx.mode``), as Redis 7.0's ``expireIfNeeded()``:

* ``"master"``: a logically expired key found by a lookup is deleted, counted in
  ``expired_keys`` and propagated as ``DEL key`` (``UNLINK`` with lazyfree-lazy-expire).
* ``"replica_client"``: a normal client on a replica; expired keys *look* missing but are
  not deleted (the master's DEL will come). A write lookup on a writable replica deletes
  them locally, without propagating.
* ``"replica_apply"``: the master's stream being applied on a replica: no expiry at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from redisops.engine.resp import Reply

if TYPE_CHECKING:  # pragma: no cover
    from redisops.engine.keyspace import Keyspace

Mode = Literal["master", "replica_client", "replica_apply"]

# Error texts Redis 7.0 uses verbatim (the engine must reproduce them exactly).
WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
NOT_INTEGER = "ERR value is not an integer or out of range"
NOT_FLOAT = "ERR value is not a valid float"
SYNTAX = "ERR syntax error"
OVERFLOW = "ERR increment or decrement would overflow"
NO_SUCH_KEY = "ERR no such key"
INDEX_OUT_OF_RANGE = "ERR index out of range"
INVALID_EXPIRE = "ERR invalid expire time in '{cmd}' command"
DB_INDEX = "ERR DB index is out of range"


class CommandError(Exception):
    """Raised by a handler; the node turns ``str(exc)`` into the ``-ERR ...`` reply."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def wrong_arity(name: str) -> CommandError:
    return CommandError(f"ERR wrong number of arguments for '{name}' command")


@dataclass
class Block:
    """Returned by a blocking handler (BLPOP...) when it cannot be served now.

    The node parks the client on ``keys`` until ``deadline_ms`` (0: forever). When one of
    the keys is signalled ready, the node calls the handler again with
    ``ctx.unblocking = True``; the handler then returns a reply or another ``Block``. On
    timeout the client gets ``timeout_reply``.
    """

    keys: list[bytes]
    deadline_ms: int
    timeout_reply: Reply = None


@dataclass
class EngineStats:
    """Counters shared by the data plane and the node (INFO stats)."""

    expired_keys: int = 0
    keyspace_hits: int = 0
    keyspace_misses: int = 0
    total_commands_processed: int = 0


class ExecContext:
    """What a handler sees. The node creates one per command (a plain slotted class: this
    is on the hot path of every command, so no dataclass machinery and no lists until a
    handler actually records something)."""

    __slots__ = (
        "_extra_ops",
        "_ready_keys",
        "_touched",
        "db",
        "dirty",
        "forced",
        "in_multi",
        "keyspace",
        "lazyfree_lazy_expire",
        "lazyfree_lazy_user_del",
        "mode",
        "now_ms",
        "propagate_self",
        "rewritten",
        "stats",
        "unblock_key",
        "unblocking",
    )

    def __init__(
        self,
        keyspace: Keyspace,
        db: int,
        now_ms: int,
        mode: Mode = "master",
        lazyfree_lazy_expire: bool = False,
        stats: EngineStats | None = None,
        unblocking: bool = False,
        in_multi: bool = False,
        lazyfree_lazy_user_del: bool = False,
        unblock_key: bytes | None = None,
    ) -> None:
        self.keyspace = keyspace
        self.db = db
        self.now_ms = now_ms
        self.mode: Mode = mode
        self.lazyfree_lazy_expire = lazyfree_lazy_expire
        self.stats = stats if stats is not None else EngineStats()
        self.unblocking = unblocking
        self.in_multi = in_multi  # inside MULTI/EXEC: blocking commands must not block
        self.lazyfree_lazy_user_del = lazyfree_lazy_user_del  # GETDEL propagates UNLINK
        # With ``unblocking``: the ready key being served (Redis serves a blocked client from
        # the key that became ready, not from its first non-empty key); None: scan them all.
        self.unblock_key = unblock_key
        # filled by the handler / keyspace helpers, read by the node
        self.dirty = 0
        self.rewritten: list[bytes] | None = None
        self.propagate_self = True
        self.forced = False  # propagate even if dirty did not move (see force_propagate)
        self._extra_ops: list[tuple[int, list[bytes]]] | None = None
        self._ready_keys: list[tuple[int, bytes]] | None = None
        self._touched: list[tuple[int, bytes]] | None = None

    @property
    def extra_ops(self) -> list[tuple[int, list[bytes]]]:
        return self._extra_ops if self._extra_ops is not None else []

    @property
    def ready_keys(self) -> list[tuple[int, bytes]]:
        return self._ready_keys if self._ready_keys is not None else []

    @property
    def touched(self) -> list[tuple[int, bytes]]:
        return self._touched if self._touched is not None else []

    def rewrite(self, argv: list[bytes]) -> None:
        self.rewritten = argv

    def also_propagate(self, argv: list[bytes], db: int | None = None) -> None:
        op = (self.db if db is None else db, argv)
        if self._extra_ops is None:
            self._extra_ops = [op]
        else:
            self._extra_ops.append(op)

    def prevent_propagation(self) -> None:
        self.propagate_self = False

    def force_propagate(self) -> None:
        self.forced = True

    def signal_key_ready(self, key: bytes, db: int | None = None) -> None:
        item = (self.db if db is None else db, key)
        if self._ready_keys is None:
            self._ready_keys = [item]
        else:
            self._ready_keys.append(item)

    def touch(self, key: bytes, db: int | None = None) -> None:
        item = (self.db if db is None else db, key)
        if self._touched is None:
            self._touched = [item]
        else:
            self._touched.append(item)


Handler = Callable[[ExecContext, list[bytes]], "Reply | Block"]

# Flags, as in Redis's command table (lower-case names).
#   write, readonly, denyoom, admin, pubsub, noscript, blocking, loading, stale, fast,
#   no_multi, may_replicate, touches_arbitrary_keys, no_propagate
Flag = str


@dataclass(frozen=True)
class CommandSpec:
    """One command. ``arity`` follows Redis: N exact, -N at least N (name included).

    ``first_key``/``last_key``/``key_step`` locate key arguments (``last_key=-1``: up to
    the last argument), used for WATCH and for ``COMMAND GETKEYS``-like needs.
    """

    name: str
    arity: int
    flags: frozenset[Flag]
    handler: Handler
    first_key: int = 0
    last_key: int = 0
    key_step: int = 0

    def is_write(self) -> bool:
        return "write" in self.flags

    def keys(self, argv: list[bytes]) -> list[bytes]:
        if self.first_key <= 0 or self.first_key >= len(argv):
            return []
        last = self.last_key if self.last_key >= 0 else len(argv) + self.last_key
        step = self.key_step or 1
        return argv[self.first_key : last + 1 : step]


def spec(
    name: str,
    arity: int,
    flags: str,
    first_key: int = 0,
    last_key: int = 0,
    key_step: int = 0,
) -> Callable[[Handler], Handler]:
    """Decorator registering a handler in :data:`COMMANDS`.

    >>> @spec("echo2", 2, "fast")
    ... def echo2(ctx, argv):
    ...     return argv[1]
    >>> COMMANDS["echo2"].arity
    2
    >>> _ = COMMANDS.pop("echo2")
    """

    def register(handler: Handler) -> Handler:
        COMMANDS[name] = CommandSpec(
            name=name,
            arity=arity,
            flags=frozenset(flags.split()) if flags else frozenset(),
            handler=handler,
            first_key=first_key,
            last_key=last_key,
            key_step=key_step,
        )
        return handler

    return register


#: The command table. Data-plane modules register into it on import; the node adds the
#: server/replication commands (INFO, ROLE, REPLICAOF, PSYNC, ...).
COMMANDS: dict[str, CommandSpec] = {}
