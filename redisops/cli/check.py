"""``redisops check``: the health checks, for cron, Nagios/Icinga and Prometheus.

Exit codes are the Nagios ones: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. UNKNOWN means the
check itself could not run (bad arguments, an unreadable state file, a bug); an
unreachable Redis is CRITICAL.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand

from redisops.cli.common import Connection, with_connection
from redisops.formats import CheckFormat

if TYPE_CHECKING:  # pragma: no cover
    from redisops.checks.health import BackupLookup
    from redisops.checks.result import Report
    from redisops.hostfacts import HostFacts
    from redisops.session import Session

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
    from redisops.checks.ranges import Thresholds
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
    cluster_cfg = session.cluster
    settings = cluster_cfg.checks if cluster_cfg is not None else None
    thresholds = Thresholds.parse(
        [*(f"{k}={v}" for k, v in (settings.warn if settings else {}).items()), *warn],
        [*(f"{k}={v}" for k, v in (settings.crit if settings else {}).items()), *crit],
        known=CATALOGUE,
    )
    if expect_replicas is None and settings is not None:
        expect_replicas = settings.expect_replicas
    earlier: dict[str, dict[str, Any]] = {}
    with session:
        topo = session.with_last_known(session.discover())
        if sample > 0:
            path = state_file or _state_path(session, topo)
            topo, earlier, started = sample_again(session, topo, sample, path, interval, started)
        ssh = any(session.ssh_settings(n.address) is not None for n in topo.nodes)
        facts = read_host_facts(session, topo) if (want_host_facts or ssh) else None
    report = evaluate(
        session,
        topo,
        thresholds,
        expect_replicas,
        state_file,
        interval,
        only,
        started,
        facts,
        earlier,
    )
    duration = time.perf_counter() - t0
    _emit(report, fmt, textfile, verbose, duration)
    raise typer.Exit(int(report.status))


def evaluate(
    session: Session,
    topo: Any,
    thresholds: Any,
    expect_replicas: int | None,
    state_file: Path | None,
    interval: float,
    only: list[str],
    now: float,
    host_facts: Mapping[str, HostFacts | None] | None = None,
    earlier: Mapping[str, Mapping[str, Any]] | None = None,
) -> Report:
    """Run the catalogue over ``topo`` with the state file, markers and last-known topology,
    then record the topology and the new state. ``earlier``: samples taken this run (see
    :func:`sample_again`), used instead of the state file's for those nodes."""
    from redisops import state
    from redisops.checks.health import CheckInput, run_checks

    cluster_name, group, cluster = _names(session, topo)
    known = state.known_group(group) if group else None
    masters = {str(n.address) for n in topo.masters}
    known_replicas = {
        a: t
        for a, t in (known.replicas() if known else {}).items()
        if a not in masters and now - t <= state.KNOWN_MAX_AGE
    }
    markers = state.load_markers(now)
    backup_lookup = newest_verified_backup_source()
    backup = backup_lookup(cluster) if backup_lookup is not None else None
    inventory = (
        tuple(s.address for s in session.cluster.nodes) if session.cluster is not None else ()
    )
    path = state_file or state.check_state_path(cluster)
    holder: dict[str, Report] = {}

    def change(data: dict[str, Any]) -> dict[str, Any]:
        inp = CheckInput(
            cluster=cluster,
            topology=topo,
            now=now,
            thresholds=thresholds,
            inventory=inventory,
            expect_replicas=expect_replicas,
            known_replicas=known_replicas,
            previous={**data.get("nodes", {}), **(earlier or {})},
            markers=markers,
            consumed=frozenset(data.get("consumed", [])),
            interval=interval,
            host_facts=host_facts,
            backup=backup,
            backup_catalogue=backup_lookup is not None,
        )
        report, new = run_checks(inp, only)
        holder["report"] = report
        return {"version": 1, "cluster": cluster, **new}

    state.update_json(path, change)
    state.record_topology(topo, cluster_name or group, "check", now)
    return holder["report"]


def _names(session: Session, topo: Any) -> tuple[str | None, str | None, str]:
    """(inventory cluster name, replication group name, the name the state file is under)."""
    from redisops import state

    cluster_name = session.cluster.name if session.cluster is not None else None
    group = state.group_name(topo, cluster_name)
    return cluster_name, group, cluster_name or group or session.cluster_name


def _state_path(session: Session, topo: Any) -> Path:
    from redisops import state

    return state.check_state_path(_names(session, topo)[2])


def sample_again(
    session: Session,
    topo: Any,
    seconds: float,
    path: Path,
    interval: float,
    first: float,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Any, dict[str, dict[str, Any]], float]:
    """checks-and-drift.md §2.1: a node with a backlog and no usable baseline in the state
    file (a first run) has no write rate; sample it now (taken at ``first``), probe the
    group again ``seconds`` later, and return (the new topology, the first samples, when the
    second probe started). Nothing to do when every node has a baseline."""
    from redisops import state
    from redisops.checks.counters import sample_of, without_rate

    previous = state.read_json(path).get("nodes", {})
    lacking = without_rate(previous, topo.nodes, first, 3 * interval)
    if not lacking:
        return topo, {}, first
    earlier = {str(n.address): sample_of(n, first) for n in lacking}
    sleep(seconds)
    again = time.time()
    return session.with_last_known(session.discover()), earlier, again


def read_host_facts(session: Session, topo: Any) -> dict[str, HostFacts | None]:
    """``{address: facts}`` for every reachable node, gathered by
    :func:`redisops.ops.hostfacts.host_facts` (this machine directly, others over SSH). A
    host that cannot be read (a refused host key included) gives facts whose ``errors`` say
    why, and the check says UNKNOWN for its nodes."""
    from redisops.errors import RedisopsError
    from redisops.hostfacts import HostFacts
    from redisops.ops.hostfacts import host_facts

    nodes = [n.address for n in topo.nodes if n.reachable]
    try:
        found = host_facts(session, nodes)
    except RedisopsError as exc:  # a host key refused: no host of the run is read
        return {str(a): HostFacts(str(a), "unreachable", errors=(f"host: {exc}",)) for a in nodes}
    return {str(a): facts for a, facts in found.items()}


def newest_verified_backup_source() -> BackupLookup | None:
    """``group -> (time, has a verified off-host copy) | None`` from the backup catalogue at
    ``$REDISOPS_BACKUP_DEST`` (docs/backup.md); None when no destination is configured (the
    check then uses ``rdb_last_save_time``)."""
    import os

    dest = os.environ.get("REDISOPS_BACKUP_DEST")
    if not dest:
        return None
    from redisops.backup.catalogue import newest_verified_backup

    def lookup(group: str) -> tuple[float, bool] | None:
        record = newest_verified_backup(dest, group)
        return None if record is None else (record.taken_at, record.offhost_copy)

    return lookup


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

    if not textfile.name.endswith(".prom"):
        return
    try:
        write_atomic(textfile, render_prometheus(run_samples(Report(cluster, ()), 0.0, False)))
    except StateError:
        pass


def register(app: typer.Typer) -> None:
    app.command("check", cls=NagiosCommand)(check)
