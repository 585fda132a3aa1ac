"""``status`` says the true cause: whose credentials, which kind of unreachable, a frozen
node bounded by ``--timeout``, a dead sentinel, diverged datasets (real redis-server)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from redisops.cli import app
from tests.harness import FAST_SYNC, RedisFactory, RedisProc, free_port, star, wait_in_sync

pytestmark = pytest.mark.redis_server
runner = CliRunner()


def redisops(*argv: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(argv), env={"REDISCLI_AUTH": "", **(env or {})})


def status(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return redisops("status", *args, env=env)


def status_json(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    result = status(*args, "-o", "json", env=env)
    assert result.stdout, result.stderr
    return result.exit_code, json.loads(result.stdout), result.stderr


def by_addr(data: dict) -> dict[str, dict]:  # type: ignore[type-arg]
    return {n["address"]: n for n in data["nodes"]}


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_port() -> Iterator[int]:
    """A plain HTTP server on a loopback port: something that is not Redis."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def acl_cluster(factory: RedisFactory) -> tuple[RedisProc, RedisProc]:
    """A master and a replica where the user ``ops`` (password ``ops-pw``) is the only way
    in: the default user has another password."""
    m, r = factory.start(FAST_SYNC), factory.start(FAST_SYNC)
    for node in (m, r):
        with node.client() as c:
            c.execute_command("ACL", "SETUSER", "ops", "on", ">ops-pw", "~*", "&*", "+@all")
    with r.client() as c:
        c.config_set("masteruser", "ops")
        c.config_set("masterauth", "ops-pw")
        c.execute_command("REPLICAOF", "127.0.0.1", m.port)
    for node in (m, r):
        with node.client() as c:
            c.config_set("requirepass", "default-pw")
        node.password = "default-pw"
    wait_in_sync(m, [r])
    return m, r


def test_a_user_named_in_the_seed_url_is_used_for_every_discovered_node(
    redis_factory: RedisFactory,
) -> None:
    m, r = acl_cluster(redis_factory)
    code, data, err = status_json(f"redis://ops@{m.address}", env={"REDISCLI_AUTH": "ops-pw"})
    nodes = by_addr(data)
    assert nodes[r.address]["reachable"] is True, nodes[r.address]
    assert nodes[r.address]["master"] == m.address
    assert code == 0, data["problems"]
    assert "ops-pw" not in json.dumps(data) + err


def test_auth_failure_other_service_and_down_are_told_apart(
    redis_factory: RedisFactory, http_port: int
) -> None:
    locked = redis_factory.start({"requirepass": "s3cret"})
    closed = free_port()
    code, data, _ = status_json(locked.address, f"127.0.0.1:{http_port}", f"127.0.0.1:{closed}")
    assert code == 3
    nodes = by_addr(data)
    auth = nodes[locked.address]
    assert auth["unreachable_cause"] == "auth"
    assert "authentication required" in auth["error"] and "REDISCLI_AUTH" in auth["error"]
    web = nodes[f"127.0.0.1:{http_port}"]
    assert web["unreachable_cause"] == "not_redis"
    assert "HTTP server" in web["error"]
    down = nodes[f"127.0.0.1:{closed}"]
    assert down["unreachable_cause"] == "down"
    assert "connection refused" in down["error"]
    # the table names the cause in the ROLE column
    text = status(locked.address, f"127.0.0.1:{http_port}", f"127.0.0.1:{closed}").stdout
    assert "auth-failed" in text and "not-redis" in text and "down" in text


def test_a_wrong_password_is_an_auth_failure(redis_factory: RedisFactory) -> None:
    locked = redis_factory.start({"requirepass": "s3cret"})
    code, data, err = status_json(locked.address, env={"REDISCLI_AUTH": "wrong-pw"})
    assert code == 3
    node = data["nodes"][0]
    assert node["unreachable_cause"] == "auth"
    assert "authentication failed" in node["error"]
    assert "wrong-pw" not in json.dumps(data) + err


def test_a_password_for_a_node_without_one_warns_and_continues_like_redis_cli(
    redis_factory: RedisFactory,
) -> None:
    m, r = star(redis_factory, 1, FAST_SYNC)
    code, data, err = status_json(m.address, env={"REDISCLI_AUTH": "unneeded-pw"})
    assert code == 0, data["problems"]
    assert {n["address"] for n in data["nodes"]} == {m.address, r.address}
    assert f"warning: {m.address} has no password set" in err
    assert "REDISCLI_AUTH" in err
    assert "unneeded-pw" not in err + json.dumps(data)


def test_a_frozen_node_costs_at_most_the_timeout_and_is_named_as_not_answering(
    redis_factory: RedisFactory,
) -> None:
    m, r1, r2 = star(redis_factory, 2, FAST_SYNC)
    r1.pause()
    r2.pause()
    try:
        code, data, _ = status_json(m.address, "--timeout", "0.4")
    finally:
        r1.resume()
        r2.resume()
    assert code == 4
    nodes = by_addr(data)
    for frozen in (r1, r2):
        node = nodes[frozen.address]
        assert node["unreachable_cause"] == "no_reply"
        assert "no reply within 0.4s" in node["error"], node["error"]
        assert "paused" in node["error"]


def test_a_dead_sentinel_is_a_problem_with_its_real_cause(redis_factory: RedisFactory) -> None:
    (m,) = star(redis_factory, 0, FAST_SYNC)
    dead = f"127.0.0.1:{free_port()}"
    code, data, _ = status_json(m.address, "--sentinel", dead)
    assert code == 4
    kinds = {p["kind"]: p["message"] for p in data["problems"]}
    assert "connection refused" in kinds["sentinel_unreachable"]
    assert "sentinel_no_master" in kinds
    assert data["sentinel"]["agree"] is None
    assert data["sentinel"]["sentinels"][0]["reachable"] is False
    text = status(m.address, "--sentinel", dead).stdout
    assert "No problems found" not in text
    assert "Sentinel view of None" not in text


def test_only_dead_sentinels_and_no_seed_is_unreachable_with_the_cause() -> None:
    dead = f"127.0.0.1:{free_port()}"
    result = status("--sentinel", dead)
    assert result.exit_code == 3
    assert "no sentinel answered" in result.stderr and "connection refused" in result.stderr


def test_a_replica_with_other_data_at_the_same_offset_is_reported_as_diverged(
    redis_factory: RedisFactory,
) -> None:
    m, r = star(redis_factory, 1, FAST_SYNC)
    m.client().set("k", "v")
    wait_in_sync(m, [r])
    # DEBUG POPULATE writes keys without replicating them (offsets stay equal)
    m.client().execute_command("DEBUG", "POPULATE", "3000")
    wait_in_sync(m, [r])
    code, data, _ = status_json(m.address)
    assert code == 4
    problem = next(p for p in data["problems"] if p["kind"] == "diverged")
    assert problem["node"] == r.address
    assert f"holds 1 key but its master {m.address} holds 3001 keys" in problem["message"]


def test_an_intended_detach_is_reported_as_such_not_as_split_brain(
    redis_factory: RedisFactory, tmp_path: Path
) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    m, r = star(redis_factory, 1, FAST_SYNC)
    assert redisops("detach", r.address, "--yes", env=env).exit_code == 0
    code, data, _ = status_json(m.address, r.address, env=env)
    kinds = {p["kind"]: p for p in data["problems"]}
    assert "multiple_masters" not in kinds
    detached = kinds["detached"]
    assert detached["severity"] == "warning" and detached["node"] == r.address
    assert "since 'redisops detach'" in detached["message"]
    assert f"it was a replica of {m.address}" in detached["message"]
    assert "not a split brain" in detached["message"]
    assert code == 4


def test_a_returned_old_master_queried_alone_is_found_stale(
    redis_factory: RedisFactory, tmp_path: Path
) -> None:
    """After a failover the old master comes back as a master, knowing nothing; the fence
    record is on the new master. ``status OLD`` alone probes the members of its last-known
    group, finds the master holding the fence record that names it, and says OLD is stale."""
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    m, a, b = star(redis_factory, 2, FAST_SYNC)
    m.client().set("k", "v")
    wait_in_sync(m, [a, b])
    m.kill()
    run = redisops(
        "failover", "--master", m.address, a.address, b.address, "--auto", "--yes", env=env
    )
    assert run.exit_code == 0, run.stderr
    m.start()  # back, as a master, empty (no persistence): it knows nothing of the failover
    # without the last-known topology it would be a healthy standalone master
    assert status(m.address, env={"XDG_STATE_HOME": str(tmp_path / "other")}).exit_code == 0
    code, data, _ = status_json(m.address, env=env)
    assert code == 4
    stale = next(p for p in data["problems"] if p["kind"] == "fenced_master_returned")
    assert stale["node"] == m.address and "was failed over" in stale["message"]
