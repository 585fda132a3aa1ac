"""``advise``: sample the master and read its host facts, then size (pure: checks/advise)."""

from __future__ import annotations

import time
from collections.abc import Callable

from redisops.checks.advise import AdviceReport, AdviseInputs, advise
from redisops.errors import RedisopsError, Unreachable
from redisops.model import Address, NodeInfo, Topology
from redisops.session import Session

SAMPLE_INTERVAL = 0.5


def sample_write_rate(
    session: Session,
    master: Address,
    seconds: float,
    interval: float = SAMPLE_INTERVAL,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[float, float]:
    """(peak, mean) bytes/s of replication stream over ``seconds``: offsets every
    ``interval``; bursts, not averages, overrun the backlog, so the peak is what sizes it."""
    if seconds <= 0:
        return 0.0, 0.0
    node = session.node(master)

    def offset() -> tuple[float, int]:
        return time.monotonic(), int(node.info("replication").get("master_repl_offset", "0"))

    t0, o0 = offset()
    start_t, start_o = t0, o0
    peak = 0.0
    while t0 - start_t < seconds - 1e-6:
        sleep(min(interval, seconds - (t0 - start_t)))
        t1, o1 = offset()
        peak = max(peak, max(o1 - o0, 0) / max(t1 - t0, 1e-3))
        t0, o0 = t1, o1
    mean = max(o0 - start_o, 0) / max(t0 - start_t, 1e-3)
    return peak, mean


def rdb_size(session: Session, master: NodeInfo) -> int | None:
    """The size of the master's RDB file, through its host; None when it cannot be read."""
    try:
        cfg = session.node(master.address).config_get("dir", "dbfilename")
        host = session.host(master.address)
        st = host.stat(f"{cfg['dir'].rstrip('/')}/{cfg['dbfilename']}")
    except (RedisopsError, KeyError):
        return None
    return st.size if st is not None and st.size > 0 else None


def host_memory(session: Session, master: NodeInfo) -> int | None:
    """MemTotal of the master's host (host facts), or INFO's total_system_memory."""
    try:
        text = session.host(master.address).run(["cat", "/proc/meminfo"], timeout=10.0).text()
    except RedisopsError:
        text = ""
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return master.stat("total_system_memory") or None


def advise_group(
    session: Session,
    topo: Topology,
    *,
    sample: float,
    tolerate: float,
    bandwidth: float,
    write_rate: float | None = None,
) -> tuple[AdviceReport, float]:
    """Sizing advice for the group's master; also returns the mean write rate sampled."""
    masters = [n for n in topo.masters if n.reachable]
    if not masters:
        raise Unreachable("no reachable master in the group: advice is sized from the master")
    master = masters[0]
    mean = 0.0
    if write_rate is None:
        write_rate, mean = sample_write_rate(session, master.address, sample)
    fresh = session.probe(master.address)
    if fresh.reachable:
        master = fresh
    replicas = len(topo.children(master)) or len(master.replicas)
    hop = min((n.rtt_ms for n in topo.nodes if n.reachable and n.rtt_ms), default=None)
    inputs = AdviseInputs(
        master,
        replicas,
        write_rate,
        tolerate,
        bandwidth,
        rdb_bytes=rdb_size(session, master),
        host_memory=host_memory(session, master),
        hop_ms=hop,
    )
    return advise(inputs), mean
