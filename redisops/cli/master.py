"""``redisops switchover``, ``failover`` and ``fence``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from redisops.cli.common import Connection, FormatOpt, with_connection
from redisops.cli.mutate import (
    AuditOpt,
    DryRunOpt,
    FenceOpt,
    ForceOpt,
    PersistOpt,
    TimeoutOpt,
    YesOpt,
)
from redisops.formats import Format

if TYPE_CHECKING:  # pragma: no cover
    pass


@with_connection
def switchover(
    conn: Connection,
    to: Annotated[str, typer.Option("--to", metavar="REPLICA", help="The replica to promote.")],
    seeds: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[SEED...]",
            help="More nodes of the cluster (e.g. the real address of a replica that "
            "announces another one); or use --cluster.",
        ),
    ] = None,
    master: Annotated[
        str | None,
        typer.Option(
            "--master",
            metavar="MASTER",
            help="The current master (default: the target's master, or the inventory cluster's).",
        ),
    ] = None,
    method: Annotated[
        str,
        typer.Option(
            "--method",
            metavar="METHOD",
            help="redisops (pause, catch up, promote, demote: "
            "the fast default) or native (Redis's FAILOVER command).",
        ),
    ] = "redisops",
    via_sentinel: Annotated[
        bool,
        typer.Option("--via-sentinel", help="Let Sentinel do it (SENTINEL FAILOVER), then verify."),
    ] = False,
    max_lag_bytes: Annotated[
        int,
        typer.Option(
            "--max-lag-bytes", metavar="BYTES", help="Refuse if the target lags more.", min=0
        ),
    ] = 1024 * 1024,
    timeout_ms: Annotated[
        int,
        typer.Option(
            "--timeout-ms",
            metavar="MS",
            help="Upper bound of the write pause "
            "(CLIENT PAUSE); the target must catch up within 80% of it.",
            min=10,
        ),
    ] = 5000,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    force: ForceOpt = False,
    persist: PersistOpt = False,
    audit_log: AuditOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Planned change of master with no lost write: the master is alive.

    Pauses writes on the master only until the target has its exact offset, promotes the
    target, demotes the old master under it, then repoints every other replica (chained ones
    too) directly to it. Partial resyncs only.
    """
    from redisops.cli.mutate import operate
    from redisops.ops import api

    req = api.SwitchoverRequest(
        to,
        master,
        tuple(seeds or ()),
        method=method,
        via_sentinel=via_sentinel,
        max_lag_bytes=max_lag_bytes,
        pause_timeout_ms=timeout_ms,
        persist=persist,
        force=force,
    )
    operate(
        conn,
        req,
        api.switchover,
        fmt=fmt,
        dry_run=dry_run,
        yes=yes,
        force=force,
        audit_path=audit_log,
    )


@with_connection
def failover(
    conn: Connection,
    master: Annotated[
        str, typer.Option("--master", metavar="DEAD", help="The master that is gone.")
    ],
    seeds: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[SEED...]",
            help="Replicas (or any nodes) to find the candidates from; or use --cluster.",
        ),
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", metavar="REPLICA", help="Promote this replica.")
    ] = None,
    auto: Annotated[bool, typer.Option("--auto", help="Choose with Sentinel's rules.")] = False,
    accept_data_loss: Annotated[
        bool,
        typer.Option(
            "--accept-data-loss",
            help="Promote even when no loss-free path exists (the plan says what is lost).",
        ),
    ] = False,
    max_disconnect: Annotated[
        int,
        typer.Option(
            "--max-disconnect",
            metavar="SECONDS",
            help="Skip replicas whose link went down this many seconds before the freshest one's.",
            min=0,
        ),
    ] = 60,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    force: ForceOpt = False,
    persist: PersistOpt = False,
    fence_mode: FenceOpt = None,
    audit_log: AuditOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Unplanned: the master is dead. Confirm it, promote the best replica (REPLICAOF NO ONE),
    repoint the others, and record the old master as fenced (--fence stop|config also fences
    it on its machine over SSH)."""
    from redisops.cli.mutate import run_operation
    from redisops.errors import BadInput
    from redisops.ops import api
    from redisops.ops.fence import check_fence_mode

    check_fence_mode(fence_mode)

    if to is not None and auto:
        raise BadInput(
            "--to and --auto: not both",
            hint="name the new master with --to REPLICA, or let redisops choose with --auto",
        )
    if to is None and not auto:
        raise BadInput(
            "choose the new master with --to REPLICA, or let redisops choose with --auto"
        )
    # the dead master cannot name its replicas: without seeds, the ones it was last seen with
    found, notes = api.failover_seeds(master, seeds or [], conn.cluster)
    req = api.FailoverRequest(
        master,
        to,
        tuple(found),
        max_disconnect=max_disconnect,
        accept_data_loss=accept_data_loss,
        persist=persist,
        force=force,
        fence_mode=fence_mode,
    )
    with conn.session(req.seeds()) as session:
        op = api.failover(session, req)
        op.notes[:0] = notes
        run_operation(
            op, session, fmt=fmt, dry_run=dry_run, yes=yes, force=force, audit_path=audit_log
        )


@with_connection
def fence(
    conn: Connection,
    old: Annotated[str, typer.Argument(metavar="OLD", help="The old master that came back.")],
    to: Annotated[str, typer.Option("--to", metavar="NEW", help="The current master.")],
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    force: ForceOpt = False,
    persist: PersistOpt = False,
    fence_mode: FenceOpt = None,
    timeout: TimeoutOpt = 300.0,
    audit_log: AuditOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Make a returning old master a replica of the new one (--persist keeps it across restarts).

    With --fence config its config file also gets replicaof NEW (over SSH); with
    --fence stop its service is stopped instead, and it stays recorded as fenced.
    """
    from redisops.cli.mutate import operate
    from redisops.ops import api
    from redisops.ops.fence import check_fence_mode

    check_fence_mode(fence_mode)

    req = api.FenceRequest(
        old, to, persist=persist, force=force, timeout=timeout, fence_mode=fence_mode
    )
    operate(
        conn, req, api.fence, fmt=fmt, dry_run=dry_run, yes=yes, force=force, audit_path=audit_log
    )


def register(app: typer.Typer) -> None:
    app.command("switchover")(switchover)
    app.command("failover")(failover)
    app.command("fence")(fence)
