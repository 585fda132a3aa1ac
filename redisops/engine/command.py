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
from dataclasses import dataclass, field
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


@dataclass
class ExecContext:
    """What a handler sees. The node creates one per command (or reuses one per unit)."""

    keyspace: Keyspace
    db: int
    now_ms: int
    mode: Mode = "master"
    lazyfree_lazy_expire: bool = False
    stats: EngineStats = field(default_factory=EngineStats)
    unblocking: bool = False
    in_multi: bool = False  # inside MULTI/EXEC: blocking commands must not block
    # filled by the handler / keyspace helpers, read by the node
    dirty: int = 0
    rewritten: list[bytes] | None = None
    propagate_self: bool = True
    extra_ops: list[tuple[int, list[bytes]]] = field(default_factory=list)
    ready_keys: list[tuple[int, bytes]] = field(default_factory=list)
    touched: list[tuple[int, bytes]] = field(default_factory=list)

    def rewrite(self, argv: list[bytes]) -> None:
        self.rewritten = argv

    def also_propagate(self, argv: list[bytes], db: int | None = None) -> None:
        self.extra_ops.append((self.db if db is None else db, argv))

    def prevent_propagation(self) -> None:
        self.propagate_self = False

    def signal_key_ready(self, key: bytes, db: int | None = None) -> None:
        self.ready_keys.append((self.db if db is None else db, key))

    def touch(self, key: bytes, db: int | None = None) -> None:
        self.touched.append((self.db if db is None else db, key))


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
