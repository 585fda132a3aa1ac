"""``redisops lab``: the offline lab end to end, as a user runs it (subprocesses)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import lab_base_port, wait_until
from tests.servers import ServerSpec


def raw(port: int, *args: str) -> bytes:
    """One command over a plain socket, as redis-cli would send it."""
    payload = b"*%d\r\n" % len(args) + b"".join(
        b"$%d\r\n%s\r\n" % (len(a), a.encode()) for a in args
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        data = b""
        while not data.endswith(b"\r\n") or (data.startswith(b"$") and data.count(b"\r\n") < 2):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


class Lab:
    def __init__(self, tmp: Path, env_path: str | None = None) -> None:
        self.env = dict(
            os.environ, REDISOPS_LAB_DIR=str(tmp / "lab"), XDG_STATE_HOME=str(tmp / "state")
        )
        if env_path is not None:
            self.env["PATH"] = env_path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "redisops", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check:
            assert proc.returncode == 0, proc.stderr
        return proc


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    # a PATH with the interpreter only: the embedded lab must not need redis-server
    bindir = tmp_path / "bin"
    bindir.mkdir()
    lab = Lab(tmp_path, env_path=str(bindir))
    assert shutil.which("redis-server", path=str(bindir)) is None
    try:
        yield lab
    finally:
        lab.run("lab", "down", check=False)


def test_embedded_lab_serves_redis_protocol_with_no_redis_installed(lab: Lab) -> None:
    base = lab_base_port(3)
    out = lab.run("lab", "up", "--base-port", str(base))
    assert f"127.0.0.1:{base}  master" in out.stdout
    assert raw(base, "PING") == b"+PONG\r\n"
    info = raw(base, "INFO", "replication").decode()
    assert "role:master" in info and "connected_slaves:2" in info
    assert raw(base, "SET", "k", "v") == b"+OK\r\n"
    wait_until(lambda: raw(base + 1, "GET", "k") == b"$1\r\nv\r\n", what="replicated key")
    status = lab.run("status", f"127.0.0.1:{base}", "-o", "json")
    nodes = json.loads(status.stdout)["nodes"]
    assert [n["role"] for n in nodes] == ["master", "replica", "replica"]
    assert all(n["link"] == "up" for n in nodes[1:])


def test_lab_nodes_have_the_config_file_they_report_and_config_rewrite_writes_it(
    lab: Lab, tmp_path: Path
) -> None:
    """A lab node names a config file in INFO server, as a redis-server started from one
    does: the file exists with its settings, drift reads it (no drift on a fresh lab), and
    CONFIG REWRITE after a runtime change writes it so drift is clean again."""
    base = lab_base_port(3)
    lab.run("lab", "up", "--base-port", str(base))
    info = raw(base + 1, "INFO", "server").decode()
    conf = Path(next(li for li in info.splitlines() if li.startswith("config_file:"))[12:].strip())
    text = conf.read_text()
    assert f"port {base + 1}" in text and f"replicaof 127.0.0.1 {base}" in text
    assert 'save ""' in text  # no persistence on the lab, said as CONFIG REWRITE says it
    assert lab.run("drift", f"127.0.0.1:{base}").returncode == 0
    assert raw(base + 1, "CONFIG", "SET", "maxmemory", "100mb") == b"+OK\r\n"
    found = lab.run("drift", f"127.0.0.1:{base}", "-o", "json", check=False)
    assert found.returncode == 11
    classes = {(f["parameter"], f["class"]) for f in json.loads(found.stdout)["findings"]}
    assert ("maxmemory", "not-persisted") in classes
    assert raw(base + 1, "CONFIG", "REWRITE") == b"+OK\r\n"
    assert "maxmemory 104857600" in conf.read_text()
    still = json.loads(lab.run("drift", f"127.0.0.1:{base}", "-o", "json", check=False).stdout)
    assert ("maxmemory", "not-persisted") not in {
        (f["parameter"], f["class"]) for f in still["findings"]
    }


def test_lab_drills_kill_restart_pause_partition(lab: Lab) -> None:
    base = lab_base_port(3)
    lab.run("lab", "up", "--base-port", str(base), "--topology", "chain")
    lab.run("lab", "kill", str(base + 1))
    st = json.loads(lab.run("lab", "status", "-o", "json").stdout)
    assert [n["alive"] for n in st["nodes"]] == [True, False, True]
    result = lab.run("status", f"127.0.0.1:{base + 2}", "-o", "json", check=False)
    assert result.returncode == 4
    kinds = {p["kind"] for p in json.loads(result.stdout)["problems"]}
    assert "master_unreachable" in kinds
    lab.run("lab", "restart", str(base + 1))
    wait_until(
        lambda: b"master_link_status:up" in raw(base + 2, "INFO", "replication"),
        15,
        what="chain relinked",
    )
    lab.run("lab", "pause", str(base))
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", base), timeout=0.5) as s:
        s.sendall(b"PING\r\n")  # a paused node accepts nothing: the read times out
        if not s.recv(10):
            raise OSError("closed")
    lab.run("lab", "resume", str(base))
    assert raw(base, "PING") == b"+PONG\r\n"
    lab.run("lab", "partition", str(base), str(base + 1))
    lab.run("lab", "heal", str(base), str(base + 1))


def test_lab_refuses_bad_requests_with_one_line_errors(lab: Lab) -> None:
    base = lab_base_port(2)
    lab.run("lab", "up", "--base-port", str(base), "--nodes", "2")
    again = lab.run("lab", "up", "--base-port", str(base + 10), check=False)
    assert (
        again.returncode == 2
        and "already running" in again.stderr
        and again.stderr.count("\n") == 1
    )
    wrong = lab.run("lab", "kill", "1", check=False)
    assert wrong.returncode == 2 and "not a node of this lab" in wrong.stderr
    bad_engine = lab.run(
        "lab", "up", "--engine", "nope", "--dir", "/tmp/redisops-lab-unused", check=False
    )
    assert bad_engine.returncode == 2
    lab.run("lab", "down")
    assert lab.run("lab", "status", check=False).returncode == 1


def test_lab_up_fails_cleanly_on_a_busy_port(lab: Lab) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = lab.run("lab", "up", "--base-port", str(port), check=False)
    assert result.returncode == 2 and "already in use" in result.stderr


@pytest.mark.redis_server
@pytest.mark.every_server
def test_same_lab_with_real_redis_server(tmp_path: Path, server: ServerSpec) -> None:
    lab = Lab(tmp_path)
    base = lab_base_port(3)
    binary = str(server.binary())
    try:
        up = lab.run(
            "lab", "up", "--engine", "redis-server", "--binary", binary, "--base-port", str(base)
        )
        assert f"lab up ({server.product} {server.version}, star)" in up.stdout
        nodes = json.loads(lab.run("status", f"127.0.0.1:{base}", "-o", "json").stdout)["nodes"]
        assert [n["role"] for n in nodes] == ["master", "replica", "replica"]
        assert nodes[0]["version"] == server.version
        assert nodes[0]["server"] == server.product
        assert nodes[0]["rdb_format"] == server.server.rdb_format
        # lab status asks each redis-server for its role, master and offset
        st = json.loads(lab.run("lab", "status", "-o", "json").stdout)
        assert [n["role"] for n in st["nodes"]] == ["master", "replica", "replica"]
        assert [n["master"] for n in st["nodes"]] == [None, *[f"127.0.0.1:{base}"] * 2]
        assert all(isinstance(n["offset"], int) for n in st["nodes"])
        table = lab.run("lab", "status").stdout
        assert f"127.0.0.1:{base + 1}  up" in table and "replica" in table
        lab.run("lab", "pause", str(base + 1))
        st = json.loads(lab.run("lab", "status", "-o", "json").stdout)
        assert st["nodes"][1]["paused"] is True
        lab.run("lab", "resume", str(base + 1))
        lab.run("lab", "kill", str(base + 2))
        st = json.loads(lab.run("lab", "status", "-o", "json").stdout)
        assert [n["alive"] for n in st["nodes"]] == [True, True, False]
        lab.run("lab", "restart", str(base + 2))
        wait_until(
            lambda: b"master_link_status:up" in raw(base + 2, "INFO", "replication"),
            15,
            what="relinked",
        )
    finally:
        lab.run("lab", "down", check=False)


def test_the_demo_takes_a_base_port(tmp_path: Path) -> None:
    from redisops.demo import parse_args

    assert parse_args(["--base-port", "23000"]) == 23000
    with pytest.raises(SystemExit):
        parse_args(["--base-port", "80"])
    # and the lab it starts is there: the whole demo, moved
    base = lab_base_port(4)
    proc = subprocess.run(
        [sys.executable, "-m", "redisops.demo", "--base-port", str(base)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state")),
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"lab up --nodes 4 --base-port {base}" in proc.stdout
    assert f"127.0.0.1:{base + 3}" in proc.stdout


@pytest.mark.tool("redis-cli", apt="redis-tools")
def test_redis_cli_works_against_the_embedded_lab(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    base = lab_base_port(3)
    try:
        lab.run("lab", "up", "--base-port", str(base))
        cli = shutil.which("redis-cli")
        assert cli is not None
        out = subprocess.run(
            [cli, "-p", str(base), "info", "replication"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        assert "role:master" in out and "connected_slaves:2" in out
        role = subprocess.run(
            [cli, "-p", str(base + 1), "role"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.split()
        assert role[:3] == ["slave", "127.0.0.1", str(base)]
        assert (
            subprocess.run(
                [cli, "-p", str(base), "set", "k", "v"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout.strip()
            == "OK"
        )
    finally:
        lab.run("lab", "down", check=False)
