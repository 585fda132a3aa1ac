"""One mutating operation per replication group at a time.

The lock's identity is the replication group, not the way it was named on the command
line: every member (each address, hostnames resolved, and each run id) is one name, and an
operation holds all of its group's names. Two operations whose groups share any member
exclude each other, whatever seeds, address spellings or order they were given.

Two layers: a local ``flock`` per name (``$XDG_STATE_HOME/redisops/locks/<name>.lock``)
that stops two operators on one host at once, even when the master is dead; and a key on
the master, ``redisops:lock`` (``SET NX PX``, owner token, expiry), that stops operators on
different hosts. A second attempt fails with who holds it and since when. A key that
cannot be written (ACL, OOM, not a Redis master) stops the operation. The key is released
only by its owner (``WATCH``/``MULTI``/``DEL``), wherever the master is by then.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from redisops.errors import BadInput, CommandFailed, Locked, RedisopsError, Refused, Unreachable
from redisops.model import Address
from redisops.redis_node import RedisNode
from redisops.resolve import resolve_host

LOCK_KEY = "redisops:lock"


class LockUnavailable(Refused):
    """The lock key could not be written on the master: the operation does not start."""


def locks_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "redisops" / "locks"


def _safe_name(cluster: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", cluster)[:120] or "cluster"


def identities(names: Iterable[str]) -> list[str]:
    """The lock names for group members: ``run:<id>`` as given; an address becomes one
    ``addr:<ip>:<port>`` per address its host resolves to (so ``localhost:7000`` and
    ``127.0.0.1:7000`` meet); anything else is a cluster name. Names already in this form
    are kept.

    >>> identities(["run:abc", "127.0.0.1:7000", "cache-prod/x"])
    ['addr:127.0.0.1:7000', 'cluster:cache-prod/x', 'run:abc']
    >>> identities(identities(["127.0.0.1:7000"]))
    ['addr:127.0.0.1:7000']
    """
    out: set[str] = set()
    for name in names:
        if name.startswith(("run:", "addr:", "cluster:")):
            out.add(name)
            continue
        try:
            addr = Address.parse(name)
        except BadInput:
            out.add(f"cluster:{name}")
            continue
        out.update(f"addr:{ip}:{addr.port}" for ip in resolve_host(addr.host))
    return sorted(out)


def _describe(holder: dict[str, Any]) -> str:
    since = holder.get("since")
    age = f", {int(time.time() - since)}s ago" if isinstance(since, (int, float)) else ""
    when = (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))
        if isinstance(since, (int, float))
        else "?"
    )
    return (
        f"{holder.get('operator', '?')}@{holder.get('host', '?')} (pid {holder.get('pid', '?')}, "
        f"{holder.get('operation', '?')}) since {when}{age}"
    )


def take_file_lock(path: Path, holder: dict[str, Any], cluster: str) -> IO[str]:
    """``flock`` the file at ``path`` (created if missing) and write ``holder`` into it.

    The file is removed again on release (no lock file left behind per name), so a lock
    taken on a file that was unlinked meanwhile is not the lock: after ``flock`` the path
    must still name the same file, or the attempt starts over.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        f = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the operation
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            try:
                held_by = json.loads(f.read() or "{}")
            except ValueError:
                held_by = {}
            f.close()
            raise Locked(
                f"cluster {cluster} is locked by {_describe(held_by)}",
                hint="wait for that operation to finish",
            ) from None
        try:
            same = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        f.close()  # its holder released and removed it while we waited: take the new one
    f.seek(0)
    f.truncate()
    f.write(json.dumps(holder))
    f.flush()
    return f


def drop_file_lock(path: Path, f: IO[str]) -> None:
    """Remove the lock file while still holding it, then unlock: nothing is left behind,
    and whoever opened the old file sees it is gone (see :func:`take_file_lock`)."""
    try:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    finally:
        f.close()


class ClusterLock:
    """The lock of one replication group. ``members`` are the group's addresses and
    ``run:<id>`` names (see :func:`identities`); without them the cluster name is the
    only name."""

    def __init__(
        self,
        cluster: str,
        operation: str,
        operator: str,
        ttl_s: int = 900,
        directory: Path | None = None,
        members: Iterable[str] = (),
    ) -> None:
        self.cluster = cluster
        self.token = uuid.uuid4().hex
        self.ttl_ms = ttl_s * 1000
        self.holder = {
            "token": self.token,
            "operator": operator,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "operation": operation,
            "since": time.time(),
        }
        self.directory = directory or locks_dir()
        self.names = identities(list(members) or [cluster])
        self._files: dict[str, IO[str]] = {}
        self._also: list[RedisNode] = []  # other groups' masters holding our key
        self.key_on: RedisNode | None = None
        self.warnings: list[str] = []

    @property
    def path(self) -> Path:
        """The file of the lock's first name (all live in :attr:`directory`)."""
        return self._path(self.names[0])

    @property
    def held(self) -> bool:
        """Whether any layer is still held."""
        return bool(self._files) or self.key_on is not None or bool(self._also)

    def _path(self, name: str) -> Path:
        return self.directory / f"{_safe_name(name)}.lock"

    # ------------------------------------------------------------------ local layer
    def _acquire_local(self) -> None:
        self.extend(self.names)

    def extend(self, members: Iterable[str]) -> None:
        """Hold the local lock of more members too (the group grew on a fresh read);
        raise :class:`Locked` naming the holder when one is taken, holding no new name."""
        wanted = [n for n in identities(members) if n not in self._files]
        self.directory.mkdir(parents=True, exist_ok=True)
        taken: list[str] = []
        for name in wanted:
            try:
                self._files[name] = take_file_lock(self._path(name), self.holder, self.cluster)
            except Locked:
                for other in taken:
                    self._drop(other)
                raise
            taken.append(name)
        self.names = sorted({*self.names, *wanted})

    def _drop(self, name: str) -> None:
        f = self._files.pop(name, None)
        if f is not None:
            drop_file_lock(self._path(name), f)

    def _release_local(self) -> None:
        for name in list(self._files):
            self._drop(name)

    # ------------------------------------------------------------------ key on the master
    def acquire(self, master: RedisNode | None, *, local_only_ok: bool = False) -> None:
        """Take both layers; raise :class:`Locked` naming the holder when taken.

        A key that cannot be written raises :class:`LockUnavailable` (nothing is held
        then), unless ``local_only_ok`` (``--force``), which goes on with the local layer.
        """
        self._acquire_local()
        if master is None:
            self.warnings.append("no reachable master: only the local lock is held")
            return
        value = json.dumps(self.holder)
        try:
            ok = master.execute("SET", LOCK_KEY, value, "NX", "PX", self.ttl_ms)
        except CommandFailed as exc:
            reason = exc.message.rsplit(" failed: ", 1)[-1]  # Redis's answer, not our command
            if local_only_ok:
                self.warnings.append(
                    f"could not write the lock key on {master.address} ({reason}); "
                    f"only the local lock is held (--force)"
                )
                return
            self._release_local()
            raise LockUnavailable(
                f"cannot take the cluster lock: SET {LOCK_KEY} on {master.address} failed "
                f"({reason}); nothing was changed",
                hint="let the operator's user write that key (ACL), free memory, or pass "
                "--force to go on with only this host's lock",
            ) from None
        except Unreachable:
            self._release_local()
            raise
        if ok is None:
            raw = master.execute("GET", LOCK_KEY)
            ttl = master.execute("PTTL", LOCK_KEY)
            self._release_local()
            try:
                holder = json.loads(raw) if raw else {}
            except ValueError:
                holder = {}
            expires = (
                f"; it expires in {int(ttl) // 1000}s" if isinstance(ttl, int) and ttl > 0 else ""
            )
            raise Locked(
                f"cluster {self.cluster} is locked by {_describe(holder)}{expires}",
                hint="wait for that operation to finish",
            )
        self.key_on = master

    def acquire_also(self, name: str, master: RedisNode | None) -> None:
        """Hold the key on a second group's master too (the group a replica leaves when it
        is attached elsewhere: both change, so neither may be changed meanwhile; its
        members' local locks are already among this lock's names). Released with this
        lock; raises :class:`Locked` naming that group's holder."""
        if master is None or any(n.address == master.address for n in self._also):
            return
        if self.key_on is not None and self.key_on.address == master.address:
            return
        try:
            ok = master.execute("SET", LOCK_KEY, json.dumps(self.holder), "NX", "PX", self.ttl_ms)
        except CommandFailed as exc:
            reason = exc.message.rsplit(" failed: ", 1)[-1]
            self.warnings.append(
                f"could not write the lock key on {master.address} ({reason}): the group "
                f"{name} is locked on this host only"
            )
            return
        if ok is None:
            raw = master.execute("GET", LOCK_KEY)
            try:
                holder = json.loads(raw) if raw else {}
            except ValueError:
                holder = {}
            raise Locked(
                f"cluster {name} is locked by {_describe(holder)}",
                hint="wait for that operation to finish",
            )
        self._also.append(master)

    def release(self, master: RedisNode | None = None) -> None:
        """Drop the key (on ``master``, or where it was taken) if still ours, then the local lock."""
        try:
            node = master or self.key_on
            if node is not None and self.key_on is not None:
                self._release_key(node)
            for other in self._also:
                self._delete_if_ours(other, "release the lock key")
        finally:
            self.key_on = None
            self._also.clear()
            self._release_local()

    def _release_key(self, node: RedisNode) -> None:
        self._delete_if_ours(node, "release the lock key")

    def drop_copy(self, node: RedisNode) -> bool:
        """Delete the copy of our key that replication left on ``node``.

        The key is written on the master, so every replica gets it. A replica promoted while
        the lock is held (``detach``) keeps that copy as a master: it would refuse every
        operation on its new cluster until the key expires. Only a key carrying our token is
        deleted. Returns whether one was.
        """
        return self._delete_if_ours(node, "remove the replicated lock key")

    def _delete_if_ours(self, node: RedisNode, what: str) -> bool:
        try:
            replies = node.pipeline([("WATCH", LOCK_KEY), ("GET", LOCK_KEY)])
            raw = replies[1]
            holder = json.loads(raw) if raw else {}
            if not isinstance(holder, dict) or holder.get("token") != self.token:
                node.execute("UNWATCH")
                return False
            node.pipeline([("MULTI",), ("DEL", LOCK_KEY), ("EXEC",)])
            return True
        except (RedisopsError, ValueError) as exc:
            self.warnings.append(f"could not {what} on {node.address}: {exc}; it expires by itself")
            return False

    def __enter__(self) -> ClusterLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
