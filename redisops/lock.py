"""One mutating operation per cluster at a time.

Two layers: a local ``flock`` (``$XDG_STATE_HOME/redisops/locks/<cluster>.lock``) that
stops two operators on one host at once, even when the master is dead; and a key on the
master, ``redisops:lock`` (``SET NX PX``, owner token, expiry), that stops operators on
different hosts. A second attempt fails with who holds it and since when. The key is
released only by its owner (``WATCH``/``MULTI``/``DEL``), wherever the master is by then.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import time
import uuid
from pathlib import Path
from typing import IO, Any

from redisops.errors import CommandFailed, Locked, RedisopsError, Unreachable
from redisops.redis_node import RedisNode

LOCK_KEY = "redisops:lock"


def locks_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "redisops" / "locks"


def _safe_name(cluster: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", cluster)[:120] or "cluster"


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

    The file is removed again on release (no lock file per cluster left behind), so a
    lock taken on a file that was unlinked meanwhile is not the lock: after ``flock`` the
    path must still name the same file, or the attempt starts over.
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
    def __init__(
        self,
        cluster: str,
        operation: str,
        operator: str,
        ttl_s: int = 900,
        directory: Path | None = None,
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
        self.path = (directory or locks_dir()) / f"{_safe_name(cluster)}.lock"
        self._file: IO[str] | None = None
        self._others: list[ClusterLock] = []
        self.key_on: RedisNode | None = None
        self.warnings: list[str] = []

    # ------------------------------------------------------------------ local layer
    def _acquire_local(self) -> None:
        self._file = take_file_lock(self.path, self.holder, self.cluster)

    def _release_local(self) -> None:
        if self._file is not None:
            try:
                drop_file_lock(self.path, self._file)
            finally:
                self._file = None
        for other in self._others:
            other.release()
        self._others.clear()

    def acquire_also(self, name: str, master: RedisNode | None) -> None:
        """Hold the lock of a second group too (e.g. the one a replica leaves when it is
        attached elsewhere): its local file and its key on ``master``; released with this
        lock. Raises :class:`Locked` naming that group's holder."""
        if name == self.cluster or any(o.cluster == name for o in self._others):
            return
        other = ClusterLock(
            name,
            str(self.holder["operation"]),
            str(self.holder["operator"]),
            self.ttl_ms // 1000,
            self.path.parent,
        )
        other.token = self.token
        other.holder = {**self.holder, "token": self.token}
        other.acquire(master)
        self.warnings.extend(w for w in other.warnings if w not in self.warnings)
        self._others.append(other)

    # ------------------------------------------------------------------ key on the master
    def acquire(self, master: RedisNode | None) -> None:
        """Take both layers; raise :class:`Locked` naming the holder when taken."""
        self._acquire_local()
        if master is None:
            self.warnings.append("no reachable master: only the local lock is held")
            return
        value = json.dumps(self.holder)
        try:
            ok = master.execute("SET", LOCK_KEY, value, "NX", "PX", self.ttl_ms)
        except CommandFailed as exc:
            reason = exc.message.rsplit(" failed: ", 1)[-1]  # Redis's answer, not our command
            self.warnings.append(
                f"could not write the lock key on {master.address} ({reason}); "
                f"only the local lock is held"
            )
            return
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

    def release(self, master: RedisNode | None = None) -> None:
        """Drop the key (on ``master``, or where it was taken) if still ours, then the local lock."""
        try:
            node = master or self.key_on
            if node is not None and self.key_on is not None:
                self._release_key(node)
        finally:
            self.key_on = None
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
