"""Copies of real redis-server clusters on the embedded engine, and rehearsals on them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from redisops import lab
from tests.harness import RedisFactory
from tests.integration.lab_fixture import (
    Node,
    RealBackend,
    cli,
    poll,
    star,
    state_home_fixture,  # noqa: F401 - fixture (audit and locks in a temp dir)
    sync_counters,
    write_keys,
)

pytestmark = pytest.mark.redis_server


@pytest.fixture(name="real")
def real_fixture(redis_factory: RedisFactory) -> RealBackend:
    return RealBackend(redis_factory)


def in_sync(master: Node, *replicas: Node) -> None:
    def synced() -> bool:
        off = master.info()["master_repl_offset"]
        return all(
            r.info().get("master_link_status") == "up" and r.info()["master_repl_offset"] == off
            for r in replicas
        )

    poll(synced, what="replicas in sync")


def role_of(node: Node) -> tuple[str, str | None]:
    info = node.info()
    if info["role"] == "slave":
        return "slave", f"{info['master_host']}:{info['master_port']}"
    return "master", None


@pytest.fixture(name="copy_dir")
def copy_dir_fixture(tmp_path: Path) -> Any:
    path = tmp_path / "copy"
    yield path
    lab.down(path)


def test_a_copy_has_the_real_topology_history_config_and_size(
    real: RealBackend, copy_dir: Path
) -> None:
    m, r1, r2 = star(real, 2, {"repl-backlog-size": "2mb", "repl-timeout": "30"})
    r2.call("CONFIG", "SET", "replica-priority", "50")
    write_keys(m, 500, size=200)
    in_sync(m, r1, r2)
    res = cli("lab", "up", "--from-cluster", m.address, "--dir", str(copy_dir))
    assert res.code == 0, res
    assert f"copies {m.address}: master" in res.stdout
    state = lab.load_state(copy_dir)
    assert state is not None
    copies = {
        real_addr: Node(real, int(addr.rsplit(":", 1)[1]), None)
        for real_addr, addr in state.clone_of.items()
    }
    cm, c1, c2 = copies[m.address], copies[r1.address], copies[r2.address]
    real_info, copy_info = m.info(), cm.info()
    assert copy_info["master_replid"] == real_info["master_replid"]
    assert copy_info["master_replid2"] == real_info["master_replid2"]
    # offsets and the backlog's first byte agree to a whole PING (the copy's filler unit)
    assert abs(copy_info["master_repl_offset"] - real_info["master_repl_offset"]) < 28
    first_real = real_info["repl_backlog_first_byte_offset"]
    assert abs(copy_info["repl_backlog_first_byte_offset"] - first_real) < 14
    assert role_of(c1) == ("slave", cm.address) and role_of(c2) == ("slave", cm.address)
    poll(lambda: c1.info().get("master_link_status") == "up", what="copy linked")
    assert c1.info()["master_replid"] == real_info["master_replid"]
    assert cm.call("CONFIG", "GET", "repl-backlog-size")[1] == str(2 * 1024 * 1024)
    assert cm.call("CONFIG", "GET", "repl-timeout")[1] == "30"
    assert c2.call("CONFIG", "GET", "replica-priority")[1] == "50"
    assert cm.call("DBSIZE") == 500 and c1.call("DBSIZE") == 500
    # the copy's replicas continued their history (partial), as restarted replicas do
    assert sync_counters(cm)["sync_full"] == 0


def test_a_copy_predicts_what_the_real_cluster_does(real: RealBackend, copy_dir: Path) -> None:
    """Moving a replica under its sibling: the same plan and prediction on both."""
    m, r1, r2 = star(real, 2)
    write_keys(m, 100)
    in_sync(m, r1, r2)
    assert cli("lab", "up", "--from-cluster", m.address, "--dir", str(copy_dir)).code == 0
    state = lab.load_state(copy_dir)
    assert state is not None
    lab_addr = state.clone_of

    def predicted(replica: str, master: str) -> dict[str, Any]:
        res = cli("attach", replica, "--to", master, "--dry-run", "--sample", "0", "-o", "json")
        assert res.code == 0, res
        return dict(res.json["prediction"])

    on_real = predicted(r2.address, r1.address)
    on_copy = predicted(lab_addr[r2.address], lab_addr[r1.address])
    assert on_real["sync"] == on_copy["sync"] == "partial"
    assert on_real["psync"]["replid"] == on_copy["psync"]["replid"]


def test_rehearse_runs_the_playbook_on_a_copy_and_leaves_the_real_cluster_alone(
    real: RealBackend,
) -> None:
    m, r1, r2 = star(real, 2)
    write_keys(m, 100)
    in_sync(m, r1, r2)
    counters = sync_counters(m)
    res = cli(
        "playbook", "run", "planned-switchover", "--var", f"master={m.address}",
        "--var", f"target={r1.address}", "--rehearse", "-o", "json",
    )  # fmt: skip
    assert res.code == 0, res
    trial = res.json["rehearsal"]
    assert trial["rehearsal"] and trial["outcome"] == "ok"
    switch = next(s for s in trial["steps"] if s["action"] == "switchover")
    assert switch["registered"]["outcome"] == "applied"
    assert switch["registered"]["new_master"] == r1.address  # named by the real address
    assert res.json["run"] is None  # not offered: no terminal, no --yes
    assert role_of(m) == ("master", None) and sync_counters(m) == counters
    assert not any(Path(p).exists() for p in [trial["journal"]] if p)  # the copy is gone


def test_rehearse_then_yes_runs_it_for_real_after_the_copy_passed(real: RealBackend) -> None:
    m, r1, r2 = star(real, 2)
    write_keys(m, 100)
    in_sync(m, r1, r2)
    res = cli(
        "playbook", "run", "planned-switchover", "--var", f"master={m.address}",
        "--var", f"target={r1.address}", "--rehearse", "--yes", "-o", "json",
    )  # fmt: skip
    assert res.code == 0, res
    assert res.json["rehearsal"]["outcome"] == "ok" and res.json["run"]["outcome"] == "ok"
    assert role_of(r1) == ("master", None) and role_of(m) == ("slave", r1.address)


def test_a_failed_rehearsal_stops_before_the_real_run(real: RealBackend) -> None:
    m, r1, r2 = star(real, 2)
    in_sync(m, r1, r2)
    # a procedure that cannot work: the "master" given is a replica
    res = cli(
        "playbook", "run", "planned-switchover", "--var", f"master={r1.address}",
        "--var", f"target={r2.address}", "--rehearse", "--yes", "-o", "json",
    )  # fmt: skip
    assert res.code == 5, res
    assert res.json["rehearsal"]["outcome"] == "failed" and res.json["run"] is None
    assert "must be a replica of the master" in res.json["rehearsal"]["message"]
    assert role_of(m) == ("master", None)


def test_master_down_is_rehearsed_on_a_copy_where_the_master_is_dead_too(
    real: RealBackend, tmp_path: Path
) -> None:
    m, r1, r2 = star(real, 2, {"save": "3600 1"})  # its final check refuses unsafe masters
    write_keys(m, 50)
    in_sync(m, r1, r2)
    inventory = tmp_path / "redisops.yml"
    inventory.write_text(
        f"clusters:\n  prod:\n    nodes: [{m.address}, {r1.address}, {r2.address}]\n"
    )
    assert m.proc is not None
    m.proc.kill()
    res = cli(
        "playbook", "run", "master-down", "--var", f"master={m.address}", "--var", "interval=0.05s",
        "--inventory", str(inventory), "--rehearse", "-o", "json",
    )  # fmt: skip
    assert res.code == 0, res
    trial = res.json["rehearsal"]
    steps = {s["id"]: s for s in trial["steps"]}
    assert steps["1"]["registered"]["state"] == "down"
    assert steps["4"]["registered"]["new_master"] in (r1.address, r2.address)
    assert steps["7"]["status"] == "ok"
    # the real replicas still follow the dead master: nothing was changed
    assert role_of(r1) == ("slave", m.address) and role_of(r2) == ("slave", m.address)


def test_a_cluster_with_a_password_is_rehearsed_on_a_copy_without_one(real: RealBackend) -> None:
    m, r1, r2 = star(real, 2, {"requirepass": "s3cret", "masterauth": "s3cret"})
    in_sync(m, r1, r2)
    res = cli(
        "playbook", "run", "planned-switchover", "--var", f"master={m.address}",
        "--var", f"target={r1.address}", "--rehearse", "-o", "json",
        env={"REDISCLI_AUTH": "s3cret"},
    )  # fmt: skip
    assert res.code == 0, res
    assert res.json["rehearsal"]["outcome"] == "ok"
    assert "s3cret" not in res.stdout + res.stderr
