"""Options shared by every command, declared once.

Each command lists the ones it needs through these ``Annotated`` aliases, so names, help
texts and defaults stay identical everywhere. No option takes a secret: passwords come
from ``REDISCLI_AUTH``, ``--password-file`` or the inventory.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import typer

from redisops.formats import Format

if TYPE_CHECKING:  # pragma: no cover
    from redisops.session import Session

CONN = "Connection"

FormatOpt = Annotated[
    Format,
    typer.Option(
        "--format",
        "-o",
        help="Output format: table for people, json for scripts.",
        case_sensitive=False,
    ),
]
UserOpt = Annotated[
    str | None,
    typer.Option(
        "--user",
        metavar="NAME",
        help="ACL user name (password from REDISCLI_AUTH or --password-file).",
        rich_help_panel=CONN,
    ),
]
PasswordFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--password-file",
        metavar="FILE",
        help="Read the password from the first line of this file.",
        rich_help_panel=CONN,
        dir_okay=False,
    ),
]
TLSOpt = Annotated[
    bool,
    typer.Option("--tls", help="Use TLS (also implied by rediss:// URLs).", rich_help_panel=CONN),
]
CACertOpt = Annotated[
    Path | None,
    typer.Option(
        "--cacert",
        metavar="FILE",
        help="CA bundle to verify servers.",
        rich_help_panel=CONN,
        dir_okay=False,
    ),
]
CertOpt = Annotated[
    Path | None,
    typer.Option(
        "--cert",
        metavar="FILE",
        help="Client certificate (with --key).",
        rich_help_panel=CONN,
        dir_okay=False,
    ),
]
KeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--key",
        metavar="FILE",
        help="Client private key (with --cert).",
        rich_help_panel=CONN,
        dir_okay=False,
    ),
]
InventoryOpt = Annotated[
    Path | None,
    typer.Option(
        "--inventory",
        metavar="FILE",
        help="Inventory YAML (default ./redisops.yml, then "
        "$XDG_CONFIG_HOME/redisops/redisops.yml).",
        rich_help_panel=CONN,
        dir_okay=False,
    ),
]
ClusterOpt = Annotated[
    str | None,
    typer.Option(
        "--cluster",
        "-c",
        metavar="NAME",
        help="Cluster name from the inventory (replaces seed addresses).",
        rich_help_panel=CONN,
    ),
]
ConnectTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--connect-timeout",
        metavar="SECONDS",
        help="Seconds to wait for each connection.",
        rich_help_panel=CONN,
        min=0.01,
    ),
]
SentinelOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--sentinel",
        metavar="HOST:PORT",
        help="A Sentinel HOST:PORT (repeatable).",
        rich_help_panel=CONN,
    ),
]
SentinelMasterOpt = Annotated[
    str | None,
    typer.Option(
        "--sentinel-master",
        metavar="NAME",
        help="Master name Sentinel monitors (default: discovered).",
        rich_help_panel=CONN,
    ),
]


RenameOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--rename-command",
        metavar="CMD=NEWNAME",
        help="A command the nodes renamed (their rename-command line), e.g. CONFIG=SECRETCFG; "
        "CONFIG= when disabled (repeatable).",
        rich_help_panel=CONN,
    ),
]


# ----------------------------------------------------------------------------- one bundle

_CONNECTION_PARAMS: list[tuple[str, Any, Any]] = [
    ("cluster", ClusterOpt, None),
    ("inventory", InventoryOpt, None),
    ("user", UserOpt, None),
    ("password_file", PasswordFileOpt, None),
    ("tls", TLSOpt, False),
    ("cacert", CACertOpt, None),
    ("cert", CertOpt, None),
    ("key", KeyOpt, None),
    ("sentinel", SentinelOpt, None),
    ("sentinel_master", SentinelMasterOpt, None),
    ("connect_timeout", ConnectTimeoutOpt, 1.5),
    ("rename_command", RenameOpt, None),
]


@dataclass(frozen=True)
class Connection:
    """The connection options of a command, as given (resolved by :meth:`session`)."""

    cluster: str | None = None
    inventory: Path | None = None
    user: str | None = None
    password_file: Path | None = None
    tls: bool = False
    cacert: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    sentinel: list[str] | None = None
    sentinel_master: str | None = None
    connect_timeout: float = 1.5
    rename_command: list[str] | None = None

    def session(self, seeds: Sequence[str], **kwargs: Any) -> Session:
        from redisops.session import build_session

        kwargs.setdefault("connect_timeout", self.connect_timeout)
        return build_session(
            seeds=seeds,
            cluster=self.cluster,
            inventory=self.inventory,
            user=self.user,
            password_file=self.password_file,
            tls=self.tls,
            cacert=self.cacert,
            cert=self.cert,
            key=self.key,
            sentinels=self.sentinel or [],
            sentinel_master=self.sentinel_master,
            renamed_commands=self.rename_command or [],
            **kwargs,
        )


F = TypeVar("F", bound=Callable[..., Any])


def with_connection(fn: F) -> F:
    """Give a command the shared connection options, passed to it as ``conn: Connection``.

    The options are declared once (above) and appear in every command's ``--help`` under
    the "Connection" panel; the command itself sees a single value.
    """
    sig = inspect.signature(fn, eval_str=True)  # Typer reads this signature as it is
    own = [p for p in sig.parameters.values() if p.name != "conn"]
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annot)
        for name, annot, default in _CONNECTION_PARAMS
    ]

    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> Any:
        conn = Connection(**{name: kwargs.pop(name) for name, _, _ in _CONNECTION_PARAMS})
        return fn(conn=conn, **kwargs)

    hints = {k: v for k, v in fn.__annotations__.items() if k != "conn"}
    hints.update({name: annot for name, annot, _ in _CONNECTION_PARAMS})
    wrapper.__annotations__ = hints
    wrapper.__signature__ = sig.replace(parameters=[*own, *extra])  # type: ignore[attr-defined]
    return cast(F, wrapper)
