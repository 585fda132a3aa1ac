"""Counter baselines between runs (checks-and-drift.md §2.2): pure functions over the
previous sample of a node (from the state file) and its snapshot now.

A sample is a small JSON-able dict. Deltas are given only when the previous sample is of
the same process (``run_id``), its uptime did not go backwards, and it is not older than
``max_age`` (3 × the cron interval); otherwise the run stores a new baseline and says why.

>>> prev = {"t": 100.0, "run_id": "a", "uptime": 50, "replid": "r", "offset": 1000,
...         "sync_full": 1, "rates": []}
>>> d = compare(prev, {"t": 160.0, "run_id": "a", "uptime": 110, "replid": "r",
...                    "offset": 7000, "sync_full": 3}, max_age=180)
>>> d.baseline, d.get("sync_full"), d.rate
(None, 2, 100.0)
>>> compare(prev, {"t": 160.0, "run_id": "b", "uptime": 5, "offset": 0}, 180).baseline
'restarted (run_id changed): new baseline'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from redisops.model import NodeInfo

#: INFO counters kept per node between runs.
COUNTERS = (
    "sync_full",
    "sync_partial_ok",
    "sync_partial_err",
    "aof_delayed_fsync",
    "client_output_buffer_limit_disconnections",
)
#: How many recent write rates are kept; the peak of them sizes backlog coverage.
RATE_HISTORY = 10


def sample_of(node: NodeInfo, now: float) -> dict[str, Any]:
    """What the state file keeps of a reachable node."""
    out: dict[str, Any] = {
        "t": now,
        "run_id": node.run_id or "",
        "uptime": node.stat("uptime_in_seconds"),
        "replid": node.replid,
        "offset": node.offset,
    }
    for name in COUNTERS:
        if name in node.info:
            out[name] = node.stat(name)
    return out


@dataclass(frozen=True)
class Delta:
    """How a node moved since the previous run; ``baseline`` says why there are no deltas."""

    baseline: str | None
    seconds: float = 0.0
    counters: Mapping[str, int] = field(default_factory=dict)
    rate: float | None = None  # replication stream bytes/s over the interval
    rates: tuple[tuple[float, float], ...] = ()  # recent (time, rate), newest last
    failover: bool = False  # master_replid changed: a promotion or a new history
    stale: bool = False  # a newer sample is already stored (overlapping runs)

    def get(self, name: str) -> int:
        return int(self.counters.get(name, 0))

    @property
    def peak_rate(self) -> float | None:
        values = [r for _, r in self.rates]
        return max(values) if values else None


def compare(prev: Mapping[str, Any] | None, now: Mapping[str, Any], max_age: float) -> Delta:
    """The delta from ``prev`` to ``now`` (two samples of :func:`sample_of`)."""
    if not prev:
        return Delta("first run: baseline recorded")
    t0, t1 = float(prev.get("t", 0)), float(now["t"])
    old_rates = tuple(
        (float(t), float(r)) for t, r in prev.get("rates", []) if isinstance(t, (int, float))
    )
    if t0 >= t1:
        return Delta("a newer sample is stored (overlapping runs)", rates=old_rates, stale=True)
    if prev.get("run_id") != now.get("run_id"):
        return Delta("restarted (run_id changed): new baseline")
    if int(now.get("uptime", 0)) < int(prev.get("uptime", 0)):
        return Delta("restarted (uptime went backwards): new baseline")
    if t1 - t0 > max_age:
        return Delta(f"baseline {t1 - t0:.0f}s old (> {max_age:.0f}s): new baseline")
    counters = {
        name: max(int(now[name]) - int(prev[name]), 0)
        for name in COUNTERS
        if name in now and name in prev
    }
    failover = bool(prev.get("replid")) and prev.get("replid") != now.get("replid")
    rate: float | None = None
    rates = old_rates
    if not failover:
        rate = max(int(now.get("offset", 0)) - int(prev.get("offset", 0)), 0) / (t1 - t0)
        rates = (*old_rates, (t1, rate))[-RATE_HISTORY:]
    return Delta(None, t1 - t0, counters, rate, rates, failover)


def without_rate(
    previous: Mapping[str, Mapping[str, Any]], nodes: Iterable[NodeInfo], now: float, max_age: float
) -> list[NodeInfo]:
    """The reachable nodes with a replication backlog whose write rate this run cannot
    measure against the state file (no sample of the same process, recent enough): those a
    first run samples twice (checks-and-drift.md §2.1).

    >>> from redisops.model import Address
    >>> n = NodeInfo(Address("10.0.0.1", 6379), True, info={"repl_backlog_active": "1",
    ...     "run_id": "a", "uptime_in_seconds": "9", "master_repl_offset": "5"})
    >>> [str(x.address) for x in without_rate({}, [n], 100.0, 180.0)]
    ['10.0.0.1:6379']
    >>> prev = {"10.0.0.1:6379": {"t": 50.0, "run_id": "a", "uptime": 1, "offset": 0}}
    >>> without_rate(prev, [n], 100.0, 180.0)
    []
    """
    out = []
    for node in nodes:
        if not node.reachable or not node.backlog_active:
            continue
        delta = compare(previous.get(str(node.address)), sample_of(node, now), max_age)
        if delta.baseline is not None and not delta.stale:
            out.append(node)
    return out


def next_sample(now: Mapping[str, Any], delta: Delta, streak: int) -> dict[str, Any]:
    """The state to store for the node: the sample, its recent rates and the resync streak."""
    return {**now, "rates": [list(r) for r in delta.rates], "resync_streak": streak}
