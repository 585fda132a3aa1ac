"""The dry run's predicted cluster: real snapshots with the predicted effects on top."""

from __future__ import annotations

from redisops.model import Address
from redisops.ops.attach import plan_attach
from redisops.ops.common import Options
from redisops.playbook.actions import cluster_view
from redisops.playbook.overlay import Down, Promote, Replicate, apply_effects
from redisops.topology import discover
from tests.builders import master, replica, rid, topology

M, A, B, C = "10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379", "10.0.0.4:6379"


def _cluster() -> dict[Address, object]:
    nodes = [
        master(M, offset=500, replicas=[A, B], replid=rid("h")),
        replica(A, M, offset=500, replid=rid("h"), replicas=[C]),
        replica(B, M, offset=480, replid=rid("h")),
        replica(C, A, offset=500, replid=rid("h")),
    ]
    return {n.address: n for n in nodes}


def _predicted_topology(effects: list[object]):  # type: ignore[no-untyped-def]
    nodes, predicted = apply_effects(_cluster(), effects)  # type: ignore[arg-type]
    topo = discover(sorted(nodes), lambda a: nodes[a], parallel=False)
    return topo, predicted


def test_a_predicted_switchover_makes_the_target_the_master_everyone_follows() -> None:
    topo, predicted = _predicted_topology([Promote(A), Replicate(M, A), Replicate(B, A)])
    view = cluster_view(topo, predicted)
    assert view["master"] == A
    assert sorted(view["replicas"]) == sorted([M, B, C])
    assert view["healthy"], view["problems"]
    new = topo.get(Address.parse(A))
    assert new is not None and new.replid2 == rid("h") and new.second_repl_offset == 501
    # everyone below the new master takes its history and offset
    for name in (M, B, C):
        node = topo.get(Address.parse(name))
        assert node is not None and node.replid == new.replid and node.offset == 500
    assert all(view["nodes"][n]["predicted"] for n in (M, A, B, C))


def test_a_predicted_full_sync_copies_the_masters_keys() -> None:
    cluster = _cluster()
    fresh = master("10.0.0.9:6379", offset=0, replid=rid("other"))
    m = master(M, offset=500, replicas=[A, B], replid=rid("h"), db0="keys=42,expires=0,avg_ttl=0")
    cluster.update({fresh.address: fresh, m.address: m})
    nodes, _ = apply_effects(cluster, [Replicate("10.0.0.9:6379", M, full=True)])  # type: ignore[arg-type]
    new = nodes[fresh.address]
    assert new.is_replica and new.keys == 42 and new.replid == rid("h")
    assert any(e.port == 6379 and e.ip == "10.0.0.9" for e in nodes[m.address].replicas)


def test_the_view_names_each_nodes_server_and_rdb_format_through_a_predicted_attach() -> None:
    """What a migration playbook asserts on: a Valkey node predicted to follow a Redis
    master is still a Valkey node (format 11) in the view, the master still Redis (10)."""
    cluster = _cluster()
    v = master(
        "10.0.0.9:6379",
        replid=rid("valkey"),
        redis_version="7.2.4",
        server_name="valkey",
        valkey_version="8.1.8",
    )
    cluster[v.address] = v
    nodes, predicted = apply_effects(cluster, [Replicate("10.0.0.9:6379", M, full=True)])  # type: ignore[arg-type]
    topo = discover(sorted(nodes), lambda a: nodes[a], parallel=False)
    view = cluster_view(topo, predicted)
    assert "10.0.0.9:6379" in view["replicas"]
    got = {
        n: (view["nodes"][n]["server"], view["nodes"][n]["rdb_format"])
        for n in (M, "10.0.0.9:6379")
    }
    assert got == {M: ("redis", 10), "10.0.0.9:6379": ("valkey", 11)}
    assert view["nodes"]["10.0.0.9:6379"]["version"] == "8.1.8"


def test_a_predicted_full_sync_starts_a_backlog_so_a_later_promotion_continues_partially() -> None:
    """Attach a fresh node (a full sync), then promote it: its old master and the other
    replica continue by partial resync, as on the real servers (a migration's switchover
    right after its attach must not be predicted as full syncs)."""
    from redisops.engine.predict import RateParams, predict_sync
    from redisops.ops.promotion import at_offset, promoted_view

    fresh = "10.0.0.9:6379"
    cluster = _cluster()
    cluster[Address.parse(fresh)] = master(fresh, replid=rid("fresh"))
    nodes, _ = apply_effects(cluster, [Replicate(fresh, M, full=True)])  # type: ignore[arg-type]
    node = nodes[Address.parse(fresh)]
    assert node.backlog_active and node.backlog_first_byte == 501 and node.backlog_histlen == 0
    promoted = promoted_view(node, 500)
    for name in (M, A):
        pred = predict_sync(promoted, at_offset(nodes[Address.parse(name)], 500), RateParams())
        assert pred.sync == "partial", pred.reason


def test_a_node_predicted_down_is_unreachable_and_its_replicas_lose_their_link() -> None:
    topo, predicted = _predicted_topology([Down(A)])
    view = cluster_view(topo, predicted)
    assert A in view["unreachable"]
    assert view["nodes"][C]["link"] == "down"


def test_a_plan_made_on_the_predicted_state_sees_the_predicted_history() -> None:
    # after a predicted detach of B, attaching it back to M is a full sync (new history)
    topo, _ = _predicted_topology([Promote(B)])
    plan = plan_attach(
        topo, Address.parse(B), Address.parse(M), Options(), _NoCreds(), _FakeSession(), 0.0
    )
    assert (plan.prediction or {})["sync"] == "full"
    # without it, the same attach is nothing to do
    topo2 = topology(*_cluster().values())  # type: ignore[arg-type]
    plan2 = plan_attach(
        topo2, Address.parse(B), Address.parse(M), Options(), _NoCreds(), _FakeSession(), 0.0
    )
    assert plan2.nothing_to_do


class _NoCreds:
    username = None
    password = None
    source = "none"


class _FakeSession:
    """The little a planner asks of a session: its name, and whether Sentinels are given."""

    cluster = None
    cluster_name = "test"
    sentinels = ()
