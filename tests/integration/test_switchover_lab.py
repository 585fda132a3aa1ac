"""The happy paths of ``switchover`` and ``failover`` on the embedded lab engine (no
redis-server): the commands work there too, over real loopback sockets."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from redisops.engine.server import LabServer, build_lab_cluster
from tests.harness import free_port, wait_until
from tests.integration.ops_helpers import invoke_json, state_env


def _client(port: int) -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=5,
        decode_responses=True,
        protocol=2,  # the lab speaks RESP2
        retry=Retry(NoBackoff(), 0),
    )


def _replication(port: int) -> dict[str, str]:
    return dict(_client(port).info("replication"))


@pytest.fixture
def lab() -> Iterator[list[int]]:
    """Three embedded nodes in a star, served from a daemon thread on free ports."""
    ports = [free_port() for _ in range(3)]
    server = LabServer(build_lab_cluster(ports, "star", {"repl-diskless-sync-delay": "0"}))
    for port in ports:
        server.listen(port)
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="lab")
    thread.start()
    try:
        for port in ports[1:]:
            wait_until(
                lambda port=port: _replication(port).get("master_link_status") == "up",
                15,
                what=f"lab node {port} linked",
            )
        yield ports
    finally:
        server.running = False
        thread.join(10)


def test_switchover_then_failover_on_the_embedded_lab(lab: list[int], tmp_path: Path) -> None:
    env = state_env(tmp_path)
    m, target, other = (f"127.0.0.1:{p}" for p in lab)
    for i in range(100):
        _client(lab[0]).set(f"k{i}", i)

    code, doc, result = invoke_json(env, "switchover", "--to", target, "--yes")
    assert code == 0, (result.stderr, doc.get("result"))
    assert doc["result"]["observed"]["full_resyncs"] == 0
    assert _replication(lab[1])["role"] == "master"
    for port in (lab[0], lab[2]):
        info = _replication(port)
        assert (info["role"], str(info["master_port"])) == ("slave", str(lab[1]))

    try:
        _client(lab[1]).execute_command("SHUTDOWN", "NOSAVE", "NOW")
    except redis.ConnectionError:
        pass
    wait_until(
        lambda: _replication(lab[0]).get("master_link_status") == "down", 10, what="link down"
    )
    code, doc, result = invoke_json(
        env, "failover", "--master", target, m, other, "--auto", "--yes"
    )
    assert code == 0, (result.stderr, doc.get("result"))
    chosen = doc["prediction"]["chosen"]
    assert chosen in (m, other)
    new_port = int(chosen.rsplit(":", 1)[1])
    rest = lab[2] if new_port == lab[0] else lab[0]
    assert _replication(new_port)["role"] == "master"
    assert str(_replication(rest)["master_port"]) == str(new_port)
    assert _client(new_port).get("k99") == "99"
