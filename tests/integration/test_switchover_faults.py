"""Switchover under faults, on real redis-server processes.

Faults are injected in the middle of the plan: a progress sink that fires at a given
phase, or a wrapper around a step routine (``redisops.plan.ACTIONS``). Each test checks
the exit code, where every node ended up, and (where the mode promises it) that no
acknowledged write was lost.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from redisops.errors import ExitCode
from redisops.model import Step
from redisops.plan import ACTIONS, PlanResult, RunContext
from tests.harness import FAST_SYNC, RedisFactory, star, wait_in_sync, wait_link_up, wait_until
from tests.integration.ops_helpers import (
    PhaseHook,
    final_state,
    invoke_json,
    master_of,
    role_of,
    run_switchover,
    settle,
    state_env,
    sync_counters,
)
from tests.integration.writer import Writer

pytestmark = pytest.mark.redis_server


def _wrap(monkeypatch: pytest.MonkeyPatch, action: str, before: Any) -> None:
    """Run ``before(ctx, step)`` and then the real routine of ``action``."""
    original = ACTIONS[action]

    def wrapped(ctx: RunContext, step: Step) -> str:
        before(ctx, step)
        return original(ctx, step)

    monkeypatch.setitem(ACTIONS, action, wrapped)


def _on_promotion(
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    *,
    before: Callable[[], None] | None = None,
    after: Callable[[], None] | None = None,
) -> None:
    """Run ``before()``/``after()`` around the switch step's ``REPLICAOF NO ONE`` on
    ``target``."""

    def hook(ctx: RunContext, step: Step) -> None:
        tnode = ctx.node(target)
        real = tnode.execute

        def execute(*args: Any, **kwargs: Any) -> Any:
            promote = args[:3] == ("REPLICAOF", "NO", "ONE")
            if promote and before is not None:
                before()
            reply = real(*args, **kwargs)
            if promote and after is not None:
                after()
            return reply

        monkeypatch.setattr(tnode, "execute", execute)

    _wrap(monkeypatch, "switch", hook)


@pytest.mark.every_server
def test_master_killed_while_waiting_for_the_offset_leaves_the_target_unpromoted(
    redis_factory: RedisFactory, tmp_path: Path
) -> None:
    m, target, other = star(redis_factory, 2, FAST_SYNC)
    settle(m, [target, other])
    # a paused replica stops applying its master's stream: the wait for the offset lasts
    target.client().execute_command("CLIENT", "PAUSE", "4000", "WRITE")
    m.client().set("late", "x" * 100)
    hook = PhaseHook("target catching up", m.kill, on_update=True)
    try:
        result = run_switchover(
            tmp_path / "state", m.address, target.address, progress=hook, pause_timeout_ms=3000
        )
    finally:
        target.client().execute_command("CLIENT", "UNPAUSE")
    assert hook.fired
    # nothing was changed on the live nodes and nothing is left to undo on the dead master
    # (its runtime PING setting died with it): the failure is the master being unreachable,
    # and the message points to a failover
    assert result.exit_code is ExitCode.UNREACHABLE, result.message
    assert "was not promoted" in result.message
    assert f"redisops failover --master {m.address}" in result.message
    assert role_of(target) == "slave" and master_of(target) == m.address
    assert master_of(other) == m.address
    state = final_state(result)
    assert state[m.address]["reachable"] is False
    assert state[target.address]["role"] == "replica"


@pytest.mark.every_server
def test_frozen_target_times_out_rolls_back_and_writes_resume_on_the_old_master(
    redis_factory: RedisFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m, target, other = star(redis_factory, 2, FAST_SYNC)
    settle(m, [target, other])
    full_before = {n.address: sync_counters(n)[0] for n in (m, target, other)}

    def freeze_target(ctx: RunContext, step: Step) -> None:
        target.pause()  # SIGSTOP: it cannot answer or follow any more
        m.client().set("after-freeze", "1")

    _wrap(monkeypatch, "switch", freeze_target)
    with Writer([m.port, target.port, other.port]) as writer:
        try:
            result = run_switchover(
                tmp_path / "state",
                m.address,
                target.address,
                pause_timeout_ms=1000,
                socket_timeout=1.0,  # the final state probes the frozen target too
            )
        finally:
            target.resume()
    assert result.outcome == "rolled-back", result.message
    assert result.exit_code is ExitCode.ROLLED_BACK
    assert "pause budget" in result.message and "writes unpaused" in result.message
    rollbacks = [s for s in result.steps if s.result == "rolled-back"]
    assert [s.action for s in rollbacks] == ["rollback freeze-pings"]
    # the cluster is as it was, and the writes went on on the old master
    assert role_of(m) == "master"
    assert master_of(target) == m.address and master_of(other) == m.address
    assert m.client().config_get("repl-ping-replica-period")["repl-ping-replica-period"] == "10"
    wait_link_up(target)
    wait_in_sync(m, [target, other])
    assert writer.ports_written == [m.port]
    assert writer.lost_on(m.port) == []
    assert {n.address: sync_counters(n)[0] for n in (m, target, other)} == full_before


@pytest.mark.every_server
def test_replica_unreachable_during_repointing_finishes_forward_and_exits_8(
    redis_factory: RedisFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m, target, other, lost = star(redis_factory, 3, FAST_SYNC)
    settle(m, [target, other, lost])
    _wrap(monkeypatch, "repoint", lambda ctx, step: lost.kill())
    with Writer([m.port, target.port, other.port]) as writer:
        result = run_switchover(tmp_path / "state", m.address, target.address)
    assert result.outcome == "partial", result.message
    assert result.exit_code is ExitCode.PARTIAL
    assert f"could not repoint 1 replica(s): {lost.address}" in result.message
    assert f"{lost.address}: not repointed" in result.message  # the verification says so too
    # everything else moved forward
    assert role_of(target) == "master"
    assert master_of(m) == target.address and master_of(other) == target.address
    state = final_state(result)
    assert state[lost.address]["reachable"] is False
    assert state[other.address]["master"] == target.address
    assert state[m.address]["master"] == target.address
    assert writer.lost_on(target.port) == []


@pytest.mark.every_server
def test_master_killed_right_after_the_promotion_finishes_forward_and_fences_it(
    redis_factory: RedisFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m, target, other = star(redis_factory, 2, FAST_SYNC)
    settle(m, [target, other])

    _on_promotion(monkeypatch, target.address, after=m.kill)
    with Writer([m.port, target.port, other.port]) as writer:
        result = run_switchover(tmp_path / "state", m.address, target.address)
    assert result.exit_code is ExitCode.PARTIAL, result.message
    assert f"{m.address}: old master not demoted" in result.message
    assert any(f"redisops fence {m.address} --to {target.address}" in w for w in result.warnings)
    assert role_of(target) == "master" and master_of(other) == target.address
    assert final_state(result)[m.address]["reachable"] is False
    # promoted at the master's exact offset: nothing acknowledged is missing
    assert writer.lost_on(target.port) == []
    fenced = json.loads(target.client().get("redisops:fence"))["fenced"]
    assert [(f["address"], f["new_master"]) for f in fenced] == [(m.address, target.address)]
    # the old master comes back (empty, as a master): status calls it a split brain
    m.start()
    code, doc, _ = invoke_json(state_env(tmp_path), "status", target.address)
    assert code == 4
    assert doc["problems"][0]["severity"] == "critical"
    assert "fenced_master_returned" in [p["kind"] for p in doc["problems"]]


@pytest.mark.every_server
def test_target_frozen_as_it_is_promoted_is_fenced_under_the_old_master(
    redis_factory: RedisFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m, target, other = star(redis_factory, 2, FAST_SYNC)
    settle(m, [target, other])

    # the command is sent, but no reply comes back
    _on_promotion(monkeypatch, target.address, before=target.pause)
    try:
        result = run_switchover(
            tmp_path / "state",
            m.address,
            target.address,
            pause_timeout_ms=1000,
            socket_timeout=1.0,
        )
    finally:
        target.resume()
    # redisops cannot know: it gives the writes back to the old master, and says so
    assert result.exit_code is ExitCode.ROLLED_BACK, result.message
    assert "may still turn master" in result.message
    assert role_of(m) == "master" and master_of(other) == m.address
    # it does turn master once it runs again: status calls it out, fence repairs it
    wait_until(lambda: role_of(target) == "master", 10, what="the queued REPLICAOF NO ONE")
    env = state_env(tmp_path)
    code, doc, _ = invoke_json(env, "status", m.address)
    assert code == 4
    returned = [p for p in doc["problems"] if p["kind"] == "fenced_master_returned"]
    assert returned and returned[0]["node"] == target.address
    code, doc, result_cli = invoke_json(env, "fence", target.address, "--to", m.address, "--yes")
    assert code == 0, result_cli.stderr
    assert master_of(target) == m.address
    code, doc, _ = invoke_json(env, "status", m.address)
    assert code == 0, doc["problems"]


def test_two_switchovers_at_once_the_lock_stops_the_second_with_exit_6(
    redis_factory: RedisFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m, target, other = star(redis_factory, 2, FAST_SYNC)
    settle(m, [target, other])
    holding, release = threading.Event(), threading.Event()

    def hold(ctx: RunContext, step: Step) -> None:
        holding.set()
        release.wait(60)

    _wrap(monkeypatch, "switch", hold)
    results: list[PlanResult] = []
    first = threading.Thread(
        target=lambda: results.append(run_switchover(tmp_path / "state", m.address, target.address))
    )
    first.start()
    try:
        assert holding.wait(20), "the first switchover never reached its switch step"
        env = {**os.environ, **state_env(tmp_path)}
        second = subprocess.run(
            [sys.executable, "-m", "redisops", "switchover", "--to", other.address, "--yes"],
            env=env,
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        release.set()
        first.join(60)
    assert second.returncode == 6, second.stderr
    assert "is locked by tester@" in second.stderr
    assert f"pid {os.getpid()}, switchover" in second.stderr
    # the first one went through; the second changed nothing
    assert results and results[0].exit_code is ExitCode.OK, results and results[0].message
    assert role_of(target) == "master"
    assert master_of(other) == target.address and master_of(m) == target.address


def test_a_refused_client_pause_says_writes_were_not_paused_and_rolls_back(
    redis_factory: RedisFactory, tmp_path: Path
) -> None:
    m, target, other = star(redis_factory, 2, FAST_SYNC)
    settle(m, [target, other])
    # an operator user without CLIENT PAUSE/UNPAUSE: the pause is refused, so there is
    # nothing to unpause, and "could not unpause" would send the SRE chasing a pause
    m.client().execute_command("ACL", "SETUSER", "default", "-client|pause", "-client|unpause")
    result = run_switchover(tmp_path / "state", m.address, target.address)
    assert result.outcome == "rolled-back", result.message
    assert result.exit_code is ExitCode.ROLLED_BACK
    assert "writes were not paused" in result.message
    assert "unpause" not in result.message
    assert role_of(m) == "master"
    assert master_of(target) == m.address and master_of(other) == m.address
