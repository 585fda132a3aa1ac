"""A node's ``redis.conf``: found, read with Redis's rules, edited atomically on its host.

Found: the inventory's ``config_file`` for the node, else what the node says
(``INFO server`` → ``config_file``). Read through the node's :class:`~redisops.host.Host`
(SSH or local) with :mod:`redisops.redisconf` (quoting, ``include`` followed on the host,
repeated lines). Edited like ``CONFIG REWRITE`` edits it, then written with
:meth:`~redisops.host.Host.write_atomic` (temporary file in the same directory, fsync, owner
and mode kept, timestamped backup, rename) and read back to check the effective values.

Users: ``redisops config-file`` (show, or edit with a diff and confirmation), and the
persist steps when ``CONFIG REWRITE`` fails (no config file, ``CONFIG`` renamed, the file not
writable by Redis): :func:`persist_via_file` writes the running values instead and says so
(``--persist``: the replication settings ``replicaof``, ``masteruser``, ``masterauth``;
``drift --fix``: the keys it changed or found not persisted).

Secrets (``requirepass``, ``masterauth``, ACL ``user`` rules) never appear in a diff, a
listing, a plan or an error: they are shown as ``***``, and cannot be set from the command
line at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redisops.errors import BadInput, CommandFailed, RedisopsError
from redisops.host import Host, is_local_address
from redisops.model import Address, Finding, NodeInfo, Plan, Step
from redisops.plan import RunContext, action
from redisops.redisconf import (
    ConfigFile,
    canonical_name,
    parse_config,
    quote_arg,
    set_directive,
    split_args,
    unified_diff,
)
from redisops.session import Session

#: directives whose arguments are secrets (``user``: everything after the user name)
SECRET_DIRECTIVES = frozenset({"requirepass", "masterauth", "user"})
#: what a replication change (attach, detach, switchover, failover, fence) alters
REPLICATION_DIRECTIVES = ("replicaof", "masteruser", "masterauth")

Lines = list[list[str]]


# ----------------------------------------------------------------------------- finding, reading


def can_edit_config_file(session: Session, node: NodeInfo) -> bool:
    """Whether the ``--persist`` fallback can write the node's config file itself: it has
    one (inventory ``config_file``, or ``INFO server`` names it) on a machine redisops can
    reach (SSH settings for the node, or this machine)."""
    settings = session.ssh_settings(node.address)
    path = (settings.config_file if settings is not None else None) or node.info.get("config_file")
    if not path:
        return False
    return settings is not None or is_local_address(node.address.host)


def locate(session: Session, address: Address) -> tuple[str, str]:
    """(path, where the path came from) of a node's config file."""
    node_ssh = session.ssh_settings(address)
    if node_ssh is not None and node_ssh.config_file:
        return node_ssh.config_file, "inventory config_file"
    try:
        info = session.node(address).info("server")
    except RedisopsError as exc:
        raise CommandFailed(
            f"{address}: cannot ask it for its config file ({exc})",
            hint="set config_file for the node in the inventory's ssh: settings",
        ) from None
    path = info.get("config_file", "")
    if not path:
        raise CommandFailed(
            f"{address} runs without a config file (INFO server config_file is empty)",
            hint="start it from a redis.conf, or name the file with config_file in the inventory",
        )
    return path, "INFO server config_file"


def read_config(host: Host, path: str) -> tuple[str, ConfigFile]:
    """The main file's text, and the whole configuration (includes read on the host)."""
    from redisops.ops.drift import host_reader

    text = _read_text(host, path)
    reader, globber = host_reader(host)
    return text, parse_config(text, path, reader=reader, globber=globber)


def _read_text(host: Host, path: str) -> str:
    if host.stat(path) is None:
        raise CommandFailed(f"{host.name}: config file {path} does not exist")
    return host.read_bytes(path).decode("utf-8", "replace")


# ----------------------------------------------------------------------------- editing


def redact_line(line: str) -> str:
    """A config line safe to show: secret arguments replaced by ``***``.

    >>> redact_line('masterauth "s3cr3t"'), redact_line("user ops on >pw ~* +@all")
    ('masterauth ***', 'user ops ***')
    >>> redact_line("port 6379")
    'port 6379'
    """
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return line
    try:
        words = split_args(stripped)
    except BadInput:
        return line
    if not words or canonical_name(words[0]) not in SECRET_DIRECTIVES:
        return line
    if canonical_name(words[0]) == "user":
        return f"{words[0]} {words[1]} ***" if len(words) > 1 else line
    return f"{words[0]} ***"


def redacted(text: str) -> str:
    return "\n".join(redact_line(line) for line in text.split("\n"))


@dataclass(frozen=True)
class ConfigEdit:
    """An edit of one config file, computed before anything is written."""

    host: str
    path: str
    old: str
    new: str
    changes: Mapping[str, Lines] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.old != self.new

    @property
    def old_sha256(self) -> str:
        return hashlib.sha256(self.old.encode()).hexdigest()

    def diff(self) -> str:
        """The unified diff, secrets redacted."""
        return unified_diff(redacted(self.old), redacted(self.new), self.path)


def edit_text(text: str, changes: Mapping[str, Lines]) -> str:
    """``text`` with each directive set to its lines (``[]`` removes it), CONFIG REWRITE style.

    >>> edit_text("port 6379\\n", {"replicaof": [["10.0.0.1", "6379"]]}).splitlines()[-1]
    'replicaof 10.0.0.1 6379'
    """
    for name, lines in changes.items():
        text = set_directive(text, name, lines)
    return text


def effective(cfg: ConfigFile, name: str) -> Lines:
    """What Redis would use for a directive: every line for repeatable ones, else the last."""
    from redisops.redisconf import REPEATABLE

    key = canonical_name(name)
    found = [list(args) for args in cfg.all(key)]
    return found if key in REPEATABLE else found[-1:]


def verify_written(host: Host, path: str, changes: Mapping[str, Lines]) -> None:
    """Read the file back (with its includes) and check each changed directive's effect."""
    _, cfg = read_config(host, path)
    for name, want in changes.items():
        got = effective(cfg, name)
        if got != want:
            where = [f"{d.file}:{d.lineno}" for d in cfg.where(name)]
            shown = "***" if canonical_name(name) in SECRET_DIRECTIVES else got
            raise CommandFailed(
                f"{host.name}: after editing {path}, {name} is {shown or 'unset'} "
                f"(set at {', '.join(where) or 'nowhere'})",
                hint="another file included after the edit overrides it; edit that file",
            )


def apply_edit(host: Host, edit: ConfigEdit, *, backup: bool = True) -> str | None:
    """Write the edit atomically (refusing if the file changed since it was read), check it
    took effect, and return the backup's path."""
    current = _read_text(host, edit.path)
    if current != edit.old:
        raise CommandFailed(
            f"{host.name}: {edit.path} changed since it was read; nothing written",
            hint="run the command again to see the new diff",
        )
    kept = host.write_atomic(edit.path, edit.new.encode(), backup=backup)
    verify_written(host, edit.path, edit.changes)
    return kept


# ----------------------------------------------------------------------------- the command


def parse_set(values: Sequence[str]) -> dict[str, Lines]:
    """``--set "save 900 1" --set "save 300 10"`` as ``{"save": [["900", "1"], ["300", "10"]]}``.

    >>> parse_set(["save 900 1", "save 300 10", 'dir "/var/lib/redis 2"'])
    {'save': [['900', '1'], ['300', '10']], 'dir': [['/var/lib/redis 2']]}
    """
    out: dict[str, Lines] = {}
    for value in values:
        words = split_args(value)
        if len(words) < 2:
            raise BadInput(
                f"--set {value!r} needs a directive and its value",
                hint="e.g. --set 'maxmemory 2gb' (quote as in redis.conf)",
            )
        name = canonical_name(words[0])
        _refuse_secret(name)
        out.setdefault(name, []).append(words[1:])
    return out


def _refuse_secret(name: str) -> None:
    if name in SECRET_DIRECTIVES or name == "include":
        what = "holds a secret" if name != "include" else "is not edited by redisops"
        raise BadInput(
            f"{name} {what}: it cannot be set from the command line",
            hint="edit it on the host (secrets never go on a command line)",
        )


def plan_config_edit(
    session: Session,
    address: Address,
    sets: Sequence[str],
    unsets: Sequence[str],
    *,
    backup: bool = True,
) -> Plan:
    """Read the node's config file and plan the edit (the diff is in the summary)."""
    changes = parse_set(sets)
    for name in unsets:
        key = canonical_name(name)
        _refuse_secret(key)
        if key in changes:
            raise BadInput(f"{key} is both set and unset")
        changes[key] = []
    path, source = locate(session, address)
    host = session.host(address)
    text, _ = read_config(host, path)
    edit = ConfigEdit(host.name, path, text, edit_text(text, changes), changes)
    node = str(address)
    if not edit.changed:
        return Plan(
            "config-file",
            session.cluster_name,
            (),
            summary=f"{path} on {host.name} already says that; nothing to do",
            nothing_to_do=True,
        )
    step = Step(
        1,
        node,
        "config-edit",
        f"rewrite {path} on {host.name}" + (" (backup kept)" if backup else ""),
        command=("write", path),
        precondition=f"the file is unchanged since it was read (sha256 {edit.old_sha256[:12]})",
        verify="read back: each edited directive has its new value",
        idempotent=False,
        commit=True,
        args={
            "path": path,
            "changes": changes,
            "expect_sha256": edit.old_sha256,
            "backup": backup,
        },
    )
    findings = [
        Finding(
            "info",
            "file_only",
            f"only the file ({source}) changes; the running server keeps its settings "
            "until it restarts (use CONFIG SET for the running value)",
            node,
        )
    ]
    return Plan(
        "config-file",
        session.cluster_name,
        (step,),
        tuple(findings),
        summary=f"edit {path} on {host.name}:\n{edit.diff()}",
        touched=(node,),
    )


@action("config-edit")
def run_config_edit(ctx: RunContext, step: Step) -> str:
    path = str(step.args["path"])
    changes: dict[str, Lines] = {
        str(k): [list(map(str, line)) for line in v] for k, v in step.args["changes"].items()
    }
    host = ctx.session.host(Address.parse(step.node))
    text = _read_text(host, path)
    if hashlib.sha256(text.encode()).hexdigest() != step.args["expect_sha256"]:
        raise CommandFailed(
            f"{host.name}: {path} changed since the plan was made; nothing written",
            hint="run the command again to see the new diff",
        )
    edit = ConfigEdit(host.name, path, text, edit_text(text, changes), changes)
    kept = apply_edit(host, edit, backup=bool(step.args.get("backup", True)))
    return f"{path} rewritten on {host.name}" + (f"; backup {kept}" if kept else "")


# ----------------------------------------------------------------------------- --persist


def replication_lines(session: Session, address: Address) -> tuple[dict[str, Lines], list[str]]:
    """The node's running replication settings as config lines, and what could not be read
    (``CONFIG GET`` may be renamed away; ``ROLE`` always answers)."""
    node = session.node(address)
    role = node.execute("ROLE")
    lines: dict[str, Lines] = {"replicaof": []}
    if isinstance(role, list) and role and str(role[0]) == "slave":
        lines["replicaof"] = [[str(role[1]), str(role[2])]]
    missing: list[str] = []
    try:
        reply = node.execute("CONFIG", "GET", "masteruser", "masterauth")
    except CommandFailed:
        missing.append("masteruser/masterauth (CONFIG GET is not available)")
        return lines, missing
    pairs: dict[str, Any] = dict(zip(reply[::2], reply[1::2], strict=False))
    for name in ("masteruser", "masterauth"):
        value = str(pairs.get(name) or "")
        lines[name] = [[value]] if value else []
    return lines, missing


def running_lines(
    session: Session, address: Address, keys: Sequence[str]
) -> tuple[dict[str, Lines], list[str]]:
    """The running values of ``keys`` as the config lines ``CONFIG REWRITE`` would write,
    and what could not be read."""
    node = session.node(address)
    lines: dict[str, Lines] = {}
    missing: list[str] = []
    for key in dict.fromkeys(keys):
        try:
            reply = node.execute("CONFIG", "GET", key)
        except CommandFailed:
            missing.append(f"{key} (CONFIG GET is not available)")
            continue
        pairs = dict(zip(reply[::2], reply[1::2], strict=False)) if isinstance(reply, list) else {}
        if key not in pairs:
            missing.append(f"{key} (CONFIG GET returned nothing)")
            continue
        lines[key] = file_lines(key, str(pairs[key]))
    return lines, missing


def file_lines(key: str, value: str) -> Lines:
    """A running value as config lines.

    >>> file_lines("save", "3600 1 300 100"), file_lines("maxmemory", "1073741824")
    ([['3600', '1'], ['300', '100']], [['1073741824']])
    >>> file_lines("client-output-buffer-limit", "normal 0 0 0 replica 256mb 64mb 60")
    [['normal', '0', '0', '0'], ['replica', '256mb', '64mb', '60']]
    """
    words = value.split()
    if key == "save":
        return [[words[i], words[i + 1]] for i in range(0, len(words) - 1, 2)] or [[""]]
    if key == "client-output-buffer-limit":
        return [words[i : i + 4] for i in range(0, len(words), 4)]
    return [[value]]


def persist_via_file(
    session: Session,
    address: Address,
    reason: str,
    keys: Sequence[str] | None = None,
    path: str | None = None,
) -> str:
    """The fallback when ``CONFIG REWRITE`` failed for ``reason`` (``--persist``, ``drift
    --fix``): write the node's running values of ``keys`` (default: its replication
    settings) into its config file (``path``, else :func:`locate`'s), only the directives
    whose effective value differs, ``CONFIG REWRITE``'s layout, atomically with a dated
    backup, read back. Says which path was taken."""
    if path:
        source = "the file drift read"
    else:
        path, source = locate(session, address)
    host = session.host(address)
    if keys is None:
        wanted, missing = replication_lines(session, address)
    else:
        wanted, missing = running_lines(session, address, keys)
    text, cfg = read_config(host, path)
    changes = {k: v for k, v in wanted.items() if effective(cfg, k) != v}
    taken = f"CONFIG REWRITE failed ({reason}); "
    if not changes:
        done = taken + f"{path} on {host.name} ({source}) already has the change"
    else:
        edit = ConfigEdit(host.name, path, text, edit_text(text, changes), changes)
        kept = apply_edit(host, edit)
        done = taken + (
            f"wrote {', '.join(changes)} into {path} on {host.name} ({source}) instead "
            f"(edited as CONFIG REWRITE would{f'; backup {kept}' if kept else ''})"
        )
    if missing:
        done += f"; not persisted: {', '.join(missing)}"
    return done


def fence_config(session: Session, address: Address, master: Address) -> str:
    """Point the node's config file at ``master`` (``replicaof``), so that whenever it
    restarts it comes back as a replica, whatever its running state is now."""
    path, source = locate(session, address)
    host = session.host(address)
    text, cfg = read_config(host, path)
    want: Lines = [[master.host, str(master.port)]]
    if effective(cfg, "replicaof") == want:
        return f"{path} on {host.name} ({source}) already says replicaof {master}"
    edit = ConfigEdit(
        host.name, path, text, edit_text(text, {"replicaof": want}), {"replicaof": want}
    )
    kept = apply_edit(host, edit)
    return (
        f"{path} on {host.name} ({source}) now says replicaof {master}: a restart brings "
        f"{address} back as its replica" + (f"; backup {kept}" if kept else "")
    )


def show_config(session: Session, address: Address) -> dict[str, Any]:
    """The node's config file and its effective directives (secrets redacted)."""
    path, source = locate(session, address)
    host = session.host(address)
    _, cfg = read_config(host, path)
    directives = []
    for d in cfg.directives:
        secret = d.name in SECRET_DIRECTIVES
        args = (
            [d.args[0], "***"]
            if secret and d.name == "user" and d.args
            else ["***"]
            if secret
            else list(d.args)
        )
        directives.append(
            {
                "name": d.name,
                "args": args,
                "line": " ".join(quote_arg(a) for a in args),
                "where": f"{d.file}:{d.lineno}",
            }
        )
    return {
        "node": str(address),
        "host": host.name,
        "path": path,
        "found_by": source,
        "files": list(cfg.files),
        "directives": directives,
    }
