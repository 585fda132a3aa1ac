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
    from redisops.ssh.settings import SSHOptions

CONN = "Connection"
SSH = "SSH (see docs/ssh.md)"

FormatOpt = Annotated[
    Format,
    typer.Option(
        "--format",
        "-o",
        help="Output format: table for people (fitted to the terminal), wide (every column), json for scripts.",
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


SSHUserOpt = Annotated[
    str | None,
    typer.Option("--ssh-user", metavar="NAME", help="SSH login name.", rich_help_panel=SSH),
]
SSHPortOpt = Annotated[
    int | None,
    typer.Option(
        "--ssh-port", metavar="PORT", help="SSH port.", rich_help_panel=SSH, min=1, max=65535
    ),
]
SSHKeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--ssh-key",
        metavar="FILE",
        help="SSH private key (passphrase: SSH agent or passphrase_env in the inventory).",
        rich_help_panel=SSH,
        dir_okay=False,
    ),
]
SSHKnownHostsOpt = Annotated[
    Path | None,
    typer.Option(
        "--ssh-known-hosts",
        metavar="FILE",
        help="known_hosts file to verify host keys with (default ~/.ssh/known_hosts).",
        rich_help_panel=SSH,
        dir_okay=False,
    ),
]
SSHAcceptNewOpt = Annotated[
    bool,
    typer.Option(
        "--ssh-accept-new",
        help="Record unknown host keys (OpenSSH accept-new); a changed key is still refused.",
        rich_help_panel=SSH,
    ),
]
ViaSSHOpt = Annotated[
    bool,
    typer.Option(
        "--via-ssh",
        help="Reach Redis through an SSH tunnel to each node's host.",
        rich_help_panel=SSH,
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
    ("ssh_user", SSHUserOpt, None),
    ("ssh_port", SSHPortOpt, None),
    ("ssh_key", SSHKeyOpt, None),
    ("ssh_known_hosts", SSHKnownHostsOpt, None),
    ("ssh_accept_new", SSHAcceptNewOpt, False),
    ("via_ssh", ViaSSHOpt, False),
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
    ssh_user: str | None = None
    ssh_port: int | None = None
    ssh_key: Path | None = None
    ssh_known_hosts: Path | None = None
    ssh_accept_new: bool = False
    via_ssh: bool = False

    def session(self, seeds: Sequence[str], **kwargs: Any) -> Session:
        from redisops.output import note
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
            ssh=self.ssh_options(),
            notify=note,
            **kwargs,
        )

    def ssh_options(self) -> SSHOptions | None:
        """The --ssh-* options, or None when none was given (then only the inventory's
        ssh: settings make a node use SSH, and the SSH modules are not even imported)."""
        given = (
            self.ssh_user,
            self.ssh_port,
            self.ssh_key,
            self.ssh_known_hosts,
            self.ssh_accept_new,
            self.via_ssh,
        )
        if not any(given):
            return None
        from redisops.ssh.settings import SSHOptions

        return SSHOptions(
            user=self.ssh_user,
            port=self.ssh_port,
            key=str(self.ssh_key) if self.ssh_key else None,
            known_hosts=str(self.ssh_known_hosts) if self.ssh_known_hosts else None,
            accept_new=self.ssh_accept_new,
            via_ssh=self.via_ssh,
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
