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

Once the lock step holds the lock, the plan is rebuilt from a fresh read of the cluster
(``RunContext.replan``) and the run stops, changing nothing, when the new plan differs in
a way that matters (:func:`plan_changes`): what was approved is what runs.

SIGINT and SIGTERM take the failure path (:class:`SignalGuard`): before the point of no
return completed steps are rolled back (a switchover unpauses writes and restores the PING
period at once); after it the remaining steps that move nodes still run and the waits are
skipped; the final state of every node is reported either way.

Step routines are registered per ``action`` by ``ops`` modules (:func:`action`); plain
commands use the ``command`` action. Retries happen only for idempotent steps and only on
transport errors.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Protocol

from redisops.audit import AuditLog
from redisops.errors import (
    CommandFailed,
    ExitCode,
    Interrupted,
    PartiallyApplied,
    RedisopsError,
    Refused,
    RolledBack,
    Unreachable,
    VerifyFailed,
    WaitTimeout,
)
from redisops.inventory import Secret
from redisops.lock import ClusterLock
from redisops.model import REDACTED, Address, NodeInfo, Plan, Step
from redisops.redis_node import RedisNode
from redisops.retry import RetryPolicy
from redisops.session import Session
from redisops.testhooks import hold


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


class SignalGuard:
    """Turns SIGINT/SIGTERM into :class:`Interrupted` inside step routines, so an interrupt
    takes the executor's failure path instead of killing the process mid-change.

    Between steps and inside :meth:`critical` sections (a promotion and the demotion that
    must follow it) a signal is held until the section ends. After the first interrupt,
    further signals are only recorded: the rollback or finish-forward is bounded by the
    command timeouts and must not be cut short (SIGKILL remains the way out). Handlers are
    installed only on the main thread (signals are delivered there).
    """

    def __init__(self) -> None:
        self.mode = "defer"  # raise | defer | note
        self.pending: str | None = None
        self.received: list[str] = []
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    @property
    def interrupted(self) -> bool:
        return bool(self.received)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        self.received.append(name)
        if self.mode == "raise":
            self.mode = "note"
            raise Interrupted(f"interrupted by {name}")
        if self.mode == "defer" and self.pending is None:
            self.pending = name

    def check(self) -> None:
        """Raise the interrupt held since the last check, if any."""
        if self.pending is not None:
            name, self.pending = self.pending, None
            self.mode = "note"
            raise Interrupted(f"interrupted by {name}")

    @contextmanager
    def raising(self) -> Iterator[None]:
        """A step routine runs: a signal raises at once (unless one came already)."""
        if self.mode == "defer":
            self.check()
            self.mode = "raise"
        try:
            yield
        finally:
            if self.mode == "raise":
                self.mode = "defer"

    @contextmanager
    def critical(self) -> Iterator[None]:
        """Hold signals until the block is done, then raise the held one."""
        previous = self.mode
        if previous == "raise":
            self.mode = "defer"
        try:
            yield
        finally:
            if self.mode == "defer" and previous == "raise":
                self.mode = "raise"
        if previous == "raise":
            self.check()


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
    #: rebuilds the plan from a fresh read (called once the lock is held)
    replan: Callable[[], Plan] | None = None
    #: --force: e.g. go on with only the local lock when the lock key cannot be written
    force: bool = False
    guard: SignalGuard = field(default_factory=SignalGuard)
    #: set by a step that passed the point of no return before it returned
    committed: bool = False

    def critical(self) -> Any:
        """A section no signal may cut (see :meth:`SignalGuard.critical`)."""
        return self.guard.critical()

    def mark_committed(self) -> None:
        """The running step has passed the point of no return (e.g. the promotion)."""
        self.committed = True

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
#: how to undo a step whose effect is not undone by a Redis command (a server it started,
#: a file it staged): run on rollback like ``Step.rollback``, returns what it did
UNDOS: dict[str, ActionFn] = {}
#: actions that only wait or check (skipped when finishing forward after an interrupt)
WAITING: set[str] = set()
#: actions that take the lock (the plan is rebuilt from a fresh read after them)
LOCKING: set[str] = set()


def action(
    name: str, *, waits: bool = False, takes_lock: bool = False
) -> Callable[[ActionFn], ActionFn]:
    def register(fn: ActionFn) -> ActionFn:
        ACTIONS[name] = fn
        if waits:
            WAITING.add(name)
        if takes_lock:
            LOCKING.add(name)
        return fn

    return register


def undo(name: str) -> Callable[[ActionFn], ActionFn]:
    """Register the rollback routine of action ``name`` (see :data:`UNDOS`)."""

    def register(fn: ActionFn) -> ActionFn:
        UNDOS[name] = fn
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


@action("lock", takes_lock=True)
def run_lock(ctx: RunContext, step: Step) -> str:
    if ctx.lock is None:
        raise RedisopsError("internal: the plan takes a lock but the run has none")
    if step.args.get("local_only"):
        ctx.lock.acquire(None)
        return f"local lock held ({step.args['local_only']})"
    master: RedisNode | None
    try:
        master = ctx.node(step.node)
        master.connect()
    except Unreachable:
        master = None
    ctx.lock.acquire(master, local_only_ok=ctx.force)
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
    """``CONFIG REWRITE``: persist runtime changes so a restart keeps them; when Redis cannot
    (no config file, CONFIG renamed, file not writable), write the running values of the
    step's ``keys`` (default: the replication settings) into its config file (``file``, else
    the node's own) through the node's host instead
    (:func:`redisops.ops.confedit.persist_via_file`). The detail says which."""
    try:
        ctx.node(step.node).execute("CONFIG", "REWRITE")
    except CommandFailed as exc:
        from redisops.ops.confedit import persist_via_file

        reason = exc.message.split("failed: ", 1)[-1]
        keys = step.args.get("keys")
        try:
            return persist_via_file(
                ctx.session,
                Address.parse(step.node),
                reason,
                [str(k) for k in keys] if keys is not None else None,
                str(step.args.get("file") or "") or None,
            )
        except RedisopsError as file_exc:
            raise CommandFailed(
                f"{step.node}: CONFIG REWRITE failed ({reason}) and editing the config file "
                f"failed too ({file_exc}); the change is live but a restart will lose it",
                hint="set config_file (and ssh:) for the node in the inventory so that "
                "redisops can edit its file, or persist the change by hand",
            ) from None
    return "config file rewritten by CONFIG REWRITE"


def _is_down(ctx: RunContext, name: str) -> bool:
    """True when nothing listens at the node's address any more (connection refused)."""
    info = ctx.session.probe(Address.parse(name))
    return not info.reachable and "refused" in (info.error or "")


def _rollback(ctx: RunContext, done: list[Step], outcomes: list[StepOutcome]) -> list[str]:
    """Undo completed steps in reverse order; returns what could not be undone."""
    failures = []
    for step in reversed(done):
        undo_fn = UNDOS.get(step.action)
        if step.rollback is None and undo_fn is None:
            continue
        t0 = time.perf_counter()

        def record(
            result: str, detail: str, audit_result: str, step: Step = step, t0: float = t0
        ) -> None:
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
                command=list(step.rollback) if step.rollback else None,
                result=audit_result,
                detail=detail,
            )

        if step.rollback is None and undo_fn is not None:
            try:
                record("rolled-back", undo_fn(ctx, step), "ok")
            except RedisopsError as exc:
                failures.append(f"step {step.n} on {step.node}: {exc}")
                record("failed", str(exc), "failed")
            continue
        assert step.rollback is not None
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


def _signature(step: Step) -> str:
    """What a step does, without its wording: node, action, exact commands, arguments."""
    return json.dumps(
        [step.n, step.node, step.action, step.command, step.rollback, step.commit, step.args],
        sort_keys=True,
        default=str,
    )


def plan_changes(approved: Plan, fresh: Plan, force: bool = False) -> list[str]:
    """How ``fresh`` (rebuilt once the lock is held) differs from the ``approved`` plan in
    a way that matters: a refusal, something new to confirm, other steps or commands.
    Offsets and timings that moved meanwhile do not count.

    >>> p = Plan("x", "c", (Step(1, "a:1", "command", "d", command=("PING",)),))
    >>> plan_changes(p, p)
    []
    >>> q = Plan("x", "c", (Step(1, "b:1", "command", "d", command=("PING",)),))
    >>> plan_changes(p, q)
    ['step 1 was "d" on a:1, now "d" on b:1']
    """
    if fresh.nothing_to_do:
        return [f"nothing to do any more: {fresh.summary}"]
    out = [f.message for f in fresh.refusals(force)]
    if out:
        return out
    seen = {(f.code, f.node) for f in approved.findings if f.level == "confirm"}
    out += [
        f"new finding to confirm: {f.message}"
        for f in fresh.findings
        if f.level == "confirm" and (f.code, f.node) not in seen
    ]
    for old, new in zip(approved.steps, fresh.steps, strict=False):
        if _signature(old) != _signature(new):
            out.append(
                f'step {old.n} was "{old.description}" on {old.node}, '
                f'now "{new.description}" on {new.node}'
            )
            break
    else:
        if len(approved.steps) != len(fresh.steps):
            out.append(f"{len(approved.steps)} steps became {len(fresh.steps)}")
    return out


class PlanChanged(Refused):
    """The cluster changed between the plan the operator approved and the lock."""


def _refresh(ctx: RunContext) -> None:
    """Once the lock is held: rebuild the plan from a fresh read, hold the lock of any new
    member too, and go on only if nothing that matters changed."""
    if ctx.replan is None:
        return
    fresh = ctx.replan()
    if ctx.lock is not None and fresh.members:
        ctx.lock.extend(fresh.members)
    changes = plan_changes(ctx.plan, fresh, ctx.force)
    if changes:
        raise PlanChanged(
            "the cluster changed after the plan was made: " + "; ".join(changes),
            hint="nothing was changed; rerun to see the new plan",
        )
    ctx.plan = fresh


def _load_routines() -> None:
    """Step routines register themselves when their ops module is imported."""
    from redisops.backup import restore  # noqa: F401
    from redisops.ops import attach, detach, drift, failover, fence, sentinel, switchover  # noqa: F401


def execute(ctx: RunContext) -> PlanResult:
    """Run the plan's steps; never raises for a step failure (the result says what happened).

    SIGINT/SIGTERM are failures of the running step (see :class:`SignalGuard`). Anything
    else that escapes (a bug) still releases the lock, so the operator can look at the
    state and rerun at once instead of waiting for the key to expire.
    """
    ctx.guard.install()
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
    finally:
        ctx.guard.uninstall()


def _release_lock_afresh(ctx: RunContext) -> None:
    """Release the lock on a new connection: the interrupted step may have left a reply
    unread on the cached one."""
    lock = ctx.lock
    if lock is None or not lock.held:
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


def _record(ctx: RunContext, step: Step, result: str, **fields: Any) -> None:
    ctx.audit.record(
        step=step.n,
        node=step.node,
        action=step.action,
        command=list(step.command) if step.command else None,
        result=result,
        **fields,
    )


def _skip_reason(ctx: RunContext, step: Step, interrupted: bool) -> str | None:
    """Why ``step`` does not run now: a wait while finishing forward after an interrupt,
    or a restore of something the plan did not change after all (``if_fact``)."""
    if interrupted and step.action in WAITING:
        return "interrupted: not waited for"
    needed = step.args.get("if_fact")
    if needed and not ctx.facts.get(str(needed)):
        return f"nothing to restore: {step.args.get('if_fact_note') or needed + ' did not happen'}"
    return None


def _execute(ctx: RunContext) -> PlanResult:
    _load_routines()
    outcomes: list[StepOutcome] = []
    done: list[Step] = []
    forward_failures: list[RedisopsError] = []
    interrupt: RedisopsError | None = None  # an interrupt after the point of no return
    i = 0
    while i < len(ctx.plan.steps):
        step = ctx.plan.steps[i]
        i += 1
        skip = _skip_reason(ctx, step, interrupt is not None)
        if skip is not None:
            outcomes.append(StepOutcome(step.n, step.node, step.action, "skipped", skip))
            _record(ctx, step, "skipped", detail=skip)
            continue
        fn = ACTIONS.get(step.action)
        hold(f"step:{step.action}")
        ctx.progress.phase(f"step {step.n}/{len(ctx.plan.steps)}: {step.description}")
        t0 = time.perf_counter()
        _record(ctx, step, "started")
        try:
            if fn is None:
                raise RedisopsError(f"internal: no routine for action {step.action!r}")
            with ctx.guard.raising():
                detail = fn(ctx, step)
            if step.action in LOCKING:
                hold("locked")
                _refresh(ctx)
        except RedisopsError as exc:
            elapsed = time.perf_counter() - t0
            optional = step.args.get("optional", False) and not isinstance(exc, Interrupted)
            result = "warning" if optional else "failed"
            outcomes.append(StepOutcome(step.n, step.node, step.action, result, str(exc), elapsed))
            _record(ctx, step, result, detail=str(exc))
            if optional:
                ctx.warnings.append(str(exc))
                continue
            if ctx.committed and (
                isinstance(exc, Interrupted)
                or interrupt is not None
                or step.args.get("on_failure") == "continue"
            ):
                if isinstance(exc, Interrupted) and interrupt is None:
                    interrupt = exc
                forward_failures.append(exc)
                continue
            ctx.progress.finish()
            return _failed(ctx, exc, step, done, outcomes, forward_failures)
        elapsed = time.perf_counter() - t0
        outcomes.append(StepOutcome(step.n, step.node, step.action, "ok", detail, elapsed))
        _record(ctx, step, "ok", detail=detail, seconds=round(elapsed, 4))
        done.append(step)
        if step.commit:
            ctx.committed = True
    ctx.progress.finish()
    _release_lock(ctx)
    return _finished(ctx, outcomes, forward_failures, interrupt)


def _finished(
    ctx: RunContext,
    outcomes: list[StepOutcome],
    forward_failures: list[RedisopsError],
    interrupt: RedisopsError | None,
) -> PlanResult:
    """The result of a run that got to the end of its steps (finishing forward or not)."""
    plan = ctx.plan

    def result(outcome: str, code: ExitCode, message: str) -> PlanResult:
        return PlanResult(
            outcome, code, message, outcomes, _final_state(ctx), dict(ctx.facts), ctx.warnings
        )

    if interrupt is not None:
        others = [str(e) for e in forward_failures if e is not interrupt]
        return result(
            "partial",
            ExitCode.PARTIAL,
            f"{plan.operation} was {interrupt} after the point of no return: it finished "
            f"forward and skipped its waits and checks"
            + (f"; failed: {'; '.join(others)}" if others else "")
            + "; check the state below with 'redisops status'",
        )
    if forward_failures:
        text = "; ".join(str(e) for e in forward_failures)
        if all(isinstance(e, VerifyFailed) for e in forward_failures):
            # every command ran; only the checks found a different state (exit 9)
            return result(
                "verify-failed",
                ExitCode.VERIFY_FAILED,
                f"{plan.operation}: every step ran, but verification failed: {text}",
            )
        return result(
            "partial",
            ExitCode.PARTIAL,
            f"{plan.operation} finished forward with {len(forward_failures)} failed step(s): "
            + text,
        )
    return result("applied", ExitCode.OK, f"{plan.operation} done")


def _release_lock(ctx: RunContext) -> None:
    if ctx.lock is not None and ctx.lock.held:
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
    forward_failures: list[RedisopsError],
) -> PlanResult:
    plan = ctx.plan
    if ctx.committed:
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
        # an interrupted step may have acted before its reply came back: undo it too
        undo = [*done, step] if isinstance(exc, Interrupted) else done
        rollback_failures = _rollback(ctx, undo, outcomes)
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
        elif isinstance(exc, Interrupted):
            err = Interrupted(f"{plan.operation} {exc} at step {step.n}; nothing was changed")
            outcome = "interrupted"
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
                "sync": _sync_state(info),
            }
        )
    return out


def _sync_state(info: NodeInfo) -> str | None:
    """A full sync the node is in the middle of, for the state report (None: none)."""
    if info.loading:
        return "loading the RDB"
    if info.sync_in_progress:
        p = info.sync_progress or {}
        return f"full sync in progress, {p.get('read_bytes', 0)} bytes received"
    return None
