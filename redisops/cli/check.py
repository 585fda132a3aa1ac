"""``redisops check``: the health checks, for cron, Nagios/Icinga and Prometheus.

Exit codes are the Nagios ones: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. UNKNOWN means the
check itself could not run (bad arguments, an unreadable state file, a bug); an
unreachable Redis is CRITICAL.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand

from redisops.cli.common import Connection, with_connection
from redisops.formats import CheckFormat

if TYPE_CHECKING:  # pragma: no cover
    from redisops.checks.result import Report

UNKNOWN = 3


def _format_in(args: list[str]) -> str:
    """The ``--format`` value in raw arguments (for errors before parsing finished)."""
    for i, arg in enumerate(args):
        if arg in ("--format", "-o") and i + 1 < len(args):
            return args[i + 1].lower()
        if arg.startswith("--format="):
            return arg.split("=", 1)[1].lower()
    return "table"


def _unknown(message: str, fmt: str) -> None:
    """Report the check's own failure in ``fmt`` and exit 3 (UNKNOWN)."""
    from redisops.output import error_line, to_json, write
    from redisops.output_checks import unknown_nagios

    if fmt == "nagios":
        write(unknown_nagios(message))
    elif fmt == "json":
        write(
            to_json(
                {
                    "check": "redisops",
                    "status": "UNKNOWN",
                    "exit_code": UNKNOWN,
                    "summary": message,
                    "results": [],
                }
            )
        )
        error_line(message)
    else:
        error_line(message)
    raise typer.Exit(UNKNOWN)


class NagiosCommand(TyperCommand):
    """A command whose usage errors exit 3 (Nagios UNKNOWN), not 2."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        try:
            return super().make_context(info_name, list(args), parent, **extra)
        except Exception as exc:
            if hasattr(exc, "format_message") and hasattr(exc, "exit_code") and exc.exit_code == 2:
                _unknown(
                    f"bad argument: {exc.format_message()} (see 'redisops check --help')",
                    _format_in(list(args)),
                )
            raise


WarnOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--warn",
        metavar="ID=RANGE",
        help="Warning range of a check (Nagios syntax: 10, 10:, ~:10, 10:20, @10:20). Repeatable.",
    ),
]
CritOpt = Annotated[
    list[str] | None,
    typer.Option("--crit", metavar="ID=RANGE", help="Critical range of a check. Repeatable."),
]


@with_connection
def check(
    conn: Connection,
    seeds: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[SEED...]", help="Any node(s) of the replication group; or use --cluster."
        ),
    ] = None,
    fmt: Annotated[
        CheckFormat,
        typer.Option(
            "--format",
            "-o",
            help="table, json, nagios (plugin output) or prometheus (text format).",
            case_sensitive=False,
        ),
    ] = CheckFormat.table,
    textfile: Annotated[
        Path | None,
        typer.Option(
            "--textfile",
            metavar="PATH",
            help="With --format prometheus: write this *.prom file atomically (node_exporter textfile collector).",
            dir_okay=False,
        ),
    ] = None,
    warn: WarnOpt = None,
    crit: CritOpt = None,
    expect_replicas: Annotated[
        int | None,
        typer.Option(
            "--expect-replicas",
            metavar="N",
            help="Replicas the group must have (default: the inventory, else the last-known topology).",
            min=0,
        ),
    ] = None,
    state_file: Annotated[
        Path | None,
        typer.Option(
            "--state-file",
            metavar="PATH",
            help="Counter baselines between runs (default $XDG_STATE_HOME/redisops/check/<cluster>.json).",
            dir_okay=False,
        ),
    ] = None,
    interval: Annotated[
        float,
        typer.Option(
            "--interval",
            metavar="SECONDS",
            help="How often cron runs the check; a baseline older than 3x this is not used.",
            min=1.0,
        ),
    ] = 60.0,
    deadline: Annotated[
        float,
        typer.Option(
            "--deadline",
            metavar="SECONDS",
            help="Per-node probe deadline: a node silent for this long is critical.",
            min=0.05,
        ),
    ] = 2.0,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", metavar="ID", help="Run only this check (repeatable)."),
    ] = None,
    host_facts: Annotated[
        bool,
        typer.Option(
            "--host-facts",
            help="Read vm.overcommit_memory and THP on each node's host (on by default when "
            "the inventory configures SSH; nodes on this machine are read directly).",
        ),
    ] = False,
    sample: Annotated[
        float,
        typer.Option(
            "--sample",
            metavar="SECONDS",
            help="When the state file has no usable baseline for a node with a backlog (a "
            "first run), probe again after SECONDS so backlog coverage has a write rate.",
            min=0,
            max=60,
        ),
    ] = 0.0,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Table: list the OK checks too.")
    ] = False,
    list_checks: Annotated[
        bool, typer.Option("--list", help="List the check ids and exit.")
    ] = False,
) -> None:
    """Health checks for cron and monitoring, with Nagios exit codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).

    Example (Nagios): redisops check --cluster cache-prod --format nagios
    Example (node_exporter): redisops check -c cache-prod -o prometheus --textfile /var/lib/node_exporter/redisops-cache-prod.prom
    """
    import os

    try:
        _check(
            conn,
            seeds or [],
            fmt,
            textfile,
            warn or [],
            crit or [],
            expect_replicas,
            state_file,
            interval,
            deadline,
            only or [],
            verbose,
            list_checks,
            host_facts,
            sample,
        )
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # a failure of the check itself is UNKNOWN, never CRITICAL
        from redisops.errors import RedisopsError

        if os.environ.get("REDISOPS_DEBUG", "") not in ("", "0"):
            import traceback

            traceback.print_exc()
        text = (
            str(exc)
            if isinstance(exc, RedisopsError)
            else f"unexpected {type(exc).__name__}: {exc}"
        )
        if fmt is CheckFormat.prometheus and textfile is not None:
            _write_failed_textfile(textfile, conn.cluster or ",".join(seeds or []) or "adhoc")
        _unknown(text, fmt.value)


def _check(
    conn: Connection,
    seeds: list[str],
    fmt: CheckFormat,
    textfile: Path | None,
    warn: list[str],
    crit: list[str],
    expect_replicas: int | None,
    state_file: Path | None,
    interval: float,
    deadline: float,
    only: list[str],
    verbose: bool,
    list_checks: bool,
    want_host_facts: bool = False,
    sample: float = 0.0,
) -> None:
    from redisops.checks.health import CATALOGUE
    from redisops.errors import BadInput
    from redisops.output import write

    if list_checks:
        from redisops.output import table

        write(table(["ID", "LOOKS AT"], [[cid, what] for cid, (_, what) in CATALOGUE.items()]))
        raise typer.Exit(0)
    unknown_ids = [cid for cid in only if cid not in CATALOGUE]
    if unknown_ids:
        raise BadInput(
            f"--only {unknown_ids[0]!r}: no such check", hint="see 'redisops check --list'"
        )
    if textfile is not None and fmt is not CheckFormat.prometheus:
        raise BadInput("--textfile goes with --format prometheus")
    if textfile is not None and not textfile.name.endswith(".prom"):
        raise BadInput(
            f"--textfile {textfile}: node_exporter reads only *.prom files",
            hint="name it e.g. redisops-CLUSTER.prom",
        )
    if textfile is not None and not textfile.parent.is_dir():
        raise BadInput(
            f"--textfile {textfile}: the directory {textfile.parent} does not exist",
            hint="give node_exporter's --collector.textfile.directory",
        )
    from redisops.retry import NO_RETRY

    started = time.time()
    t0 = time.perf_counter()
    session = conn.session(
        seeds,
        retry=NO_RETRY,
        require_seeds=not conn.sentinel,
        purpose=None,  # recorded below, after the expectations were read from it
        probe_deadline=deadline,
        connect_timeout=min(conn.connect_timeout, deadline),
        socket_timeout=deadline,
    )
    from redisops.ops.check import CheckRequest, run_check

    with session:
        report = run_check(
            session,
            CheckRequest(
                warn=tuple(warn),
                crit=tuple(crit),
                expect_replicas=expect_replicas,
                state_file=state_file,
                interval=interval,
                only=tuple(only),
                host_facts=want_host_facts,
                sample=sample,
            ),
            now=started,
        )
    duration = time.perf_counter() - t0
    _emit(report, fmt, textfile, verbose, duration)
    raise typer.Exit(int(report.status))


def run_samples(report: Report, duration: float, success: bool) -> list[Any]:
    from redisops.checks.result import Sample, Status

    c = {"cluster": report.cluster}
    return [
        Sample("redisops_status", c, float(int(report.status))),
        Sample("redisops_last_run_timestamp_seconds", c, round(time.time(), 3)),
        Sample(
            "redisops_last_run_success",
            c,
            1.0 if success and report.status is not Status.UNKNOWN else 0.0,
        ),
        Sample("redisops_last_run_duration_seconds", c, round(duration, 4)),
    ]


def _emit(
    report: Report, fmt: CheckFormat, textfile: Path | None, verbose: bool, duration: float
) -> None:
    from redisops.output import write
    from redisops.output_checks import (
        render_check_json,
        render_check_table,
        render_nagios,
        render_prometheus,
    )

    if fmt is CheckFormat.nagios:
        write(render_nagios(report))
    elif fmt is CheckFormat.json:
        write(render_check_json(report))
    elif fmt is CheckFormat.prometheus:
        text = render_prometheus([*report.samples, *run_samples(report, duration, True)])
        if textfile is None:
            sys.stdout.write(text)
        else:
            from redisops.state import write_atomic

            write_atomic(textfile, text)
    else:
        write(render_check_table(report, verbose))


def _write_failed_textfile(textfile: Path, cluster: str) -> None:
    """The run failed: say so in the textfile (``redisops_last_run_success 0``), best effort."""
    from redisops.checks.result import Report
    from redisops.output_checks import render_prometheus
    from redisops.state import StateError, write_atomic

    if not textfile.name.endswith(".prom") or not textfile.parent.is_dir():
        return
    try:
        write_atomic(textfile, render_prometheus(run_samples(Report(cluster, ()), 0.0, False)))
    except StateError:
        pass


def register(app: typer.Typer) -> None:
    app.command("check", cls=NagiosCommand)(check)
