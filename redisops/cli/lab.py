"""``redisops lab``: start, inspect and break a local lab (embedded engine or redis-server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from redisops.cli.common import FormatOpt, InventoryOpt, PasswordFileOpt, UserOpt
from redisops.formats import Format

lab_app = typer.Typer(
    name="lab",
    help="A local master/replica lab for drills and demos: the embedded engine (no Redis "
    "needed) or real redis-server processes.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

DirOpt = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        metavar="DIR",
        help="Lab directory (default $REDISOPS_LAB_DIR or $XDG_STATE_HOME/redisops/lab).",
        file_okay=False,
    ),
]
NodeArg = Annotated[str, typer.Argument(metavar="NODE", help="A lab node: PORT or HOST:PORT.")]


def _dir(d: Path | None) -> Path:
    from redisops.lab import default_dir

    return d or default_dir()


@lab_app.command("up")
def lab_up(
    engine: Annotated[
        str,
        typer.Option("--engine", metavar="ENGINE", help="embedded (pure Python) or redis-server."),
    ] = "embedded",
    nodes: Annotated[
        int, typer.Option("--nodes", metavar="N", help="How many nodes.", min=1, max=32)
    ] = 3,
    base_port: Annotated[
        int | None,
        typer.Option(
            "--base-port",
            metavar="PORT",
            help="Port of the first node (default 7000; with --from-cluster, the first free "
            "ports from 17000).",
        ),
    ] = None,
    topology: Annotated[
        str,
        typer.Option(
            "--topology",
            metavar="SHAPE",
            help="star: replicas under the first node; "
            "chain: each under the previous; none: all masters.",
        ),
    ] = "star",
    config: Annotated[
        list[str] | None,
        typer.Option(
            "--config", metavar="KEY=VALUE", help="KEY=VALUE for every node (repeatable)."
        ),
    ] = None,
    from_cluster: Annotated[
        str | None,
        typer.Option(
            "--from-cluster",
            metavar="NAME|SEED",
            help="Copy a real cluster (an inventory cluster name, or any node's HOST:PORT): "
            "same topology, replication ids and offsets, replication config, and a synthetic "
            "dataset of the same size class, on the embedded engine.",
        ),
    ] = None,
    data_limit: Annotated[
        str,
        typer.Option(
            "--data-limit",
            metavar="SIZE",
            help="With --from-cluster: most bytes of synthetic data per node (e.g. 64mb).",
        ),
    ] = "64mb",
    inventory: InventoryOpt = None,
    password_file: PasswordFileOpt = None,
    user: UserOpt = None,
    binary: Annotated[
        str | None,
        typer.Option(
            "--binary",
            metavar="PATH",
            help="With --engine redis-server: the server to run (redis-server 6.2/7.x or "
            "valkey-server; default redis-server on PATH).",
        ),
    ] = None,
    lab_dir: DirOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Start a lab in the background, print its addresses, and return."""
    from redisops import lab
    from redisops.errors import BadInput
    from redisops.output import to_json, write

    if from_cluster is not None:
        _up_from_cluster(
            from_cluster, data_limit, inventory, password_file, user, lab_dir, base_port, fmt
        )
        return

    cfg: dict[str, str] = {}
    for item in config or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadInput(
                f"--config {item!r} is not KEY=VALUE", hint="e.g. --config repl-backlog-size=16mb"
            )
        cfg[key] = value
    state = lab.up(
        _dir(lab_dir),
        engine=engine,
        nodes=nodes,
        base_port=7000 if base_port is None else base_port,
        topology=topology,
        config=cfg,
        binary=binary,
    )
    if fmt is Format.json:
        write(to_json(state.to_dict()))
        return
    engine_name = state.server or state.engine
    lines = [f"lab up ({engine_name}, {state.topology}) in {state.dir}"]
    for i, port in enumerate(state.ports):
        role = "master" if i == 0 or state.topology == "none" else "replica"
        lines.append(f"  127.0.0.1:{port}  {role}")
    lines.append(f"next: redisops status 127.0.0.1:{state.ports[0]}")
    write("\n".join(lines))


def _up_from_cluster(
    source: str,
    data_limit: str,
    inventory: Path | None,
    password_file: Path | None,
    user: str | None,
    lab_dir: Path | None,
    base_port: int | None,
    fmt: Format,
) -> None:
    from redisops import lab
    from redisops.errors import BadInput
    from redisops.output import to_json, write
    from redisops.playbook.vartypes import parse_size
    from redisops.session import build_session

    try:
        limit = parse_size(data_limit)
    except ValueError as exc:
        raise BadInput(f"--data-limit {data_limit!r}: {exc}") from None
    as_seed = ":" in source or source.replace(".", "").isdigit()
    session = build_session(
        seeds=[source] if as_seed else [],
        cluster=None if as_seed else source,
        inventory=inventory,
        user=user,
        password_file=password_file,
    )
    with session:
        state = lab.up_from_cluster(
            _dir(lab_dir),
            session,
            base_port=base_port,
            max_bytes=limit,
        )
    if fmt is Format.json:
        write(to_json(state.to_dict()))
        return
    from redisops.clone import describe

    spec = json.loads((Path(state.dir) / "clone.json").read_text())
    head = f"lab up: a copy of {source} on the embedded engine, in {state.dir}"
    write("\n".join([head, *describe(spec)]))


@lab_app.command("status")
def lab_status(lab_dir: DirOpt = None, fmt: FormatOpt = Format.table) -> None:
    """Is a lab running, with which engine, on which ports."""
    from redisops import lab
    from redisops.output import table, to_json, write

    info = lab.status(_dir(lab_dir))
    if fmt is Format.json:
        write(to_json(info))
    elif not info["running"]:
        write(f"no lab running in {info['dir']}")
    else:
        rows = [
            [
                f"127.0.0.1:{n['port']}",
                "up" if n.get("alive") else "down",
                "paused" if n.get("paused") else "",
                n.get("role", ""),
                n.get("master") or "",
                n.get("offset", ""),
            ]
            for n in info["nodes"]
        ]
        write(
            f"lab ({info['engine']}, {info['topology']}) in {info['dir']}\n"
            + table(["NODE", "PROCESS", "PAUSED", "ROLE", "MASTER", "OFFSET"], rows)
        )
    if not info["running"]:
        raise typer.Exit(1)


@lab_app.command("down")
def lab_down(lab_dir: DirOpt = None) -> None:
    """Stop the lab."""
    from redisops import lab
    from redisops.output import write

    state = lab.down(_dir(lab_dir))
    write("lab stopped" if state else f"no lab in {_dir(lab_dir)}")


def _drill(action: str, help_text: str) -> None:
    def command(node: NodeArg, lab_dir: DirOpt = None) -> None:
        from redisops import lab
        from redisops.output import write

        write(lab.drill(_dir(lab_dir), action, node))

    command.__doc__ = help_text
    lab_app.command(action)(command)


_drill("kill", "SIGKILL a node: no save, connections reset.")
_drill("restart", "Shut a node down with SAVE and start it again from its RDB.")
_drill("pause", "SIGSTOP a node: it stops answering, its sockets stay open.")
_drill("resume", "SIGCONT a paused node.")


@lab_app.command("partition")
def lab_partition(node: NodeArg, other: NodeArg, lab_dir: DirOpt = None) -> None:
    """Drop all traffic between two nodes (embedded engine): links stay open, timeouts fire."""
    from redisops import lab
    from redisops.output import write

    write(lab.drill(_dir(lab_dir), "partition", node, other))


@lab_app.command("heal")
def lab_heal(node: NodeArg, other: NodeArg, lab_dir: DirOpt = None) -> None:
    """Undo a partition."""
    from redisops import lab
    from redisops.output import write

    write(lab.drill(_dir(lab_dir), "heal", node, other))


def register(app: typer.Typer) -> None:
    app.add_typer(lab_app, name="lab")
