"""Sizing advice with the formula and its inputs shown (checks-and-drift.md §4).

Pure: the master's snapshot, the sampled peak write rate ``W`` and a few facts in; rows of
current vs recommended out. The full-sync duration, the buffer a sync needs and whether a
sync loops come from the reference engine's rate model
(:func:`redisops.engine.predict.estimate_full_sync`), so the advice and the dry-run
predictions of ``attach``/``failover`` cannot disagree.

* ``repl-backlog-size >= 2 x W x T_disconnect`` (§4.1);
* replica ``client-output-buffer-limit`` hard and soft ``>= W x T_sync`` and never below
  the backlog (§4.2), ``T_sync`` = fork + save + transfer + load (§4.3);
* ``repl-timeout >`` the ping period and the longest single stall (fork, load) (§4.3);
* ``maxmemory + backlog + replica buffer + copy-on-write <= 0.9 x RAM``, maxmemory at most
  75 % of RAM (§4.4);
* replication storms: every replica full-syncing at once, and the two remedies (a tree of
  chained replicas, with the extra lag per level; staggered attaches);
* the full-resync loop with today's settings, and the settings that avoid it (checked by
  running the engine again with them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from redisops.checks.normalise import obl_class
from redisops.engine.predict import (
    FullSyncEstimate,
    RateParams,
    StormEstimate,
    estimate_full_sync,
    estimate_storm,
)
from redisops.model import NodeInfo

MB = 1 << 20
DEFAULT_BACKLOG = MB
DEFAULT_TIMEOUT = 60
RAM_FRACTION = 0.75
RAM_CEILING = 0.9


@dataclass(frozen=True)
class AdviseInputs:
    master: NodeInfo
    replicas: int  # replicas of the master (the storm's size)
    write_rate: float  # W: peak bytes/s of replication stream, sampled
    tolerate: float  # T_disconnect: seconds a replica may be away and still resync partially
    bandwidth: float  # bytes/s between master and replicas
    rdb_bytes: int | None = None  # the RDB file's size, when it could be read
    host_memory: int | None = None  # RAM of the master's host
    hop_ms: float | None = None  # one replication hop (measured round trip), for tree lag


@dataclass(frozen=True)
class Advice:
    parameter: str
    current: str
    recommended: str
    status: str  # ok | raise | lower | warn
    formula: str
    inputs: Mapping[str, str]
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "parameter": self.parameter,
            "current": self.current,
            "recommended": self.recommended,
            "status": self.status,
            "formula": self.formula,
            "inputs": dict(self.inputs),
            "note": self.note,
        }


@dataclass(frozen=True)
class AdviceReport:
    master: str
    inputs: Mapping[str, Any]
    rows: tuple[Advice, ...]
    storm: Mapping[str, Any] = field(default_factory=dict)
    resync_loop: Mapping[str, Any] = field(default_factory=dict)

    @property
    def needs_change(self) -> bool:
        return any(r.status != "ok" for r in self.rows) or bool(self.resync_loop.get("predicted"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "master": self.master,
            "inputs": dict(self.inputs),
            "advice": [r.to_dict() for r in self.rows],
            "storm": dict(self.storm),
            "resync_loop": dict(self.resync_loop),
        }


# ----------------------------------------------------------------------------- helpers


def ceil_mb(n: float) -> int:
    """Bytes rounded up to whole MiB (what people write in redis.conf).

    >>> ceil_mb(1), ceil_mb(MB), ceil_mb(MB + 1)
    (1048576, 1048576, 2097152)
    """
    return max(1, math.ceil(n / MB)) * MB


def mb(n: float) -> str:
    """Bytes as ``<n>mb`` (1 decimal under 10 MiB).

    >>> mb(960 * MB), mb(1.5 * MB)
    ('960mb', '1.5mb')
    """
    value = n / MB
    return f"{value:.1f}mb" if value < 10 and value != int(value) else f"{value:.0f}mb"


def rate(n: float) -> str:
    return f"{n / MB:.2f} MB/s"


def _int(config: Mapping[str, str], key: str, default: int) -> int:
    try:
        return int(config.get(key, default))
    except (TypeError, ValueError):
        return default


# ----------------------------------------------------------------------------- rows


def _backlog(inp: AdviseInputs, current: int) -> tuple[Advice, int]:
    need = 2 * inp.write_rate * inp.tolerate
    rec = max(ceil_mb(need), DEFAULT_BACKLOG)
    status = "ok" if current >= need else "raise"
    cover = current / inp.write_rate if inp.write_rate > 0 else math.inf
    return (
        Advice(
            "repl-backlog-size",
            mb(current),
            mb(rec) if status != "ok" else mb(current),
            status,
            "2 x W x T_disconnect",
            {
                "W (peak write rate)": rate(inp.write_rate),
                "T_disconnect (--tolerate)": f"{inp.tolerate:g}s",
                "2 x W x T": mb(need),
            },
            "covers "
            + ("any outage (no writes)" if cover == math.inf else f"{cover:.1f}s of writes now"),
        ),
        rec if status != "ok" else current,
    )


def _obl(
    inp: AdviseInputs, sync: FullSyncEstimate, backlog: int, current: tuple[int, int, int]
) -> tuple[Advice, tuple[int, int, int]]:
    hard, soft, secs = current
    need = inp.write_rate * sync.buffered_seconds
    floor = max(need, backlog)
    rec_hard = ceil_mb(floor)
    hard_ok = hard == 0 or hard >= floor
    soft_ok = (
        soft == 0
        or soft >= need
        or sync.buffered_seconds - soft / max(inp.write_rate, 1e-9) <= secs
    )
    ok = hard_ok and soft_ok and sync.failure is None
    rec = (rec_hard, rec_hard, secs) if not ok else current
    phases = {p: f"{s:.1f}s" for p, s in sync.phases if not p.startswith("catch-up")}
    return (
        Advice(
            "client-output-buffer-limit replica",
            f"{mb(hard)} {mb(soft)} {secs}",
            f"{mb(rec[0])} {mb(rec[1])} {rec[2]}",
            "ok" if ok else "raise",
            "hard and soft >= max(W x T_sync, repl-backlog-size)",
            {
                "W": rate(inp.write_rate),
                "T_sync (engine: fork + save + transfer + load)": f"{sync.buffered_seconds:.1f}s",
                **phases,
                "RDB": f"{mb(sync.rdb_bytes)} ({sync.rdb_source})",
                "W x T_sync": mb(need),
            },
            sync.failure or "",
        ),
        rec,
    )


def _timeout(inp: AdviseInputs, sync: FullSyncEstimate, backlog: int) -> tuple[Advice, int]:
    cfg = inp.master.config
    current = _int(cfg, "repl-timeout", DEFAULT_TIMEOUT)
    ping = _int(cfg, "repl-ping-replica-period", 10)
    fork_s = sync.phase("fork")
    load_s = sync.phase("load")
    stall = max(fork_s, load_s)
    ok = current > ping and current > stall
    rec = current if ok else max(DEFAULT_TIMEOUT, math.ceil(2 * max(stall, ping)))
    cover = backlog / inp.write_rate if inp.write_rate > 0 else math.inf
    note = ""
    if cover <= rec:
        note = (
            f"the backlog covers only {cover:.0f}s of writes: a link that times out after "
            f"{rec}s cannot resume partially"
        )
    return (
        Advice(
            "repl-timeout",
            f"{current}s",
            f"{rec}s",
            "ok" if ok else "raise",
            "repl-timeout > max(repl-ping-replica-period, longest stall); 2x margin when raised",
            {
                "repl-ping-replica-period": f"{ping}s",
                "fork stall": f"{fork_s:.2f}s",
                "load stall (replica)": f"{load_s:.1f}s",
            },
            note,
        ),
        rec,
    )


def _maxmemory(inp: AdviseInputs, backlog: int, obl_hard: int) -> Advice:
    current = _int(inp.master.config, "maxmemory", 0)
    cow = inp.master.stat("rdb_last_cow_size")
    ram = inp.host_memory or inp.master.stat("total_system_memory")
    inputs = {
        "RAM": mb(ram) if ram else "unknown",
        "repl-backlog-size": mb(backlog),
        "replica buffer hard limit": mb(obl_hard),
        "rdb_last_cow_size": mb(cow),
    }
    formula = (
        "maxmemory + backlog + replica buffer + copy-on-write <= 0.9 x RAM; maxmemory <= 0.75 x RAM"
    )
    if not ram:
        return Advice("maxmemory", mb(current), "-", "warn", formula, inputs, "host memory unknown")
    ceiling = min(RAM_FRACTION * ram, RAM_CEILING * ram - backlog - obl_hard - cow)
    rec = max(int(ceiling // MB) * MB, 0)
    if current == 0:
        return Advice(
            "maxmemory",
            "0 (no limit)",
            mb(rec),
            "warn",
            formula,
            inputs,
            "no limit: the dataset, the fork's copy-on-write and the buffers can take the whole host",
        )
    status = "ok" if current <= ceiling else "lower"
    return Advice(
        "maxmemory",
        mb(current),
        mb(current) if status == "ok" else mb(rec),
        status,
        formula,
        inputs,
        f"{current / ram * 100:.0f}% of RAM",
    )


# ----------------------------------------------------------------------------- storms


def _tree(inp: AdviseInputs, params: RateParams, fix: Mapping[str, str]) -> dict[str, Any]:
    """The smallest fan-out whose simultaneous syncs do not loop, and the tree it gives."""
    n = inp.replicas
    fanout = 1
    for k in range(min(n, 8), 0, -1):
        if not estimate_storm(inp.master, k, params, fix).loops:
            fanout = k
            break
    levels, covered, width = 0, 0, 1
    while covered < n:
        width *= fanout
        covered += width
        levels += 1
    hop = inp.hop_ms if inp.hop_ms is not None else 0.5
    per_level = estimate_storm(inp.master, fanout, params, fix).per_replica.seconds
    return {
        "fanout": fanout,
        "levels": levels,
        "extra_lag_per_level_ms": round(hop, 2),
        "deepest_extra_lag_ms": round(hop * max(levels - 1, 0), 2),
        "rebuild_seconds": round(per_level * levels, 1),
        "text": (
            f"chain replicas in a tree, at most {fanout} per node: {levels} level(s); each level "
            f"adds one hop of lag (~{hop:.2f} ms here, the measured round trip; seconds while a "
            f"level is itself full-syncing), so the deepest replicas trail the master by "
            f"~{hop * max(levels - 1, 0):.2f} ms more; rebuilding every level takes ~{per_level * levels:.0f}s"
        ),
    }


def _staggered(inp: AdviseInputs, params: RateParams, fix: Mapping[str, str]) -> dict[str, Any]:
    n = inp.replicas
    group = 1
    for g in range(n, 0, -1):
        if not estimate_storm(inp.master, g, params, fix).loops:
            group = g
            break
    one = estimate_storm(inp.master, group, params, fix).per_replica
    waves = -(-n // group)
    return {
        "at_once": group,
        "waves": waves,
        "spacing_seconds": round(one.seconds, 1),
        "total_seconds": round(one.seconds * waves, 1),
        "settings": {"repl-diskless-sync-max-replicas": str(group)},
        "text": (
            f"attach (or let reconnect) {group} replica(s) at a time, {waves} wave(s) "
            f"~{one.seconds:.0f}s apart (~{one.seconds * waves:.0f}s in all); "
            f"repl-diskless-sync-max-replicas {group} makes the master batch them"
        ),
    }


def _storm(
    inp: AdviseInputs, params: RateParams, shared: bool, fix: Mapping[str, str]
) -> dict[str, Any]:
    if inp.replicas < 2:
        return {"replicas": inp.replicas, "text": "fewer than two replicas: no storm"}
    storm: StormEstimate = estimate_storm(inp.master, inp.replicas, params, shared_buffer=shared)
    one = storm.per_replica
    out: dict[str, Any] = {
        "replicas": storm.replicas,
        "forks": storm.forks,
        "network_bytes": storm.network_bytes,
        "seconds": round(one.seconds, 1),
        "buffer_memory": storm.buffer_memory,
        "loops": storm.loops,
        "failure": one.failure,
        "text": (
            f"{storm.replicas} replicas full-syncing at once (a master restart, or a failover "
            f"that leaves them all needing a full sync): {storm.forks} fork(s), "
            f"{mb(storm.network_bytes)} over the master's link, each transfer at "
            f"{rate(params.bandwidth / storm.replicas)}, ~{one.seconds:.0f}s, "
            f"{mb(storm.buffer_memory)} of replication buffer"
            + (" (shared since 7.0)" if shared else " (one per replica before 7.0)")
        ),
    }
    out["tree"] = _tree(inp, params, fix)
    out["staggered"] = _staggered(inp, params, fix)
    return out


# ----------------------------------------------------------------------------- entry point


def advise(inp: AdviseInputs) -> AdviceReport:
    """Every sizing row, the storm and the resync-loop verdict for one master."""
    master = inp.master
    params = RateParams(inp.bandwidth, inp.write_rate, inp.rdb_bytes)
    cfg = master.config
    backlog_now = _int(cfg, "repl-backlog-size", master.backlog_size or DEFAULT_BACKLOG)
    try:
        obl_now = obl_class(cfg.get("client-output-buffer-limit", ""), "slave")
    except (ValueError, IndexError):
        obl_now = (256 * MB, 64 * MB, 60)
    sync_now = estimate_full_sync(master, params)
    backlog_row, backlog_rec = _backlog(inp, backlog_now)
    obl_row, obl_rec = _obl(inp, sync_now, backlog_rec, obl_now)
    timeout_row, timeout_rec = _timeout(inp, sync_now, backlog_rec)
    mem_row = _maxmemory(inp, backlog_rec, obl_rec[0])
    fix = {
        "repl-backlog-size": str(backlog_rec),
        "client-output-buffer-limit": f"slave {obl_rec[0]} {obl_rec[1]} {obl_rec[2]}",
        "repl-timeout": str(timeout_rec),
    }
    sync_fixed = estimate_full_sync(master, params, fix)
    loop: dict[str, Any] = {"predicted": sync_now.failure is not None, "today": sync_now.failure}
    if sync_now.failure is not None:
        loop["settings"] = {
            "repl-backlog-size": mb(backlog_rec),
            "client-output-buffer-limit": f"replica {mb(obl_rec[0])} {mb(obl_rec[1])} {obl_rec[2]}",
            "repl-timeout": str(timeout_rec),
        }
        loop["with_settings"] = (
            "the engine predicts the sync completes"
            if sync_fixed.failure is None
            else f"still loops: {sync_fixed.failure}"
        ) + f" (~{sync_fixed.seconds:.0f}s, peak buffer {mb(sync_fixed.peak_buffer)})"
    shared = master.server is None or master.server.shared_replication_buffer
    storm = _storm(inp, params, shared, fix)
    inputs = {
        "write_rate_peak": inp.write_rate,
        "tolerate_seconds": inp.tolerate,
        "bandwidth": inp.bandwidth,
        "rdb_bytes": sync_now.rdb_bytes,
        "rdb_source": sync_now.rdb_source,
        "full_sync_seconds": round(sync_now.seconds, 2),
        "host_memory": inp.host_memory or master.stat("total_system_memory") or None,
        "replicas": inp.replicas,
    }
    return AdviceReport(
        str(master.address),
        inputs,
        (backlog_row, obl_row, timeout_row, mem_row),
        storm,
        loop,
    )
