"""Retention over fabricated backup times with an injected clock (redisops.backup.retention)."""

from __future__ import annotations

import calendar

from redisops.backup.retention import DAY, HOUR, Decision, Item, Policy, decide

NOW = float(calendar.timegm((2026, 12, 6, 12, 30, 0)))  # a Sunday, 12:30 UTC


def kept(decisions: list[Decision]) -> set[str]:
    return {d.id for d in decisions if d.keep}


def hourly_series(hours: int, per_hour: int = 1, start: float = NOW) -> list[Item]:
    """Backups every hour (``per_hour`` of them in each hour), newest first."""
    items = []
    for h in range(hours):
        for k in range(per_hour):
            t = start - h * HOUR - k * 600
            items.append(Item(f"h{h}-{k}", t, True))
    return items


def test_hourly_keeps_the_newest_of_each_utc_hour_for_48_hours() -> None:
    items = hourly_series(60, per_hour=3)
    decisions = decide(items, NOW, Policy(keep_hourly=48, keep_daily=0, keep_min=1))
    survivors = kept(decisions)
    hours_kept = {i.taken_at // HOUR for i in items if i.id in survivors}
    assert len(hours_kept) == len(survivors)  # one per hour
    assert all(NOW - i.taken_at < 48 * HOUR for i in items if i.id in survivors)
    assert len(survivors) >= 48
    # in each kept hour, the newest of that hour was chosen
    for i in items:
        if i.id in survivors:
            same_hour = [j for j in items if j.taken_at // HOUR == i.taken_at // HOUR]
            assert i.taken_at == max(j.taken_at for j in same_hour)


def test_daily_keeps_the_newest_of_each_utc_day_for_30_days() -> None:
    items = [Item(f"d{d}-{h}", NOW - d * DAY - h * HOUR, True) for d in range(45) for h in (0, 5)]
    decisions = decide(items, NOW, Policy(keep_hourly=0, keep_daily=30, keep_min=1))
    survivors = [i for i in items if i.id in kept(decisions)]
    days = {int(i.taken_at // DAY) for i in survivors}
    assert len(days) == len(survivors)
    assert all(NOW - i.taken_at < 30 * DAY for i in survivors)
    assert 30 <= len(survivors) <= 31


def test_the_seeds_default_keeps_48_hourlies_and_a_month_of_dailies() -> None:
    items = hourly_series(24 * 40)
    survivors = kept(decide(items, NOW, Policy()))
    old = [i for i in items if i.id in survivors and NOW - i.taken_at >= 48 * HOUR]
    assert all(time_of_day_is_last_of_its_day(i, items) for i in old)
    # 48 hourlies (today and the two days before, in part) + the newest (23:30 UTC) of each
    # of the 28 days before those, the 30th-day one included: its age is 13 h + 29 days
    assert len(survivors) == 48 + 28


def time_of_day_is_last_of_its_day(item: Item, items: list[Item]) -> bool:
    day = item.taken_at // DAY
    return item.taken_at == max(i.taken_at for i in items if i.taken_at // DAY == day)


def test_the_newest_verified_backup_is_never_deleted_however_old() -> None:
    items = [Item("ancient", NOW - 400 * DAY, True), Item("older", NOW - 500 * DAY, True)]
    decisions = decide(items, NOW, Policy(keep_min=1))
    assert kept(decisions) == {"ancient"}
    assert "newest verified backup" in decisions[0].reasons


def test_keep_min_keeps_the_newest_n_even_outside_every_window() -> None:
    items = [Item(f"b{i}", NOW - (100 + i) * DAY, True) for i in range(10)]
    assert kept(decide(items, NOW, Policy(keep_min=4))) == {"b0", "b1", "b2", "b3"}


def test_failed_backups_never_count_and_go_after_the_daily_window() -> None:
    items = [
        Item("good-old", NOW - 200 * DAY, True),
        Item("failed-recent", NOW - 2 * DAY, False),
        Item("failed-old", NOW - 60 * DAY, False),
        Item("good-new", NOW - HOUR, True),
    ]
    decisions = {d.id: d for d in decide(items, NOW, Policy(keep_min=2))}
    # keep-min 2 is met with good backups only: the failed ones do not count
    assert decisions["good-old"].keep and decisions["good-new"].keep
    assert decisions["failed-recent"].keep  # kept aside for inspection
    assert not decisions["failed-old"].keep


def test_nothing_is_pruned_while_the_newest_backup_failed() -> None:
    items = [Item(f"old{i}", NOW - (90 + i) * DAY, True) for i in range(5)]
    items.append(Item("latest", NOW - 60, False))
    decisions = decide(items, NOW, Policy(keep_hourly=1, keep_daily=1, keep_min=1))
    assert all(d.keep for d in decisions)


def test_a_backup_from_the_future_is_kept() -> None:
    decisions = decide(
        [Item("skewed", NOW + 3600, True), Item("ok", NOW - 60, True)], NOW, Policy()
    )
    assert kept(decisions) == {"skewed", "ok"}


def test_no_backups_no_decisions() -> None:
    assert decide([], NOW, Policy()) == []


def test_a_backup_superseded_in_its_hour_says_so_instead_of_outside_the_windows() -> None:
    items = [Item("new", NOW - 60, True), Item("old", NOW - 120, True), Item("ancient", 0, True)]
    decisions = {d.id: d for d in decide(items, NOW, Policy(keep_min=1))}
    assert not decisions["old"].keep
    assert decisions["old"].reasons[-1] == "a newer backup of the same UTC hour is kept"
    assert decisions["ancient"].reasons[-1] == "outside the hourly and daily windows"
    day_old = [Item("a", NOW - 60 * HOUR, True), Item("b", NOW - 60 * HOUR - 60, True)]
    later = {d.id: d for d in decide([Item("n", NOW, True), *day_old], NOW, Policy(keep_min=1))}
    assert later["b"].reasons[-1] == "a newer backup of the same UTC day is kept"
