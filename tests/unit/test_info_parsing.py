"""INFO/ROLE parsing against real text captured from Redis 7.0.15 in each state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from redisops.info import parse_info, parse_role, replica_entries
from redisops.model import Address, NodeInfo

FIXTURES = Path(__file__).parent.parent / "fixtures" / "info"


def load(name: str) -> NodeInfo:
    info = parse_info((FIXTURES / f"{name}.txt").read_text())
    role = parse_role(json.loads((FIXTURES / f"{name}.role.json").read_text()))
    return NodeInfo(address=Address("127.0.0.1", 1), reachable=True, info=info, role_reply=role)


def test_master_alone() -> None:
    n = load("master_alone")
    assert n.role == "master" and n.is_master
    assert n.offset == 0
    assert not n.backlog_active and n.backlog_range is None
    assert n.replicas == []
    assert n.version == "7.0.15"
    assert n.read_only is None  # not applicable to a master
    assert n.run_id is not None and len(n.run_id) == 40


def test_master_with_two_replicas() -> None:
    n = load("master_two_replicas")
    assert [(e.port, e.state, e.offset) for e in n.replicas] == [
        (7101, "online", 68),
        (7102, "online", 68),
    ]
    assert n.backlog_range == (1, 68)
    assert n.role_reply is not None and n.role_reply.replicas == (
        ("127.0.0.1", 7101, 68),
        ("127.0.0.1", 7102, 68),
    )


def test_master_with_replica_waiting_for_bgsave() -> None:
    n = load("master_replica_wait_bgsave")
    states = [e.state for e in n.replicas]
    assert states == ["online", "online", "wait_bgsave"]
    # ROLE lists only ONLINE replicas
    assert n.role_reply is not None and len(n.role_reply.replicas) == 2


def test_replica_connected() -> None:
    n = load("replica_connected")
    assert n.is_replica and n.link == "up"
    assert n.master_address == Address("127.0.0.1", 7100)
    assert n.repl_state == "connected"
    assert n.offset == n.replica_offset == 68
    assert n.read_only is True
    assert n.replica_priority == 100
    assert n.link_down_seconds is None
    assert n.last_io_seconds is not None and n.last_io_seconds >= 0


def test_replica_with_subreplica_lists_it() -> None:
    n = load("replica_connected_with_subreplica")
    assert [e.port for e in n.replicas] == [7103]


def test_chained_replica() -> None:
    n = load("chained_replica_connected")
    assert n.master_address == Address("127.0.0.1", 7101)
    assert n.link == "up"


def test_replica_connecting_to_dead_master() -> None:
    n = load("replica_connecting_dead_master")
    assert n.link == "down"
    assert n.repl_state == "connect"
    assert n.link_down_seconds == -1  # never connected since it stopped being a master
    assert n.role_reply is not None and n.role_reply.offset == -1


def test_replica_in_handshake_while_master_delays_bgsave() -> None:
    n = load("replica_handshake_waiting_bgsave")
    assert n.repl_state == "handshake"
    assert n.link == "down"
    assert not n.sync_in_progress


def test_replica_transferring_diskless_rdb() -> None:
    n = load("replica_transfer_diskless")
    assert n.repl_state == "sync"
    assert n.sync_in_progress
    progress = n.sync_progress
    assert progress is not None
    # EOF-mode transfer: total unknown (0), left negative
    assert (
        progress["total_bytes"] == 0 and progress["read_bytes"] > 0 and progress["left_bytes"] < 0
    )
    # it had been promoted before (REPLICAOF NO ONE shifted its history)
    assert n.replid2 != "0" * 40 and n.second_repl_offset == 1


def test_replica_after_master_died() -> None:
    n = load("replica_link_down_master_dead")
    assert n.link == "down"
    assert n.link_down_seconds is not None and n.link_down_seconds >= 0
    assert n.repl_state == "connect"


def test_chained_replica_keeps_link_when_parent_loses_its_master() -> None:
    n = load("chained_replica_parent_link_down")
    assert n.link == "up"


@pytest.mark.parametrize("name", sorted(p.name[:-4] for p in FIXTURES.glob("*.txt")))
def test_every_fixture_parses_into_a_record(name: str) -> None:
    n = load(name)
    assert n.role in ("master", "replica")
    assert len(n.replid) == 40
    assert n.used_memory is not None


def test_replica_entries_accept_bare_ipv6() -> None:
    entries = replica_entries({"slave0": "ip=::1,port=7001,state=online,offset=5,lag=0"})
    assert entries[0].ip == "::1" and entries[0].port == 7001
