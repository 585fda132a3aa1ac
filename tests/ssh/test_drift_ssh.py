"""``redisops drift`` of nodes whose config files are read (and fixed) only through SSH:
inventory nodes with ``ssh:`` settings pointing at the loopback sshd, with ``sudo: true``
and a recording ``sudo`` on the session PATH, so every file access shows in its log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from redisops.cli import app
from tests.harness import wait_until
from tests.ssh.nodes import ConfRedis
from tests.ssh.sshd import SSHServer, SSHWorld

pytestmark = [pytest.mark.sshd, pytest.mark.redis_server]

runner = CliRunner()

#: like ``sudo -n`` for a user allowed everything; records every call with its arguments
RECORDING_SUDO = """#!/bin/sh
echo "$*" >> {log}
[ "$1" = -n ] || {{ echo "sudo: a password is required" >&2; exit 1; }}
shift
[ "$1" = -- ] && shift
exec "$@"
"""


@pytest.fixture
def started() -> Iterator[list[ConfRedis]]:
    procs: list[ConfRedis] = []
    try:
        yield procs
    finally:
        for p in procs:
            p.stop()


@pytest.fixture
def sudo_log(tmp_path: Path) -> Path:
    return tmp_path / "sudo.log"


@pytest.fixture
def srv(ssh_world: SSHWorld, tmp_path: Path, sudo_log: Path) -> SSHServer:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sudo").write_text(RECORDING_SUDO.format(log=sudo_log))
    (bindir / "sudo").chmod(0o755)
    server = ssh_world.server(session_env={"PATH": f"{bindir}:/usr/sbin:/usr/bin:/sbin:/bin"})
    ssh_world.trust(server)
    return server


def drift(
    world: SSHWorld, srv: SSHServer, base: Path, nodes: list[str], *args: str, password: str = ""
) -> Result:
    inv = base / "inv.yml"
    ssh = {"port": srv.port, "identity_file": str(world.client_key.path), "sudo": True}
    inv.write_text(yaml.safe_dump({"clusters": {"c": {"nodes": nodes, "ssh": ssh}}}))
    return runner.invoke(
        app,
        ["drift", "-c", "c", "--inventory", str(inv), "-o", "json", *args],
        env=world.cli_env(REDISCLI_AUTH=password),
    )


def findings(doc: dict[str, Any], **match: str) -> list[dict[str, Any]]:
    report = doc.get("report", doc)
    return [f for f in report["findings"] if all(f.get(k) == v for k, v in match.items())]


def sudo_calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_drift_reads_each_config_file_over_ssh_even_where_config_is_renamed(
    ssh_world: SSHWorld,
    srv: SSHServer,
    started: list[ConfRedis],
    sudo_log: Path,
    tmp_path: Path,
) -> None:
    master = ConfRedis(tmp_path, ["maxmemory 1gb"])
    started.append(master)
    extra = tmp_path / "replica part.conf"
    extra.write_text("maxmemory 512mb\n")
    replica = ConfRedis(
        tmp_path,
        [f"replicaof 127.0.0.1 {master.port}", 'rename-command CONFIG ""', f'include "{extra}"'],
    )
    started.append(replica)
    wait_until(
        lambda: replica.client().info("replication")["master_link_status"] == "up",
        what="replica link",
    )
    master.client().config_set("maxmemory-policy", "allkeys-lru")  # not persisted
    result = drift(ssh_world, srv, tmp_path, [master.address, replica.address])
    assert result.exit_code == 11, result.stdout + result.stderr
    doc = json.loads(result.stdout)
    (renamed,) = findings(doc, **{"class": "config-unavailable"})
    assert renamed["node"] == replica.address
    # the replica's maxmemory comes from its file (and its include), read over SSH
    (m,) = findings(doc, parameter="maxmemory", **{"class": "peer-mismatch"})
    assert m["differs"] == [replica.address]
    assert m["values"][replica.address].startswith("536870912")
    (p,) = findings(doc, parameter="maxmemory-policy", node=master.address)
    assert p["class"] == "not-persisted"
    cats = [c for c in sudo_calls(sudo_log) if c.startswith("-n -- cat -- ")]
    read = {c.removeprefix("-n -- cat -- ") for c in cats}
    assert {str(master.conf), str(replica.conf), str(extra)} <= read


def test_drift_fix_edits_the_file_over_ssh_when_config_rewrite_is_refused(
    ssh_world: SSHWorld,
    srv: SSHServer,
    started: list[ConfRedis],
    sudo_log: Path,
    tmp_path: Path,
) -> None:
    acl = "user default on >opspass ~* &* +@all -config|rewrite"
    master = ConfRedis(tmp_path, [acl, "maxmemory 1gb", "masterauth opspass"], "opspass")
    started.append(master)
    replica = ConfRedis(
        tmp_path,
        [acl, "maxmemory 256mb", "masterauth opspass", f"replicaof 127.0.0.1 {master.port}"],
        "opspass",
    )
    started.append(replica)
    wait_until(
        lambda: replica.client().info("replication")["master_link_status"] == "up",
        what="replica link",
    )
    nodes = [master.address, replica.address]
    result = drift(ssh_world, srv, tmp_path, nodes, "--fix", "--yes", password="opspass")
    assert result.exit_code == 0, result.stdout + result.stderr
    steps = json.loads(result.stdout)["result"]["steps"]
    (persist,) = [s for s in steps if s["action"] == "persist-config"]
    assert persist["detail"].startswith("CONFIG REWRITE failed")
    assert f"wrote maxmemory into {replica.conf} on root@127.0.0.1:{srv.port}" in persist["detail"]
    assert "maxmemory 1073741824" in replica.conf.read_text()
    assert list(replica.dir.glob("redis.conf.redisops-*.bak"))
    # written by the replace script under sudo on the "remote" host, then read back there
    assert any(c.startswith("-n -- sh -c ") for c in sudo_calls(sudo_log))
    assert drift(ssh_world, srv, tmp_path, nodes, password="opspass").exit_code == 0
