"""The offline lab's RESP front-end: engine nodes on real loopback TCP ports.

One process hosts every node of a lab. Each node listens on its own port and speaks RESP
to redis-py, ``redis-cli`` and ``redis-benchmark`` (RESP2, or RESP3 after ``HELLO 3``); nodes
replicate to each other over the engine's in-process network, in real time
(:class:`~redisops.engine.clock.WallClock`). A control socket (a Unix socket in the lab
directory) takes fault-drill commands: ``KILL``, ``STOP``, ``START``, ``RESTART``,
``PAUSE``, ``RESUME``, ``PARTITION``, ``HEAL``, ``DELAY``, ``BANDWIDTH``, ``STATUS``,
``SHUTDOWN``.

Standard library only (``selectors``/``socket``): no third-party network code.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import sys
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redisops.engine.client import Client
from redisops.engine.clock import WallClock
from redisops.engine.cluster import Cluster
from redisops.engine.network import RdbTransfer
from redisops.engine.rdb import dump
from redisops.engine.resp import ErrorReply, ProtocolError, RequestParser, encode_reply
from redisops.engine.state import Storage

READ_SIZE = 256 * 1024


class SocketConn:
    """A client's TCP connection, as the node sees it (the ``Conn`` protocol)."""

    def __init__(
        self, server: LabServer, sock: socket.socket, peer: tuple[Any, ...], port: int
    ) -> None:
        self.server = server
        self.sock = sock
        self.peer_ip = str(peer[0])
        self.peer_port = int(peer[1])
        self.port = port
        self.out = bytearray()
        self._chunks: deque[tuple[int, bool, Callable[[], None] | None]] = deque()
        self._stream_pending = 0
        self._closed = False
        self.client: Client | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    def write(
        self, data: bytes, frames: list[list[bytes]] | None = None, *, stream: bool = False
    ) -> None:
        if self._closed or not data:
            return
        self.out += data
        self._chunks.append((len(data), stream, None))
        if stream:
            self._stream_pending += len(data)
        self.server.want_write(self)

    def write_rdb(self, transfer: RdbTransfer, on_sent: Callable[[], None] | None = None) -> None:
        rdb = dump(transfer.image)
        if transfer.eof_mark is not None:
            payload = b"$EOF:" + transfer.eof_mark + b"\r\n" + rdb + transfer.eof_mark
        else:
            payload = b"$%d\r\n" % len(rdb) + rdb
        if self._closed:
            return
        self.out += payload
        self._chunks.append((len(payload), False, on_sent))
        self.server.want_write(self)

    def pending_stream_bytes(self) -> int:
        return self._stream_pending

    def flushed(self, n: int) -> list[Callable[[], None]]:
        """Account for ``n`` bytes written to the socket; returns callbacks now due."""
        due: list[Callable[[], None]] = []
        while n > 0 and self._chunks:
            size, stream, cb = self._chunks[0]
            take = min(size, n)
            n -= take
            if stream:
                self._stream_pending -= take
            if take == size:
                self._chunks.popleft()
                if cb is not None:
                    due.append(cb)
            else:
                self._chunks[0] = (size - take, stream, cb)
        return due

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.server.drop(self)


class LabServer:
    """Hosts a :class:`Cluster` on TCP ports; runs until SHUTDOWN or a signal."""

    def __init__(
        self, cluster: Cluster, control_path: Path | None = None, bind: str = "127.0.0.1"
    ) -> None:
        self.cluster = cluster
        self.bind = bind
        self.sel = selectors.DefaultSelector()
        self.listeners: dict[int, socket.socket] = {}
        self.conns: dict[int, set[SocketConn]] = {}
        self.control_path = control_path
        self.control_sock: socket.socket | None = None
        self.control_parsers: dict[socket.socket, RequestParser] = {}
        self.running = True

    # ------------------------------------------------------------------ listening
    def listen(self, port: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.bind, port))
        sock.listen(512)
        sock.setblocking(False)
        self.listeners[port] = sock
        self.conns.setdefault(port, set())
        self.sel.register(sock, selectors.EVENT_READ, ("accept", port))

    def unlisten(self, port: int) -> None:
        sock = self.listeners.pop(port, None)
        if sock is not None:
            self.sel.unregister(sock)
            sock.close()
        for conn in list(self.conns.get(port, ())):
            conn.close()

    def start_control(self) -> None:
        if self.control_path is None:
            return
        if self.control_path.exists():
            self.control_path.unlink()
        # bound and listening under a temporary name, then renamed: once the path exists
        # it accepts (a client waiting for the file never meets "connection refused")
        staging = self.control_path.with_name(self.control_path.name + ".new")
        staging.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(staging))
        sock.listen(16)
        os.replace(staging, self.control_path)
        sock.setblocking(False)
        self.control_sock = sock
        self.sel.register(sock, selectors.EVENT_READ, ("control-accept", 0))

    # ------------------------------------------------------------------ connections
    def _accept(self, port: int) -> None:
        listener = self.listeners.get(port)
        if listener is None:
            return
        while True:
            try:
                sock, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            node = self.cluster.nodes.get(port)
            if node is None or not node.alive:
                sock.close()
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = SocketConn(self, sock, peer, port)
            conn.client = node.accept(conn)
            self.conns[port].add(conn)
            self.sel.register(sock, selectors.EVENT_READ, ("conn", conn))

    def want_write(self, conn: SocketConn) -> None:
        if conn.closed:
            return
        self._flush(conn)
        if conn.out and not conn.closed:
            try:
                self.sel.modify(
                    conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, ("conn", conn)
                )
            except (KeyError, ValueError):
                pass

    def _flush(self, conn: SocketConn) -> None:
        try:
            n = conn.sock.send(conn.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._lost(conn)
            return
        del conn.out[:n]
        for cb in conn.flushed(n):
            cb()
        if not conn.out:
            try:
                self.sel.modify(conn.sock, selectors.EVENT_READ, ("conn", conn))
            except (KeyError, ValueError):
                pass

    def _read(self, conn: SocketConn) -> None:
        try:
            data = conn.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._lost(conn)
            return
        node = self.cluster.nodes.get(conn.port)
        if node is None or conn.client is None or not node.alive:
            conn.close()
            return
        if node.sleeping:
            node.after_wake(
                lambda: node.on_client_bytes(conn.client, data) if conn.client else None
            )
            return
        node.on_client_bytes(conn.client, data)

    def _lost(self, conn: SocketConn) -> None:
        """The peer closed: the node frees its client (which closes our side)."""
        node = self.cluster.nodes.get(conn.port)
        if node is not None and conn.client is not None and not conn.client.closed:
            node.free_client(conn.client)
        conn.close()

    def drop(self, conn: SocketConn) -> None:
        try:
            self.sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        try:
            if conn.out:
                conn.sock.setblocking(True)
                conn.sock.settimeout(0.2)
                conn.sock.sendall(bytes(conn.out))
        except OSError:
            pass
        conn.sock.close()
        self.conns.get(conn.port, set()).discard(conn)

    # ------------------------------------------------------------------ control
    def _control_accept(self) -> None:
        assert self.control_sock is not None
        try:
            sock, _ = self.control_sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        sock.setblocking(True)
        sock.settimeout(5)
        self.control_parsers[sock] = RequestParser()
        self.sel.register(sock, selectors.EVENT_READ, ("control", sock))

    def _control_read(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.sel.unregister(sock)
            self.control_parsers.pop(sock, None)
            sock.close()
            return
        parser = self.control_parsers[sock]
        parser.feed(data)
        try:
            commands = parser.commands()
        except ProtocolError:
            commands = []
        for argv in commands:
            try:
                reply: Any = self.control(argv)
            except Exception as exc:  # a bad drill must not kill the lab
                reply = ErrorReply(f"ERR {exc}")
            try:
                sock.sendall(encode_reply(reply))
            except OSError:
                break

    def control(self, argv: list[bytes]) -> Any:
        """Fault drills and status; ports are node ports."""
        cmd = argv[0].decode().upper()
        args = [a.decode() for a in argv[1:]]
        c = self.cluster
        if cmd == "STATUS":
            return json.dumps(self.status()).encode()
        if cmd == "SHUTDOWN":
            self.running = False
            return b"OK"
        port = int(args[0]) if args else 0
        if cmd == "ADD":
            # ADD port [key value ...]: boot a new node (conformance backends, scripted labs)
            if port in c.nodes and c.nodes[port].alive:
                raise ValueError(f"node {port} exists")
            config = dict(zip(args[1::2], args[2::2], strict=False))
            c.configs[port] = config
            c.storage[port] = Storage()
            self.listen(port)
            c._boot(port)
            return b"OK"
        if args and port not in c.nodes:
            raise ValueError(f"no node on port {port}")
        if cmd == "KILL":
            c.kill(port)
            self.unlisten(port)
        elif cmd == "STOP":
            # SIGTERM: saves only with save points configured, as redis-server does
            self.cluster.nodes[port].shutdown(save=None, then=lambda: self.unlisten(port))
            return b"OK"
        elif cmd == "START":
            if c.nodes[port].alive:
                raise ValueError(f"node {port} is running")
            c.start(port)
            self.listen(port)
        elif cmd == "RESTART":
            if c.nodes[port].alive:
                c.stop(port, save=True)
                self.unlisten(port)
            c.start(port)
            self.listen(port)
        elif cmd == "PAUSE":
            c.pause(port)
        elif cmd == "RESUME":
            c.resume(port)
        elif cmd in ("PARTITION", "HEAL"):
            c.partition(port, int(args[1]), cmd == "PARTITION")
        elif cmd == "DELAY":
            c.set_delay(port, int(args[1]), int(args[2]))
        elif cmd == "BANDWIDTH":
            bw = float(args[2])
            c.set_bandwidth(port, int(args[1]), bw if bw > 0 else None)
        else:
            raise ValueError(f"unknown lab command {cmd}")
        return b"OK"

    def status(self) -> dict[str, Any]:
        nodes = []
        for port, node in sorted(self.cluster.nodes.items()):
            nodes.append(
                {
                    "port": port,
                    "alive": node.alive,
                    "paused": node.alive and node.sleeping,
                    "role": "master" if node.master_host is None else "replica",
                    "master": f"{node.master_host}:{node.master_port}"
                    if node.master_host
                    else None,
                    "offset": node.master_repl_offset,
                }
            )
        return {"pid": os.getpid(), "engine": "embedded", "nodes": nodes}

    # ------------------------------------------------------------------ loop
    def serve_forever(self) -> None:
        sched = self.cluster.sched
        for port, node in self.cluster.nodes.items():
            if node.alive and port not in self.listeners:
                self.listen(port)
        while self.running:
            deadline = sched.next_deadline()
            now = sched.now_ms()
            timeout = 0.1 if deadline is None else max(0.0, min((deadline - now) / 1000.0, 0.1))
            for key, mask in self.sel.select(timeout):
                kind, obj = key.data
                if kind == "accept":
                    self._accept(obj)
                elif kind == "conn":
                    conn: SocketConn = obj
                    if mask & selectors.EVENT_WRITE and not conn.closed:
                        self._flush(conn)
                    if mask & selectors.EVENT_READ and not conn.closed:
                        self._read(conn)
                elif kind == "control-accept":
                    self._control_accept()
                elif kind == "control":
                    self._control_read(obj)
            sched.run_due()
            for port in list(self.listeners):
                hosted = self.cluster.nodes.get(port)
                if hosted is not None and not hosted.alive:  # SHUTDOWN from a client
                    self.unlisten(port)
        self.close()

    def close(self) -> None:
        for port in list(self.listeners):
            self.unlisten(port)
        if self.control_sock is not None:
            self.sel.unregister(self.control_sock)
            self.control_sock.close()
            if self.control_path is not None and self.control_path.exists():
                self.control_path.unlink()
        self.sel.close()


def build_lab_cluster(
    ports: list[int], topology: str, config: dict[str, str], seed: int | None = None
) -> Cluster:
    """Nodes on ``ports``; ``topology`` is ``star`` (first is master), ``chain`` or ``none``.

    Replication is configured at boot (``replicaof``), so the lab comes up attached.
    """
    cluster = Cluster(
        seed=seed if seed is not None else int.from_bytes(os.urandom(4), "little"),
        clock=WallClock(),
    )
    master = ports[0] if ports else 0
    for i, port in enumerate(ports):
        cfg = dict(config)
        if topology == "star" and i > 0:
            cfg["replicaof"] = f"127.0.0.1 {master}"
        elif topology == "chain" and i > 0:
            cfg["replicaof"] = f"127.0.0.1 {ports[i - 1]}"
        cluster.configs[port] = cfg
        cluster.storage[port] = Storage(config_file=None)
    for port in ports:
        cluster._boot(port)
    return cluster


def replace_file(path: Path, data: bytes, tmp_name: str) -> None:
    """Write ``data`` to ``path`` as Redis does its RDB and config files: a temp file in the
    same directory, then rename. A failure leaves the old file and no temp file (Redis would
    report the failed save or rewrite; the lab keeps serving)."""
    tmp = path.with_name(tmp_name)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def write_rdb_files(cluster: Cluster, port: int, directory: Path) -> None:
    """Give the node a real ``dir`` and write each RDB it saves there as a file (what
    ``redisops backup`` copies), atomically, like Redis's temp-file-and-rename."""
    directory.mkdir(parents=True, exist_ok=True)
    cluster.nodes[port].config.set_many([(b"dir", str(directory).encode())], startup=True)

    def write(image: Any) -> None:
        node = cluster.nodes[port]
        path = Path(node.config.get("dir")) / node.config.get("dbfilename")
        replace_file(path, dump(image), f"temp-{os.getpid()}-{port}.rdb")

    cluster.storage[port].on_save = write


def write_config_file(cluster: Cluster, port: int, path: Path) -> None:
    """Give the node a real config file, as a redis-server started from one has: its
    settings now (what ``CONFIG REWRITE`` would write, ``replicaof`` included), and again
    after every ``CONFIG REWRITE``, so that ``drift`` compares running config with a file
    that exists."""
    storage = cluster.storage[port]
    storage.config_file = str(path)

    def write(lines: list[str]) -> None:
        text = "".join(f"{line}\n" for line in lines)
        replace_file(path, text.encode(), f"{path.name}.tmp-{os.getpid()}")

    write(cluster.nodes[port].config_file_lines())
    storage.on_rewrite = write


def main(argv: list[str] | None = None) -> int:
    """``python -m redisops.engine.server --ports 7000,7001,7002 --topology star --control PATH``."""
    import argparse

    parser = argparse.ArgumentParser(prog="redisops-lab-server")
    parser.add_argument("--ports", default="")
    parser.add_argument("--topology", default="star", choices=("star", "chain", "none", "clone"))
    parser.add_argument("--control", type=Path)
    parser.add_argument("--config", action="append", default=[], help="key=value for every node")
    parser.add_argument(
        "--config-file-dir", type=Path, help="give each node a config file path (CONFIG REWRITE)"
    )
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--clone", type=Path, help="a clone spec (JSON): nodes continuing a real cluster's history"
    )
    ns = parser.parse_args(argv)
    ports = [int(p) for p in ns.ports.split(",") if p]
    config = {}
    for item in ns.config:
        k, _, v = item.partition("=")
        config[k] = v
    if ns.clone is not None:
        from redisops.engine.clone import build_clone_cluster

        spec = json.loads(ns.clone.read_text())
        cluster = build_clone_cluster(spec, ns.seed)
        ports = [int(n["port"]) for n in spec["nodes"]]
    else:
        cluster = build_lab_cluster(ports, ns.topology, config, ns.seed)
    if ns.config_file_dir is not None:
        for port in ports:
            write_rdb_files(cluster, port, ns.config_file_dir / f"node-{port}")
            write_config_file(cluster, port, ns.config_file_dir / f"node-{port}.conf")
    server = LabServer(cluster, ns.control)
    try:
        for port in ports:
            if cluster.nodes[port].alive:  # a cloned node that was down stays down
                server.listen(port)
    except OSError as exc:
        print(f"cannot listen: {exc}", file=sys.stderr)
        return 3
    server.start_control()

    def stop(signum: int, frame: object) -> None:
        server.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(json.dumps({"ready": True, "pid": os.getpid(), "ports": ports}), flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
