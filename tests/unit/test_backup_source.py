"""Which node a backup is taken from (pure: hand-built topologies)."""

from __future__ import annotations

import pytest

from redisops.backup.snapshot import choose_source
from redisops.errors import Refused
from tests.builders import master, replica, rid, topology

M, R1, R2 = (f"10.0.0.{i}:6379" for i in (1, 2, 3))
H = rid("history")


def test_a_healthy_replica_is_chosen_over_the_master() -> None:
    topo = topology(
        master(M, offset=500, replicas=[R1, R2], replid=H, db0="keys=10,expires=0"),
        replica(R1, M, offset=500, replid=H, db0="keys=10,expires=0"),
        replica(R2, M, offset=400, replid=H, db0="keys=9,expires=0"),
    )
    node, why = choose_source(topo, topo.nodes[0], from_master=False)
    assert str(node.address) == R1 and "healthy replica" in why


def test_a_replica_whose_data_diverged_from_the_master_is_never_chosen() -> None:
    # R1 is in sync by offset but holds no keys (a DEBUG POPULATE on the master, say):
    # a backup of it would not be the master's data
    topo = topology(
        master(M, offset=500, replicas=[R1, R2], replid=H, db0="keys=1000,expires=0"),
        replica(R1, M, offset=500, replid=H),
        replica(R2, M, offset=480, replid=H, db0="keys=990,expires=0"),
    )
    node, _ = choose_source(topo, topo.nodes[0], from_master=False)
    assert str(node.address) == R2


def test_only_diverged_replicas_refuse_and_say_why() -> None:
    topo = topology(
        master(M, offset=500, replicas=[R1], replid=H, db0="keys=1000,expires=0"),
        replica(R1, M, offset=500, replid=H),
    )
    with pytest.raises(Refused, match="diverged") as err:
        choose_source(topo, topo.nodes[0], from_master=False)
    assert "--from-master" in (err.value.hint or "")
