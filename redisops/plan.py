"""The plan executor every mutating command uses.

A :class:`~redisops.model.Plan` is data: ordered steps, each naming the node, the exact
command, its precondition and how it is verified. ``execute`` runs the steps through the
adapters, one audit record per step, and stops at the first failure: before the point of
no return (a step with ``commit=True``) it rolls back what it can, in reverse order;
after it, steps marked ``on_failure=continue`` are still attempted (finish forward) and
the outcome is *partial* (exit 8), or *verify-failed* (exit 9) when only verification
steps failed; a wait that runs out of time after it is a *timeout* (exit 10). Either way
the result reports the exact state every touched node was left in, re-read from the
nodes. Verification steps are ordinary steps whose failure means "every command returned
OK, but the cluster is not as promised" (exit 9).

Step routines are registered per ``action`` by ``ops`` modules (:func:`action`); plain
commands use the ``command`` action. Retries happen only for idempotent steps and only on
transport errors.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from redisops.audit import AuditLog
from redisops.errors import (
    CommandFailed,
    ExitCode,
    PartiallyApplied,
    RedisopsError,
    RolledBack,
    Unreachable,
    VerifyFailed,
    WaitTimeout,
)
from redisops.inventory import Secret
from redisops.lock import ClusterLock
from redisops.model import REDACTED, Address, Plan, Step
from redisops.redis_node import RedisNode
from redisops.retry import RetryPolicy
from redisops.session import Session


class Progress(Protocol):
    """How long steps report what they wait for (the renderer decides how it looks)."""

    def phase(self, text: str) -> None: ...

    def update(self, label: str, done: float, total: float | None) -> None: ...

    def finish(self) -> None: ...


class NullProgress:
    def phase(self, text: str) -> None:
        pass

    def update(self, label: str, done: float, total: float | None) -> None:
        pass

    def finish(self) -> None:
        pass


@dataclass
class StepOutcome:
    n: int
    node: str
    action: str
    result: str  # ok | failed | skipped | rolled-back | warning
    detail: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "node": self.node,
            "action": self.action,
            "result": self.result,
            "detail": self.detail,
            "seconds": round(self.seconds, 4),
        }


@dataclass
class PlanResult:
    outcome: str  # applied | rolled-back | partial | failed | timeout | verify-failed
    exit_code: ExitCode
    message: str
    steps: list[StepOutcome] = field(default_factory=list)
    final_state: list[dict[str, Any]] = field(default_factory=list)
    observed: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "exit_code": int(self.exit_code),
            "message": self.message,
            "steps": [s.to_dict() for s in self.steps],
            "observed": self.observed,
            "final_state": self.final_state,
            "warnings": self.warnings,
        }


@dataclass
class RunContext:
    session: Session
    plan: Plan
    audit: AuditLog
    lock: ClusterLock | None = None
    progress: Progress = field(default_factory=NullProgress)
    facts: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    sleep: Callable[[float], None] = time.sleep
    #: values steps overwrote, for their rollback; unlike ``facts`` (which become the
    #: result's ``observed``), never shown anywhere
    remembered: dict[str, Secret] = field(default_factory=dict)

    def node(self, name: str) -> RedisNode:
        return self.session.node(self.session_address(name))

    def session_address(self, name: str) -> Address:
        return Address.parse(name)

    def secret(self, source: str) -> str:
        if source in self.remembered:
            return self.remembered[source].reveal()
        creds = self.session.options.credentials
        if source == "password" and creds.password is not None:
            return creds.password.reveal()
        if source == "username" and creds.username:
            return creds.username
        raise CommandFailed(f"the plan needs the {source}, but no credential source provides it")


def remembered(node: str, param: str) -> str:
    """The secret source under which a ``remember_config`` step keeps the old value."""
    return f"previous:{node}:{param}"


ActionFn = Callable[[RunContext, Step], str]
ACTIONS: dict[str, ActionFn] = {}


def action(name: str) -> Callable[[ActionFn], ActionFn]:
    def register(fn: ActionFn) -> ActionFn:
        ACTIONS[name] = fn
        return fn

    return register


def _materialise(
    ctx: RunContext, step: Step, command: tuple[str, ...], key: str = "secret"
) -> list[str]:
    """The command with its redacted argument filled in: ``step.args[key]`` is
    ``(index, source)``, the source a credential or a value remembered by the step."""
    args = list(command)
    secret = step.args.get(key)
    if secret is not None:
        index, source = int(secret[0]), str(secret[1])
        if 0 <= index < len(args) and args[index] == REDACTED:
            args[index] = ctx.secret(source)
    return args


@action("command")
def run_command(ctx: RunContext, step: Step) -> str:
    assert step.command is not None
    node = ctx.node(step.node)
    args = _materialise(ctx, step, step.command)
    remember = step.args.get("remember_config")
    if remember is not None:
        # the value this step overwrites, for its rollback: possibly a secret, so it is
        # kept in memory only (RunContext.remembered), never in facts or output
        reply = node.execute("CONFIG", "GET", str(remember))
        pairs = dict(zip(reply[::2], reply[1::2], strict=False)) if isinstance(reply, list) else {}
        ctx.remembered[remembered(step.node, str(remember))] = Secret(str(pairs.get(remember, "")))
    if step.idempotent:
        reply = RetryPolicy(attempts=3, wait_initial=0.1, sleep=ctx.sleep).call(
            lambda: node.execute(*args), retry_on=(Unreachable,)
        )
    else:
        reply = node.execute(*args)
    return str(reply)


@action("lock")
def run_lock(ctx: RunContext, step: Step) -> str:
    assert ctx.lock is not None
    master: RedisNode | None
    try:
        master = ctx.node(step.node)
        master.connect()
    except Unreachable:
        master = None
    ctx.lock.acquire(master)
    ctx.warnings.extend(ctx.lock.warnings)
    return "lock key and local lock held" if ctx.lock.key_on is not None else "local lock held"


@action("unlock")
def run_unlock(ctx: RunContext, step: Step) -> str:
    dropped: list[str] = []
    if ctx.lock is not None:
        try:
            node = ctx.node(step.node)
        except RedisopsError:
            node = None
        ctx.lock.release(node)
        for name in step.args.get("drop_copies", ()):
            if ctx.lock.drop_copy(ctx.node(str(name))):
                dropped.append(str(name))
        ctx.warnings.extend(w for w in ctx.lock.warnings if w not in ctx.warnings)
    if dropped:
        return f"released (and the replicated copy on {', '.join(dropped)})"
    return "released"


@action("config-rewrite")
def run_config_rewrite(ctx: RunContext, step: Step) -> str:
    """``CONFIG REWRITE``: persist runtime changes so a restart keeps them."""
    try:
        ctx.node(step.node).execute("CONFIG", "REWRITE")
    except CommandFailed as exc:
        reason = exc.message.split("failed: ", 1)[-1]
        raise CommandFailed(
            f"{step.node}: CONFIG REWRITE failed ({reason}); the change is live but a restart will lose it",
            hint="edit the node's redis.conf (the SSH layer will do it), or rerun without --persist",
        ) from None
    return "config file rewritten"


def _is_down(ctx: RunContext, name: str) -> bool:
    """True when nothing listens at the node's address any more (connection refused)."""
    info = ctx.session.probe(Address.parse(name))
    return not info.reachable and "refused" in (info.error or "")


def _rollback(ctx: RunContext, done: list[Step], outcomes: list[StepOutcome]) -> list[str]:
    """Undo completed steps in reverse order; returns what could not be undone."""
    failures = []
    for step in reversed(done):
        if step.rollback is None:
            continue
        t0 = time.perf_counter()

        def record(
            result: str, detail: str, audit_result: str, step: Step = step, t0: float = t0
        ) -> None:
            assert step.rollback is not None
            outcomes.append(
                StepOutcome(
                    step.n,
                    step.node,
                    f"rollback {step.action}",
                    result,
                    detail,
                    time.perf_counter() - t0,
                )
            )
            ctx.audit.record(
                step=step.n,
                node=step.node,
                action=f"rollback:{step.action}",
                command=list(step.rollback),
                result=audit_result,
                detail=detail,
            )

        try:
            ctx.node(step.node).execute(*_materialise(ctx, step, step.rollback, "rollback_secret"))
            record("rolled-back", " ".join(step.rollback), "ok")
        except RedisopsError as exc:
            if (
                isinstance(exc, Unreachable)
                and step.args.get("runtime_only")
                and _is_down(ctx, step.node)
            ):
                # the step changed only runtime state, and the node is not running: the
                # change died with the process, there is nothing left to undo
                record(
                    "skipped",
                    "node is down (connection refused): its runtime change is gone",
                    "skipped",
                )
                continue
            failures.append(f"step {step.n} on {step.node}: {exc}")
            record("failed", str(exc), "failed")
    return failures


def _load_routines() -> None:
    """Step routines register themselves when their ops module is imported."""
    from redisops.ops import attach, detach, drift, failover, fence, sentinel, switchover  # noqa: F401


def execute(ctx: RunContext) -> PlanResult:
    """Run the plan's steps; never raises for a step failure (the result says what happened).

    Anything else that escapes (Ctrl-C, a bug) still releases the lock, so the operator can
    look at the state and rerun at once instead of waiting for the key to expire.
    """
    try:
        return _execute(ctx)
    except BaseException as exc:
        try:
            ctx.progress.finish()
            ctx.audit.record(action="interrupted", result="interrupted", detail=type(exc).__name__)
        except Exception:  # pragma: no cover - best effort on the way out
            pass
        try:
            _release_lock_afresh(ctx)
        except Exception:  # pragma: no cover - best effort on the way out
            pass
        raise


def _release_lock_afresh(ctx: RunContext) -> None:
    """Release the lock on a new connection: the interrupted step may have left a reply
    unread on the cached one."""
    lock = ctx.lock
    if lock is None or (lock.key_on is None and lock._file is None):
        return
    where = ctx.facts.get("lock_release_on")
    address: Address | None = Address.parse(where) if isinstance(where, str) else None
    if address is None and lock.key_on is not None:
        address = lock.key_on.address
    node = ctx.session.fresh_node(address) if address is not None else None
    try:
        lock.release(node)
    finally:
        if node is not None:
            node.close()


def _execute(ctx: RunContext) -> PlanResult:
    _load_routines()
    plan = ctx.plan
    outcomes: list[StepOutcome] = []
    done: list[Step] = []
    committed = False
    forward_failures: list[RedisopsError] = []
    for step in plan.steps:
        fn = ACTIONS.get(step.action)
        ctx.progress.phase(f"step {step.n}/{len(plan.steps)}: {step.description}")
        t0 = time.perf_counter()
        ctx.audit.record(
            step=step.n,
            node=step.node,
            action=step.action,
            command=list(step.command) if step.command else None,
            result="started",
        )
        try:
            if fn is None:
                raise RedisopsError(f"internal: no routine for action {step.action!r}")
            detail = fn(ctx, step)
        except RedisopsError as exc:
            elapsed = time.perf_counter() - t0
            optional = step.args.get("optional", False)
            outcomes.append(
                StepOutcome(
                    step.n,
                    step.node,
                    step.action,
                    "warning" if optional else "failed",
                    str(exc),
                    elapsed,
                )
            )
            ctx.audit.record(
                step=step.n,
                node=step.node,
                action=step.action,
                command=list(step.command) if step.command else None,
                result="warning" if optional else "failed",
                detail=str(exc),
            )
            if optional:
                ctx.warnings.append(str(exc))
                continue
            if committed and step.args.get("on_failure") == "continue":
                forward_failures.append(exc)
                continue
            ctx.progress.finish()
            return _failed(ctx, exc, step, done, outcomes, committed, forward_failures)
        elapsed = time.perf_counter() - t0
        outcomes.append(StepOutcome(step.n, step.node, step.action, "ok", detail, elapsed))
        ctx.audit.record(
            step=step.n,
            node=step.node,
            action=step.action,
            command=list(step.command) if step.command else None,
            result="ok",
            detail=detail,
            seconds=round(elapsed, 4),
        )
        done.append(step)
        if step.commit:
            committed = True
    ctx.progress.finish()
    _release_lock(ctx)
    if forward_failures:
        text = "; ".join(str(e) for e in forward_failures)
        if all(isinstance(e, VerifyFailed) for e in forward_failures):
            # every command ran; only the checks found a different state (exit 9)
            return PlanResult(
                "verify-failed",
                ExitCode.VERIFY_FAILED,
                f"{plan.operation}: every step ran, but verification failed: {text}",
                outcomes,
                _final_state(ctx),
                dict(ctx.facts),
                ctx.warnings,
            )
        return PlanResult(
            "partial",
            ExitCode.PARTIAL,
            f"{plan.operation} finished forward with {len(forward_failures)} failed step(s): "
            + text,
            outcomes,
            _final_state(ctx),
            dict(ctx.facts),
            ctx.warnings,
        )
    return PlanResult(
        "applied",
        ExitCode.OK,
        f"{plan.operation} done",
        outcomes,
        _final_state(ctx),
        dict(ctx.facts),
        ctx.warnings,
    )


def _release_lock(ctx: RunContext) -> None:
    if ctx.lock is not None and (ctx.lock.key_on is not None or ctx.lock._file is not None):
        master = ctx.facts.get("lock_release_on")
        node = ctx.node(master) if isinstance(master, str) else None
        ctx.lock.release(node)
        ctx.warnings.extend(w for w in ctx.lock.warnings if w not in ctx.warnings)


def _failed(
    ctx: RunContext,
    exc: RedisopsError,
    step: Step,
    done: list[Step],
    outcomes: list[StepOutcome],
    committed: bool,
    forward_failures: list[RedisopsError],
) -> PlanResult:
    plan = ctx.plan
    if committed:
        _release_lock(ctx)
        err: RedisopsError
        if isinstance(exc, WaitTimeout):
            # the change is made; the cluster did not converge in time (exit 10, not 8)
            err = WaitTimeout(
                f"{plan.operation} timed out at step {step.n}, after the point of no return: {exc}",
                hint="the state below is what each node is in now",
            )
            outcome = "timeout"
        else:
            err = PartiallyApplied(
                f"{plan.operation} stopped at step {step.n} after the point of no return: {exc}",
                hint="the state below is what each node is in now; finish by hand or rerun the operation",
            )
            outcome = "partial"
    else:
        rollback_failures = _rollback(ctx, done, outcomes)
        _release_lock(ctx)
        undone = any(o.result == "rolled-back" for o in outcomes)  # skipped ones changed nothing
        if isinstance(exc, VerifyFailed):
            err, outcome = exc, "verify-failed"
        elif rollback_failures:
            err = PartiallyApplied(
                f"{plan.operation} failed at step {step.n} ({exc}) and could not be fully "
                f"rolled back: " + "; ".join(rollback_failures)
            )
            outcome = "partial"
        elif undone:
            err = RolledBack(
                f"{plan.operation} failed at step {step.n} ({exc}); completed steps were rolled back"
            )
            outcome = "rolled-back"
        else:
            err, outcome = exc, ("timeout" if exc.exit_code is ExitCode.TIMEOUT else "failed")
    return PlanResult(
        outcome,
        err.exit_code,
        str(err),
        outcomes,
        _final_state(ctx),
        dict(ctx.facts),
        ctx.warnings + [str(e) for e in forward_failures],
    )


def _final_state(ctx: RunContext) -> list[dict[str, Any]]:
    """Re-read every touched node: the exact state the operation left."""
    names = list(dict.fromkeys(ctx.plan.touched or [s.node for s in ctx.plan.steps]))
    out = []
    for name in names:
        try:
            info = ctx.session.probe(Address.parse(name))
        except RedisopsError as exc:  # pragma: no cover - probe does not raise for I/O
            out.append({"address": name, "reachable": False, "error": str(exc)})
            continue
        if not info.reachable:
            out.append({"address": name, "reachable": False, "error": info.error})
            continue
        out.append(
            {
                "address": name,
                "reachable": True,
                "role": info.role,
                "master": str(info.master_address)
                if info.master_address and info.is_replica
                else None,
                "link": info.link,
                "offset": info.offset,
                "replid": info.replid,
                "sync_full": info.stat("sync_full"),
                "sync_partial_ok": info.stat("sync_partial_ok"),
            }
        )
    return out
