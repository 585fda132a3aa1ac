"""Nodes are read at once, not one after another: a frozen node costs one deadline, not
one per node (checked with a barrier, never with a clock)."""

from __future__ import annotations

import threading

from redisops.inventory import ConnectOptions
from redisops.model import Address, NodeInfo
from redisops.session import Session
from redisops.topology import discover


def test_probe_all_reads_every_node_at_the_same_time() -> None:
    addresses = [Address("10.0.0.1", 6379 + i) for i in range(4)]
    barrier = threading.Barrier(len(addresses), timeout=10)

    def probe(address: Address) -> NodeInfo:
        barrier.wait()  # passes only if all four probes are in flight together
        return NodeInfo(address=address, reachable=False, error="down", error_kind="down")

    session = Session(options=ConnectOptions())
    session.probe = probe  # type: ignore[method-assign]
    nodes = session.probe_all(addresses)
    assert [n.address for n in nodes] == addresses
    assert not barrier.broken


def test_discovery_reads_the_seeds_of_one_wave_at_the_same_time() -> None:
    seeds = [Address("10.0.0.1", 7000 + i) for i in range(3)]
    barrier = threading.Barrier(len(seeds), timeout=10)

    def probe(address: Address) -> NodeInfo:
        barrier.wait()
        return NodeInfo(address=address, reachable=False, error="no reply", error_kind="no_reply")

    topo = discover(seeds, probe)
    assert {n.address for n in topo.nodes} == set(seeds)
    assert not barrier.broken
