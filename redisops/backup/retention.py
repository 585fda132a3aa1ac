"""Which backups to keep: the seeds' policy, with the floors the good tools add.

Pure: backups (id, time taken, good or not) and the current time in, one decision with
its reasons per backup out. Time buckets are UTC hours and UTC days (stated, because
local-time buckets move twice a year).

* ``keep_hourly`` H: for each UTC hour of the last H hours, the newest good backup of that
  hour is kept (the seeds: "hourly copies, kept 48 hours").
* ``keep_daily`` D: for each UTC day of the last D days, the newest good backup of that day
  is kept (the seeds: "a daily copy, kept a month").
* The newest good backup is never deleted, however old (Barman ``minimum_redundancy``,
  restic keeping the newest when a window finds none): a job that stopped cannot let
  expiry eat everything.
* ``keep_min`` N: never fewer than N good backups; the newest N are kept.
* Failed backups (kept aside for inspection) never count towards any rule; they are
  deleted once older than the daily window.
* When the newest backup failed, nothing is deleted at all (pgBackRest expires only after a
  new backup completed; the caller also prunes only after a new backup verified).

>>> H = 3600
>>> items = [Item("a", 10 * H, True), Item("b", 10 * H + 60, True), Item("c", 11 * H, True)]
>>> [(d.id, d.keep) for d in decide(items, 12 * H, Policy(keep_hourly=48, keep_daily=0, keep_min=1))]
[('c', True), ('b', True), ('a', False)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

HOUR = 3600
DAY = 86400


@dataclass(frozen=True)
class Policy:
    keep_hourly: int = 48
    keep_daily: int = 30
    keep_min: int = 1

    def describe(self) -> str:
        """How the policy reads in output.

        >>> Policy().describe()
        'hourly for 48 h, daily for 30 d, at least 1'
        """
        return f"hourly for {self.keep_hourly} h, daily for {self.keep_daily} d, at least {self.keep_min}"


@dataclass(frozen=True)
class Item:
    id: str
    taken_at: float  # seconds since the epoch
    good: bool  # verified (failed backups are not)


@dataclass
class Decision:
    id: str
    taken_at: float
    good: bool
    keep: bool = False
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "keep": self.keep,
            "good": self.good,
            "reasons": list(self.reasons),
        }


def _hour_label(t: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:00 UTC", time.gmtime(t))


def _day_label(t: float) -> str:
    import time

    return time.strftime("%Y-%m-%d UTC", time.gmtime(t))


def decide(items: Sequence[Item], now: float, policy: Policy) -> list[Decision]:
    """One decision per item, newest first; ``keep`` False means prune it."""
    decisions = [Decision(i.id, i.taken_at, i.good) for i in items]
    decisions.sort(key=lambda d: (d.taken_at, d.id), reverse=True)
    if not decisions:
        return decisions
    if not decisions[0].good:
        for d in decisions:
            d.keep = True
            d.reasons.append("the newest backup failed verification: nothing is pruned")
        return decisions
    good = [d for d in decisions if d.good]
    seen_hours: set[int] = set()
    seen_days: set[int] = set()
    for d in good:
        age = now - d.taken_at
        if age < 0:
            d.keep = True
            d.reasons.append("taken in the future (clock skew?): kept")
            continue
        hour, day = int(d.taken_at // HOUR), int(d.taken_at // DAY)
        if age < policy.keep_hourly * HOUR and hour not in seen_hours:
            seen_hours.add(hour)
            d.keep = True
            d.reasons.append(f"hourly: newest of {_hour_label(d.taken_at)}")
        if age < policy.keep_daily * DAY and day not in seen_days:
            seen_days.add(day)
            d.keep = True
            d.reasons.append(f"daily: newest of {_day_label(d.taken_at)}")
    good[0].keep = True
    good[0].reasons.append("newest verified backup")
    for d in good[: max(policy.keep_min, 0)]:
        if not d.keep:
            d.keep = True
            d.reasons.append(f"--keep-min {policy.keep_min}: one of the newest {policy.keep_min}")
    for d in decisions:
        if d.good and not d.keep:
            d.reasons.append(_pruned_reason(now - d.taken_at, policy))
        elif not d.good:
            if now - d.taken_at < policy.keep_daily * DAY:
                d.keep = True
                d.reasons.append("failed: kept aside for inspection within the daily window")
            else:
                d.reasons.append("failed, and older than the daily window")
    return decisions


def _pruned_reason(age: float, policy: Policy) -> str:
    """Why a verified backup goes: a newer one holds its bucket, or it is past both windows."""
    if age < policy.keep_hourly * HOUR:
        return "a newer backup of the same UTC hour is kept"
    if age < policy.keep_daily * DAY:
        return "a newer backup of the same UTC day is kept"
    return "outside the hourly and daily windows"
