"""``redisops attach`` cases only real redis-server can stage: ACL users, a subscribed
"Sentinel", and two operators racing from two processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from redisops.lock import LOCK_KEY
from tests.integration.lab_fixture import (
    Node,
    RealBackend,
    attach,
    audit_lines,
    cli,
    observed_sync,
    poll,
    state_home_fixture,  # noqa: F401  (autouse)
    sync_counters,
)

pytestmark = pytest.mark.redis_server

PASSWORD = "acl-pa55word"


@pytest.fixture
def real(redis_factory: Any) -> RealBackend:
    return RealBackend(redis_factory)


def as_user(node: Node, user: str = "ops") -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1",
        port=node.port,
        username=user,
        password=PASSWORD,
        decode_responses=True,
        socket_timeout=5,
    )


def add_user(node: Node, *rules: str) -> None:
    node.call("ACL", "SETUSER", "ops", "on", f">{PASSWORD}", "~*", "&*", "+@all", *rules)


def password_file(tmp_path: Path) -> str:
    path = tmp_path / "ops.pw"
    path.write_text(PASSWORD + "\n")
    return str(path)


def spawn_redisops(state_home: Path, *argv: str) -> subprocess.Popen[str]:
    """``python -m redisops ARGV`` in the background, its state under ``state_home`` and
    no password in its environment."""
    env = {**os.environ, "XDG_STATE_HOME": str(state_home)}
    env.pop("REDISCLI_AUTH", None)
    return subprocess.Popen(
        [sys.executable, "-m", "redisops", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_sentinel_watching_the_master_refuses_the_attach_unless_forced(
    real: RealBackend,
) -> None:
    m, r = real.start(2)
    watcher = m.client().pubsub()
    watcher.subscribe("__sentinel__:hello")  # what every monitoring Sentinel does
    try:
        poll(lambda: m.call("PUBSUB", "NUMSUB", "__sentinel__:hello")[1] == 1)
        run = attach(r, m, "--yes")
        assert run.code == 5, run
        finding = next(f for f in run.json["findings"] if f["code"] == "sentinel_managed")
        assert f"Sentinel monitors {m.address}" in finding["message"]
        assert "--force" in finding["message"]
        assert r.info()["role"] == "master"
        before = sync_counters(m)
        forced = attach(r, m, "--yes", "--force")
        assert forced.code == 0, forced
        assert forced.json["result"]["observed"]["prediction_check"] == "prediction confirmed"
        assert observed_sync(before, sync_counters(m)) == "full"
    finally:
        watcher.close()


@pytest.mark.every_server
def test_a_sync_that_never_completes_times_out_with_exit_10_and_a_diagnosis(
    real: RealBackend, tmp_path: Path
) -> None:
    m, r = real.start(2)
    add_user(m, "-psync", "-sync")  # it can log in, but not replicate
    add_user(r)
    run = cli(
        "attach", r.address, "--to", m.address, "--yes", "--sample", "0", "--timeout", "1.5",
        "--user", "ops", "--password-file", password_file(tmp_path),
    )  # fmt: skip
    assert run.code == 10, run
    assert f"did not get in sync with {m.address} within 1.5s" in run.stderr
    assert "link down" in run.stderr
    assert f"{r.address}: replica of {m.address} (link down)" in run.stdout
    assert "Result: timeout" in run.stdout
    assert not as_user(m).exists(LOCK_KEY)  # released


@pytest.mark.every_server
def test_a_replicaof_the_node_refuses_is_rolled_back_with_exit_7(
    real: RealBackend, tmp_path: Path, state_home: Path
) -> None:
    m, r = real.start(2)
    add_user(m)
    add_user(r, "-replicaof", "-slaveof")
    old_secret = "0ld-masterauth-of-the-replica"
    as_user(r).config_set("masterauth", old_secret)
    run = cli(
        "attach", r.address, "--to", m.address, "--yes", "--sample", "0", "--format", "json",
        "--user", "ops", "--password-file", password_file(tmp_path),
    )  # fmt: skip
    assert run.code == 7, run
    result = run.json["result"]
    assert result["outcome"] == "rolled-back"
    assert "no permissions to run the 'replicaof' command" in result["message"]
    undone = [s for s in result["steps"] if s["result"] == "rolled-back"]
    assert [s["detail"] for s in undone] == ["CONFIG SET masterauth ***", "CONFIG SET masteruser "]
    assert old_secret not in run.stdout + run.stderr
    rollback = [x for x in audit_lines(state_home) if x["action"] == "rollback:command"]
    assert [x["command"] for x in rollback] == [
        ["CONFIG", "SET", "masterauth", "***"],
        ["CONFIG", "SET", "masteruser", ""],
    ]
    assert old_secret not in json.dumps(audit_lines(state_home))
    client = as_user(r)
    assert client.config_get("masteruser") == {"masteruser": ""}
    assert client.config_get("masterauth") == {"masterauth": old_secret}
    assert client.info("replication")["role"] == "master"
    assert not as_user(m).exists(LOCK_KEY)


@pytest.mark.every_server
def test_a_user_named_in_the_masters_url_becomes_the_replicas_masteruser(
    real: RealBackend,
) -> None:
    m, r = real.start(2)
    for node in (m, r):
        add_user(node)
        node.call("ACL", "SETUSER", "default", "off")  # only "ops" can log in
    as_user(m).set("k", "v")
    run = cli(
        "attach", f"redis://ops@{r.address}", "--to", f"redis://ops@{m.address}",
        "--yes", "--sample", "0", "--timeout", "10", "--format", "json",
    env={"REDISCLI_AUTH": PASSWORD})  # fmt: skip
    assert run.code == 0, run
    steps = [s["command"] for s in run.json["steps"] if s["command"]]
    assert ["CONFIG", "SET", "masteruser", "ops"] in steps
    assert run.json["result"]["observed"]["prediction_check"] == "prediction confirmed"
    assert as_user(r).get("k") == "v"


def test_a_second_concurrent_attach_is_blocked_by_the_lock(
    real: RealBackend, state_home: Path
) -> None:
    # the master waits 2-3 s before it forks for a new replica: the first attach holds the
    # lock while it follows that sync
    m, a, b = real.start(3, {"repl-diskless-sync-delay": "2"})
    first = spawn_redisops(
        state_home, "attach", a.address, "--to", m.address, "--yes", "--sample", "0", "-o", "json"
    )
    try:
        poll(lambda: m.call("EXISTS", LOCK_KEY) == 1 or first.poll() is not None, 30)
        assert first.poll() is None, first.communicate()
        second = attach(b, m, "--yes")
        assert second.code == 6, second
        assert f"pid {first.pid}, attach" in second.stderr
        assert b.info()["role"] == "master"
        out, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == 0, err
    assert '"prediction_check": "prediction confirmed"' in out
    # the lock is free again
    again = attach(b, m, "--yes")
    assert again.code == 0, again
    assert again.json["result"]["observed"]["prediction_check"] == "prediction confirmed"


def test_an_attach_interrupted_while_it_waits_finishes_forward_and_releases_the_lock(
    real: RealBackend, state_home: Path
) -> None:
    """Ctrl-C after REPLICAOF (the point of no return) takes the failure path: the change
    stands, the wait is skipped, the state is printed, the lock is released (exit 8)."""
    m, a = real.start(2, {"repl-diskless-sync-delay": "30"})  # the sync waits: time to ^C
    proc = spawn_redisops(
        state_home, "attach", a.address, "--to", m.address, "--yes", "--sample", "0"
    )
    try:
        poll(lambda: any(x["action"] == "wait-sync" for x in audit_lines(state_home)), 30)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 8, err
    assert "interrupted by SIGINT after the point of no return" in err
    assert f"{a.address}: replica of {m.address}" in out  # the state it was left in
    assert m.call("EXISTS", LOCK_KEY) == 0  # released now, not in 15 minutes
    assert attach(a, m, "--dry-run").code == 0  # and nothing else is held
    last = audit_lines(state_home)[-1]
    assert last["result"] == "partial"
