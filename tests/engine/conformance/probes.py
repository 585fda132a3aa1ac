"""Observation helpers for the conformance scenarios (spec §9).

Everything here talks to nodes over plain TCP on ``127.0.0.1:<port>``, so it works for
any :class:`~tests.engine.conformance.backend.Backend`:

* :class:`RawConn` — a tiny RESP2 client returning replies *as sent* (simple strings as
  ``str``, bulk strings as ``bytes``, errors as :class:`Err`, integers as ``int``), used
  wherever exact reply types or error texts matter (ROLE, INFO text, REPLICAOF errors...).
* :class:`PseudoReplica` — a raw-socket replica: ``REPLCONF capa psync2``, ``PSYNC``,
  then the first reply line and the stream bytes that follow.
* :func:`info`, :func:`counters`, :func:`quiesce` — INFO fields as exact strings, the
  sync counters, and the "same offset everywhere and acked" baseline.
* :func:`encode`, :func:`parse_stream` — RESP multibulk encoding of commands (to compute
  expected offsets from byte lengths) and parsing of captured stream bytes.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from tests.engine.conformance.backend import Node

T = TypeVar("T")
HEX40 = re.compile(r"[0-9a-f]{40}")
ZERO_ID = "0" * 40
HOST = "127.0.0.1"


class ProbeTimeout(AssertionError):
    """A bounded wait ran out."""


def wait_for(
    cond: Callable[[], T], timeout: float = 15.0, what: str = "condition", interval: float = 0.02
) -> T:
    """Poll ``cond`` until it returns a truthy value (returned); connection errors count
    as "not yet". Raises :class:`ProbeTimeout` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = cond()
            if value:
                return value
        except (OSError, RespProtocolError) as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise ProbeTimeout(
                f"timed out after {timeout}s waiting for {what}"
                + (f" (last error: {last!r})" if last else "")
            )
        time.sleep(interval)


# ----------------------------------------------------------------------------- RESP


def encode(*args: str | bytes | int) -> bytes:
    """RESP multibulk of ``args`` (ints as decimal strings): the stream bytes of a command."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def select(db: int) -> bytes:
    """The SELECT a master emits before a keyed command for another DB (§3.3)."""
    return encode("SELECT", db)


MULTI = encode("MULTI")  # 15 bytes
EXEC = encode("EXEC")  # 14 bytes
PING = encode("ping")  # 14 bytes, lower case (§3.4)
GETACK = encode("REPLCONF", "GETACK", "*")  # 37 bytes


class RespProtocolError(Exception):
    """Bytes that are not RESP where RESP was expected."""


@dataclass(frozen=True)
class Err:
    """An error reply; ``text`` is the line without the leading ``-``."""

    text: str

    def __str__(self) -> str:
        return f"-{self.text}"


def parse_stream(data: bytes) -> list[list[bytes]]:
    """Split replication stream bytes into commands (argv lists). The data must consist
    of whole RESP multibulks, nothing else (not even keep-alive newlines)."""
    cmds: list[list[bytes]] = []
    pos = 0
    while pos < len(data):
        if data[pos : pos + 1] != b"*":
            raise RespProtocolError(f"expected '*' at {pos}: {data[pos : pos + 20]!r}")
        end = data.index(b"\r\n", pos)
        n = int(data[pos + 1 : end])
        pos = end + 2
        argv: list[bytes] = []
        for _ in range(n):
            if data[pos : pos + 1] != b"$":
                raise RespProtocolError(f"expected '$' at {pos}: {data[pos : pos + 20]!r}")
            end = data.index(b"\r\n", pos)
            ln = int(data[pos + 1 : end])
            pos = end + 2
            argv.append(data[pos : pos + ln])
            if data[pos + ln : pos + ln + 2] != b"\r\n":
                raise RespProtocolError(f"bad bulk terminator at {pos + ln}")
            pos += ln + 2
        cmds.append(argv)
    return cmds


class _SockReader:
    """Buffered reads from a socket with deadlines."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.eof = False

    def _fill(self, deadline: float) -> bool:
        """Read once more; False on EOF. Raises ``TimeoutError`` at the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("read deadline passed")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError as exc:
            raise TimeoutError("read deadline passed") from exc
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def readline(self, timeout: float) -> bytes:
        """One line without its ``\\r\\n`` (or bare ``\\n``)."""
        deadline = time.monotonic() + timeout
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[: i + 1]
                return line[:-1] if line.endswith(b"\r") else line
            if not self._fill(deadline):
                raise ConnectionError("connection closed by peer")

    def read_exact(self, n: int, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise ConnectionError(f"connection closed after {len(self.buf)} of {n} bytes")
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_window(self, window: float) -> bytes:
        """Everything that arrives within ``window`` seconds (stops early on EOF)."""
        deadline = time.monotonic() + window
        try:
            while not self.eof and self._fill(deadline):
                pass
        except TimeoutError:
            pass
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def read_reply(self, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        line = self.readline(max(deadline - time.monotonic(), 0.001))
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return Err(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.read_exact(n + 2, max(deadline - time.monotonic(), 0.001))
            return data[:-2]
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self.read_reply(max(deadline - time.monotonic(), 0.001)) for _ in range(n)]
        raise RespProtocolError(f"unexpected reply line {line!r}")


class RawConn:
    """A plain RESP2 connection to a node (no retries, no reply decoding)."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.port = port
        self.timeout = timeout
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = _SockReader(self.sock)

    @classmethod
    def to(cls, node: Node, timeout: float = 10.0) -> RawConn:
        return cls(node.port, timeout)

    def send(self, *args: str | bytes | int) -> None:
        self.sock.sendall(encode(*args))

    def send_many(self, commands: Iterable[Sequence[str | bytes | int]]) -> None:
        """Pipeline: all commands in one ``sendall`` (one TCP write)."""
        self.sock.sendall(b"".join(encode(*c) for c in commands))

    def read(self, timeout: float | None = None) -> Any:
        return self.reader.read_reply(self.timeout if timeout is None else timeout)

    def call(self, *args: str | bytes | int, timeout: float | None = None) -> Any:
        self.send(*args)
        return self.read(timeout)

    def read_until_closed(self, timeout: float = 5.0) -> bytes | None:
        """Everything received until the peer closes the connection, or ``None`` if it is
        still open after ``timeout`` seconds."""
        try:
            data = self.reader.read_window(timeout)
        except ConnectionResetError:
            return b""
        return data if self.reader.eof else None

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> RawConn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def call(node: Node, *args: str | bytes | int, timeout: float = 10.0) -> Any:
    """One command on a fresh raw connection; the reply as sent."""
    with RawConn.to(node, timeout) as c:
        return c.call(*args)


def ok(node: Node, *args: str | bytes | int) -> Any:
    """Like :func:`call` but an error reply raises ``AssertionError``."""
    reply = call(node, *args)
    if isinstance(reply, Err):
        raise AssertionError(f"{' '.join(map(str, args))} on :{node.port} -> {reply}")
    return reply


def refuses_connections(node: Node) -> bool:
    """True when nothing listens on the node's port any more."""
    try:
        socket.create_connection((HOST, node.port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


# ----------------------------------------------------------------------------- INFO / ROLE


def info(node: Node, section: str = "replication") -> dict[str, str]:
    """INFO fields as exact strings, in the order the node printed them."""
    text = ok(node, "INFO", section)
    fields: dict[str, str] = {}
    for line in text.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(":")
        fields[key] = value
    return fields


def info_int(node: Node, field: str, section: str = "replication") -> int:
    return int(info(node, section)[field])


def offset(node: Node) -> int:
    return info_int(node, "master_repl_offset")


def replid(node: Node) -> str:
    return info(node)["master_replid"]


def replica_lines(fields: dict[str, str]) -> list[dict[str, str]]:
    """The ``slaveN:ip=…,port=…,state=…,offset=…,lag=…`` lines of INFO replication, parsed."""
    out = []
    for key, value in fields.items():
        if re.fullmatch(r"slave\d+", key):
            out.append(dict(item.partition("=")[::2] for item in value.split(",")))
    return out


def role(node: Node) -> Any:
    """The ROLE reply as sent (bulk strings as bytes, integers as int)."""
    return ok(node, "ROLE")


def link_up(node: Node) -> bool:
    return info(node).get("master_link_status") == "up"


def wait_link_up(node: Node, timeout: float = 20.0) -> None:
    wait_for(lambda: link_up(node), timeout, f":{node.port} master link up")


def replicaof(node: Node, master: Node | None) -> Any:
    """``REPLICAOF 127.0.0.1 <port>`` (or ``NO ONE``); returns the reply as sent."""
    if master is None:
        return call(node, "REPLICAOF", "NO", "ONE")
    return call(node, "REPLICAOF", HOST, master.port)


def attach(replica: Node, master: Node, timeout: float = 20.0) -> None:
    """REPLICAOF and wait until the link is up."""
    reply = replicaof(replica, master)
    if isinstance(reply, Err):
        raise AssertionError(f"REPLICAOF failed: {reply}")
    wait_for(
        lambda: link_up(replica) and info(replica)["master_port"] == str(master.port),
        timeout,
        f":{replica.port} linked to :{master.port}",
    )


SYNC_COUNTERS = ("sync_full", "sync_partial_ok", "sync_partial_err")


def counters(node: Node) -> dict[str, int]:
    stats = info(node, "stats")
    return {k: int(stats[k]) for k in SYNC_COUNTERS}


def counter_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in SYNC_COUNTERS}


class Counters:
    """Snapshot of the sync counters of several nodes; ``delta()`` reads them again."""

    def __init__(self, nodes: dict[str, Node]) -> None:
        self.nodes = nodes
        self.before = {name: counters(n) for name, n in nodes.items()}

    def delta(self) -> dict[str, dict[str, int]]:
        return {
            name: counter_delta(self.before[name], counters(n)) for name, n in self.nodes.items()
        }


def digest(node: Node) -> str:
    reply = ok(node, "DEBUG", "DIGEST")
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def _quiet_state(nodes: Sequence[Node]) -> int | None:
    infos = [info(n) for n in nodes]
    offs = {int(i["master_repl_offset"]) for i in infos}
    if len(offs) != 1:
        return None
    off = offs.pop()
    for i in infos:
        if i["role"] == "slave" and i.get("master_link_status") != "up":
            return None
        if any(int(r["offset"]) != off or r["state"] != "online" for r in replica_lines(i)):
            return None
    return off


def quiesce(nodes: Sequence[Node], timeout: float = 20.0) -> int:
    """Wait until every node shows the same ``master_repl_offset`` O₀, every replica's link
    is up, and every ``slaveN`` line is online with ``offset == O₀`` (twice in a row);
    returns O₀ (§9 method)."""
    seen: list[int] = []

    def settled() -> bool:
        off = _quiet_state(nodes)
        if off is None:
            seen.clear()
            return False
        seen.append(off)
        return len(seen) >= 2 and seen[-1] == seen[-2]

    wait_for(settled, timeout, "offsets to converge and be acked", interval=0.05)
    return seen[-1]


# ----------------------------------------------------------------------------- pseudo-replica


class PseudoReplica:
    """A raw-socket replica (§9): after :meth:`psync` the master treats this socket as one
    of its replicas (it shows in INFO/ROLE, counts in the sync counters, is dropped after
    ``repl-timeout`` without ACKs). Close it before quiescing."""

    def __init__(
        self, node: Node, capa: Sequence[str] = ("psync2",), timeout: float = 10.0
    ) -> None:
        self.conn = RawConn.to(node, timeout)
        self.timeout = timeout
        args: list[str] = ["REPLCONF"]
        for c in capa:
            args += ["capa", c]
        reply = self.conn.call(*args)
        if reply != "OK":
            raise AssertionError(f"REPLCONF capa -> {reply!r}")

    def psync(self, *args: str | bytes | int, timeout: float | None = None) -> str:
        """Send ``PSYNC <args…>``; the first non-empty reply line (``+FULLRESYNC …``,
        ``+CONTINUE …`` or ``-ERR …``), skipping keep-alive newlines."""
        self.conn.send("PSYNC", *args)
        return self.first_line(timeout)

    def first_line(self, timeout: float | None = None) -> str:
        """The next non-empty line (keep-alive newlines skipped)."""
        limit = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            line = self.conn.reader.readline(max(limit - time.monotonic(), 0.001))
            if line:
                return line.decode()

    def read_exact(self, n: int, timeout: float | None = None) -> bytes:
        return self.conn.reader.read_exact(n, self.timeout if timeout is None else timeout)

    def read_window(self, window: float) -> bytes:
        return self.conn.reader.read_window(window)

    def ack(self, off: int) -> None:
        self.conn.send("REPLCONF", "ACK", off)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> PseudoReplica:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def psync_probe(
    node: Node,
    rid: str,
    off: int,
    *,
    until: int | None = None,
    window: float = 0.2,
    capa: Sequence[str] = ("psync2",),
) -> tuple[str, bytes]:
    """PSYNC ``rid off`` from a fresh pseudo-replica; returns ``(first line, bytes)``.

    On ``+CONTINUE`` the bytes are the stream from ``off`` up to offset ``until`` (read
    exactly, default: nothing required) plus whatever else arrives within ``window`` s.
    On anything else no bytes are read. The socket is closed before returning."""
    with PseudoReplica(node, capa) as p:
        line = p.psync(rid, off)
        if not line.startswith("+CONTINUE"):
            return line, b""
        data = p.read_exact(until - off + 1) if until is not None and until >= off else b""
        return line, data + p.read_window(window)


def capture(node: Node, since: int, window: float = 0.2) -> bytes:
    """Every stream byte after offset ``since`` up to the node's current offset (plus
    anything arriving within ``window``), via ``PSYNC <replid> <since+1>``."""
    fields = info(node)
    line, data = psync_probe(
        node,
        fields["master_replid"],
        since + 1,
        until=int(fields["master_repl_offset"]),
        window=window,
    )
    if not line.startswith("+CONTINUE"):
        raise AssertionError(f"capture PSYNC {since + 1} on :{node.port} -> {line}")
    return data


def wait_closed(node: Node, min_replicas: int = 0, timeout: float = 10.0) -> None:
    """Wait until the node lists at most ``min_replicas`` replicas (pseudo ones gone)."""
    wait_for(
        lambda: int(info(node)["connected_slaves"]) <= min_replicas,
        timeout,
        f":{node.port} to drop closed replica sockets",
    )


# ----------------------------------------------------------------------------- fake master


class FakeMaster:
    """A listening socket posing as a master: records a replica's handshake (§2.1).

    Answers ``PING`` with ``+PONG`` and ``AUTH``/``REPLCONF`` with ``+OK``; stops at the
    first ``PSYNC``/``SYNC`` (not answered). Needs the node under test to open a real
    TCP connection to ``127.0.0.1:<port>``."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((HOST, 0))
        self.sock.listen(8)
        self.port: int = self.sock.getsockname()[1]

    def handshake(self, timeout: float = 15.0) -> list[list[bytes]]:
        """Accept one connection and return the commands it sent up to PSYNC."""
        self.sock.settimeout(timeout)
        conn, _ = self.sock.accept()
        reader = _SockReader(conn)
        got: list[list[bytes]] = []
        try:
            while True:
                line = reader.readline(timeout)
                if not line.startswith(b"*"):
                    got.append([line])  # inline command (``SYNC``)
                    return got
                argv = []
                for _ in range(int(line[1:])):
                    n = int(reader.readline(timeout)[1:])
                    argv.append(reader.read_exact(n + 2, timeout)[:-2])
                got.append(argv)
                name = argv[0].upper()
                if name in (b"PSYNC", b"SYNC"):
                    return got
                conn.sendall(b"+PONG\r\n" if name == b"PING" else b"+OK\r\n")
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> FakeMaster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
