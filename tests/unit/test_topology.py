"""Discovery and problem detection over hand-built snapshots."""

from __future__ import annotations

from dataclasses import replace

from redisops.model import Address, NodeInfo
from redisops.topology import discover
from tests.builders import master, replica, rid, topology, unreachable, world


def kinds(topo) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(p.kind for p in topo.problems)


def test_chain_discovered_from_the_bottom() -> None:
    m = master("10.0.0.1:6379", offset=100, replicas=["10.0.0.2:6379"])
    r = replica("10.0.0.2:6379", "10.0.0.1:6379", offset=100, replicas=["10.0.0.3:6379"])
    s = replica("10.0.0.3:6379", "10.0.0.2:6379", offset=90)
    topo = topology(s, m, r, seeds=["10.0.0.3:6379"])
    assert [str(n.address) for n in topo.nodes] == [
        "10.0.0.1:6379",
        "10.0.0.2:6379",
        "10.0.0.3:6379",
    ]
    assert topo.problems == ()
    assert topo.lag_bytes(topo.get(Address.parse("10.0.0.3:6379"))) == 10  # type: ignore[arg-type]
    assert topo.depth(topo.get(Address.parse("10.0.0.3:6379"))) == 2  # type: ignore[arg-type]


def test_two_masters_among_seeds_is_split_brain() -> None:
    new = master("10.0.0.2:6379", offset=500, replicas=["10.0.0.3:6379"], replid=rid("new"))
    r = replica("10.0.0.3:6379", "10.0.0.2:6379", offset=500, replid=rid("new"))
    old = master("10.0.0.1:6379", offset=400)
    topo = topology(new, r, old, seeds=["10.0.0.2:6379", "10.0.0.1:6379"])
    assert "multiple_masters" in kinds(topo)
    assert topo.problems[0].severity == "critical"


def test_cycle_reported_once() -> None:
    a = replica("10.0.0.1:6379", "10.0.0.2:6379", link="down")
    b = replica("10.0.0.2:6379", "10.0.0.1:6379", link="down")
    topo = topology(a, b, seeds=["10.0.0.1:6379"])
    assert kinds(topo).count("cycle") == 1
    assert "no_master" in kinds(topo)


def test_replica_of_unreachable_master() -> None:
    r = replica("10.0.0.2:6379", "10.0.0.1:6379", link="down", down_since=12)
    topo = topology(r, seeds=["10.0.0.2:6379"])
    k = kinds(topo)
    assert "master_unreachable" in k and "link_down" in k and "unreachable" in k
    link = next(p for p in topo.problems if p.kind == "link_down")
    assert "12s" in link.message


def test_unreachable_seed_is_listed_not_fatal() -> None:
    m = master("10.0.0.1:6379")
    topo = topology(m, unreachable("10.0.0.9:6379"), seeds=["10.0.0.9:6379", "10.0.0.1:6379"])
    assert {str(n.address): n.reachable for n in topo.nodes} == {
        "10.0.0.1:6379": True,
        "10.0.0.9:6379": False,
    }
    assert kinds(topo) == ["unreachable"]


def test_same_node_under_two_addresses_is_kept_once() -> None:
    m = master("127.0.0.1:7000", offset=10, replicas=["127.0.0.1:7001"])
    r = replica("127.0.0.1:7001", "localhost:7000", offset=10)
    topo = topology(
        r,
        m,
        seeds=["127.0.0.1:7000", "127.0.0.1:7001"],
        aliases={"localhost:7000": "127.0.0.1:7000"},
    )
    assert len(topo.nodes) == 2
    assert topo.problems == ()
    assert topo.canonical(Address.parse("localhost:7000")) == Address.parse("127.0.0.1:7000")


def test_replica_listed_under_another_address_is_a_warning() -> None:
    # the master lists its replica by its announce/NAT address, unreachable from here
    m = master("10.0.0.1:6379", offset=10, replicas=["192.168.5.5:6379"])
    r = replica("10.0.0.2:6379", "10.0.0.1:6379", offset=10)
    topo = topology(r, m, seeds=["10.0.0.2:6379"])
    mismatch = [p for p in topo.problems if p.kind == "address_mismatch"]
    assert mismatch and mismatch[0].severity == "warning"
    assert "192.168.5.5:6379" in mismatch[0].message


def test_full_sync_in_progress_is_a_warning_not_a_dead_link() -> None:
    m = master("10.0.0.1:6379", offset=10, replicas=[])
    fields = dict(m.info)
    fields["slave0"] = "ip=10.0.0.2,port=6379,state=wait_bgsave,offset=0,lag=0"
    m2 = type(m)(
        address=m.address, reachable=True, info=fields, config=m.config, role_reply=m.role_reply
    )
    r = replica("10.0.0.2:6379", "10.0.0.1:6379", link="down", state="handshake", down_since=-1)
    topo = topology(m2, r)
    assert kinds(topo) == ["sync_in_progress"]


def test_lag_not_compared_across_histories() -> None:
    m = master("10.0.0.1:6379", offset=1000, replicas=["10.0.0.2:6379"], replid=rid("a"))
    r = replica("10.0.0.2:6379", "10.0.0.1:6379", offset=10, replid=rid("b"))
    topo = topology(m, r)
    assert topo.lag_bytes(topo.get(Address.parse("10.0.0.2:6379"))) is None  # type: ignore[arg-type]


def test_stale_entry_on_a_master() -> None:
    m = master("10.0.0.1:6379", offset=10, replicas=["10.0.0.2:6379"])
    other = master("10.0.0.5:6379", offset=10, replicas=["10.0.0.2:6379"])
    r = replica("10.0.0.2:6379", "10.0.0.5:6379", offset=10)
    topo = topology(m, r, other)
    assert "stale_replica_entry" in kinds(topo)


def test_a_replica_announcing_another_port_is_that_node_not_an_unreachable_one() -> None:
    # the master lists the replica at its announced port 7999; it is reached at 7002
    m = master("10.0.0.1:6379", offset=100, replicas=["10.0.0.1:7999"])
    r = replica("10.0.0.1:7002", "10.0.0.1:6379", offset=100)
    r = replace(r, config={**r.config, "replica-announce-port": "7999"})
    topo = topology(m, r, seeds=["10.0.0.1:6379", "10.0.0.1:7002"])
    assert [str(n.address) for n in topo.nodes] == ["10.0.0.1:6379", "10.0.0.1:7002"]
    assert topo.canonical(Address.parse("10.0.0.1:7999")) == Address.parse("10.0.0.1:7002")
    assert "unreachable" not in kinds(topo) and "address_mismatch" not in kinds(topo)
    # without its real address it stays what it looks like: an unreachable replica
    alone = topology(m, r, seeds=["10.0.0.1:6379"])
    assert "unreachable" in kinds(alone)


def test_an_unreachable_node_written_two_ways_is_one_node() -> None:
    a = replica("127.0.0.1:7001", "127.0.0.1:7000", link="down")
    probe = world(a)
    ips = {"localhost": frozenset({"127.0.0.1", "::1"}), "127.0.0.1": frozenset({"127.0.0.1"})}
    topo = discover(
        [Address.parse("localhost:7000"), Address.parse("127.0.0.1:7001")],
        probe,
        parallel=False,
        resolve=lambda host: ips.get(host, frozenset({host})),
    )
    # the spelling the replica uses for its master is kept
    assert [str(n.address) for n in topo.nodes if not n.reachable] == ["127.0.0.1:7000"]
    assert topo.canonical(Address.parse("localhost:7000")) == Address.parse("127.0.0.1:7000")


def test_sentinels_and_other_services_are_labelled_not_counted_as_masters() -> None:
    sentinel = NodeInfo(
        Address.parse("10.0.0.9:26379"), True, info={"redis_mode": "sentinel", "run_id": "s"}
    )
    http = NodeInfo(
        Address.parse("10.0.0.8:80"),
        False,
        error="not a Redis server (an HTTP server answers there)",
        service="not-redis",
    )
    m = master("10.0.0.1:6379", offset=10)
    topo = topology(m, sentinel, http, seeds=["10.0.0.1:6379", "10.0.0.9:26379", "10.0.0.8:80"])
    assert kinds(topo) == ["not_redis", "sentinel_seed"]
    assert topo.get(sentinel.address).role == "sentinel"  # type: ignore[union-attr]


def test_a_frozen_ping_period_is_a_problem() -> None:
    m = master(
        "10.0.0.1:6379",
        offset=10,
        config={"replica-priority": "100", "repl-ping-replica-period": "2147483647"},
    )
    topo = topology(m)
    [problem] = topo.problems
    assert problem.kind == "ping_period_frozen" and problem.node == "10.0.0.1:6379"
    assert "CONFIG SET repl-ping-replica-period 10" in problem.message


def test_a_replica_that_cannot_load_its_masters_rdb_is_critical_not_a_sync_in_progress() -> None:
    m = master("10.0.0.1:6379", offset=10, replicas=[])
    fields = dict(m.info)
    fields["slave0"] = "ip=10.0.0.2,port=6379,state=wait_bgsave,offset=0,lag=0"
    m2 = replace(m, info=fields)
    r = replica(
        "10.0.0.2:6379",
        "10.0.0.1:6379",
        link="down",
        state="handshake",
        down_since=-1,
        redis_version="6.2.14",
    )
    topo = topology(m2, r)
    assert kinds(topo) == ["rdb_unloadable"]
    (problem,) = topo.problems
    assert problem.severity == "critical"
    assert "redis 6.2.14 reads RDB formats up to 9 and redis 7.0.15 writes 10" in problem.message
