"""Replication rules shared by the exact engine and the planner's rate model.

Each function is a rule of Redis 7.0 stated once, so the simulation (``replication.py``)
and the predictions (``predict.py``) cannot disagree about it. What differs between
servers (6.2, Valkey) is in :mod:`redisops.versions`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PsyncDecision:
    partial: bool
    reason: str


def psync_decision(
    req_id: str,
    req_offset: int,
    *,
    replid: str,
    replid2: str,
    second_repl_offset: int,
    backlog_first: int | None,
    master_repl_offset: int,
) -> PsyncDecision:
    """``masterTryPartialResynchronization()``: may ``PSYNC req_id req_offset`` continue?

    ``backlog_first`` is None when the master has no backlog. The offset is the next byte
    the replica wants (its offset + 1).

    >>> psync_decision("a" * 40, 513, replid="a" * 40, replid2="0" * 40, second_repl_offset=-1,
    ...                backlog_first=1, master_repl_offset=512).partial
    True
    >>> psync_decision("a" * 40, 514, replid="a" * 40, replid2="0" * 40, second_repl_offset=-1,
    ...                backlog_first=1, master_repl_offset=512).reason
    'requested offset 514 is past the master offset 512 + 1'
    """
    rid = req_id.lower()
    if req_id.startswith("?"):
        return PsyncDecision(False, "the replica has no usable replication history (PSYNC ? -1)")
    if rid == replid:
        how = f"same replication id {replid[:8]}"
    elif rid == replid2 and req_offset <= second_repl_offset:
        how = f"previous replication id {replid2[:8]} is valid up to offset {second_repl_offset}"
    elif rid == replid2:
        return PsyncDecision(
            False,
            f"requested offset {req_offset} for the previous id {replid2[:8]}, "
            f"but it is valid only up to {second_repl_offset}",
        )
    else:
        return PsyncDecision(
            False,
            f"replication id {req_id[:8]} is unknown to the master "
            f"(ids {replid[:8]} / {replid2[:8]})",
        )
    if backlog_first is None:
        return PsyncDecision(False, f"{how}, but the master has no backlog")
    if req_offset < backlog_first:
        return PsyncDecision(
            False,
            f"{how}, but offset {req_offset} is before the backlog start {backlog_first} "
            f"(backlog overrun)",
        )
    if req_offset > master_repl_offset + 1:
        return PsyncDecision(
            False,
            f"requested offset {req_offset} is past the master offset {master_repl_offset} + 1",
        )
    return PsyncDecision(
        True,
        f"{how}; offset {req_offset} is inside the backlog "
        f"[{backlog_first}, {master_repl_offset + 1}]",
    )


def obuf_hard_limit(hard: int, backlog_size: int) -> int:
    """7.0.10+: a replica output-buffer hard limit below ``repl-backlog-size`` is raised to it."""
    return backlog_size if hard and hard < backlog_size else hard


def diskless_fork_after(delay_s: int) -> tuple[int, int]:
    """A deferred diskless fork happens on the first replication-cron tick (1 Hz) at which
    the longest waiting replica has idled ``>= delay`` seconds: between delay and delay + 1."""
    return (delay_s, delay_s + 1) if delay_s > 0 else (0, 0)
