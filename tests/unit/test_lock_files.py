"""Lock files leave nothing behind, and an operation can hold a second group's lock."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

from redisops.errors import Locked
from redisops.inventory import ConnectOptions, Credentials
from redisops.lock import LOCK_KEY, ClusterLock, drop_file_lock, take_file_lock
from redisops.model import Address
from redisops.ops.attach import plan_attach
from redisops.ops.common import Options
from redisops.session import Session
from tests.builders import master, replica, rid, topology
from tests.unit.test_plan_executor import FakeNode


def test_no_lock_file_is_left_behind_however_many_clusters_were_locked(tmp_path: Path) -> None:
    for name in ("10.0.0.1:6379", "10.0.0.1:6379,10.0.0.2:6379", "cache-prod", "adhoc"):
        with ClusterLock(name, "attach", "alice", directory=tmp_path) as lock:
            lock.acquire(None)
            assert lock.path.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_waiter_on_a_file_its_holder_removed_takes_the_new_file(tmp_path: Path) -> None:
    """The race the removal opens: B opened the file A holds; A releases and removes it;
    B's flock then succeeds on a file no path names. B must notice and start over, or two
    operations would hold 'the' lock at once."""
    path = ClusterLock("c", "x", "carol", directory=tmp_path).path
    held = take_file_lock(path, {"operator": "a"}, "c")
    stale = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - B's open, before A releases
    drop_file_lock(path, held)
    fcntl.flock(stale.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # succeeds on the gone file
    stale.close()
    again = take_file_lock(path, {"operator": "b"}, "c")
    third = ClusterLock("c", "x", "carol", directory=tmp_path)
    with pytest.raises(Locked):
        third.acquire(None)  # the live file is held: nobody else gets in
    drop_file_lock(path, again)


def test_the_key_of_a_second_group_excludes_its_operations_until_released(
    tmp_path: Path,
) -> None:
    """A replica moving out of group X changes X too: the operation holds X's key as well
    (X's members' local locks are among its own names already)."""
    main_master = FakeNode(Address.parse("10.0.0.1:6379"), {})
    other_master = FakeNode(Address.parse("10.0.0.9:6379"), {})
    lock = ClusterLock("10.0.0.1:6379", "attach", "alice", directory=tmp_path / "this-host")
    lock.acquire(main_master)  # type: ignore[arg-type]
    lock.acquire_also("10.0.0.9:6379", other_master)  # type: ignore[arg-type]
    assert LOCK_KEY in other_master.store
    other = ClusterLock("10.0.0.9:6379", "switchover", "bob", directory=tmp_path / "other-host")
    with pytest.raises(Locked) as exc:
        other.acquire(other_master)  # type: ignore[arg-type]
    assert "alice@" in str(exc.value) and "attach" in str(exc.value)
    lock.release()
    assert LOCK_KEY not in other_master.store and LOCK_KEY not in main_master.store
    other.acquire(other_master)  # type: ignore[arg-type]
    other.release()
    assert [list(d.iterdir()) for d in tmp_path.iterdir()] == [[], []]  # no lock file left


def test_attaching_a_replica_of_another_group_locks_that_group_too() -> None:
    x, y, m = "10.0.0.9:6379", "10.0.0.8:6379", "10.0.0.1:6379"
    topo = topology(
        master(x, offset=50, replicas=[y], replid=rid("x")),
        replica(y, x, offset=50, replid=rid("x")),
        master(m, offset=100),
        seeds=[y, m],
    )
    p = plan_attach(
        topo,
        Address.parse(y),
        Address.parse(m),
        Options(),
        Credentials(),
        Session(options=ConnectOptions()),
    )
    actions = [s.action for s in p.steps]
    assert actions[:2] == ["lock", "lock-group"]
    group = p.steps[1]
    assert group.node == x and group.args["group"] == x
