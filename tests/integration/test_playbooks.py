"""The shipped playbooks: a dry run against the embedded lab (everything read for real,
nothing changed, later steps seeing the predicted state) and a real run against
redis-server; then failures, the journal, and resuming."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.harness import RedisFactory, wait_until
from tests.integration.lab_fixture import (
    LabBackend,
    Node,
    RealBackend,
    Run,
    audit_lines,
    cli,
    lab_fixture,  # noqa: F401 - fixture
    poll,
    star,
    star_of,
    state_home_fixture,  # noqa: F401 - fixture (audit and locks in a temp dir)
    sync_counters,
    write_keys,
)


def run_playbook(*args: str) -> Run:
    return cli("playbook", "run", *args, "--format", "json")


def state(nodes: list[Node]) -> dict[str, tuple[str, str | None]]:
    """Each node's role and master."""
    out: dict[str, tuple[str, str | None]] = {}
    for n in nodes:
        info = n.info()
        master = f"{info['master_host']}:{info['master_port']}" if info["role"] == "slave" else None
        out[n.address] = (info["role"], master)
    return out


def in_sync(master: Node, *replicas: Node) -> None:
    def synced() -> bool:
        off = master.info()["master_repl_offset"]
        return all(
            r.info().get("master_link_status") == "up" and r.info()["master_repl_offset"] == off
            for r in replicas
        )

    poll(synced, what="replicas in sync")


def steps(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in doc["steps"]}


def inventory(tmp_path: Path, nodes: list[Node]) -> Path:
    path = tmp_path / "redisops.yml"
    path.write_text(
        "clusters:\n  test:\n    nodes: [" + ", ".join(n.address for n in nodes) + "]\n"
    )
    return path


@pytest.fixture(name="real")
def real_fixture(redis_factory: RedisFactory) -> RealBackend:
    return RealBackend(redis_factory)


# ----------------------------------------------------------------------------- planned-switchover


def test_planned_switchover_dry_run_on_the_lab_predicts_and_changes_nothing(
    lab: LabBackend,
) -> None:
    m, r1, r2 = star(lab, 2)
    write_keys(m, 100)
    in_sync(m, r1, r2)
    before, counters = state([m, r1, r2]), sync_counters(m)
    res = run_playbook(
        "planned-switchover",
        "--var",
        f"master={m.address}",
        "--var",
        f"target={r1.address}",
        "--dry-run",
    )
    assert res.code == 0, res
    by_id = steps(res.json)
    assert by_id["1"]["status"] == "ok" and not by_id["1"]["predicted"]  # read for real
    assert by_id["3"]["predicted"] and by_id["3"]["registered"]["outcome"] == "predicted"
    assert by_id["3"]["registered"]["prediction"]["sync"] == "partial"
    assert by_id["3"]["plan"]["steps"], "the dry run shows the operation's plan"
    after = by_id["4"]["registered"]  # a read after the predicted switchover sees it
    assert after["master"] == r1.address and after["predicted"]
    assert m.address in after["replicas"]
    assert by_id["5"]["status"] == "ok"
    assert state([m, r1, r2]) == before and sync_counters(m) == counters
    assert res.json["journal"] is None


@pytest.mark.redis_server
def test_planned_switchover_runs_on_redis_server(real: RealBackend, state_home: Path) -> None:
    m, r1, r2 = star(real, 2)
    write_keys(m, 100)
    in_sync(m, r1, r2)
    res = run_playbook(
        "planned-switchover",
        "--var",
        f"master={m.address}",
        "--var",
        f"target={r1.address}",
        "--yes",
    )
    assert res.code == 0, res
    assert state([m, r1, r2]) == {
        r1.address: ("master", None),
        m.address: ("slave", r1.address),
        r2.address: ("slave", r1.address),
    }
    switch = steps(res.json)["3"]["registered"]
    assert switch["outcome"] == "applied" and switch["new_master"] == r1.address
    assert switch["pause_ms"] > 0
    journal = Path(res.json["journal"])
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    assert next(r["type"] for r in records) == "start" and records[-1]["type"] == "end"
    assert records[-1]["exit_code"] == 0
    lines = audit_lines(state_home)
    assert any(
        r.get("operation") == "switchover" and r.get("playbook_run") == res.json["run_id"]
        for r in lines
    )
    assert any(r.get("operation") == "playbook:planned-switchover" for r in lines)


# ----------------------------------------------------------------------------- add-replica


def test_add_replica_dry_run_on_the_lab_predicts_a_full_sync(lab: LabBackend) -> None:
    m, r1, fresh = lab.start(3)
    r1.call("REPLICAOF", "127.0.0.1", m.port)
    write_keys(m, 200)
    in_sync(m, r1)
    res = run_playbook(
        "add-replica",
        "--var",
        f"replica={fresh.address}",
        "--var",
        f"master={m.address}",
        "--dry-run",
    )
    assert res.code == 0, res
    by_id = steps(res.json)
    assert by_id["3"]["registered"]["sync"] == "full"
    assert by_id["4"]["status"] == "skipped"  # the observed-vs-predicted check needs a real run
    assert fresh.address in by_id["5"]["registered"]["replicas"]
    assert fresh.info()["role"] == "master"  # nothing changed


@pytest.mark.redis_server
def test_add_replica_runs_on_redis_server_and_verifies_the_prediction(real: RealBackend) -> None:
    m, r1, fresh = real.start(3)
    r1.call("REPLICAOF", "127.0.0.1", m.port)
    write_keys(m, 200)
    in_sync(m, r1)
    res = run_playbook(
        "add-replica", "--var", f"replica={fresh.address}", "--var", f"master={m.address}", "--yes"
    )
    assert res.code == 0, res
    attach = steps(res.json)["3"]["registered"]
    assert attach["sync"] == "full" and attach["observed_sync"] == "full"
    assert state([fresh])[fresh.address] == ("slave", m.address)
    # the 200 keys; the lock key's DEL, the run's last write, reaches the replica a moment later
    wait_until(lambda: fresh.call("DBSIZE") == 200, 10, what="the replica holds the 200 keys")


# ----------------------------------------------------------------------------- master-down


#: the final check of master-down fails on critical findings, and a master without
#: persistence is one (a restart would empty every replica): these clusters persist
PERSIST = {"save": "3600 1"}


def test_master_down_dry_run_on_the_lab_ranks_predicts_and_changes_nothing(
    lab: LabBackend, tmp_path: Path
) -> None:
    m, r1, r2 = star(lab, 2, PERSIST)
    write_keys(m, 50)
    in_sync(m, r1, r2)
    inv = inventory(tmp_path, [m, r1, r2])
    lab.control(m, "KILL", m.port)
    res = run_playbook(
        "master-down",
        "--var",
        f"master={m.address}",
        "--var",
        "interval=0.05s",
        "--inventory",
        str(inv),
        "--dry-run",
    )
    assert res.code == 0, res
    by_id = steps(res.json)
    chosen = by_id["2"]["registered"]["chosen"]
    assert chosen in (r1.address, r2.address)
    assert by_id["4"]["registered"]["new_master"] == chosen and by_id["4"]["predicted"]
    assert by_id["5"]["registered"]["fenced"] == "recorded" and by_id["5"]["predicted"]
    assert by_id["6"]["registered"]["master"] == chosen
    assert state([r1, r2]) == {r1.address: ("slave", m.address), r2.address: ("slave", m.address)}


@pytest.mark.redis_server
def test_master_down_runs_on_redis_server_from_the_dead_masters_address(
    real: RealBackend, tmp_path: Path
) -> None:
    m, r1, r2 = star(real, 2, PERSIST)
    write_keys(m, 50)
    in_sync(m, r1, r2)
    inv = inventory(tmp_path, [m, r1, r2])
    assert m.proc is not None
    m.proc.kill()
    res = run_playbook(
        "master-down",
        "--var",
        f"master={m.address}",
        "--var",
        "interval=0.05s",
        "--inventory",
        str(inv),
        "--yes",
    )
    assert res.code == 0, res
    new = steps(res.json)["4"]["registered"]["new_master"]
    other = r2 if new == r1.address else r1
    assert state([r1, r2])[new] == ("master", None)
    assert state([other])[other.address] == ("slave", new)
    fenced = json.loads(Node(real, int(new.rsplit(":", 1)[1]), None).call("GET", "redisops:fence"))
    assert [e["address"] for e in fenced["fenced"]] == [m.address]
    assert steps(res.json)["7"]["status"] == "ok"
    assert steps(res.json)["8"]["registered"]["status"] in ("OK", "WARNING")


# ----------------------------------------------------------------------------- rebuild-replica


def test_rebuild_replica_dry_run_on_the_lab_predicts_the_full_sync(lab: LabBackend) -> None:
    m, r1, r2 = star(lab, 2)
    write_keys(m, 50)
    in_sync(m, r1, r2)
    counters = sync_counters(m)
    res = run_playbook(
        "rebuild-replica",
        "--var",
        f"replica={r2.address}",
        "--var",
        f"master={m.address}",
        "--dry-run",
    )
    assert res.code == 0, res
    by_id = steps(res.json)
    assert by_id["3"]["predicted"] and by_id["4"]["registered"]["sync"] == "full"
    assert sync_counters(m) == counters


@pytest.mark.redis_server
def test_rebuild_replica_runs_on_redis_server_with_a_verified_full_sync(real: RealBackend) -> None:
    m, r1, r2 = star(real, 2)
    write_keys(m, 50)
    in_sync(m, r1, r2)
    r2.call("CONFIG", "SET", "replica-read-only", "no")
    r2.call("SET", "diverged", "only-here")  # a broken replica: a key its master does not have
    full_before = sync_counters(m)["sync_full"]
    res = run_playbook(
        "rebuild-replica", "--var", f"replica={r2.address}", "--var", f"master={m.address}", "--yes"
    )
    assert res.code == 0, res
    assert steps(res.json)["4"]["registered"]["observed_sync"] == "full"
    assert sync_counters(m)["sync_full"] == full_before + 1
    assert r2.call("EXISTS", "diverged") == 0
    assert state([r2])[r2.address] == ("slave", m.address)


# ----------------------------------------------------------------------------- failure and resume

TWO_ATTACHES = """\
name: two-attaches
description: attach two replicas, then check both
vars:
  master: address
  a: address
  b: address
steps:
  - name: attach a
    action: attach
    with: {replica: "{{ a }}", master: "{{ master }}", sample: 0}
    register: first
  - name: attach b
    action: attach
    with: {replica: "{{ b }}", master: "{{ master }}", sample: 0}
  - name: read the cluster
    action: status
    with: {seeds: ["{{ master }}"]}
    register: after
  - name: both follow the master
    action: assert
    with:
      that: ["a in after.replicas", "b in after.replicas", "first.outcome == 'applied'"]
"""


def _two_attaches(tmp_path: Path, real: RealBackend) -> tuple[Path, list[Node], list[str]]:
    path = tmp_path / "two.yml"
    path.write_text(TWO_ATTACHES)
    m, a, b = real.start(3)
    write_keys(m, 20)
    args = [
        str(path),
        "--var",
        f"master={m.address}",
        "--var",
        f"a={a.address}",
        "--var",
        f"b={b.address}",
    ]
    return path, [m, a, b], args


@pytest.mark.redis_server
def test_a_failed_step_stops_the_run_with_every_nodes_state_and_resume_finishes_it(
    real: RealBackend, tmp_path: Path
) -> None:
    path, (m, a, b), args = _two_attaches(tmp_path, real)
    assert b.proc is not None
    b.proc.kill()
    res = cli("playbook", "run", *args, "--yes")
    assert res.code == 3, res  # b is unreachable: the attach is refused
    assert "[2/4] attach b (attach): FAILED (exit 3)" in res.stdout
    assert "State of every node now" in res.stdout and a.address in res.stdout
    assert "--resume" in res.stdout
    assert state([a])[a.address] == ("slave", m.address)

    # resuming before the cause is fixed re-checks the precondition and refuses, touching nothing
    again = cli("playbook", "run", str(path), "--resume", "--yes", "--format", "json")
    assert again.code == 3, again
    assert "resume refused at step 2" in again.json["message"]

    b.proc.restart()
    full_before = sync_counters(m)["sync_full"]
    done = cli("playbook", "run", str(path), "--resume", "--yes", "--format", "json")
    assert done.code == 0, done
    by_id = steps(done.json)
    assert by_id["1"]["status"] == "done-before"  # attach a is not run again...
    assert by_id["1"]["registered"]["outcome"] == "applied"  # ...and its result is restored
    assert by_id["2"]["status"] == "ok" and done.json["resumed_from"] == "2"
    assert sync_counters(m)["sync_full"] == full_before + 1  # only b synced
    assert state([a, b]) == {a.address: ("slave", m.address), b.address: ("slave", m.address)}
    records = [json.loads(x) for x in Path(done.json["journal"]).read_text().splitlines()]
    assert [r["type"] for r in records].count("resume") == 2
    assert records[-1] == {**records[-1], "type": "end", "exit_code": 0}


@pytest.mark.redis_server
def test_resume_counts_a_step_done_by_hand_as_done(real: RealBackend, tmp_path: Path) -> None:
    path, (m, _a, b), args = _two_attaches(tmp_path, real)
    assert b.proc is not None
    b.proc.kill()
    assert cli("playbook", "run", *args, "--yes").code == 3
    b.proc.restart()
    b.call("REPLICAOF", "127.0.0.1", m.port)  # the operator fixed it by hand
    poll(lambda: b.info().get("master_link_status") == "up", what="b linked")
    done = cli("playbook", "run", str(path), "--resume", "--yes", "--format", "json")
    assert done.code == 0, done
    rec = steps(done.json)["2"]
    assert rec["status"] == "ok" and rec["summary"].startswith("already done (re-checked")


@pytest.mark.redis_server
def test_resume_refuses_a_playbook_whose_completed_steps_changed(
    real: RealBackend, tmp_path: Path
) -> None:
    path, (_m, _a, b), args = _two_attaches(tmp_path, real)
    assert b.proc is not None
    b.proc.kill()
    assert cli("playbook", "run", *args, "--yes").code == 3
    path.write_text(
        TWO_ATTACHES.replace(
            "sample: 0}\n    register: first", "sample: 0, timeout: 60s}\n    register: first"
        )
    )
    res = cli("playbook", "run", str(path), "--resume", "--yes")
    assert res.code == 2
    assert "step 1 'attach a' changed since run" in res.stderr


def test_from_step_refuses_to_skip_a_step_whose_result_is_used_later(tmp_path: Path) -> None:
    path = tmp_path / "two.yml"
    path.write_text(TWO_ATTACHES)
    res = cli(
        "playbook",
        "run",
        str(path),
        "--from-step",
        "3",
        "--var",
        "master=127.0.0.1:1",
        "--var",
        "a=127.0.0.1:2",
        "--var",
        "b=127.0.0.1:3",
        "--yes",
    )
    assert res.code == 2
    assert (
        "--from-step 3: step 4 'both follow the master' reads 'first', registered by step 1 'attach a'"
        in res.stderr
    )


def test_a_run_without_a_terminal_or_yes_refuses_before_any_step(tmp_path: Path) -> None:
    path = tmp_path / "two.yml"
    path.write_text(TWO_ATTACHES)
    res = cli(
        "playbook",
        "run",
        str(path),
        "--var",
        "master=127.0.0.1:1",
        "--var",
        "a=127.0.0.1:2",
        "--var",
        "b=127.0.0.1:3",
    )
    assert res.code == 5
    assert "this playbook changes the cluster (steps 1, 2)" in res.stderr


# ----------------------------------------------------------------------------- drift-remediation


def test_drift_remediation_dry_run_on_the_lab_predicts_the_fix(lab: LabBackend) -> None:
    m, r1, r2 = star_of(lab.start(3, config_files=True))
    in_sync(m, r1, r2)
    r1.call("CONFIG", "SET", "repl-backlog-size", "4mb")  # drift: a must-match key differs
    res = run_playbook("drift-remediation", "--var", f"master={m.address}", "--dry-run")
    assert res.code == 0, res
    by_id = steps(res.json)
    assert [f["parameter"] for f in by_id["3"]["registered"]["fixable"]] == ["repl-backlog-size"]
    assert by_id["4"]["predicted"] and by_id["4"]["registered"]["outcome"] == "predicted"
    assert by_id["5"]["registered"]["fixable"] == [] and by_id["5"]["predicted"]
    assert r1.call("CONFIG", "GET", "repl-backlog-size")[1] == str(4 * 1024 * 1024)  # untouched


@pytest.mark.redis_server
def test_drift_remediation_runs_on_redis_server(real: RealBackend) -> None:
    m, r1, r2 = star_of(real.start(3, config_files=True))
    in_sync(m, r1, r2)
    r1.call("CONFIG", "SET", "repl-backlog-size", "4mb")
    res = run_playbook("drift-remediation", "--var", f"master={m.address}", "--yes")
    assert res.code == 0, res
    assert steps(res.json)["4"]["registered"]["outcome"] == "applied"
    assert (
        r1.call("CONFIG", "GET", "repl-backlog-size")[1]
        == m.call("CONFIG", "GET", "repl-backlog-size")[1]
    )
    persisted = r1.rewritten_config()  # the file agrees: the default is not written out
    assert "Generated by CONFIG REWRITE" in persisted and "4194304" not in persisted


@pytest.mark.redis_server
def test_a_step_can_fail_on_drift_with_exit_11(real: RealBackend, tmp_path: Path) -> None:
    m, r1 = star_of(real.start(2, config_files=True))
    in_sync(m, r1)
    r1.call("CONFIG", "SET", "repl-backlog-size", "4mb")
    path = tmp_path / "d.yml"
    path.write_text(
        "name: d\nvars: {master: address}\nsteps:\n"
        "  - name: no fixable drift\n    action: drift\n"
        '    with: {seeds: ["{{ master }}"], fail_on: fixable}\n'
    )
    res = run_playbook(str(path), "--var", f"master={m.address}", "--yes")
    assert res.code == 11, res
    assert "repl-backlog-size" in res.json["message"]


# ----------------------------------------------------------------------------- backup-rdb


def test_backup_rdb_dry_run_on_the_lab_says_what_it_would_take(
    lab: LabBackend, tmp_path: Path
) -> None:
    m, r1 = star(lab, 1)
    in_sync(m, r1)
    dest = tmp_path / "backups"
    res = run_playbook(
        "backup-rdb", "--var", f"node={r1.address}", "--var", f"dest={dest}", "--dry-run"
    )
    assert res.code == 0, res
    take = steps(res.json)["3"]
    assert take["predicted"] and take["registered"]["source"] == r1.address
    assert not dest.exists() or not any(dest.rglob("*.rdb"))  # nothing written


@pytest.mark.redis_server
def test_backup_rdb_runs_on_redis_server_from_a_replica(real: RealBackend, tmp_path: Path) -> None:
    m, r1 = star(real, 1)
    write_keys(m, 100)
    in_sync(m, r1)
    dest = tmp_path / "backups"
    res = run_playbook("backup-rdb", "--var", f"node={m.address}", "--var", f"dest={dest}", "--yes")
    assert res.code == 0, res
    taken = steps(res.json)["3"]["registered"]
    assert taken["source"] == r1.address  # the seeds' rule: the replica, not the master
    assert taken["backup"]["status"] == "verified" and taken["backup"]["keys"] == 100
    assert list(dest.rglob("*.rdb"))


@pytest.mark.redis_server
def test_a_rehearsed_backup_rdb_writes_nothing_to_the_real_destination(
    real: RealBackend, tmp_path: Path
) -> None:
    m, r1 = star(real, 1)
    write_keys(m, 100)
    in_sync(m, r1)
    dest = tmp_path / "backups"
    dest.mkdir()
    res = cli(
        "playbook",
        "run",
        "backup-rdb",
        "--var",
        f"node={m.address}",
        "--var",
        f"dest={dest}",
        "--rehearse",
    )
    assert res.code == 0, res
    assert "stand-in for" in res.stdout
    assert list(dest.iterdir()) == []  # the rehearsal only reads the real world


def test_backup_rdb_runs_on_the_embedded_lab_whose_nodes_write_their_rdb_files(
    tmp_path: Path,
) -> None:
    """The lab writes each RDB a node saves to its own ``dir`` as a real file (Redis's
    format: redis-check-rdb accepts it), so a backup runs with no Redis installed."""
    from redisops import lab as labs

    state = labs.up(
        tmp_path / "lab", nodes=2, base_port=labs.free_base_port(2, start=23000),
        config={"save": "3600 1"},
    )  # fmt: skip
    try:
        m, r1 = (f"127.0.0.1:{p}" for p in state.ports)
        with redis.Redis(port=state.ports[0]) as master, redis.Redis(port=state.ports[1]) as rep:
            master.mset({f"k{i}": "v" * 32 for i in range(30)})
            poll(lambda: rep.dbsize() == 30, what="replicated")
        dest = tmp_path / "backups"
        res = run_playbook("backup-rdb", "--var", f"node={m}", "--var", f"dest={dest}", "--yes")
        assert res.code == 0, res
        taken = steps(res.json)["3"]["registered"]
        assert taken["source"] == r1 and taken["backup"]["status"] == "verified"
        assert taken["backup"]["keys"] == 30
        assert (tmp_path / "lab" / f"node-{state.ports[1]}" / "dump.rdb").is_file()
    finally:
        labs.down(tmp_path / "lab")


# ----------------------------------------------------------------------------- rolling-restart


def test_rolling_restart_dry_run_on_the_lab_plans_every_restart_and_the_switch(
    lab: LabBackend, tmp_path: Path
) -> None:
    m, r1, r2 = star(lab, 2, PERSIST)
    write_keys(m, 50)
    in_sync(m, r1, r2)
    res = run_playbook("rolling-restart", "--var", f"master={m.address}", "--dry-run")
    assert res.code == 0, res
    by_id = {(s["id"], s.get("item")): s for s in res.json["steps"]}
    for replica in (r1.address, r2.address):
        assert by_id[("3.1", replica)]["predicted"]  # the restart is planned, not done
    assert by_id[("4", None)]["registered"]["new_master"] in (r1.address, r2.address)
    assert by_id[("6", None)]["registered"]["outcome"] == "nothing-to-do"  # already follows
    assert state([m])[m.address] == ("master", None)
