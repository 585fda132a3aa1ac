"""The cluster lock (local flock + key on the master) and the audit log."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from redisops.audit import AuditLog, default_path, scrub
from redisops.errors import CommandFailed, ExitCode, Locked, RedisopsError, Unreachable
from redisops.lock import LOCK_KEY, ClusterLock, LockUnavailable, locks_dir
from redisops.model import Address, Plan, Step
from redisops.redis_node import RedisNode
from tests.harness import RedisFactory
from tests.unit.test_plan_executor import FakeNode

ADDR = Address.parse("10.0.0.1:6379")


def fake_master(store: dict[str, str] | None = None) -> FakeNode:
    return FakeNode(ADDR, {} if store is None else store)


def new_lock(directory: Path, operation: str = "attach", operator: str = "alice") -> ClusterLock:
    return ClusterLock("10.0.0.1:6379", operation, operator, directory=directory)


# ----------------------------------------------------------------------------- local layer


def test_a_second_operation_on_this_host_is_refused_naming_the_holder(tmp_path: Path) -> None:
    first = new_lock(tmp_path, "attach", "alice")
    first.acquire(None)
    assert first.warnings == ["no reachable master: only the local lock is held"]
    second = new_lock(tmp_path, "detach", "bob")
    with pytest.raises(Locked) as exc:
        second.acquire(None)
    msg = str(exc.value)
    assert exc.value.exit_code is ExitCode.LOCKED
    assert f"alice@{first.holder['host']} (pid {os.getpid()}, attach) since " in msg
    assert "s ago" in msg
    first.release()
    second.acquire(None)  # free again
    second.release()


def test_the_lock_file_is_named_after_the_cluster_under_the_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert locks_dir() == tmp_path / "redisops" / "locks"
    lock = ClusterLock("10.0.0.1:6379/../x", "attach", "alice")
    assert lock.path.parent == tmp_path / "redisops" / "locks"
    assert lock.path.name == "cluster_10.0.0.1_6379_.._x.lock"
    with lock:
        lock.acquire(None)
        assert json.loads(lock.path.read_text())["operation"] == "attach"
    assert not lock.path.exists()  # released: the file is removed (no leftovers)


# ----------------------------------------------------------------------------- key layer


def test_the_key_on_the_master_stops_an_operator_on_another_host(tmp_path: Path) -> None:
    store: dict[str, str] = {}
    here = new_lock(tmp_path / "host-a", "attach", "alice")
    here.acquire(fake_master(store))
    holder = json.loads(store[LOCK_KEY])
    assert holder["token"] == here.token and holder["operation"] == "attach"
    there = new_lock(tmp_path / "host-b", "switchover", "bob")  # another host: other lock dir
    with pytest.raises(Locked) as exc:
        there.acquire(fake_master(store))
    assert "alice@" in str(exc.value) and "(pid" in str(exc.value)
    assert "it expires in 60s" in str(exc.value)
    # the loser holds nothing: its local lock was dropped
    assert not there.held
    here.release()
    assert LOCK_KEY not in store
    there.acquire(fake_master(store))
    there.release()


def test_only_the_owner_releases_the_key(tmp_path: Path) -> None:
    store: dict[str, str] = {}
    mine = new_lock(tmp_path)
    mine.acquire(fake_master(store))
    store[LOCK_KEY] = json.dumps({"token": "someone-else"})  # expired and re-taken meanwhile
    mine.release()
    assert json.loads(store[LOCK_KEY])["token"] == "someone-else"


def test_a_lock_key_that_cannot_be_written_stops_the_operation(tmp_path: Path) -> None:
    node = fake_master()
    node.fail_next("SET", CommandFailed("10.0.0.1:6379: SET failed: NOPERM no permissions"))
    lock = new_lock(tmp_path)
    with pytest.raises(LockUnavailable) as exc:
        lock.acquire(node)
    assert exc.value.exit_code is ExitCode.REFUSED
    assert "cannot take the cluster lock" in str(exc.value) and "NOPERM" in str(exc.value)
    assert "nothing was changed" in str(exc.value)
    assert not lock.held  # and the local layer was given back
    new_lock(tmp_path).acquire(None)


def test_force_goes_on_with_only_the_local_lock_and_says_so(tmp_path: Path) -> None:
    node = fake_master()
    node.fail_next("SET", CommandFailed("READONLY You can't write against a read only replica."))
    lock = new_lock(tmp_path)
    lock.acquire(node, local_only_ok=True)
    assert lock.key_on is None and lock.held
    assert "READONLY" in lock.warnings[0] and "only the local lock is held" in lock.warnings[0]
    lock.release()


def test_the_lock_identity_is_the_group_whatever_the_spelling_or_the_seeds(
    tmp_path: Path,
) -> None:
    # two failovers of one dead master, seeded with different replicas, one via a hostname
    first = ClusterLock(
        "a", "failover", "alice", directory=tmp_path, members=["localhost:7000", "127.0.0.1:7001"]
    )
    second = ClusterLock(
        "b", "failover", "bob", directory=tmp_path, members=["127.0.0.1:7000", "127.0.0.1:7002"]
    )
    first.acquire(None)
    with pytest.raises(Locked, match=r"alice@.*failover"):
        second.acquire(None)
    assert not second.held
    # a node reached under another address is the same member through its run id
    third = ClusterLock("c", "attach", "carol", directory=tmp_path, members=["run:r1", "h:1"])
    third.acquire(None)
    fourth = ClusterLock("d", "detach", "dave", directory=tmp_path, members=["run:r1", "h:2"])
    with pytest.raises(Locked):
        fourth.acquire(None)
    first.release()
    third.release()
    second.acquire(None)
    fourth.acquire(None)


def test_a_lock_extends_to_members_found_on_a_fresh_read(tmp_path: Path) -> None:
    lock = ClusterLock("c", "failover", "alice", directory=tmp_path, members=["127.0.0.1:7000"])
    lock.acquire(None)
    lock.extend(["127.0.0.1:7000", "127.0.0.1:7005"])
    other = ClusterLock("o", "attach", "bob", directory=tmp_path, members=["127.0.0.1:7005"])
    with pytest.raises(Locked):
        other.acquire(None)
    lock.release()
    other.acquire(None)
    with pytest.raises(Locked):
        lock.extend(["127.0.0.1:7005"])


def test_an_unreachable_master_releases_the_local_lock_and_raises(tmp_path: Path) -> None:
    node = fake_master()
    node.fail_next("SET", Unreachable("10.0.0.1:6379: connection reset"))
    lock = new_lock(tmp_path)
    with pytest.raises(Unreachable):
        lock.acquire(node)
    assert not lock.held
    other = new_lock(tmp_path)
    other.acquire(None)
    other.release()


def test_a_replicated_copy_is_dropped_only_when_it_is_ours(tmp_path: Path) -> None:
    store: dict[str, str] = {}
    lock = new_lock(tmp_path)
    lock.acquire(fake_master(store))
    promoted = {LOCK_KEY: store[LOCK_KEY]}
    stranger = {LOCK_KEY: json.dumps({"token": "theirs"})}
    garbage = {LOCK_KEY: "not json"}
    lock.release()
    assert lock.drop_copy(fake_master(promoted)) is True and promoted == {}
    assert lock.drop_copy(fake_master(stranger)) is False and LOCK_KEY in stranger
    assert lock.drop_copy(fake_master({})) is False
    assert lock.drop_copy(fake_master(garbage)) is False
    assert any("could not remove the replicated lock key" in w for w in lock.warnings)


@pytest.mark.redis_server
def test_the_lock_key_on_a_real_master_has_an_owner_and_an_expiry(
    redis_factory: RedisFactory, tmp_path: Path
) -> None:
    proc = redis_factory.start()
    addr = Address.parse(proc.address)
    with RedisNode(addr) as a, RedisNode(addr) as b:
        first = ClusterLock("c", "attach", "alice", ttl_s=30, directory=tmp_path / "a")
        first.acquire(a)
        client = proc.client()
        assert 0 < client.pttl(LOCK_KEY) <= 30_000
        assert json.loads(client.get(LOCK_KEY))["token"] == first.token
        second = ClusterLock("c", "detach", "bob", directory=tmp_path / "b")
        with pytest.raises(Locked, match=r"alice@.*attach.*expires in \d+s"):
            second.acquire(b)
        client.set(LOCK_KEY, json.dumps({"token": "other"}), px=30_000)
        first.release()  # not ours any more: left alone
        assert client.exists(LOCK_KEY)
        client.delete(LOCK_KEY)
        second.acquire(b)
        second.release()
        assert not client.exists(LOCK_KEY)


# ----------------------------------------------------------------------------- audit


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_audit_records_are_appended_one_json_line_each(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "audit.log"
    first = AuditLog(path, "attach", "c1")
    first.record(step=1, node="10.0.0.2:6379", action="command", command=["PING"], result="ok")
    second = AuditLog(path, "detach", "c1")
    second.record(step=1, node="10.0.0.2:6379", action="command", result="started")
    lines = read(path)
    assert len(lines) == 2
    one = lines[0]
    assert {"time", "op_id", "operation", "cluster", "operator", "host", "command_line"} <= set(one)
    assert one["operation"] == "attach" and one["cluster"] == "c1"
    assert one["node"] == "10.0.0.2:6379" and one["command"] == ["PING"] and one["result"] == "ok"
    assert lines[0]["op_id"] != lines[1]["op_id"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_audit_time_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a second boundary between two clock reads must not put the milliseconds of the next
    # second on the previous one (a time 1 s in the past)
    ticks = iter([1_700_000_000.999, 1_700_000_001.0004])
    monkeypatch.setattr("redisops.audit.time.time", lambda: next(ticks))
    log = AuditLog(tmp_path / "a.log", "attach", "c")
    log.record(step=0)
    assert read(tmp_path / "a.log")[0]["time"] == "2023-11-14T22:13:20.999Z"


def test_the_lock_key_outlives_the_longest_wait_of_the_plan() -> None:
    from redisops.ops.api import lock_ttl

    short = Plan("attach", "c", (Step(1, "a:1", "wait-sync", "w", args={"timeout": 300.0}),))
    long = Plan("attach", "c", (Step(1, "a:1", "wait-sync", "w", args={"timeout": 3600.0}),))
    assert lock_ttl(short) == 900
    assert lock_ttl(long) == 3600 + 300
    assert lock_ttl(Plan("detach", "c", ())) == 900


def test_the_audit_log_lives_under_the_state_directory_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_path() == tmp_path / "redisops" / "audit.log"
    AuditLog(None, "attach", "c").record(step=0, action="plan")
    assert read(tmp_path / "redisops" / "audit.log")[0]["action"] == "plan"


def test_passwords_in_urls_are_scrubbed_from_the_command_line() -> None:
    argv = ["redisops", "attach", "redis://ops:hunter2@h:1", "--to", "rediss://:pw2@h:2", "x:3"]
    clean = scrub(argv)
    assert clean == [
        "redisops",
        "attach",
        "redis://ops:***@h:1",
        "--to",
        "rediss://:***@h:2",
        "x:3",
    ]
    assert "hunter2" not in json.dumps(clean) and "pw2" not in json.dumps(clean)


def test_the_recorded_command_line_is_scrubbed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.argv", ["redisops", "status", "redis://u:s3cret@h:1"])
    log = AuditLog(tmp_path / "a.log", "attach", "c")
    log.record(step=0)
    assert "s3cret" not in (tmp_path / "a.log").read_text()


def test_an_unwritable_audit_log_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    log = AuditLog(blocker / "audit.log", "attach", "c")  # parent is a file
    with pytest.raises(RedisopsError, match="cannot write the audit log") as exc:
        log.record(step=0)
    assert exc.value.hint is not None and "--audit-log" in exc.value.hint
