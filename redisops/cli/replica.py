"""``redisops attach`` and ``redisops detach``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from redisops.cli.common import Connection, FormatOpt, with_connection
from redisops.cli.mutate import AuditOpt, DryRunOpt, ForceOpt, PersistOpt, TimeoutOpt, YesOpt
from redisops.formats import Format

if TYPE_CHECKING:  # pragma: no cover
    from redisops.model import Plan, Topology

BandwidthOpt = Annotated[
    str,
    typer.Option(
        "--bandwidth",
        metavar="RATE",
        help="Link speed for the prediction: 100MB, 1gbit, 512KB/s (a bare number is MB/s).",
    ),
]
WriteRateOpt = Annotated[
    str | None,
    typer.Option(
        "--write-rate",
        metavar="RATE",
        help="Master write rate for the prediction (default: measured over --sample seconds).",
    ),
]
SampleOpt = Annotated[
    float,
    typer.Option(
        "--sample",
        metavar="SECONDS",
        help="Seconds to measure the write rate (0: assume idle).",
        min=0.0,
    ),
]


@with_connection
def attach(
    conn: Connection,
    replica: Annotated[
        str, typer.Argument(metavar="REPLICA", help="The node to attach (HOST:PORT).")
    ],
    to: Annotated[str, typer.Option("--to", metavar="MASTER", help="The node to replicate from.")],
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    force: ForceOpt = False,
    persist: PersistOpt = False,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Return right after REPLICAOF.")
    ] = False,
    timeout: TimeoutOpt = 300.0,
    bandwidth: BandwidthOpt = "100MB",
    write_rate: WriteRateOpt = None,
    sample: SampleOpt = 1.0,
    audit_log: AuditOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Make REPLICA a replica of MASTER: preflight, plan, predicted resync, act, verify.

    Example: redisops attach 10.0.0.2:6380 --to 10.0.0.1:6379 --dry-run
    """
    from redisops.cli.mutate import run_operation
    from redisops.model import parse_target
    from redisops.ops.attach import plan_attach
    from redisops.ops.common import Options, measure_write_rate
    from redisops.units import parse_rate

    rspec, mspec = parse_target(replica), parse_target(to)
    bw = parse_rate(bandwidth)
    wr = parse_rate(write_rate, option="--write-rate") if write_rate else None
    session = conn.session([replica, to])
    with session:
        # a replica of REPLICA that is reconnecting is not listed by it: the last-known
        # topology names it (probed again if it answers, predicted from what was seen if not)
        topo = session.with_last_known(session.discover())
        master_node = topo.get(mspec.address)
        rate = wr
        if rate is None:
            rate = 0.0
            if master_node is not None and master_node.reachable:
                top = topo.root(master_node) or master_node
                rate = measure_write_rate(session, top.address, sample)
        opts = Options(
            dry_run=dry_run,
            yes=yes,
            force=force,
            persist=persist,
            bandwidth=bw,
            write_rate=rate,
            sample_seconds=sample,
            timeout=timeout,
            wait=not no_wait,
        )
        # what the replica must present to the master: the master's own credentials (a
        # user named in its redis://user@ URL counts, not only --user)
        creds = session.options_for(mspec.address).credentials

        def make_plan(topo: Topology) -> Plan:
            known = known_followers(topo, rspec.address)
            return plan_attach(
                topo, rspec.address, mspec.address, opts, creds, session, rate, known
            )

        run_operation(
            make_plan(topo),
            session,
            fmt=fmt,
            dry_run=dry_run,
            yes=yes,
            force=force,
            audit_path=audit_log,
            replan=lambda: make_plan(session.with_last_known(session.discover())),
        )


@with_connection
def detach(
    conn: Connection,
    replica: Annotated[
        str, typer.Argument(metavar="REPLICA", help="The replica to turn into a master.")
    ],
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    force: ForceOpt = False,
    persist: PersistOpt = False,
    audit_log: AuditOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """REPLICAOF NO ONE on REPLICA: it keeps its data and becomes a writable master."""
    from redisops.cli.mutate import run_operation
    from redisops.model import parse_target
    from redisops.ops.common import Options
    from redisops.ops.detach import plan_detach

    rspec = parse_target(replica)
    session = conn.session([replica])
    with session:
        opts = Options(dry_run=dry_run, yes=yes, force=force, persist=persist)

        def make_plan() -> Plan:
            return plan_detach(session.discover(), rspec.address, opts, session)

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


def known_followers(topo: Any, replica: Any) -> list[tuple[Any, float]]:
    """Nodes last seen replicating from ``replica`` that do not answer now, each as last
    seen with the age of that knowledge (see :mod:`redisops.state`)."""
    import time

    from redisops.model import Address
    from redisops.state import group_of

    known = group_of(replica)
    if known is None:
        return []
    now = time.time()
    out = []
    for addr in known.replicas_of(str(replica)):
        node = topo.get(Address.parse(addr))
        if node is not None and node.reachable:
            continue  # it answers: the topology has it as it is now
        last = known.node(addr)
        if last is not None:
            out.append((last, now - last.read_at))
    return out


def register(app: typer.Typer) -> None:
    app.command("attach")(attach)
    app.command("detach")(detach)
