"""``redisops drift``: configuration drift across nodes and against the config files."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from redisops.cli.common import Connection, FormatOpt, with_connection
from redisops.cli.mutate import AuditOpt, DryRunOpt, YesOpt
from redisops.formats import Format

if TYPE_CHECKING:  # pragma: no cover
    from redisops.checks.drift import DriftReport


@with_connection
def drift(
    conn: Connection,
    seeds: Annotated[
        list[str] | None,
        typer.Argument(metavar="SEED...", help="Any node(s) of the replication group."),
    ] = None,
    config_file: Annotated[
        list[str] | None,
        typer.Option(
            "--config-file",
            metavar="NODE=PATH",
            help="Read NODE's config file from PATH (on its host) instead of INFO config_file.",
        ),
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option(
            "--reference",
            metavar="NODE",
            help="Node the others are compared with and --fix copies from (default: the master).",
        ),
    ] = None,
    fix: Annotated[
        bool,
        typer.Option(
            "--fix",
            help="Plan and apply: CONFIG SET drifted keys to the reference, persist, verify.",
        ),
    ] = False,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    audit_log: AuditOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Find configuration drift: must-match keys across nodes, running vs file per node.

    Exit 0 no drift, 11 drift found, 3 a node could not be read (and no drift among the
    others). With --fix: the plan's exit codes (0 fixed and verified, 5 not confirmed,
    9 drift remained after the fix...).

    Example: redisops drift 10.0.0.1:6379 --format json
    """
    from redisops.errors import ExitCode
    from redisops.ops import api
    from redisops.output import render_drift, render_plan, to_json, write

    req = api.DriftRequest(reference, _config_files(config_file or []))
    with conn.session(seeds or []) as session:
        if not fix:
            report = api.drift(session, req).report
            write(render_drift(report, fmt))
            raise typer.Exit(int(_exit_code(report)))
        from redisops.cli.mutate import run_operation

        op = api.drift_fix(session, req)
        report = op.extra["report"]
        if fmt is not Format.json:
            write(render_drift(report, fmt))
            write("")
        if op.plan.nothing_to_do:
            if fmt is Format.json:
                write(to_json({**op.plan.to_dict(), "report": report.to_dict()}))
            else:
                write(render_plan(op.plan))
            raise typer.Exit(int(ExitCode.DRIFT if report.drift else ExitCode.OK))
        run_operation(
            op, session, fmt=fmt, dry_run=dry_run, yes=yes, force=False, audit_path=audit_log
        )


def _config_files(pairs: list[str]) -> dict[str, str]:
    from redisops.errors import BadInput
    from redisops.model import parse_target

    out: dict[str, str] = {}
    for pair in pairs:
        node, sep, path = pair.partition("=")
        if not sep or not path:
            raise BadInput(
                f"--config-file {pair!r} is not NODE=PATH",
                hint="e.g. --config-file 10.0.0.2:6379=/etc/redis/redis.conf",
            )
        out[str(parse_target(node).address)] = path
    return out


def _exit_code(report: DriftReport) -> int:
    from redisops.errors import ExitCode

    if report.drift:
        return int(ExitCode.DRIFT)
    if report.unreachable:
        return int(ExitCode.UNREACHABLE)
    return int(ExitCode.OK)


def register(app: typer.Typer) -> None:
    app.command("drift")(drift)
