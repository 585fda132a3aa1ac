"""Differential tests: the engine's data commands against a real redis-server 7.0.

Every command sequence runs on both; replies must be identical (types and error texts
included) as a RESP2 client and, in a second run, as a RESP3 client (``HELLO 3``) reads
them: the engine's reply is encoded for that protocol and parsed back by the same parser
as the real server's. ``DEBUG DIGEST`` must agree, and what each command propagates must match the
real master's replication stream, captured by a raw-socket pseudo-replica. SELECT /
MULTI / EXEC framing is the node's business, so only the inner ops are compared;
absolute times (``PXAT``, ``PEXPIREAT``) may differ by a few seconds.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redisops.engine.command import COMMANDS, Block
from redisops.engine.resp import (
    NIL_ARRAY,
    MapReply,
    Reply,
    ReplyParser,
    RequestParser,
    SimpleString,
    encode_command,
)
from tests.engine.test_datacmds import Arg, Runner, argv_of, wire
from tests.harness import RedisFactory, RedisProc

pytestmark = pytest.mark.redis_server

FRAMING = {b"select", b"multi", b"exec", b"ping"}
TIME_TOKENS = {b"pxat", b"pexpireat"}
CLOCK_SLACK = {b"pttl": 50, b"ttl": 1}
NOW = lambda: int(time.time() * 1000)  # noqa: E731


class RawClient:
    """A RESP2 (or, ``resp=3``, RESP3) client that returns replies exactly as sent (types
    preserved)."""

    def __init__(self, port: int, resp: int = 2) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.parser = ReplyParser()
        if resp == 3:
            hello = self.call([b"HELLO", b"3"])
            assert isinstance(hello, MapReply), hello

    def call(self, argv: Sequence[bytes]) -> Reply:
        self.sock.sendall(encode_command(argv))
        while True:
            replies = self.parser.replies()
            if replies:
                return replies[0]
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("server closed the connection")
            self.parser.feed(data)

    def info_int(self, field_name: str) -> int:
        text = self.call([b"INFO", b"replication"])
        assert isinstance(text, bytes)
        for line in text.decode().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split(":", 1)[1])
        raise KeyError(field_name)

    def close(self) -> None:
        self.sock.close()


class StreamTap:
    """A pseudo-replica: full sync once (disk RDB skipped), then the command stream.

    ``drain()`` returns the commands the master propagated since the last call, reading
    until the tap's offset reaches the master's ``master_repl_offset``.
    """

    def __init__(self, port: int, control: RawClient) -> None:
        self.control = control
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = bytearray()
        self.sock.sendall(encode_command([b"REPLCONF", b"capa", b"psync2"]))
        assert self._line() == b"+OK"
        self.sock.sendall(encode_command([b"PSYNC", b"?", b"-1"]))
        line = self._line()
        while line == b"":
            line = self._line()
        assert line.startswith(b"+FULLRESYNC"), line
        self.offset = int(line.split()[2])
        line = self._line()
        while line == b"":
            line = self._line()
        assert line.startswith(b"$"), line
        self._read_exact(int(line[1:]))
        self.parser = RequestParser()

    def _fill(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("master closed the replication link")
        self.buf += data

    def _line(self) -> bytes:
        while b"\n" not in self.buf:
            self._fill()
        end = self.buf.index(b"\n")
        line = bytes(self.buf[:end]).rstrip(b"\r")
        del self.buf[: end + 1]
        return line

    def _read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def drain(self) -> list[list[bytes]]:
        target = self.control.info_int("master_repl_offset")
        chunk = bytearray(self.buf)
        self.buf.clear()
        while self.offset + len(chunk) < target:
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("master closed the replication link")
            chunk += data
        self.offset += len(chunk)
        self.parser.feed(bytes(chunk))
        return self.parser.commands()

    def close(self) -> None:
        self.sock.close()


def inner_ops(stream: list[list[bytes]]) -> list[list[bytes]]:
    return [op for op in stream if op[0].lower() not in FRAMING]


@dataclass
class Mismatch:
    argv: list[bytes]
    what: str
    engine: object
    redis: object

    def __str__(self) -> str:
        return f"{b' '.join(self.argv)!r}: {self.what}: engine={self.engine!r} redis={self.redis!r}"


def ops_match(engine: list[list[bytes]], real: list[list[bytes]], slack_ms: int = 5000) -> bool:
    """Equal ops, except absolute times right after PXAT/PEXPIREAT may differ a little."""
    if len(engine) != len(real):
        return False
    for a, b in zip(engine, real, strict=True):
        if len(a) != len(b):
            return False
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x == y:
                continue
            timed = i >= 2 and (a[i - 1].lower() in TIME_TOKENS or a[0].lower() == b"pexpireat")
            if not (timed and x.lstrip(b"-").isdigit() and y.lstrip(b"-").isdigit()):
                return False
            if abs(int(x) - int(y)) > slack_ms:
                return False
    return True


Normalizer = Callable[[Reply], Reply]


@dataclass
class Dual:
    """The same commands on the engine (``runner``) and on a real master (``raw``), whose
    replies are compared as a client speaking protocol ``resp`` receives them."""

    proc: RedisProc
    resp: int = 2
    runner: Runner = field(init=False)
    raw: RawClient = field(init=False)
    tap: StreamTap = field(init=False)
    mismatches: list[Mismatch] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.runner = Runner(now_ms=NOW)
        self.raw = RawClient(self.proc.port, self.resp)
        self.tap = StreamTap(self.proc.port, RawClient(self.proc.port))
        self.tap.drain()

    def engine(self, argv: list[bytes], **overrides: object) -> Reply | Block:
        """The engine's reply to ``argv`` as this protocol's client reads it."""
        return wire(self.runner.execute(argv, **overrides), self.resp)

    def run(
        self,
        *args: Arg,
        normalize: Normalizer | None = None,
        check_ops: bool = True,
        ops_in_any_order: bool = False,
    ) -> tuple[Reply, Reply]:
        argv = argv_of(args)
        real = self.raw.call(argv)
        mine = self.engine(argv)
        real_ops = inner_ops(self.tap.drain())
        engine_ops = self.runner.last_ops
        if ops_in_any_order:
            real_ops, engine_ops = sorted(real_ops), sorted(engine_ops)
        a = normalize(mine) if normalize else mine  # type: ignore[arg-type]
        b = normalize(real) if normalize else real
        slack = CLOCK_SLACK.get(argv[0].lower())
        if slack and isinstance(a, int) and isinstance(b, int) and a >= 0 and b >= 0:
            a = b if abs(a - b) <= slack else a  # the two clocks differ by a few ms
        if not replies_equal(a, b):
            self.mismatches.append(Mismatch(argv, "reply", mine, real))
        elif check_ops and not ops_match(engine_ops, real_ops):
            self.mismatches.append(Mismatch(argv, "propagation", engine_ops, real_ops))
        return mine, real  # type: ignore[return-value]

    def script(self, lines: str) -> None:
        """One command per line, words split on spaces; ``#`` starts a comment line.

        A leading ``~`` compares the reply as an unordered collection (hashtable-encoded
        results come in an order Redis randomises), ``~~`` does so for a SCAN reply and
        for the propagated ops (keys expired in scan order). ``!sleep <s>`` waits.
        """
        for line in lines.strip().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("!sleep"):
                time.sleep(float(line.split()[1]))
            elif line.startswith("~~"):
                self.run(*line[2:].split(), normalize=unordered_scan, ops_in_any_order=True)
            elif line.startswith("~"):
                self.run(*line[1:].split(), normalize=unordered)
            else:
                self.run(*line.split())

    def stats(self) -> None:
        """keyspace_hits / keyspace_misses / expired_keys must agree with INFO stats."""
        text = self.raw.call([b"INFO", b"stats"])
        assert isinstance(text, bytes)
        info = dict(line.split(":", 1) for line in text.decode().splitlines() if ":" in line)
        st = self.runner.stats
        for name, mine in [
            ("keyspace_hits", st.keyspace_hits),
            ("keyspace_misses", st.keyspace_misses),
            ("expired_keys", st.expired_keys),
        ]:
            if int(info[name]) != mine:
                self.mismatches.append(Mismatch([b"INFO", b"stats"], name, mine, info[name]))

    def digest(self) -> None:
        real = self.raw.call([b"DEBUG", b"DIGEST"])
        mine = self.runner.keyspace.digest()
        if real != SimpleString(mine):
            self.mismatches.append(Mismatch([b"DEBUG", b"DIGEST"], "digest", mine, real))

    def assert_clean(self) -> None:
        self.digest()
        self.stats()
        assert not self.mismatches, "\n".join(map(str, self.mismatches))


def replies_equal(a: object, b: object) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(replies_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def unordered(reply: Reply) -> Reply:
    """Hashtable-encoded collections reply in an order Redis randomises: sort them (a
    RESP3 map by its pairs; the container's type is kept)."""
    if isinstance(reply, MapReply):
        pairs = sorted(zip(reply[::2], reply[1::2], strict=True), key=repr)
        return MapReply([x for pair in pairs for x in pair])
    if isinstance(reply, list):
        return type(reply)(sorted(reply, key=repr))
    return reply


def unordered_scan(reply: Reply) -> Reply:
    if isinstance(reply, list) and len(reply) == 2 and isinstance(reply[1], list):
        return [reply[0], sorted(reply[1], key=repr)]
    return reply


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def dual(redis_factory: RedisFactory, request: pytest.FixtureRequest) -> Iterator[Dual]:
    proc = redis_factory.start({"repl-ping-replica-period": "3600", "repl-diskless-sync": "no"})
    d = Dual(proc, request.param)
    # no background expiry cycle: keys expire only when looked up, on both sides
    assert d.raw.call([b"DEBUG", b"SET-ACTIVE-EXPIRE", b"0"]) == SimpleString("OK")
    yield d
    d.raw.close()
    d.tap.close()


STRINGS = """
set k v
get k
SET k v2 nx
set k v3 XX GET
set k v4 get xx get
set k 1 KEEPTTL
set k 1 keepttl ex 10
set k v ex 100
ttl k
set k v px 100000 nx
set k v pxat 99999999999999 xx
set k v exat 9999999999
expiretime k
set k v ex 0
set k v ex -1
set k v ex abc
set k v px 9223372036854775807
set k v ex 9223372036854775
set k v ex 9223372036854776
set k v exat 9223372036854775
set k v ex 10 ex 20
set k v nx nx
set k v foo
set k v ex
set k v keepttl persist
set k v get
set k v get nx
set new v get nx
set new2 v get xx
setnx k v
setnx k2 v
setex k3 10 v
setex k3 0 v
setex k3 abc v
psetex k3 1000 v
psetex k3 -1 v
get k3
getset k3 w
getset nokey w
getdel k3
getdel k3
getex k
getex k ex 100
getex k px 100000
getex k exat 99999999999
getex k pxat 99999999999999
getex k persist
getex k persist
getex k ex 10 persist
getex k persist ex 10
getex k nx
getex k ex
getex k ex 0
getex k ex bad
getex nokey ex bad
getex k pxat 1
exists k
mset a 1 b 2 c 3
mget a b c nokey
msetnx a 1 z 2
msetnx y 1 z 2
mget y z
append a xyz
append newappend xyz
append newappend ""
strlen a
strlen nokey
incr i
incr i
incrby i 10
incrby i -20
incrby i abc
decr i
decrby i 5
decrby i -9223372036854775808
set i 9223372036854775807
incr i
set i -9223372036854775808
decr i
set i 007
incr i
set i +1
incr i
set i 1.5
incr i
incrbyfloat f 1.5
incrbyfloat f -0.25
incrbyfloat f 1e5
incrbyfloat f 3.0e-2
incrbyfloat f abc
incrbyfloat f inf
incrbyfloat f2 1.7976931348623157e308
incrbyfloat f2 1e308
incrbyfloat f3 0x1p3
set f4 1e1
incrbyfloat f4 0
set f5 10.50
incrbyfloat f5 0.1
getrange a 0 1
getrange a -2 -1
getrange a 1 0
getrange a -100 100
getrange a 5 100
getrange a -1 -5
getrange nokey 0 -1
getrange a x 1
setrange sr 5 hi
get sr
setrange sr 0 HEY
setrange sr 10 ""
setrange sr2 0 ""
setrange sr -1 x
setrange sr 536870912 x
setrange sr x y
get sr
lpush wl x
get wl
getset wl v
getdel wl
getex wl
append wl x
strlen wl
incr wl
incrbyfloat wl 1
getrange wl 0 1
setrange wl 0 x
set wl v get
mget wl
"""


KEYS = """
set a 1
set b 2
lpush l x
sadd s m
hset h f v
zadd z 1 m
type a
type l
type s
type h
type z
type nokey
exists a b nokey a
del a nokey
del nokey
unlink b l
expire s 100
ttl s
pttl s
expire s 50 gt
expire s 200 GT
expire s 100 lt
expire s 300 nx
expire h 300 xx
expire h 300 nx
expire h 200 XX
expire h 100 gt
expire h 1000 lt
expire h 10 nx xx
expire h 10 gt lt
expire h 10 bogus
expire h abc
expire h 9223372036854775807
expire h -9223372036854775808
pexpire h 9223372036854775807
expire nokey 10
expireat h 99999999999
pexpireat h 99999999999999
pexpireat h 99999999999999 XX GT
expiretime h
pexpiretime h
expiretime z
expiretime nokey
ttl z
ttl nokey
persist h
persist h
persist nokey
expire h -1
exists h
pexpireat s 1
exists s
expireat z 1 nx
set r1 v
expire r1 100
rename r1 r2
ttl r2
rename r2 r2
renamenx r2 r2
rename nokey x
renamenx nokey x
set r3 v
renamenx r2 r3
renamenx r2 r4
rename r4 r3
get r3
ttl r3
dbsize
keys *
keys r*
keys nomatch*
keys z
keys [a-z]3
keys *\\*
scan abc
scan +0
scan 0 count 0
scan 0 count x
scan 0 match
scan 0 bogus 1
scan 18446744073709551616
touch r3 z nokey
flushdb foo
flushdb sync
dbsize
randomkey
flushall
flushall async
"""


HASHES = """
hset h a 1 b 2
hset h a 1
hset h a 2 c 3
hset h a
hmset h d 4
hmset h d
hsetnx h d 5
hsetnx h e 5
hsetnx h2 x y
hget h a
hget h zz
hget nokey a
hmget h a zz b
hmget nokey a b
hgetall h
hgetall nokey
hkeys h
hvals h
hlen h
hlen nokey
hexists h a
hexists h zz
hstrlen h a
hstrlen h zz
hincrby h a 10
hincrby h new 5
hincrby h a abc
hincrby h a 9223372036854775807
hincrby nokey2 f 3
hset h s abc
hincrby h s 1
hincrbyfloat h s 1
hincrbyfloat h fl 1.5
hincrbyfloat h fl 0.1
hincrbyfloat h fl -1.6
hincrbyfloat h fl abc
hincrbyfloat h fl inf
hset h inf inf
hincrbyfloat h inf 1
hincrbyfloat nokey3 f 2.5e3
hdel h a b zz
hdel h zz
hdel nokey a
hdel h2 x
exists h2
hscan h 0
hscan h 0 match d*
hscan h 0 count 1
hscan h x
hscan nokey 0
hscan nokey 0 bogus
hscan h 0 bogus
set str v
hset str a 1
hget str a
hmget str a
hgetall str
hdel str a
hlen str
hincrby str a 1
hincrbyfloat str a 1
hscan str 0
"""


LISTS = """
rpush l a b c
lpush l z y
rpushx l d
lpushx nol x
rpushx nol x
lrange l 0 -1
lrange l -3 -1
lrange l 5 1
lrange l -100 100
lrange l x 1
lrange nol 0 -1
llen l
llen nol
lindex l 0
lindex l -1
lindex l 100
lindex l x
lindex nol 0
lset l 0 Z
lset l 100 x
lset l x x
lset nol 0 x
linsert l before a A
linsert l AFTER c C
linsert l before nothere x
linsert l middle a x
linsert nol before a x
lrange l 0 -1
rpush l a a a
lpos l a
lpos l a rank 2
lpos l a rank -1
lpos l a count 0
lpos l a count 2 rank -2
lpos l a maxlen 3
lpos l a rank 0
lpos l a count -1
lpos l a maxlen -1
lpos l a bogus
lpos l a rank x
lpos nol a
lpos nol a count 1
lrem l 2 a
lrem l -1 a
lrem l 0 zz
lrem l x a
lrem nol 0 a
ltrim l 0 100
ltrim l 1 -2
ltrim l 5 1
exists l
ltrim nol 0 1
rpush l 1 2 3 4 5
lpop l
rpop l
lpop l 2
rpop l 0
rpop l -1
lpop l 1 2
rpop l 10
lpop l
lpop l 3
rpush src a b c
lmove src dst left right
lmove src dst RIGHT left
lmove src src left right
lmove src dst up left
lmove nosrc dst left left
rpoplpush src dst
rpoplpush src dst
lrange dst 0 -1
blpop nol dst 0
brpop nol dst 0.01
blpop nol x
blpop nol -1
blpop nol 1e400
blpop nol inf
rpush src a b
blmove src dst left right 0
brpoplpush src dst 0
blmove src dst left bad 0
blmove src dst left right -1
set str v
lpush str a
rpushx str a
lrange str 0 1
llen str
lindex str 0
lset str 0 a
linsert str before a b
lpos str a
lrem str 0 a
ltrim str 0 1
lpop str
rpop str 1
lmove str dst left left
lmove dst str left left
rpoplpush str dst
blpop str 0
blpop nol str 0
brpoplpush str dst 0
"""


SETS = """
sadd s 3 1 2 2
sadd s 1
smembers s
sadd s -5 100
smembers s
sadd t 2 x
sismember s 2
sismember s 9
sismember nos 1
smismember s 2 9 1
smismember nos a
scard s
scard nos
srem s 100 9
srem nos a
sinter s t
sinter s nos
sinter nos s
~sunion s t nos
sdiff s t
sdiff s s
sdiff nos s
sinterstore d s t
smembers d
sinterstore d s nos
exists d
sunionstore d s t
sdiffstore d s t
smembers d
sdiffstore d2 t t
sunionstore d3 nos
smove s t 1
smove s t 404
smove nos t 1
smove s s 2
smove s newdst 2
smembers newdst
sadd one only
spop one
exists one
spop nos
spop nos 3
spop s 0
sadd all 1 2 3
spop all 10
exists all
spop s 1 2
spop s -1
srandmember nos
srandmember nos 3
srandmember s 0
srandmember s 100
srandmember s x
srandmember s 1 2
srandmember s -9223372036854775808
sscan s 0
sscan s 0 match 1*
sscan s x
sscan nos 0
set str v
sadd str a
srem str a
smembers str
sismember str a
smismember str a
scard str
spop str
srandmember str
smove str s a
smove s str -5
sinter s str
sunion s str
sdiff s str
sinterstore d s str
sscan str 0
"""


ZSETS = """
zadd z 1 a 2 b 3 c
zadd z ch 1 a 5 b
zadd z nx 10 a 10 new
zadd z xx 20 a 20 nothere
zadd z gt 1 a
zadd z gt ch 30 a
zadd z lt ch 25 a 1 c
zadd z xx nx 1 a
zadd z gt lt 1 a
zadd z nx gt 1 a
zadd z incr 1 a 2 b
zadd z x a
zadd z nan a
zadd z nx 1
zadd z 1 a 2
zadd z incr 5 a
zadd z incr nx 5 a
zadd z incr xx 5 nothere
zadd z incr gt -100 a
zadd z 1e400 big
zadd z inf top -inf bottom
zadd z incr -inf top
zincrby z 0.1 c
zincrby z 0.2 c
zincrby z x c
zincrby z 1 fresh
zincrby z nx c
zincrby noz 3 m
zscore z c
zscore z nothere
zscore noz a
zmscore z a c nothere
zmscore noz a
zcard z
zcard noz
zcount z -inf +inf
zcount z (1 5
zcount z 1 (5
zcount z 5 1
zcount z x 1
zcount noz 0 1
zrange z 0 -1
zrange z 0 -1 withscores
zrange z -2 -1 WITHSCORES
zrange z 5 1
zrange z 0 -1 rev
zrange z 0 1 rev withscores
zrange z (1 +inf byscore
zrange z +inf -inf byscore rev withscores
zrange z -inf +inf byscore limit 1 2
zrange z -inf +inf byscore limit -1 2
zrange z -inf +inf byscore limit 0 -1
zrange z -inf +inf byscore limit 100 1
zrange z +inf -inf byscore rev limit 1 1
zrange z 0 1 limit 0 1
zrange z 0 1 bogus
zrange z x 1
zrange z x 1 byscore
zrange z 0 1 byscore byscore
zrange z 0 1 byscore bylex
zrange z - + bylex withscores
zrange noz 0 -1
zrangebyscore z -inf +inf withscores
zrangebyscore z (1 (5
zrangebyscore z 1 5 limit 1 1
zrangebyscore z 1 5 rev
zrevrangebyscore z +inf -inf
zrevrangebyscore z 5 1 withscores limit 0 2
zrevrange z 0 1
zrevrange z 0 -1 withscores
zrevrange z 0 1 rev
zrevrange z 0 1 byscore
zrank z c
zrank z nothere
zrank noz a
zrevrank z c
zadd lex 0 a 0 b 0 c 0 d 0 e
zrange lex - + bylex
zrange lex [b (d bylex
zrange lex (b [d bylex
zrange lex + - bylex rev
zrange lex [d [b bylex rev limit 1 5
zrange lex - + bylex limit 2 2
zrange lex [c [a bylex
zrange lex (a (a bylex
zrange lex a c bylex
zrange lex - +x bylex
zpopmin z
zpopmax z
zpopmin z 2
zpopmax z 0
zpopmin z -1
zpopmin z 1 2
zpopmin noz
zpopmin noz 2
bzpopmin noz z 0
bzpopmax noz z 0.01
bzpopmin noz x
bzpopmin noz -1
zrem z a nothere
zrem noz a
zremrangebyrank lex 0 1
zremrangebyrank lex 5 10
zremrangebyrank lex x 1
zremrangebyrank noz 0 1
zremrangebyscore lex -inf (1
zremrangebyscore lex x 1
zremrangebyscore lex -inf +inf
exists lex
zremrangebyscore noz 0 1
zadd z2 1.5 a 2 b 3.25 c 100000000000000000 d
zscan z2 0
zscan z2 0 match a*
zscan z2 x
zscan noz 0
zadd z3 0 only
zrem z3 only
exists z3
set str v
zadd str 1 a
zrem str a
zscore str a
zmscore str a
zincrby str 1 a
zcard str
zcount str 0 1
zrange str 0 1
zrangebyscore str 0 1
zrank str a
zpopmin str
bzpopmin str 0
zremrangebyrank str 0 1
zremrangebyscore str 0 1
zscan str 0
"""


@pytest.mark.parametrize(
    "name,script",
    [
        ("strings", STRINGS),
        ("keys", KEYS),
        ("hashes", HASHES),
        ("lists", LISTS),
        ("sets", SETS),
        ("zsets", ZSETS),
    ],
)
def test_scripts_match_redis(dual: Dual, name: str, script: str) -> None:
    dual.script(script)
    dual.assert_clean()


LAZY_EXPIRY = """
set e1 v px 150
set e2 v px 150
set e3 v px 150
set e4 v px 150
set e5 v px 150
set e6 v px 150
set e7 v px 150
set e8 1 px 150
hset e9 f v
pexpire e9 150
rpush e10 a
pexpire e10 150
sadd e11 m
pexpire e11 150
zadd e12 1 m
pexpire e12 150
set e13 v px 150
set e14 v px 150
set e15 v px 150
set e16 v px 150
sadd s1 a b
sadd s2 b c
sadd e17 x
pexpire e17 150
set e18 v px 150
set e19 v px 150
set e20 v px 150
set e21 v px 150
set e22 v px 150
set e23 v px 150
set keep v ex 1000
set plain v
!sleep 0.3
dbsize
~keys *
get e1
append e2 x
set e3 v
del e4
exists e5
type e6
ttl e7
incr e8
hset e9 g w
lpush e10 b
sadd e11 n
zadd e12 2 n
rename e13 other
getset e14 w
mset e15 a e16 b
sinterstore e17 s1 s2
pttl e18
getex e19 persist
expire e20 100
persist e21
touch e22 keep plain
lrange e23 0 -1
~~scan 0 count 1000
dbsize
select 1
set x1 v px 100
set x2 v px 100
set x3 v px 100
!sleep 0.25
~~randomkey
dbsize
"""


def test_lazy_expiry_matches_redis(dual: Dual) -> None:
    """Keys found expired by lookups are deleted and propagated exactly as on a master."""
    dual.script(LAZY_EXPIRY)
    dual.assert_clean()


def test_lazyfree_configs_propagate_unlink(dual: Dual) -> None:
    for name in (b"lazyfree-lazy-expire", b"lazyfree-lazy-user-del"):
        assert dual.raw.call([b"CONFIG", b"SET", name, b"yes"]) == SimpleString("OK")
    dual.runner.lazyfree_lazy_expire = True
    dual.runner.lazyfree_lazy_user_del = True
    dual.script("""
    set a v px 100
    set b v
    set c v
    set d v
    !sleep 0.2
    get a
    expire b -5
    getex c exat 1
    getdel d
    del nothing
    """)
    dual.assert_clean()


def test_blocked_clients_served_later_match_redis(dual: Dual) -> None:
    """A push that wakes a blocked client: the push, then the pop/move as its own op."""
    cases: list[tuple[list[Arg], list[Arg], bytes]] = [
        (["blpop", "q1", "q2", 0], ["rpush", "q2", "a", "b"], b"q2"),
        (["brpop", "q3", 0], ["lpush", "q3", "x"], b"q3"),
        (["blmove", "q4", "d4", "left", "right", 0], ["rpush", "q4", "v"], b"q4"),
        (["brpoplpush", "q5", "d5", 0], ["rpush", "q5", "v"], b"q5"),
        (["bzpopmin", "z1", "z2", 0], ["zadd", "z2", 2, "b", 1, "a"], b"z2"),
        (["bzpopmax", "z3", 0], ["zadd", "z3", 2, "b", 1, "a"], b"z3"),
    ]
    for blocking, push, ready_key in cases:
        waiter = RawClient(dual.proc.port, dual.resp)
        argv = argv_of(blocking)
        waiter.sock.sendall(encode_command(argv))
        assert isinstance(dual.runner.execute(argv), Block)
        # wait until the real server has the client blocked
        deadline = time.monotonic() + 5
        while b"blocked_clients:1" not in dual.raw.call([b"INFO", b"clients"]):  # type: ignore[operator]
            assert time.monotonic() < deadline, "client never blocked"
            time.sleep(0.005)
        push_argv = argv_of(push)
        assert replies_equal(dual.engine(push_argv), dual.raw.call(push_argv))
        engine_ops = list(dual.runner.last_ops)
        served = dual.engine(argv, unblocking=True, unblock_key=ready_key)
        engine_ops += dual.runner.last_ops
        real_reply = waiter.call([b"PING"])  # the blocked reply arrives first
        real_ops = inner_ops(dual.tap.drain())
        waiter.close()
        if not replies_equal(served, real_reply):
            dual.mismatches.append(Mismatch(argv, "served reply", served, real_reply))
        if not ops_match(engine_ops, real_ops):
            dual.mismatches.append(Mismatch(argv, "served propagation", engine_ops, real_ops))
    dual.assert_clean()


ENCODINGS = """
# hashes past 512 fields or 64-byte values become hashtables (unordered replies)
hset small f1 v1 f2 v2
hgetall small
~~hscan small 0
hset longval f 0123456789012345678901234567890123456789012345678901234567890123456789
~hgetall longval
# intsets past 512 members and mixed sets
sadd ints 5 -3 100 0
smembers ints
sadd ints x
~smembers ints
srem ints x
~smembers ints
~~sscan ints 0
sadd ints2 7 -1 3
sscan ints2 0
# zsets past 128 members or 64-byte members become skiplists
zadd zbig 1 0123456789012345678901234567890123456789012345678901234567890123456789 2 b
zrange zbig 0 -1 withscores
~~zscan zbig 0 count 100
zadd zsmall 1.5 a 100000000000000000 b -0 c inf d
zscan zsmall 0
zrange zsmall 0 -1 withscores
"""


def test_encoding_transitions_match_redis(dual: Dual) -> None:
    dual.script(ENCODINGS)
    for i in range(130):
        dual.run("hset", "h", f"field{i}", i)  # still a listpack (512 entries by default)
        dual.run("zadd", "z", i * 0.5, f"m{i}")  # a skiplist past 128
    dual.run("hgetall", "h")
    for i in range(130, 520):
        dual.run("hset", "h", f"field{i}", i)
    for i in range(520):
        dual.run("sadd", "s", i * 7)
    dual.run("sadd", "s2", *range(512))
    dual.run("sadd", "s2", 512)
    dual.stats()
    dual.script("""
    ~hgetall h
    ~hkeys h
    hlen h
    ~smembers s
    scard s
    zrange z 0 5 withscores
    zrange z 120 -1
    zscore z m101
    zrank z m101
    zrange z 10 30 byscore limit 2 3
    """)
    for key, command in [(b"h", b"hscan"), (b"s", b"sscan"), (b"z", b"zscan"), (b"s2", b"sscan")]:
        found = {}
        for side, call in (("engine", dual.engine), ("redis", dual.raw.call)):
            items = full_scan(call, [command, key], [b"COUNT", b"17"])
            found[side] = set(
                items if command == b"sscan" else zip(items[::2], items[1::2], strict=True)
            )
        if found["engine"] != found["redis"]:
            dual.mismatches.append(Mismatch([command, key], "iteration", *found.values()))
    dual.digest()  # the two sides made different numbers of SCAN calls: no stats check
    assert not dual.mismatches, "\n".join(map(str, dual.mismatches))


def full_scan(
    call: Callable[[list[bytes]], object], head: list[bytes], tail: list[bytes]
) -> list[bytes]:
    """Every element a SCAN-family iteration returns, from cursor 0 back to 0."""
    out: list[bytes] = []
    cursor = b"0"
    while True:
        reply = call([*head, cursor, *tail])
        assert isinstance(reply, list) and isinstance(reply[1], list)
        cursor = reply[0]
        out += reply[1]
        if cursor == b"0":
            return out


def test_full_keyspace_scan_iterates_everything(dual: Dual) -> None:
    for i in range(300):
        dual.run("set", f"key:{i}", i)
    dual.run("hset", "hash", "f", "v")
    expected = sorted(f"key:{i}".encode() for i in range(300))
    for call in (dual.engine, dual.raw.call):
        assert sorted(full_scan(call, [b"SCAN"], [b"MATCH", b"key:*", b"COUNT", b"25"])) == expected
    dual.run("scan", 0, "type", "hash", "count", 1000)
    dual.assert_clean()


def test_random_commands_have_redis_shapes(dual: Dual) -> None:
    """SPOP/SRANDMEMBER/RANDOMKEY pick at random: compare shapes and propagation kinds."""
    members = [str(i).encode() for i in range(40)]
    dual.run("sadd", "s", *members)
    dual.run("sadd", "t", *members)
    for argv, expect_len in [
        ([b"srandmember", b"s"], None),
        ([b"srandmember", b"s", b"5"], 5),
        ([b"srandmember", b"s", b"-50"], 50),
        ([b"srandmember", b"s", b"39"], 39),
        ([b"srandmember", b"s", b"100"], 40),
    ]:
        mine = dual.engine(argv)
        real = dual.raw.call(argv)
        for reply in (mine, real):
            if expect_len is None:
                assert reply in members
            else:
                assert isinstance(reply, list) and len(reply) == expect_len
                assert set(reply) <= set(members)
                if expect_len <= 40:
                    assert len(set(reply)) == expect_len
    for count in (3, 35):  # few popped (picked) / most popped (survivors picked)
        for key in (b"s", b"t"):
            argv = [b"SPOP", key, b"%d" % count]
            reply = dual.raw.call(argv) if key == b"s" else dual.engine(argv)
            ops = inner_ops(dual.tap.drain()) if key == b"s" else dual.runner.last_ops
            assert isinstance(reply, list) and len(reply) == count
            assert sorted(ops) == sorted([b"SREM", key, m] for m in reply)  # type: ignore[misc]
    mine = dual.engine([b"spop", b"t"])
    assert dual.runner.last_ops == [[b"SREM", b"t", mine]]
    real = dual.raw.call([b"spop", b"s"])
    assert inner_ops(dual.tap.drain()) == [[b"SREM", b"s", real]]
    assert dual.raw.call([b"randomkey"]) in (b"s", b"t")
    assert dual.engine([b"randomkey"]) in (b"s", b"t")


def test_writable_replica_matches_redis(redis_factory: RedisFactory) -> None:
    """On a replica, expired keys look missing but stay until the master's DEL; a write
    on a writable replica deletes them locally (and propagates nothing)."""
    master = redis_factory.start({"repl-diskless-sync-delay": "0"})
    replica = redis_factory.start({"replica-read-only": "no"})
    master.client().execute_command("DEBUG", "SET-ACTIVE-EXPIRE", "0")
    replica.client().execute_command("REPLICAOF", "127.0.0.1", master.port)
    for _ in range(500):
        if replica.info().get("master_link_status") == "up":
            break
        time.sleep(0.01)
    m = RawClient(master.port)
    rep = RawClient(replica.port)
    runner = Runner(now_ms=NOW)
    runner.mode = "replica_apply"
    for argv in ([b"set", b"a", b"1", b"px", b"100"], [b"set", b"b", b"1", b"px", b"100"]):
        m.call(argv)
        runner.execute(argv)
    deadline = time.monotonic() + 5
    while rep.call([b"DBSIZE"]) != 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.25)
    runner.mode = "replica_client"
    for argv in (
        [b"get", b"a"],
        [b"dbsize"],
        [b"exists", b"b"],
        [b"append", b"b", b"x"],
        [b"get", b"b"],
        [b"dbsize"],
    ):
        mine = wire(runner.execute(argv))
        real = rep.call(argv)
        assert replies_equal(mine, real), (argv, mine, real)
    assert runner.keyspace.digest() == rep.call([b"DEBUG", b"DIGEST"])
    m.close()
    rep.close()


# ----------------------------------------------------------------------------- property

KEYS_ = st.sampled_from([b"k1", b"k2", b"k3", b"k4"])
MEMBERS = st.sampled_from([b"a", b"b", b"c", b"1", b"2", b"10", b"-3", b"x" * 70])
INTS = st.integers(min_value=-5, max_value=5).map(lambda i: b"%d" % i)
FLOATS = st.sampled_from([b"0.1", b"1.5", b"-2.25", b"1e3", b"3", b"-0.5"])
TTLS = st.sampled_from([b"100", b"5000"])


def _cmd(*parts: st.SearchStrategy[bytes] | bytes) -> st.SearchStrategy[list[bytes]]:
    return st.tuples(*(p if isinstance(p, st.SearchStrategy) else st.just(p) for p in parts)).map(
        list
    )


COMMAND = st.one_of(
    _cmd(b"set", KEYS_, MEMBERS),
    _cmd(b"set", KEYS_, INTS, b"EX", TTLS),
    _cmd(b"set", KEYS_, MEMBERS, b"NX", b"GET"),
    _cmd(b"getset", KEYS_, INTS),
    _cmd(b"append", KEYS_, MEMBERS),
    _cmd(b"incrby", KEYS_, INTS),
    _cmd(b"incrbyfloat", KEYS_, FLOATS),
    _cmd(b"setrange", KEYS_, INTS.filter(lambda b: not b.startswith(b"-")), MEMBERS),
    _cmd(b"getdel", KEYS_),
    _cmd(b"getex", KEYS_, b"PERSIST"),
    _cmd(b"mset", KEYS_, MEMBERS, KEYS_, INTS),
    _cmd(b"del", KEYS_, KEYS_),
    _cmd(b"expire", KEYS_, TTLS),
    _cmd(b"expire", KEYS_, TTLS, st.sampled_from([b"NX", b"XX", b"GT", b"LT"])),
    _cmd(b"persist", KEYS_),
    _cmd(b"rename", KEYS_, KEYS_),
    _cmd(b"renamenx", KEYS_, KEYS_),
    _cmd(b"hset", KEYS_, MEMBERS, MEMBERS),
    _cmd(b"hincrby", KEYS_, MEMBERS, INTS),
    _cmd(b"hincrbyfloat", KEYS_, MEMBERS, FLOATS),
    _cmd(b"hdel", KEYS_, MEMBERS),
    _cmd(b"hgetall", KEYS_),
    _cmd(b"lpush", KEYS_, MEMBERS, MEMBERS),
    _cmd(b"rpush", KEYS_, MEMBERS),
    _cmd(b"lpop", KEYS_),
    _cmd(b"rpop", KEYS_, st.sampled_from([b"1", b"2"])),
    _cmd(b"lrem", KEYS_, INTS, MEMBERS),
    _cmd(b"ltrim", KEYS_, INTS, INTS),
    _cmd(b"linsert", KEYS_, st.sampled_from([b"BEFORE", b"AFTER"]), MEMBERS, MEMBERS),
    _cmd(b"lset", KEYS_, INTS, MEMBERS),
    _cmd(
        b"lmove",
        KEYS_,
        KEYS_,
        st.sampled_from([b"LEFT", b"RIGHT"]),
        st.sampled_from([b"LEFT", b"RIGHT"]),
    ),
    _cmd(b"lrange", KEYS_, INTS, INTS),
    _cmd(b"sadd", KEYS_, MEMBERS, MEMBERS),
    _cmd(b"srem", KEYS_, MEMBERS),
    _cmd(b"smove", KEYS_, KEYS_, MEMBERS),
    _cmd(b"sinterstore", KEYS_, KEYS_, KEYS_),
    _cmd(b"sunionstore", KEYS_, KEYS_, KEYS_),
    _cmd(b"sdiffstore", KEYS_, KEYS_, KEYS_),
    _cmd(b"zadd", KEYS_, FLOATS, MEMBERS),
    _cmd(b"zadd", KEYS_, st.sampled_from([b"NX", b"XX", b"GT", b"LT", b"CH"]), INTS, MEMBERS),
    _cmd(b"zincrby", KEYS_, FLOATS, MEMBERS),
    _cmd(b"zrem", KEYS_, MEMBERS),
    _cmd(b"zpopmin", KEYS_),
    _cmd(b"zpopmax", KEYS_, st.sampled_from([b"1", b"2"])),
    _cmd(b"zremrangebyrank", KEYS_, INTS, INTS),
    _cmd(b"zremrangebyscore", KEYS_, FLOATS, FLOATS),
    _cmd(b"zrange", KEYS_, b"0", b"-1", b"WITHSCORES"),
    _cmd(b"zrange", KEYS_, FLOATS, FLOATS, b"BYSCORE", b"REV"),
    _cmd(b"type", KEYS_),
    _cmd(b"ttl", KEYS_),
    _cmd(b"get", KEYS_),
    _cmd(b"getrange", KEYS_, INTS, INTS),
    _cmd(b"strlen", KEYS_),
    _cmd(b"msetnx", KEYS_, MEMBERS, KEYS_, MEMBERS),
    _cmd(b"getex", KEYS_, b"EX", TTLS),
    _cmd(b"pexpireat", KEYS_, b"1"),  # in the past: deletes
    _cmd(b"set", KEYS_, MEMBERS, b"PXAT", b"1"),  # stored already expired
    _cmd(b"exists", KEYS_, KEYS_),
    _cmd(b"hsetnx", KEYS_, MEMBERS, MEMBERS),
    _cmd(b"hmget", KEYS_, MEMBERS, MEMBERS),
    _cmd(b"hstrlen", KEYS_, MEMBERS),
    _cmd(b"hlen", KEYS_),
    _cmd(b"lindex", KEYS_, INTS),
    _cmd(b"lpos", KEYS_, MEMBERS, b"RANK", st.sampled_from([b"1", b"-1", b"2"])),
    _cmd(b"rpoplpush", KEYS_, KEYS_),
    _cmd(b"llen", KEYS_),
    _cmd(b"sismember", KEYS_, MEMBERS),
    _cmd(b"smismember", KEYS_, MEMBERS, MEMBERS),
    _cmd(b"scard", KEYS_),
    _cmd(b"sinter", KEYS_, KEYS_),
    _cmd(b"sunion", KEYS_, KEYS_),
    _cmd(b"sdiff", KEYS_, KEYS_),
    _cmd(b"zscore", KEYS_, MEMBERS),
    _cmd(b"zmscore", KEYS_, MEMBERS, MEMBERS),
    _cmd(b"zrank", KEYS_, MEMBERS),
    _cmd(b"zrevrank", KEYS_, MEMBERS),
    _cmd(b"zcount", KEYS_, FLOATS, FLOATS),
    _cmd(b"zadd", KEYS_, b"INCR", FLOATS, MEMBERS),
    _cmd(b"zrangebyscore", KEYS_, b"-inf", b"+inf", b"LIMIT", INTS, INTS),
    _cmd(b"zrevrangebyscore", KEYS_, b"+inf", FLOATS, b"WITHSCORES"),
    _cmd(b"zrevrange", KEYS_, INTS, INTS),
    _cmd(b"zrange", KEYS_, b"-", b"+", b"BYLEX"),
    _cmd(b"bzpopmin", KEYS_, KEYS_, b"0"),  # only when something is there, see below
    _cmd(b"brpop", KEYS_, b"0"),
)

# Commands whose reply lists come from hashtables in an order Redis randomises.
UNORDERED = {b"hgetall", b"smembers", b"sinter", b"sunion", b"sdiff", b"keys"}
BLOCKING = {b"bzpopmin", b"brpop"}


def _would_serve(runner: Runner, argv: list[bytes]) -> bool:
    """True when a blocking pop finds data (or a wrong type) and so returns at once."""
    data = runner.keyspace.dbs[runner.db]
    now = runner.now_ms
    for key in argv[1:-1]:
        when = runner.keyspace.get_expire(runner.db, key)
        if key in data and (when is None or when >= now):
            return True
    return False


def test_random_command_sequences_match_redis(dual: Dual) -> None:
    """Random sequences of writes: same replies, same propagated ops, same digest."""

    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(st.lists(COMMAND, min_size=1, max_size=25))
    def check(commands: list[list[bytes]]) -> None:
        dual.raw.call([b"FLUSHALL"])
        dual.runner.execute([b"FLUSHALL"])
        dual.tap.drain()
        dual.mismatches.clear()
        for argv in commands:
            if argv[0] in BLOCKING and not _would_serve(dual.runner, argv):
                continue  # a real client would block
            dual.run(*argv, normalize=unordered if argv[0] in UNORDERED else None)
        dual.digest()
        assert not dual.mismatches, "\n".join(map(str, dual.mismatches))

    check()


# ----------------------------------------------------------------------------- command table

_BRIEF = """get set setnx setex psetex getset getdel getex mget mset msetnx append strlen incr decr
    incrby decrby incrbyfloat getrange setrange del unlink exists type expire pexpire expireat
    pexpireat ttl pttl expiretime pexpiretime persist keys scan rename renamenx randomkey touch
    dbsize flushdb flushall hset hsetnx hmset hget hmget hdel hlen hexists hgetall hkeys hvals
    hincrby hincrbyfloat hstrlen hscan lpush rpush lpushx rpushx lpop rpop llen lrange lindex
    lset lrem ltrim linsert lpos lmove rpoplpush blpop brpop blmove brpoplpush sadd srem
    smembers sismember smismember scard spop srandmember smove sinter sunion sdiff sinterstore
    sunionstore sdiffstore sscan zadd zrem zscore zmscore zincrby zcard zcount zrange
    zrangebyscore zrevrangebyscore zrevrange zrank zrevrank zpopmin zpopmax bzpopmin bzpopmax
    zremrangebyscore zremrangebyrank zscan"""
BRIEF_COMMANDS = set(_BRIEF.split())  # every command the data plane was asked for

# Flags COMMAND INFO shows that the engine's table must carry too.
_TABLE_FLAGS = {"write", "readonly", "denyoom", "fast", "blocking", "noscript", "no_multi"}


def test_command_table_matches_command_info(dual: Dual) -> None:
    """Arity, flags and key positions of every data command equal Redis's COMMAND INFO."""
    data_commands = sorted(
        name
        for name, cmd in COMMANDS.items()
        if cmd.handler.__module__.startswith("redisops.engine.datacmds")
    )
    reply = dual.raw.call([b"COMMAND", b"INFO", *(n.encode() for n in data_commands)])
    assert isinstance(reply, list)
    problems = []
    for name, info in zip(data_commands, reply, strict=True):
        assert isinstance(info, list), name
        cmd = COMMANDS[name]
        mine = (cmd.arity, set(cmd.flags) & _TABLE_FLAGS, cmd.first_key, cmd.last_key, cmd.key_step)
        flags = {str(f) for f in info[2]}  # type: ignore[union-attr]
        real = (info[1], flags & _TABLE_FLAGS, info[3], info[4], info[5])
        if mine != real:
            problems.append((name, mine, real))
    assert not problems
    assert set(data_commands) == BRIEF_COMMANDS


def test_blocking_commands_inside_multi_and_on_timeout(dual: Dual) -> None:
    """In MULTI a blocking pop cannot block: nil array (BLMOVE: nil bulk). On timeout the
    blocked client gets a nil array, BLMOVE included."""
    real = [dual.raw.call([b"MULTI"])]
    for argv in (
        [b"blpop", b"nol", b"0"],
        [b"blmove", b"nol", b"d", b"left", b"left", b"0"],
        [b"bzpopmin", b"noz", b"0"],
        [b"brpoplpush", b"nol", b"d", b"0"],
    ):
        real.append(dual.raw.call(argv))
    replies = dual.raw.call([b"EXEC"])
    dual.runner.in_multi = True
    mine = [
        dual.engine(argv)
        for argv in (
            [b"blpop", b"nol", b"0"],
            [b"blmove", b"nol", b"d", b"left", b"left", b"0"],
            [b"bzpopmin", b"noz", b"0"],
            [b"brpoplpush", b"nol", b"d", b"0"],
        )
    ]
    dual.runner.in_multi = False
    assert replies_equal(mine, replies)
    for argv in ([b"blmove", b"nol", b"d", b"left", b"left", b"0.05"], [b"brpop", b"nol", b"0.05"]):
        block = dual.runner.execute(argv)
        assert isinstance(block, Block) and block.deadline_ms > 0
        assert replies_equal(wire(block.timeout_reply, dual.resp), dual.raw.call(argv))


DIGEST_DATASET = """
set str hello
set num 12345
set strttl v ex 1000
rpush list a b c 1 2
rpush listttl x
expire listttl 1000
sadd intset 1 2 3 -7
sadd set a b 1
sadd setttl z
expire setttl 1000
hset hash f1 v1 f2 2
hset hashttl f v
expire hashttl 1000
zadd zset 1 a 2.5 b -inf c 1e20 d
zadd zsetttl 0 m
expire zsetttl 1000
select 5
set str other
rpush list c b a
"""


def test_digest_matches_redis_for_every_type(dual: Dual) -> None:
    dual.digest()  # empty: all zeros on both
    dual.script(DIGEST_DATASET)
    dual.runner.db = 0
    dual.raw.call([b"SELECT", b"0"])
    for key in dual.runner.keyspace.dbs[0]:
        real = dual.raw.call([b"DEBUG", b"DIGEST-VALUE", key, b"missing"])
        mine = [
            dual.runner.keyspace.digest_value(0, key),
            dual.runner.keyspace.digest_value(0, b"missing"),
        ]
        assert real == [SimpleString(d) for d in mine], key
    for i in range(200):  # big encodings: hashtable hash/set, skiplist zset
        dual.run("hset", "bighash", f"f{i}", i)
        dual.run("sadd", "bigset", f"m{i}")
        dual.run("zadd", "bigzset", i / 3, f"m{i}")
    dual.assert_clean()
    assert dual.runner.keyspace.digest() != "0" * 40


def test_rdb_size_estimate_is_exact_without_compression(redis_factory: RedisFactory) -> None:
    """The data section of a real RDB (``rdbcompression no``) has exactly the estimated size."""
    proc = redis_factory.start({"rdbcompression": "no", "dbfilename": "dump.rdb"})
    raw = RawClient(proc.port)
    path = proc.dir / "dump.rdb"
    raw.call([b"SAVE"])
    empty = path.stat().st_size
    runner = Runner()
    commands: list[list[Arg]] = [
        *(["set", f"s{i}", "v" * (i % 90)] for i in range(200)),
        *(["set", f"n{i}", i * 1_000_003] for i in range(100)),
        ["rpush", "list", *(f"item{j}" for j in range(3000))],
        ["sadd", "intset", *range(-40000, 40000, 300)],
        ["sadd", "set", *(f"m{j}" for j in range(600))],
        ["hset", "lphash", *(x for j in range(30) for x in (f"f{j}", j))],
        ["hset", "hthash", *(x for j in range(300) for x in (f"f{j}", f"value{j}"))],
        ["zadd", "lpz", *(x for j in range(60) for x in (j * 1.25, f"m{j}"))],
        ["zadd", "slz", *(x for j in range(500) for x in (j / 7, f"m{j}"))],
        *(["set", f"ttl{i}", "v", "ex", 1000] for i in range(50)),
        ["select", 9],
        ["set", "other-db", "x"],
    ]
    for command in commands:
        argv = argv_of(command)
        raw.call(argv)
        runner.execute(argv)
    raw.call([b"SAVE"])
    assert runner.keyspace.rdb_size_estimate() == path.stat().st_size - empty
    raw.close()


GLOB_KEYS = [
    b"hello",
    b"hallo",
    b"hxllo",
    b"heeeello",
    b"a*b",
    b"a?b",
    b"[x]",
    b"a\\b",
    b"\xff\xfe",
    b"-",
    b"",
    b"ab",
    b"a-z",
    b"b",
    b"z^",
]
GLOB_PATTERNS = [
    b"*",
    b"h?llo",
    b"h*llo",
    b"h[ae]llo",
    b"h[^e]llo",
    b"h[a-b]llo",
    b"a\\*b",
    b"a\\?b",
    b"\\[x\\]",
    b"[\\[]x*",
    b"a\\\\b",
    b"[\xf0-\xff]*",
    b"[a-]",
    b"[z-a]",
    b"a[",
    b"*[",
    b"[^",
    b"**",
    b"?",
    b"",
    b"[b-a]*",
    b"a*\\",
    b"*^*",
    b"[!a]*",
]


def test_glob_patterns_match_redis(dual: Dual) -> None:
    for key in GLOB_KEYS:
        dual.run(b"set", key, b"1")
    for pattern in GLOB_PATTERNS:
        dual.run(b"keys", pattern, normalize=unordered)
        dual.run(b"scan", b"0", b"match", pattern, b"count", b"1000", normalize=unordered_scan)
    dual.assert_clean()


# (setup, command) -> does the command touch key k for WATCH? Asked to Redis each time.
WATCH_CASES = [
    ("set k v", "set k w nx"),
    ("set k v", "set k w xx"),
    ("", "del k"),
    ("set k v", "del k"),
    ("set k v", "getset k v"),
    ("set k v", "getdel k"),
    ("set k v", "getex k"),
    ("set k v", "getex k persist"),
    ("set k v", "getex k ex 100"),
    ("set k v", "mset k v"),
    ("set k v", "msetnx k v"),
    ("set k v", "append k ''"),
    ("set k v", "setrange k 0 ''"),
    ("set k 1", "incrby k 0"),
    ("set k 1", "incrbyfloat k 0"),
    ("set k v", "expire k 100"),
    ("set k v", "expire k 100 xx"),
    ("set k v", "persist k"),
    ("set k v", "rename k k"),
    ("set k v", "rename k k2"),
    ("set k2 v", "rename k2 k"),
    ("set k v", "flushdb"),
    ("", "flushall"),
    ("hset k f v", "hset k f v"),
    ("hset k f v", "hsetnx k f v"),
    ("hset k f v", "hdel k zz"),
    ("hset k f 1", "hincrby k f 0"),
    ("rpush k a", "ltrim k 0 -1"),
    ("rpush k a", "lrem k 0 zz"),
    ("rpush k a", "linsert k before zz x"),
    ("rpush k a", "lset k 0 a"),
    ("rpush k a", "lpop k 0"),
    ("rpush k a b", "lpop k"),
    ("rpush k a", "rpoplpush k k"),
    ("rpush k2 a", "lmove k2 k left left"),
    ("rpush k a", "blpop k 0"),
    ("sadd k a", "sadd k a"),
    ("sadd k a", "srem k zz"),
    ("sadd k a", "smove k other zz"),
    ("sadd k a", "smove k k a"),
    ("sadd k2 a", "smove k2 k a"),
    ("sadd k2 a", "sinterstore k k2"),
    ("set k v", "sinterstore k nosuch"),
    ("", "sunionstore k nosuch"),
    ("sadd k a", "spop k 0"),
    ("sadd k a b", "spop k 1"),
    ("zadd k 1 a", "zadd k 1 a"),
    ("zadd k 1 a", "zadd k 2 a"),
    ("zadd k 1 a", "zincrby k 0 a"),
    ("zadd k 1 a", "zrem k zz"),
    ("zadd k 1 a", "zremrangebyscore k 5 6"),
    ("zadd k 1 a", "zpopmin k 0"),
    ("zadd k 1 a 2 b", "zpopmax k"),
    ("zadd k 1 a", "bzpopmin k 0"),
]


def test_watch_touches_match_redis(dual: Dual) -> None:
    """A command touches key ``k`` (failing a WATCH on it) exactly when Redis's does."""
    outcomes = set()
    for setup, command in WATCH_CASES:
        dual.raw.call([b"FLUSHALL"])
        dual.runner.execute([b"FLUSHALL"])
        for line in filter(None, [setup]):
            dual.runner.execute(argv_of(line.split()))
            dual.raw.call(argv_of(line.split()))
        argv = [b"" if w == "''" else w.encode() for w in command.split()]
        dual.raw.call([b"WATCH", b"k"])
        dual.raw.call(argv)
        dual.raw.call([b"MULTI"])
        dual.raw.call([b"PING"])
        exec_reply = dual.raw.call([b"EXEC"])  # a failed WATCH: *-1 in RESP2, _ in RESP3
        assert exec_reply == [SimpleString("PONG")] or exec_reply in (NIL_ARRAY, None)
        redis_touched = not isinstance(exec_reply, list)
        dual.runner.execute(argv)
        assert dual.runner.last is not None
        engine_touched = (0, b"k") in dual.runner.last.touched
        outcomes.add(redis_touched)
        if engine_touched != redis_touched:
            dual.mismatches.append(Mismatch(argv, "touches k", engine_touched, redis_touched))
    dual.tap.drain()
    assert outcomes == {True, False}
    assert not dual.mismatches, "\n".join(map(str, dual.mismatches))
