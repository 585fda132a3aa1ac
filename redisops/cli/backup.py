"""``redisops backup NODE``, ``backup list``, ``backup verify`` and ``redisops restore``.

Exit codes (docs/backup.md): 0 done; 2 bad input; 3 a node or host unreachable; 5 refused
(no healthy replica to back up from, a restore preflight); 6 the destination group is
being written by another backup, or the cluster lock is held; 9 a backup or copy failed
verification (kept aside in ``failed/``); 10 the BGSAVE did not finish in time; 1 other
errors (BGSAVE failed on the node, a load test that could not run).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from redisops.cli.common import Connection, FormatOpt, with_connection
from redisops.cli.mutate import AuditOpt, DryRunOpt, ForceOpt, TimeoutOpt, YesOpt
from redisops.formats import Format

if TYPE_CHECKING:  # pragma: no cover
    from redisops.backup.dest import DestSpec
    from redisops.backup.take import BackupOutcome
    from redisops.backup.verify import VerifyResult

DEST_ENV = "REDISOPS_BACKUP_DEST"


class _DefaultTake(TyperGroup):
    """``redisops backup NODE ...`` means ``redisops backup take NODE ...``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["take", *args]
        return super().parse_args(ctx, args)


backup_app = typer.Typer(
    name="backup",
    cls=_DefaultTake,
    help="RDB backups: take one (BGSAVE on a replica, fetch, verify, catalogue, copy, "
    "prune), list them, verify them again. 'redisops backup NODE' is 'backup take NODE'.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

DestOpt = Annotated[
    str | None,
    typer.Option(
        "--dest",
        metavar="DEST",
        help=f"A directory or sftp://[user@]host[:port]/path (default ${DEST_ENV}).",
    ),
]
GroupOpt = Annotated[
    str | None,
    typer.Option(
        "--group",
        metavar="NAME",
        help="Replication group name (default: the inventory cluster, else the master's address).",
    ),
]
KeyFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        metavar="FILE",
        help="Key of encrypted copies (32 bytes: raw, hex or base64), for --decrypt.",
        dir_okay=False,
    ),
]


def _dest(text: str | None) -> DestSpec:
    from redisops.backup.dest import parse_dest
    from redisops.errors import BadInput

    value = text or os.environ.get(DEST_ENV)
    if not value:
        raise BadInput(
            "no backup destination", hint=f"pass --dest DIR (or sftp://host/path) or set {DEST_ENV}"
        )
    return parse_dest(value)


@backup_app.command("take")
@with_connection
def take(
    conn: Connection,
    node: Annotated[
        str | None,
        typer.Argument(
            metavar="[NODE]",
            help="A node of the group (a replica is used unless --from-master); "
            "default: the master of --cluster.",
        ),
    ] = None,
    dest: DestOpt = None,
    copy_to: Annotated[
        list[str] | None,
        typer.Option(
            "--copy-to", metavar="DEST2", help="Also copy it here, verified (repeatable)."
        ),
    ] = None,
    group: GroupOpt = None,
    from_master: Annotated[
        bool, typer.Option("--from-master", help="BGSAVE on the master, not a replica.")
    ] = False,
    no_bgsave: Annotated[
        bool, typer.Option("--no-bgsave", help="Copy the RDB on disk as it is (says its age).")
    ] = False,
    encrypt_key_file: Annotated[
        Path | None,
        typer.Option(
            "--encrypt-key-file",
            metavar="FILE",
            help="Encrypt copies that leave this machine (AES-256-GCM; key never on the command line).",
            dir_okay=False,
        ),
    ] = None,
    keep_hourly: Annotated[
        int,
        typer.Option(
            "--keep-hourly", metavar="HOURS", help="Newest per UTC hour, for HOURS.", min=0
        ),
    ] = 48,
    keep_daily: Annotated[
        int,
        typer.Option("--keep-daily", metavar="DAYS", help="Newest per UTC day, for DAYS.", min=0),
    ] = 30,
    keep_min: Annotated[
        int,
        typer.Option("--keep-min", metavar="N", help="Never fewer than N verified backups.", min=1),
    ] = 1,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be taken and pruned; write nothing.")
    ] = False,
    timeout: Annotated[
        float,
        typer.Option("--timeout", metavar="SECONDS", help="Wait this long for the BGSAVE.", min=1),
    ] = 3600.0,
    fmt: FormatOpt = Format.table,
) -> None:
    """Take a verified RDB backup of NODE's group into DEST.

    Example: redisops backup 10.0.0.2:6379 --dest /var/backups/redis --copy-to sftp://vault/srv/redis
    """
    from redisops.backup.crypto import load_key
    from redisops.backup.retention import Policy
    from redisops.backup.take import BackupRequest
    from redisops.errors import BadInput
    from redisops.model import parse_target
    from redisops.ops import api
    from redisops.output import make_progress, note, to_json, write

    if node is None and conn.cluster is None:
        raise BadInput("no node given", hint="name a NODE (HOST:PORT) or use --cluster NAME")
    req = BackupRequest(
        node=parse_target(node).address if node else None,
        dest=_dest(dest),
        copy_to=tuple(_dest(c) for c in copy_to or []),
        group=group,
        from_master=from_master,
        no_bgsave=no_bgsave,
        policy=Policy(keep_hourly, keep_daily, keep_min),
        dry_run=dry_run,
        timeout=timeout,
    )
    key = load_key(encrypt_key_file, "--encrypt-key-file") if encrypt_key_file else None
    with conn.session([node] if node else []) as session:
        outcome = api.backup(session, req, key=key, progress=make_progress(fmt), note=note)
    write(to_json(outcome.to_dict()) if fmt is Format.json else render_outcome(outcome, req.policy))


def render_outcome(o: BackupOutcome, policy: Any) -> str:
    from redisops.output import human_bytes

    lines: list[str] = []
    if o.dry_run:
        w = o.would_take
        age = w.get("current_rdb_age_s")
        lines.append(
            f"would {w['snapshot']} on {o.source} ({o.reason}) and fetch {o.rdb_file} "
            f"(now {human_bytes(w.get('current_rdb_size'))}"
            + (f", {age} s old" if age is not None else "")
            + ")"
        )
        lines.append(f"  as {o.dest}/{o.group}/{w['id']}.rdb")
        for url in w.get("copies", []):
            lines.append(f"  copy to {url}")
    elif o.record is not None:
        r = o.record
        lines.append(
            f"backup {r.id} verified: {human_bytes(r.size)}, {r.keys} keys, RDB v{r.rdb_version}, "
            f"from {r.node} ({o.reason}), {r.snapshot}"
        )
        lines.append(f"  file:   {o.path}")
        lines.append(f"  checks: {', '.join(r.verified_by)}")
        for c in r.copies:
            lines.append(
                f"  copy:   {c.dest}/{r.group}/{c.file} verified"
                + (" (encrypted)" if c.encrypted else "")
            )
    lines.append(f"retention ({policy.describe()}, UTC buckets):")
    for url, decisions in o.retention.items():
        pruned = [d for d in decisions if not d.keep]
        verb = "would prune" if o.dry_run else "pruned"
        lines.append(
            f"  {url}: keep {sum(d.keep for d in decisions)}, {verb} {len(pruned)}"
            + (": " + ", ".join(f"{d.id} ({d.reasons[-1]})" for d in pruned) if pruned else "")
        )
    for n in o.notes:
        lines.append(f"note: {n}")
    if o.dry_run:
        lines.append("\nDry run: nothing was written.")
    return "\n".join(lines)


@backup_app.command("list")
def list_backups(
    dest: DestOpt = None,
    group: GroupOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """The backups at DEST: age, size, node, offset, keys, verified, copies."""
    from redisops.backup.dest import open_destination
    from redisops.output import human_bytes, human_seconds, table, to_json, write

    spec = _dest(dest)
    d = open_destination(spec)
    try:
        groups = d.read_groups(group)
        cats = [d.read_catalogue(g) for g in groups]
    finally:
        d.close()
    if fmt is Format.json:
        write(
            to_json(
                {
                    "dest": spec.url,
                    "groups": {c.group: [b.to_dict() for b in c.backups] for c in cats},
                }
            )
        )
        return
    now = time.time()
    rows = []
    for cat in cats:
        for b in sorted(cat.backups, key=lambda b: b.taken_at, reverse=True):
            status = (
                f"yes, {human_seconds(now - b.verified_at)} ago"
                if b.verified and b.verified_at
                else f"FAILED: {(b.failure or '')[:60]}"
            )
            copies = ", ".join(
                ("off-host " if c.offhost else "") + ("enc " if c.encrypted else "") + c.dest
                for c in b.copies
            )
            rows.append(
                [
                    b.id,
                    cat.group,
                    human_seconds(now - b.taken_at),
                    human_bytes(b.size),
                    b.node,
                    b.repl_offset,
                    b.keys,
                    status,
                    copies or None,
                ]
            )
    if not rows:
        write(f"no backups in {spec.url}")
        return
    write(
        table(["ID", "GROUP", "AGE", "SIZE", "NODE", "OFFSET", "KEYS", "VERIFIED", "COPIES"], rows)
    )


@backup_app.command("verify")
def verify(
    path: Annotated[
        Path | None, typer.Argument(metavar="PATH", help="A backup file (or use --all).")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every verified backup at --dest.")] = False,
    dest: DestOpt = None,
    group: GroupOpt = None,
    load_test: Annotated[
        bool,
        typer.Option("--load-test", help="Load into a throwaway redis-server; compare key counts."),
    ] = False,
    decrypt: Annotated[
        bool, typer.Option("--decrypt", help="Decrypt encrypted copies and check the RDB inside.")
    ] = False,
    key_file: KeyFileOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Check backups again: size, SHA-256, CRC64, redis-check-rdb, optionally a load test.

    A backup that fails is moved into failed/ and marked failed in its catalogue (exit 9).
    """
    from redisops.backup.crypto import load_key
    from redisops.backup.verify import VerifyOptions, verify_all, verify_path
    from redisops.errors import BadInput, ExitCode
    from redisops.output import error_line, to_json, write

    if (path is None) == (not all_):
        raise BadInput(
            "give a backup PATH or --all", hint="e.g. redisops backup verify --all --dest DIR"
        )
    if decrypt and key_file is None:
        raise BadInput("--decrypt needs --key-file FILE")
    opts = VerifyOptions(load_key(key_file) if key_file else None, decrypt, load_test)
    results = verify_all(_dest(dest), opts, group) if all_ else [verify_path(path, opts)]  # type: ignore[arg-type]
    if fmt is Format.json:
        write(to_json({"results": [r.to_dict() for r in results]}))
    else:
        write(render_verify(results))
    failed = [r for r in results if r.status == "failed"]
    errors = [r for r in results if r.status == "error"]
    if failed:
        error_line(
            "; ".join(
                f"{r.id} failed verification: {r.problems[0]}"
                + (f" (moved to {r.path})" if r.moved else "")
                for r in failed
            )
        )
        raise typer.Exit(int(ExitCode.VERIFY_FAILED))
    if errors:
        error_line("; ".join(f"{r.id}: {r.notes[-1]}" for r in errors))
        raise typer.Exit(int(ExitCode.ERROR))


def render_verify(results: list[VerifyResult]) -> str:
    if not results:
        return "no verified backups to check"
    lines = []
    for r in results:
        head = {"ok": "OK", "failed": "FAILED", "error": "NOT CHECKED"}[r.status]
        lines.append(f"{head}  {r.id}  {r.path}")
        if r.checks:
            lines.append(f"  passed: {', '.join(r.checks)}")
        for p in r.problems:
            lines.append(f"  problem: {p}")
        for n in r.notes:
            lines.append(f"  note: {n}")
    return "\n".join(lines)


@with_connection
def restore(
    conn: Connection,
    backup: Annotated[
        str,
        typer.Argument(
            metavar="BACKUP",
            help="A backup file, a backup id at --dest, or 'latest' (with --dest, --group).",
        ),
    ],
    to: Annotated[str, typer.Option("--to", metavar="NODE", help="The node to restore onto.")],
    method: Annotated[
        str,
        typer.Option(
            "--method",
            metavar="METHOD",
            help="online (a throwaway server the node full-syncs from) or file (restart on it).",
        ),
    ] = "online",
    dest: DestOpt = None,
    group: GroupOpt = None,
    key_file: KeyFileOpt = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    force: ForceOpt = False,
    timeout: TimeoutOpt = 3600.0,
    audit_log: AuditOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Put a backup back on NODE: plan, refusals, confirmation, lock, audit, verify.

    Example: redisops restore latest --dest /var/backups/redis --to 10.0.0.1:6379 --dry-run
    """
    from redisops.backup.crypto import load_key
    from redisops.backup.restore import METHODS
    from redisops.cli.mutate import operate
    from redisops.errors import BadInput
    from redisops.ops import api

    if method not in METHODS:  # before the destination is looked for
        raise BadInput(f"--method {method!r} is not known", hint="use online or file")
    req = api.RestoreRequest(
        backup,
        to,
        method,
        None if Path(backup).is_file() else _dest(dest),
        group,
        force=force,
        timeout=timeout,
    )
    key = load_key(key_file) if key_file else None
    operate(
        conn,
        req,
        lambda session, r: api.restore(session, r, key=key),
        fmt=fmt,
        dry_run=dry_run,
        yes=yes,
        force=force,
        audit_path=audit_log,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(backup_app, name="backup")
    app.command("restore")(restore)
