"""``redisops status``: discover and show the replication topology."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand

from redisops.cli.common import Connection, FormatOpt, with_connection
from redisops.formats import Format

if TYPE_CHECKING:  # pragma: no cover
    from redisops.session import Session


@with_connection
def status(
    conn: Connection,
    seeds: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="SEED...",
            help="Any node(s) of the cluster: HOST:PORT, HOST, [v6]:PORT, "
            "redis://[user@]host:port or rediss://...",
        ),
    ] = None,
    fmt: FormatOpt = Format.table,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            help="Most seconds one node may take to answer (connect and every read): "
            "a frozen node costs at most this; nodes are read concurrently.",
            min=0.05,
        ),
    ] = 3.0,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            "-w",
            help="Redraw every SECONDS (--watch [SECONDS], default 2) until Ctrl-C, "
            "marking what changed since the last frame.",
        ),
    ] = False,
    interval: Annotated[
        float,
        typer.Option(
            "--interval", metavar="SECONDS", help="Seconds between --watch frames.", min=0.1
        ),
    ] = 2.0,
) -> None:
    """Show the replication topology discovered from any node(s).

    Walks up and down from every seed, lists each node's role, link, offsets, lag,
    sync state, backlog and version, and reports problems (split brain, cycles, links
    down, unreachable masters, address mismatches). Exit 0 when healthy, 4 when problems
    were found, 3 when no seed could be reached.
    """
    from redisops.errors import ExitCode
    from redisops.output import note, render_status, write
    from redisops.retry import RetryPolicy

    session = conn.session(
        seeds or [],
        retry=RetryPolicy(attempts=2, wait_initial=0.05),
        require_seeds=not conn.sentinel,
        probe_timeout=timeout,
        purpose="status",
    )
    if watch:
        with session:
            _watch(session, fmt, interval)
        return
    from redisops.ops import api

    with session:
        topo = api.status(session)
    for warning in session.warnings:
        note(f"warning: {warning}")
    write(render_status(topo, fmt))
    seeds_reached = [n for n in topo.nodes if n.reachable]
    if not seeds_reached:
        raise typer.Exit(int(ExitCode.UNREACHABLE))
    if topo.problems:
        raise typer.Exit(int(ExitCode.PROBLEMS))


def _watch(session: Session, fmt: Format, interval: float) -> None:
    """Redraw the status every ``interval`` seconds until Ctrl-C (exit 0): in place on a
    terminal, one frame after another otherwise (JSON: one document per line)."""
    import sys
    import time

    from redisops.ops import api
    from redisops.output import render_watch_frame, watch_keys

    tty = sys.stdout.isatty()
    previous: dict[str, Any] | None = None
    try:
        while True:
            topo = api.status(session)
            sys.stdout.write(render_watch_frame(topo, previous, fmt, time.time(), interval, tty))
            sys.stdout.flush()
            previous = watch_keys(topo)
            time.sleep(interval)
    except KeyboardInterrupt:
        if tty and fmt is not Format.json:
            sys.stdout.write("\n")
            sys.stdout.flush()
        raise typer.Exit(0) from None


class WatchCommand(TyperCommand):
    """``--watch SECONDS`` (an optional value, like ``watch -n``): rewritten to
    ``--watch --interval SECONDS`` before Click parses it."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        out: list[str] = []
        i = 0
        while i < len(args):
            arg = args[i]
            if arg in ("--watch", "-w") and i + 1 < len(args) and _is_number(args[i + 1]):
                out += [arg, "--interval", args[i + 1]]
                i += 2
                continue
            if arg.startswith("--watch="):
                out += ["--watch", "--interval", arg.split("=", 1)[1]]
            else:
                out.append(arg)
            i += 1
        result: list[str] = super().parse_args(ctx, out)
        return result


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def register(app: typer.Typer) -> None:
    app.command("status", cls=WatchCommand)(status)
