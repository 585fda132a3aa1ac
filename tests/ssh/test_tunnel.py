"""Redis through SSH: local forwards over direct-tcpip, and jump hosts, against real sshd."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from redisops.cli import app
from redisops.errors import ExitCode, HostKeyError
from redisops.inventory import SSHSettings
from redisops.model import Address
from redisops.retry import NO_RETRY
from redisops.session import build_session
from redisops.ssh.pool import SSHPool
from redisops.ssh.settings import Resolver, SSHOptions
from tests.harness import FAST_SYNC, RedisFactory, wait_link_up
from tests.ssh.sshd import SSHServer, SSHWorld

pytestmark = [pytest.mark.sshd, pytest.mark.redis_server]

runner = CliRunner()


@pytest.fixture(autouse=True)
def _client_home(ssh_world: SSHWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(ssh_world.home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


def forwarded_ports(srv: SSHServer) -> list[int]:
    """The Redis ports sshd opened direct-tcpip channels to (its DEBUG1 log)."""
    return [
        int(m.group(1))
        for m in re.finditer(r"server_request_direct_tcpip: .* target \S+ port (\d+)", srv.log())
    ]


def test_status_via_ssh_reaches_every_node_through_the_tunnel(
    ssh_world: SSHWorld, redis_factory: RedisFactory
) -> None:
    srv = ssh_world.server(log_level="DEBUG1")
    ssh_world.trust(srv)
    master = redis_factory.start(FAST_SYNC)
    replica = redis_factory.start({**FAST_SYNC, "replicaof": f"127.0.0.1 {master.port}"})
    wait_link_up(replica)
    result = runner.invoke(
        app,
        [
            "status",
            master.address,
            "--via-ssh",
            "--ssh-port",
            str(srv.port),
            "--ssh-key",
            str(ssh_world.client_key.path),
            "-o",
            "json",
        ],
        env=ssh_world.cli_env(),
    )
    assert result.exit_code == 0, result.stderr
    nodes = {n["address"]: n for n in json.loads(result.stdout)["nodes"]}
    assert nodes[master.address]["role"] == "master"
    assert nodes[replica.address]["role"] == "replica"
    # the proof: sshd opened a channel to each Redis port (the replica was found through
    # the master's INFO and reached through its own forward)
    assert set(forwarded_ports(srv)) >= {master.port, replica.port}


def test_tunnel_carries_the_bytes_and_is_closed_with_the_session(
    ssh_world: SSHWorld, redis_factory: RedisFactory
) -> None:
    srv = ssh_world.server(log_level="DEBUG1")
    ssh_world.trust(srv)
    node = redis_factory.start()
    node.client().set("through", "the tunnel")
    session = build_session(
        seeds=[node.address],
        ssh=SSHOptions(port=srv.port, key=str(ssh_world.client_key.path), via_ssh=True),
    )
    with session:
        assert session.node(Address.parse(node.address)).execute("GET", "through") == "the tunnel"
        forwards = session.ssh_pool().forwarders()
        assert len(forwards) == 1
        fwd = forwards[0]
        assert fwd.local[0] == "127.0.0.1" and fwd.local[1] != node.port
        assert fwd.connections == 1 and fwd.bytes_in > 0 and fwd.bytes_out > 0
    # closed on exit: nothing listens on the forward's port any more
    with pytest.raises(OSError):
        socket.create_connection(fwd.local, timeout=1).close()


def test_inventory_tunnel_setting_and_an_unreachable_port_is_reported_with_sshd_reason(
    ssh_world: SSHWorld, redis_factory: RedisFactory, tmp_path: Path
) -> None:
    srv = ssh_world.server(log_level="DEBUG1")
    ssh_world.trust(srv)
    node = redis_factory.start()
    dead_port = redis_factory.start().port
    redis_factory.procs[-1].kill()
    inv = tmp_path / "redisops.yml"
    inv.write_text(
        yaml.safe_dump(
            {
                "clusters": {
                    "c": {
                        "nodes": [node.address, f"127.0.0.1:{dead_port}"],
                        "ssh": {
                            "port": srv.port,
                            "identity_file": str(ssh_world.client_key.path),
                            "tunnel": True,
                        },
                    }
                }
            }
        )
    )
    result = runner.invoke(
        app,
        ["status", "--cluster", "c", "--inventory", str(inv), "-o", "json"],
        env=ssh_world.cli_env(),
    )
    doc = json.loads(result.stdout)
    nodes = {n["address"]: n for n in doc["nodes"]}
    assert nodes[node.address]["reachable"] is True
    dead = nodes[f"127.0.0.1:{dead_port}"]
    assert dead["reachable"] is False and "cannot reach" in dead["error"]
    assert node.port in forwarded_ports(srv)


def test_jump_host_carries_the_connection_and_checks_its_own_host_key(
    ssh_world: SSHWorld, tmp_path: Path
) -> None:
    bastion = ssh_world.server(log_level="DEBUG1")
    inner = ssh_world.server(log_level="DEBUG1")
    ssh_world.trust(inner)
    settings = SSHSettings(
        port=inner.port,
        identity_file=str(ssh_world.client_key.path),
        proxy_jump=f"127.0.0.1:{bastion.port}",
    )
    target = Resolver(SSHOptions()).node("127.0.0.1", settings).target
    assert target.via is not None and target.via.port == bastion.port
    # the bastion's key is not known: refused, naming the bastion
    pool = SSHPool(retry=NO_RETRY)
    try:
        with pytest.raises(HostKeyError) as err:
            pool.connection(target)
        assert bastion.known_hosts_name in str(err.value)
        assert err.value.exit_code is ExitCode.HOST_KEY
    finally:
        pool.close()
    ssh_world.trust(bastion)
    pool = SSHPool(retry=NO_RETRY)
    try:
        conn = pool.connection(target)
        chan = conn.open_session()
        chan.exec_command("echo hop")
        assert chan.makefile("rb").read() == b"hop\n"
    finally:
        pool.close()
    assert inner.port in forwarded_ports(bastion)
    assert not forwarded_ports(inner)


def test_two_jump_hosts_in_a_row_each_forward_to_the_next(
    ssh_world: SSHWorld, redis_factory: RedisFactory
) -> None:
    first = ssh_world.server(log_level="DEBUG1")
    second = ssh_world.server(log_level="DEBUG1")
    inner = ssh_world.server(log_level="DEBUG1")
    for srv in (first, second, inner):
        ssh_world.trust(srv)
    node = redis_factory.start()
    node.client().set("hops", "2")
    inv = {
        "clusters": {
            "c": {
                "nodes": [node.address],
                "ssh": {
                    "port": inner.port,
                    "identity_file": str(ssh_world.client_key.path),
                    "proxy_jump": f"127.0.0.1:{first.port},root@127.0.0.1:{second.port}",
                    "tunnel": True,
                },
            }
        }
    }
    path = ssh_world.base / "inv.yml"
    path.write_text(yaml.safe_dump(inv))
    session = build_session(cluster="c", inventory=path)
    with session:
        assert session.node(Address.parse(node.address)).execute("GET", "hops") == "2"
    assert forwarded_ports(first) == [second.port]
    assert forwarded_ports(second) == [inner.port]
    assert forwarded_ports(inner) == [node.port]


def test_switchover_works_unchanged_through_the_tunnel(
    ssh_world: SSHWorld, redis_factory: RedisFactory
) -> None:
    srv = ssh_world.server(log_level="DEBUG1")
    ssh_world.trust(srv)
    master = redis_factory.start(FAST_SYNC)
    replica = redis_factory.start({**FAST_SYNC, "replicaof": f"127.0.0.1 {master.port}"})
    wait_link_up(replica)
    master.client().set("before", "switchover")
    result = runner.invoke(
        app,
        [
            "switchover",
            "--to",
            replica.address,
            "--yes",
            "--via-ssh",
            "--ssh-port",
            str(srv.port),
            "--ssh-key",
            str(ssh_world.client_key.path),
            "-o",
            "json",
        ],
        env=ssh_world.cli_env(),
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    assert replica.info("replication")["role"] == "master"
    assert master.info("replication")["role"] == "slave"
    assert replica.client().get("before") == "switchover"
    assert {master.port, replica.port} <= set(forwarded_ports(srv))
