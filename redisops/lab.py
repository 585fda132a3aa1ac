"""Local labs: a master and replicas on loopback, embedded engine or real redis-server.

``up`` starts the lab in the background and returns once every node answers and every
replica's link is up; ``status``, ``down`` and the fault drills (``kill``, ``restart``,
``pause``, ``resume``, ``partition``, ``heal``) act on it later. A lab lives in a
directory (default ``$XDG_STATE_HOME/redisops/lab``) holding ``lab.json`` (what runs
where), the embedded server's control socket, and each redis-server's data and log.

The embedded engine needs nothing but Python: that is what makes every command, and most
of the test suite, work on a laptop with no Redis installed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from redisops.errors import BadInput, RedisopsError, Unreachable
from redisops.versions import Server, from_version_output

ENGINES = ("embedded", "redis-server")
TOPOLOGIES = ("star", "chain", "none")
STATE_FILE = "lab.json"
#: Lab defaults that differ from Redis's own, so a lab comes up and re-syncs quickly.
LAB_DEFAULTS = {"repl-diskless-sync-delay": "0", "enable-debug-command": "local"}


@dataclass
class LabState:
    engine: str
    dir: str
    ports: list[int]
    topology: str
    started_at: float
    config: dict[str, str] = field(default_factory=dict)
    pid: int | None = None  # embedded server process
    control: str | None = None  # embedded control socket
    pids: dict[str, int] = field(default_factory=dict)  # redis-server: port -> pid
    #: a copy of a real cluster (``up --from-cluster``): its replicas to wait for, the
    #: nodes that were down, and real address -> lab address
    clone_replicas: list[int] = field(default_factory=list)
    clone_down: list[int] = field(default_factory=list)
    clone_of: dict[str, str] = field(default_factory=dict)
    binary: str | None = None  # redis-server engine: the server executable
    server: str | None = None  # ... and what it says it is ("valkey 8.1.8")

    @property
    def master_port(self) -> int:
        return self.ports[0]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_dir() -> Path:
    env = os.environ.get("REDISOPS_LAB_DIR")
    if env:
        return Path(env)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "redisops" / "lab"


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is not alive
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return False
    except ChildProcessError:
        pass
    try:  # nor is a zombie nobody reaped (no init in a container)
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def load_state(lab_dir: Path) -> LabState | None:
    path = lab_dir / STATE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return LabState(**data)
    except (ValueError, TypeError) as exc:
        raise BadInput(
            f"lab state {path} is corrupt ({exc})", hint="remove the lab directory"
        ) from None


def _save_state(state: LabState) -> None:
    path = Path(state.dir) / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state.to_dict(), indent=2))
    os.replace(tmp, path)


def running(lab_dir: Path) -> LabState | None:
    """The lab in ``lab_dir`` if any of its processes still runs."""
    state = load_state(lab_dir)
    if state is None:
        return None
    if state.engine == "embedded":
        return state if _alive(state.pid) else None
    return state if any(_alive(p) for p in state.pids.values()) else None


def free_base_port(count: int, start: int = 17000) -> int:
    """The first port from ``start`` up (in steps of 100) with ``count`` free ports in a
    row on 127.0.0.1: where a throwaway lab (demo, benchmarks, tests) can go."""
    for base in range(start, 65000 - count, 100):
        if all(_port_free(p) for p in range(base, base + count)):
            return base
    raise BadInput(f"no {count} free ports in a row on 127.0.0.1", hint="stop some labs")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_ports(ports: list[int], timeout: float, check: Any = None) -> None:
    deadline = time.monotonic() + timeout
    pending = list(ports)
    while pending:
        if check is not None:
            check()
        port = pending[0]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"*1\r\n$4\r\nPING\r\n")
                if s.recv(64).startswith((b"+PONG", b"-LOADING")):
                    pending.pop(0)
                    continue
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise Unreachable(f"lab node 127.0.0.1:{port} did not answer within {timeout:.0f}s")
        time.sleep(0.05)


def _wait_links(state: LabState, timeout: float) -> None:
    """Until every replica reports ``master_link_status:up``."""
    from redisops.model import Address
    from redisops.redis_node import RedisNode
    from redisops.retry import NO_RETRY

    if state.topology == "clone":
        replicas = state.clone_replicas
    else:
        replicas = state.ports[1:] if state.topology != "none" else []
    deadline = time.monotonic() + timeout
    for port in replicas:
        with RedisNode(Address("127.0.0.1", port), retry=NO_RETRY) as node:
            while True:
                if node.info("replication").get("master_link_status") == "up":
                    break
                if time.monotonic() > deadline:
                    raise Unreachable(
                        f"lab replica 127.0.0.1:{port} did not link up within {timeout:.0f}s"
                    )
                time.sleep(0.05)


def up(
    lab_dir: Path,
    *,
    engine: str = "embedded",
    nodes: int = 3,
    base_port: int = 7000,
    topology: str = "star",
    config: dict[str, str] | None = None,
    timeout: float = 30.0,
    clone: Mapping[str, Any] | None = None,
    binary: str | None = None,
) -> LabState:
    """Start a lab in the background; returns when it is ready.

    ``binary`` is the server the ``redis-server`` engine runs (``redis-server`` of any
    supported version, or ``valkey-server``); default ``redis-server`` on PATH. ``clone`` is
    a clone spec (:func:`redisops.clone.clone_spec`): the lab is then a copy of a real
    cluster on the spec's ports (embedded engine only)."""
    if clone is not None:
        return _up_clone(lab_dir, clone, timeout)
    if engine not in ENGINES:
        raise BadInput(f"unknown engine {engine!r}", hint="use embedded or redis-server")
    if topology not in TOPOLOGIES:
        raise BadInput(f"unknown topology {topology!r}", hint="use star, chain or none")
    if not 1 <= nodes <= 32:
        raise BadInput(f"--nodes {nodes} is out of range", hint="a lab has 1 to 32 nodes")
    if not 1024 <= base_port <= 65535 - nodes:
        raise BadInput(f"--base-port {base_port} is out of range", hint="pick a port from 1024 up")
    existing = running(lab_dir)
    if existing is not None:
        raise BadInput(
            f"a lab is already running in {lab_dir} (ports {existing.ports[0]}-{existing.ports[-1]})",
            hint="run 'redisops lab down' first, or use --dir for a second lab",
        )
    ports = list(range(base_port, base_port + nodes))
    busy = [p for p in ports if not _port_free(p)]
    if busy:
        raise BadInput(f"port {busy[0]} is already in use", hint="choose another --base-port")
    if binary is not None and engine != "redis-server":
        raise BadInput("--binary needs --engine redis-server")
    cfg = {**LAB_DEFAULTS, **(config or {})}
    state = LabState(engine, str(lab_dir), ports, topology, time.time(), cfg)
    if engine == "redis-server":
        state.binary = binary or redis_server_binary()
        server = server_of(state.binary)
        state.server = str(server)
        if not server.has_enable_debug_command:  # 6.2: DEBUG is on, the directive unknown
            state.config.pop("enable-debug-command", None)
    lab_dir.mkdir(parents=True, exist_ok=True)
    if engine == "embedded":
        _up_embedded(state)
    else:
        _up_redis_server(state)
    _save_state(state)
    try:
        _wait_ports(ports, timeout, lambda: _check_started(state))
        _wait_links(state, timeout)
    except RedisopsError:
        down(lab_dir)
        raise
    return state


def _up_clone(lab_dir: Path, spec: Mapping[str, Any], timeout: float) -> LabState:
    nodes = list(spec["nodes"])
    ports = [int(n["port"]) for n in nodes]
    existing = running(lab_dir)
    if existing is not None:
        raise BadInput(
            f"a lab is already running in {lab_dir} (ports {existing.ports[0]}-{existing.ports[-1]})",
            hint="run 'redisops lab down' first, or use --dir for a second lab",
        )
    busy = [p for p in ports if not _port_free(p)]
    if busy:
        raise BadInput(f"port {busy[0]} is already in use", hint="choose another --base-port")
    dead = {int(n["port"]) for n in nodes if n.get("down")}
    lab_dir.mkdir(parents=True, exist_ok=True)
    (lab_dir / "clone.json").write_text(json.dumps(spec, indent=2))
    state = LabState("embedded", str(lab_dir), ports, "clone", time.time(), {})
    state.clone_down = sorted(dead)
    state.clone_replicas = [
        int(n["port"])
        for n in nodes
        if n.get("master") is not None
        and int(n["port"]) not in dead
        and int(n["master"]) not in dead
    ]
    state.clone_of = {str(k): str(v) for k, v in dict(spec.get("addresses") or {}).items()}
    _up_embedded(state, ["--clone", str(lab_dir / "clone.json")])
    _save_state(state)
    try:
        _wait_ports([p for p in ports if p not in dead], timeout, lambda: _check_started(state))
        _wait_links(state, timeout)
    except RedisopsError:
        down(lab_dir)
        raise
    return state


def up_from_cluster(
    lab_dir: Path,
    session: Any,
    *,
    base_port: int | None = None,
    max_keys: int | None = None,
    max_bytes: int | None = None,
    extra: Any = (),
) -> LabState:
    """A lab that copies the cluster ``session`` reaches (see :mod:`redisops.clone`):
    discovered from the session's seeds (and ``extra`` addresses), cloned, started."""
    from redisops.clone import MAX_BYTES, MAX_KEYS, clone_spec

    topo = session.discover(list(extra))
    if not any(n.reachable for n in topo.nodes):
        raise Unreachable("no node of the cluster to copy answered", hint="check the seeds")
    base = base_port if base_port is not None else free_base_port(len(topo.nodes))
    spec = clone_spec(
        topo,
        base,
        max_keys=max_keys if max_keys is not None else MAX_KEYS,
        max_bytes=max_bytes if max_bytes is not None else MAX_BYTES,
    )
    return up(lab_dir, clone=spec)


def _check_started(state: LabState) -> None:
    if state.engine == "embedded" and not _alive(state.pid):
        log = (Path(state.dir) / "lab.log").read_text(errors="replace").strip().splitlines()
        raise RedisopsError(f"the embedded lab exited: {log[-1] if log else 'no output'}")


#: a Unix socket path longer than this does not fit in ``sockaddr_un`` (108 bytes on Linux)
MAX_SOCKET_PATH = 100


def _control_path(lab_dir: Path) -> Path:
    """The control socket: in the lab directory, or in a short private directory under
    /tmp when the lab directory's path is too long for a Unix socket."""
    control = lab_dir / "control.sock"
    if len(os.fsencode(control)) <= MAX_SOCKET_PATH:
        return control
    short = tempfile.mkdtemp(prefix="redisops-lab-", dir="/tmp" if Path("/tmp").is_dir() else None)
    return Path(short) / "control.sock"


def _up_embedded(state: LabState, extra: list[str] | None = None) -> None:
    lab_dir = Path(state.dir)
    control = _control_path(lab_dir)
    args = [
        sys.executable,
        "-m",
        "redisops.engine.server",
        "--ports",
        ",".join(map(str, state.ports)),
        "--topology",
        state.topology,
        "--control",
        str(control),
        "--config-file-dir",
        str(lab_dir),
    ]
    for k, v in state.config.items():
        args += ["--config", f"{k}={v}"]
    args += extra or []
    log = open(lab_dir / "lab.log", "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        args,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        cwd=lab_dir,
    )
    log.close()
    state.pid = proc.pid
    state.control = str(control)


def redis_server_binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        raise BadInput(
            "redis-server is not installed",
            hint="apt-get install redis-server, or use --engine embedded",
        )
    return path


def server_of(binary: str) -> Server:
    """What ``binary --version`` says it is; BadInput when it is no supported server."""
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=20, check=False
        )
    except OSError as exc:
        raise BadInput(
            f"cannot run {binary} ({exc.strerror})", hint="name a redis-server or valkey-server"
        ) from None
    server = from_version_output(out.stdout)
    if server is None:
        raise BadInput(
            f"{binary} does not say it is a Redis or Valkey server "
            f"({(out.stdout or out.stderr).strip()[:80]!r})",
            hint="name a redis-server or valkey-server binary",
        )
    return server


def _redis_args(state: LabState, port: int) -> list[str]:
    node_dir = Path(state.dir) / f"node-{port}"
    node_dir.mkdir(parents=True, exist_ok=True)
    conf = node_dir / "redis.conf"
    if not conf.exists():
        lines = [
            f"port {port}",
            "bind 127.0.0.1",
            f"dir {node_dir}",
            f"logfile {node_dir / 'redis.log'}",
            'save ""',
            "daemonize no",
            "protected-mode no",
        ]
        idx = state.ports.index(port)
        if state.topology == "star" and idx > 0:
            lines.append(f"replicaof 127.0.0.1 {state.ports[0]}")
        elif state.topology == "chain" and idx > 0:
            lines.append(f"replicaof 127.0.0.1 {state.ports[idx - 1]}")
        lines += [f"{k} {v if v else chr(34) * 2}" for k, v in state.config.items()]
        conf.write_text("\n".join(lines) + "\n")
    return [state.binary or redis_server_binary(), str(conf)]


def _spawn_redis(state: LabState, port: int) -> int:
    args = _redis_args(state, port)
    proc = subprocess.Popen(
        args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    return proc.pid


def _up_redis_server(state: LabState) -> None:
    for port in state.ports:
        state.pids[str(port)] = _spawn_redis(state, port)


def _control(state: LabState, *args: str) -> Any:
    if not state.control:
        raise BadInput("this lab has no control socket")
    return control_call(state.control, *args)


def control_call(path: str, *args: str, timeout: float = 10.0) -> Any:
    """One request on an embedded lab's control socket (``redisops.engine.server
    --control PATH``): the reply, or Unreachable / BadInput (an ``ERR`` reply)."""
    from redisops.engine.resp import ReplyParser, encode_command

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(path)
        except OSError as exc:
            raise Unreachable(
                f"cannot reach the lab control socket {path}: {exc.strerror}"
            ) from None
        s.sendall(encode_command([a.encode() for a in args]))
        parser = ReplyParser()
        while True:
            data = s.recv(65536)
            if not data:
                raise Unreachable("the lab closed its control socket")
            parser.feed(data)
            replies = parser.replies()
            if replies:
                reply = replies[0]
                if isinstance(reply, str) and reply.startswith("ERR"):
                    raise BadInput(f"lab: {reply[4:]}")
                return reply


def _require(lab_dir: Path) -> LabState:
    state = running(lab_dir)
    if state is None:
        raise BadInput(f"no lab is running in {lab_dir}", hint="start one with 'redisops lab up'")
    return state


def _port_of(state: LabState, node: str) -> int:
    text = node.rsplit(":", 1)[-1]
    if not text.isdigit() or int(text) not in state.ports:
        raise BadInput(
            f"{node!r} is not a node of this lab",
            hint=f"lab ports: {', '.join(map(str, state.ports))}",
        )
    return int(text)


def status(lab_dir: Path) -> dict[str, Any]:
    state = load_state(lab_dir)
    if state is None or running(lab_dir) is None:
        return {"running": False, "dir": str(lab_dir)}
    nodes: list[dict[str, Any]] = []
    if state.engine == "embedded":
        raw = _control(state, "STATUS")
        view = json.loads(raw if isinstance(raw, (str, bytes)) else "{}")
        nodes = view.get("nodes", [])
    else:
        for port in state.ports:
            pid = state.pids.get(str(port))
            nodes.append(_redis_server_status(port, pid))
    return {
        "running": True,
        "engine": state.engine,
        "dir": state.dir,
        "topology": state.topology,
        "server": state.server,
        "addresses": [f"127.0.0.1:{p}" for p in state.ports],
        "nodes": nodes,
        "pid": state.pid,
    }


def _redis_server_status(port: int, pid: int | None) -> dict[str, Any]:
    """One redis-server node of a lab: process state, and role, master and offset as the
    node itself reports them (a paused node cannot answer: it shows as paused)."""
    from redisops.model import Address
    from redisops.redis_node import RedisNode
    from redisops.retry import NO_RETRY

    alive = _alive(pid)
    entry: dict[str, Any] = {"port": port, "alive": alive, "pid": pid, "paused": _stopped(pid)}
    if not alive or entry["paused"]:
        return entry
    with RedisNode(Address("127.0.0.1", port), retry=NO_RETRY) as node:
        info = node.probe(timeout=1.0)
    if info.reachable:
        entry["role"] = info.role
        entry["master"] = str(info.master_address) if info.is_replica else None
        entry["offset"] = info.offset
    else:
        entry["error"] = info.error
    return entry


def _stopped(pid: int | None) -> bool:
    """Whether the process is stopped (SIGSTOP: ``lab pause``)."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("T", "t")
    except (OSError, IndexError):
        return False


def down(lab_dir: Path) -> LabState | None:
    """Stop every process of the lab (data of redis-server nodes stays on disk)."""
    state = load_state(lab_dir)
    if state is None:
        return None
    if state.engine == "embedded":
        if _alive(state.pid):
            try:
                _control(state, "SHUTDOWN")
            except RedisopsError:
                pass
            _terminate(state.pid)
        control = Path(state.control) if state.control else None
        if control is not None and control.parent != lab_dir:  # a short directory of its own
            shutil.rmtree(control.parent, ignore_errors=True)
    else:
        for pid in state.pids.values():
            _terminate(pid)
    (lab_dir / STATE_FILE).unlink(missing_ok=True)
    return state


def _terminate(pid: int | None, timeout: float = 5.0) -> None:
    if not pid:
        return
    for sig in (signal.SIGCONT, signal.SIGTERM):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def drill(lab_dir: Path, action: str, node: str, other: str | None = None) -> str:
    """Fault drills on one node (or a pair, for partition/heal)."""
    state = _require(lab_dir)
    port = _port_of(state, node)
    if action in ("partition", "heal"):
        if state.engine != "embedded":
            raise BadInput(
                f"{action} needs the embedded engine",
                hint="network faults are simulated in process",
            )
        if other is None:
            raise BadInput(f"{action} needs two nodes")
        _control(state, action.upper(), str(port), str(_port_of(state, other)))
        return f"{action} 127.0.0.1:{port} <-> {other}"
    if state.engine == "embedded":
        cmd = {
            "kill": "KILL",
            "restart": "RESTART",
            "pause": "PAUSE",
            "resume": "RESUME",
            "stop": "STOP",
            "start": "START",
        }[action]
        _control(state, cmd, str(port))
        if action in ("restart", "start"):
            _wait_ports([port], 10)
        return f"{action} 127.0.0.1:{port}: done"
    pid = state.pids.get(str(port))
    if action == "kill":
        if _alive(pid):
            os.kill(pid or 0, signal.SIGKILL)
    elif action == "pause":
        os.kill(pid or 0, signal.SIGSTOP)
    elif action == "resume":
        os.kill(pid or 0, signal.SIGCONT)
    elif action in ("restart", "start", "stop"):
        if action != "start" and _alive(pid):
            _shutdown_save(port)
            _terminate(pid)
        if action != "stop":
            state.pids[str(port)] = _spawn_redis(state, port)
            _save_state(state)
            _wait_ports([port], 10)
    return f"{action} 127.0.0.1:{port}: done"


def _shutdown_save(port: int) -> None:
    from redisops.model import Address
    from redisops.redis_node import RedisNode
    from redisops.retry import NO_RETRY

    try:
        with RedisNode(Address("127.0.0.1", port), retry=NO_RETRY) as node:
            node.execute("SHUTDOWN", "SAVE")
    except RedisopsError:
        pass  # SHUTDOWN closes the connection: that is the success case too
