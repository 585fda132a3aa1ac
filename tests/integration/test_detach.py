"""``redisops detach`` end to end, against real redis-server and the embedded lab."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from redisops.lock import LOCK_KEY
from tests.harness import free_port, replicate, wait_in_sync, wait_link_up
from tests.integration.lab_fixture import (
    Backend,
    Node,
    attach,
    audit_lines,
    backend_fixture,  # noqa: F401  (the fixture)
    cli,
    observed_sync,
    star,
    state_home_fixture,  # noqa: F401  (autouse)
    sync_counters,
    write_keys,
)


def chain3(backend: Backend) -> tuple[Node, Node, Node]:
    m, r, s = backend.start(3)
    replicate(r, m)
    replicate(s, r)
    wait_link_up(r)
    wait_link_up(s)
    write_keys(m, 100)
    wait_in_sync(m, [r, s])
    return m, r, s


def detach(node: Node, *extra: str) -> Any:
    return cli("detach", node.address, "--format", "json", *extra)


@pytest.mark.every_server
def test_detach_makes_a_master_whose_replicas_follow_it_by_partial_resync(
    backend: Backend, state_home: Path
) -> None:
    m, r, s = chain3(backend)
    old = r.info()["master_replid"]
    before = sync_counters(r)
    run = detach(r, "--yes")
    assert run.code == 0, run
    doc = run.json
    info = r.info()
    assert info["role"] == "master"
    assert info["master_replid2"] == old and info["master_replid"] != old
    assert doc["prediction"]["replid2"] == old
    # its replica reconnected and continued through replid2: a partial resync, as predicted
    assert observed_sync(before, sync_counters(r)) == "partial"
    assert [(f["replica"], f["sync"]) for f in doc["prediction"]["followers"]] == [
        (s.address, "partial")
    ]
    observed = doc["result"]["observed"]
    assert observed["observed_sync"] == "partial"
    assert observed["prediction_check"] == "prediction confirmed"
    assert observed["replid2"] == old
    # data kept (plus the record that the detach was intended); it takes writes now, and
    # only its own replica gets them
    assert r.call("DBSIZE") == 101 and r.call("EXISTS", "redisops:detached") == 1
    r.call("SET", "new-history", "1")
    wait_in_sync(r, [s])
    assert s.call("GET", "new-history") == "1" and m.call("EXISTS", "new-history") == 0
    # no lock key left anywhere, including the copy the promoted node received
    assert [n.call("EXISTS", LOCK_KEY) for n in (m, r, s)] == [0, 0, 0]
    states = {n["address"]: n for n in doc["result"]["final_state"]}
    assert states[r.address]["role"] == "master" and states[s.address]["master"] == r.address
    assert audit_lines(state_home)[-1]["result"] == "applied"


def test_a_detached_node_can_be_operated_on_at_once(backend: Backend) -> None:
    m, r, fresh = backend.start(3)
    replicate(r, m)
    wait_in_sync(m, [r])
    assert detach(r, "--yes").code == 0
    # a new cluster under the detached node: not locked by the detach that made it
    run = attach(fresh, r, "--yes")
    assert run.code == 0, run
    assert run.json["result"]["observed"]["prediction_check"] == "prediction confirmed"


def test_detaching_a_master_is_nothing_to_do(backend: Backend) -> None:
    (m,) = backend.start(1)
    table = cli("detach", m.address, "--yes")
    assert table.code == 0, table
    assert f"{m.address} is already a master; nothing to do" in table.stdout
    doc = detach(m, "--yes").json
    assert doc["nothing_to_do"] is True and doc["steps"] == []


@pytest.mark.every_server
def test_detach_dry_run_changes_nothing_and_follows_the_json_shape(
    backend: Backend, state_home: Path
) -> None:
    _m, r = star(backend, 1)
    before = r.info()["master_replid"]
    run = detach(r, "--dry-run")
    assert run.code == 0 and run.stderr == "", run
    doc = run.json
    assert doc["operation"] == "detach" and doc["dry_run"] is True and "result" not in doc
    assert [s["n"] for s in doc["steps"]] == list(range(1, len(doc["steps"]) + 1))
    for s in doc["steps"]:
        assert {"n", "node", "action", "command", "verify"} <= set(s)
    promote = next(s for s in doc["steps"] if s["command"] == ["REPLICAOF", "NO", "ONE"])
    assert promote["node"] == r.address
    pred = doc["prediction"]
    assert pred["sync"] == "none" and pred["transfer_bytes"] == 0
    assert pred["replid2"] == before and isinstance(pred["risks"], list)
    assert r.info()["role"] == "slave" and r.info()["master_replid"] == before
    assert audit_lines(state_home) == []


def test_detach_applied_json_carries_the_result(backend: Backend) -> None:
    _m, r = star(backend, 1)
    run = detach(r, "--yes")
    assert run.code == 0 and run.stderr == "", run
    result = run.json["result"]
    assert result["outcome"] == "applied" and result["exit_code"] == 0
    assert [s["action"] for s in result["steps"]] == [
        "lock",
        "baseline",
        "command",
        "record-detach",
        "verify-detach",
        "unlock",
    ]


@pytest.mark.every_server
def test_detach_persist_rewrites_the_config_file(backend: Backend) -> None:
    m, r = backend.start(2, config_files=True)
    assert r.rewritten_config() == ""
    assert attach(r, m, "--yes", "--persist").code == 0
    assert f"replicaof 127.0.0.1 {m.port}" in r.rewritten_config()
    run = detach(r, "--yes", "--persist")
    assert run.code == 0, run
    rewritten = r.rewritten_config()
    assert rewritten and "replicaof" not in rewritten


def test_detach_persist_without_a_config_file_is_partially_applied(backend: Backend) -> None:
    _m, r = star(backend, 1)
    run = detach(r, "--yes", "--persist")
    assert run.code == 8, run
    assert "CONFIG REWRITE failed" in run.json["result"]["message"]
    assert r.info()["role"] == "master"


def test_detaching_an_unreachable_node_is_exit_3() -> None:
    run = cli("detach", f"127.0.0.1:{free_port()}", "--yes")
    assert run.code == 3, run
