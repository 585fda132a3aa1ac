"""Properties of the engine under random writes and topology changes (hypothesis).

* every replica's dataset equals its master's once in sync (DEBUG DIGEST);
* a master's offset never goes back, and a replica is never ahead of its master;
* each relocation does what the planner predicted from INFO snapshots taken just before
  (partial or full: the same rule, ``psync_decision``, observed through the counters).
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redisops.engine.cluster import Cluster
from redisops.engine.predict import decide, psync_request
from redisops.info import parse_info, parse_role
from redisops.model import Address, NodeInfo

PORTS = (7000, 7001, 7002, 7003)
CONFIG = {
    "repl-diskless-sync-delay": "0",
    "repl-ping-replica-period": "2",
    "enable-debug-command": "yes",
    "repl-backlog-size": "16384",
}

keys = st.sampled_from([b"a", b"b", b"c", b"list", b"set", b"hash", b"zset", b"n"])
write = st.one_of(
    st.tuples(st.just("SET"), keys, st.binary(min_size=0, max_size=300)),
    st.tuples(st.just("INCR"), st.just(b"n")),
    st.tuples(st.just("DEL"), keys),
    st.tuples(st.just("LPUSH"), st.just(b"list"), st.binary(max_size=20)),
    st.tuples(st.just("SADD"), st.just(b"set"), st.binary(max_size=8)),
    st.tuples(st.just("HSET"), st.just(b"hash"), st.binary(max_size=8), st.binary(max_size=8)),
    st.tuples(
        st.just("ZADD"),
        st.just(b"zset"),
        st.integers(-5, 5).map(lambda i: str(i).encode()),
        st.binary(max_size=8),
    ),
    st.tuples(st.just("PEXPIRE"), keys, st.integers(1, 3000).map(lambda i: str(i).encode())),
    st.tuples(st.just("MULTI-2"), keys, keys),
)
op = st.one_of(
    st.tuples(st.just("write"), write),
    st.tuples(st.just("writes"), st.integers(1, 120)),
    st.tuples(st.just("run"), st.integers(1, 3000)),
    st.tuples(st.just("disconnect"), st.sampled_from(PORTS[1:])),
    st.tuples(st.just("relocate"), st.sampled_from(PORTS[1:]), st.sampled_from(PORTS)),
    st.tuples(st.just("promote_and_back"), st.sampled_from(PORTS[1:])),
)


def snapshot(c: Cluster, port: int) -> NodeInfo:
    text = c.call(port, "INFO", "server", "replication", "stats", "memory", "persistence")
    role = parse_role(c.call(port, "ROLE"))
    return NodeInfo(Address("127.0.0.1", port), True, info=parse_info(text), role_reply=role)


def counters(c: Cluster, port: int) -> tuple[int, int]:
    n = c.node(port)
    return n.stats["sync_full"], n.stats["sync_partial_ok"]


def master_of(c: Cluster, port: int) -> int | None:
    n = c.node(port)
    return n.master_port if n.master_host is not None else None


def top(c: Cluster, port: int) -> int:
    seen = set()
    while (m := master_of(c, port)) is not None and port not in seen:
        seen.add(port)
        port = m
    return port


def ancestors(c: Cluster, port: int) -> set[int]:
    seen: set[int] = set()
    while (m := master_of(c, port)) is not None and m not in seen:
        seen.add(m)
        port = m
    return seen


def wait_linked(c: Cluster) -> None:
    c.sched.run_soon()  # let pending closes and connects happen first

    def ok() -> bool:
        for p in PORTS:
            n = c.node(p)
            if n.master_host is not None and (
                n.repl_state.role_name != "connected"
                or n.master_repl_offset != c.node(top(c, p)).master_repl_offset
            ):
                return False
        return True

    assert c.run_until(ok, 60_000), "cluster did not converge"


def apply_write(c: Cluster, w: tuple[Any, ...]) -> None:
    if w[0] == "MULTI-2":
        cl = c.client(7000)
        cl.call("MULTI")
        cl.call("SET", w[1], b"m1")
        cl.call("APPEND", w[2], b"m2")
        cl.call("EXEC")
        cl.close()
        return
    c.call(top(c, 7000), *w)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op, min_size=1, max_size=25), seed=st.integers(0, 2**16))
def test_random_histories_keep_replicas_equal_and_predictions_right(
    ops: list[tuple[Any, ...]], seed: int
) -> None:
    c = Cluster(seed=seed)
    for p in PORTS:
        c.add_node(p, dict(CONFIG))
    for p in PORTS[1:]:
        c.replicate(p, 7000)
    master_offsets: dict[int, int] = {}
    for step in ops:
        kind = step[0]
        if kind == "write":
            apply_write(c, step[1])
        elif kind == "writes":
            cl = c.client(top(c, 7000))
            for i in range(step[1]):
                cl.send("SET", f"bulk{i % 37}", "x" * (i % 97))
            c.run(50)
            cl.close()
        elif kind == "run":
            c.run(step[1])
        elif kind == "disconnect":
            m = master_of(c, step[1])
            if m is not None:
                c.disconnect(step[1], m)
        elif kind in ("relocate", "promote_and_back"):
            wait_linked(c)
            replica = step[1]
            new_master = step[2] if kind == "relocate" else master_of(c, replica)
            if new_master is None or new_master == replica or replica in ancestors(c, new_master):
                continue  # self or a cycle
            if kind == "promote_and_back":
                c.call(replica, "REPLICAOF", "NO", "ONE")
                c.run(20)
            if master_of(c, replica) == new_master:
                continue
            before_m = snapshot(c, new_master)
            before_r = snapshot(c, replica)
            rid, off, _ = psync_request(before_r)
            predicted_partial, why = decide(before_m, rid, off)
            full0, part0 = counters(c, new_master)
            c.call(replica, "REPLICAOF", "127.0.0.1", new_master)
            wait_linked(c)
            full1, part1 = counters(c, new_master)
            observed_partial = full1 == full0 and part1 > part0
            assert observed_partial == predicted_partial, (why, (full0, part0), (full1, part1))
        for p in PORTS:
            n = c.node(p)
            if n.master_host is None:
                assert n.master_repl_offset >= master_offsets.get(p, 0)
                master_offsets[p] = n.master_repl_offset
            else:
                master_offsets.pop(p, None)
                t = c.node(top(c, p))
                if n.replid == t.replid:
                    assert n.master_repl_offset <= t.master_repl_offset
    wait_linked(c)
    c.run(4000)  # expiries on the master, and their DELs, reach everyone
    wait_linked(c)
    for p in PORTS:
        root = top(c, p)
        if root != p:
            assert c.call(p, "DEBUG", "DIGEST") == c.call(root, "DEBUG", "DIGEST"), (
                f"{p} differs from {root}"
            )
