"""``redisops host-facts``, ``service`` and ``config-file``: work on a node's machine (SSH).

Nodes with ``ssh:`` settings in the inventory, or any ``--ssh-*`` option, are reached over
SSH (docs/ssh.md); other nodes on this machine are worked on locally. A refused SSH host
key exits 12.
"""

from __future__ import annotations

from typing import Annotated

import typer

from redisops.cli.common import Connection, FormatOpt, with_connection
from redisops.cli.mutate import AuditOpt, DryRunOpt, ForceOpt, YesOpt
from redisops.formats import Format

NodesArg = Annotated[
    list[str] | None,
    typer.Argument(metavar="NODE...", help="Nodes (HOST:PORT); or use --cluster NAME."),
]


@with_connection
def host_facts(conn: Connection, nodes: NodesArg = None, fmt: FormatOpt = Format.table) -> None:
    """Facts about each node's machine that break forks and restarts.

    Memory and swap, vm.overcommit_memory, transparent huge pages, free disk in the Redis
    dir, the redis process's open-files limit, net.core.somaxconn against tcp-backlog, CPUs,
    kernel, the redis-server binary's version and the service state. Exit 0, or 3 when a
    host could not be reached (its row says why), 12 when a host key is refused.
    """
    from redisops.errors import ExitCode
    from redisops.ops.hostfacts import host_facts as gather
    from redisops.output import render_host_facts, write

    session = conn.session(nodes or [])
    with session:
        found = gather(session, [s.address for s in session.seeds])
    facts = list(found.values())
    write(render_host_facts(facts, fmt))
    if any(f.host == "unreachable" for f in facts):
        raise typer.Exit(int(ExitCode.UNREACHABLE))


@with_connection
def service(
    conn: Connection,
    node: Annotated[str, typer.Argument(metavar="NODE", help="The node (HOST:PORT).")],
    verb: Annotated[str, typer.Argument(metavar="start|stop|restart|status", help="What to do.")],
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            help="Seconds to wait for the node to answer (or stop) afterwards.",
            min=0.1,
        ),
    ] = 60.0,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    force: ForceOpt = False,
    audit_log: AuditOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Start, stop or restart a node's redis-server service, then check it.

    Runs the node's service command (inventory ssh: service, default
    `systemctl {verb} redis-server`) on its machine, then checks: PING answers after
    start/restart (a new run_id after restart), nothing answers after stop. Stopping or
    restarting a master with replicas is refused without --force (switchover first).
    `status` only reports. Exit codes as for every mutating command; `status` exits 0 when
    the service runs, 4 when it does not.
    """
    from redisops.cli.mutate import run_operation
    from redisops.errors import BadInput, ExitCode
    from redisops.model import parse_target
    from redisops.ops import api
    from redisops.ops.service import VERBS, service_status

    if verb not in VERBS:
        raise BadInput(
            f"unknown service action {verb!r}", hint="use start, stop, restart or status"
        )
    with conn.session([node]) as session:
        if verb == "status":
            from redisops.output import render_service_status, write

            st = service_status(session, parse_target(node).address)
            write(render_service_status(st, fmt))
            raise typer.Exit(int(ExitCode.OK if st.state == "running" else ExitCode.PROBLEMS))
        run_operation(
            api.service(session, api.ServiceRequest(node, verb, timeout)),
            session,
            fmt=fmt,
            dry_run=dry_run,
            yes=yes,
            force=force,
            audit_path=audit_log,
        )


@with_connection
def config_file(
    conn: Connection,
    node: Annotated[str, typer.Argument(metavar="NODE", help="The node (HOST:PORT).")],
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="'DIRECTIVE ARGS'",
            help="Set a directive, quoted as in redis.conf (repeat for save, "
            "client-output-buffer-limit...).",
        ),
    ] = None,
    unset: Annotated[
        list[str] | None,
        typer.Option("--unset", metavar="DIRECTIVE", help="Remove a directive."),
    ] = None,
    no_backup: Annotated[
        bool, typer.Option("--no-backup", help="Do not keep a timestamped copy of the old file.")
    ] = False,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    audit_log: AuditOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Show a node's redis.conf, or edit it atomically (diff, confirm, backup, check).

    The file is the inventory's config_file for the node, else INFO server config_file. It
    is read with Redis's rules (quoting, include, repeated lines) on the node's machine
    (SSH, or locally). Edits change the file only, like CONFIG REWRITE does: written to a
    temporary file in the same directory, fsynced, owner and mode kept, the old file kept
    as FILE.redisops-TIMESTAMP.bak, renamed into place, then read back. Secrets are shown
    as *** and cannot be set here.
    """
    from redisops.cli.mutate import run_operation
    from redisops.model import parse_target
    from redisops.ops.confedit import plan_config_edit, show_config

    address = parse_target(node).address
    session = conn.session([node])
    with session:
        if not set_ and not unset:
            from redisops.output import render_config_file, write

            write(render_config_file(show_config(session, address), fmt))
            return
        plan = plan_config_edit(session, address, set_ or [], unset or [], backup=not no_backup)
        run_operation(
            plan, session, fmt=fmt, dry_run=dry_run, yes=yes, force=False, audit_path=audit_log
        )


def register(app: typer.Typer) -> None:
    app.command("host-facts")(host_facts)
    app.command("service")(service)
    app.command("config-file")(config_file)
