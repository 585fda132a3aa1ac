"""Running a playbook: step by step, verified, journaled, resumable.

For each step in order: evaluate ``when:`` (false: skipped, and a registered name gets
``{"skipped": true}``), fill in the ``{{ }}`` templates of ``with:`` and type them, check
the step's explicit ``precondition:`` against a fresh read of the cluster, run the
action (a mutating one plans, gates and executes the operation, which verifies itself),
then check the explicit ``verify:``, register the value, and write the journal and audit
records. The first failure stops the run (unless the step says ``on_failure: continue``)
and the report carries the state of every node the run has seen.

A dry run does the same with nothing changed: read-only steps read the real cluster,
mutating steps stop at their plan and prediction and leave their predicted effect in
the :class:`~redisops.playbook.overlay.World` that later reads see.

Resuming (``--resume`` from the journal, or ``--from-step N``) never trusts a position
alone: steps already done keep their registered values (and may not have changed since),
and the first step to run again re-checks its precondition against the live cluster —
the operation's preflight is planned afresh; if it finds the work already done the step
counts as done, if it refuses, the resume stops before touching anything.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redisops.errors import BadInput, ExitCode, RedisopsError, Refused
from redisops.playbook import expr
from redisops.playbook.actions import (
    ACTIONS,
    ActionContext,
    ActionResult,
    StepFailed,
    cluster_view,
    coerce_args,
    run_action,
)
from redisops.playbook.journal import Journal, PastRun, find_run, inputs_hash, new_run_id
from redisops.playbook.schema import Playbook, StepSpec


@dataclass
class RunOptions:
    dry_run: bool = False
    yes: bool = False
    from_step: int | None = None
    resume: bool = False
    resume_run_id: str | None = None
    journal_dir: Path | None = None
    rehearsal: bool = False


@dataclass
class StepRecord:
    id: str
    name: str
    action: str
    status: str  # ok | skipped | failed | continued | done-before
    summary: str
    exit_code: int = 0
    seconds: float = 0.0
    registered: Any = None
    plan: dict[str, Any] | None = None
    predicted: bool = False
    item: Any = None
    #: text shown under the step's line (a dry run's plan and prediction)
    details: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "name": self.name,
            "action": self.action,
            "status": self.status,
            "summary": self.summary,
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 4),
            "predicted": self.predicted,
            "registered": self.registered,
        }
        if self.item is not None:
            out["item"] = self.item
        if self.plan is not None:
            out["plan"] = self.plan
        return out


@dataclass
class RunReport:
    playbook: Playbook
    run_id: str
    dry_run: bool
    records: list[StepRecord] = field(default_factory=list)
    exit_code: ExitCode = ExitCode.OK
    message: str = ""
    failed_step: str | None = None
    final_state: Any = None  # a Topology, read when the run stopped on a failure
    journal: Path | None = None
    resumed_from: str | None = None
    rehearsal: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code is ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        from redisops.playbook.actions import cluster_view as view

        return {
            "playbook": self.playbook.name,
            "path": str(self.playbook.path),
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "rehearsal": self.rehearsal,
            "outcome": "ok" if self.ok else "failed",
            "exit_code": int(self.exit_code),
            "message": self.message,
            "failed_step": self.failed_step,
            "resumed_from": self.resumed_from,
            "journal": str(self.journal) if self.journal else None,
            "steps": [r.to_dict() for r in self.records],
            "final_state": view(self.final_state) if self.final_state is not None else None,
        }


class Reporter:
    """What the runner tells as it goes (the CLI prints it; tests may collect it)."""

    def started(self, report: RunReport, total: int) -> None:
        pass

    def step_started(self, spec: StepSpec, total: int, item: Any) -> None:
        pass

    def step_finished(self, spec: StepSpec, record: StepRecord, total: int) -> None:
        pass

    def detail(self, text: str) -> None:
        pass

    def finished(self, report: RunReport) -> None:
        pass


class Runner:
    def __init__(
        self,
        book: Playbook,
        variables: Mapping[str, Any],
        ctx: ActionContext,
        opts: RunOptions,
        reporter: Reporter | None = None,
    ) -> None:
        self.book = book
        self.vars = dict(variables)
        self.ctx = ctx
        self.opts = opts
        self.reporter = reporter or Reporter()
        self.registered: dict[str, Any] = {}
        self.past: PastRun | None = None
        self.journal: Journal | None = None
        self.audit: Any = None
        self.start_at: str | None = None
        self.total = len(book.steps)

    # ------------------------------------------------------------------ set-up
    def prepare(self) -> RunReport:
        """Everything checked before the first step runs (raises BadInput / Refused)."""
        book, opts = self.book, self.opts
        if opts.resume:
            self.past = find_run(opts.journal_dir, book.path, opts.resume_run_id)
            self._check_resumable(self.past)
            self.vars = dict(self.past.start.get("vars") or {})
            self.registered = self.past.registered()
            run_id = self.past.run_id
        else:
            run_id = new_run_id()
        if opts.from_step is not None:
            self._check_from_step(opts.from_step)
            self.start_at = str(opts.from_step)
        mutating = [
            s for s in self.book.all_steps() if s.action and ACTIONS[s.action].changes(s.args)
        ]
        if mutating and not opts.dry_run and not opts.yes and self.ctx.ask is None:
            raise Refused(
                f"this playbook changes the cluster (steps {', '.join(s.id for s in mutating)}) "
                f"and nobody can confirm them here (not a terminal)",
                hint="pass --yes, or first look with --dry-run",
            )
        self.ctx.run_id = run_id
        self.ctx.dry_run = opts.dry_run
        self.ctx.yes = opts.yes
        report = RunReport(book, run_id, opts.dry_run, rehearsal=opts.rehearsal)
        if not opts.dry_run:
            self.journal = Journal(opts.journal_dir, run_id)
            report.journal = self.journal.path
            if self.past is not None:
                self.journal.write("resume", failed_step=self.past.failed_step())
            else:
                self.journal.start(
                    playbook=book.name,
                    path=book.path.resolve(),
                    sha256=book.sha256,
                    vars=self.vars,
                    rehearsal=opts.rehearsal,
                    from_step=opts.from_step,
                )
            from redisops.playbook.actions import RunAudit

            self.audit = RunAudit(
                self.ctx.audit_path,
                f"playbook:{book.name}",
                self.ctx.connect.cluster or book.name,
                run_id,
            )
        return report

    def _check_resumable(self, past: PastRun) -> None:
        if self.opts.from_step is not None:
            raise BadInput(
                "--resume and --from-step go separately",
                hint="--resume picks up where the run stopped",
            )
        changed = []
        for spec in self.book.all_steps():
            for rec in past.steps:
                if (
                    rec.get("id") == spec.id
                    and rec.get("status") == "ok"
                    and rec.get("digest") != spec.digest()
                ):
                    changed.append(spec.label)
                    break
        if changed:
            raise BadInput(
                f"{self.book.path}: {', '.join(dict.fromkeys(changed))} changed since run {past.run_id} "
                f"completed them: its journal no longer describes this playbook",
                hint="run it again from the start (or with --from-step N)",
            )

    def _check_from_step(self, n: int) -> None:
        if not 1 <= n <= self.total:
            raise BadInput(f"--from-step {n}: the playbook has steps 1 to {self.total}")
        skipped = {s.register: s for s in self.book.all_steps() if s.n < n and s.register}
        for spec in self.book.all_steps():
            if spec.n < n:
                continue
            for name in sorted(_reads(spec) & set(skipped)):
                if name in self.registered:
                    continue
                src = skipped[name]
                raise BadInput(
                    f"--from-step {n}: {spec.label} reads {name!r}, registered by {src.label}, "
                    f"which this run would skip",
                    hint=f"use --resume (the journal has it) or --from-step {src.n}",
                )

    # ------------------------------------------------------------------ the run
    def run(self) -> RunReport:
        report = self.prepare()
        self.ctx.show = self.reporter.detail
        self.reporter.started(report, self.total)
        recheck = self.past is not None or self.start_at is not None
        report.resumed_from = None
        current: StepSpec | None = None
        try:
            for spec in self.book.steps:
                if self.start_at is not None and spec.n < int(self.start_at):
                    rec = StepRecord(
                        spec.id,
                        spec.name,
                        spec.action or "for_each",
                        "skipped",
                        f"--from-step {self.start_at}",
                    )
                    self._record(report, spec, rec, journal=False)
                    continue
                for sub, item, scope in self._expand(spec):
                    current = sub
                    done = self._done_before(sub, item)
                    if done is not None:
                        rec = StepRecord(
                            sub.id,
                            sub.name,
                            sub.action or "",
                            "done-before",
                            f"done in run {self.past.run_id if self.past else '?'}: {done.get('summary', '')}",
                            registered=done.get("registered"),
                            item=item,
                        )
                        self._record(report, sub, rec, journal=False)
                        continue
                    if recheck and report.resumed_from is None:
                        report.resumed_from = sub.id
                        if not self._recheck(report, sub, scope, item):
                            return self._finish(report)
                        recheck = False
                        if (
                            report.records
                            and report.records[-1].status == "ok"
                            and report.records[-1].id == sub.id
                        ):
                            continue  # the re-check found it already done
                    rec = self._run_step(sub, scope, item)
                    self._record(report, sub, rec)
                    if rec.status == "failed":
                        report.exit_code = ExitCode(rec.exit_code)
                        report.failed_step = sub.id
                        report.message = f"stopped at {sub.label}: {rec.summary}"
                        report.final_state = self._final_state()
                        return self._finish(report)
        except KeyboardInterrupt:
            report.exit_code = ExitCode.INTERRUPTED
            report.failed_step = current.id if current is not None else None
            report.message = (
                f"interrupted at {current.label}" if current is not None else "interrupted"
            )
            report.final_state = self._final_state()
            self._finish(report)
            raise
        report.message = "dry run: nothing was changed" if self.opts.dry_run else "every step done"
        return self._finish(report)

    def _expand(self, spec: StepSpec) -> Iterator[tuple[StepSpec, Any, dict[str, Any]]]:
        """The steps to run for ``spec``: itself, or its group's steps once per item."""
        if not spec.is_group:
            yield spec, None, self.scope()
            return
        scope = self.scope()
        if spec.when is not None and not expr.truth(spec.when, scope):
            return
        items = expr.render(spec.for_each, scope)
        if not isinstance(items, list):
            raise StepFailed(
                f"{spec.label}: for_each gave a {type(items).__name__}, not a list",
                ExitCode.BAD_INPUT,
            )
        for item in items:
            for sub in spec.steps:
                yield sub, item, {**self.scope(), spec.as_name: item}

    def scope(self) -> dict[str, Any]:
        return {
            **self.vars,
            **self.registered,
            "dry_run": self.opts.dry_run,
            "rehearsal": self.opts.rehearsal,
            "run_id": self.ctx.run_id,
        }

    def _done_before(self, spec: StepSpec, item: Any) -> dict[str, Any] | None:
        if self.past is None:
            return None
        rec = self.past.last(spec.id, item)
        if rec is not None and rec.get("status") in ("ok", "skipped", "continued"):
            return rec
        return None

    def _recheck(self, report: RunReport, spec: StepSpec, scope: dict[str, Any], item: Any) -> bool:
        """Before the first step of a resumed run: its precondition against the live
        cluster. True to go on (the step then runs, or is recorded as already done)."""
        if spec.action is None or not ACTIONS[spec.action].changes(spec.args):
            return True
        self.ctx.check_only = True
        try:
            rec = self._run_step(spec, scope, item, announce=False)
        finally:
            self.ctx.check_only = False
        value = rec.registered if isinstance(rec.registered, dict) else {}
        if rec.status == "failed":
            rec.summary = f"precondition re-checked against the live cluster: {rec.summary}"
            self._record(report, spec, rec)
            report.exit_code = ExitCode(rec.exit_code)
            report.failed_step = spec.id
            report.message = f"resume refused at {spec.label}: {rec.summary}"
            report.final_state = self._final_state()
            return False
        if value.get("outcome") == "nothing-to-do":
            rec.summary = f"already done (re-checked against the live cluster): {rec.summary}"
            self._record(report, spec, rec)
            return True
        self.reporter.detail(f"  precondition re-checked against the live cluster: {rec.summary}")
        return True

    def _run_step(
        self, spec: StepSpec, scope: dict[str, Any], item: Any, *, announce: bool = True
    ) -> StepRecord:
        action = spec.action or ""
        if announce:
            self.reporter.step_started(spec, self.total, item)
        t0 = time.perf_counter()
        if self.audit is not None and not self.ctx.check_only:
            self.audit.record(
                step=spec.id, action=action, name=spec.name, result="started", item=item
            )
        try:
            if spec.when is not None and not expr.truth(spec.when, scope):
                return StepRecord(
                    spec.id,
                    spec.name,
                    action,
                    "skipped",
                    f"when: {spec.when} is false",
                    registered={"skipped": True},
                    item=item,
                )
            result = self._act(spec, scope)
        except RedisopsError as exc:  # a StepFailed also carries what it registers and its plan
            failed = exc if isinstance(exc, StepFailed) else None
            value = {
                **(failed.value if failed is not None else {}),
                "failed": True,
                "error": str(exc),
                "exit_code": int(exc.exit_code),
            }
            plan = failed.plan if failed is not None else None
            return StepRecord(
                spec.id,
                spec.name,
                action,
                "continued" if spec.on_failure == "continue" else "failed",
                str(exc),
                int(exc.exit_code),
                time.perf_counter() - t0,
                value,
                plan.to_dict() if plan is not None else None,
                item=item,
            )
        return StepRecord(
            spec.id,
            spec.name,
            action,
            "ok",
            result.summary,
            0,
            time.perf_counter() - t0,
            result.value,
            result.plan.to_dict() if result.plan is not None else None,
            result.predicted,
            item,
            result.details,
        )

    def _act(self, spec: StepSpec, scope: dict[str, Any]) -> ActionResult:
        assert spec.action is not None
        action = ACTIONS[spec.action]
        raw = dict(spec.args)
        # an assert's conditions are expressions, and its message is filled in only
        # when a condition fails (with the values that made it fail)
        kept: dict[str, Any] = {
            k: raw.pop(k) for k in ("that", "message") if spec.action == "assert" and k in raw
        }
        args = coerce_args(action, {**expr.render(raw, scope), **kept})
        if action.changes(args) and spec.precondition is not None:
            seen = self._cluster(args)
            if not expr.truth(spec.precondition, {**scope, "now": seen}):
                raise StepFailed(f"precondition is false: {spec.precondition}", ExitCode.REFUSED)
        result = run_action(self.ctx, spec.action, args, scope)
        if result.plan is not None and (self.opts.dry_run or self.ctx.check_only):
            from redisops.output import render_plan

            result.details = _indent(render_plan(result.plan, bool(args.get("force"))))
        if action.changes(args) and spec.verify is not None and not self.ctx.check_only:
            seen = self._cluster(args)
            if not expr.truth(spec.verify, {**scope, "now": seen, "result": result.value}):
                raise StepFailed(
                    f"verify is false: {spec.verify}",
                    ExitCode.VERIFY_FAILED,
                    value=result.value,
                    plan=result.plan,
                )
        return result

    def _cluster(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """The cluster around the step's nodes, read now (with predictions in a dry run)."""
        seeds: list[str] = []
        for value in args.values():
            if isinstance(value, str) and _looks_like_address(value):
                seeds.append(value)
            elif isinstance(value, list):
                seeds.extend(v for v in value if isinstance(v, str) and _looks_like_address(v))
        with self.ctx.connect.session(seeds or list(self.ctx.seen)) as session:
            topo = self.ctx.world.discover(session) if self.opts.dry_run else session.discover()
        return cluster_view(topo, self.ctx.world.predicted if self.opts.dry_run else ())

    def _record(
        self, report: RunReport, spec: StepSpec, rec: StepRecord, *, journal: bool = True
    ) -> None:
        report.records.append(rec)
        if spec.register and rec.status in ("ok", "skipped", "continued", "done-before"):
            self.registered[spec.register] = rec.registered
        self.reporter.step_finished(spec, rec, self.total)
        if not journal or self.ctx.check_only:
            return
        if self.journal is not None:
            self.journal.write(
                "step",
                id=spec.id,
                name=spec.name,
                action=rec.action,
                digest=spec.digest(),
                status=rec.status,
                exit_code=rec.exit_code,
                summary=rec.summary,
                register=spec.register,
                registered=rec.registered,
                inputs_hash=inputs_hash(dict(spec.args)),
                seconds=round(rec.seconds, 4),
                item=rec.item,
            )
        if self.audit is not None:
            self.audit.record(
                step=spec.id,
                action=rec.action,
                name=spec.name,
                result=rec.status,
                detail=rec.summary,
                item=rec.item,
            )

    def _final_state(self) -> Any:
        """The topology of every node the run has seen, read now."""
        if not self.ctx.seen:
            return None
        try:
            with self.ctx.connect.session(list(self.ctx.seen)) as session:
                return self.ctx.world.discover(session) if self.opts.dry_run else session.discover()
        except RedisopsError:
            return None

    def _finish(self, report: RunReport) -> RunReport:
        if self.journal is not None:
            self.journal.write(
                "end",
                exit_code=int(report.exit_code),
                message=report.message,
                failed_step=report.failed_step,
            )
        self.reporter.finished(report)
        return report


def _looks_like_address(text: str) -> bool:
    from redisops.model import parse_target

    if ":" not in text or " " in text:
        return False
    try:
        parse_target(text)
    except BadInput:
        return False
    return True


def _indent(text: str, pad: str = "      ") -> str:
    return "\n".join(pad + line if line else line for line in text.splitlines())


def _reads(spec: StepSpec) -> set[str]:
    """The names a step reads (for --from-step)."""
    out: set[str] = set()
    for text in (spec.when, spec.precondition, spec.verify):
        if text:
            out |= expr.names(text)
    out |= expr.template_names({k: v for k, v in spec.args.items() if k != "that"})
    that = spec.args.get("that")
    for text in that if isinstance(that, list) else [that] if that else []:
        out |= expr.names(str(text))
    if spec.is_group and isinstance(spec.for_each, str):
        out |= expr.template_names(spec.for_each)
    return out
