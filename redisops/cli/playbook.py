"""``redisops playbook``: list, show, validate and run incident runbooks.

Exit codes: ``validate`` 0 valid, 2 invalid (every problem printed with its file, step
and field). ``run`` 0 when every step succeeded (or, with ``--dry-run``, would: its
probes passed and every plan was accepted), 2 bad playbook or vars (nothing ran),
otherwise the exit code of the step that stopped the run: 3 unreachable, 5 refused (a
preflight, a precondition, an assert before anything changed, or not confirmed),
6 locked, 7 rolled back, 8 partially applied, 9 verification failed, 10 timed out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from redisops.cli.common import Connection, FormatOpt, with_connection
from redisops.cli.mutate import AuditOpt, DryRunOpt, YesOpt
from redisops.formats import Format

playbook_app = typer.Typer(
    name="playbook",
    help="Incident runbooks: YAML procedures whose steps are redisops operations, "
    "validated before they run, rehearsed with --dry-run, journaled and resumable.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

FileArg = Annotated[
    str,
    typer.Argument(metavar="PLAYBOOK", help="A playbook file, or the name of a shipped/local one."),
]


def _load(name: str) -> Any:
    from redisops.playbook.library import resolve
    from redisops.playbook.schema import load

    return load(resolve(name))


def _invalid(exc: Any, fmt: Format) -> None:
    from redisops.errors import ExitCode
    from redisops.output import error_line, to_json, write

    if fmt is Format.json:
        write(to_json({"valid": False, "errors": exc.errors, "exit_code": 2}))
    for line in exc.errors:
        error_line(line)
    raise typer.Exit(int(ExitCode.BAD_INPUT))


@playbook_app.command("list")
def pb_list(fmt: FormatOpt = Format.table) -> None:
    """The playbooks shipped with redisops and your own (./playbooks, $REDISOPS_PLAYBOOKS,
    $XDG_CONFIG_HOME/redisops/playbooks), with their descriptions."""
    from redisops.output import to_json, write
    from redisops.playbook.library import entries
    from redisops.playbook.render import render_list
    from redisops.playbook.schema import PlaybookInvalid, load

    rows = []
    for entry in entries():
        row: dict[str, Any] = {
            "name": entry.name,
            "source": entry.source,
            "path": str(entry.path),
            "description": "",
            "valid": True,
        }
        try:
            book = load(entry.path)
            row["description"] = book.description
        except PlaybookInvalid as exc:
            row["valid"] = False
            row["error"] = f"INVALID: {exc.errors[0]}"
        rows.append(row)
    write(to_json({"playbooks": rows}) if fmt is Format.json else render_list(rows))


@playbook_app.command("show")
def pb_show(playbook: FileArg, fmt: FormatOpt = Format.table) -> None:
    """Print a playbook: vars, steps, and each mutating step's precondition and verification."""
    from redisops.output import to_json, write
    from redisops.playbook.render import render_show
    from redisops.playbook.schema import PlaybookInvalid

    try:
        book = _load(playbook)
    except PlaybookInvalid as exc:
        _invalid(exc, fmt)
        return
    write(to_json(book.to_dict()) if fmt is Format.json else render_show(book))


@playbook_app.command("validate")
def pb_validate(playbook: FileArg, fmt: FormatOpt = Format.table) -> None:
    """Check a playbook without running anything: fields, actions, arguments, types,
    expressions, references. Exit 0 valid, 2 invalid (every problem listed)."""
    from redisops.output import to_json, write
    from redisops.playbook.schema import PlaybookInvalid

    try:
        book = _load(playbook)
    except PlaybookInvalid as exc:
        _invalid(exc, fmt)
        return
    if fmt is Format.json:
        write(to_json({"valid": True, "path": str(book.path)}))
    else:
        write(f"{book.path}: valid ({len(book.vars)} var(s), {len(book.all_steps())} step(s))")


def _parse_vars(items: list[str] | None) -> dict[str, str]:
    from redisops.errors import BadInput

    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadInput(
                f"--var {item!r} is not NAME=VALUE", hint="e.g. --var master=10.0.0.1:6379"
            )
        out[key.strip()] = value
    return out


@playbook_app.command("run")
@with_connection
def pb_run(
    conn: Connection,
    playbook: FileArg,
    var: Annotated[
        list[str] | None,
        typer.Option("--var", metavar="NAME=VALUE", help="A playbook var (repeatable)."),
    ] = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    from_step: Annotated[
        int | None,
        typer.Option(
            "--from-step",
            metavar="N",
            help="Start at step N (its precondition is re-checked).",
            min=1,
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Resume the last unfinished run of this playbook from its journal."
        ),
    ] = False,
    run_id: Annotated[
        str | None, typer.Option("--run-id", metavar="ID", help="With --resume: which run.")
    ] = None,
    journal_dir: Annotated[
        Path | None,
        typer.Option(
            "--journal-dir",
            metavar="DIR",
            help="Run journals (default $XDG_STATE_HOME/redisops/runs).",
            file_okay=False,
        ),
    ] = None,
    rehearse: Annotated[
        bool,
        typer.Option(
            "--rehearse",
            help="First copy the cluster into an embedded-engine lab and run the playbook "
            "there for real; the real run is offered only if that passed (--yes takes it).",
        ),
    ] = False,
    audit_log: AuditOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Run a playbook step by step: each step printed as it runs, verified, journaled.

    --dry-run reads the real cluster for every read-only step and plans (and predicts)
    every mutating one: nothing changes. --rehearse runs it for real on a copy of the
    cluster first. A failed run stops with the state of every node and can be resumed
    with --resume once the cause is fixed.
    """
    import dataclasses
    import sys

    from redisops.errors import BadInput
    from redisops.output import make_progress, to_json, write
    from redisops.playbook.actions import ActionContext, Connector
    from redisops.playbook.render import TextReporter
    from redisops.playbook.runner import Reporter, Runner, RunOptions
    from redisops.playbook.schema import PlaybookInvalid, bind_vars

    try:
        book = _load(playbook)
    except PlaybookInvalid as exc:
        _invalid(exc, fmt)
        return
    given = _parse_vars(var)
    if resume and given:
        raise BadInput(
            "a resumed run keeps the vars it started with", hint="drop --var, or start a new run"
        )
    if run_id and not resume:
        raise BadInput("--run-id goes with --resume")
    variables = {} if resume else bind_vars(book, given)

    def make(seeds: Any, cluster: str | None) -> Any:
        return dataclasses.replace(conn, cluster=cluster).session(seeds)

    interactive = sys.stdin.isatty() and fmt is Format.table
    ctx = ActionContext(
        Connector(make, conn.inventory, conn.cluster),
        audit_path=audit_log,
        progress=make_progress(fmt),
        ask=(lambda q: typer.confirm(q, default=False)) if interactive else None,
    )
    opts = RunOptions(
        dry_run=dry_run,
        yes=yes,
        from_step=from_step,
        resume=resume,
        resume_run_id=run_id,
        journal_dir=journal_dir,
    )
    reporter = TextReporter() if fmt is Format.table else Reporter()
    rehearsal: dict[str, Any] | None = None
    if rehearse:
        if dry_run or resume or from_step is not None:
            raise BadInput(
                "--rehearse runs the whole playbook on a copy: not with --dry-run, --resume or --from-step"
            )
        from redisops.playbook.rehearse import rehearse as run_rehearsal

        trial, tr = run_rehearsal(
            book,
            variables,
            ctx.connect,
            lambda tr: TextReporter(tr.text) if fmt is Format.table else Reporter(),
            announce=write if fmt is Format.table else lambda text: None,
        )
        rehearsal = tr.data(trial.to_dict())
        if not trial.ok or not _take_real_run(yes, interactive, fmt):
            if fmt is Format.json:
                write(to_json({"rehearsal": rehearsal, "run": None}))
            elif trial.ok:
                write(
                    f"\nRehearsal passed. Run it on the real cluster with --yes (without --rehearse): "
                    f"redisops playbook run {book.path} "
                    + " ".join(f"--var {k}={v}" for k, v in given.items())
                )
            raise typer.Exit(int(trial.exit_code))
        if fmt is Format.table:
            write("\nRehearsal passed: now the real run.")
    report = Runner(book, variables, ctx, opts, reporter).run()
    if fmt is Format.json:
        doc = report.to_dict()
        write(to_json({"rehearsal": rehearsal, "run": doc} if rehearse else doc))
    raise typer.Exit(int(report.exit_code))


def _take_real_run(yes: bool, interactive: bool, fmt: Format) -> bool:
    """After a rehearsal that passed: --yes goes on; on a terminal, ask."""
    if yes:
        return True
    if not interactive:
        return False
    return typer.confirm("\nRehearsal passed. Run it on the real cluster now?", default=False)


def register(app: typer.Typer) -> None:
    app.add_typer(playbook_app, name="playbook")
