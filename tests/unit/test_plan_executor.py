"""The plan executor over fake nodes: order, audit, rollback before the point of no
return, finish-forward after it, and the exit code of every outcome."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from redisops.audit import AuditLog
from redisops.errors import (
    CommandFailed,
    ExitCode,
    RedisopsError,
    Unreachable,
    VerifyFailed,
    WaitTimeout,
)
from redisops.inventory import ConnectOptions, Credentials, Secret
from redisops.lock import LOCK_KEY, ClusterLock
from redisops.model import Address, Finding, NodeInfo, Plan, Step
from redisops.ops.common import lock_steps, unlock_step
from redisops.plan import RunContext, action, execute, plan_changes, remembered
from tests.builders import master

A, B = "10.0.0.1:6379", "10.0.0.2:6379"
PASSWORD = "n0t-for-the-log"


class FakeNode:
    """Enough of :class:`RedisNode` for the executor and the lock: a little keyspace,
    a command log, and failures injected per command name."""

    def __init__(self, address: Address, store: dict[str, str]) -> None:
        self.address = address
        self.store = store
        self.log: list[tuple[str, ...]] = []
        self.fail: dict[str, list[RedisopsError]] = {}
        self.queued: list[tuple[str, ...]] | None = None

    def connect(self) -> None:
        pass

    def close(self) -> None:
        pass

    def fail_next(self, command: str, *errors: RedisopsError) -> None:
        self.fail.setdefault(command.upper(), []).extend(errors)

    def execute(self, *args: Any, timeout: float | None = None) -> Any:
        cmd = tuple(str(a) for a in args)
        self.log.append(cmd)
        pending = self.fail.get(cmd[0].upper())
        if pending:
            raise pending.pop(0)
        return self._run(cmd)

    def pipeline(self, commands: Sequence[Sequence[Any]], **_: Any) -> list[Any]:
        return [self.execute(*c) for c in commands]

    def info(self, *sections: str) -> dict[str, str]:
        self.log.append(("INFO", *sections))
        return {"role": "master"}

    def _run(self, cmd: tuple[str, ...]) -> Any:
        name = cmd[0].upper()
        if self.queued is not None and name not in ("EXEC", "DISCARD"):
            self.queued.append(cmd)
            return "QUEUED"
        if name == "SET":
            if "NX" in cmd and cmd[1] in self.store:
                return None
            self.store[cmd[1]] = cmd[2]
            return "OK"
        if name == "GET":
            return self.store.get(cmd[1])
        if name == "DEL":
            return int(self.store.pop(cmd[1], None) is not None)
        if name == "CONFIG" and cmd[1].upper() == "SET":
            self.store[f"config:{cmd[2]}"] = cmd[3]
            return "OK"
        if name == "CONFIG" and cmd[1].upper() == "GET":
            return [cmd[2], self.store.get(f"config:{cmd[2]}", "")]
        if name == "PTTL":
            return 60_000 if cmd[1] in self.store else -2
        if name == "MULTI":
            self.queued = []
            return "OK"
        if name == "EXEC":
            queued, self.queued = self.queued or [], None
            return [self._run(c) for c in queued]
        return "OK"


class FakeSession:
    def __init__(self, creds: Credentials | None = None) -> None:
        self.options = ConnectOptions(creds or Credentials())
        self.nodes: dict[Address, FakeNode] = {}
        self.stores: dict[Address, dict[str, str]] = {}
        self.probed: list[Address] = []
        self.fresh: list[Address] = []

    def node(self, address: Address) -> FakeNode:
        if address not in self.nodes:
            self.nodes[address] = FakeNode(address, self.stores.setdefault(address, {}))
        return self.nodes[address]

    def fresh_node(self, address: Address) -> FakeNode:
        self.fresh.append(address)
        return FakeNode(address, self.stores.setdefault(address, {}))

    def probe(self, address: Address) -> NodeInfo:
        self.probed.append(address)
        return master(str(address), offset=42)

    def ssh_settings(self, address: Address) -> None:
        return None  # no inventory: the --persist fallback finds no config_file here


def n(name: str) -> Address:
    return Address.parse(name)


@pytest.fixture
def sess() -> FakeSession:
    return FakeSession(Credentials(None, Secret(PASSWORD), "env REDISCLI_AUTH"))


@pytest.fixture
def audit_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.log"


def run(
    sess: FakeSession,
    tmp_path: Path,
    steps: list[Step],
    touched: tuple[str, ...] = (),
    lock: bool = True,
) -> tuple[Any, list[dict[str, Any]], ClusterLock]:
    plan = Plan("test-op", "c1", tuple(steps), touched=touched)
    audit = AuditLog(tmp_path / "audit.log", "test-op", "c1")
    cl = ClusterLock("c1", "test-op", "tester", directory=tmp_path / "locks")
    ctx = RunContext(sess, plan, audit, cl if lock else None, sleep=lambda _s: None)  # type: ignore[arg-type]
    result = execute(ctx)
    lines = [json.loads(x) for x in (tmp_path / "audit.log").read_text().splitlines()]
    return result, lines, cl


def cmd(i: int, node: str, *command: str, **kw: Any) -> Step:
    return Step(i, node, "command", f"step {i}", command=tuple(command), **kw)


def lock_free(tmp_path: Path) -> bool:
    """Whether another operation could take the lock now (the local layer)."""
    other = ClusterLock("c1", "other", "someone", directory=tmp_path / "locks")
    try:
        other.acquire(None)
    except RedisopsError:
        return False
    other.release()
    return True


@action("t-verify-fails")
def _verify_fails(ctx: RunContext, step: Step) -> str:
    raise VerifyFailed("offsets did not converge")


@action("t-wait-times-out")
def _wait_times_out(ctx: RunContext, step: Step) -> str:
    raise WaitTimeout("did not get in sync within 1s")


@action("t-ok")
def _ok(ctx: RunContext, step: Step) -> str:
    ctx.facts.setdefault("ran", []).append(step.n)
    return "fine"


# ----------------------------------------------------------------------------- success


def test_every_step_runs_in_order_and_is_audited(sess: FakeSession, tmp_path: Path) -> None:
    steps = [
        lock_steps(A, 1),
        cmd(2, B, "REPLICAOF", "10.0.0.1", "6379", commit=True, idempotent=False),
        Step(3, B, "t-ok", "check"),
        unlock_step(A, 4),
    ]
    result, lines, _ = run(sess, tmp_path, steps, touched=(B, A))
    assert result.outcome == "applied" and result.exit_code is ExitCode.OK
    assert [(s.n, s.result) for s in result.steps] == [(1, "ok"), (2, "ok"), (3, "ok"), (4, "ok")]
    assert ("REPLICAOF", "10.0.0.1", "6379") in sess.node(n(B)).log
    # one "started" and one "ok" record per step, in order, all for this operation
    assert [(x["step"], x["result"]) for x in lines] == [
        (i, r) for i in (1, 2, 3, 4) for r in ("started", "ok")
    ]
    assert {x["operation"] for x in lines} == {"test-op"}
    assert len({x["op_id"] for x in lines}) == 1
    assert all(x["operator"] and x["host"] and x["time"].endswith("Z") for x in lines)
    # the lock key was taken on A and released; the local lock is free again
    assert any(c[:3] == ("SET", LOCK_KEY, c[2]) and "NX" in c for c in sess.node(n(A)).log)
    assert LOCK_KEY not in sess.stores[n(A)]
    assert lock_free(tmp_path)
    # the final state is re-read from every touched node
    assert [s["address"] for s in result.final_state] == [B, A]
    assert result.final_state[0]["offset"] == 42


# ----------------------------------------------------------------------------- before the commit


def test_a_failure_before_the_point_of_no_return_rolls_back_in_reverse_order(
    sess: FakeSession, tmp_path: Path
) -> None:
    steps = [
        lock_steps(A, 1),
        cmd(
            2, B, "CONFIG", "SET", "masteruser", "ops", rollback=("CONFIG", "SET", "masteruser", "")
        ),
        cmd(
            3,
            B,
            "CONFIG",
            "SET",
            "replica-priority",
            "0",
            rollback=("CONFIG", "SET", "replica-priority", "100"),
        ),
        cmd(4, B, "REPLICAOF", "10.0.0.1", "6379", commit=True, idempotent=False),
        unlock_step(A, 5),
    ]
    sess.node(n(B)).fail_next("REPLICAOF", CommandFailed("NOPERM this user has no permissions"))
    result, lines, _ = run(sess, tmp_path, steps)
    assert result.outcome == "rolled-back" and result.exit_code is ExitCode.ROLLED_BACK
    assert "failed at step 4" in result.message and "NOPERM" in result.message
    log = sess.node(n(B)).log
    undo = [c for c in log if c[-1] in ("", "100")]
    assert undo == [
        ("CONFIG", "SET", "replica-priority", "100"),
        ("CONFIG", "SET", "masteruser", ""),
    ]
    assert [s.result for s in result.steps][-2:] == ["rolled-back", "rolled-back"]
    assert [x["action"] for x in lines if x["action"].startswith("rollback:")] == [
        "rollback:command",
        "rollback:command",
    ]
    # the unlock step never ran, but the lock was released anyway
    assert 5 not in [s.n for s in result.steps]
    assert lock_free(tmp_path) and LOCK_KEY not in sess.stores[n(A)]


def test_a_rollback_that_fails_leaves_the_operation_partially_applied(
    sess: FakeSession, tmp_path: Path
) -> None:
    steps = [
        cmd(
            1, B, "CONFIG", "SET", "masteruser", "ops", rollback=("CONFIG", "SET", "masteruser", "")
        ),
        cmd(2, B, "REPLICAOF", "10.0.0.1", "6379", commit=True, idempotent=False),
    ]
    node = sess.node(n(B))
    node.fail_next("REPLICAOF", CommandFailed("ERR nope"))
    original = node.execute

    def rollback_fails(*args: Any, timeout: float | None = None) -> Any:
        if args == ("CONFIG", "SET", "masteruser", ""):
            raise Unreachable("10.0.0.2:6379: connection reset")
        return original(*args, timeout=timeout)

    node.execute = rollback_fails  # type: ignore[method-assign]
    result, lines, _ = run(sess, tmp_path, steps)
    assert result.outcome == "partial" and result.exit_code is ExitCode.PARTIAL
    assert "could not be fully rolled back" in result.message
    assert "connection reset" in result.message
    assert [x["result"] for x in lines if x["action"] == "rollback:command"] == ["failed"]
    assert lock_free(tmp_path)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (CommandFailed("ERR unknown command"), ExitCode.ERROR),
        (Unreachable("10.0.0.2:6379: connection refused"), ExitCode.UNREACHABLE),
        (WaitTimeout("not in sync"), ExitCode.TIMEOUT),
    ],
)
def test_a_failure_with_nothing_to_undo_keeps_its_own_exit_code(
    sess: FakeSession, tmp_path: Path, error: RedisopsError, code: ExitCode
) -> None:
    sess.node(n(B)).fail_next("PING", error)
    result, _, _ = run(sess, tmp_path, [lock_steps(A, 1), cmd(2, B, "PING", idempotent=False)])
    assert result.exit_code is code
    assert lock_free(tmp_path)


def test_a_verification_failure_before_the_commit_is_exit_9(
    sess: FakeSession, tmp_path: Path
) -> None:
    result, _, _ = run(sess, tmp_path, [Step(1, A, "t-verify-fails", "check")])
    assert result.outcome == "verify-failed" and result.exit_code is ExitCode.VERIFY_FAILED


def test_an_unknown_action_fails_cleanly(sess: FakeSession, tmp_path: Path) -> None:
    result, _, _ = run(sess, tmp_path, [Step(1, A, "no-such-action", "?")])
    assert result.exit_code is ExitCode.ERROR
    assert "no routine for action 'no-such-action'" in result.message


# ----------------------------------------------------------------------------- after the commit


def committed(*after: Step) -> list[Step]:
    return [
        lock_steps(A, 1),
        cmd(2, B, "REPLICAOF", "10.0.0.1", "6379", commit=True, idempotent=False),
        *after,
        unlock_step(A, 2 + len(after) + 1),
    ]


def test_a_failure_after_the_point_of_no_return_stops_and_is_partial(
    sess: FakeSession, tmp_path: Path
) -> None:
    sess.node(n(B)).fail_next(
        "CONFIG", CommandFailed("ERR The server is running without a config file")
    )
    steps = committed(cmd(3, B, "CONFIG", "REWRITE"), Step(4, B, "t-ok", "later"))
    result, _, _ = run(sess, tmp_path, steps, touched=(B,))
    assert result.outcome == "partial" and result.exit_code is ExitCode.PARTIAL
    assert "after the point of no return" in result.message
    assert "ran" not in result.observed  # nothing after the failure
    assert not any(c[0] == "REPLICAOF" and c[1] == "NO" for c in sess.node(n(B)).log)  # no undo
    assert result.final_state and result.final_state[0]["address"] == B
    assert lock_free(tmp_path)


def test_steps_marked_continue_still_run_and_the_outcome_is_partial(
    sess: FakeSession, tmp_path: Path
) -> None:
    sess.node(n(B)).fail_next(
        "CONFIG", CommandFailed("ERR The server is running without a config file")
    )
    steps = committed(
        Step(
            3,
            B,
            "config-rewrite",
            "persist",
            command=("CONFIG", "REWRITE"),
            args={"on_failure": "continue"},
        ),
        Step(4, B, "t-ok", "verify", args={"on_failure": "continue"}),
    )
    result, _, _ = run(sess, tmp_path, steps)
    assert result.outcome == "partial" and result.exit_code is ExitCode.PARTIAL
    assert (
        "CONFIG REWRITE failed (ERR The server is running without a config file)" in result.message
    )
    assert result.observed["ran"] == [4]
    assert [s.result for s in result.steps] == ["ok", "ok", "failed", "ok", "ok"]  # unlock ran
    assert lock_free(tmp_path)


def test_only_verification_failing_after_the_commit_is_exit_9(
    sess: FakeSession, tmp_path: Path
) -> None:
    steps = committed(Step(3, B, "t-verify-fails", "verify", args={"on_failure": "continue"}))
    result, _, _ = run(sess, tmp_path, steps)
    assert result.outcome == "verify-failed" and result.exit_code is ExitCode.VERIFY_FAILED
    assert "verification failed: offsets did not converge" in result.message
    assert result.steps[-1].action == "unlock" and result.steps[-1].result == "ok"


def test_a_wait_that_times_out_after_the_commit_is_exit_10(
    sess: FakeSession, tmp_path: Path
) -> None:
    steps = committed(Step(3, B, "t-wait-times-out", "wait"), Step(4, B, "t-ok", "verify"))
    result, _, _ = run(sess, tmp_path, steps, touched=(B,))
    assert result.outcome == "timeout" and result.exit_code is ExitCode.TIMEOUT
    assert "did not get in sync within 1s" in result.message
    assert "ran" not in result.observed
    assert result.final_state  # the state is still reported
    assert lock_free(tmp_path) and LOCK_KEY not in sess.stores[n(A)]


def test_an_optional_step_that_fails_is_a_warning(sess: FakeSession, tmp_path: Path) -> None:
    sess.node(n(B)).fail_next("PING", CommandFailed("ERR whatever"))
    steps = [cmd(1, B, "PING", args={"optional": True}), Step(2, B, "t-ok", "next")]
    result, _, _ = run(sess, tmp_path, steps)
    assert result.exit_code is ExitCode.OK
    assert [s.result for s in result.steps] == ["warning", "ok"]
    assert any("ERR whatever" in w for w in result.warnings)


@action("t-interrupted")
def _interrupted(ctx: RunContext, step: Step) -> str:
    raise KeyboardInterrupt


def test_an_interruption_still_releases_the_lock_and_is_audited(
    sess: FakeSession, tmp_path: Path
) -> None:
    plan = Plan("test-op", "c1", tuple(committed(Step(3, B, "t-interrupted", "wait"))))
    audit = AuditLog(tmp_path / "audit.log", "test-op", "c1")
    lock = ClusterLock("c1", "test-op", "tester", directory=tmp_path / "locks")
    ctx = RunContext(sess, plan, audit, lock, sleep=lambda _s: None)  # type: ignore[arg-type]
    with pytest.raises(KeyboardInterrupt):
        execute(ctx)
    # released at once (on a new connection), not left to expire
    assert LOCK_KEY not in sess.stores[n(A)] and n(A) in sess.fresh
    assert lock_free(tmp_path)
    last = json.loads((tmp_path / "audit.log").read_text().splitlines()[-1])
    assert last["result"] == "interrupted" and last["detail"] == "KeyboardInterrupt"


# ----------------------------------------------------------------------------- retries, secrets


def test_idempotent_commands_are_retried_on_transport_errors(
    sess: FakeSession, tmp_path: Path
) -> None:
    sess.node(n(B)).fail_next("PING", Unreachable("reset"), Unreachable("reset"))
    result, _, _ = run(sess, tmp_path, [cmd(1, B, "PING")], lock=False)
    assert result.exit_code is ExitCode.OK
    assert sess.node(n(B)).log.count(("PING",)) == 3


def test_non_idempotent_commands_are_never_retried(sess: FakeSession, tmp_path: Path) -> None:
    sess.node(n(B)).fail_next("REPLICAOF", Unreachable("reset"))
    result, _, _ = run(
        sess, tmp_path, [cmd(1, B, "REPLICAOF", "h", "1", idempotent=False)], lock=False
    )
    assert result.exit_code is ExitCode.UNREACHABLE
    assert len([c for c in sess.node(n(B)).log if c[0] == "REPLICAOF"]) == 1


def test_command_errors_are_not_retried(sess: FakeSession, tmp_path: Path) -> None:
    sess.node(n(B)).fail_next("PING", CommandFailed("ERR bad"))
    result, _, _ = run(sess, tmp_path, [cmd(1, B, "PING")], lock=False)
    assert result.exit_code is ExitCode.ERROR
    assert sess.node(n(B)).log.count(("PING",)) == 1


def test_the_secret_reaches_the_node_but_never_the_audit_or_the_result(
    sess: FakeSession, tmp_path: Path
) -> None:
    step = cmd(1, B, "CONFIG", "SET", "masterauth", "***", args={"secret": (3, "password")})
    result, lines, _ = run(sess, tmp_path, [step])
    assert ("CONFIG", "SET", "masterauth", PASSWORD) in sess.node(n(B)).log
    assert PASSWORD not in (tmp_path / "audit.log").read_text()
    assert PASSWORD not in json.dumps(result.to_dict())
    assert lines[0]["command"] == ["CONFIG", "SET", "masterauth", "***"]


def test_a_rolled_back_masterauth_gets_its_old_secret_back_and_neither_is_logged(
    sess: FakeSession, tmp_path: Path
) -> None:
    old_secret = "the-0ld-one"
    sess.node(n(B)).store["config:masterauth"] = old_secret
    set_auth = cmd(
        1,
        B,
        "CONFIG",
        "SET",
        "masterauth",
        "***",
        rollback=("CONFIG", "SET", "masterauth", "***"),
        args={
            "secret": (3, "password"),
            "remember_config": "masterauth",
            "rollback_secret": (3, remembered(B, "masterauth")),
        },
    )
    sess.node(n(B)).fail_next("REPLICAOF", CommandFailed("ERR boom"))
    result, lines, _ = run(sess, tmp_path, [set_auth, cmd(2, B, "REPLICAOF", "10.0.0.1", "6379")])
    assert result.exit_code is ExitCode.ROLLED_BACK
    log = sess.node(n(B)).log
    assert log.index(("CONFIG", "SET", "masterauth", PASSWORD)) < log.index(
        ("CONFIG", "SET", "masterauth", old_secret)
    )
    assert sess.node(n(B)).store["config:masterauth"] == old_secret
    text = (tmp_path / "audit.log").read_text() + json.dumps(result.to_dict())
    assert PASSWORD not in text and old_secret not in text
    rollback = next(x for x in lines if x["action"] == "rollback:command")
    assert rollback["command"] == ["CONFIG", "SET", "masterauth", "***"]


def test_a_secret_with_no_credential_source_fails_before_anything_is_sent(tmp_path: Path) -> None:
    sess = FakeSession()
    step = cmd(1, B, "CONFIG", "SET", "masterauth", "***", args={"secret": (3, "password")})
    result, _, _ = run(sess, tmp_path, [step])
    assert result.exit_code is ExitCode.ERROR
    assert "no credential source provides it" in result.message
    assert not [c for c in sess.node(n(B)).log if c[0] == "CONFIG"]


# ----------------------------------------------------------------------------- the lock's copy


def test_unlock_drops_the_replicated_copy_of_the_lock_key_on_a_promoted_node(
    sess: FakeSession, tmp_path: Path
) -> None:
    # what replication does: the promoted node received the lock key while a replica
    def copy_lock(ctx: RunContext, step: Step) -> str:
        sess.stores.setdefault(n(B), {})[LOCK_KEY] = sess.stores[n(A)][LOCK_KEY]
        return "copied"

    action("t-replicate-lock")(copy_lock)
    steps = [
        lock_steps(A, 1),
        Step(2, B, "t-replicate-lock", "replicate"),
        unlock_step(A, 3, drop_copies=(B,)),
    ]
    result, _, _ = run(sess, tmp_path, steps)
    assert result.exit_code is ExitCode.OK
    assert LOCK_KEY not in sess.stores[n(A)] and LOCK_KEY not in sess.stores[n(B)]
    assert "replicated copy on 10.0.0.2:6379" in result.steps[-1].detail


def test_unlock_leaves_someone_elses_lock_key_alone(sess: FakeSession, tmp_path: Path) -> None:
    theirs = json.dumps({"token": "not-ours", "operator": "other"})
    sess.stores[n(B)] = {LOCK_KEY: theirs}
    steps = [lock_steps(A, 1), unlock_step(A, 2, drop_copies=(B,))]
    result, _, _ = run(sess, tmp_path, steps)
    assert result.exit_code is ExitCode.OK
    assert sess.stores[n(B)][LOCK_KEY] == theirs
    assert result.steps[-1].detail == "released"


def test_rollback_on_a_node_that_is_down_is_skipped_not_failed(tmp_path: Path) -> None:
    """A runtime-only change on a node whose process is gone needs no undo."""
    from redisops.audit import AuditLog
    from redisops.errors import ExitCode
    from redisops.model import Plan, Step
    from redisops.plan import RunContext, execute
    from redisops.session import build_session

    dead = "127.0.0.1:1"  # nothing listens: connection refused
    plan = Plan(
        "drill",
        "c",
        (
            Step(
                1,
                dead,
                "noop-ok",
                "a runtime change",
                rollback=("CONFIG", "SET", "x", "1"),
                args={"runtime_only": True},
            ),
            Step(2, dead, "noop-fail", "then a failure"),
        ),
    )
    ctx = RunContext(
        build_session(seeds=[dead]), plan, AuditLog(tmp_path / "audit.log", "drill", "c")
    )
    from redisops import plan as plan_mod
    from redisops.errors import CommandFailed

    def ok(_ctx: RunContext, _step: Step) -> str:
        return "done"

    def fail(_ctx: RunContext, _step: Step) -> str:
        raise CommandFailed("boom")

    plan_mod.ACTIONS["noop-ok"], plan_mod.ACTIONS["noop-fail"] = ok, fail
    try:
        result = execute(ctx)
    finally:
        del plan_mod.ACTIONS["noop-ok"], plan_mod.ACTIONS["noop-fail"]
    assert result.exit_code is ExitCode.ERROR  # the original failure, not "rolled back"
    assert [o.result for o in result.steps if o.action.startswith("rollback")] == ["skipped"]


# ----------------------------------------------------------------------------- signals


@action("t-sigint")
def _sigint_step(ctx: RunContext, step: Step) -> str:
    os.kill(os.getpid(), int(step.args.get("signal", signal.SIGINT)))
    time.sleep(5)  # the handler raises long before this ends
    raise AssertionError("the signal did not interrupt the step")


@action("t-sigint-in-critical")
def _sigint_in_critical(ctx: RunContext, step: Step) -> str:
    with ctx.critical():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        ctx.mark_committed()  # the promotion happened: the signal waited for it
        ctx.facts["critical_done"] = True
    return "unreachable"


@action("t-wait", waits=True)
def _a_wait(ctx: RunContext, step: Step) -> str:
    ctx.facts.setdefault("waited", []).append(step.n)
    return "waited"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_before_the_point_of_no_return_rolls_back_and_undoes_the_interrupted_step(
    sess: FakeSession, tmp_path: Path, sig: signal.Signals
) -> None:
    steps = [
        lock_steps(A, 1),
        cmd(2, A, "CONFIG", "SET", "p", "frozen", rollback=("CONFIG", "SET", "p", "10")),
        Step(
            3,
            A,
            "t-sigint",
            "wait for the target",
            rollback=("CLIENT", "UNPAUSE"),
            args={"signal": int(sig)},
        ),
        cmd(4, B, "REPLICAOF", "NO", "ONE", commit=True),
    ]
    previous = signal.getsignal(sig)
    result, lines, _ = run(sess, tmp_path, steps)
    assert signal.getsignal(sig) is previous  # the handler is put back
    assert result.outcome == "rolled-back" and result.exit_code is ExitCode.ROLLED_BACK
    assert f"interrupted by {sig.name}" in result.message
    log = sess.node(n(A)).log
    undo = [c for c in log if c in (("CLIENT", "UNPAUSE"), ("CONFIG", "SET", "p", "10"))]
    assert undo == [("CLIENT", "UNPAUSE"), ("CONFIG", "SET", "p", "10")]  # newest first
    assert ("REPLICAOF", "NO", "ONE") not in sess.node(n(B)).log
    assert lock_free(tmp_path) and LOCK_KEY not in sess.stores[n(A)]
    assert result.final_state  # the state of every node is reported
    assert any(x["result"] == "failed" and sig.name in x.get("detail", "") for x in lines)


def test_sigint_with_nothing_done_yet_is_exit_130_and_changes_nothing(
    sess: FakeSession, tmp_path: Path
) -> None:
    result, _, _ = run(sess, tmp_path, [lock_steps(A, 1), Step(2, A, "t-sigint", "wait")])
    assert result.outcome == "interrupted" and result.exit_code is ExitCode.INTERRUPTED
    assert "nothing was changed" in result.message


def test_sigint_after_the_point_of_no_return_finishes_forward_and_skips_the_waits(
    sess: FakeSession, tmp_path: Path
) -> None:
    steps = [
        lock_steps(A, 1),
        Step(2, B, "t-sigint-in-critical", "promote, then demote"),
        Step(3, B, "t-ok", "repoint the others", args={"on_failure": "continue"}),
        Step(4, B, "t-wait", "verify", args={"on_failure": "continue"}),
        unlock_step(A, 5),
    ]
    result, _, _ = run(sess, tmp_path, steps)
    assert result.observed["critical_done"] is True  # the critical section was not cut
    assert result.outcome == "partial" and result.exit_code is ExitCode.PARTIAL
    assert "after the point of no return: it finished forward" in result.message
    assert result.observed["ran"] == [3]  # the repoint still ran
    assert "waited" not in result.observed  # the wait did not
    assert [(s.n, s.result) for s in result.steps] == [
        (1, "ok"),
        (2, "failed"),
        (3, "ok"),
        (4, "skipped"),
        (5, "ok"),
    ]
    assert lock_free(tmp_path)


# ----------------------------------------------------------------------------- fresh read


def test_the_plan_is_rebuilt_once_the_lock_is_held_and_a_change_stops_the_run(
    sess: FakeSession, tmp_path: Path
) -> None:
    approved = Plan("test-op", "c1", (lock_steps(A, 1), cmd(2, B, "REPLICAOF", "NO", "ONE")))
    changed = Plan("test-op", "c1", (lock_steps(A, 1), cmd(2, A, "REPLICAOF", "NO", "ONE")))
    audit = AuditLog(tmp_path / "audit.log", "test-op", "c1")
    lock = ClusterLock("c1", "test-op", "tester", directory=tmp_path / "locks")
    ctx = RunContext(sess, approved, audit, lock, replan=lambda: changed)  # type: ignore[arg-type]
    result = execute(ctx)
    assert result.exit_code is ExitCode.REFUSED
    assert "the cluster changed after the plan was made" in result.message
    assert f'step 2 was "step 2" on {B}, now "step 2" on {A}' in result.message
    assert not any(c[0] == "REPLICAOF" for node in sess.nodes.values() for c in node.log)
    assert lock_free(tmp_path)


def test_a_fresh_plan_that_does_the_same_runs_with_the_fresh_values(
    sess: FakeSession, tmp_path: Path
) -> None:
    approved = Plan("test-op", "c1", (lock_steps(A, 1), cmd(2, B, "PING")), members=(A,))
    fresh = Plan(
        "test-op", "c1", (lock_steps(A, 1), cmd(2, B, "PING")), members=(A, "10.0.0.9:6379")
    )
    audit = AuditLog(tmp_path / "audit.log", "test-op", "c1")
    lock = ClusterLock(
        "c1", "test-op", "tester", directory=tmp_path / "locks", members=approved.members
    )
    seen: list[bool] = []

    def replan() -> Plan:
        seen.append(True)
        return fresh

    ctx = RunContext(sess, approved, audit, lock, replan=replan)  # type: ignore[arg-type]
    result = execute(ctx)
    assert result.exit_code is ExitCode.OK and seen == [True]
    assert ctx.plan is fresh
    assert "addr:10.0.0.9:6379" in lock.names  # the new member was locked too


def test_a_refusal_or_a_new_confirmation_on_the_fresh_read_counts_as_a_change() -> None:
    old = Plan("x", "c", (cmd(1, A, "PING"),))
    refused = Plan(
        "x", "c", (cmd(1, A, "PING"),), (Finding("refuse", "already_failed_over", "B is master"),)
    )
    confirm = Plan("x", "c", (cmd(1, A, "PING"),), (Finding("confirm", "keys", "lose 3 keys"),))
    assert plan_changes(old, refused) == ["B is master"]
    assert plan_changes(old, confirm) == ["new finding to confirm: lose 3 keys"]
    assert plan_changes(old, Plan("x", "c", (), nothing_to_do=True, summary="done")) == [
        "nothing to do any more: done"
    ]


def test_a_restore_step_is_skipped_when_what_it_restores_never_changed(
    sess: FakeSession, tmp_path: Path
) -> None:
    sess.node(n(A)).fail_next("CONFIG", CommandFailed("ERR unknown command 'CONFIG'"))
    steps = [
        cmd(1, A, "CONFIG", "SET", "p", "frozen", args={"optional": True}),
        cmd(
            2,
            A,
            "CONFIG",
            "SET",
            "p",
            "10",
            args={"if_fact": "pings_frozen", "if_fact_note": "the PING period was not changed"},
        ),
    ]
    result, _, _ = run(sess, tmp_path, steps, lock=False)
    assert result.exit_code is ExitCode.OK
    assert [s.result for s in result.steps] == ["warning", "skipped"]
    assert result.steps[1].detail == "nothing to restore: the PING period was not changed"
