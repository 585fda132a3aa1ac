"""The flow every mutating command shares: show the plan, refuse or ask, act, report.

Exit codes: 0 done (or dry run, or nothing to do), 3 a needed node is unreachable,
5 refused by preflight or not confirmed, 6 locked, 7 rolled back, 8 partially applied,
9 verification failed, 10 timed out.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol, TypeVar

import typer

from redisops.errors import ExitCode
from redisops.formats import Format

if TYPE_CHECKING:  # pragma: no cover
    from redisops.cli.common import Connection
    from redisops.model import Plan
    from redisops.ops.api import Operation
    from redisops.session import Session

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
FenceOpt = Annotated[
    str | None,
    typer.Option(
        "--fence",
        metavar="stop|config",
        help="Also fence the old master on its machine (SSH): stop its service, or write "
        "replicaof into its config file so a restart brings it back as a replica.",
    ),
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


class Seeded(Protocol):
    """An operations-API request: it names the nodes the session starts reading from."""

    def seeds(self) -> list[str]: ...


RequestT = TypeVar("RequestT", bound=Seeded)


def operate(
    conn: Connection,
    req: RequestT,
    build: Callable[[Session, RequestT], Operation],
    *,
    fmt: Format,
    dry_run: bool,
    yes: bool,
    force: bool,
    audit_path: Path | None,
) -> None:
    """The whole of a mutating command once its options are parsed into ``req``: open a
    session on the request's seeds, ``build`` the operation (an :mod:`redisops.ops.api`
    entry point) and :func:`run_operation` it."""
    with conn.session(req.seeds()) as session:
        run_operation(
            build(session, req),
            session,
            fmt=fmt,
            dry_run=dry_run,
            yes=yes,
            force=force,
            audit_path=audit_path,
        )


def run_operation(
    op: Operation | Plan,
    session: Any,
    *,
    fmt: Format,
    dry_run: bool,
    yes: bool,
    force: bool,
    audit_path: Path | None,
    replan: Callable[[], Plan] | None = None,
    facts: dict[str, Any] | None = None,
    remembered: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Render, gate, ask, execute (:func:`redisops.ops.api.execute`) and exit with the
    documented code (raises typer.Exit). ``op.extra`` joins the JSON document (e.g. the
    drift report a fix comes from); ``op.notes`` are told first.

    A bare plan (with ``replan`` and ``extra``) is accepted too, for commands whose
    planning has not moved into :mod:`redisops.ops.api` yet."""
    from redisops.ops.api import Operation, execute, gate
    from redisops.output import (
        error_line,
        make_progress,
        note,
        render_plan,
        render_result,
        to_json,
        write,
    )

    for warning in getattr(session, "warnings", []):
        note(f"warning: {warning}")
    if not isinstance(op, Operation):
        op = Operation(op, replan, extra=dict(extra or {}))
    plan = op.plan
    for text in op.notes:
        note(text)
    extra = {k: v.to_dict() if hasattr(v, "to_dict") else v for k, v in op.extra.items()}
    doc: dict[str, Any] = {**plan.to_dict(), **extra}
    if plan.nothing_to_do:
        _emit(fmt, doc, plan.summary)
        raise typer.Exit(int(ExitCode.OK))
    refused = gate(plan, force)
    if refused is not None:
        code, why = refused
        doc["refused"] = [f.message for f in plan.refusals(force)]
        _emit(fmt, doc, render_plan(plan, force))
        error_line(f"refused: {why}")
        raise typer.Exit(int(code))
    if dry_run:
        doc["dry_run"] = True
        _emit(fmt, doc, render_plan(plan, force) + "\n\nDry run: nothing was changed.")
        raise typer.Exit(int(ExitCode.OK))
    needs_yes = [f for f in plan.findings if f.level == "confirm"]
    if fmt is not Format.json:
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
    result = execute(
        op,
        session,
        force=force,
        audit_path=audit_path,
        progress=make_progress(fmt),
        facts=facts,
        remembered=remembered,
    )
    if fmt is Format.json:
        doc["result"] = result.to_dict()
        write(to_json(doc))
    else:
        write(render_result(result))
    if result.exit_code is not ExitCode.OK:
        error_line(result.message)
    raise typer.Exit(int(result.exit_code))


def _emit(fmt: Format, doc: dict[str, Any], text: str) -> None:
    from redisops.output import to_json, write

    write(to_json(doc) if fmt is Format.json else text)
