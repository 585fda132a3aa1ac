"""Backups and restores through the SSH layer, against a real sshd and redis-server: the
node's RDB read over SFTP (hashed there at the same time), an encrypted copy sent to an
``sftp://`` destination and verified there, and restores on a node reached over SSH
(online, and by file through its service command with ``appendonly yes``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from typer.testing import CliRunner, Result

from redisops.cli import app
from tests.harness import (
    FAST_SYNC,
    REDIS_SERVER,
    RedisFactory,
    free_port,
    star_of,
    wait_in_sync,
    wait_until,
)
from tests.ssh.sshd import SSHServer, SSHWorld

pytestmark = [pytest.mark.sshd, pytest.mark.redis_server]

runner = CliRunner()


@pytest.fixture
def sshd(ssh_world: SSHWorld) -> SSHServer:
    """A trusted sshd; the client key is also the user's default key (~/.ssh/id_ed25519),
    so commands without an inventory (list, verify) log in with it as OpenSSH would."""
    srv = ssh_world.server()
    ssh_world.trust(srv)
    default = ssh_world.home / ".ssh" / "id_ed25519"
    shutil.copy(ssh_world.client_key.path, default)
    os.chmod(default, 0o600)
    return srv


def inventory(path: Path, srv: SSHServer, world: SSHWorld, nodes: list[Any]) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "clusters": {
                    "c": {
                        "nodes": nodes,
                        "ssh": {"port": srv.port, "identity_file": str(world.client_key.path)},
                    }
                }
            }
        )
    )
    return path


def cli(world: SSHWorld, *args: str) -> Result:
    return runner.invoke(app, list(args), env=world.cli_env())


def digest(port: int) -> str:
    return str(redis.Redis(port=port).execute_command("DEBUG", "DIGEST").decode())


def test_backup_over_sftp_with_an_encrypted_copy_to_an_sftp_destination(
    ssh_world: SSHWorld,
    sshd: SSHServer,
    redis_factory: RedisFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    master = redis_factory.start(FAST_SYNC)
    master.client().execute_command("DEBUG", "POPULATE", 3000)
    nodes = star_of([master, redis_factory.start(FAST_SYNC)])
    wait_in_sync(master, nodes[1:])
    inv = inventory(tmp_path / "inv.yml", sshd, ssh_world, [n.address for n in nodes])
    key = tmp_path / "backup.key"
    key.write_text(os.urandom(32).hex())
    key.chmod(0o600)
    far_dir = tmp_path / "far away"
    far = f"sftp://root@127.0.0.1:{sshd.port}{far_dir}"
    result = cli(
        ssh_world, "backup", "--cluster", "c", "--inventory", str(inv),
        "--dest", str(tmp_path / "d"), "--copy-to", far, "--encrypt-key-file", str(key), "-o", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    rec = doc["backup"]
    assert rec["node"] == nodes[1].address and rec["keys"] == 3000
    assert "sha256 (source host)" in rec["verified_by"]
    (copy,) = rec["copies"]
    assert copy["offhost"] and copy["encrypted"] and copy["dest"] == far
    assert rec["source_host"] == f"root@127.0.0.1:{sshd.port}"  # read over SFTP
    stored = far_dir / "c" / copy["file"]
    assert stored.is_file() and not stored.read_bytes().startswith(b"REDIS")
    listed = cli(ssh_world, "backup", "list", "--dest", far, "-o", "json")
    assert listed.exit_code == 0, listed.stderr
    (far_rec,) = json.loads(listed.stdout)["groups"]["c"]
    assert far_rec["copy_of"] == str(tmp_path / "d") and far_rec["encrypted"]
    verified = cli(
        ssh_world, "backup", "verify", "--all", "--dest", far, "--decrypt", "--key-file", str(key)
    )
    assert verified.exit_code == 0, verified.stderr
    assert "decrypts (every chunk authenticated)" in verified.stdout
    from redisops.backup.catalogue import newest_verified_backup

    monkeypatch.setenv("HOME", str(ssh_world.home))  # OpenSSH's defaults: this user's files
    found = newest_verified_backup(far, "c")
    assert found is not None and found.id == rec["id"]


SERVICE = """#!/bin/sh
# a service manager for one redis-server started from its config file: $1 is the verb
pidfile={dir}/redis.pid
running() {{ [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }}
echo "$1" >> {dir}/calls.log
case "$1" in
  start) running && exit 0
         exec {server} {conf} ;;
  stop) running || exit 0
        kill "$(cat "$pidfile")"
        while running; do sleep 0.05; done ;;
  *) echo "unknown verb $1" >&2; exit 2 ;;
esac
"""


class ServicedAOFNode:
    """redis-server with ``appendonly yes`` in its config file, started and stopped only by
    a service script (as systemd would: the file is all it gets)."""

    def __init__(self, base: Path) -> None:
        self.dir = base / "aof node"
        self.dir.mkdir()
        self.port = free_port()
        self.conf = self.dir / "redis.conf"
        self.conf_text = (
            "\n".join(
                [
                    f"port {self.port}",
                    "bind 127.0.0.1",
                    f'dir "{self.dir}"',
                    f'pidfile "{self.dir}/redis.pid"',
                    f'logfile "{self.dir}/redis.log"',
                    "daemonize yes",
                    'save ""',
                    "appendonly yes",
                    "enable-debug-command local",
                    "repl-diskless-sync-delay 0",
                ]
            )
            + "\n"
        )
        self.conf.write_text(self.conf_text)
        self.script = self.dir / "service.sh"
        q = lambda p: "'" + str(p) + "'"  # noqa: E731
        self.script.write_text(
            SERVICE.format(dir=q(self.dir), server=REDIS_SERVER, conf=q(self.conf))
        )
        self.script.chmod(0o755)
        subprocess.run([str(self.script), "start"], check=True)
        wait_until(self.up, what="serviced node up")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5, decode_responses=True)

    def up(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def calls(self) -> list[str]:
        return (self.dir / "calls.log").read_text().split()

    def stop(self) -> None:
        subprocess.run([str(self.script), "stop"], check=False)


@pytest.fixture
def aof_node(tmp_path: Path) -> Iterator[ServicedAOFNode]:
    node = ServicedAOFNode(tmp_path)
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def backup_dest(redis_factory: RedisFactory, tmp_path: Path) -> tuple[Path, str]:
    source = redis_factory.start(FAST_SYNC)
    c = source.client()
    c.execute_command("DEBUG", "POPULATE", 2000, "r")
    c.hset("h", mapping={"a": "1"})
    dest = tmp_path / "d"
    result = runner.invoke(
        app, ["backup", source.address, "--dest", str(dest), "--group", "g"],
        env={"XDG_STATE_HOME": str(tmp_path / "state"), "REDISCLI_AUTH": ""},
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return dest, digest(source.port)


def test_file_restore_over_ssh_through_the_service_with_appendonly_yes(
    ssh_world: SSHWorld,
    sshd: SSHServer,
    aof_node: ServicedAOFNode,
    backup_dest: tuple[Path, str],
    tmp_path: Path,
) -> None:
    dest, expected = backup_dest
    aof_node.client().set("before", "restore")
    inv = inventory(
        tmp_path / "inv.yml",
        sshd,
        ssh_world,
        [{"address": aof_node.address, "ssh": {"service": f"'{aof_node.script}' {{verb}}"}}],
    )
    result = cli(
        ssh_world, "restore", "latest", "--dest", str(dest), "--to", aof_node.address,
        "--method", "file", "--cluster", "c", "--inventory", str(inv), "--yes", "-o", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr + result.stdout
    assert digest(aof_node.port) == expected
    c = aof_node.client()
    assert c.info("persistence")["aof_enabled"] == 1
    assert aof_node.conf.read_text() == aof_node.conf_text  # appendonly yes again, as it was
    assert aof_node.calls() == ["start", "stop", "start"]
    # restarted by its service from the unchanged file: AOF is loaded, and holds the restore
    aof_node.stop()
    subprocess.run([str(aof_node.script), "start"], check=True)
    wait_until(aof_node.up, what="restarted")
    wait_until(lambda: c.info("persistence")["loading"] == 0, what="loaded")
    assert digest(aof_node.port) == expected


def test_online_restore_of_a_node_reached_over_ssh(
    ssh_world: SSHWorld,
    sshd: SSHServer,
    redis_factory: RedisFactory,
    backup_dest: tuple[Path, str],
    tmp_path: Path,
) -> None:
    dest, expected = backup_dest
    target = redis_factory.start(FAST_SYNC)
    inv = inventory(tmp_path / "inv.yml", sshd, ssh_world, [target.address])
    result = cli(
        ssh_world, "restore", "latest", "--dest", str(dest), "--to", target.address,
        "--cluster", "c", "--inventory", str(inv), "--yes", "-o", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr + result.stdout
    steps = {s["action"]: s["detail"] for s in json.loads(result.stdout)["result"]["steps"]}
    assert f"root@127.0.0.1:{sshd.port}" in steps["restore-stage"]  # staged over SFTP
    assert digest(target.port) == expected
