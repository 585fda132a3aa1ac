"""``attach`` against real redis-server where the behaviour comes from Redis: a resync loop
caught and named, the phase a timeout reached, a predicted loop refused, a prediction
gone stale before REPLICAOF, Ctrl-C in a long sync, a password for a passwordless master,
and the measured sync beside the prediction."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from redisops.audit import AuditLog
from redisops.errors import ExitCode
from redisops.inventory import Credentials
from redisops.lock import ClusterLock
from redisops.model import Address
from redisops.ops.attach import plan_attach
from redisops.ops.common import Options
from redisops.plan import NullProgress, RunContext, execute
from redisops.session import build_session
from tests.harness import FAST_SYNC, RedisFactory, RedisProc, replicate, wait_in_sync, wait_link_up
from tests.integration.lab_fixture import audit_lines, cli, poll
from tests.integration.test_attach_redis import spawn_redisops

pytestmark = pytest.mark.redis_server

#: a master whose replica output-buffer limit cannot hold what a slow sync buffers
TIGHT = {
    **FAST_SYNC,
    "client-output-buffer-limit": "replica 1mb 512kb 1",
    "repl-backlog-size": "16kb",
    "rdb-key-save-delay": "100",  # microseconds per key: the diskless transfer takes seconds
}


def populate(proc: RedisProc, keys: int) -> None:
    with proc.client() as c:
        c.execute_command("DEBUG", "POPULATE", keys)


@pytest.fixture
def writes(redis_factory: RedisFactory) -> Iterator[Any]:
    """Start a writer (about 2 MB/s of SETs) on a node; stopped at teardown."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(proc: RedisProc) -> None:
        def run() -> None:
            with proc.client() as c:
                value = "x" * 1000
                while not stop.is_set():
                    pipe = c.pipeline(transaction=False)
                    for j in range(40):
                        pipe.set(f"w{j}", value)
                    try:
                        pipe.execute()
                    except redis.RedisError:
                        return
                    time.sleep(0.02)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        threads.append(t)

    yield start
    stop.set()
    for t in threads:
        t.join(5)


def detach(proc: RedisProc) -> None:
    with proc.client() as c:
        c.execute_command("REPLICAOF", "NO", "ONE")


def test_a_resync_loop_is_caught_early_and_named_with_the_setting_to_change(
    redis_factory: RedisFactory, writes: Any
) -> None:
    m, r = redis_factory.start(TIGHT), redis_factory.start(FAST_SYNC)
    populate(m, 30_000)
    writes(m)
    try:
        run = cli(
            "attach", r.address, "--to", m.address, "--yes", "--sample", "0", "--timeout", "120"
        )
    finally:
        detach(r)
    assert run.code == int(ExitCode.PARTIAL), run.stderr
    err = run.stderr
    assert f"resync loop: {m.address} started" in err
    assert "stopped waiting" in err
    assert "client-output-buffer-limit replica" in err
    assert f"'redisops detach {r.address}'" in err
    assert "masterauth" not in err  # not blamed on the handshake
    assert "Result: partial" in run.stdout


def test_a_timeout_in_a_diskless_transfer_says_how_far_it_got(
    redis_factory: RedisFactory,
) -> None:
    slow = {**FAST_SYNC, "rdb-key-save-delay": "2000"}  # ~40 s to send 20,000 keys
    m, r = redis_factory.start(slow), redis_factory.start(FAST_SYNC)
    populate(m, 20_000)
    try:
        run = cli(
            "attach", r.address, "--to", m.address, "--yes", "--sample", "0", "--timeout", "2.5"
        )
    finally:
        detach(r)
    assert run.code == int(ExitCode.TIMEOUT), run.stderr
    assert "it reached the transfer (" in run.stderr, run.stderr
    assert "received (diskless: the size is known only at the end)" in run.stderr
    assert "has not started sending its RDB" not in run.stderr


def test_a_dry_run_that_predicts_a_resync_loop_refuses_unless_forced(
    redis_factory: RedisFactory,
) -> None:
    m, fresh = redis_factory.start(TIGHT), redis_factory.start(FAST_SYNC)
    populate(m, 30_000)
    args = ("attach", fresh.address, "--to", m.address, "--dry-run", "--sample", "0")
    rate = ("--write-rate", "50MB", "--bandwidth", "1MB")
    run = cli(*args, *rate)
    assert run.code == int(ExitCode.REFUSED), run.stdout
    assert "full-resync loop" in run.stderr
    assert "client-output-buffer-limit" in run.stderr
    forced = cli(*args, *rate, "--force")
    assert forced.code == 0, forced.stderr
    assert "[OVERRIDDEN (--force)]" in forced.stdout


def test_a_partial_that_went_stale_before_replicaof_stops_before_acting(
    redis_factory: RedisFactory, tmp_path: Path
) -> None:
    """C replicates from A; B (A's other replica) is promoted. C can continue through B's
    replid2 while its offset is at the split point, but A is alive and a write moves C past
    it between the plan and the act: the executor sees it and changes nothing."""
    quiet = {**FAST_SYNC, "repl-ping-replica-period": "3600"}  # no PING moves C by accident
    a, b, c = (redis_factory.start(quiet) for _ in range(3))
    for node in (b, c):
        replicate(node, a)
    with a.client() as cl:
        cl.set("k", "v")
    wait_in_sync(a, [b, c])
    detach(b)  # B promoted: its history continues A's up to the split point
    with build_session(seeds=[c.address, b.address]) as session:
        topo = session.discover()
        plan = plan_attach(
            topo,
            Address.parse(c.address),
            Address.parse(b.address),
            Options(),
            Credentials(),
            session,
        )
        assert plan.prediction is not None and plan.prediction["sync"] == "partial"
        stale = next(f for f in plan.findings if f.code == "prediction_may_go_stale")
        assert f"still replicates from {a.address}" in stale.message
        # the old master takes a write: C's offset passes B's split point
        with a.client() as cl:
            cl.set("late", "write")
        wait_in_sync(a, [c])
        state = tmp_path / "state"
        audit = AuditLog(state / "audit.log", plan.operation, plan.cluster)
        lock = ClusterLock(plan.cluster, plan.operation, "tester", directory=state / "locks")
        result = execute(RunContext(session, plan, audit, lock, NullProgress()))
    assert result.exit_code is ExitCode.REFUSED, result.message
    assert "the prediction changed since the plan: partial -> full" in result.message
    assert "nothing was changed" in result.message
    assert c.info()["master_port"] == a.port  # untouched: still under A


def test_ctrl_c_in_a_long_sync_prints_every_node_and_says_the_sync_continues(
    redis_factory: RedisFactory, tmp_path: Path
) -> None:
    slow = {**FAST_SYNC, "rdb-key-save-delay": "2000"}
    m, r = redis_factory.start(slow), redis_factory.start(FAST_SYNC)
    populate(m, 20_000)
    state = tmp_path / "state"
    proc = spawn_redisops(state, "attach", r.address, "--to", m.address, "--yes", "--sample", "0")
    try:
        poll(
            lambda: any(
                x["action"] == "wait-sync" and x["result"] == "started" for x in audit_lines(state)
            ),
            30,
            "the wait to start",
        )
        poll(lambda: r.info().get("master_sync_in_progress") == 1, 10, "the transfer")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        detach(r)
    # after REPLICAOF an interrupt finishes forward without waiting (exit 8)
    assert proc.returncode == int(ExitCode.PARTIAL), err
    flat = " ".join(out.split())  # lines are wrapped to the (80-column) width
    assert "interrupted by SIGINT after the point of no return" in flat
    assert f"Note: the sync of {r.address} from {m.address} continues on the servers" in flat
    assert f"'redisops detach {r.address}'" in flat
    assert "State now:" in flat
    assert f"{r.address}: replica of {m.address} (link down)" in flat
    assert "full sync in progress" in flat
    assert f"{m.address}: master" in flat


def test_a_password_for_a_master_without_one_is_not_given_to_the_replica(
    redis_factory: RedisFactory,
) -> None:
    m, fresh = redis_factory.start(FAST_SYNC), redis_factory.start(FAST_SYNC)
    populate(m, 100)
    run = cli(
        "attach", fresh.address, "--to", m.address, "--yes", "--sample", "0", "-o", "json",
        env={"REDISCLI_AUTH": "not-needed"},
    )  # fmt: skip
    assert run.code == 0, run.stderr
    assert f"warning: {m.address} has no password set" in run.stderr
    assert "masterauth" not in run.stdout
    wait_link_up(fresh)


def test_the_result_records_the_measured_sync_beside_the_prediction(
    redis_factory: RedisFactory,
) -> None:
    m, fresh = redis_factory.start(FAST_SYNC), redis_factory.start(FAST_SYNC)
    populate(m, 50_000)
    run = cli("attach", fresh.address, "--to", m.address, "--yes", "--sample", "0", "-o", "json")
    assert run.code == 0, run.stderr
    duration = run.json["result"]["observed"]["sync_duration"]
    # the prediction of the plan that ran: rebuilt from a fresh read under the lock, so
    # the estimates may have moved a little since the approved one shown first
    approved = run.json["prediction"]
    assert duration["predicted_seconds"] == pytest.approx(approved["estimated_seconds"], rel=0.5)
    assert duration["predicted_bytes"] == pytest.approx(approved["transfer_bytes"], rel=0.5)
    assert duration["measured_seconds"] > 0
    assert duration["phases"][-1]["phase"] == "in sync"
    assert duration["full_syncs_started"] == 1
    # the estimate came from sampled keys
    assert any("dumped keys" in r for r in run.json["prediction"]["risks"])


def test_a_replica_leaving_another_group_is_named_and_both_groups_are_locked(
    redis_factory: RedisFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    x, y = redis_factory.start(FAST_SYNC), redis_factory.start(FAST_SYNC)
    m = redis_factory.start(FAST_SYNC)
    replicate(y, x)
    wait_link_up(y)
    populate(x, 10)
    wait_in_sync(x, [y])
    dry = cli("attach", y.address, "--to", m.address, "--dry-run", "--sample", "0")
    assert dry.code == 0, dry.stderr
    flat = " ".join(dry.stdout.split())
    assert f"{y.address} is leaving {x.address}, of which it is a replica now" in flat
    assert f"take the lock of the group {y.address} leaves (master {x.address}) too" in flat
    # another operation holds the group it leaves: the attach waits its turn (exit 6)
    other = ClusterLock(x.address, "switchover", "bob")
    other.acquire(None)
    try:
        run = cli("attach", y.address, "--to", m.address, "--yes", "--sample", "0")
    finally:
        other.release()
    assert run.code == int(ExitCode.LOCKED), run.stderr
    assert "is locked by bob@" in run.stderr and "switchover" in run.stderr
    assert y.info()["master_port"] == x.port  # nothing changed
    again = cli("attach", y.address, "--to", m.address, "--yes", "--sample", "0")
    assert again.code == 0, again.stderr
    assert list((tmp_path / "state" / "redisops" / "locks").iterdir()) == []
