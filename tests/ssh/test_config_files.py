"""redis.conf over SSH: ``redisops config-file`` and the ``--persist`` fallback."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from redisops.cli import app
from redisops.redisconf import parse_config
from tests.harness import wait_until
from tests.ssh.nodes import ConfRedis
from tests.ssh.sshd import SSHServer, SSHWorld

pytestmark = [pytest.mark.sshd, pytest.mark.redis_server]

runner = CliRunner()
SECRET = "s3cr3t pass'word"


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[ConfRedis]]:
    procs: list[ConfRedis] = []
    try:
        yield procs
    finally:
        for p in procs:
            p.stop()


def inventory(path: Path, srv: SSHServer, world: SSHWorld, nodes: list[object]) -> Path:
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


def cli(world: SSHWorld, *args: str, password: str = "") -> Result:
    return runner.invoke(app, list(args), env=world.cli_env(REDISCLI_AUTH=password))


@pytest.fixture
def srv(ssh_world: SSHWorld, monkeypatch: pytest.MonkeyPatch) -> SSHServer:
    server = ssh_world.server()
    ssh_world.trust(server)
    return server


def test_config_file_is_found_through_info_and_shown_with_includes_and_secrets_redacted(
    ssh_world: SSHWorld, srv: SSHServer, started: list[ConfRedis], tmp_path: Path
) -> None:
    extra = tmp_path / "extra part.conf"
    extra.write_text("maxmemory 64mb\nsave 900 1\nsave 300 10\n")
    quoted = SECRET.replace("'", "\\'")
    node = ConfRedis(tmp_path, [f"requirepass '{quoted}'", f'include "{extra}"'], SECRET)
    started.append(node)
    inv = inventory(tmp_path / "inv.yml", srv, ssh_world, [node.address])
    result = cli(
        ssh_world,
        "config-file",
        node.address,
        "-c",
        "c",
        "--inventory",
        str(inv),
        "-o",
        "json",
        password=SECRET,
    )
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["path"] == str(node.conf) and doc["found_by"] == "INFO server config_file"
    assert doc["host"] == f"root@127.0.0.1:{srv.port}"
    assert doc["files"] == [str(node.conf), str(extra)]
    by_name: dict[str, list[dict[str, object]]] = {}
    for d in doc["directives"]:
        by_name.setdefault(d["name"], []).append(d)
    assert by_name["requirepass"][0]["args"] == ["***"]
    assert [d["args"] for d in by_name["save"]] == [[""], ["900", "1"], ["300", "10"]]
    assert by_name["maxmemory"][0]["where"] == f"{extra}:1"
    assert "s3cr3t" not in result.stdout + result.stderr


def test_config_file_edit_shows_the_diff_then_writes_atomically_with_a_backup(
    ssh_world: SSHWorld, srv: SSHServer, started: list[ConfRedis], tmp_path: Path
) -> None:
    node = ConfRedis(tmp_path, ["maxmemory 10mb", "requirepass hunter2-secret"], "hunter2-secret")
    started.append(node)
    original = node.conf.read_text()
    inv = inventory(
        tmp_path / "inv.yml",
        srv,
        ssh_world,
        [{"address": node.address, "ssh": {"config_file": str(node.conf)}}],
    )
    common = ["config-file", node.address, "-c", "c", "--inventory", str(inv)]
    edits = ["--set", "maxmemory 100mb", "--set", "save 900 1", "--set", "save 60 1000"]
    dry = cli(ssh_world, *common, *edits, "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert "-maxmemory 10mb" in dry.stdout and "+maxmemory 100mb" in dry.stdout
    assert "+save 60 1000" in dry.stdout and "Dry run" in dry.stdout
    assert "hunter2" not in dry.stdout
    assert node.conf.read_text() == original
    done = cli(ssh_world, *common, *edits, "--yes", "-o", "json")
    assert done.exit_code == 0, done.stderr
    text = node.conf.read_text()
    assert "maxmemory 100mb" in text and "maxmemory 10mb" not in text
    # CONFIG REWRITE's way: the first save line is replaced in place, the other appended
    assert parse_config(text).all("save") == [("900", "1"), ("60", "1000")]
    assert os.stat(node.conf).st_mode & 0o777 == 0o640
    backups = [p for p in node.dir.iterdir() if ".redisops-" in p.name]
    assert len(backups) == 1 and backups[0].read_text() == original
    step = json.loads(done.stdout)["result"]["steps"][0]
    assert step["result"] == "ok" and str(backups[0]) in step["detail"]
    assert "hunter2" not in done.stdout + done.stderr
    # Redis itself reads the edited file: restart from it
    node.restart()
    c = node.client()
    assert c.config_get("maxmemory")["maxmemory"] == str(100 * 1024 * 1024)
    assert c.config_get("save")["save"] == "900 1 60 1000"


def test_secret_directives_cannot_be_set_from_the_command_line(
    ssh_world: SSHWorld, srv: SSHServer, tmp_path: Path
) -> None:
    result = cli(ssh_world, "config-file", "127.0.0.1:1", "--set", "masterauth swordfish")
    assert result.exit_code == 2
    assert "holds a secret" in result.stderr and "swordfish" not in result.stderr


def test_persist_falls_back_to_editing_the_file_when_config_rewrite_is_unavailable(
    ssh_world: SSHWorld, srv: SSHServer, started: list[ConfRedis], tmp_path: Path
) -> None:
    master = ConfRedis(tmp_path, [])
    started.append(master)
    replica = ConfRedis(
        tmp_path, [f"replicaof 127.0.0.1 {master.port}", 'rename-command CONFIG ""']
    )
    started.append(replica)
    wait_until(
        lambda: replica.client().info("replication")["master_link_status"] == "up",
        what="replica link",
    )
    inv = inventory(
        tmp_path / "inv.yml",
        srv,
        ssh_world,
        [master.address, {"address": replica.address, "ssh": {"config_file": str(replica.conf)}}],
    )
    audit = tmp_path / "audit.log"
    result = cli(
        ssh_world,
        "detach",
        replica.address,
        "-c",
        "c",
        "--inventory",
        str(inv),
        "--persist",
        "--yes",
        "--audit-log",
        str(audit),
        "-o",
        "json",
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    steps = {s["action"]: s for s in json.loads(result.stdout)["result"]["steps"]}
    detail = steps["config-rewrite"]["detail"]
    assert detail.startswith("CONFIG REWRITE failed")
    assert f"wrote replicaof into {replica.conf}" in detail and "instead" in detail
    assert "replicaof" not in replica.conf.read_text()
    assert any(".redisops-" in p.name for p in replica.dir.iterdir())
    assert "wrote replicaof" in audit.read_text()
    # a restart from the edited file comes back as a master
    replica.restart()
    assert replica.client().info("replication")["role"] == "master"


def test_persist_without_any_config_file_reports_both_failures(
    ssh_world: SSHWorld, srv: SSHServer, redis_factory: object, tmp_path: Path
) -> None:
    from tests.harness import FAST_SYNC, RedisFactory, wait_link_up

    assert isinstance(redis_factory, RedisFactory)
    master = redis_factory.start(FAST_SYNC)
    replica = redis_factory.start({**FAST_SYNC, "replicaof": f"127.0.0.1 {master.port}"})
    wait_link_up(replica)
    inv = inventory(tmp_path / "inv.yml", srv, ssh_world, [master.address, replica.address])
    result = cli(
        ssh_world,
        "detach",
        replica.address,
        "-c",
        "c",
        "--inventory",
        str(inv),
        "--persist",
        "--yes",
    )
    assert result.exit_code == 8
    assert "CONFIG REWRITE failed" in result.stderr
    assert "runs without a config file" in result.stderr
    assert replica.info("replication")["role"] == "master"
