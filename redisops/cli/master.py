"""``redisops switchover``, ``failover`` and ``fence``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from redisops.cli.common import Connection, FormatOpt, with_connection
from redisops.cli.mutate import AuditOpt, DryRunOpt, ForceOpt, PersistOpt, TimeoutOpt, YesOpt
from redisops.formats import Format

if TYPE_CHECKING:  # pragma: no cover
    from redisops.model import Address, Plan, Topology
    from redisops.session import Session


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
    from redisops.cli.mutate import run_operation
    from redisops.errors import BadInput
    from redisops.model import parse_target
    from redisops.ops.switchover import plan_switchover

    if method not in ("redisops", "native"):
        raise BadInput(f"--method {method!r} is not known", hint="use redisops or native")
    tspec = parse_target(to)
    session = conn.session([to, *([master] if master else []), *(seeds or [])])
    with session:

        def make_plan() -> Plan:
            topo = session.discover()
            topo, maddr = _current_master(session, topo, tspec.address, master)
            return plan_switchover(
                topo,
                maddr,
                tspec.address,
                session,
                force=force,
                via_sentinel=via_sentinel,
                method=method,
                max_lag_bytes=max_lag_bytes,
                pause_timeout_ms=timeout_ms,
                persist=persist,
            )

        run_operation(
            make_plan(),
            session,
            fmt=fmt,
            dry_run=dry_run,
            yes=yes,
            force=force,
            audit_path=audit_log,
            replan=make_plan,
        )


def _current_master(
    session: Session, topo: Topology, target: Address, master: str | None
) -> tuple[Topology, Address]:
    """The master to switch away from: ``--master``, else the one Sentinel names, else the
    top of the target's tree."""
    from redisops.errors import BadInput
    from redisops.model import parse_target
    from redisops.ops.sentinel import discover_master

    if master:
        return topo, parse_target(master).address
    sentinel_master_addr = discover_master(session) if session.sentinels else None
    if sentinel_master_addr is not None:
        maddr = topo.canonical(sentinel_master_addr)
        if topo.get(maddr) is None:
            topo = session.discover([maddr])
            maddr = topo.canonical(sentinel_master_addr)
        return topo, maddr
    tnode = topo.get(target)
    top = topo.root(tnode) if tnode is not None else None
    if top is None:
        raise BadInput(f"cannot tell the current master of {target}", hint="name it with --master")
    return topo, top.address


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
    audit_log: AuditOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Unplanned: the master is dead. Confirm it, promote the best replica (REPLICAOF NO ONE),
    repoint the others, and record the old master as fenced."""
    from redisops.cli.mutate import run_operation
    from redisops.errors import BadInput
    from redisops.model import parse_target
    from redisops.ops.failover import confirm_down, known_members, plan_failover

    if (to is None) == (not auto):
        raise BadInput(
            "choose the new master with --to REPLICA, or let redisops choose with --auto"
        )
    dead = parse_target(master).address
    if not seeds and conn.cluster is None:
        # the dead master cannot name its replicas: use the ones it was last seen with
        from redisops.output import note
        from redisops.state import group_of

        record = group_of(dead)
        if record is not None:
            seeds = [a for a in record.members() if a != str(dead)]
            note(known_note(record, str(dead)))
    session = conn.session([*(seeds or []), master])
    with session:
        down = confirm_down(session, dead, probes=3, interval=0.3)

        def make_plan() -> Plan:
            topo = session.discover()
            known = known_members(session, topo, dead)
            unread = [a for a in known.addresses if topo.get(a) is None]
            if unread:
                topo = session.discover(unread)
            return plan_failover(
                topo,
                dead,
                session,
                to=parse_target(to).address if to else None,
                auto=auto,
                force=force,
                max_disconnect=max_disconnect,
                dead_confirmed=down,
                persist=persist,
                accept_data_loss=accept_data_loss,
                known=known,
            )

        run_operation(
            make_plan(),
            session,
            fmt=fmt,
            dry_run=dry_run,
            yes=yes,
            force=force,
            audit_path=audit_log,
            replan=make_plan,
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
    timeout: TimeoutOpt = 300.0,
    audit_log: AuditOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Make a returning old master a replica of the new one (--persist keeps it across restarts)."""
    from redisops.cli.mutate import run_operation
    from redisops.model import parse_target
    from redisops.ops.fence import plan_fence

    ospec, nspec = parse_target(old), parse_target(to)
    session = conn.session([old, to])
    with session:

        def make_plan() -> Plan:
            return plan_fence(
                session.discover(),
                ospec.address,
                nspec.address,
                session,
                persist=persist,
                timeout=timeout,
            )

        run_operation(
            make_plan(),
            session,
            fmt=fmt,
            dry_run=dry_run,
            yes=yes,
            force=force,
            audit_path=audit_log,
            replan=make_plan,
        )


def known_note(known: Any, dead: str) -> str:
    """One line saying which last-known replicas of ``dead`` are used, and how old that is."""
    import time

    now = time.time()
    reps = known.replicas_of(dead)
    listed = (
        ", ".join(f"{a} (seen {now - (known.seen_at(a) or now):.0f}s ago)" for a in reps) or "none"
    )
    return (
        f"no seeds given: using the last-known topology of {known.group} (recorded "
        f"{now - known.recorded_at:.0f}s ago by {known.source}); replicas of {dead} then: {listed}; "
        f"probing them now"
    )


def register(app: typer.Typer) -> None:
    app.command("switchover")(switchover)
    app.command("failover")(failover)
    app.command("fence")(fence)
