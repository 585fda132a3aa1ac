"""``redisops advise``: replication sizing with the formulas and inputs shown."""

from __future__ import annotations

from typing import Annotated

import typer

from redisops.cli.common import Connection, FormatOpt, with_connection
from redisops.formats import Format


@with_connection
def advise(
    conn: Connection,
    seeds: Annotated[
        list[str] | None,
        typer.Argument(metavar="SEED...", help="Any node(s) of the replication group."),
    ] = None,
    sample: Annotated[
        str,
        typer.Option(
            "--sample", metavar="DURATION", help="How long to sample the master's write rate."
        ),
    ] = "5s",
    tolerate: Annotated[
        str,
        typer.Option(
            "--tolerate",
            metavar="DURATION",
            help="Longest disconnect a replica must survive with a partial resync.",
        ),
    ] = "60s",
    bandwidth: Annotated[
        str,
        typer.Option(
            "--bandwidth",
            metavar="RATE",
            help="Link speed master -> replicas: 100MB, 1gbit (a bare number is MB/s).",
        ),
    ] = "100MB",
    write_rate: Annotated[
        str | None,
        typer.Option(
            "--write-rate", metavar="RATE", help="Use this write rate instead of sampling."
        ),
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Size repl-backlog-size, the replica output buffer, repl-timeout and maxmemory from
    the sampled write rate; predict replication storms and full-resync loops.

    Every row shows its formula and inputs. Exit 0 (advice is advice; it changes nothing).

    Example: redisops advise 10.0.0.1:6379 --sample 10s --tolerate 120s --bandwidth 1gbit
    """
    from redisops.ops.advise import advise_group
    from redisops.output import render_advice, write
    from redisops.units import parse_duration, parse_rate

    sample_s = parse_duration(sample, option="--sample")
    tolerate_s = parse_duration(tolerate, option="--tolerate")
    bw = parse_rate(bandwidth)
    wr = parse_rate(write_rate, option="--write-rate") if write_rate else None
    session = conn.session(seeds or [])
    with session:
        topo = session.discover()
        report, mean = advise_group(
            session, topo, sample=sample_s, tolerate=tolerate_s, bandwidth=bw, write_rate=wr
        )
    write(render_advice(report, fmt, mean))


def register(app: typer.Typer) -> None:
    app.command("advise")(advise)
