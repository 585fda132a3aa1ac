"""Options shared by every command, declared once.

Each command lists the ones it needs through these ``Annotated`` aliases, so names, help
texts and defaults stay identical everywhere. No option takes a secret: passwords come
from ``REDISCLI_AUTH``, ``--password-file`` or the inventory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from redisops.output import Format

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
        help="ACL user name (password from REDISCLI_AUTH or --password-file).",
        rich_help_panel=CONN,
    ),
]
PasswordFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--password-file",
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
        "--cacert", help="CA bundle to verify servers.", rich_help_panel=CONN, dir_okay=False
    ),
]
CertOpt = Annotated[
    Path | None,
    typer.Option(
        "--cert", help="Client certificate (with --key).", rich_help_panel=CONN, dir_okay=False
    ),
]
KeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--key", help="Client private key (with --cert).", rich_help_panel=CONN, dir_okay=False
    ),
]
InventoryOpt = Annotated[
    Path | None,
    typer.Option(
        "--inventory",
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
        help="Cluster name from the inventory (replaces seed addresses).",
        rich_help_panel=CONN,
    ),
]
ConnectTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--connect-timeout",
        help="Seconds to wait for each connection.",
        rich_help_panel=CONN,
        min=0.01,
    ),
]
SentinelOpt = Annotated[
    list[str] | None,
    typer.Option("--sentinel", help="A Sentinel HOST:PORT (repeatable).", rich_help_panel=CONN),
]
SentinelMasterOpt = Annotated[
    str | None,
    typer.Option(
        "--sentinel-master",
        help="Master name Sentinel monitors (default: discovered).",
        rich_help_panel=CONN,
    ),
]
