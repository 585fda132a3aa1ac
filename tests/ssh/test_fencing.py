"""Fencing over SSH: ``fence --fence config|stop`` and ``failover --fence config|stop``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from redisops.cli import app
from redisops.redisconf import parse_config
from tests.harness import wait_until
from tests.ssh.nodes import ConfRedis, ServicedNode
from tests.ssh.sshd import SSHServer, SSHWorld

pytestmark = [pytest.mark.sshd, pytest.mark.redis_server]

runner = CliRunner()


@pytest.fixture
def procs() -> Iterator[list[ConfRedis | ServicedNode]]:
    started: list[ConfRedis | ServicedNode] = []
    try:
        yield started
    finally:
        for p in started:
            if isinstance(p, ServicedNode):
                p.kill()
            else:
                p.stop()


@pytest.fixture
def srv(ssh_world: SSHWorld) -> SSHServer:
    server = ssh_world.server()
    ssh_world.trust(server)
    return server


def write_inventory(path: Path, srv: SSHServer, world: SSHWorld, nodes: list[object]) -> Path:
    ssh = {"port": srv.port, "identity_file": str(world.client_key.path)}
    path.write_text(yaml.safe_dump({"clusters": {"c": {"nodes": nodes, "ssh": ssh}}}))
    return path


def cli(world: SSHWorld, inv: Path, *args: str) -> Result:
    return runner.invoke(
        app, [*args, "-c", "c", "--inventory", str(inv), "-o", "json"], env=world.cli_env()
    )


def replicates_from(node: ConfRedis, master: ConfRedis) -> bool:
    info = node.client().info("replication")
    return bool(
        info["role"] == "slave"
        and info["master_port"] == master.port
        and info["master_link_status"] == "up"
    )


def test_fence_config_makes_the_old_master_a_replica_now_and_after_a_restart(
    ssh_world: SSHWorld, srv: SSHServer, procs: list[ConfRedis | ServicedNode], tmp_path: Path
) -> None:
    new = ConfRedis(tmp_path, [])
    old = ConfRedis(tmp_path, [])
    procs += [new, old]
    inv = write_inventory(tmp_path / "inv.yml", srv, ssh_world, [new.address, old.address])
    result = cli(
        ssh_world, inv, "fence", old.address, "--to", new.address, "--fence", "config", "--yes"
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    steps = {s["action"]: s for s in json.loads(result.stdout)["result"]["steps"]}
    assert "now says replicaof" in steps["fence-config"]["detail"]
    assert parse_config(old.conf.read_text()).last("replicaof") == ("127.0.0.1", str(new.port))
    wait_until(lambda: replicates_from(old, new), what="old master replicating")
    old.restart()
    wait_until(lambda: replicates_from(old, new), what="old master replicating after restart")


def test_fence_stop_stops_the_returning_master_through_its_service(
    ssh_world: SSHWorld, srv: SSHServer, procs: list[ConfRedis | ServicedNode], tmp_path: Path
) -> None:
    new = ConfRedis(tmp_path, [])
    old = ServicedNode(tmp_path)
    procs += [new, old]
    old.start()
    inv = write_inventory(
        tmp_path / "inv.yml",
        srv,
        ssh_world,
        [new.address, {"address": old.address, "ssh": {"service": old.template}}],
    )
    result = cli(
        ssh_world, inv, "fence", old.address, "--to", new.address, "--fence", "stop", "--yes"
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    assert not old.up()
    assert old.calls()[-1] == "stop"
    actions = [s["action"] for s in json.loads(result.stdout)["result"]["steps"]]
    assert actions == ["lock", "service", "verify-service", "unlock"]


@pytest.mark.parametrize("mode", ["config", "stop"])
def test_failover_fences_the_dead_master_on_its_host(
    ssh_world: SSHWorld,
    srv: SSHServer,
    procs: list[ConfRedis | ServicedNode],
    tmp_path: Path,
    mode: str,
) -> None:
    dead = ServicedNode(tmp_path)
    procs.append(dead)
    dead.start()
    replica = ConfRedis(tmp_path, [f"replicaof 127.0.0.1 {dead.port}"])
    procs.append(replica)
    wait_until(
        lambda: replica.client().info("replication")["master_link_status"] == "up",
        what="replica link",
    )
    conf = dead.dir / "redis.conf"
    conf.write_text(f"port {dead.port}\n")
    inv = write_inventory(
        tmp_path / "inv.yml",
        srv,
        ssh_world,
        [
            {"address": dead.address, "ssh": {"service": dead.template, "config_file": str(conf)}},
            replica.address,
        ],
    )
    dead.kill()  # the master dies; its host (the sshd) is still there
    wait_until(lambda: not dead.up(), what="master gone")
    result = cli(
        ssh_world,
        inv,
        "failover",
        replica.address,  # the seed to find candidates from
        "--master",
        dead.address,
        "--to",
        replica.address,
        "--fence",
        mode,
        "--yes",
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    assert replica.client().info("replication")["role"] == "master"
    steps = {s["action"]: s for s in json.loads(result.stdout)["result"]["steps"]}
    if mode == "config":
        assert parse_config(conf.read_text()).last("replicaof") == ("127.0.0.1", str(replica.port))
        assert "a restart brings" in steps["fence-config"]["detail"]
    else:
        assert dead.calls()[-1] == "stop"
        assert steps["verify-service"]["result"] == "ok"
