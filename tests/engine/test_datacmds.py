"""Data commands run through ``COMMANDS`` by a tiny in-test runner (no node, no network).

The expectations here were checked against redis-server 7.0.15 (the differential suite
``test_data_vs_redis.py`` re-checks the same behaviours live); these tests keep them
pinned when no server is installed.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

import redisops.engine.datacmds  # noqa: F401  (registers the handlers)
from redisops.engine.command import COMMANDS, Block, CommandError, EngineStats, ExecContext, Mode
from redisops.engine.keyspace import Keyspace
from redisops.engine.resp import (
    NIL_ARRAY,
    OK,
    ErrorReply,
    Reply,
    ReplyParser,
    SimpleString,
    encode_reply,
)

Arg = bytes | str | int | float


def argv_of(args: tuple[Arg, ...] | list[Arg]) -> list[bytes]:
    out = []
    for a in args:
        if isinstance(a, bytes):
            out.append(a)
        elif isinstance(a, str):
            out.append(a.encode())
        else:
            out.append(str(a).encode())
    return out


def wire(reply: Reply | Block, resp: int = 2) -> Reply | Block:
    """A handler's reply as a client speaking ``resp`` reads it: encoded, then parsed (a
    ``Block`` is returned as is). RESP2 turns doubles into bulk strings and maps and sets
    into arrays; RESP3 keeps them typed and nests score pairs."""
    if isinstance(reply, Block):
        return reply
    parser = ReplyParser()
    parser.feed(encode_reply(reply, resp))
    (value,) = parser.replies()
    return value


class Runner:
    """Executes commands like a node would, minus replication framing.

    ``execute()`` returns what the handler returned; calling the runner returns the reply
    as a client speaking ``resp`` (2 unless changed) receives it.

    ``ops`` are what one command propagates: its ``also_propagate`` ops, then the command
    itself (rewritten or not) when it dirtied the dataset (or forced propagation) and did
    not prevent it. The node would add SELECT/MULTI/EXEC around them.
    """

    def __init__(
        self,
        now_ms: int | Callable[[], int] = 1_700_000_000_000,
        mode: Mode = "master",
        databases: int = 16,
    ) -> None:
        self.keyspace = Keyspace(databases)
        self.stats = EngineStats()
        self.db = 0
        self.mode: Mode = mode
        self.lazyfree_lazy_expire = False
        self.lazyfree_lazy_user_del = False
        self.in_multi = False
        self._clock = now_ms
        self.last: ExecContext | None = None
        self.last_ops: list[list[bytes]] = []
        self.resp = 2

    @property
    def now_ms(self) -> int:
        return self._clock() if callable(self._clock) else self._clock

    @now_ms.setter
    def now_ms(self, value: int) -> None:
        self._clock = value

    def context(self, **overrides: object) -> ExecContext:
        ctx = ExecContext(
            self.keyspace,
            self.db,
            self.now_ms,
            mode=self.mode,
            lazyfree_lazy_expire=self.lazyfree_lazy_expire,
            lazyfree_lazy_user_del=self.lazyfree_lazy_user_del,
            stats=self.stats,
            in_multi=self.in_multi,
        )
        for name, value in overrides.items():
            setattr(ctx, name, value)
        return ctx

    def execute(self, argv: list[bytes], **overrides: object) -> Reply | Block:
        name = argv[0].decode().lower()
        if name == "select":  # the node's command; the runner only needs the db switch
            self.db = int(argv[1])
            self.last_ops = []
            return OK
        spec = COMMANDS[name]
        if (spec.arity > 0 and len(argv) != spec.arity) or len(argv) < -spec.arity:
            self.last_ops = []
            return ErrorReply(f"ERR wrong number of arguments for '{name}' command")
        ctx = self.context(**overrides)
        try:
            reply: Reply | Block = spec.handler(ctx, argv)
        except CommandError as exc:
            reply = ErrorReply(exc.message)
        ops = [op for _, op in ctx.extra_ops]
        if (ctx.dirty or ctx.forced) and ctx.propagate_self:
            ops.append(ctx.rewritten if ctx.rewritten is not None else argv)
        self.last = ctx
        self.last_ops = ops
        return reply

    def __call__(self, *args: Arg) -> Reply | Block:
        return wire(self.execute(argv_of(args)), self.resp)


@pytest.fixture
def r() -> Runner:
    return Runner()


def ops(*commands: tuple[Arg, ...]) -> list[list[bytes]]:
    return [argv_of(c) for c in commands]


def collection(reply: object) -> list[bytes]:
    """An array reply of bulk strings, typed for the assertions."""
    assert isinstance(reply, list) and all(isinstance(x, bytes) for x in reply)
    return reply


# ----------------------------------------------------------------------------- strings


def test_set_get_plain(r: Runner) -> None:
    assert r("set", "k", "v") == OK
    assert r.last_ops == ops(("set", "k", "v"))
    assert r("GET", "k") == b"v"
    assert r.last_ops == []
    assert r("get", "missing") is None
    assert (r.stats.keyspace_hits, r.stats.keyspace_misses) == (1, 1)


def test_plain_set_touches_the_key_for_watch(r: Runner) -> None:
    r("set", "k", "v")
    assert r.last is not None and r.last.touched == [(0, b"k")]
    r("get", "k")
    assert r.last.touched == []


def test_set_with_relative_expire_propagates_pxat(r: Runner) -> None:
    now = r.now_ms
    assert r("set", "k", "v", "EX", 10) == OK
    assert r.last_ops == ops(("SET", "k", "v", "PXAT", now + 10_000))
    assert r("set", "k", "v", "nx", "px", 5) is None
    assert r.last_ops == []
    assert r("set", "k", "w", "xx", "get", "pxat", now + 99) == b"v"
    assert r.last_ops == ops(("SET", "k", "w", "PXAT", now + 99))
    assert r("pttl", "k") == 99


def test_set_get_without_expire_drops_get_tokens(r: Runner) -> None:
    r("set", "k", "v")
    assert r("set", "k", "w", "GET", "xx", "get") == b"v"
    assert r.last_ops == ops(("set", "k", "w", "xx"))


def test_set_errors(r: Runner) -> None:
    syntax = ErrorReply("ERR syntax error")
    assert r("set", "k", "v", "nx", "xx") == syntax
    assert r("set", "k", "v", "ex") == syntax
    assert r("set", "k", "v", "ex", 1, "px", 1) == syntax
    assert r("set", "k", "v", "keepttl", "ex", 1) == syntax
    assert r("set", "k", "v", "ex", "x") == ErrorReply(
        "ERR value is not an integer or out of range"
    )
    assert r("set", "k", "v", "ex", 0) == ErrorReply("ERR invalid expire time in 'set' command")
    assert r("set", "k", "v", "px", -5) == ErrorReply("ERR invalid expire time in 'set' command")
    assert r("setex", "k", 0, "v") == ErrorReply("ERR invalid expire time in 'setex' command")
    r("lpush", "l", "x")
    assert r("set", "l", "v", "get") == ErrorReply(
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    )


def test_setex_psetex_getset(r: Runner) -> None:
    now = r.now_ms
    assert r("setex", "a", 5, "1") == OK
    assert r.last_ops == ops(("SET", "a", "1", "PXAT", now + 5000))
    assert r("psetex", "b", 5, "1") == OK
    assert r.last_ops == ops(("SET", "b", "1", "PXAT", now + 5))
    assert r("getset", "a", "2") == b"1"
    assert r.last_ops == ops(("SET", "a", "2"))
    assert r("ttl", "a") == -1
    assert r("setnx", "a", "3") == 0
    assert r("setnx", "c", "3") == 1


def test_getex_and_getdel(r: Runner) -> None:
    now = r.now_ms
    r("set", "k", "v")
    assert r("getex", "k") == b"v"
    assert r.last_ops == []
    assert r("getex", "k", "ex", 100) == b"v"
    assert r.last_ops == ops(("PEXPIREAT", "k", now + 100_000))
    assert r("getex", "k", "persist") == b"v"
    assert r.last_ops == ops(("PERSIST", "k"))
    assert r("getex", "k", "persist") == b"v"
    assert r.last_ops == []
    assert r("getex", "k", "pxat", now - 1) == b"v"
    assert r.last_ops == ops(("DEL", "k"))
    assert r("getex", "missing", "ex", "bad") is None
    r("set", "k", "v")
    assert r("getex", "k", "ex", "bad") == ErrorReply("ERR value is not an integer or out of range")
    assert r("getex", "k", "nx") == ErrorReply("ERR syntax error")
    r.lazyfree_lazy_user_del = True
    assert r("getdel", "k") == b"v"
    assert r.last_ops == ops(("UNLINK", "k"))
    assert r("getdel", "k") is None
    assert r.last_ops == []


def test_incr_family(r: Runner) -> None:
    assert r("incr", "n") == 1
    assert r("incrby", "n", 10) == 11
    assert r("decrby", "n", 20) == -9
    assert r("decr", "n") == -10
    r("set", "n", 2**63 - 1)
    assert r("incr", "n") == ErrorReply("ERR increment or decrement would overflow")
    assert r("decrby", "n", -(2**63)) == ErrorReply("ERR decrement would overflow")
    r("set", "s", " 1")
    assert r("incr", "s") == ErrorReply("ERR value is not an integer or out of range")
    r("set", "t", "5", "ex", 100)
    r("incr", "t")
    assert r("ttl", "t") == 100  # INCR keeps the TTL


def test_incrbyfloat_uses_long_double_and_propagates_set_keepttl(r: Runner) -> None:
    assert r("incrbyfloat", "f", "0.1") == b"0.1"
    assert r.last_ops == ops(("SET", "f", "0.1", "KEEPTTL"))
    assert r("incrbyfloat", "f", "0.2") == b"0.3"
    assert r("incrbyfloat", "f", "1e3") == b"1000.29999999999999999"  # as Redis prints it
    assert r("incrbyfloat", "f", "-1000.3") == b"0"
    r("set", "g", "10.50")
    assert r("incrbyfloat", "g", "0.1") == b"10.6"
    assert r("incrbyfloat", "g", "inf") == ErrorReply("ERR increment would produce NaN or Infinity")
    assert r("incrbyfloat", "g", "x") == ErrorReply("ERR value is not a valid float")
    assert r("incrbyfloat", "g", " 1") == ErrorReply("ERR value is not a valid float")


def test_append_strlen_ranges(r: Runner) -> None:
    assert r("append", "s", "hello") == 5
    assert r("append", "s", " world") == 11
    assert r("strlen", "s") == 11
    assert r("getrange", "s", 0, 4) == b"hello"
    assert r("getrange", "s", -5, -1) == b"world"
    assert r("getrange", "s", 5, 1) == b""
    assert r("getrange", "missing", 0, -1) == b""
    assert r("setrange", "s", 6, "W") == 11
    assert r("get", "s") == b"hello World"
    assert r("setrange", "z", 3, "x") == 4
    assert r("get", "z") == b"\0\0\0x"
    assert r("setrange", "z", 1, "") == 4
    assert r.last_ops == []
    assert r("setrange", "z", -1, "x") == ErrorReply("ERR offset is out of range")


def test_mget_mset_msetnx(r: Runner) -> None:
    assert r("mset", "a", 1, "b", 2) == OK
    assert r.last is not None and r.last.dirty == 2
    assert r("mset", "a", 1, "b") == ErrorReply("ERR wrong number of arguments for 'mset' command")
    r("lpush", "l", "x")
    assert r("mget", "a", "l", "zz", "b") == [b"1", None, None, b"2"]
    assert r("msetnx", "a", 5, "c", 6) == 0
    assert r("msetnx", "c", 5, "d", 6) == 1


# ----------------------------------------------------------------------------- expiry


def test_lazy_expiry_on_master_deletes_and_propagates(r: Runner) -> None:
    now = r.now_ms
    r("set", "k", "v", "px", 10)
    r("set", "j", "v", "px", 10)
    r.now_ms = now + 11
    assert r("get", "k") is None
    assert r.last_ops == ops(("DEL", "k"))
    assert r.stats.expired_keys == 1
    assert r("append", "j", "x") == 1
    assert r.last_ops == ops(("DEL", "j"), ("append", "j", "x"))
    r.lazyfree_lazy_expire = True
    r("set", "u", "v", "px", 5)
    r.now_ms = now + 100
    assert r("exists", "u") == 0
    assert r.last_ops == ops(("UNLINK", "u"))


def test_expired_key_not_yet_expired_at_exact_time(r: Runner) -> None:
    now = r.now_ms
    r("set", "k", "v", "pxat", now + 5)
    r.now_ms = now + 5
    assert r("get", "k") == b"v"  # expired only when now > expire


def test_replica_client_hides_without_deleting() -> None:
    r = Runner()
    now = r.now_ms
    r("set", "k", "v", "px", 10)
    r.mode = "replica_client"
    r.now_ms = now + 20
    assert r("get", "k") is None
    assert r.last_ops == []
    assert r.keyspace.dbsize(0) == 1
    # a write on a writable replica deletes locally without propagating
    assert r("append", "k", "x") == 1
    assert r.last_ops == ops(("append", "k", "x"))
    assert r.stats.expired_keys == 1


def test_replica_apply_never_expires() -> None:
    r = Runner()
    now = r.now_ms
    r("set", "k", "v", "px", 10)
    r.mode = "replica_apply"
    r.now_ms = now + 20
    assert r("get", "k") == b"v"
    # a past absolute expire is stored, not executed as DEL, on a replica
    assert r("pexpireat", "k", now - 100) == 1
    assert r.last_ops == ops(("pexpireat", "k", now - 100))
    assert r.keyspace.dbsize(0) == 1


def test_expire_family_propagates_pexpireat(r: Runner) -> None:
    now = r.now_ms
    r("set", "k", "v")
    assert r("expire", "k", 100, "nx") == 1
    assert r.last_ops == ops(("PEXPIREAT", "k", now + 100_000, "nx"))
    assert r("expire", "k", 50, "gt") == 0
    assert r("pexpire", "k", 50, "LT") == 1
    assert r.last_ops == ops(("PEXPIREAT", "k", now + 50, "LT"))
    assert r("expireat", "k", now // 1000 + 300) == 1
    assert r.last_ops == ops(("PEXPIREAT", "k", (now // 1000 + 300) * 1000))
    assert r("pexpireat", "k", now + 7) == 1
    assert r.last_ops == ops(("pexpireat", "k", now + 7))
    assert r("expiretime", "k") == (now + 7 + 500) // 1000
    assert r("pexpiretime", "k") == now + 7
    assert r("expire", "k", -1) == 1
    assert r.last_ops == ops(("DEL", "k"))
    assert r("expire", "k", 10) == 0
    assert r("ttl", "k") == -2
    r("set", "k", "v")
    assert r("ttl", "k") == -1
    assert r("expire", "k", 1, "xx", "foo") == ErrorReply("ERR Unsupported option foo")
    assert r("expire", "k", 1, "nx", "xx") == ErrorReply(
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    )
    assert r("expire", "k", 1, "gt", "lt") == ErrorReply(
        "ERR GT and LT options at the same time are not compatible"
    )
    assert r("expire", "k", 2**62) == ErrorReply("ERR invalid expire time in 'expire' command")
    assert r("persist", "k") == 0
    r.lazyfree_lazy_expire = True
    assert r("pexpire", "k", 0) == 1
    assert r.last_ops == ops(("UNLINK", "k"))


# ----------------------------------------------------------------------------- keys


def test_del_type_exists_rename(r: Runner) -> None:
    r("set", "a", 1)
    r("rpush", "l", 1)
    assert r("type", "a") == SimpleString("string")
    assert r("type", "l") == SimpleString("list")
    assert r("type", "x") == SimpleString("none")
    assert r("exists", "a", "a", "x") == 2
    assert r("del", "a", "x") == 1
    assert r.last_ops == ops(("del", "a", "x"))
    assert r("del", "x") == 0
    assert r.last_ops == []
    assert r("rename", "x", "y") == ErrorReply("ERR no such key")
    r("pexpire", "l", 5000)
    assert r("rename", "l", "m") == OK
    assert r("pttl", "m") == 5000
    assert r("renamenx", "m", "m") == 0
    r("set", "n", 1)
    assert r("renamenx", "m", "n") == 0
    assert r("rename", "m", "m") == OK
    assert r.last_ops == []


def test_keys_scan_randomkey_flush(r: Runner) -> None:
    for i in range(50):
        r("set", f"key:{i}", i)
    r("hset", "h", "f", "v")
    assert sorted(collection(r("keys", "key:1?"))) == [f"key:1{i}".encode() for i in range(10)]
    seen: list[bytes] = []
    cursor = b"0"
    while True:
        reply = r("scan", cursor, "count", 7)
        assert isinstance(reply, list) and isinstance(reply[0], bytes)
        cursor = reply[0]
        seen.extend(collection(reply[1]))
        if cursor == b"0":
            break
    assert sorted(seen) == sorted([f"key:{i}".encode() for i in range(50)] + [b"h"])
    assert r("scan", 0, "type", "hash", "count", 1000) == [b"0", [b"h"]]
    assert r("scan", "x") == ErrorReply("ERR invalid cursor")
    assert r("scan", 0, "count", 0) == ErrorReply("ERR syntax error")
    assert r("randomkey") in seen
    assert r("dbsize") == 51
    assert r("flushdb", "async") == OK
    assert r.last_ops == ops(("flushdb", "async"))
    assert r("flushall") == OK
    assert r.last_ops == ops(("flushall",))  # forced even when already empty
    assert r("flushall", "bad") == ErrorReply("ERR syntax error")
    assert r("randomkey") is None


# ----------------------------------------------------------------------------- hashes


def test_hash_commands(r: Runner) -> None:
    assert r("hset", "h", "a", 1, "b", 2) == 2
    assert r("hset", "h", "a", 1) == 0
    assert r.last_ops == ops(("hset", "h", "a", 1))  # HSET always propagates
    assert r("hmset", "h", "c", 3) == OK
    assert r("hsetnx", "h", "c", 4) == 0
    assert r("hgetall", "h") == [b"a", b"1", b"b", b"2", b"c", b"3"]
    assert r("hmget", "h", "a", "zz") == [b"1", None]
    assert r("hincrby", "h", "a", 5) == 6
    assert r("hincrby", "h", "zz", "x") == ErrorReply("ERR value is not an integer or out of range")
    assert r("hincrbyfloat", "h", "b", "0.5") == b"2.5"
    assert r.last_ops == ops(("HSET", "h", "b", "2.5"))
    r("hset", "h", "s", "abc")
    assert r("hincrby", "h", "s", 1) == ErrorReply("ERR hash value is not an integer")
    assert r("hincrbyfloat", "h", "s", 1) == ErrorReply("ERR hash value is not a float")
    assert r("hincrbyfloat", "h", "s", "inf") == ErrorReply("ERR value is NaN or Infinity")
    assert r("hstrlen", "h", "s") == 3
    assert r("hlen", "h") == 4
    assert r("hexists", "h", "s") == 1
    assert r("hkeys", "h") == [b"a", b"b", b"c", b"s"]
    assert r("hdel", "h", "a", "b", "c", "s", "x") == 4
    assert r("exists", "h") == 0
    assert r("hset", "h", "a") == ErrorReply("ERR wrong number of arguments for 'hset' command")
    assert r("hscan", "h", 0) == [b"0", []]


# ----------------------------------------------------------------------------- lists


def test_list_commands(r: Runner) -> None:
    assert r("rpush", "l", "a", "b", "c") == 3
    assert r("lpush", "l", "z") == 4
    assert r("lpushx", "nope", "x") == 0
    assert r("lrange", "l", 0, -1) == [b"z", b"a", b"b", b"c"]
    assert r("lindex", "l", -1) == b"c"
    assert r("lset", "l", 9, "x") == ErrorReply("ERR index out of range")
    assert r("lset", "nope", 0, "x") == ErrorReply("ERR no such key")
    assert r("linsert", "l", "before", "b", "q") == 5
    assert r("linsert", "l", "middle", "b", "q") == ErrorReply("ERR syntax error")
    assert r("lpos", "l", "b") == 3
    assert r("lpos", "l", "x", "count", 0) == []
    assert r("lpos", "l", "b", "rank", 0) == ErrorReply(
        "ERR RANK can't be zero: use 1 to start from the first match, "
        "2 from the second ... or use negative to start from the end of the list"
    )
    assert r("lrem", "l", 0, "q") == 1
    assert r("ltrim", "l", 0, 10) == OK
    assert r.last_ops == []  # nothing trimmed: not propagated
    assert r("ltrim", "l", 1, -1) == OK
    assert r.last_ops == ops(("ltrim", "l", 1, -1))
    assert r("lpop", "l", 2) == [b"a", b"b"]
    assert r("rpop", "l") == b"c"
    assert r("exists", "l") == 0
    assert r("lpop", "l", 1) is NIL_ARRAY
    assert r("lpop", "l", -1) == ErrorReply("ERR value is out of range, must be positive")
    assert r("lpop", "l", 1, 2) == ErrorReply("ERR wrong number of arguments for 'lpop' command")


def test_lmove_and_rpoplpush(r: Runner) -> None:
    r("rpush", "src", "a", "b", "c")
    assert r("lmove", "src", "dst", "left", "RIGHT") == b"a"
    assert r.last_ops == ops(("lmove", "src", "dst", "left", "RIGHT"))
    assert r("rpoplpush", "src", "dst") == b"c"
    assert r("lrange", "dst", 0, -1) == [b"c", b"a"]
    assert r("lmove", "src", "src", "left", "right") == b"b"
    assert r("lmove", "src", "dst", "up", "left") == ErrorReply("ERR syntax error")


def test_blocking_list_pops(r: Runner) -> None:
    now = r.now_ms
    r("rpush", "b", "x", "y")
    assert r("blpop", "a", "b", 0) == [b"b", b"x"]
    assert r.last_ops == ops(("LPOP", "b"))
    assert r("brpop", "b", "0.5") == [b"b", b"y"]
    assert r.last_ops == ops(("RPOP", "b"))
    blocked = r("blpop", "a", "b", "1.5")
    assert blocked == Block([b"a", b"b"], now + 1500, NIL_ARRAY)
    assert r("blpop", "a", "-1") == ErrorReply("ERR timeout is negative")
    assert r("blpop", "a", "x") == ErrorReply("ERR timeout is not a float or out of range")
    r.in_multi = True
    assert r("blpop", "a", 0) is NIL_ARRAY
    assert r("blmove", "a", "b", "left", "left", 0) is None
    r.in_multi = False
    # served later: the ready key is used, the pop is propagated on its own
    r("rpush", "b", "1")
    reply = r.execute(argv_of(["blpop", "a", "b", 0]), unblocking=True, unblock_key=b"b")
    assert reply == [b"b", b"1"]
    assert r.last_ops == ops(("LPOP", "b"))
    r("rpush", "s", "v")
    reply = r.execute(
        argv_of(["blmove", "s", "d", "left", "right", 0]), unblocking=True, unblock_key=b"s"
    )
    assert reply == b"v"
    assert r.last_ops == ops(("LMOVE", "s", "d", "left", "right"))  # Redis's shared.left
    r("rpush", "s", "w")
    assert r("blmove", "s", "d", "right", "left", 0) == b"w"
    assert r.last_ops == ops(("LMOVE", "s", "d", "right", "left"))
    r("rpush", "s", "w")
    assert r("brpoplpush", "s", "d", 0) == b"w"
    assert r.last_ops == ops(("RPOPLPUSH", "s", "d"))
    assert r("brpoplpush", "s", "d", 2) == Block([b"s"], now + 2000, NIL_ARRAY)


def test_push_to_new_list_signals_ready(r: Runner) -> None:
    r("rpush", "l", "a")
    assert r.last is not None and r.last.ready_keys == [(0, b"l")]
    r("rpush", "l", "b")
    assert r.last.ready_keys == []


# ----------------------------------------------------------------------------- sets


def test_set_commands(r: Runner) -> None:
    assert r("sadd", "s", 3, 1, 2, 2) == 3
    assert r("smembers", "s") == [b"1", b"2", b"3"]  # intset: numeric order
    assert r("sadd", "s", 1) == 0
    assert r.last_ops == []
    assert r("sismember", "s", 2) == 1
    assert r("smismember", "s", 2, 9) == [1, 0]
    assert r("scard", "s") == 3
    assert r("srem", "s", 3, 9) == 1
    r("sadd", "t", 2, "x")
    assert r("sinter", "s", "t") == [b"2"]
    assert sorted(collection(r("sunion", "s", "t"))) == [b"1", b"2", b"x"]
    assert r("sdiff", "s", "t") == [b"1"]
    assert r("sinterstore", "d", "s", "t") == 1
    assert r("sinterstore", "d", "s", "missing") == 0
    assert r("exists", "d") == 0
    assert r("smove", "s", "t", 1) == 1
    assert r.last_ops == ops(("smove", "s", "t", 1))
    assert r("spop", "s") == b"2"
    assert r.last_ops == ops(("SREM", "s", "2"))
    assert r("spop", "t", 10) is not None
    assert r.last_ops == ops(("DEL", "t"))
    assert r("spop", "t", 1, 2) == ErrorReply("ERR syntax error")
    r("sadd", "big", *range(20))
    popped = r("spop", "big", 3)
    assert isinstance(popped, list) and len(popped) == 3
    assert r.last_ops == [[b"SREM", b"big", m] for m in collection(popped)]
    assert r("srandmember", "big", -5) is not None
    assert r("srandmember", "big", 100) == [
        str(i).encode() for i in range(20) if str(i).encode() not in popped
    ]


# ----------------------------------------------------------------------------- zsets


def test_zset_commands(r: Runner) -> None:
    assert r("zadd", "z", 1, "a", 2, "b", 3, "c") == 3
    assert r("zadd", "z", "ch", 1, "a", 5, "b") == 1
    assert r("zadd", "z", "nx", "xx", 1, "a") == ErrorReply(
        "ERR XX and NX options at the same time are not compatible"
    )
    assert r("zadd", "z", "gt", "lt", 1, "a") == ErrorReply(
        "ERR GT, LT, and/or NX options at the same time are not compatible"
    )
    assert r("zadd", "z", "incr", 1, "a", 2, "b") == ErrorReply(
        "ERR INCR option supports a single increment-element pair"
    )
    assert r("zadd", "z", "x", "a") == ErrorReply("ERR value is not a valid float")
    assert r("zadd", "z", "nx", 1) == ErrorReply("ERR syntax error")
    assert r("zincrby", "z", "0.1", "a") == b"1.1000000000000001"
    assert r("zscore", "z", "a") == b"1.1000000000000001"
    assert r("zmscore", "z", "a", "q") == [b"1.1000000000000001", None]
    assert r("zrange", "z", 0, -1, "withscores") == [
        b"a",
        b"1.1000000000000001",
        b"c",
        b"3",
        b"b",
        b"5",
    ]
    assert r("zrange", "z", "(1", "+inf", "byscore", "limit", 1, 1) == [b"c"]
    assert r("zrange", "z", "+inf", "-inf", "byscore", "rev") == [b"b", b"c", b"a"]
    assert r("zrangebyscore", "z", "-inf", "(5") == [b"a", b"c"]
    assert r("zrevrangebyscore", "z", 5, 3, "withscores") == [b"b", b"5", b"c", b"3"]
    assert r("zrevrange", "z", 0, 0) == [b"b"]
    assert r("zrank", "z", "c") == 1
    assert r("zrevrank", "z", "c") == 1
    assert r("zcount", "z", "(1.1", 5) == 2
    assert r("zcount", "z", "x", 5) == ErrorReply("ERR min or max is not a float")
    assert r("zrange", "z", 0, 1, "limit", 0, 1) == ErrorReply(
        "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
    )
    assert r("zpopmin", "z") == [b"a", b"1.1000000000000001"]
    assert r("zpopmax", "z", 5) == [b"b", b"5", b"c", b"3"]
    assert r("exists", "z") == 0
    r("zadd", "lex", 0, "a", 0, "b", 0, "c", 0, "d")
    assert r("zrange", "lex", "[b", "(d", "bylex") == [b"b", b"c"]
    assert r("zrange", "lex", "+", "-", "bylex", "rev", "limit", 1, 2) == [b"c", b"b"]
    assert r("zrange", "lex", "b", "d", "bylex") == ErrorReply(
        "ERR min or max not valid string range item"
    )
    assert r("zremrangebyrank", "lex", 0, 1) == 2
    assert r("zremrangebyscore", "lex", "-inf", "+inf") == 2
    assert r("exists", "lex") == 0


def test_blocking_zset_pops(r: Runner) -> None:
    r("zadd", "z", 1, "a", 2, "b")
    assert r("bzpopmax", "y", "z", 0) == [b"z", b"b", b"2"]
    assert r.last_ops == ops(("ZPOPMAX", "z"))
    assert r("bzpopmin", "y", 0) == Block([b"y"], 0, NIL_ARRAY)
    reply = r.execute(argv_of(["bzpopmin", "y", "z", 0]), unblocking=True, unblock_key=b"z")
    assert wire(reply) == [b"z", b"a", b"1"]
    assert r.last_ops == ops(("ZPOPMIN", "z"))
