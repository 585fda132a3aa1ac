"""``redisops attach`` end to end, each scenario against real redis-server *and* the embedded
lab (the ``backend`` fixture). Every applied attach checks the prediction against what the
master's own counters say happened (``sync_full`` / ``sync_partial_ok``), independently of
the tool's verification."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from redisops.engine.predict import RateParams, predict_sync
from redisops.lock import LOCK_KEY, ClusterLock
from redisops.model import Address
from redisops.plan import ACTIONS, RunContext
from redisops.redis_node import RedisNode
from tests.harness import free_port, replicate, wait_in_sync, wait_link_up
from tests.integration.lab_fixture import (
    Backend,
    LabBackend,
    Node,
    attach,
    audit_lines,
    backend_fixture,  # noqa: F401  (the fixture)
    cli,
    lab_fixture,  # noqa: F401  (the fixture)
    observed_sync,
    poll,
    star,
    state_home_fixture,  # noqa: F401  (autouse)
    sync_counters,
    write_keys,
)
from tests.integration.predictions import record

PASSWORD = "c0rrect-h0rse-battery"


def applied(run: Any, expected: str) -> dict[str, Any]:
    """The attach ran, predicted ``expected`` and verified that it happened."""
    assert run.code == 0, run
    doc: dict[str, Any] = run.json
    assert doc["prediction"]["sync"] == expected, doc["prediction"]
    result = doc["result"]
    assert result["outcome"] == "applied", result
    assert result["observed"]["observed_sync"] == expected, result["observed"]
    assert result["observed"]["prediction_check"] == "prediction confirmed"
    return doc


def final(doc: dict[str, Any], node: Node) -> dict[str, Any]:
    return next(n for n in doc["result"]["final_state"] if n["address"] == node.address)


def codes(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["code"]: f for f in doc["findings"]}


def replica_of(node: Node, master: Node) -> bool:
    info = node.info()
    return info["role"] == "slave" and int(info["master_port"]) == master.port


# ----------------------------------------------------------------------------- the syncs


@pytest.mark.every_server
def test_attaching_a_fresh_node_is_a_predicted_full_resync(backend: Backend) -> None:
    m, fresh = backend.start(2)
    write_keys(m, 200)
    before = sync_counters(m)
    doc = applied(attach(fresh, m, "--yes"), "full")
    assert observed_sync(before, sync_counters(m)) == "full"
    assert "unknown to the master" in doc["prediction"]["reason"]
    assert doc["prediction"]["transfer_bytes"] > 0
    assert replica_of(fresh, m)
    wait_in_sync(m, [fresh])
    assert fresh.call("GET", "k:199") == "v" * 32
    assert fresh.call("EXISTS", LOCK_KEY) == 0 and m.call("EXISTS", LOCK_KEY) == 0
    state = final(doc, fresh)
    assert state["role"] == "replica" and state["master"] == m.address and state["link"] == "up"
    assert doc["result"]["observed"]["keys"] == 200 + 1  # + the lock key, at that offset


@pytest.mark.every_server
def test_relocating_a_replica_under_its_sibling_is_a_partial_resync(backend: Backend) -> None:
    m, r1, r2 = star(backend, 2)
    write_keys(m, 300)
    wait_in_sync(m, [r1, r2])
    before, top = sync_counters(r1), sync_counters(m)
    doc = applied(attach(r2, r1, "--yes"), "partial")
    reason = doc["prediction"]["reason"]
    assert "same replication id" in reason and "inside the backlog" in reason
    assert observed_sync(before, sync_counters(r1)) == "partial"
    assert sync_counters(m)["sync_full"] == top["sync_full"]  # nothing came from the top
    assert replica_of(r2, r1)
    # kept its data: a partial resync, so no confirmation was asked for it
    assert "replica_has_data" not in codes(doc)
    m.call("SET", "after", "move")
    wait_in_sync(m, [r1, r2])
    assert r2.call("GET", "after") == "move" and r2.call("DBSIZE") == 301


@pytest.mark.every_server
def test_detaching_then_reattaching_is_a_full_resync_because_of_the_new_id(
    backend: Backend,
) -> None:
    m, r = star(backend, 1)
    write_keys(m, 100)
    wait_in_sync(m, [r])
    old = r.info()["master_replid"]
    detached = cli("detach", r.address, "--yes", "--format", "json")
    assert detached.code == 0, detached
    info = r.info()
    assert info["role"] == "master" and info["master_replid2"] == old
    assert info["master_replid"] != old
    before = sync_counters(m)
    doc = applied(attach(r, m, "--yes"), "full")
    assert doc["prediction"]["psync"]["replid"] == info["master_replid"]
    assert "unknown to the master" in doc["prediction"]["reason"]
    assert observed_sync(before, sync_counters(m)) == "full"


def test_reattaching_a_detached_node_that_holds_only_its_detach_record_needs_no_yes(
    backend: Backend,
) -> None:
    m, r = star(backend, 1)  # an empty cluster (a rehearsal, a fresh install)
    wait_in_sync(m, [r])
    assert cli("detach", r.address, "--yes", "--format", "json").code == 0
    # its only key is redisops's detach record: nothing of the user's would be discarded
    planned = attach(r, m, "--dry-run")
    assert planned.code == 0, planned
    assert "replica_has_data" not in codes(planned.json)
    assert planned.json["prediction"]["sync"] == "full"


@pytest.mark.every_server
def test_a_replica_briefly_cut_off_reconnects_with_a_predicted_partial_resync(
    backend: Backend,
) -> None:
    m, r = star(backend, 1)
    write_keys(m, 100)
    wait_in_sync(m, [r])
    # cut the link and keep it down: the master needs no password, so AUTH fails
    r.call("CONFIG", "SET", "masterauth", "not-a-password")
    r.call("CLIENT", "KILL", "TYPE", "master")
    poll(lambda: r.info()["master_link_status"] == "down", what="link down")
    write_keys(m, 100, "while-away")
    # it is still a replica of that master: attach has nothing to do, and says why
    run = attach(r, m)
    assert run.code == 0, run
    assert run.json["nothing_to_do"] is True
    assert "link is down" in run.json["summary"]
    # what the engine predicts for the reconnection, from the nodes as they are now
    with RedisNode(Address.parse(m.address)) as mn, RedisNode(Address.parse(r.address)) as rn:
        msnap, rsnap = mn.probe(), rn.probe()
    assert rsnap.link == "down"
    prediction = predict_sync(msnap, rsnap, RateParams())
    assert prediction.sync == "partial", prediction.reason
    assert prediction.transfer_bytes > 0  # the writes it missed, from the backlog
    before = sync_counters(m)
    r.call("CONFIG", "SET", "masterauth", "")
    wait_in_sync(m, [r])
    observed = observed_sync(before, sync_counters(m))
    record(m.backend.name, prediction.sync, observed, "reconnect")
    assert observed == "partial"
    assert r.call("DBSIZE") == 200


@pytest.mark.every_server
def test_attaching_after_the_backlog_was_overrun_is_a_predicted_full_resync(
    backend: Backend,
) -> None:
    m, r1, r2 = star(backend, 2, {"repl-backlog-size": "16384"})
    write_keys(m, 50)
    wait_in_sync(m, [r1, r2])
    # r2 loses its master (nothing listens there) and keeps its place in the history
    r2.call("REPLICAOF", "127.0.0.1", str(free_port()))
    write_keys(m, 500, "flood", size=200)  # ~120 KB: several times every backlog
    wait_in_sync(m, [r1])
    first = int(r1.info()["repl_backlog_first_byte_offset"])
    assert first > int(r2.info()["slave_repl_offset"]) + 1  # really overrun
    before = sync_counters(r1)
    doc = applied(attach(r2, r1, "--yes"), "full")
    assert "backlog overrun" in doc["prediction"]["reason"]
    assert observed_sync(before, sync_counters(r1)) == "full"
    wait_in_sync(m, [r1, r2])
    assert r2.call("DBSIZE") == 550


@pytest.mark.every_server
def test_attach_with_auth_gives_the_replica_masterauth_from_the_same_source(
    backend: Backend, state_home: Path
) -> None:
    m, r = backend.start(2, {"requirepass": PASSWORD})
    write_keys(m, 20)
    # no credentials: both nodes refuse us, nothing is touched
    refused = attach(r, m, "--yes")
    assert refused.code == 3, refused
    assert "auth" in refused.stderr.lower()
    env = {"REDISCLI_AUTH": PASSWORD}
    before = sync_counters(m)
    run = attach(r, m, "--yes", env=env)
    doc = applied(run, "full")
    assert observed_sync(before, sync_counters(m)) == "full"
    assert r.call("CONFIG", "GET", "masterauth") == ["masterauth", PASSWORD]
    auth_steps = [s for s in doc["steps"] if s["command"] and "masterauth" in s["command"]]
    assert [s["command"] for s in auth_steps] == [["CONFIG", "SET", "masterauth", "***"]]
    assert "env REDISCLI_AUTH" in auth_steps[0]["description"]
    # the password never shows: not in the output, not in the audit log
    assert PASSWORD not in run.stdout + run.stderr
    log = (state_home / "redisops" / "audit.log").read_text()
    assert PASSWORD not in log and '"***"' in log


def test_attach_with_auth_from_the_inventory(
    backend: Backend, tmp_path: Path, state_home: Path
) -> None:
    m, r = backend.start(2, {"requirepass": PASSWORD})
    inventory = tmp_path / "redisops.yml"
    inventory.write_text(
        "clusters:\n"
        "  lab:\n"
        f"    nodes: [{m.address}, {r.address}]\n"
        "    auth: {password_env: LAB_PASSWORD}\n"
    )
    args = ("--cluster", "lab", "--inventory", str(inventory))
    missing = attach(r, m, "--yes", *args)
    assert missing.code == 2, missing  # the source it names is not set: bad input
    assert "LAB_PASSWORD" in missing.stderr
    run = attach(r, m, "--yes", *args, env={"LAB_PASSWORD": PASSWORD})
    doc = applied(run, "full")
    auth = next(s for s in doc["steps"] if s["command"] and "masterauth" in s["command"])
    assert "env LAB_PASSWORD" in auth["description"]
    assert r.call("CONFIG", "GET", "masterauth") == ["masterauth", PASSWORD]
    assert {x["cluster"] for x in audit_lines(state_home)} == {"lab"}


@pytest.mark.every_server
def test_a_chained_attach_warns_and_syncs_from_the_intermediate_replica(
    backend: Backend,
) -> None:
    m, r1, fresh = backend.start(3)
    replicate(r1, m)
    wait_link_up(r1)
    write_keys(m, 100)
    wait_in_sync(m, [r1])
    before = sync_counters(r1)
    doc = applied(attach(fresh, r1, "--yes"), "full")
    chained = codes(doc)["chained"]
    assert chained["level"] == "warn" and m.address in chained["message"]
    assert doc["steps"][0]["action"] == "lock" and doc["steps"][0]["node"] == m.address
    assert observed_sync(before, sync_counters(r1)) == "full"
    m.call("SET", "through", "the-chain")
    wait_in_sync(m, [r1, fresh])
    assert replica_of(fresh, r1) and fresh.call("GET", "through") == "the-chain"


@pytest.mark.every_server
def test_the_replicas_own_replicas_are_named_and_follow_it(backend: Backend) -> None:
    m, other, sub = backend.start(3)
    write_keys(m, 30)
    write_keys(other, 5, "mine")
    replicate(sub, other)
    wait_in_sync(other, [sub])
    # without --yes: refused, and the 5 keys it would lose are counted
    refused = attach(other, m)
    assert refused.code == 5, refused
    assert "holds 5 keys" in codes(refused.json)["replica_has_data"]["message"]
    assert replica_of(sub, other) and other.info()["role"] == "master"  # untouched
    doc = applied(attach(other, m, "--yes"), "full")
    warn = codes(doc)["has_replicas"]
    assert warn["level"] == "warn" and f"{sub.address} (full)" in warn["message"]
    assert [(f["replica"], f["sync"]) for f in doc["prediction"]["followers"]] == [
        (sub.address, "full")
    ]
    wait_in_sync(m, [other, sub])
    assert sub.call("DBSIZE") == 30 and sub.call("EXISTS", "mine:0") == 0


# ----------------------------------------------------------------------------- preflight


def test_already_a_replica_of_that_master_is_nothing_to_do(backend: Backend) -> None:
    m, r = star(backend, 1)
    run = cli("attach", r.address, "--to", m.address, "--sample", "0")
    assert run.code == 0, run
    assert f"{r.address} is already a replica of {m.address}; nothing to do" in run.stdout
    doc = attach(r, m).json
    assert doc["nothing_to_do"] is True and doc["steps"] == []


def test_a_node_cannot_be_attached_to_itself(backend: Backend) -> None:
    (m,) = backend.start(1)
    run = attach(m, m, "--yes")
    assert run.code == 5, run
    assert codes(run.json)["same_node"]["level"] == "refuse"
    assert "same node" in run.stderr
    assert "result" not in run.json  # nothing was applied


def test_attaching_a_master_under_its_own_chained_replica_is_refused_as_a_cycle(
    backend: Backend,
) -> None:
    m, r1, s = backend.start(3)
    replicate(r1, m)
    replicate(s, r1)
    wait_link_up(r1)
    wait_link_up(s)
    run = attach(m, s, "--yes")
    assert run.code == 5, run
    assert "cycle" in codes(run.json)
    assert m.info()["role"] == "master"


def test_an_unreachable_master_is_exit_3_and_nothing_is_touched(backend: Backend) -> None:
    (r,) = backend.start(1)
    run = cli("attach", r.address, "--to", f"127.0.0.1:{free_port()}", "--yes", "--sample", "0")
    assert run.code == 3, run
    assert "unreachable" in run.stderr
    assert r.info()["role"] == "master"


def test_a_master_without_persistence_is_warned_about(backend: Backend) -> None:
    m, r = backend.start(2, {"save": "", "appendonly": "no"})
    doc = attach(r, m, "--dry-run").json
    assert codes(doc)["unsafe_master"]["level"] == "warn"
    m.call("CONFIG", "SET", "save", "3600 1")
    assert "unsafe_master" not in codes(attach(r, m, "--dry-run").json)


def test_a_given_sentinel_is_refused_unless_forced(backend: Backend, state_home: Path) -> None:
    m, r = backend.start(2)
    sentinel = ("--sentinel", f"127.0.0.1:{free_port()}")
    run = attach(r, m, "--yes", *sentinel)
    assert run.code == 5, run
    assert codes(run.json)["sentinel_managed"]["forceable"] is True
    assert r.info()["role"] == "master"
    forced = attach(r, m, "--yes", "--force", *sentinel)
    applied(forced, "full")
    plan_line = next(x for x in audit_lines(state_home) if x["action"] == "plan")
    assert plan_line["forced"] is True
    assert any("Sentinel" in o for o in plan_line["overridden"])


def test_not_confirmed_without_yes_on_a_non_terminal_is_exit_5(backend: Backend) -> None:
    m, r = backend.start(2)
    run = cli("attach", r.address, "--to", m.address, "--sample", "0")
    assert run.code == 5, run
    assert "not confirmed" in run.stderr and "--yes" in run.stderr
    assert r.info()["role"] == "master"


def test_malformed_input_is_exit_2_before_anything_is_touched(backend: Backend) -> None:
    m, r = backend.start(2)
    assert cli("attach", "127.0.0.1:99999", "--to", m.address, "--yes").code == 2
    assert cli("attach", r.address, "--to", "redis://u:pw@127.0.0.1:1", "--yes").code == 2
    missing = cli("attach", r.address, "--to", m.address, "--password-file", "/nonexistent/pw")
    assert missing.code == 2, missing
    assert r.info()["role"] == "master"


# ----------------------------------------------------------------------------- dry run


def fingerprint(node: Node) -> dict[str, Any]:
    """What an attach would change on a node (offsets move with pings: left out)."""
    rep = node.info("replication")
    stats = node.info("stats")
    return {
        "role": rep["role"],
        "master": (rep.get("master_host"), rep.get("master_port")),
        "replid": rep["master_replid"],
        "replid2": rep["master_replid2"],
        "replicas": rep["connected_slaves"],
        "syncs": [stats[k] for k in ("sync_full", "sync_partial_ok", "sync_partial_err")],
        "dbsize": node.call("DBSIZE"),
        "lock": node.call("EXISTS", LOCK_KEY),
        "config": node.call("CONFIG", "GET", "master*"),
    }


@pytest.mark.every_server
def test_dry_run_changes_nothing(backend: Backend, state_home: Path) -> None:
    m, r1, r2 = star(backend, 2)
    write_keys(m, 50)
    wait_in_sync(m, [r1, r2])
    nodes = (m, r1, r2)
    before = [fingerprint(n) for n in nodes]
    run = attach(r2, r1, "--dry-run", "--yes")
    assert run.code == 0, run
    doc = run.json
    assert doc["dry_run"] is True and "result" not in doc
    assert doc["prediction"]["sync"] == "partial"
    table = cli("attach", r2.address, "--to", r1.address, "--dry-run", "--sample", "0")
    assert table.code == 0 and "Dry run: nothing was changed." in table.stdout
    assert "PARTIAL resync" in table.stdout
    assert [fingerprint(n) for n in nodes] == before
    assert audit_lines(state_home) == []  # nothing was done, nothing is audited


def test_dry_run_json_follows_the_documented_shape(backend: Backend) -> None:
    m, fresh = backend.start(2)
    run = attach(fresh, m, "--dry-run")
    assert run.code == 0 and run.stderr == "", run
    doc = run.json
    assert doc["operation"] == "attach"
    assert [s["n"] for s in doc["steps"]] == list(range(1, len(doc["steps"]) + 1))
    for s in doc["steps"]:
        assert s["node"] in (m.address, fresh.address)
        assert isinstance(s["action"], str) and isinstance(s["verify"], str)
        assert s["command"] is None or all(isinstance(w, str) for w in s["command"])
    replicaof = next(s for s in doc["steps"] if s["command"] and s["command"][0] == "REPLICAOF")
    assert replicaof["command"] == ["REPLICAOF", "127.0.0.1", str(m.port)]
    pred = doc["prediction"]
    assert pred["sync"] in ("full", "partial") and pred["reason"]
    assert isinstance(pred["transfer_bytes"], int) and pred["transfer_bytes"] >= 0
    assert isinstance(pred["estimated_seconds"], int | float)
    assert isinstance(pred["risks"], list)
    assert "result" not in doc


# ----------------------------------------------------------------------------- options


def test_no_wait_returns_right_after_replicaof(backend: Backend) -> None:
    m, fresh = backend.start(2)
    write_keys(m, 50)
    before = sync_counters(m)
    run = attach(fresh, m, "--yes", "--no-wait")
    assert run.code == 0, run
    doc = run.json
    assert [s["action"] for s in doc["steps"]] == [
        "lock",
        "baseline",
        "recheck",
        "command",
        "unlock",
    ]
    assert "observed_sync" not in doc["result"]["observed"]
    assert replica_of(fresh, m)
    wait_in_sync(m, [fresh])  # it does get there, on its own, as predicted
    assert observed_sync(before, sync_counters(m)) == doc["prediction"]["sync"] == "full"


class _Terminal:
    """Stands in for ``sys`` in the CLI's confirmation code: stdin is a terminal."""

    class stdin:  # mimics sys.stdin
        @staticmethod
        def isatty() -> bool:
            return True


@pytest.mark.parametrize(("answer", "code"), [("y", 0), ("n", 5), ("", 5)])
def test_without_yes_the_operator_is_asked(
    backend: Backend, monkeypatch: pytest.MonkeyPatch, answer: str, code: int
) -> None:
    m, fresh = backend.start(2)
    monkeypatch.setattr("redisops.cli.mutate.sys", _Terminal)
    run = cli("attach", fresh.address, "--to", m.address, "--sample", "0", input=answer + "\n")
    assert run.code == code, run
    assert "Proceed? [y/N]" in run.stdout
    if code == 0:
        assert "Result: applied" in run.stdout and replica_of(fresh, m)
    else:
        assert "not confirmed; nothing was changed" in run.stderr
        assert fresh.info()["role"] == "master"


@pytest.mark.every_server
def test_persist_without_a_config_file_is_reported_as_partially_applied(
    backend: Backend,
) -> None:
    m, fresh = backend.start(2)
    run = attach(fresh, m, "--yes", "--persist")
    assert run.code == 8, run
    result = run.json["result"]
    assert result["outcome"] == "partial"
    assert "CONFIG REWRITE failed" in result["message"] and "config file" in result["message"]
    assert "a restart will lose it" in run.stderr
    # the change itself is live and was verified: only the persistence failed
    assert result["observed"]["prediction_check"] == "prediction confirmed"
    assert [s["result"] for s in result["steps"] if s["action"] == "unlock"] == ["ok"]
    assert replica_of(fresh, m)


@pytest.mark.every_server
def test_persist_rewrites_the_config_file(backend: Backend) -> None:
    m, fresh = backend.start(2, config_files=True)
    applied(attach(fresh, m, "--yes", "--persist"), "full")
    assert f"replicaof 127.0.0.1 {m.port}" in fresh.rewritten_config()


def test_a_timeout_is_exit_10_with_a_diagnosis(lab: LabBackend, state_home: Path) -> None:
    m, r = lab.start(2, {"repl-timeout": "2"})
    lab.control(m, "PARTITION", m.port, r.port)  # the replica cannot reach the master
    run = cli("attach", r.address, "--to", m.address, "--yes", "--sample", "0", "--timeout", "1")
    assert run.code == 10, run
    assert f"{r.address} did not get in sync with {m.address} within 1s" in run.stderr
    assert "the master does not list it" in run.stderr
    assert f"{r.address}: replica of {m.address} (link down)" in run.stdout  # its state now
    assert m.call("EXISTS", LOCK_KEY) == 0  # the lock was released
    result = audit_lines(state_home)[-1]
    assert result["action"] == "result" and result["result"] == "timeout"
    # the change was made: once the network heals, the replica gets there by itself
    lab.control(m, "HEAL", m.port, r.port)
    wait_in_sync(m, [r])


def test_the_lock_refuses_a_second_operation_with_exit_6(backend: Backend, tmp_path: Path) -> None:
    m, fresh = backend.start(2)
    # another operator, on another host (its own lock directory), holds the key on the master
    other = ClusterLock(m.address, "switchover", "bob", directory=tmp_path / "other-host")
    with RedisNode(Address.parse(m.address)) as mn:
        other.acquire(mn)
        try:
            run = attach(fresh, m, "--yes")
        finally:
            other.release()
    assert run.code == 6, run
    assert "is locked by bob@" in run.stderr and "switchover" in run.stderr
    assert "expires in" in run.stderr
    assert fresh.info()["role"] == "master"  # untouched
    applied(attach(fresh, m, "--yes"), "full")  # and free again


def test_the_local_lock_is_shared_by_every_operation_on_the_same_master(
    backend: Backend, state_home: Path
) -> None:
    a, b = backend.start(2)
    # the node being attached sorts first: the lock is still named after the master
    replica_node, master_node = (a, b) if a.port < b.port else (b, a)
    holder = ClusterLock(master_node.address, "detach", "carol")
    assert holder.path.is_relative_to(state_home)
    holder.acquire(None)  # this host, local layer only (as when the master is unwritable)
    try:
        run = attach(replica_node, master_node, "--yes")
    finally:
        holder.release()
    assert run.code == 6, run
    assert "locked by carol@" in run.stderr
    assert replica_node.info()["role"] == "master"


def test_a_failed_verification_is_exit_9(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    m, fresh = backend.start(2, {"replica-read-only": "no"})
    write_keys(m, 10)
    wait = ACTIONS["wait-sync"]

    def wait_then_stray_write(ctx: RunContext, step: Any) -> str:
        detail = wait(ctx, step)
        fresh.call("SET", "written-on-the-replica", "1")  # someone writes to the replica
        return detail

    monkeypatch.setitem(ACTIONS, "wait-sync", wait_then_stray_write)
    run = attach(fresh, m, "--yes")
    assert run.code == 9, run
    result = run.json["result"]
    assert result["outcome"] == "verify-failed"
    assert (
        "has 12 keys but" in result["message"] and "has 11 at the same offset" in result["message"]
    )
    assert [s["result"] for s in result["steps"] if s["action"] == "unlock"] == ["ok"]
    assert result["observed"]["prediction_check"] == "prediction confirmed"  # the sync was right


def test_the_lock_key_outlives_a_long_timeout(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    m, fresh = backend.start(2)
    wait = ACTIONS["wait-sync"]
    seen: list[int] = []

    def wait_and_look_at_the_lock(ctx: RunContext, step: Any) -> str:
        seen.append(int(m.call("PTTL", LOCK_KEY)))
        return wait(ctx, step)

    monkeypatch.setitem(ACTIONS, "wait-sync", wait_and_look_at_the_lock)
    applied(attach(fresh, m, "--yes", "--timeout", "3600"), "full")
    assert len(seen) == 1 and seen[0] > 3600 * 1000  # would be 900 s otherwise


# ----------------------------------------------------------------------------- output, audit


def test_progress_goes_to_stderr_as_plain_lines_when_not_a_terminal(backend: Backend) -> None:
    m, fresh = backend.start(2)
    run = cli("attach", fresh.address, "--to", m.address, "--yes", "--sample", "0")
    assert run.code == 0, run
    lines = run.stderr.splitlines()
    assert lines[0] == "step 1/7: take the cluster lock"
    assert f"step 5/7: follow the full sync until {fresh.address} is in sync" in lines
    assert "\r" not in run.stderr  # no progress bar on a pipe
    assert "Result: applied - attach done" in run.stdout
    assert "Verification: prediction confirmed" in run.stdout
    assert "Sync took " in run.stdout and "(predicted ~" in run.stdout
    assert "step 1/7" not in run.stdout


def test_json_output_is_one_document_and_nothing_on_stderr(backend: Backend) -> None:
    m, fresh = backend.start(2)
    run = attach(fresh, m, "--yes")
    assert run.code == 0, run
    assert run.stderr == ""
    doc = json.loads(run.stdout)  # the whole of stdout is one JSON document
    assert set(doc) >= {"operation", "steps", "prediction", "result"}
    assert doc["result"]["exit_code"] == 0


def test_audit_lines_are_written_for_every_step_and_hold_no_secret(
    backend: Backend, state_home: Path
) -> None:
    m, r = backend.start(2, {"requirepass": PASSWORD})
    pw = state_home.parent / "pw"
    pw.write_text(PASSWORD + "\n")
    run = cli(
        "attach", r.address, "--to", m.address, "--yes", "--sample", "0",
        "--password-file", str(pw), "--format", "json",
    )  # fmt: skip
    doc = applied(run, "full")
    path = state_home / "redisops" / "audit.log"
    assert PASSWORD not in path.read_text()
    lines = audit_lines(state_home)
    assert len({x["op_id"] for x in lines}) == 1
    assert {x["operation"] for x in lines} == {"attach"}
    assert lines[0]["action"] == "plan" and lines[0]["result"] == "approved"
    assert lines[0]["prediction"]["sync"] == "full"
    assert lines[-1]["action"] == "result" and lines[-1]["result"] == "applied"
    done = [(x["step"], x["action"]) for x in lines if x["result"] == "ok"]
    assert done == [(s["n"], s["action"]) for s in doc["steps"]]
    masterauth = next(x for x in lines if x.get("command") and "masterauth" in x["command"])
    assert masterauth["command"] == ["CONFIG", "SET", "masterauth", "***"]
    for x in lines:
        assert x["operator"] and x["host"] and x["cluster"] == m.address


@pytest.mark.every_server
def test_end_to_end_in_a_separate_process(backend: Backend, state_home: Path) -> None:
    m, fresh = backend.start(2)
    write_keys(m, 10)
    env = {**os.environ, "XDG_STATE_HOME": str(state_home)}
    env.pop("REDISCLI_AUTH", None)

    def redisops(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "redisops", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    before = sync_counters(m)
    proc = redisops(
        "attach", fresh.address, "--to", m.address, "--yes", "--sample", "0", "-o", "json"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    doc = json.loads(proc.stdout)
    assert doc["result"]["observed"]["prediction_check"] == "prediction confirmed"
    assert observed_sync(before, sync_counters(m)) == doc["prediction"]["sync"] == "full"
    proc = redisops("detach", fresh.address, "--yes")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines()[0] == "step 1/6: take the cluster lock"
    assert "Result: applied - detach done" in proc.stdout
    assert fresh.info()["role"] == "master"


def test_the_audit_log_can_be_moved(backend: Backend, tmp_path: Path, state_home: Path) -> None:
    m, fresh = backend.start(2)
    elsewhere = tmp_path / "custom" / "audit.jsonl"
    applied(attach(fresh, m, "--yes", "--audit-log", str(elsewhere)), "full")
    assert audit_lines(state_home) == []
    assert len(elsewhere.read_text().splitlines()) >= 2 * 6 + 2
