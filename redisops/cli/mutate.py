"""The flow every mutating command shares: show the plan, refuse or ask, act, report.

Exit codes: 0 done (or dry run, or nothing to do), 3 a needed node is unreachable,
5 refused by preflight or not confirmed, 6 locked, 7 rolled back, 8 partially applied,
9 verification failed, 10 timed out.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from redisops.errors import ExitCode
from redisops.formats import Format

DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Show the plan and the prediction; change nothing.")
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Act without asking (for scripts).")]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="Override refusals marked forceable (e.g. Sentinel).")
]
PersistOpt = Annotated[
    bool, typer.Option("--persist", help="CONFIG REWRITE so a restart keeps the change.")
]
AuditOpt = Annotated[
    Path | None,
    typer.Option(
        "--audit-log",
        metavar="FILE",
        help="Audit log file (default $XDG_STATE_HOME/redisops/audit.log).",
        dir_okay=False,
    ),
]
TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout", metavar="SECONDS", help="Seconds to wait for the cluster to converge.", min=0.1
    ),
]


def run_operation(
    plan: Any,
    session: Any,
    *,
    fmt: Format,
    dry_run: bool,
    yes: bool,
    force: bool,
    audit_path: Path | None,
    facts: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    replan: Callable[[], Any] | None = None,
) -> None:
    """Render, gate, execute and exit with the documented code (raises typer.Exit).

    ``extra`` is added to the JSON document (e.g. the drift report a fix plan came from).
    ``replan`` rebuilds the plan from a fresh read of the cluster: the executor calls it
    once the lock is held and stops if the cluster changed since the plan was approved.
    """
    from redisops.audit import AuditLog, operator
    from redisops.lock import ClusterLock
    from redisops.output import (
        error_line,
        make_progress,
        render_plan,
        render_result,
        to_json,
        write,
    )
    from redisops.plan import RunContext, execute
    from redisops.testhooks import hold

    doc: dict[str, Any] = {**plan.to_dict(), **(extra or {})}
    if plan.nothing_to_do:
        _emit(fmt, doc, plan.summary)
        raise typer.Exit(int(ExitCode.OK))
    refusals = plan.refusals(force)
    if refusals:
        code = (
            ExitCode.UNREACHABLE
            if any(f.code == "unreachable" for f in refusals)
            else ExitCode.REFUSED
        )
        doc["refused"] = [f.message for f in refusals]
        _emit(fmt, doc, render_plan(plan, force))
        error_line("refused: " + "; ".join(f.message for f in refusals))
        raise typer.Exit(int(code))
    if dry_run:
        doc["dry_run"] = True
        _emit(fmt, doc, render_plan(plan, force) + "\n\nDry run: nothing was changed.")
        raise typer.Exit(int(ExitCode.OK))
    needs_yes = [f for f in plan.findings if f.level == "confirm"]
    if fmt is Format.table:
        write(render_plan(plan, force))
    if needs_yes and not yes:
        if fmt is Format.json:
            write(to_json({**doc, "refused": [f.message for f in needs_yes]}))
        error_line(
            "refused: " + "; ".join(f.message for f in needs_yes) + "; pass --yes to proceed"
        )
        raise typer.Exit(int(ExitCode.REFUSED))
    if not yes:
        if not sys.stdin.isatty():
            error_line("not confirmed: standard input is not a terminal; pass --yes to proceed")
            raise typer.Exit(int(ExitCode.REFUSED))
        if not typer.confirm("Proceed?", default=False):
            error_line("not confirmed; nothing was changed")
            raise typer.Exit(int(ExitCode.REFUSED))
    hold("approved")
    audit = AuditLog(audit_path, plan.operation, plan.cluster)
    audit.record(
        step=0,
        action="plan",
        result="approved",
        forced=force,
        overridden=[f.message for f in plan.findings if f.level == "refuse"],
        prediction=plan.prediction,
    )
    lock = ClusterLock(
        plan.cluster,
        plan.operation,
        audit.operator or operator(),
        ttl_s=lock_ttl(plan),
        members=plan.members,
    )
    ctx = RunContext(
        session,
        plan,
        audit,
        lock,
        make_progress(fmt),
        facts=dict(facts or {}),
        replan=replan,
        force=force,
    )
    from redisops.state import mark_plan, note_final_state

    mark_plan(plan.operation, plan.prediction)  # its predicted full syncs must not page anyone
    result = execute(ctx)
    note_final_state(result.final_state)
    audit.record(
        step=len(plan.steps) + 1,
        action="result",
        result=result.outcome,
        detail=result.message,
        observed=result.observed,
    )
    if fmt is Format.json:
        doc["result"] = result.to_dict()
        write(to_json(doc))
    else:
        write(render_result(result))
    if result.exit_code is not ExitCode.OK:
        error_line(result.message)
    raise typer.Exit(int(result.exit_code))


def lock_ttl(plan: Any, floor: int = 900, margin: int = 300) -> int:
    """Seconds the lock key lives: the operation's longest possible wait (``--timeout``)
    plus a margin, never under ``floor``, so the key cannot expire while the operation is
    still running (e.g. ``attach --timeout 3600`` on a large dataset)."""
    waits = 0.0
    for step in plan.steps:
        try:
            waits += float(step.args.get("timeout", 0) or 0)
        except (TypeError, ValueError):
            continue
    return max(floor, int(waits) + margin)


def _emit(fmt: Format, doc: dict[str, Any], text: str) -> None:
    from redisops.output import to_json, write

    write(to_json(doc) if fmt is Format.json else text)
