"""No key passphrase and no Redis password in any output, audit line or exception text,
whatever SSH does (tunnel, host commands, config edits, the --persist fallback), and no
code path that could accept an unknown host key without being asked."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from redisops.cli import app
from tests.harness import FAST_SYNC, RedisFactory, wait_link_up
from tests.ssh.nodes import ConfRedis
from tests.ssh.sshd import SSHWorld, keygen

runner = CliRunner()

PASSPHRASE = "pass phrase 9f1c"
REDIS_PASSWORD = "redis-pw 77ab"
SECRETS = (PASSPHRASE, REDIS_PASSWORD, "9f1c", "77ab")

REDISOPS = Path(__file__).resolve().parents[2] / "redisops"


def test_no_code_can_trust_an_unknown_host_key_by_itself() -> None:
    """AutoAddPolicy/WarningPolicy accept unknown keys; redisops never uses either, nor
    SSHClient (whose connect decides about host keys itself)."""
    offenders = []
    for path in REDISOPS.rglob("*.py"):
        text = path.read_text()
        for needle in (
            "AutoAddPolicy",
            "WarningPolicy",
            "set_missing_host_key_policy",
            "SSHClient(",
        ):
            if needle in text:
                offenders.append(f"{path.relative_to(REDISOPS.parent)}: {needle}")
    assert offenders == []


def test_only_the_ssh_package_imports_paramiko() -> None:
    importers = sorted(
        str(p.relative_to(REDISOPS.parent))
        for p in REDISOPS.rglob("*.py")
        if re.search(r"^\s*(import paramiko|from paramiko)", p.read_text(), re.M)
    )
    assert importers and all(i.startswith("redisops/ssh/") for i in importers), importers


@pytest.fixture
def conf_nodes(tmp_path: Path) -> Iterator[list[ConfRedis]]:
    started: list[ConfRedis] = []
    try:
        yield started
    finally:
        for n in started:
            n.stop()


def assert_clean(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} leaked into: {text[:400]}"


@pytest.mark.sshd
@pytest.mark.redis_server
def test_passphrase_and_redis_password_never_show_in_output_audit_or_errors(
    ssh_world: SSHWorld,
    redis_factory: RedisFactory,
    conf_nodes: list[ConfRedis],
    tmp_path: Path,
) -> None:
    key = keygen(tmp_path / "locked_key", "ed25519", passphrase=PASSPHRASE)
    srv = ssh_world.server(authorized=[key])
    ssh_world.trust(srv)
    auth = {"requirepass": REDIS_PASSWORD, "masterauth": REDIS_PASSWORD}
    master = redis_factory.start({**FAST_SYNC, **auth})
    # a replica started from a file without masterauth; redisops persists it on detach
    replica_conf = tmp_path / "replica.conf"
    replica_conf.write_text(f"# replica\nrequirepass {REDIS_PASSWORD}\n")
    replica = redis_factory.start({**FAST_SYNC, **auth, "replicaof": f"127.0.0.1 {master.port}"})
    wait_link_up(replica)
    conf_node = ConfRedis(tmp_path, [f'requirepass "{REDIS_PASSWORD}"'], REDIS_PASSWORD)
    conf_nodes.append(conf_node)
    inv = tmp_path / "inv.yml"
    ssh = {
        "port": srv.port,
        "identity_file": str(key.path),
        "passphrase_env": "TEST_KEY_PASSPHRASE",
        "tunnel": True,
    }
    inv.write_text(
        yaml.safe_dump(
            {
                "clusters": {
                    "c": {
                        "nodes": [
                            master.address,
                            {"address": replica.address, "ssh": {"config_file": str(replica_conf)}},
                            conf_node.address,
                        ],
                        "auth": {"password_env": "TEST_REDIS_PASSWORD"},
                        "ssh": ssh,
                    }
                }
            }
        )
    )
    audit = tmp_path / "audit.log"
    env = ssh_world.cli_env(TEST_KEY_PASSPHRASE=PASSPHRASE, TEST_REDIS_PASSWORD=REDIS_PASSWORD)
    common = ["-c", "c", "--inventory", str(inv)]

    def run(*args: str, **extra: str) -> Result:
        result = runner.invoke(app, [*args, *common], env={**env, **extra})
        assert_clean(result.stdout, result.stderr)
        return result

    for fmt in ("table", "json"):
        # 4: the config-file node is a second master, which status reports as a problem
        assert run("status", "-o", fmt).exit_code == 4
        assert run("host-facts", "-o", fmt).exit_code == 0
        assert run("config-file", conf_node.address, "-o", fmt).exit_code == 0
    edit = run(
        "config-file",
        conf_node.address,
        "--set",
        "maxmemory 1mb",
        "--yes",
        "--audit-log",
        str(audit),
    )
    assert edit.exit_code == 0, edit.stderr
    detach = run(
        "detach", replica.address, "--persist", "--yes", "--audit-log", str(audit), "-o", "json"
    )
    assert detach.exit_code == 0, detach.stdout + detach.stderr
    steps = {s["action"]: s for s in json.loads(detach.stdout)["result"]["steps"]}
    # the file has no replicaof (it was given on the command line): only masterauth differs
    assert f"wrote masterauth into {replica_conf}" in steps["config-rewrite"]["detail"]
    # the secret went where CONFIG REWRITE would have put it: the file, and only there
    assert f"masterauth {REDIS_PASSWORD}" not in replica_conf.read_text()  # quoted, as Redis does
    assert '"redis-pw 77ab"' in replica_conf.read_text()
    # failures: a wrong passphrase, then a debug run of a failing command
    wrong = run("host-facts", TEST_KEY_PASSPHRASE="not " + PASSPHRASE)
    assert wrong.exit_code == 3 and "wrong passphrase" in wrong.stdout + wrong.stderr
    debug = run("config-file", "127.0.0.1:1", "--debug")
    assert debug.exit_code != 0
    assert audit.exists()
    assert_clean(audit.read_text())
