"""Restores against real redis-server: online (throwaway server) and by file (with AOF),
and the refusals."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from redisops.engine.rdb import crc64
from redisops.errors import ExitCode
from tests.harness import (
    FAST_SYNC,
    REDIS_SERVER,
    RedisFactory,
    RedisProc,
    free_port,
    require,
    star_of,
    wait_in_sync,
    wait_until,
)
from tests.integration.ops_helpers import invoke
from tests.servers import REDIS_6_2, VALKEY_8_1

pytestmark = pytest.mark.redis_server


def digest(client: redis.Redis) -> str:
    return str(client.execute_command("DEBUG", "DIGEST"))


@pytest.fixture
def backed_up(redis_factory: RedisFactory, tmp_path: Path, env: dict[str, str]) -> tuple[Path, str]:
    """A master with data (strings, a hash, keys with TTLs), backed up from its replica;
    returns the destination and the dataset's DEBUG DIGEST."""
    master = redis_factory.start(FAST_SYNC)
    c = master.client()
    c.execute_command("DEBUG", "POPULATE", 1500, "k")  # not replicated: before the replica
    c.hset("h", mapping={"a": "1", "b": "2"})
    c.set("ttl", "x", ex=3600)
    nodes = star_of([master, redis_factory.start(FAST_SYNC)])
    wait_in_sync(master, nodes[1:])
    dest = tmp_path / "backups"
    result = invoke(env, "backup", master.address, "--dest", str(dest), "-o", "json")
    assert result.exit_code == 0, result.stderr
    return dest, digest(nodes[1].client())


def fresh_master_with_other_data(factory: RedisFactory) -> RedisProc:
    node = factory.start(FAST_SYNC)
    node.client().mset({"unrelated": "1", "other": "2"})
    return node


def test_online_restore_makes_the_node_equal_to_the_backup(
    backed_up: tuple[Path, str], redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    dest, expected = backed_up
    target = fresh_master_with_other_data(redis_factory)
    target.client().config_set("masterauth", "kept-secret")
    refused = invoke(env, "restore", "latest", "--dest", str(dest), "--to", target.address)
    assert refused.exit_code == ExitCode.REFUSED  # it holds keys: needs --yes
    assert "holds 2 keys" in refused.stderr
    result = invoke(
        env, "restore", "latest", "--dest", str(dest), "--to", target.address, "--yes", "-o", "json"
    )
    assert result.exit_code == 0, result.stderr + result.stdout
    doc = json.loads(result.stdout)["result"]
    assert doc["outcome"] == "applied"
    c = target.client()
    assert digest(c) == expected
    assert c.info("replication")["role"] == "master"
    assert c.config_get("masterauth")["masterauth"] == "kept-secret"  # put back
    assert "kept-secret" not in result.stdout + result.stderr
    assert not list(Path("/tmp").glob("redisops-throwaway-*/redis.pid"))


def write_conf(path: Path, port: int, data_dir: Path, **extra: str) -> Path:
    lines = [
        f"port {port}",
        "bind 127.0.0.1",
        f"dir {data_dir}",
        f"logfile {data_dir / 'redis.log'}",
        f"pidfile {data_dir / 'redis.pid'}",
        'save ""',
        "enable-debug-command local",
        *(f"{k.replace('_', '-')} {v}" for k, v in extra.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def aof_node(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A redis-server started from a config file with appendonly yes (the file method
    restarts it from that file, so the harness's command-line options would not do)."""
    port = free_port()
    data = tmp_path / "aofnode"
    data.mkdir()
    conf = write_conf(tmp_path / "aof.conf", port, data, appendonly="yes")
    proc = subprocess.Popen([REDIS_SERVER, str(conf)], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port, decode_responses=True)
    wait_until(lambda: client.ping(), what="aof node up")
    try:
        yield port, data
    finally:
        try:
            client.shutdown(nosave=True)
        except redis.RedisError:
            pass
        proc.kill()
        proc.wait(5)


def test_file_restore_with_appendonly_yes_loads_the_rdb_and_keeps_aof_on(
    backed_up: tuple[Path, str], aof_node: tuple[int, Path], env: dict[str, str]
) -> None:
    dest, expected = backed_up
    port, data = aof_node
    client = redis.Redis(port=port, decode_responses=True)
    client.mset({"before": "restore", "x": "y"})
    address = f"127.0.0.1:{port}"
    result = invoke(
        env, "restore", "latest", "--dest", str(dest), "--to", address, "--method", "file", "--yes"
    )
    assert result.exit_code == 0, result.stderr + result.stdout
    assert digest(client) == expected
    assert client.info("persistence")["aof_enabled"] == 1
    kept = [p.name for p in data.iterdir() if ".redisops-" in p.name]
    assert any(k.startswith("appendonlydir.") for k in kept)  # the old AOF kept aside
    # a restart loads the AOF (appendonly yes is still in the file): it holds the restore
    client.shutdown()
    wait_until(lambda: not (data / "redis.pid").exists(), what="node stopped")
    subprocess.run([REDIS_SERVER, str(data.parent / "aof.conf"), "--daemonize", "yes"], check=True)
    wait_until(lambda: client.ping(), what="node back")
    wait_until(lambda: client.info("persistence")["loading"] == 0, what="loaded")
    assert digest(client) == expected


def test_a_replica_is_refused_as_a_restore_target(
    backed_up: tuple[Path, str], redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    dest, _ = backed_up
    _master, replica = star_of([redis_factory.start(FAST_SYNC), redis_factory.start(FAST_SYNC)])
    result = invoke(env, "restore", "latest", "--dest", str(dest), "--to", replica.address, "--yes")
    assert result.exit_code == ExitCode.REFUSED
    assert "detach it first" in result.stderr
    assert replica.info()["role"] == "slave"


def test_a_master_with_replicas_is_refused_unless_forced(
    backed_up: tuple[Path, str], redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    dest, _ = backed_up
    master, _replica = star_of([redis_factory.start(FAST_SYNC), redis_factory.start(FAST_SYNC)])
    result = invoke(env, "restore", "latest", "--dest", str(dest), "--to", master.address, "--yes")
    assert result.exit_code == ExitCode.REFUSED
    assert "would full-sync the restored data" in result.stderr
    forced = invoke(
        env,
        "restore",
        "latest",
        "--dest",
        str(dest),
        "--to",
        master.address,
        "--dry-run",
        "--force",
    )
    assert forced.exit_code == 0 and "OVERRIDDEN (--force)" in forced.stdout
    assert master.info()["role"] == "master" and master.client().dbsize() == 0  # dry run


def test_an_rdb_format_too_new_for_the_node_is_refused(
    redis_factory: RedisFactory, tmp_path: Path, env: dict[str, str]
) -> None:
    body = b"REDIS0011\xfa\x09redis-ver\x057.2.4\xff"
    newer = tmp_path / "from-7.2.rdb"
    newer.write_bytes(body + crc64(body).to_bytes(8, "little"))
    target = redis_factory.start()
    result = invoke(env, "restore", str(newer), "--to", target.address, "--yes")
    assert result.exit_code == ExitCode.REFUSED
    assert "loads RDB formats up to 10; this backup is format 11" in result.stderr
    assert target.client().dbsize() == 0


def test_a_failure_before_the_sync_stops_the_throwaway_and_puts_masterauth_back(
    backed_up: tuple[Path, str], redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    dest, _ = backed_up
    target = fresh_master_with_other_data(redis_factory)
    c = target.client()
    c.config_set("masterauth", "kept-secret")
    # an operator account that may do everything but REPLICAOF: the commit step fails
    c.execute_command(
        "ACL", "SETUSER", "ops", "on", ">opspw", "~*", "&*", "+@all", "-replicaof", "-slaveof"
    )
    result = invoke(
        {**env, "REDISCLI_AUTH": "opspw"},
        "restore", "latest", "--dest", str(dest), "--to", target.address,
        "--user", "ops", "--yes", "-o", "json",
    )  # fmt: skip
    assert result.exit_code == ExitCode.ROLLED_BACK, result.stderr
    steps = json.loads(result.stdout)["result"]["steps"]
    undone = {s["action"]: s["result"] for s in steps if s["action"].startswith("rollback")}
    assert undone["rollback throwaway-start"] == "rolled-back"
    assert undone["rollback command"] == "rolled-back"
    started = next(s for s in steps if s["action"] == "throwaway-start")["detail"]
    port = int(started.split()[0].rsplit(":", 1)[1])
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=port, socket_connect_timeout=1).ping()
    assert c.config_get("masterauth")["masterauth"] == "kept-secret"
    assert sorted(c.keys()) == ["other", "unrelated"]


def test_an_encrypted_copy_is_restored_with_its_key_and_refused_without(
    redis_factory: RedisFactory, tmp_path: Path, env: dict[str, str]
) -> None:
    import os

    source = redis_factory.start(FAST_SYNC)
    source.client().execute_command("DEBUG", "POPULATE", 500, "e")
    expected = digest(source.client())
    key = tmp_path / "k"
    key.write_text(os.urandom(32).hex())
    key.chmod(0o600)
    dest, far = tmp_path / "d", tmp_path / "far"
    taken = invoke(
        env, "backup", source.address, "--dest", str(dest), "--copy-to", str(far),
        "--encrypt-key-file", str(key), "--group", "g",
    )  # fmt: skip
    assert taken.exit_code == 0, taken.stderr
    target = redis_factory.start(FAST_SYNC)
    without = invoke(env, "restore", "latest", "--dest", str(far), "--to", target.address, "--yes")
    assert without.exit_code == ExitCode.BAD_INPUT and "is encrypted" in without.stderr
    result = invoke(
        env, "restore", "latest", "--dest", str(far), "--to", target.address,
        "--key-file", str(key), "--yes",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr + result.stdout
    assert digest(target.client()) == expected


def test_restore_latest_with_several_groups_at_dest_asks_for_group_instead_of_picking_one(
    backed_up: tuple[Path, str], redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    dest, _ = backed_up
    other = redis_factory.start()
    other.client().set("k", "v")
    made = invoke(env, "backup", other.address, "--dest", str(dest), "--group", "zz-other")
    assert made.exit_code == 0, made.stderr
    target = redis_factory.start()
    result = invoke(env, "restore", "latest", "--dest", str(dest), "--to", target.address, "--yes")
    assert result.exit_code == ExitCode.BAD_INPUT, result.stdout
    assert "several groups" in result.stderr and "--group" in result.stderr
    assert target.client().dbsize() == 0
    missing = invoke(env, "restore", "latest", "--dest", str(dest / "typo"), "--to", target.address)
    assert missing.exit_code == ExitCode.BAD_INPUT
    assert "does not exist" in missing.stderr and "Traceback" not in missing.stderr


def test_a_valkey_backup_is_refused_on_redis_7_0_naming_valkey_as_its_writer(
    redis_factory: RedisFactory, tmp_path: Path, env: dict[str, str]
) -> None:
    source = redis_factory.start(server=require(VALKEY_8_1))
    source.client().set("k", "v")
    dest = tmp_path / "backups"
    made = invoke(env, "backup", source.address, "--dest", str(dest), "-o", "json")
    assert made.exit_code == 0, made.stderr
    doc = json.loads(made.stdout)
    assert doc["backup"]["redis_version"].startswith("valkey 8.1")
    assert any("redis-check-rdb skipped" in n for n in doc["notes"])  # 7.0's cannot read v11
    target = redis_factory.start()
    result = invoke(env, "restore", "latest", "--dest", str(dest), "--to", target.address, "--yes")
    assert result.exit_code == ExitCode.REFUSED
    assert "this backup is format 11 (written by valkey 8.1" in result.stderr
    assert target.client().dbsize() == 0


def test_a_redis_6_2_backup_restores_onto_redis_7_0(
    redis_factory: RedisFactory, tmp_path: Path, env: dict[str, str]
) -> None:
    source = redis_factory.start(server=require(REDIS_6_2))
    source.client().mset({f"k{i}": str(i) for i in range(50)})
    dest = tmp_path / "backups"
    made = invoke(env, "backup", source.address, "--dest", str(dest))
    assert made.exit_code == 0, made.stderr
    target = redis_factory.start()
    result = invoke(env, "restore", "latest", "--dest", str(dest), "--to", target.address, "--yes")
    assert result.exit_code == 0, result.stderr + result.stdout
    assert target.client().dbsize() == 50 and target.client().get("k7") in ("7", b"7")
