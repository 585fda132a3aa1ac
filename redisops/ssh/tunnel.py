"""A local forward to Redis over SSH: OpenSSH's ``-L 127.0.0.1:0:host:port``.

Hand-written (about a hundred lines over paramiko's ``direct-tcpip`` channels) rather than
taken from ``sshtunnel``: that project is unmaintained, fails on paramiko >= 4 and ignores
ProxyJump (see docs/ssh.md).

The forwarder listens on 127.0.0.1 on an ephemeral port, so nothing outside this machine
can use it. Each accepted connection gets its own channel, and one thread pumps bytes both
ways until either side closes. :meth:`Forwarder.prepare` opens the channel *before* the
client connects, so a Redis port that the far side cannot reach fails there, with the
SSH server's reason, instead of as a connection that closes without a word.
"""

from __future__ import annotations

import contextlib
import queue
import selectors
import socket
import threading
from typing import TYPE_CHECKING, Any

from redisops.ssh.connect import CHANNEL_TIMEOUT_S, SSHConnection

if TYPE_CHECKING:  # pragma: no cover
    import paramiko

BUFFER = 65536


class Forwarder:
    """127.0.0.1:<ephemeral> here -> ``host:port`` as seen from the SSH server."""

    def __init__(
        self, conn: SSHConnection, host: str, port: int, timeout: float = CHANNEL_TIMEOUT_S
    ) -> None:
        self.conn = conn
        self.dest = (host, port)
        self.timeout = timeout
        self.connections = 0  # accepted so far
        self.bytes_out = 0  # client -> Redis
        self.bytes_in = 0  # Redis -> client
        self._ready: queue.SimpleQueue[paramiko.Channel] = queue.SimpleQueue()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.local: tuple[str, int] = self._listener.getsockname()[:2]
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, Any]] = []
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"ssh-forward-{self.local[1]}", daemon=True
        )
        self._acceptor.start()

    def __str__(self) -> str:
        host, port = self.dest
        return f"127.0.0.1:{self.local[1]} -> {host}:{port} via ssh {self.conn.name}"

    def prepare(self) -> tuple[str, int]:
        """Open the channel the next client will use; return where to connect.

        Raises :class:`~redisops.errors.Unreachable` with the server's reason when the
        destination cannot be reached from the SSH server.
        """
        self._ready.put(self.conn.direct_tcpip(*self.dest, timeout=self.timeout))
        return self.local

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            self.connections += 1
            worker = threading.Thread(
                target=self._serve, args=(client,), name=f"{self._acceptor.name}-c", daemon=True
            )
            with self._lock:
                self._threads.append(worker)
            worker.start()

    def _channel(self) -> Any | None:
        try:
            return self._ready.get_nowait()
        except queue.Empty:
            pass
        try:  # a client that did not call prepare() (e.g. a reconnect)
            return self.conn.direct_tcpip(*self.dest, timeout=self.timeout)
        except Exception:
            return None

    def _serve(self, client: socket.socket) -> None:
        chan = self._channel()
        if chan is None:
            client.close()
            return
        with self._lock:
            self._pairs.append((client, chan))
        try:
            self._pump(client, chan)
        finally:
            for end in (chan, client):
                with contextlib.suppress(Exception):
                    end.close()
            with self._lock, contextlib.suppress(ValueError):
                self._pairs.remove((client, chan))

    def _pump(self, client: socket.socket, chan: Any) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(client, selectors.EVENT_READ, "out")
            sel.register(chan, selectors.EVENT_READ, "in")
            while not self._closed.is_set():
                for key, _ in sel.select(timeout=1.0):
                    try:
                        if key.data == "out":
                            data = client.recv(BUFFER)
                            if not data:
                                return
                            self.bytes_out += len(data)
                            chan.sendall(data)
                        else:
                            data = chan.recv(BUFFER)
                            if not data:
                                return
                            self.bytes_in += len(data)
                            client.sendall(data)
                    except OSError:
                        return

    def close(self) -> None:
        """Stop listening, close every channel and client socket, wait for the threads."""
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            pairs = list(self._pairs)
            threads = list(self._threads)
        for client, chan in pairs:
            for end in (chan, client):
                with contextlib.suppress(Exception):
                    end.close()
        while True:
            try:
                self._ready.get_nowait().close()
            except queue.Empty:
                break
        self._acceptor.join(timeout=2.0)
        for t in threads:
            t.join(timeout=2.0)
