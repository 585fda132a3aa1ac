"""Predictions for plans: what Redis will do when a replica is pointed at a master.

The sync *type* comes from the exact rule (:func:`redisops.engine.rules.psync_decision`)
applied to the live snapshot: the ``PSYNC`` the replica will send (its cached-master
arguments) against the new master's ids, ``second_repl_offset`` and backlog. The *cost*
comes from the rate model: a step-wise simulation on the virtual clock, in 100 ms steps
with the 1 Hz replication cron, of a full sync at scale (diskless delay, fork, RDB
production and transfer at ``bandwidth``, load, the output buffer growing at the write
rate against ``client-output-buffer-limit replica`` and ``repl-timeout``). It moves bytes
as numbers, so a 10 GB master predicts in milliseconds; its rules are the ones the exact
engine runs, and the two are cross-checked in ``tests/engine``.

Pure: snapshots in, a :class:`SyncPrediction` out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from redisops.engine.config import parse_obl
from redisops.engine.rules import diskless_fork_after, obuf_hard_limit, psync_decision
from redisops.engine.state import EngineTiming
from redisops.model import NULL_REPLID, NodeInfo

MB = 1024 * 1024
DEFAULT_BANDWIDTH = 100 * 1000 * 1000  # 100 MB/s
RDB_RATIO = 0.5  # RDB bytes per byte of used_memory_dataset (typical, without compression gains)
STEP_MS = 100


#: RDB bytes outside the keys: magic, aux fields (version, bits, ctime, used-mem, repl
#: id/offset/stream db, aof-base), per-db opcodes, EOF opcode and checksum
RDB_FIXED_BYTES = 260


@dataclass(frozen=True)
class DatasetSample:
    """What sampling a node's keys found (``ops/estimate.py`` reads it from the node).

    ``rdb_bytes_per_key`` is the mean RDB footprint of the sampled keys: their ``DUMP``
    payload (which is the RDB serialisation of the value, compressed as the RDB would be)
    plus the key string and the expire opcode; ``keys`` counts every key of every db.
    """

    keys: int
    sampled: int
    rdb_bytes_per_key: float
    how: str = "sampled"


@dataclass(frozen=True)
class RateParams:
    """What the rate model needs beyond the snapshot."""

    bandwidth: float = DEFAULT_BANDWIDTH  # bytes/s between master and replica
    write_rate: float = 0.0  # bytes/s of replication stream on the master (measured)
    rdb_bytes: int | None = None  # override the RDB size estimate
    timing: EngineTiming = field(default_factory=EngineTiming)
    dataset: DatasetSample | None = None  # the master's keys, sampled


@dataclass
class SyncPrediction:
    """What one replica will do when (re)pointed at a master."""

    replica: str
    master: str
    sync: str  # "partial" | "full" | "none"
    reason: str
    psync: tuple[str, int]  # the PSYNC arguments the replica will send
    transfer_bytes: int = 0
    estimated_seconds: float = 0.0
    phases: list[tuple[str, float]] = field(default_factory=list)
    peak_output_buffer: int = 0
    risks: list[str] = field(default_factory=list)
    followers: list[SyncPrediction] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # server differences: modelled or not

    def to_dict(self) -> dict[str, Any]:
        return {
            "replica": self.replica,
            "master": self.master,
            "sync": self.sync,
            "reason": self.reason,
            "psync": {"replid": self.psync[0], "offset": self.psync[1]},
            "transfer_bytes": self.transfer_bytes,
            "estimated_seconds": round(self.estimated_seconds, 3),
            "phases": [{"phase": p, "seconds": round(s, 3)} for p, s in self.phases],
            "peak_output_buffer": self.peak_output_buffer,
            "risks": list(self.risks),
            "followers": [f.to_dict() for f in self.followers],
            "notes": list(self.notes),
        }


# ----------------------------------------------------------------------------- PSYNC args


def psync_request(replica: NodeInfo) -> tuple[str, int, str]:
    """The ``PSYNC <replid> <offset>`` a node sends after ``REPLICAOF`` (with why).

    A master caches itself (``replicationCacheMasterUsingMyself``): own replid, offset+1.
    A replica caches its master (link up or cached): its replid and applied offset + 1.
    A replica with neither (a transfer failed, or restarted without RDB info) sends ``? -1``.
    """
    if replica.is_master:
        return replica.replid, replica.offset + 1, "the node is a master: it caches itself"
    applied = replica.replica_offset
    if replica.link == "up" and applied is not None:
        return replica.replid, applied + 1, "its current master link becomes the cached master"
    if applied is not None and not (applied == 1 and replica.offset == 0):
        return replica.replid, applied + 1, "it PSYNCs with its cached master"
    return "?", -1, "it has no cached master (never synced, or a transfer failed)"


def decide(master: NodeInfo, req_id: str, req_offset: int) -> tuple[bool, str]:
    """The master's answer to ``PSYNC req_id req_offset``, from its snapshot.

    A chained master whose own link is down answers ``-NOMASTERLINK`` and the replica
    retries every second: the answer that counts is the one given once its link is up,
    judged here on its current ids and backlog (which a partial reconnect keeps).
    """
    note = ""
    if master.is_replica and master.link != "up":
        note = f" (first {master.address} must get its own link up: until then it answers -NOMASTERLINK)"
    d = psync_decision(
        req_id,
        req_offset,
        replid=master.replid,
        replid2=master.replid2 or NULL_REPLID,
        second_repl_offset=master.second_repl_offset,
        backlog_first=master.backlog_first_byte if master.backlog_active else None,
        master_repl_offset=master.offset,
    )
    return d.partial, d.reason + note


# ----------------------------------------------------------------------------- sizes


def rdb_estimate(master: NodeInfo, params: RateParams) -> tuple[int, str]:
    """RDB bytes for a full sync, and how the figure was obtained.

    Best: from sampled keys (``DUMP`` sizes, see :class:`DatasetSample`) times the key
    count. Without a sample: half of ``used_memory_dataset``, which is 2-8x off for small
    keys (the per-key overhead in memory has no counterpart in the RDB) and for
    compressible values.
    """
    if params.rdb_bytes is not None:
        return params.rdb_bytes, "given"
    sample = params.dataset
    if sample is not None and sample.sampled > 0:
        est = int(sample.keys * sample.rdb_bytes_per_key) + RDB_FIXED_BYTES
        return est, (
            f"{sample.keys} keys x {sample.rdb_bytes_per_key:.0f} B, the mean RDB size of "
            f"{sample.sampled} {sample.how} keys"
        )
    dataset = master.stat("used_memory_dataset")
    if dataset <= 0:
        dataset = max((master.used_memory or 0) - master.stat("used_memory_startup"), 0)
    est = int(dataset * RDB_RATIO)
    return max(est, 200), f"~{int(RDB_RATIO * 100)}% of used_memory_dataset ({dataset} B)"


def _config_int(node: NodeInfo, key: str, default: int) -> int:
    try:
        return int(node.config.get(key, default))
    except (TypeError, ValueError):
        return default


# ----------------------------------------------------------------------------- rate model


@dataclass(frozen=True)
class _Limits:
    """The master's settings that decide whether a full sync survives."""

    diskless: bool
    delay: int
    repl_timeout: int
    backlog_size: int
    hard: int
    soft: int
    soft_secs: int
    obl_text: str

    @classmethod
    def of(cls, master: NodeInfo) -> _Limits:
        cfg = master.config
        diskless = cfg.get("repl-diskless-sync", "yes") == "yes"
        backlog_size = _config_int(master, "repl-backlog-size", master.backlog_size or MB)
        try:
            hard, soft, soft_secs = parse_obl(cfg.get("client-output-buffer-limit", ""))["slave"]
        except (ValueError, KeyError):
            hard, soft, soft_secs = 256 * MB, 64 * MB, 60
        server = master.server  # 7.0.10+ raises a hard limit below the backlog to it
        if server is None or server.obuf_hard_limit_at_least_backlog:
            hard_now = obuf_hard_limit(hard, backlog_size)
        else:
            hard_now = hard
        return cls(
            diskless=diskless,
            delay=_config_int(master, "repl-diskless-sync-delay", 5) if diskless else 0,
            repl_timeout=_config_int(master, "repl-timeout", 60),
            backlog_size=backlog_size,
            hard=hard_now,
            soft=soft,
            soft_secs=soft_secs,
            obl_text=f"{_mb(hard)} {_mb(soft)} {soft_secs}",
        )


def _mb(n: int) -> str:
    """A byte count as Redis config text.

    >>> _mb(256 * 1024 * 1024), _mb(0), _mb(1536)
    ('256mb', '0', '1536')
    """
    if n and n % MB == 0:
        return f"{n // MB}mb"
    return str(n)


def _dataset_bytes(master: NodeInfo) -> int:
    dataset = master.stat("used_memory_dataset")
    if dataset <= 0:
        dataset = max((master.used_memory or 0) - master.stat("used_memory_startup"), 0)
    return dataset


def _phase_seconds(
    master: NodeInfo, rdb: int, params: RateParams, lim: _Limits
) -> list[tuple[str, float]]:
    """How long each phase of a full sync takes.

    Load: a replica pays per key (~0.4 us) and per byte of in-memory dataset it rebuilds
    (~500 MB/s, decompression included), fitted on redis-server 7.0 over the shapes in
    ``bench/estimates.py``; a byte-rate of the RDB alone was 10x off for small keys and
    compressible values. The BGSAVE child's own last run time (``rdb_last_bgsave_time_sec``,
    whole seconds) is a floor for producing the RDB.
    """
    timing = params.timing
    used = master.used_memory or rdb * 2
    fork_s = max(used / 1024**3 * timing.fork_ms_per_gb / 1000.0, 0.0)
    fork_us = master.stat("latest_fork_usec")
    if fork_us and master.used_memory:
        fork_s = max(fork_s, fork_us / 1e6)
    bw = max(params.bandwidth, 1.0)
    produce = rdb / timing.rdb_produce_bps
    last_bgsave = master.stat("rdb_last_bgsave_time_sec")
    if last_bgsave > 0:
        produce = max(produce, float(last_bgsave))
    _, wait_hi = diskless_fork_after(lim.delay)
    phases = [("wait-for-fork (repl-diskless-sync-delay)", float(wait_hi))] if lim.delay else []
    phases.append(("fork", fork_s))
    if lim.diskless:
        phases.append(("transfer", max(rdb / bw, produce)))
    else:
        phases.append(("bgsave-to-disk", rdb / timing.disk_write_bps + produce))
        phases.append(("transfer", rdb / bw))
    keys = master.keys
    if keys:
        load = keys / timing.load_keys_per_s + _dataset_bytes(master) / timing.load_dataset_bps
    else:
        load = rdb / timing.rdb_load_bps
    phases.append(("load", load))
    return phases


def _buffer_run(
    write: float, start: float, end: float, lim: _Limits
) -> tuple[float, float | None, str]:
    """Step the replica's output buffer from ``start`` (the fork) to ``end`` (the replica
    takes the stream) at ``write`` bytes/s; returns the peak, when the master drops the
    replica (None if it does not) and which limit does it."""
    t, peak = 0.0, 0.0
    soft_since: float | None = None
    step = STEP_MS / 1000.0
    while t < end:
        t = min(t + step, end)
        buf = write * max(t - start, 0.0)
        peak = max(peak, buf)
        if lim.hard and buf >= lim.hard:
            return peak, t, "hard"
        if lim.soft and buf >= lim.soft:
            soft_since = t if soft_since is None else soft_since
            if t - soft_since > lim.soft_secs:
                return peak, t, "soft"
        else:
            soft_since = None
    return peak, None, ""


def _loop_text(
    master: NodeInfo, write: float, start: float, end: float, at: float, which: str, lim: _Limits
) -> str:
    """The resync loop, named, with the setting to change and a value that would hold."""
    need = write * (end - start) * 1.5  # what the buffer reaches in a whole sync, + 50 %
    need_mb = max(int(need // MB) + 1, lim.hard // MB * 2 if lim.hard else 0)
    if which == "hard":
        head = (
            f"the replica output buffer reaches the hard limit {lim.hard // MB} MB after {at:.1f}s"
        )
    else:
        head = (
            f"the replica output buffer stays above the soft limit {lim.soft // MB} MB for more "
            f"than {lim.soft_secs}s"
        )
    return (
        f"{head} (writes {write / MB:.1f} MB/s during a {end:.0f}s sync): the master drops the "
        f"replica, which starts over: a full-resync loop. Raise client-output-buffer-limit "
        f"replica (now {lim.obl_text}) on {master.address}, e.g. CONFIG SET "
        f'client-output-buffer-limit "replica {need_mb}mb {need_mb}mb 0"'
    )


def _full_sync_run(master: NodeInfo, rdb: int, params: RateParams) -> dict[str, Any]:
    """The full-sync pipeline: phases, duration, peak buffer, and the reason it fails
    (output-buffer limit, repl-timeout), if it does."""
    lim = _Limits.of(master)
    write = max(params.write_rate, 0.0)
    phases = _phase_seconds(master, rdb, params, lim)
    seconds = dict(phases)
    wait = seconds.get("wait-for-fork (repl-diskless-sync-delay)", 0.0)
    end = sum(s for _, s in phases)  # the buffer grows from the fork until after the load
    peak, dropped_at, which = _buffer_run(write, wait, end, lim)
    failure = _loop_text(master, write, wait, end, dropped_at, which, lim) if dropped_at else None
    if not failure and write:
        phases.append(
            ("catch-up (buffered writes)", write * (end - wait) / max(params.bandwidth, 1.0))
        )
    risks = ([failure] if failure else []) + _sync_risks(master, rdb, seconds, write, lim)
    return {
        "phases": phases,
        "seconds": sum(s for _, s in phases),
        "peak": int(peak),
        "risks": risks,
        "failure": failure,
    }


def _sync_risks(
    master: NodeInfo, rdb: int, seconds: dict[str, float], write: float, lim: _Limits
) -> list[str]:
    risks: list[str] = []
    if lim.delay:
        lo, hi = diskless_fork_after(lim.delay)
        risks.append(
            f"repl-diskless-sync-delay {lim.delay}s: the fork waits {lo}-{hi}s for more replicas"
        )
    load, transfer = seconds.get("load", 0.0), seconds.get("transfer", 0.0)
    if load > lim.repl_timeout:
        risks.append(
            f"loading takes ~{load:.0f}s, more than repl-timeout {lim.repl_timeout}s: the link may "
            f"time out during the load (raise repl-timeout for the sync)"
        )
    if transfer > lim.repl_timeout and lim.diskless:
        risks.append(
            f"the diskless transfer takes ~{transfer:.0f}s; a stall over repl-timeout "
            f"{lim.repl_timeout}s drops the replica"
        )
    if write > 0:
        coverage = lim.backlog_size / write
        if coverage < 60:
            risks.append(
                f"repl-backlog-size {lim.backlog_size // 1024} KB covers only {coverage:.1f}s of "
                f"writes: a replica disconnected longer needs a full sync"
            )
    used = master.used_memory or rdb * 2
    total = master.stat("total_system_memory")
    if used and total:
        cow = master.stat("rdb_last_cow_size")
        if cow and used + cow * 2 > total:
            risks.append(
                f"the fork may need ~{cow * 2 // MB} MB more (twice the {cow // MB} MB its last "
                f"fork copied, rdb_last_cow_size) on a host with {total // MB} MB, "
                f"{used // MB} MB in use"
            )
        elif not cow and used * 2 > total:
            risks.append(
                f"the fork may need up to {used * 2 // MB} MB (copy-on-write worst case) on a "
                f"host with {total // MB} MB"
            )
    return risks


def full_sync_phases(master: NodeInfo, rdb: int, params: RateParams) -> list[tuple[str, float]]:
    """The phases of a full sync of ``rdb`` bytes from ``master`` and their seconds."""
    return list(_full_sync_run(master, rdb, params)["phases"])


def predict_sync(
    master: NodeInfo,
    replica: NodeInfo,
    params: RateParams,
    psync: tuple[str, int, str] | None = None,
) -> SyncPrediction:
    """What ``REPLICAOF master`` on ``replica`` will cause."""
    req_id, req_off, why_req = psync or psync_request(replica)
    partial, why = decide(master, req_id, req_off)
    name, mname = str(replica.address), str(master.address)
    if partial:
        nbytes = max(master.offset + 1 - req_off, 0)
        secs = nbytes / max(params.bandwidth, 1.0)
        pred = SyncPrediction(
            name,
            mname,
            "partial",
            f"PSYNC {req_id[:8]} {req_off}: {why}",
            (req_id, req_off),
            nbytes,
            secs,
            [("send backlog", secs)],
        )
        if params.write_rate and master.backlog_active:
            room = master.backlog_size - nbytes
            if room < params.write_rate * 5:
                pred.risks.append(
                    f"only {room} backlog bytes left before offset {req_off} is overwritten "
                    f"(~{room / params.write_rate:.1f}s at the current write rate): act now or it "
                    f"becomes a full sync"
                )
        return pred
    rdb, how = rdb_estimate(master, params)
    run = _full_sync_run(master, rdb, params)
    reason = f"PSYNC {req_id[:8]} {req_off} ({why_req}): {why}"
    pred = SyncPrediction(
        name,
        mname,
        "full",
        reason,
        (req_id, req_off),
        rdb,
        run["seconds"],
        run["phases"],
        run["peak"],
        run["risks"],
    )
    pred.risks.append(f"RDB size {rdb} bytes is an estimate ({how})")
    unloadable = replica.cannot_load_from(master)
    if unloadable is not None:
        pred.reason += f"; the sync cannot complete: {unloadable}"
        pred.risks.insert(
            0,
            f"{name} cannot load {mname}'s RDB ({unloadable}): the full sync fails at the "
            f"load and is retried in a loop, the replica never comes up",
        )
    pred.notes += full_sync_notes(master, replica)
    return pred


def full_sync_notes(master: NodeInfo, replica: NodeInfo) -> list[str]:
    """How the full-sync model differs for these servers, or where it does not apply."""
    server = master.server
    notes: list[str] = []
    if server is not None and not server.shared_replication_buffer:
        notes.append(
            f"{server}: every replica in a full sync has its own output buffer (no shared "
            f"replication buffer before 7.0): concurrent full syncs hold one copy each of "
            f"the buffered writes; no 7.0.10 raise of the hard limit to the backlog size"
        )
    rserver = replica.server
    if (
        server is not None
        and rserver is not None
        and server.has_dual_channel
        and rserver.has_dual_channel
        and master.config.get("dual-channel-replication-enabled") == "yes"
        and replica.config.get("dual-channel-replication-enabled") == "yes"
    ):
        notes.append(
            "dual-channel replication (Valkey): the RDB comes over a second connection and "
            "the replica buffers the stream itself; not modelled: the timings and the "
            "master-side output-buffer figures here are those of a single-channel sync"
        )
    return notes


def predict_followers(
    replica: NodeInfo,
    sub_replicas: list[NodeInfo],
    first: SyncPrediction,
    new_replid: str | None,
    params: RateParams,
) -> list[SyncPrediction]:
    """What the replica's own replicas do once it has synced with its new master (§2.4, §6.4).

    Full sync: the replica drops them when it loads, and has a new history afterwards
    (replid2 cleared): they full-sync from it. Partial with a new id: they are dropped and
    continue through replid2. Partial, same id: they stay connected.
    """
    out = []
    for sub in sub_replicas:
        req_id, req_off, _ = psync_request(sub)
        if first.sync == "full":
            out.append(
                SyncPrediction(
                    str(sub.address),
                    str(replica.address),
                    "full",
                    f"{replica.address} full-syncs and starts a new history: its replicas "
                    f"must full-sync from it",
                    (req_id, req_off),
                    first.transfer_bytes,
                    first.estimated_seconds,
                )
            )
        elif new_replid and new_replid != replica.replid:
            out.append(
                SyncPrediction(
                    str(sub.address),
                    str(replica.address),
                    "partial",
                    f"{replica.address} takes the id {new_replid[:8]} (+CONTINUE): its replicas "
                    f"reconnect and continue through replid2",
                    (req_id, req_off),
                )
            )
        else:
            out.append(
                SyncPrediction(
                    str(sub.address),
                    str(replica.address),
                    "none",
                    "same replication id: stays connected",
                    (req_id, req_off),
                )
            )
    return out


def applied_offset(node: NodeInfo) -> int:
    """The last stream byte ``node`` holds: a replica's applied offset, a master's own."""
    applied = node.replica_offset
    return applied if applied is not None else node.offset


def history_gap(behind: NodeInfo, ahead: NodeInfo) -> int | None:
    """Bytes of history ``ahead`` holds beyond ``behind``, when ``behind``'s history is a
    prefix of ``ahead``'s (the PSYNC id and offset rule, backlog aside); None when it is
    not: ``behind`` is further on, or the two histories diverged (unrelated ids).

    Only then can ``behind`` catch up from ``ahead`` without losing anything of its own.
    """
    mine, theirs = applied_offset(behind), applied_offset(ahead)
    decision = psync_decision(
        behind.replid,
        mine + 1,
        replid=ahead.replid,
        replid2=ahead.replid2 or NULL_REPLID,
        second_repl_offset=ahead.second_repl_offset,
        backlog_first=1,
        master_repl_offset=theirs,
    )
    return theirs - mine if decision.partial else None


def predict_returning(
    master: NodeInfo, known: NodeInfo, age: float, first: SyncPrediction
) -> SyncPrediction:
    """A replica last seen ``age`` seconds ago under ``master`` and not connected now
    (reconnecting, down, or refused while ``master`` had no link): what it does when it
    comes back after ``master`` was moved (``first``).

    If ``master`` full-syncs it starts a new history: the returning replica must full-sync.
    Otherwise its PSYNC is judged against ``master``'s ids and backlog as last read (a
    partial move keeps the old id as replid2, valid up to the current offset).
    """
    req_id, req_off, why_req = psync_request(known)
    name, mname = str(known.address), str(master.address)
    learned = f" (known from the last-known topology, {age:.0f}s old)"
    if first.sync == "full":
        return SyncPrediction(
            name,
            mname,
            "full",
            f"{mname} full-syncs and starts a new history: when {name} comes back it must "
            f"full-sync from it{learned}",
            (req_id, req_off),
            first.transfer_bytes,
            first.estimated_seconds,
        )
    partial, why = decide(master, req_id, req_off)
    return SyncPrediction(
        name,
        mname,
        "partial" if partial else "full",
        f"when it comes back: PSYNC {req_id[:8]} {req_off} ({why_req}): {why}{learned}",
        (req_id, req_off),
    )


def promotion_effects(node: NodeInfo) -> dict[str, Any]:
    """``REPLICAOF NO ONE`` on ``node`` (§4.1): the id shift its replicas will continue through."""
    return {
        "replid2": node.replid,
        "second_repl_offset": node.offset + 1,
        "reason": f"REPLICAOF NO ONE keeps data and backlog, moves id {node.replid[:8]} to replid2 valid up to "
        f"offset {node.offset + 1}, and starts a new id: its replicas reconnect and continue partially",
    }


# ----------------------------------------------------------------------------- sizing


@dataclass(frozen=True)
class FullSyncEstimate:
    """The rate model's full sync of one replica: how long, how much buffer, whether it loops."""

    rdb_bytes: int
    rdb_source: str
    seconds: float  # every phase, catch-up included
    buffered_seconds: float  # fork until the replica takes the stream: the buffer grows all along
    phases: list[tuple[str, float]]
    peak_buffer: int
    failure: str | None  # the output-buffer limit that drops the replica: a full-resync loop
    risks: list[str]

    def phase(self, name: str) -> float:
        return sum(s for p, s in self.phases if p.startswith(name))


def estimate_full_sync(
    master: NodeInfo, params: RateParams, config: Mapping[str, str] | None = None
) -> FullSyncEstimate:
    """A full sync from ``master`` as it is (or with ``config`` overriding its settings)."""
    if config:
        master = replace(master, config={**master.config, **config})
    rdb, how = rdb_estimate(master, params)
    run = _full_sync_run(master, rdb, params)
    phases: list[tuple[str, float]] = run["phases"]
    buffered = sum(s for p, s in phases if not p.startswith(("wait-for-fork", "catch-up")))
    return FullSyncEstimate(
        rdb, how, run["seconds"], buffered, phases, run["peak"], run["failure"], run["risks"]
    )


@dataclass(frozen=True)
class StormEstimate:
    """``replicas`` replicas full-syncing from one master at once (after its restart, or a
    failover that leaves them all needing a full sync)."""

    replicas: int
    forks: int
    network_bytes: int
    per_replica: FullSyncEstimate  # each replica's sync with the master's bandwidth shared
    buffer_memory: int  # replication buffer memory on the master at the peak

    @property
    def loops(self) -> bool:
        return self.per_replica.failure is not None


def estimate_storm(
    master: NodeInfo,
    replicas: int,
    params: RateParams,
    config: Mapping[str, str] | None = None,
    shared_buffer: bool = True,
) -> StormEstimate:
    """What ``replicas`` simultaneous full syncs cost the master.

    One fork serves every replica that asks while it is being prepared: the diskless
    delay window, or (disk-based) a BGSAVE already running for replication. With no delay
    the first replica forks at once and the rest wait for the next fork. The master's
    bandwidth is shared by all transfers. Since 7.0 replicas share one replication buffer
    (``shared_buffer``): its memory is counted once; before 7.0 each replica has its own.
    """
    n = max(replicas, 1)
    cfg = {**master.config, **(config or {})}
    diskless = cfg.get("repl-diskless-sync", "yes") == "yes"
    try:
        delay = int(cfg.get("repl-diskless-sync-delay", "5"))
        max_batch = int(cfg.get("repl-diskless-sync-max-replicas", "0"))
    except ValueError:
        delay, max_batch = 5, 0
    if diskless and delay == 0:
        forks = 1 if n == 1 else 2
    elif diskless and max_batch:
        forks = -(-n // max_batch)
    else:
        forks = 1
    shared = RateParams(params.bandwidth / n, params.write_rate, params.rdb_bytes, params.timing)
    one = estimate_full_sync(master, shared, config)
    memory = one.peak_buffer if shared_buffer else one.peak_buffer * n
    return StormEstimate(n, forks, one.rdb_bytes * n, one, memory)
