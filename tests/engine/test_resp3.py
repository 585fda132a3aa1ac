"""RESP3: the encoder, the typed replies of the handlers and of the node, and the lab
against a real redis-server 7.0 byte for byte (``HELLO 3``, then the same commands on
both), plus redis-py clients (its RESP3 default and ``protocol=2``) against the lab.

Replies whose bytes cannot match (client ids, run ids, INFO and CLIENT LIST contents,
times) are compared by structure; everything else must be identical, RESP2 included.
"""

from __future__ import annotations

import contextlib
import math
import re
import shlex
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from redisops.engine.cluster import Cluster
from redisops.engine.datacmds._num import fmt_double
from redisops.engine.resp import (
    NIL_ARRAY,
    OK,
    ErrorReply,
    MapReply,
    PairsReply,
    RawReply,
    Reply,
    ReplyParser,
    SetReply,
    SimpleString,
    Verbatim,
    as_resp2,
    encode_command,
    encode_reply,
)
from redisops.engine.server import LabServer, build_lab_cluster
from tests.engine.test_datacmds import Runner
from tests.harness import RedisFactory, free_port, wait_until

# ============================================================================ encoder

ENCODINGS: list[tuple[Reply, bytes, bytes]] = [
    (b"abc", b"$3\r\nabc\r\n", b"$3\r\nabc\r\n"),
    (b"", b"$0\r\n\r\n", b"$0\r\n\r\n"),
    (-7, b":-7\r\n", b":-7\r\n"),
    (None, b"$-1\r\n", b"_\r\n"),
    (NIL_ARRAY, b"*-1\r\n", b"_\r\n"),
    (OK, b"+OK\r\n", b"+OK\r\n"),
    (ErrorReply("ERR x"), b"-ERR x\r\n", b"-ERR x\r\n"),
    ([], b"*0\r\n", b"*0\r\n"),
    (True, b":1\r\n", b"#t\r\n"),
    (False, b":0\r\n", b"#f\r\n"),
    (2.5, b"$3\r\n2.5\r\n", b",2.5\r\n"),
    (0.1, b"$19\r\n0.10000000000000001\r\n", b",0.10000000000000001\r\n"),
    (3.0, b"$1\r\n3\r\n", b",3\r\n"),
    (-0.0, b"$2\r\n-0\r\n", b",-0\r\n"),
    (1e20, b"$5\r\n1e+20\r\n", b",1e+20\r\n"),
    (math.inf, b"$3\r\ninf\r\n", b",inf\r\n"),
    (-math.inf, b"$4\r\n-inf\r\n", b",-inf\r\n"),
    (Verbatim(b"a:1\r\n"), b"$5\r\na:1\r\n\r\n", b"=9\r\ntxt:a:1\r\n\r\n"),
    (MapReply(), b"*0\r\n", b"%0\r\n"),
    (
        MapReply([b"k", b"v", b"n", 1]),
        b"*4\r\n$1\r\nk\r\n$1\r\nv\r\n$1\r\nn\r\n:1\r\n",
        b"%2\r\n$1\r\nk\r\n$1\r\nv\r\n$1\r\nn\r\n:1\r\n",
    ),
    (RawReply(b"$-1\r\n"), b"$-1\r\n", b"$-1\r\n"),
    ([RawReply(b"*-1\r\n"), None], b"*2\r\n*-1\r\n$-1\r\n", b"*2\r\n*-1\r\n_\r\n"),
    (SetReply(), b"*0\r\n", b"~0\r\n"),
    (SetReply([b"a"]), b"*1\r\n$1\r\na\r\n", b"~1\r\n$1\r\na\r\n"),
    (PairsReply(), b"*0\r\n", b"*0\r\n"),
    (
        PairsReply([b"a", 1.5, b"b", math.inf]),
        b"*4\r\n$1\r\na\r\n$3\r\n1.5\r\n$1\r\nb\r\n$3\r\ninf\r\n",
        b"*2\r\n*2\r\n$1\r\na\r\n,1.5\r\n*2\r\n$1\r\nb\r\n,inf\r\n",
    ),
    (  # an EXEC reply mixing everything: each element in the client's protocol
        [None, 2.0, MapReply([b"f", b"v"]), NIL_ARRAY, SetReply([b"m"]), SimpleString("QUEUED")],
        b"*6\r\n$-1\r\n$1\r\n2\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n*-1\r\n*1\r\n$1\r\nm\r\n+QUEUED\r\n",
        b"*6\r\n_\r\n,2\r\n%1\r\n$1\r\nf\r\n$1\r\nv\r\n_\r\n~1\r\n$1\r\nm\r\n+QUEUED\r\n",
    ),
]


@pytest.mark.parametrize(("value", "resp2", "resp3"), ENCODINGS, ids=repr)
def test_encode_reply_in_both_protocols(value: Reply, resp2: bytes, resp3: bytes) -> None:
    assert encode_reply(value) == resp2
    assert encode_reply(value, 2) == resp2
    assert encode_reply(value, 3) == resp3


@given(st.floats(allow_nan=False))
def test_a_double_is_for_resp2_the_bulk_string_handlers_used_to_return(d: float) -> None:
    """RESP2 bytes of a double are those of the ``fmt_double()`` bulk string (``%.17g``)
    that sorted-set handlers returned before they returned the number itself."""
    text = fmt_double(d)
    assert encode_reply(d, 2) == encode_reply(text, 2)
    assert encode_reply(d, 3) == b"," + text + b"\r\n"
    assert encode_reply([d], 2) == encode_reply([text], 2)


def _replies() -> st.SearchStrategy[Reply]:
    scalars: st.SearchStrategy[Reply] = st.one_of(
        st.binary(max_size=8),
        st.integers(-(2**63), 2**63 - 1),
        st.booleans(),
        st.floats(allow_nan=False),
        st.none(),
        st.just(NIL_ARRAY),
        st.text("abcOK ", max_size=5).map(SimpleString),
        st.text("ERR xyz", min_size=1, max_size=6).map(ErrorReply),
        st.binary(max_size=8).map(Verbatim),
    )

    def containers(inner: st.SearchStrategy[Reply]) -> st.SearchStrategy[Reply]:
        flat = st.lists(inner, max_size=4)
        paired = st.lists(st.tuples(inner, inner), max_size=3).map(
            lambda pairs: [x for pair in pairs for x in pair]
        )
        return st.one_of(flat, flat.map(SetReply), paired.map(MapReply), paired.map(PairsReply))

    return st.recursive(scalars, containers, max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(_replies(), st.sampled_from([2, 3]))
def test_parsing_an_encoded_reply_and_encoding_it_again_gives_the_same_bytes(
    value: Reply, resp: int
) -> None:
    """The parser loses nothing the encoder wrote (RESP3 pairs come back as nested
    arrays, which encode to the same bytes)."""
    data = encode_reply(value, resp)
    parser = ReplyParser()
    parser.feed(data[:-1])
    assert parser.replies() == []  # incomplete: nothing yet
    parser.feed(data[-1:])
    (parsed,) = parser.replies()
    assert encode_reply(parsed, resp) == data
    if resp == 2:  # a RESP2 reader sees the RESP2 fallback of every type, exactly
        assert parsed == as_resp2(value) and _types(parsed) == _types(as_resp2(value))


def test_parser_reads_every_resp3_type() -> None:
    parser = ReplyParser()
    parser.feed(
        b"(12345678901234567890\r\n!9\r\nERR x y z\r\n>2\r\n$7\r\nmessage\r\n:1\r\n"
        b",-inf\r\n,1e+20\r\n#f\r\n=8\r\nmkd:abcd\r\n%0\r\n~0\r\n_\r\n"
    )
    assert parser.replies() == [
        12345678901234567890,
        ErrorReply("ERR x y z"),
        [b"message", 1],
        -math.inf,
        1e20,
        False,
        Verbatim(b"abcd"),
        MapReply(),
        SetReply(),
        None,
    ]


def test_as_resp2_replaces_every_resp3_type_by_its_fallback() -> None:
    value = [MapReply([b"k", 1.5]), SetReply([True]), PairsReply([b"m", -0.0]), Verbatim(b"t")]
    plain = as_resp2(value)
    assert plain == [[b"k", b"1.5"], [1], [b"m", b"-0"], b"t"]

    def types(v: object) -> object:
        return [types(x) for x in v] if isinstance(v, list) else type(v)

    assert types(plain) == [[bytes, bytes], [int], [bytes, bytes], bytes]
    assert all(type(x) is list for x in plain[:3])  # type: ignore[index]
    assert encode_reply(plain, 3) == encode_reply(value, 2)


# ============================================================================ handlers


def test_data_handlers_return_the_types_redis_70_uses() -> None:
    """What a RESP3 client reads (checked against redis-server 7.0.15); the differential
    tests below and in test_data_vs_redis.py re-check this live."""
    r = Runner()
    r.resp = 3
    r("hset", "h", "f1", "v1", "f2", "v2")
    r("sadd", "i", 3, 1, 2)
    r("zadd", "z", 1, "a", 2.5, "b", "inf", "c")
    r("rpush", "l", "x")
    cases: list[tuple[tuple[object, ...], object]] = [
        (("hgetall", "h"), MapReply([b"f1", b"v1", b"f2", b"v2"])),
        (("hgetall", "nokey"), MapReply()),
        (("hkeys", "h"), [b"f1", b"f2"]),
        (("smembers", "i"), SetReply([b"1", b"2", b"3"])),
        (("smembers", "nokey"), SetReply()),
        (("sinter", "i", "nokey"), SetReply()),
        (("sunion", "i"), SetReply([b"1", b"2", b"3"])),
        (("sdiff", "nokey"), SetReply()),
        (("spop", "nokey", 2), SetReply()),
        (("spop", "i", 0), SetReply()),
        (("srandmember", "nokey", 2), []),
        (("smismember", "i", 1, 9), [1, 0]),
        (("zscore", "z", "b"), 2.5),
        (("zscore", "z", "c"), math.inf),
        (("zscore", "z", "nope"), None),
        (("zmscore", "z", "a", "nope", "c"), [1.0, None, math.inf]),
        (("zincrby", "z", "0.1", "a"), 1.1),
        (("zadd", "z", "xx", "incr", 1, "nope"), None),
        (("zrange", "z", 0, -1), [b"a", b"b", b"c"]),
        (("zrange", "z", 0, 1, "withscores"), [[b"a", 1.1], [b"b", 2.5]]),
        (("zrangebyscore", "z", 2, "+inf", "withscores", "limit", 0, 1), [[b"b", 2.5]]),
        (("zrevrange", "z", 0, 0, "withscores"), [[b"c", math.inf]]),
        (("zrevrangebyscore", "z", "(3", "-inf", "withscores"), [[b"b", 2.5], [b"a", 1.1]]),
        (("zrange", "nokey", 0, -1, "withscores"), []),
        (("zrank", "z", "nope"), None),
        (("zrevrank", "z", "a"), 2),
        (("zscan", "z", 0), [b"0", [b"a", b"1.1000000000000001", b"b", b"2.5", b"c", b"inf"]]),
        (("zpopmin", "z"), [b"a", 1.1]),
        (("zpopmax", "z", 1), [[b"c", math.inf]]),
        (("zpopmin", "z", 0), []),
        (("zpopmin", "nokey"), []),
        (("bzpopmin", "z", 0), [b"z", b"b", 2.5]),
        (("get", "nokey"), None),
        (("lpop", "nokey", 2), None),
        (("lpos", "l", "zz"), None),
    ]
    for args, expected in cases:
        got = r(*args)
        assert got == expected and _types(got) == _types(expected), (args, got)
    r.in_multi = True
    for args in (
        ("blpop", "nokey", 0),
        ("bzpopmax", "nokey", 0),
        ("blmove", "a", "b", "left", "left", 0),
    ):
        assert r(*args) is None, args


def _types(value: object) -> object:
    if isinstance(value, list):
        return (type(value), [_types(v) for v in value])
    return type(value)


# ============================================================================ node (in process)


def _sim_call(c: Cluster, sim: Any, *args: object) -> Reply:
    """One command on an in-process client; the parsed reply, types kept."""
    want = len(sim.replies) + 1
    start = len(sim.raw)
    sim.send(*args)
    assert c.run_until(lambda: len(sim.replies) >= want, 5000), args
    reply: Reply = sim.replies[want - 1]
    sim.last_raw = bytes(sim.raw[start:])
    return reply


def test_hello_switches_only_its_own_client_and_reset_switches_back() -> None:
    c = Cluster()
    c.add_node(7000, {"repl-diskless-sync-delay": "0"})
    node = c.node(7000)
    a, b = c.client(7000), c.client(7000)
    _sim_call(c, a, "HSET", "h", "f", "v")
    hello = _sim_call(c, a, "HELLO", "3", "SETNAME", "me")
    assert isinstance(hello, MapReply)
    fields = dict(zip(hello[::2], hello[1::2], strict=True))
    assert fields[b"proto"] == 3 and fields[b"role"] == b"master" and fields[b"modules"] == []
    assert a.last_raw.startswith(b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n")
    me = next(cl for cl in node.clients.values() if cl.name == "me")
    assert me.resp == 3 and fields[b"id"] == me.id
    assert _sim_call(c, a, "HGETALL", "h") == MapReply([b"f", b"v"])
    assert a.last_raw == b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n"
    assert _sim_call(c, b, "HGETALL", "h") == [b"f", b"v"]  # b still speaks RESP2
    assert b.last_raw == b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n"
    assert _sim_call(c, a, "GET", "nokey") is None and a.last_raw == b"_\r\n"
    info = _sim_call(c, a, "INFO", "replication")
    assert isinstance(info, Verbatim) and info.startswith(b"# Replication\r\nrole:master\r\n")
    listing = _sim_call(c, a, "CLIENT", "LIST")
    assert isinstance(listing, Verbatim)
    assert b" name=me " in listing and b"resp=3\n" in listing and b"resp=2\n" in listing
    assert _sim_call(c, a, "HELLO") == hello  # no protover: stays on RESP3
    assert _sim_call(c, a, "RESET") == SimpleString("RESET")
    assert me.resp == 2 and me.name == ""
    assert _sim_call(c, a, "GET", "nokey") is None and a.last_raw == b"$-1\r\n"
    assert _sim_call(c, a, "HELLO", "3") is not None and me.resp == 3
    assert _sim_call(c, a, "HELLO", "2") == [*hello[:5], 2, *hello[6:]]
    assert a.last_raw.startswith(b"*14\r\n") and me.resp == 2
    for args, error in [
        (("HELLO", "1"), "NOPROTO unsupported protocol version"),
        (("HELLO", "4"), "NOPROTO unsupported protocol version"),
        (("HELLO", "x"), "ERR Protocol version is not an integer or out of range"),
        (("HELLO", "03"), "ERR Protocol version is not an integer or out of range"),
        (("HELLO", "3", "FOO"), "ERR Syntax error in HELLO option 'FOO'"),
        (
            ("HELLO", "3", "SETNAME", "a b"),
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ),
    ]:
        assert _sim_call(c, a, *args) == ErrorReply(error), args
        assert me.resp == 2, args  # a refused HELLO does not switch


def test_replication_stream_is_the_same_whatever_the_clients_protocol() -> None:
    """Writes from a RESP3 client reach the backlog and the replica as the very bytes the
    same writes from a RESP2 client produce (RESP2 command encoding)."""
    writes = [
        ("HSET", "h", "f", "v"),
        ("ZADD", "z", "1.5", "m", "2", "n"),
        ("ZINCRBY", "z", "1", "m"),
        ("ZPOPMIN", "z", "5"),
        ("SADD", "s", "a", "b"),
        ("SREM", "s", "a", "zz"),
        ("MULTI",),
        ("HSET", "h", "g", "w"),
        ("INCRBYFLOAT", "f", "0.1"),
        ("EXEC",),
    ]
    streams = []
    for resp in (2, 3):
        c = Cluster(seed=11)
        cfg = {"repl-diskless-sync-delay": "0", "repl-ping-replica-period": "3600"}
        c.add_node(7000, dict(cfg))
        c.add_node(7001, dict(cfg))
        c.run(1100)
        c.replicate(7001, 7000)
        assert c.run_until(lambda c=c: c.in_sync(7000, 7001), 10_000)
        master = c.node(7000)
        assert master.backlog is not None
        sim = c.client(7000)
        _sim_call(c, sim, "HELLO", str(resp))
        before = master.master_repl_offset
        for args in writes:
            _sim_call(c, sim, *args)
        streams.append(master.backlog.read_from(before + 1))
        assert c.run_until(lambda c=c: c.in_sync(7000, 7001), 10_000)
        assert c.node(7001).keyspace.digest() == master.keyspace.digest()
    assert streams[0] == streams[1]
    assert encode_command([b"ZPOPMIN", b"z", b"5"]) in streams[1]


# ============================================================================ lab vs redis-server


@contextlib.contextmanager
def engine_lab(count: int = 1, config: dict[str, str] | None = None) -> Iterator[list[int]]:
    """Engine nodes (no replication configured) on free loopback ports, served by a
    :class:`LabServer` in a daemon thread."""
    cfg = {"enable-debug-command": "local", "repl-diskless-sync-delay": "0", **(config or {})}
    for attempt in range(5):
        ports = [free_port() for _ in range(count)]
        server = LabServer(build_lab_cluster(ports, "none", cfg, seed=7))
        try:
            for port in ports:
                server.listen(port)
        except OSError:
            server.close()
            if attempt == 4:
                raise
            continue
        break
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ports
    finally:
        server.running = False
        thread.join(10)


def _reply_end(buf: bytes, pos: int) -> int | None:
    """Where the reply starting at ``pos`` ends (written here, independently of the
    engine's parser, so the raw bytes are what the server sent)."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return None
    kind, head, nxt = buf[pos : pos + 1], buf[pos + 1 : end], end + 2
    if kind in b"$=!":
        n = int(head)
        if n < 0:
            return nxt
        return nxt + n + 2 if nxt + n + 2 <= len(buf) else None
    if kind in b"*%~>":
        n = int(head)
        for _ in range(max(n, 0) * (2 if kind == b"%" else 1)):
            got = _reply_end(buf, nxt)
            if got is None:
                return None
            nxt = got
        return nxt
    return nxt  # + - : , _ # (


class Raw:
    """A raw RESP client: every reply as the exact bytes sent."""

    def __init__(self, port: int, resp: int = 3) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        if resp == 3:
            assert self.call("HELLO", "3").startswith(b"%7\r\n")

    def send(self, *args: object) -> None:
        self.sock.sendall(
            encode_command([a if isinstance(a, bytes) else str(a).encode() for a in args])
        )

    def read(self) -> bytes:
        while True:
            end = _reply_end(self.buf, 0) if self.buf else None
            if end is not None:
                data, self.buf = self.buf[:end], self.buf[end:]
                return data
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk

    def call(self, *args: object) -> bytes:
        self.send(*args)
        return self.read()

    def close(self) -> None:
        self.sock.close()


def parse(data: bytes) -> Reply:
    parser = ReplyParser()
    parser.feed(data)
    (value,) = parser.replies()
    return value


def _mask_hello(value: Reply) -> Reply:
    if isinstance(value, list) and b"id" in value[::2]:
        value = type(value)(value)
        i = value.index(b"id")
        value[i + 1] = 0
    return value


def _info_titles(value: Reply) -> Reply:
    """INFO contents differ: the type and the section titles must not."""
    assert isinstance(value, bytes)
    lines = value.split(b"\r\n")
    return [type(value).__name__.encode(), [ln for ln in lines if ln.startswith(b"# ")]]


def _info_fields(value: Reply) -> Reply:
    """INFO replication (which the engine prints field for field): titles and field names."""
    assert isinstance(value, bytes)
    names = [ln.split(b":")[0] for ln in value.split(b"\r\n") if ln and not ln.startswith(b"#")]
    return [_info_titles(value), names]


def _client_shape(value: Reply) -> Reply:
    """CLIENT INFO/LIST: the type, and our own line's field names and the fields that must
    agree (``resp=``, ``name=``...); other connections may be listed by a real server."""
    assert isinstance(value, bytes) and value.endswith(b"\n")
    (line,) = [ln for ln in value.split(b"\n") if b" name=foo " in ln]
    fields = [kv.split(b"=", 1) for kv in line.split(b" ")]
    keep = {b"name", b"db", b"resp", b"multi", b"flags", b"user", b"redir", b"sub", b"psub"}
    return [
        type(value).__name__.encode(),
        [kv[0] for kv in fields],
        [kv for kv in fields if kv[0] in keep],
    ]


def _pairs_in_any_order(value: Reply) -> Reply:
    assert isinstance(value, list)
    return sorted(zip(value[::2], value[1::2], strict=True))  # type: ignore[arg-type,return-value]


def _array_of_type(value: Reply) -> Reply:
    return _types(value)  # type: ignore[return-value]


# Each line: a command; a prefix chooses how the replies are compared:
#   (none) the exact bytes;  ~ parsed, id masked (HELLO);  ? INFO section titles;
#   ?? INFO titles and field names;  @ CLIENT INFO/LIST shape;  % the types only (TIME,
#   LASTSAVE, CLIENT ID);  & a map in any order (CONFIG GET of several parameters: 7.0
#   collects the matches in a dict)
SESSION = r"""
~HELLO 3
~HELLO
~HELLO 3 SETNAME conn1
HELLO 1
HELLO 4
HELLO x
HELLO 03
HELLO 3 FOO
HELLO 3 SETNAME "a b"
%CLIENT ID
CLIENT GETNAME
PING
PING hi
ECHO hi
GET missing
SET k v
GET k
SET k v2 GET
SET n v NX GET
SET k v3 NX
MGET k missing
GETEX missing
GETDEL missing
GETSET missing2 v
DEL missing2
INCRBYFLOAT f 1.5
TYPE k
TTL k
EXISTS k missing
HSET h f1 v1 f2 v2
HGETALL h
HGETALL nokey
HMGET h f1 nope
HKEYS h
HVALS h
HGET h nope
HINCRBYFLOAT h fl 1.5
HSCAN h 0
SADD i 3 1 2
SMEMBERS i
SMEMBERS nokey
SINTER i i
SINTER i nokey
SUNION i nokey
SDIFF i nokey
SDIFF nokey
SISMEMBER i 1
SMISMEMBER i 1 5
SSCAN i 0
SPOP nokey
SPOP nokey 2
SPOP i 0
SRANDMEMBER nokey
SRANDMEMBER nokey 2
SADD one 7
SPOP one 1
SADD one 7
SPOP one 5
SADD one 7
SRANDMEMBER one 3
SRANDMEMBER one -2
SINTERSTORE dst i nokey
ZADD z 1 a 2.5 b inf c -inf d
ZADD z 1e20 e 0.1 f
ZSCORE z b
ZSCORE z c
ZSCORE z d
ZSCORE z e
ZSCORE z f
ZSCORE z nope
ZSCORE nokey a
ZMSCORE z a nope c
ZMSCORE nokey a b
ZINCRBY z 0.1 a
ZADD z INCR 1 a
ZADD z XX INCR 1 nope
ZADD z NX INCR 1 a
ZADD z CH 1 a
ZCARD z
ZCOUNT z -inf +inf
ZRANGE z 0 -1
ZRANGE z 0 -1 WITHSCORES
ZRANGE z 0 2 REV WITHSCORES
ZRANGE z (1 +inf BYSCORE LIMIT 1 2 WITHSCORES
ZRANGE z [a [z BYLEX
ZRANGE nokey 0 -1 WITHSCORES
ZRANGEBYSCORE z -inf +inf WITHSCORES
ZRANGEBYSCORE z 0 3 WITHSCORES LIMIT 0 1
ZREVRANGEBYSCORE z +inf -inf WITHSCORES
ZREVRANGEBYSCORE z +inf -inf WITHSCORES LIMIT 0 1
ZREVRANGE z 0 0 WITHSCORES
ZREVRANGE z 0 -1
ZRANK z a
ZRANK z nope
ZREVRANK nokey a
ZREVRANK z a
ZSCAN z 0
ZPOPMIN z
ZPOPMAX z 1
ZPOPMIN z 2
ZPOPMIN nokey
ZPOPMIN nokey 2
ZPOPMIN z 0
ZPOPMAX z 10
BZPOPMIN z 0.05
ZADD z 3 c 4 d
BZPOPMIN z 0
BZPOPMAX nokey z 0
BZPOPMAX nokey 0.05
RPUSH l a b c
LPOP nokey
LPOP nokey 2
LPOP nokey 0
LPOP l 0
LPOP l 1
LRANGE l 0 -1
LINDEX l 5
LPOS l zz
LPOS l zz COUNT 0
LPOS l b COUNT 1
LMOVE nokey x left right
RPOPLPUSH nokey x
BLPOP nokey 0.05
BRPOP l 0
BLMOVE nokey x left left 0.05
BRPOPLPUSH nokey x 0.05
SCAN 0 MATCH h* COUNT 100
KEYS z*
DBSIZE
CONFIG GET maxmemory
CONFIG GET nomatch
&CONFIG GET maxmemory-policy maxmemory
CONFIG SET maxmemory 0
CLIENT SETNAME "b c"
CLIENT SETNAME foo
CLIENT GETNAME
@CLIENT INFO
@CLIENT LIST
??INFO replication
?INFO
ROLE
WAIT 0 0
WAIT 0 50
%TIME
%LASTSAVE
DEBUG DIGEST-VALUE k nokey
ACL WHOAMI
COMMAND INFO nosuch
PUBLISH ch x
SELECT 1
GET k
SELECT 0
MULTI
GET missing
ZSCORE i x
HGETALL h
SMEMBERS i
ZADD zz 1 a
ZSCORE zz a
ZRANGE zz 0 -1 WITHSCORES
BLPOP nokey 1
BZPOPMIN nokey 1
BLMOVE nokey x left left 1
ZPOPMIN zz 1
EXEC
WATCH k
SET k changed
MULTI
GET k
EXEC
WATCH k
MULTI
GET k
EXEC
EXEC
DISCARD
EVAL "return redis.call('get','missing')" 0
EVAL "return redis.call('hgetall','h')" 0
EVAL "return redis.call('smembers','i')" 0
EVAL "return redis.call('lpop','nokey',2)" 0
EVAL "return redis.call('set','k','v')" 0
EVAL "redis.call('set','k','v')" 0
EVAL "return redis.pcall('incr','h')" 0
ZADD zs 1.5 m
EVAL "return redis.call('zscore','zs','m')" 0
EVAL "return redis.call('zrange','zs',0,-1,'withscores')" 0
FAILOVER ABORT
CLIENT PAUSE 10 WRITE
CLIENT UNPAUSE
DEBUG SLEEP 0
RESET
GET missing
HGETALL h
ZSCORE zs m
~HELLO 3
HGETALL h
FLUSHALL
"""

COMPARE: dict[str, Callable[[Reply], Reply]] = {
    "~": _mask_hello,
    "??": _info_fields,
    "?": _info_titles,
    "@": _client_shape,
    "%": _array_of_type,
    "&": _pairs_in_any_order,
}


def _marker(line: str) -> str:
    return next((m for m in COMPARE if line.startswith(m)), "")


def _session(port: int, resp: int) -> list[tuple[str, bytes]]:
    raw = Raw(port, resp=2)  # the session's first line is HELLO 3 (or dropped for RESP2)
    out = []
    for line in SESSION.strip().splitlines():
        if resp == 2 and "HELLO" in line:
            continue  # a RESP2 session never switches
        out.append((line, raw.call(*shlex.split(line[len(_marker(line)) :]))))
    raw.close()
    return out


@pytest.mark.redis_server
@pytest.mark.parametrize("resp", [3, 2])
def test_lab_replies_are_redis_replies_byte_for_byte(
    redis_factory: RedisFactory, resp: int
) -> None:
    real = redis_factory.start({"enable-debug-command": "local"})
    with engine_lab() as (port,):
        mine = _session(port, resp)
    theirs = _session(real.port, resp)
    problems = []
    for (line, a), (_, b) in zip(mine, theirs, strict=True):
        marker = _marker(line)
        if marker:
            x, y = parse(a), parse(b)
            same = COMPARE[marker](x) == COMPARE[marker](y) and _types(x) == _types(y)
        else:
            same = a == b
        if not same:
            problems.append(f"{line}\n  engine: {a!r}\n  redis:  {b!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.redis_server
def test_blocked_resp3_clients_are_served_and_time_out_like_redis(
    redis_factory: RedisFactory,
) -> None:
    """A RESP3 client blocked on BLPOP/BZPOPMIN/BLMOVE gets typed replies when served
    later, ``_`` on timeout; WAIT times out with an integer."""
    real = redis_factory.start()

    def run(port: int) -> list[bytes]:
        pusher, waiter = Raw(port), Raw(port)
        out = []
        for blocking, push in [
            (["BLPOP", "q1", "q2", 0], ["RPUSH", "q2", "a", "b"]),
            (["BZPOPMIN", "z1", "z2", 0], ["ZADD", "z2", "2.5", "m", "1e-3", "n"]),
            (["BZPOPMAX", "z3", 0], ["ZADD", "z3", "inf", "top"]),
            (["BLMOVE", "q3", "d", "left", "right", 0], ["RPUSH", "q3", "v"]),
        ]:
            waiter.send(*blocking)
            wait_until(lambda: b"blocked_clients:1" in pusher.call("INFO", "clients"), 5)
            out.append(pusher.call(*push))
            out.append(waiter.read())
        for timed in (["BLPOP", "none", "0.05"], ["BZPOPMIN", "none", "0.05"], ["WAIT", 0, 50]):
            out.append(waiter.call(*timed))
        pusher.close()
        waiter.close()
        return out

    with engine_lab() as (port,):
        mine = run(port)
    assert mine == run(real.port)
    assert mine[3] == b"*3\r\n$2\r\nz2\r\n$1\r\nn\r\n,0.001\r\n"


@pytest.mark.redis_server
def test_hello_auth_and_reset_with_requirepass_like_redis(redis_factory: RedisFactory) -> None:
    real = redis_factory.start({"requirepass": "pw"})
    lines = [
        "HELLO 3",
        "HELLO 3 AUTH default wrong",
        "GET k",
        "~HELLO 3 AUTH default pw SETNAME named",
        "CLIENT GETNAME",
        "GET k",
        "RESET",
        "GET k",
        "~HELLO 2 AUTH default pw",
        "GET k",
        "AUTH pw",
        "~HELLO 3",
        "GET k",
    ]

    def run(port: int) -> list[Reply]:
        raw = Raw(port, resp=2)
        out = []
        for line in lines:
            data = raw.call(*shlex.split(line.lstrip("~")))
            out.append(_mask_hello(parse(data)) if line[0] == "~" else data)
        raw.close()
        return out

    with engine_lab(config={"requirepass": "pw"}) as (port,):
        mine = run(port)
    assert mine == run(real.port)
    assert mine[0] == (
        b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the "
        b"HELLO AUTH <user> <pass> option can be used to authenticate the client and "
        b"select the RESP protocol version at the same time\r\n"
    )


@pytest.mark.redis_server
def test_hello_inside_multi_switches_protocol_mid_transaction_like_redis(
    redis_factory: RedisFactory,
) -> None:
    """Redis writes each reply of EXEC as it goes: those before a HELLO in the transaction
    are in the old protocol, those after in the new one."""
    real = redis_factory.start()
    script = [
        ["HSET", "h", "f", "v"],
        ["MULTI"],
        ["GET", "missing"],
        ["HGETALL", "h"],
        ["HELLO", "3"],
        ["GET", "missing"],
        ["HGETALL", "h"],
        ["HELLO", "2"],
        ["LPOP", "missing", "2"],
        ["EXEC"],
        ["GET", "missing"],
        ["MULTI"],
        ["HELLO", "3"],
        ["HELLO", "9"],
        ["ZADD", "z", "INCR", "1", "m"],
        ["EXEC"],
        ["ZSCORE", "z", "m"],
    ]

    def run(port: int) -> list[bytes]:
        raw = Raw(port, resp=2)
        out = [re.sub(rb"\$2\r\nid\r\n:\d+\r\n", b"<id>", raw.call(*argv)) for argv in script]
        raw.close()
        return out

    with engine_lab() as (port,):
        mine = run(port)
    assert mine == run(real.port)
    # RESP2 nil, flat hash; HELLO 3 as a map, RESP3 null and map; HELLO 2 as an array, *-1
    assert mine[9].startswith(b"*7\r\n$-1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n%7\r\n")
    assert b"*0\r\n_\r\n%1\r\n$1\r\nf\r\n$1\r\nv\r\n*14\r\n" in mine[9]
    assert mine[9].endswith(b"*0\r\n*-1\r\n")
    assert mine[10] == b"$-1\r\n" and mine[16] == b",1\r\n"


# ============================================================================ redis-py


def _exercise(master: redis.Redis, replica: redis.Redis, master_port: int) -> dict[str, Any]:
    """What redisops asks of a node, through redis-py; deterministic values only."""
    out: dict[str, Any] = {}
    out["ping"] = master.ping()
    out["replicaof"] = replica.replicaof("127.0.0.1", master_port)
    wait_until(lambda: replica.info("replication")["master_link_status"] == "up", 15)
    out["set"] = master.set("k", "v")
    out["get"] = master.get("k"), master.get("missing")
    out["wait"] = master.wait(1, 5000)
    out["dbsize"] = master.dbsize(), replica.dbsize()
    info = master.info("replication")
    out["info"] = info["role"], info["connected_slaves"], sorted(info)[:4]
    rinfo = replica.info()
    out["replica_info"] = (
        rinfo["role"],
        rinfo["master_link_status"],
        rinfo["master_port"] == master_port,
    )
    role = master.role()
    out["role"] = role[0], len(role[2]), replica.role()[0], replica.role()[3]
    out["config_set"] = master.config_set("maxmemory-policy", "allkeys-lru")
    out["config_get"] = master.config_get("maxmemory-policy"), master.config_get("nomatch")
    out["pause"] = master.client_pause(100), master.client_unpause()
    out["client"] = (
        master.client_setname("ops"),
        master.client_getname(),
        master.client_info()["name"],
    )
    master.hset("h", mapping={"a": "1", "b": "2"})
    master.zadd("z", {"a": 1.5, "b": 2, "c": float("inf")})
    master.sadd("s", "1", "2")
    out["types"] = (
        master.hgetall("h"),
        master.zscore("z", "a"),
        master.zrange("z", 0, -1, withscores=True),
        master.zrevrangebyscore("z", "+inf", "-inf", withscores=True),
        master.zmscore("z", ["a", "nope"]),
        master.zincrby("z", 1, "a"),
        master.smembers("s"),
        master.zpopmin("z"),
        master.zpopmax("z", 1),
        master.blpop(["nokey"], 0.05),
        master.bzpopmin(["z"], 1),
    )
    pipe = master.pipeline()  # MULTI/EXEC
    pipe.get("missing").hgetall("h").zscore("z", "nope").smembers("s")
    out["exec"] = pipe.execute()
    wait_until(lambda: replica.dbsize() == master.dbsize(), 10)
    out["failover"] = master.execute_command("FAILOVER")
    wait_until(lambda: replica.role()[0] == "master" and master.role()[0] == "slave", 15)
    out["after_failover"] = master.role()[0], replica.role()[0]
    out["replicaof_no_one"] = master.replicaof("NO", "ONE")
    return out


@pytest.mark.redis_server
@pytest.mark.parametrize("protocol", [None, 2], ids=["default-resp3", "protocol2"])
def test_redis_py_clients_get_the_same_answers_from_the_lab_and_redis(
    redis_factory: RedisFactory, protocol: int | None
) -> None:
    """redis-py 8 speaks RESP3 unless told otherwise: both kinds of client work against
    the lab and see what they see on redis-server."""
    kwargs: dict[str, Any] = {"decode_responses": True, "socket_timeout": 10}
    if protocol is not None:
        kwargs["protocol"] = protocol

    def clients(ports: Sequence[int]) -> tuple[redis.Redis, redis.Redis]:
        return redis.Redis(port=ports[0], **kwargs), redis.Redis(port=ports[1], **kwargs)

    cfg = {"repl-diskless-sync-delay": "0"}
    with engine_lab(2, cfg) as ports:
        m, r = clients(ports)
        if protocol is None:
            assert m.connection_pool.connection_kwargs.get("protocol") in (None, 3)
            assert m.execute_command("HELLO")["proto"] == 3
        mine = _exercise(m, r, ports[0])
        m.close()
        r.close()
    real_m = redis_factory.start(cfg)
    real_r = redis_factory.start(cfg)
    m, r = clients([real_m.port, real_r.port])
    theirs = _exercise(m, r, real_m.port)
    assert mine == theirs
    assert mine["types"][0] == {"a": "1", "b": "2"} and mine["types"][1] == 1.5


def test_star_lab_answers_default_redis_py_clients_on_every_node() -> None:
    """``python -m redisops.engine.server --topology star``, read by default (RESP3)
    redis-py clients on the master and on the replica."""
    ports = [free_port(), free_port()]
    server = LabServer(build_lab_cluster(ports, "star", {"repl-diskless-sync-delay": "0"}))
    for port in ports:
        server.listen(port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        master, replica = (redis.Redis(port=p, decode_responses=True) for p in ports)
        wait_until(lambda: replica.info("replication")["master_link_status"] == "up", 15)
        assert master.set("k", "v") and master.wait(1, 5000) == 1
        assert replica.get("k") == "v"
        assert master.role()[0] == "master" and replica.role()[:2] == ["slave", "127.0.0.1"]
        assert replica.execute_command("HELLO")["role"] == "replica"
        assert master.info()["connected_slaves"] == 1
        master.close()
        replica.close()
    finally:
        server.running = False
        thread.join(10)
