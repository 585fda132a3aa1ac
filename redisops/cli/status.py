"""``redisops status``: discover and show the replication topology."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from redisops.cli.common import Connection, FormatOpt, with_connection
from redisops.formats import Format

if TYPE_CHECKING:  # pragma: no cover
    from redisops.model import Topology
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
    )
    with session:
        topo = _discover(session)
    for warning in session.warnings:
        note(f"warning: {warning}")
    write(render_status(topo, fmt))
    seeds_reached = [n for n in topo.nodes if n.reachable]
    if not seeds_reached:
        raise typer.Exit(int(ExitCode.UNREACHABLE))
    if topo.problems:
        raise typer.Exit(int(ExitCode.PROBLEMS))


def _discover(session: Session) -> Topology:
    """The topology from the seeds (and the master Sentinel names), plus any fenced old
    master that answers again, plus the Sentinel view and its problems."""
    from dataclasses import replace

    from redisops.errors import BadInput, RedisopsError, Unreachable
    from redisops.known import last_masters
    from redisops.model import Address, Topology
    from redisops.topology import fence_records, sentinel_problems

    view = None
    if session.sentinels:  # the operations layer is only needed to ask Sentinels
        from redisops.ops.sentinel import master_addr, sentinel_view

        view = sentinel_view(session)
    extra: list[Address] = []
    if view is not None and view.get("name"):
        for entry in view["sentinels"]:
            if entry.get("master"):
                extra.append(Address.parse(str(entry["master"])))
        if not extra:
            try:
                found = master_addr(session, session.sentinels[0], str(view["name"]))
            except RedisopsError:
                found = None
            if found is not None:
                extra.append(found)
    if not session.seeds and not extra and view is not None:
        down = [e for e in view["sentinels"] if e.get("reachable") is False]
        if down and len(down) == len(view["sentinels"]):
            raise Unreachable(
                "no node to start from: no sentinel answered ("
                + "; ".join(f"{e['address']}: {e['status']}" for e in down)
                + ")",
                hint="check the --sentinel addresses, or give a SEED address",
            )
    if not session.seeds and not extra:
        raise BadInput(
            "no node to start from: no sentinel named a master",
            hint="give a SEED address, --cluster NAME, or --sentinel-master",
        )
    topo = session.discover(dict.fromkeys(extra))
    # an old master fenced by a failover is not linked to anything: look for it explicitly
    fenced: list[Address] = []
    for record in fence_records(topo):
        try:
            addr = Address.parse(str(record.get("address")))
        except BadInput:
            continue
        if topo.get(addr) is None:
            fenced.append(addr)
    returned = [n.address for n in session.probe_all(fenced) if n.reachable]
    # the last-known master of a seed's group (a returned old master knows nothing of the
    # failover; this host's record of it does), when it answers
    known = last_masters(n.address for n in topo.nodes)
    known = {a: why for a, why in known.items() if topo.get(a) is None}
    recalled = [n.address for n in session.probe_all(known) if n.reachable]
    if returned or recalled:
        topo = session.discover([*dict.fromkeys(extra), *returned, *recalled])
        if recalled:
            topo = replace(topo, notes=(*topo.notes, *(known[a] for a in recalled)))
    if view is None:
        return topo
    problems = (*topo.problems, *sentinel_problems(topo, view))
    problems = tuple(sorted(problems, key=lambda p: p.severity != "critical"))
    return Topology(topo.nodes, problems, topo.aliases, sentinel=view, notes=topo.notes)


def register(app: typer.Typer) -> None:
    app.command("status")(status)
