"""``redisops attach`` and ``redisops detach``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from redisops.cli.common import Connection, FormatOpt, with_connection
from redisops.cli.mutate import AuditOpt, DryRunOpt, ForceOpt, PersistOpt, TimeoutOpt, YesOpt
from redisops.formats import Format

if TYPE_CHECKING:  # pragma: no cover
    pass

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
    from redisops.cli.mutate import operate
    from redisops.ops import api
    from redisops.units import parse_rate

    req = api.AttachRequest(
        replica,
        to,
        persist=persist,
        force=force,
        wait=not no_wait,
        timeout=timeout,
        bandwidth=parse_rate(bandwidth),
        write_rate=parse_rate(write_rate, option="--write-rate") if write_rate else None,
        sample=sample,
    )
    operate(
        conn, req, api.attach, fmt=fmt, dry_run=dry_run, yes=yes, force=force, audit_path=audit_log
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
    from redisops.cli.mutate import operate
    from redisops.ops import api

    req = api.DetachRequest(replica, persist=persist, force=force)
    operate(
        conn, req, api.detach, fmt=fmt, dry_run=dry_run, yes=yes, force=force, audit_path=audit_log
    )


def register(app: typer.Typer) -> None:
    app.command("attach")(attach)
    app.command("detach")(detach)
