"""Backup destinations: a local directory, or ``sftp://[user@]host[:port]/path``.

Everything here goes through the :class:`~redisops.host.Host` protocol, so a destination on
another machine behaves like a local one: files are written with ``put`` (temp name, fsync,
rename), checksums are computed on the machine that holds the file (``sha256``), and
directories are made, files moved and removed with plain POSIX commands (``run``). A remote
destination is reached over the SSH layer by :func:`session_connector` (a command's session:
its options and connections) or :func:`sftp_host` (a connection of its own).

Layout of a destination::

    DEST/<group>/catalogue.json
    DEST/<group>/<UTC stamp>-<node>.rdb          (.rdb.enc when encrypted)
    DEST/<group>/failed/<...>                    (backups that failed verification)

>>> parse_dest("/var/backups/redis").kind
'local'
>>> d = parse_dest("sftp://backup@vault.example:2222/srv/redis")
>>> (d.kind, d.user, d.host, d.port, d.path)
('sftp', 'backup', 'vault.example', 2222, '/srv/redis')
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import posixpath
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from redisops.backup.catalogue import CATALOGUE, Catalogue
from redisops.errors import BadInput, Locked
from redisops.host import Host, HostError, LocalHost, ProgressFn

if TYPE_CHECKING:  # pragma: no cover
    from redisops.session import Session


@dataclass(frozen=True)
class DestSpec:
    url: str
    kind: str  # local | sftp
    path: str
    user: str | None = None
    host: str | None = None
    port: int | None = None

    @property
    def offhost(self) -> bool:
        """Whether files here leave this machine (an ``sftp://`` destination)."""
        return self.kind == "sftp"


def parse_dest(text: str) -> DestSpec:
    """A destination from the command line; :class:`BadInput` when malformed."""
    if "://" not in text:
        if not text:
            raise BadInput("empty destination", hint="give a directory or sftp://host/path")
        path = os.path.abspath(os.path.expanduser(text))
        return DestSpec(path, "local", path)
    parts = urlsplit(text)
    if parts.scheme == "file":
        return parse_dest(unquote(parts.path))
    if parts.scheme != "sftp":
        raise BadInput(
            f"destination {text!r}: unsupported scheme {parts.scheme!r}",
            hint="use a local directory or sftp://[user@]host[:port]/path",
        )
    if parts.password is not None:
        raise BadInput(
            f"destination {parts.hostname}: a password in the URL is not accepted",
            hint="SSH authenticates with keys (see docs/ssh.md)",
        )
    try:
        port = parts.port
    except ValueError:
        raise BadInput(f"destination {text!r}: invalid port") from None
    if not parts.hostname or not parts.path or parts.path == "/":
        raise BadInput(
            f"destination {text!r} needs a host and a directory",
            hint="e.g. sftp://backup@vault.example/srv/redis",
        )
    user = unquote(parts.username) if parts.username else None
    path = unquote(parts.path)
    return DestSpec(text, "sftp", path, user, parts.hostname, port)


def sftp_host(spec: DestSpec) -> Host:
    """The :class:`Host` of an ``sftp://`` destination, on an SSH connection of its own
    (closed with the destination).

    The way commands without a session reach a destination (``backup list``, ``verify``,
    the health checks' backup age): OpenSSH's own settings (``~/.ssh/config``,
    ``known_hosts``, strict host keys). Commands that have a session pass
    :func:`session_connector` instead, so its ``--ssh-*`` options and connections apply.
    """
    from redisops.ssh.pool import own_host
    from redisops.ssh.settings import Resolver

    assert spec.host is not None
    return own_host(Resolver().machine(spec.host, spec.user, spec.port))


def session_connector(session: Session) -> Callable[[DestSpec], Host]:
    """Reach ``sftp://`` destinations over the session's SSH connections and options."""

    def connect(spec: DestSpec) -> Host:
        assert spec.host is not None
        return session.machine_host(spec.host, spec.user, spec.port)

    return connect


class Destination:
    """One destination, reached through a :class:`Host`."""

    def __init__(self, spec: DestSpec, host: Host) -> None:
        self.spec = spec
        self.host = host
        self.root = spec.path
        self._locks: dict[str, IO[str] | str] = {}

    @property
    def url(self) -> str:
        return self.spec.url

    @property
    def is_local(self) -> bool:
        return self.spec.kind == "local"

    def path(self, group: str, name: str = "") -> str:
        return posixpath.join(self.root, group, name) if name else posixpath.join(self.root, group)

    def local_path(self, group: str, name: str = "") -> Path | None:
        """The path on this machine, for a local destination."""
        return Path(self.path(group, name)) if self.is_local else None

    # ------------------------------------------------------------------ files
    def _run(self, *argv: str) -> None:
        self.host.run(list(argv), timeout=120).check(self.host.name)

    def ensure_dir(self, group: str, sub: str = "") -> None:
        self._run("mkdir", "-p", "--", self.path(group, sub) if sub else self.path(group))

    def put(
        self, local: Path, group: str, name: str, progress: ProgressFn | None = None
    ) -> tuple[int, str]:
        """Copy a local file here (atomically); returns (size, sha256) of what was sent."""
        return self.host.put(local, self.path(group, name), progress=progress)

    def sha256(self, group: str, name: str) -> str:
        return self.host.sha256(self.path(group, name))

    def size(self, group: str, name: str) -> int | None:
        st = self.host.stat(self.path(group, name))
        return None if st is None else st.size

    def move(self, group: str, name: str, new_name: str) -> None:
        self._run("mv", "-f", "--", self.path(group, name), self.path(group, new_name))

    def remove(self, group: str, name: str) -> None:
        self._run("rm", "-f", "--", self.path(group, name))

    def open_read(self, group: str, name: str) -> contextlib.AbstractContextManager[IO[bytes]]:
        return self.host.open_read(self.path(group, name))

    # ------------------------------------------------------------------ catalogue
    def read_catalogue(self, group: str) -> Catalogue:
        where = self.path(group, CATALOGUE)
        if self.host.stat(where) is None:
            return Catalogue(group)
        return Catalogue.from_json(self.host.read_bytes(where).decode("utf-8"), where)

    def write_catalogue(self, catalogue: Catalogue) -> None:
        self.ensure_dir(catalogue.group)
        self.host.write_atomic(
            self.path(catalogue.group, CATALOGUE), catalogue.to_json().encode(), backup=False
        )

    def groups(self) -> list[str]:
        """The groups that have a catalogue here, sorted."""
        if self.host.stat(self.root) is None:
            return []
        found = self.host.run(
            ["find", self.root, "-mindepth", "2", "-maxdepth", "2", "-name", CATALOGUE],
            timeout=60,
        ).check(self.host.name)
        names = {posixpath.basename(posixpath.dirname(p)) for p in found.text().splitlines() if p}
        return sorted(names)

    def read_groups(self, group: str | None = None) -> list[str]:
        """The groups a reading command (list, verify, restore) looks at: ``group`` or all.

        A destination or a group that is not there is bad input, not an empty listing: a
        mistyped ``--dest`` in a cron job must not pass as "nothing to check" for ever.
        """
        if self.host.stat(self.root) is None:
            raise BadInput(
                f"backup destination {self.url} does not exist",
                hint="check --dest (or REDISOPS_BACKUP_DEST)",
            )
        groups = self.groups()
        if group is None:
            return groups
        if group not in groups:
            raise BadInput(
                f"no group {group!r} at {self.url} (groups: {', '.join(groups) or 'none'})",
                hint="see 'redisops backup list'",
            )
        return [group]

    # ------------------------------------------------------------------ lock
    @contextlib.contextmanager
    def lock(self, group: str) -> Iterator[None]:
        """One writer per group at a time: backups, copies and pruning of one group here.

        Locally an ``flock`` (released by the kernel if we die); on a remote destination a
        lock directory (``mkdir`` is atomic), removed on the way out.
        """
        self.ensure_dir(group)
        where = self.path(group, ".lock")
        holder = json.dumps(
            {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
        )
        if self.is_local:
            fh = open(where, "a+")  # noqa: SIM115 - held until the block ends
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                other = fh.read().strip()
                fh.close()
                raise Locked(
                    f"{self.path(group)} is being written by another backup ({other or 'unknown'})",
                    hint="wait for it to finish",
                ) from None
            fh.seek(0)
            fh.truncate()
            fh.write(holder)
            fh.flush()
            try:
                yield
            finally:
                fh.close()
            return
        made = self.host.run(["mkdir", "--", where + ".d"], timeout=60)
        if not made.ok:
            raise Locked(
                f"{self.url}/{group} is locked by another backup ({where}.d exists)",
                hint=f"wait for it; if no backup runs, remove {where}.d on {self.spec.host}",
            )
        try:
            yield
        finally:
            with contextlib.suppress(HostError):
                self._run("rmdir", "--", where + ".d")

    def close(self) -> None:
        self.host.close()


def open_destination(
    spec: DestSpec, connect: Callable[[DestSpec], Host] | None = None
) -> Destination:
    """The destination ``spec`` names, reached locally or through ``connect`` (SSH)."""
    if spec.kind == "local":
        return Destination(spec, LocalHost())
    return Destination(spec, (connect or sftp_host)(spec))
