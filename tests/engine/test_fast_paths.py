"""The engine's fast paths do exactly what the general paths do (hypothesis).

* ``encode_command`` (unrolled for short commands) gives the bytes of the plain RESP
  encoding for any arguments, short or long;
* the backlog fed several writes at once holds exactly what feeding them one by one
  gives (blocks, trims, offsets);
* a replica applying a plain ``SET key value`` inline (no dispatch, no ExecContext) ends
  with the same datasets, TTLs, dirty counter and command count as a replica that takes
  the full path for every command (forced here by a client WATCHing a key on it).
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redisops.engine.backlog import Backlog
from redisops.engine.cluster import Cluster
from redisops.engine.resp import encode_command

# ============================================================================ encoding


def reference_encoding(argv: list[bytes]) -> bytes:
    out = b"*%d\r\n" % len(argv)
    for a in argv:
        out += b"$%d\r\n" % len(a) + a + b"\r\n"
    return out


arg = st.one_of(st.binary(max_size=40), st.binary(min_size=1000, max_size=1100))


@settings(max_examples=300, deadline=None)
@given(argv=st.lists(arg, min_size=1, max_size=7))
def test_encode_command_matches_plain_resp(argv: list[bytes]) -> None:
    assert encode_command(argv) == reference_encoding(argv)
    assert encode_command(tuple(argv)) == reference_encoding(argv)


# ============================================================================ inline SET

CONFIG = {
    "repl-diskless-sync-delay": "0",
    "repl-ping-replica-period": "3600",
    "enable-debug-command": "yes",
}
keys = st.sampled_from([b"a", b"b", b"c", b"d", b"list"])
value = st.binary(max_size=12)
write = st.one_of(
    st.tuples(st.just("SET"), keys, value),
    st.tuples(st.just("SET"), keys, value),  # plain SETs dominate, as in real streams
    st.tuples(st.just("SET"), keys, value, st.just(b"PX"), st.sampled_from([b"5", b"100000"])),
    st.tuples(st.just("SET"), keys, value, st.just(b"KEEPTTL")),
    st.tuples(st.just("PEXPIRE"), keys, st.sampled_from([b"5", b"100000"])),
    st.tuples(st.just("DEL"), keys),
    st.tuples(st.just("RPUSH"), st.just(b"list"), value),
    st.tuples(st.just("APPEND"), keys, value),
    st.tuples(st.just("FLUSHDB")),
    st.tuples(st.just("SWAPDB"), st.just(b"0"), st.just(b"1")),
)
op = st.one_of(
    st.tuples(st.just("db0"), write),
    st.tuples(st.just("db1"), write),
    st.tuples(st.just("multi"), st.lists(write, min_size=1, max_size=4)),
    st.tuples(st.just("run"), st.integers(1, 200)),
)


def state(c: Cluster, port: int) -> tuple[Any, ...]:
    n = c.node(port)
    ks = n.keyspace
    return (
        [dict(d) for d in ks.dbs[:2]],
        [dict(e) for e in ks.expires[:2]],
        n.dirty,
        n.stats["total_commands_processed"],
        n.master_repl_offset,
    )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op, min_size=1, max_size=30))
def test_inline_set_apply_equals_the_full_path(ops: list[tuple[Any, ...]]) -> None:
    c = Cluster(seed=7)
    for p in (7000, 7001, 7002):
        c.add_node(p, dict(CONFIG))
    c.replicate(7001, 7000)
    c.replicate(7002, 7000)
    watcher = c.client(7002)
    assert watcher.call("WATCH", "nobody-writes-this") == "OK"
    assert c.node(7002).watching, "7002 must take the full path"
    base_fast, base_full = state(c, 7001), state(c, 7002)
    db0, db1 = c.client(7000), c.client(7000)
    db1.call("SELECT", "1")
    # pipelined (send, no wait): replicas get several commands per segment, so inline
    # SETs and full-path commands mix inside one batch
    for kind, arg in ops:
        if kind == "run":
            c.run(arg)
        elif kind == "multi":
            db0.send("MULTI")
            for w in arg:
                db0.send(*w)
            db0.send("EXEC")
        else:
            (db0 if kind == "db0" else db1).send(*arg)
    c.run(10)
    assert c.run_until(lambda: c.in_sync(7000, 7001, 7002), 10_000)
    fast, full = state(c, 7001), state(c, 7002)
    assert fast[:2] == full[:2], "datasets or TTLs differ"
    assert fast[2] - base_fast[2] == full[2] - base_full[2], "dirty counters differ"
    assert fast[3] - base_fast[3] == full[3] - base_full[3], "command counts differ"
    assert fast[4] == full[4] == c.node(7000).master_repl_offset
    assert c.node(7002).watching


# ============================================================================ backlog


def blocks_of(b: Backlog) -> list[tuple[int, int, bytes]]:
    return [(blk.start, blk.size, bytes(blk.buf)) for blk in b.live_blocks()]


@settings(max_examples=300, deadline=None)
@given(
    size=st.sampled_from([16_384, 40_000, 1_048_576]),
    before=st.lists(st.integers(1, 30_000), max_size=4),
    pieces=st.lists(st.integers(1, 70_000), min_size=1, max_size=40),
)
def test_feeding_writes_at_once_equals_feeding_them_one_by_one(
    size: int, before: list[int], pieces: list[int]
) -> None:
    one, batch = Backlog(size, 100), Backlog(size, 100)
    for i, n in enumerate(before):
        data = bytes([65 + i % 26]) * n
        one.feed(data)
        batch.feed(data)
    datas = [bytes([97 + i % 26]) * n for i, n in enumerate(pieces)]
    allocated = [one.feed(d) for d in datas]
    assert batch.feed_pieces(b"".join(datas), [len(d) for d in datas]) == any(allocated)
    assert (batch.end, batch.histlen, batch.first) == (one.end, one.histlen, one.first)
    assert blocks_of(batch) == blocks_of(one)
    tail = b"x" * 10  # and both keep taking writes the same way
    assert batch.feed(tail) == one.feed(tail)
    assert blocks_of(batch) == blocks_of(one)


# ============================================================================ lazy stream


def test_commands_propagated_just_before_a_replica_goes_online_reach_it_once() -> None:
    """The master feeds its stream once per event-loop turn. A replica that goes online
    in between (here: its RDB transfer completes in the same turn as a write) must get
    that write exactly once: from the backlog, as the write happened before it was
    online, and not a second time from the batch."""
    from redisops.engine import replication as repl
    from redisops.engine.client import SlaveState

    c = Cluster(seed=3)
    cfg = dict(CONFIG, **{"repl-diskless-sync": "no"})
    m = c.add_node(7000, dict(cfg))
    c.add_node(7001, dict(cfg))
    c.set_bandwidth(7000, 7001, 50_000)  # a slow link: the transfer takes a while
    cl = c.client(7000)
    for i in range(200):
        cl.send("SET", f"k{i}", "x" * 100)
    c.run(10)
    c.call(7001, "REPLICAOF", "127.0.0.1", "7000")
    assert c.run_until(
        lambda: any(r.repl_state is SlaveState.SEND_BULK for r in m.replicas), 10_000
    )
    bulk = next(r for r in m.replicas if r.repl_state is SlaveState.SEND_BULK)
    writer = next(x for x in m.clients.values() if not x.is_replica and not x.closed)
    m.process_command(writer, [b"SET", b"late", b"write"])  # propagated, not yet fed
    assert m._pend, "the write waits for the end of the turn"
    repl._put_online(m, bulk)  # what the end of the RDB transfer does, same turn
    repl._start_command_stream(m, bulk)
    c.set_bandwidth(7000, 7001, None)
    assert c.run_until(lambda: c.in_sync(7000, 7001), 30_000)
    c.run(100)
    assert c.node(7001).master_repl_offset == m.master_repl_offset
    assert c.node(7001).keyspace.digest() == m.keyspace.digest()
