"""An old master comes back after a failover: ``status`` calls it a split brain (critical),
``redisops fence`` turns it into a replica of the new master."""

from __future__ import annotations

from pathlib import Path

import pytest

from redisops.errors import ExitCode
from tests.harness import FAST_SYNC, RedisFactory, replicate, star, wait_in_sync, wait_until
from tests.integration.ops_helpers import (
    invoke,
    invoke_json,
    master_of,
    role_of,
    run_failover,
    start_with_conf_file,
)

pytestmark = pytest.mark.redis_server


def _problem_kinds(doc: dict) -> list[str]:  # type: ignore[type-arg]
    return [p["kind"] for p in doc["problems"]]


@pytest.mark.every_server
def test_restarted_old_master_is_critical_in_status_then_fenced_and_persisted(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    old = start_with_conf_file(redis_factory, FAST_SYNC)
    a, b = redis_factory.start(FAST_SYNC), redis_factory.start(FAST_SYNC)
    for r in (a, b):
        replicate(r, old)
    for i in range(20):
        old.client().set(f"k{i}", i)
    wait_in_sync(old, [a, b])
    old.kill()
    code, doc, result = invoke_json(
        env, "failover", "--master", old.address, a.address, b.address, "--auto", "--yes"
    )
    assert code == 0, result.stderr
    new = a if doc["prediction"]["chosen"] == a.address else b
    # before it returns: nothing to report (a dead fenced master is not a problem)
    code, doc, _ = invoke_json(env, "status", new.address)
    assert code == 0, doc["problems"]

    old.start()  # no persistence: back empty, as a master
    code, doc, _ = invoke_json(env, "status", new.address)  # found through the fence record
    assert code == 4
    assert doc["problems"][0]["severity"] == "critical"
    assert "fenced_master_returned" in _problem_kinds(doc)
    assert "multiple_masters" in _problem_kinds(doc)
    fenced = next(p for p in doc["problems"] if p["kind"] == "fenced_master_returned")
    assert f"redisops fence {old.address} --to {new.address}" in fenced["message"]

    code, doc, result = invoke_json(env, "fence", old.address, "--to", new.address)
    assert code == 5  # its unrelated history would be replaced: needs --yes
    assert "unrelated" in result.stderr and "--yes" in result.stderr
    assert doc["prediction"]["sync"] == "full"
    assert role_of(old) == "master"

    code, doc, result = invoke_json(
        env, "fence", old.address, "--to", new.address, "--yes", "--persist"
    )
    assert code == 0, result.stderr
    assert master_of(old) == new.address
    assert f"replicaof 127.0.0.1 {new.port}" in old.conf.read_text()
    assert new.client().get("redisops:fence") is None  # resolved
    wait_in_sync(new, [old])
    assert old.client().get("k7") == "7"
    code, doc, _ = invoke_json(env, "status", new.address)
    assert code == 0, doc["problems"]

    old.restart()  # the persisted role survives a restart
    wait_until(lambda: master_of(old) == new.address, 10, what="old master back as a replica")


@pytest.mark.every_server
def test_frozen_old_master_that_took_writes_after_the_failover_needs_yes_to_discard_them(
    redis_factory: RedisFactory, env: dict[str, str], tmp_path: Path
) -> None:
    old, a = star(redis_factory, 1, {**FAST_SYNC, "repl-timeout": "2"})
    for i in range(20):
        old.client().set(f"k{i}", i)
    wait_in_sync(old, [a])
    old.pause()  # frozen (a VM pause, a long GC...): it does not answer, and a notices
    try:
        wait_until(lambda: a.info()["master_link_status"] == "down", 10, what="a's link down")
        result = run_failover(tmp_path / "state", old.address, a.address, socket_timeout=0.5)
    finally:
        old.resume()
    assert result.exit_code is ExitCode.OK, result.message
    assert role_of(a) == "master" and role_of(old) == "master"

    code, doc, _ = invoke_json(env, "status", a.address)
    assert code == 4 and "fenced_master_returned" in _problem_kinds(doc)

    # it took no write since: fencing it is a partial resync and discards nothing
    code, doc, _ = invoke_json(env, "fence", old.address, "--to", a.address, "--dry-run")
    assert code == 0
    assert doc["prediction"]["sync"] == "partial"
    assert doc["prediction"]["writes_discarded_bytes"] == 0

    old.client().set("split-brain-write", "lost")  # a client still talking to it
    result_cli = invoke(env, "fence", old.address, "--to", a.address)
    assert result_cli.exit_code == 5
    assert "accepted" in result_cli.stderr and "bytes of writes after the failover" in (
        result_cli.stderr
    )
    code, doc, result_cli = invoke_json(env, "fence", old.address, "--to", a.address, "--yes")
    assert code == 0, result_cli.stderr
    assert doc["prediction"]["sync"] == "full"
    assert doc["prediction"]["writes_discarded_bytes"] > 0
    assert master_of(old) == a.address
    wait_in_sync(a, [old])
    assert old.client().get("split-brain-write") is None
    assert old.client().get("k19") == "19"
