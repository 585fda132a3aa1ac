"""``redisops status`` against real redis-server processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from redisops.cli import app
from tests.harness import RedisFactory, chain, replicate, star, wait_in_sync, wait_link_up

pytestmark = pytest.mark.redis_server
runner = CliRunner()


def status_json(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict]:  # type: ignore[type-arg]
    result = runner.invoke(app, ["status", *args, "--format", "json"], env=env)
    assert result.stdout, result.stderr
    return result.exit_code, json.loads(result.stdout)


def by_addr(data: dict) -> dict[str, dict]:  # type: ignore[type-arg]
    return {n["address"]: n for n in data["nodes"]}


@pytest.mark.every_server
def test_three_node_chain_from_the_bottom(redis_factory: RedisFactory) -> None:
    m, r, s = chain(redis_factory, 3, {"repl-diskless-sync-delay": "0"})
    m.client().set("k", "v" * 100)
    wait_in_sync(m, [r, s])
    code, data = status_json(s.address)
    assert code == 0, data["problems"]
    nodes = by_addr(data)
    assert [n["address"] for n in data["nodes"]] == [m.address, r.address, s.address]
    assert nodes[m.address]["role"] == "master" and nodes[m.address]["master"] is None
    assert nodes[r.address]["role"] == "replica" and nodes[r.address]["master"] == m.address
    assert nodes[s.address]["role"] == "replica" and nodes[s.address]["master"] == r.address
    off = nodes[m.address]["offset"]
    assert off > 0
    for a in (r.address, s.address):
        assert nodes[a]["link"] == "up"
        assert nodes[a]["offset"] == off
        assert nodes[a]["lag_bytes"] == 0
        assert nodes[a]["lag_seconds"] is not None
        assert nodes[a]["replid"] == nodes[m.address]["replid"]
    assert data["problems"] == []


def test_lag_bytes_follow_offsets(redis_factory: RedisFactory) -> None:
    m, r = star(redis_factory, 1, {"repl-diskless-sync-delay": "0"})
    wait_in_sync(m, [r])
    r.pause()
    try:
        m.client().set("k", "x")
        code, data = status_json(m.address, "--connect-timeout", "0.5")
    finally:
        r.resume()
    nodes = by_addr(data)
    # the paused replica is listed by the master but cannot answer
    assert nodes[r.address]["reachable"] is False
    assert code == 4


@pytest.mark.every_server
def test_auth_protected_cluster(redis_factory: RedisFactory, tmp_path: Path) -> None:
    cfg = {"requirepass": "s3cret-pw", "masterauth": "s3cret-pw", "repl-diskless-sync-delay": "0"}
    m = redis_factory.start(cfg)
    r = redis_factory.start(cfg)
    replicate(r, m)
    wait_link_up(r)
    # no password: unreachable (authentication), exit 3, password never printed
    result = runner.invoke(app, ["status", m.address], env={"REDISCLI_AUTH": ""})
    assert result.exit_code == 3
    assert "auth" in result.stdout.lower()
    # REDISCLI_AUTH
    code, data = status_json(m.address, env={"REDISCLI_AUTH": "s3cret-pw"})
    assert code == 0 and len(data["nodes"]) == 2
    # --password-file
    pw = tmp_path / "pw"
    pw.write_text("s3cret-pw\n")
    code, data = status_json(r.address, "--password-file", str(pw), env={"REDISCLI_AUTH": ""})
    assert code == 0 and len(data["nodes"]) == 2
    # inventory naming an env var
    inv = tmp_path / "inv.yml"
    inv.write_text(f"clusters:\n  c:\n    nodes: [{m.address}]\n    auth: {{password_env: C_PW}}\n")
    code, data = status_json(
        "--inventory", str(inv), "--cluster", "c", env={"REDISCLI_AUTH": "", "C_PW": "s3cret-pw"}
    )
    assert code == 0 and len(data["nodes"]) == 2
    # wrong password: clear message, secret not echoed
    result = runner.invoke(app, ["status", m.address], env={"REDISCLI_AUTH": "wrong-pw"})
    assert result.exit_code == 3
    assert "wrong-pw" not in result.stdout + result.stderr
    assert "s3cret-pw" not in result.stdout + result.stderr


def test_unreachable_seed_is_reported_and_the_rest_shown(redis_factory: RedisFactory) -> None:
    m, r = star(redis_factory, 1, {"repl-diskless-sync-delay": "0"})
    code, data = status_json("127.0.0.1:1", m.address)
    assert code == 4
    nodes = by_addr(data)
    assert nodes["127.0.0.1:1"]["reachable"] is False
    assert nodes[m.address]["role"] == "master" and nodes[r.address]["link"] == "up"
    assert [p["kind"] for p in data["problems"]] == ["unreachable"]


def test_only_unreachable_seeds_exit_3(redis_factory: RedisFactory) -> None:
    code, data = status_json("127.0.0.1:1")
    assert code == 3
    assert data["nodes"][0]["reachable"] is False


@pytest.mark.every_server
def test_replica_whose_master_is_down(redis_factory: RedisFactory) -> None:
    m, r, s = chain(redis_factory, 3, {"repl-diskless-sync-delay": "0"})
    m.kill()
    code, data = status_json(s.address)
    assert code == 4
    kinds = {p["kind"] for p in data["problems"]}
    assert {"master_unreachable", "link_down", "unreachable", "no_master"} <= kinds
    nodes = by_addr(data)
    assert nodes[r.address]["link"] == "down"
    assert nodes[s.address]["link"] == "up"  # chained replica keeps its link to r


@pytest.mark.every_server
def test_table_output_shows_tree_and_table(redis_factory: RedisFactory) -> None:
    m, r, s = chain(redis_factory, 3, {"repl-diskless-sync-delay": "0"})
    result = runner.invoke(app, ["status", m.address])
    assert result.exit_code == 0, result.stdout
    lines = result.stdout.splitlines()
    assert lines[0].startswith(m.address)
    assert lines[1].startswith(f"└── {r.address}")
    assert lines[2].startswith(f"    └── {s.address}")
    assert "ADDRESS" in result.stdout and "No problems found." in result.stdout


@pytest.mark.every_server
def test_split_brain_old_master_back(redis_factory: RedisFactory) -> None:
    m, r = star(redis_factory, 1, {"repl-diskless-sync-delay": "0"})
    r.client().execute_command("REPLICAOF", "NO", "ONE")
    code, data = status_json(m.address, r.address)
    assert code == 4
    assert data["problems"][0]["kind"] == "multiple_masters"


def test_console_script_and_module_entry_points(redis_factory: RedisFactory) -> None:
    m = redis_factory.start()
    for argv in (["redisops"], [sys.executable, "-m", "redisops"]):
        exe = argv if argv[0] != "redisops" else [str(Path(sys.executable).parent / "redisops")]
        proc = subprocess.run(
            [*exe, "status", m.address, "-o", "json"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["nodes"][0]["role"] == "master"
        bad = subprocess.run(
            [*exe, "status", "h:x"], capture_output=True, text=True, timeout=30, check=False
        )
        assert bad.returncode == 2 and "Traceback" not in bad.stderr and bad.stderr.count("\n") == 1
