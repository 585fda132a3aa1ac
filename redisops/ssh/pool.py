"""One SSH connection per host per run, shared; many hosts worked on in parallel.

Every command, forward and file copy to a host goes over the same authenticated
connection (a jump host's connection is shared by every target behind it). A host that
failed to connect is not tried again in the same run: the first error is raised again, so
twenty nodes behind one bad host key give one refusal, not twenty handshakes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from redisops.errors import RedisopsError
from redisops.retry import RetryPolicy
from redisops.ssh.connect import CONNECT_RETRY, Notify, SSHConnection, connect
from redisops.ssh.settings import NodeSSH, SSHTarget
from redisops.ssh.tunnel import Forwarder

if TYPE_CHECKING:  # pragma: no cover
    from redisops.ssh.remote import SSHHost

T = TypeVar("T")
U = TypeVar("U")

#: parallel hosts at most (each costs a thread and an sshd session on the far side)
DEFAULT_WORKERS = 8


class SSHPool:
    def __init__(
        self,
        *,
        retry: RetryPolicy = CONNECT_RETRY,
        notify: Notify | None = None,
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        self.retry = retry
        self.notify = notify
        self.workers = max(1, workers)
        self._lock = threading.Lock()
        self._key_locks: dict[Any, threading.Lock] = {}
        self._conns: dict[Any, SSHConnection] = {}
        self._failed: dict[Any, BaseException] = {}
        self._order: list[Any] = []
        self._forwarders: dict[Any, Forwarder] = {}
        self._hosts: dict[Any, SSHHost] = {}

    def connection(self, target: SSHTarget) -> SSHConnection:
        """The run's connection to ``target`` (connected, through its jump hosts, on first use)."""
        with self._lock:
            key_lock = self._key_locks.setdefault(target.key, threading.Lock())
        with key_lock:
            failed = self._failed.get(target.key)
            if failed is not None:
                raise _again(failed)
            conn = self._conns.get(target.key)
            if conn is not None and conn.alive:
                return conn
            try:
                via = self.connection(target.via) if target.via is not None else None
                conn = connect(target, via=via, retry=self.retry, notify=self.notify)
            except Exception as exc:
                self._failed[target.key] = exc
                raise
            with self._lock:
                self._conns[target.key] = conn
                self._order.append(target.key)
            return conn

    def forwarder(self, target: SSHTarget, host: str, port: int) -> Forwarder:
        """The run's local forward to ``host:port`` through ``target``."""
        key = (target.key, host, port)
        with self._lock:
            fwd = self._forwarders.get(key)
        if fwd is not None:
            return fwd
        conn = self.connection(target)
        with self._lock:
            fwd = self._forwarders.get(key)
            if fwd is None:
                fwd = self._forwarders[key] = Forwarder(conn, host, port)
        return fwd

    def forwarders(self) -> list[Forwarder]:
        """The local forwards open now."""
        with self._lock:
            return list(self._forwarders.values())

    def host(self, node: NodeSSH) -> SSHHost:
        """The :class:`~redisops.ssh.remote.SSHHost` of a node (connected lazily)."""
        from redisops.ssh.remote import SSHHost

        key = (node.target.key, node.sudo)
        with self._lock:
            host = self._hosts.get(key)
            if host is None:
                host = self._hosts[key] = SSHHost(self, node.target, sudo=node.sudo)
        return host

    def map(self, fn: Callable[[T], U], items: Iterable[T]) -> list[U | BaseException]:
        """``fn`` over ``items`` on at most ``workers`` threads; each result or its error,
        in order (one host's failure does not stop the others)."""
        todo = list(items)

        def safe(item: T) -> U | BaseException:
            try:
                return fn(item)
            except Exception as exc:
                return exc

        if len(todo) <= 1:
            return [safe(i) for i in todo]
        with ThreadPoolExecutor(min(self.workers, len(todo)), "ssh-pool") as ex:
            return list(ex.map(safe, todo))

    def close(self) -> None:
        """Close forwards, then connections, targets before the jump hosts they go through."""
        with self._lock:
            forwarders = list(self._forwarders.values())
            self._forwarders.clear()
            conns = [self._conns[k] for k in reversed(self._order) if k in self._conns]
            self._conns.clear()
            self._order.clear()
            self._hosts.clear()
        for fwd in forwarders:
            fwd.close()
        for conn in conns:
            conn.close()


def own_host(node: NodeSSH, *, notify: Notify | None = None) -> SSHHost:
    """A host on a connection of its own, closed with it: for code that has no run's pool
    (``backup list`` and ``backup verify`` of an ``sftp://`` destination)."""
    from redisops.ssh.remote import SSHHost

    return SSHHost(SSHPool(notify=notify), node.target, sudo=node.sudo, owns_pool=True)


def _again(exc: BaseException) -> BaseException:
    """The error a host failed with, as a new exception (the first one's traceback is not
    shared between the threads that ask again)."""
    if isinstance(exc, RedisopsError):
        return type(exc)(exc.message, hint=exc.hint)
    return exc
