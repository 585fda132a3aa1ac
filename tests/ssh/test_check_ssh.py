"""``redisops check`` on a cluster whose inventory configures SSH: ``host.kernel`` is judged
from the host facts read on each node's machine over SSH (``redisops.ops.hostfacts``).

The loopback sshd's sessions get a PATH whose ``cat`` answers for the two kernel files as a
badly tuned machine would (``vm.overcommit_memory`` 0, THP ``[always]``) and reads every
other file as usual: the check can only report those values if it read them over SSH."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from redisops.cli import app
from tests.harness import FAST_SYNC, RedisFactory
from tests.ssh.sshd import SSHWorld

pytestmark = [pytest.mark.sshd, pytest.mark.redis_server]

runner = CliRunner()

BADLY_TUNED_CAT = """#!/bin/sh
case "$1" in
  /proc/sys/vm/overcommit_memory) echo 0 ;;
  /sys/kernel/mm/transparent_hugepage/enabled) echo "[always] madvise never" ;;
  *) exec /bin/cat "$@" ;;
esac
"""


def test_check_reports_overcommit_and_thp_from_the_remote_host_facts(
    ssh_world: SSHWorld, redis_factory: RedisFactory, tmp_path: Path
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "cat").write_text(BADLY_TUNED_CAT)
    (bindir / "cat").chmod(0o755)
    srv = ssh_world.server(session_env={"PATH": f"{bindir}:/usr/sbin:/usr/bin:/sbin:/bin"})
    ssh_world.trust(srv)
    node = redis_factory.start({**FAST_SYNC, "disable-thp": "no"})
    inv = tmp_path / "inv.yml"
    ssh = {"port": srv.port, "identity_file": str(ssh_world.client_key.path)}
    inv.write_text(yaml.safe_dump({"clusters": {"c": {"nodes": [node.address], "ssh": ssh}}}))
    result = runner.invoke(
        app,
        ["check", "-c", "c", "--inventory", str(inv), "--only", "host.kernel", "-o", "json"],
        env=ssh_world.cli_env(),
    )
    assert result.exit_code == 1, result.stdout + result.stderr
    (kernel,) = json.loads(result.stdout)["results"]
    assert kernel["node"] == node.address and kernel["status"] == "WARNING"
    assert kernel["value"] == 2
    assert "vm.overcommit_memory = 0 (not 1)" in kernel["message"]
    assert "transparent huge pages [always] with disable-thp no" in kernel["message"]


def test_check_says_unknown_for_a_host_whose_key_is_not_known(
    ssh_world: SSHWorld, redis_factory: RedisFactory, tmp_path: Path
) -> None:
    srv = ssh_world.server()  # its host key is not trusted
    node = redis_factory.start(FAST_SYNC)
    inv = tmp_path / "inv.yml"
    ssh = {"port": srv.port, "identity_file": str(ssh_world.client_key.path)}
    inv.write_text(yaml.safe_dump({"clusters": {"c": {"nodes": [node.address], "ssh": ssh}}}))
    result = runner.invoke(
        app,
        ["check", "-c", "c", "--inventory", str(inv), "--only", "host.kernel", "-o", "json"],
        env=ssh_world.cli_env(),
    )
    assert result.exit_code == 3, result.stdout + result.stderr
    (kernel,) = json.loads(result.stdout)["results"]
    assert kernel["status"] == "UNKNOWN"
    assert "host facts could not be read" in kernel["message"]
    assert "known_hosts" in kernel["message"] or "host key" in kernel["message"]
