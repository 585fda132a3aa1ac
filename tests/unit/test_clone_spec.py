"""The clone spec of a snapshot: what a copy of the cluster is made of (pure)."""

from __future__ import annotations

from redisops.clone import clone_spec, size_class
from redisops.engine.clone import build_clone_cluster
from tests.builders import master, replica, rid, topology, unreachable

M, A, B = "10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"


def _by_address(spec: dict) -> dict:  # type: ignore[type-arg]
    return {n["address"]: n for n in spec["nodes"]}


def test_a_live_cluster_is_copied_with_its_history_and_config() -> None:
    topo = topology(
        master(
            M,
            offset=10_000,
            replicas=[A, B],
            replid=rid("h"),
            repl_backlog_histlen="9000",
            db0="keys=300,expires=0,avg_ttl=0",
            used_memory_dataset="40000",
            config={"repl-backlog-size": "2097152", "replica-priority": "100", "requirepass": "x"},
        ),
        replica(A, M, offset=10_000, replid=rid("h")),
        replica(B, M, offset=9_990, replid=rid("h"), priority=50),
    )
    spec = clone_spec(topo, 17000)
    nodes = _by_address(spec)
    m = nodes[M]
    assert m["master"] is None and m["replid"] == rid("h") and m["offset"] == 10_000
    assert (
        m["backlog_histlen"] % 14 == 0
        and 10_000 - 9000 <= 10_000 - m["backlog_histlen"] < 10_000 - 9000 + 14
    )
    assert m["config"] == {"repl-backlog-size": "2097152", "replica-priority": "100"}  # no secret
    assert m["keys"] == 300 and m["size_class"] == size_class(40_000) == 65536
    assert nodes[A]["master"] == 17000 and nodes[A]["offset"] == 10_000
    # a lagging replica keeps (almost) its offset, on a whole PING before the master's
    assert nodes[B]["offset"] == 10_000 - 14 and nodes[B]["dataset"] == "master"
    assert spec["addresses"] == {M: "127.0.0.1:17000", A: "127.0.0.1:17001", B: "127.0.0.1:17002"}


def test_a_replica_read_after_the_master_is_never_ahead_of_it_in_the_copy() -> None:
    topo = topology(
        master(M, offset=5000, replicas=[A], replid=rid("h")),
        replica(A, M, offset=5042, replid=rid("h")),
    )
    assert _by_address(clone_spec(topo, 17000))[A]["offset"] == 5000


def test_a_dead_master_is_copied_from_its_replicas_and_marked_down() -> None:
    topo = topology(
        unreachable(M),
        replica(A, M, offset=800, replid=rid("h"), link="down"),
        replica(B, M, offset=772, replid=rid("h"), link="down"),
        seeds=[A, B, M],
    )
    nodes = _by_address(clone_spec(topo, 17000))
    dead = nodes[M]
    assert dead["down"] and dead["master"] is None
    assert dead["replid"] == rid("h") and dead["offset"] == 800
    assert nodes[A]["offset"] == 800 and nodes[B]["offset"] == 772  # 28 = two PINGs behind
    assert nodes[A]["master"] == dead["port"]


def test_the_engine_boots_a_copy_that_continues_the_real_history() -> None:
    topo = topology(
        master(M, offset=7000, replicas=[A], replid=rid("h"), repl_backlog_histlen="7000",
               db0="keys=20,expires=0,avg_ttl=0", used_memory_dataset="4000"),
        replica(A, M, offset=6986, replid=rid("h")),
    )  # fmt: skip
    spec = clone_spec(topo, 17000)
    cluster = build_clone_cluster(spec, seed=1)
    m, a = cluster.nodes[17000], cluster.nodes[17001]
    assert m.replid == rid("h") and m.master_repl_offset == 7000
    assert m.backlog is not None and m.backlog.first == 1  # 7000 bytes: 500 whole PINGs
    assert a.master_repl_offset == 6986 and a.cached_master is not None
    assert m.keyspace.dbsize(0) == 20 and a.keyspace.dbsize(0) == 20
