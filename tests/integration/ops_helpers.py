"""Helpers shared by the switchover, failover, fence and Sentinel tests.

``invoke`` runs the CLI in-process (typer's CliRunner) with ``XDG_STATE_HOME`` pointing at
the test's temp dir, so lock files and the audit log stay there. ``run_switchover`` drives
the library directly (session, discover, plan, execute) for tests that inject a fault in
the middle of an operation.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from redisops.audit import AuditLog
from redisops.cli import app
from redisops.lock import ClusterLock
from redisops.model import Address, Plan
from redisops.ops.failover import plan_failover
from redisops.ops.switchover import plan_switchover
from redisops.plan import NullProgress, PlanResult, RunContext, execute
from redisops.session import Session, build_session
from tests.harness import RedisFactory, RedisProc, free_port, wait_in_sync

runner = CliRunner()


def state_env(tmp_path: Path) -> dict[str, str]:
    return {"XDG_STATE_HOME": str(tmp_path / "state"), "REDISCLI_AUTH": ""}


def invoke(env: dict[str, str], *args: str) -> Result:
    return runner.invoke(app, list(args), env=env)


def invoke_json(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any], Result]:
    """Run a command with ``--format json``; its exit code and parsed stdout."""
    result = invoke(env, *args, "--format", "json")
    assert result.stdout.strip(), f"no output (exit {result.exit_code}): {result.stderr}"
    return result.exit_code, json.loads(result.stdout), result


def replication(proc: RedisProc) -> dict[str, Any]:
    return proc.info("replication")


def role_of(proc: RedisProc) -> str:
    return str(replication(proc)["role"])


def master_of(proc: RedisProc) -> str | None:
    info = replication(proc)
    if info["role"] != "slave":
        return None
    return f"{info['master_host']}:{info['master_port']}"


def sync_counters(proc: RedisProc) -> tuple[int, int]:
    """``(sync_full, sync_partial_ok)`` served by this node so far."""
    stats = proc.info("stats")
    return int(stats["sync_full"]), int(stats["sync_partial_ok"])


def final_state(result: PlanResult | dict[str, Any]) -> dict[str, dict[str, Any]]:
    rows = result.final_state if isinstance(result, PlanResult) else result["final_state"]
    return {row["address"]: row for row in rows}


class PhaseHook:
    """A progress sink that calls ``fire`` once, when a phase containing ``when`` starts
    (or, with ``on_update``, at the first progress update with that label)."""

    def __init__(self, when: str, fire: Callable[[], None], *, on_update: bool = False) -> None:
        self.when = when
        self.fire = fire
        self.on_update = on_update
        self.fired = False
        self.phases: list[str] = []

    def _maybe(self, text: str) -> None:
        if not self.fired and self.when in text:
            self.fired = True
            self.fire()

    def phase(self, text: str) -> None:
        self.phases.append(text)
        if not self.on_update:
            self._maybe(text)

    def update(self, label: str, done: float, total: float | None) -> None:
        if self.on_update:
            self._maybe(label)

    def finish(self) -> None:
        pass


def _run(session: Session, plan: Plan, state: Path, progress: Any) -> PlanResult:
    assert not plan.refusals(force=True), [f.message for f in plan.findings]
    audit = AuditLog(state / "redisops" / "audit.log", plan.operation, plan.cluster)
    lock = ClusterLock(
        plan.cluster,
        plan.operation,
        "tester",
        directory=state / "redisops" / "locks",
        members=plan.members,
    )
    return execute(RunContext(session, plan, audit, lock, progress or NullProgress()))


def session_for(*seeds: str, socket_timeout: float = 5.0) -> Session:
    return build_session(seeds=list(seeds), socket_timeout=socket_timeout, connect_timeout=1.0)


def run_switchover(
    state: Path,
    master: str,
    target: str,
    *,
    progress: Any = None,
    socket_timeout: float = 5.0,
    **options: Any,
) -> PlanResult:
    """Plan and execute a switchover through the library (no prompt, no rendering)."""
    with session_for(master, target, socket_timeout=socket_timeout) as session:
        topo = session.discover()
        plan = plan_switchover(
            topo, Address.parse(master), Address.parse(target), session, **options
        )
        return _run(session, plan, state, progress)


def run_failover(
    state: Path, dead: str, *seeds: str, socket_timeout: float = 5.0, **options: Any
) -> PlanResult:
    with session_for(*seeds, dead, socket_timeout=socket_timeout) as session:
        topo = session.discover()
        plan = plan_failover(topo, Address.parse(dead), session, **options)
        return _run(session, plan, state, None)


class ConfFileProc(RedisProc):
    """A redis-server started from a config file (so ``CONFIG REWRITE`` has one to write)."""

    @property
    def conf(self) -> Path:
        return self.dir / "redis.conf"

    def argv(self) -> list[str]:
        args = super().argv()
        if not self.conf.exists():
            self.conf.write_text("# written by the tests; CONFIG REWRITE appends below\n")
        return [args[0], str(self.conf), *args[1:]]


def start_with_conf_file(factory: RedisFactory, config: dict[str, str]) -> ConfFileProc:
    port = free_port()
    proc = ConfFileProc(factory, port, config, f"conf{len(factory.procs)}-{port}")
    factory.procs.append(proc)
    proc.start()
    return proc


def settle(master: RedisProc, replicas: list[RedisProc]) -> int:
    """Write once and wait until every replica has it: after a (diskless) full sync the
    master streams to a replica only once it ACKed, up to a second later."""
    master.client().set("settle", "1")
    offset = wait_in_sync(master, replicas)
    assert offset > 0
    return offset
