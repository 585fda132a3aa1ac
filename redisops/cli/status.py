"""``redisops status``: discover and show the replication topology."""

from __future__ import annotations

from typing import Annotated

import typer

from redisops.cli.common import (
    CACertOpt,
    CertOpt,
    ClusterOpt,
    ConnectTimeoutOpt,
    FormatOpt,
    InventoryOpt,
    KeyOpt,
    PasswordFileOpt,
    SentinelMasterOpt,
    SentinelOpt,
    TLSOpt,
    UserOpt,
)
from redisops.output import Format


def status(
    seeds: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="SEED...",
            help="Any node(s) of the cluster: HOST:PORT, HOST, [v6]:PORT, "
            "redis://[user@]host:port or rediss://...",
        ),
    ] = None,
    fmt: FormatOpt = Format.table,
    cluster: ClusterOpt = None,
    inventory: InventoryOpt = None,
    user: UserOpt = None,
    password_file: PasswordFileOpt = None,
    tls: TLSOpt = False,
    cacert: CACertOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
    sentinel: SentinelOpt = None,
    sentinel_master: SentinelMasterOpt = None,
    connect_timeout: ConnectTimeoutOpt = 1.5,
) -> None:
    """Show the replication topology discovered from any node(s).

    Walks up and down from every seed, lists each node's role, link, offsets, lag,
    sync state, backlog and version, and reports problems (split brain, cycles, links
    down, unreachable masters, address mismatches). Exit 0 when healthy, 4 when problems
    were found, 3 when no seed could be reached.
    """
    from redisops.errors import ExitCode
    from redisops.output import render_status, write
    from redisops.retry import RetryPolicy
    from redisops.session import build_session

    session = build_session(
        seeds=seeds or [],
        cluster=cluster,
        inventory=inventory,
        user=user,
        password_file=password_file,
        tls=tls,
        cacert=cacert,
        cert=cert,
        key=key,
        connect_timeout=connect_timeout,
        retry=RetryPolicy(attempts=2, wait_initial=0.05),
    )
    with session:
        topo = session.discover()
    write(render_status(topo, fmt))
    seeds_reached = [n for n in topo.nodes if n.reachable]
    if not seeds_reached:
        raise typer.Exit(int(ExitCode.UNREACHABLE))
    if topo.problems:
        raise typer.Exit(int(ExitCode.PROBLEMS))


def register(app: typer.Typer) -> None:
    app.command("status")(status)
