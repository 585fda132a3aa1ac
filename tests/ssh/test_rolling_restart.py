"""The rolling-restart playbook against real redis-server nodes restarted over SSH by their
service command (the fake service manager of the SSH tests, with persistence on)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from redisops.cli import app
from tests.harness import wait_until
from tests.ssh.nodes import ServicedNode
from tests.ssh.sshd import SSHWorld

pytestmark = [pytest.mark.sshd, pytest.mark.redis_server]


def _node(base: Path) -> ServicedNode:
    node = ServicedNode(base)
    # a node that persists (the final health check refuses masters without persistence)
    node.script.write_text(node.script.read_text().replace("--save ''", "--save '3600 1'"))
    node.start()
    return node


def _linked(replica: ServicedNode, master: ServicedNode) -> bool:
    info = replica.client().info("replication")
    return bool(info.get("master_port") == master.port and info.get("master_link_status") == "up")


def test_rolling_restart_restarts_every_node_over_ssh_and_ends_with_the_same_data(
    ssh_world: SSHWorld, tmp_path: Path
) -> None:
    srv = ssh_world.server()
    ssh_world.trust(srv)
    nodes = [_node(tmp_path / name) for name in ("a", "b", "c")]
    try:
        master, *replicas = nodes
        for r in replicas:
            r.client().replicaof("127.0.0.1", master.port)
        master.client().mset({f"k{i}": "v" * 16 for i in range(200)})
        for r in replicas:
            wait_until(lambda r=r: _linked(r, master) and r.client().dbsize() == 200, 20)
        inv = tmp_path / "inv.yml"
        inv.write_text(
            yaml.safe_dump(
                {
                    "clusters": {
                        "c": {
                            "nodes": [
                                {"address": n.address, "ssh": {"service": n.template}}
                                for n in nodes
                            ],
                            "ssh": {
                                "port": srv.port,
                                "identity_file": str(ssh_world.client_key.path),
                            },
                        }
                    }
                }
            )
        )
        result = CliRunner().invoke(
            app,
            ["playbook", "run", "rolling-restart", "--var", "cluster=c", "--inventory", str(inv),
             "--cluster", "c", "--var", "persist=false",  # the fake service has no config file
             "--yes", "-o", "json"],
            env=ssh_world.cli_env(),
        )  # fmt: skip
        doc = json.loads(result.stdout) if result.stdout.strip() else {}
        assert result.exit_code == 0, (doc.get("message"), result.stderr)
        new = next(s for s in doc["steps"] if s["action"] == "switchover")["registered"][
            "new_master"
        ]
        assert all("restart" in n.calls() for n in nodes)  # every node went through the service
        top = next(n for n in nodes if n.address == new)
        assert top.client().info("replication")["role"] == "master"
        for n in nodes:
            if n is not top:
                wait_until(lambda n=n: _linked(n, top), 20)
            assert len(n.client().keys("k*")) == 200  # (redisops:* bookkeeping keys aside)
    finally:
        for n in nodes:
            n.kill()
