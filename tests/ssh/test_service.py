"""``redisops service`` over SSH, with a fake service command that really starts and stops
redis-server (daemonized, with a pid file) on the sshd's machine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from redisops.cli import app
from tests.harness import FAST_SYNC, RedisFactory, wait_link_up
from tests.ssh.nodes import ServicedNode
from tests.ssh.sshd import SSHServer, SSHWorld

pytestmark = [pytest.mark.sshd, pytest.mark.redis_server]

runner = CliRunner()


@pytest.fixture
def serviced(tmp_path: Path) -> Iterator[ServicedNode]:
    node = ServicedNode(tmp_path)
    try:
        yield node
    finally:
        node.kill()


def inventory(path: Path, srv: SSHServer, world: SSHWorld, *nodes: ServicedNode | str) -> Path:
    entries: list[object] = []
    for n in nodes:
        if isinstance(n, ServicedNode):
            entries.append({"address": n.address, "ssh": {"service": n.template}})
        else:
            entries.append(n)
    path.write_text(
        yaml.safe_dump(
            {
                "clusters": {
                    "c": {
                        "nodes": entries,
                        "ssh": {"port": srv.port, "identity_file": str(world.client_key.path)},
                    }
                }
            }
        )
    )
    return path


def service(world: SSHWorld, inv: Path, *args: str) -> tuple[int, dict[str, object], str]:
    result = runner.invoke(
        app,
        ["service", *args, "--cluster", "c", "--inventory", str(inv), "-o", "json"],
        env=world.cli_env(),
    )
    doc = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.exit_code, doc, result.stderr


def test_service_start_runs_the_inventory_command_over_ssh_and_waits_for_ping(
    ssh_world: SSHWorld, serviced: ServicedNode, tmp_path: Path
) -> None:
    srv = ssh_world.server()
    ssh_world.trust(srv)
    inv = inventory(tmp_path / "inv.yml", srv, ssh_world, serviced)
    code, doc, _ = service(ssh_world, inv, serviced.address, "status")
    assert code == 4 and doc["state"] == "stopped" and "not answering" in str(doc["redis"])
    code, doc, err = service(ssh_world, inv, serviced.address, "start", "--yes")
    assert code == 0, err
    assert serviced.up()
    steps = {s["action"]: s for s in doc["result"]["steps"]}  # type: ignore[index]
    assert (
        steps["service"]["result"] == "ok"
        and f"root@127.0.0.1:{srv.port}" in steps["service"]["detail"]
    )
    assert steps["verify-service"]["detail"].startswith("answers PING")
    assert serviced.calls() == ["status", "start"]
    code, doc, _ = service(ssh_world, inv, serviced.address, "status")
    assert code == 0 and doc["state"] == "running" and doc["redis"] == "answers PING"


def test_service_restart_is_verified_by_a_new_run_id(
    ssh_world: SSHWorld, serviced: ServicedNode, tmp_path: Path
) -> None:
    srv = ssh_world.server()
    ssh_world.trust(srv)
    serviced.start()
    before = serviced.client().info("server")["run_id"]
    inv = inventory(tmp_path / "inv.yml", srv, ssh_world, serviced)
    code, _, err = service(ssh_world, inv, serviced.address, "restart", "--yes")
    assert code == 0, err
    after = serviced.client().info("server")["run_id"]
    assert after != before
    assert serviced.calls() == ["start", "restart", "stop", "start"]


def test_stopping_a_master_with_replicas_is_refused_without_force(
    ssh_world: SSHWorld, serviced: ServicedNode, redis_factory: RedisFactory, tmp_path: Path
) -> None:
    srv = ssh_world.server()
    ssh_world.trust(srv)
    serviced.start()
    replica = redis_factory.start({**FAST_SYNC, "replicaof": f"127.0.0.1 {serviced.port}"})
    wait_link_up(replica)
    inv = inventory(tmp_path / "inv.yml", srv, ssh_world, serviced, replica.address)
    code, doc, err = service(ssh_world, inv, serviced.address, "stop", "--yes")
    assert code == 5
    assert "switchover" in err and replica.address in err
    assert serviced.up() and "stop" not in serviced.calls()
    code, doc, err = service(ssh_world, inv, serviced.address, "stop", "--yes", "--force")
    assert code == 0, err
    assert not serviced.up()
    steps = {s["action"]: s for s in doc["result"]["steps"]}  # type: ignore[index]
    assert steps["verify-service"]["detail"].startswith("stopped")


def test_a_failing_service_command_reports_its_exit_status_and_stderr(
    ssh_world: SSHWorld, serviced: ServicedNode, tmp_path: Path
) -> None:
    srv = ssh_world.server()
    ssh_world.trust(srv)
    serviced.start()
    broken = tmp_path / "broken.sh"
    broken.write_text('#!/bin/sh\necho "cannot $1: unit masked" >&2\nexit 5\n')
    broken.chmod(0o755)
    inv = tmp_path / "inv.yml"
    inv.write_text(
        yaml.safe_dump(
            {
                "clusters": {
                    "c": {
                        "nodes": [serviced.address],
                        "ssh": {
                            "port": srv.port,
                            "identity_file": str(ssh_world.client_key.path),
                            "service": f"{broken} {{verb}}",
                        },
                    }
                }
            }
        )
    )
    code, _, err = service(ssh_world, inv, serviced.address, "restart", "--yes")
    assert code == 1
    assert "exited 5" in err and "cannot restart: unit masked" in err
    assert serviced.up()
