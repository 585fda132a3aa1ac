"""``redisops check`` against real redis-server (and the embedded lab): each check's
OK/WARNING/CRITICAL path triggered for real, the three formats, the state file across runs,
operation markers, and the last-known topology used by failover and status."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import (
    FAST_SYNC,
    RedisFactory,
    RedisProc,
    replicate,
    star_of,
    wait_in_sync,
    wait_link_up,
    wait_until,
)
from tests.integration.lab_fixture import (
    LabBackend,
    cli,
    lab_fixture,  # noqa: F401  (the fixture)
    state_home_fixture,  # noqa: F401  (autouse)
    write_keys,
)

pytestmark = pytest.mark.redis_server

PERSIST = {**FAST_SYNC, "save": "3600 1"}


def group(
    factory: RedisFactory, replicas: int = 2, config: dict[str, str] | None = None
) -> list[RedisProc]:
    return star_of([factory.start(config or PERSIST) for _ in range(replicas + 1)])


def check(*args: str) -> tuple[int, dict[str, Any]]:
    run = cli("check", *args, "--format", "json")
    assert run.stdout.strip(), run
    return run.code, run.json


def results(doc: dict[str, Any], cid: str, node: str | None = None) -> list[dict[str, Any]]:
    return [r for r in doc["results"] if r["id"] == cid and (node is None or r["node"] == node)]


def status_of(doc: dict[str, Any], cid: str, node: str | None = None) -> str:
    found = results(doc, cid, node)
    assert found, f"no {cid} on {node} in {[r['id'] for r in doc['results']]}"
    return str(found[0]["status"])


def test_a_healthy_group_is_ok_with_exit_0_and_a_nagios_first_line(
    redis_factory: RedisFactory,
) -> None:
    m, *_ = group(redis_factory)
    run = cli("check", m.address, "--format", "nagios")
    assert run.code == 0, run
    first = run.stdout.splitlines()[0]
    assert (
        first.startswith(f"REDISOPS OK - {m.address}: ") and " | topology.masters=1;;1:1" in first
    )
    code, doc = check(m.address)
    assert code == 0 and doc["status"] == "OK" and doc["exit_code"] == 0


def test_a_killed_replica_stays_critical_while_it_is_gone(redis_factory: RedisFactory) -> None:
    m, _r1, r2 = group(redis_factory)
    assert check(m.address)[0] == 0  # records the topology: two replicas
    r2.kill()
    wait_until(lambda: m.info()["connected_slaves"] == 1, what="master to drop the replica")
    for _ in range(2):  # level-based: every run, not only the first after the drop
        code, doc = check(m.address)
        assert code == 2
        assert status_of(doc, "topology.replicas") == "CRITICAL"
        assert r2.address in results(doc, "topology.replicas")[0]["message"]
        assert (
            status_of(doc, "reachable", r2.address) == "CRITICAL"
        )  # probed from the last-known topology


def test_a_frozen_replica_costs_its_deadline_and_is_critical(redis_factory: RedisFactory) -> None:
    m, r1, _ = group(redis_factory)
    r1.pause()
    try:
        code, doc = check(m.address, "--deadline", "0.5")
    finally:
        r1.resume()
    assert code == 2
    reach = results(doc, "reachable", r1.address)[0]
    assert reach["status"] == "CRITICAL"
    assert "timed out" in reach["message"] or "deadline" in reach["message"]


def test_master_without_persistence_is_critical(redis_factory: RedisFactory) -> None:
    m, *_ = group(redis_factory, 1, dict(FAST_SYNC))  # the harness starts nodes with save ""
    code, doc = check(m.address)
    assert code == 2 and status_of(doc, "hazard.unsafe_master", m.address) == "CRITICAL"
    m.client().config_set("save", "3600 1")
    assert check(m.address)[0] == 0


def test_a_wrong_expected_replica_count_is_critical(redis_factory: RedisFactory) -> None:
    m, *_ = group(redis_factory)
    code, doc = check(m.address, "--expect-replicas", "3")
    assert code == 2
    assert "2 of 3 expected replicas" in results(doc, "topology.replicas")[0]["message"]
    assert check(m.address, "--expect-replicas", "2")[0] == 0


def _force_full_resync(m: RedisProc, r: RedisProc, size: int = 200) -> None:
    """The replica falls behind by more than the (tiny) backlog, then loses its link: its
    reconnection cannot be partial."""
    before = int(m.info("stats")["sync_full"])
    r.pause()
    try:
        m.client().execute_command("CLIENT", "KILL", "TYPE", "replica")
        write_keys(m, 300, prefix=f"burst{before}", size=size)  # 300 x size > the backlog
    finally:
        r.resume()
    wait_until(lambda: int(m.info("stats")["sync_full"]) > before, what="a full resync")
    wait_link_up(r)


def test_a_resync_loop_from_a_tiny_backlog_warns_then_goes_critical(
    redis_factory: RedisFactory,
) -> None:
    m, r = group(redis_factory, 1, {**PERSIST, "repl-backlog-size": "16kb"})
    args = (m.address, "--interval", "600")
    assert check(*args)[0] == 0  # baseline
    _force_full_resync(m, r)
    code, doc = check(*args)
    loop = results(doc, "repl.resync_loop", m.address)[0]
    assert loop["status"] == "WARNING", loop
    assert loop["fields"]["sync_full_delta"] == 1
    # the burst measured against 16 KB: the backlog covers far less than repl-timeout
    assert status_of(doc, "repl.backlog_coverage", m.address) == "CRITICAL"
    assert code == 2
    _force_full_resync(m, r)
    code, doc = check(*args)
    assert code == 2 and status_of(doc, "repl.resync_loop", m.address) == "CRITICAL"


def test_lag_in_seconds_past_the_thresholds(redis_factory: RedisFactory) -> None:
    m, r = group(redis_factory, 1)
    m.kill()
    wait_until(
        lambda: int(r.info().get("master_link_down_since_seconds", 0)) >= 2, what="link down 2s"
    )
    code, doc = check(r.address, "--warn", "repl.lag_seconds=0", "--crit", "repl.lag_seconds=1")
    lag = results(doc, "repl.lag_seconds", r.address)[0]
    assert lag["status"] == "CRITICAL" and lag["value"] >= 2 and lag["crit"] == "1"
    assert code == 2


def test_lag_in_bytes_past_the_thresholds_on_the_embedded_lab(lab: LabBackend) -> None:
    m, r = star_of(lab.start(2, {"save": "3600 1"}))
    wait_in_sync(m, [r])
    lab.control(m, "PARTITION", m.port, r.port)
    write_keys(m, 50, size=100)
    _code, doc = check(
        m.address, r.address, "--warn", "repl.lag_bytes=100", "--crit", "repl.lag_bytes=4000"
    )
    lag = results(doc, "repl.lag_bytes", r.address)[0]
    assert lag["status"] == "CRITICAL" and lag["value"] > 4000, lag
    lab.control(m, "HEAL", m.port, r.port)


def test_a_failed_bgsave_with_stop_writes_is_critical(
    redis_factory: RedisFactory, tmp_path: Path
) -> None:
    gone = tmp_path / "vanishing-dir"
    gone.mkdir()
    m = redis_factory.start({**PERSIST, "dir": str(gone)})
    # root ignores permissions: a data directory that no longer exists fails for anyone
    shutil.rmtree(gone)
    m.client().bgsave()
    wait_until(
        lambda: m.info("persistence")["rdb_last_bgsave_status"] == "err", what="bgsave error"
    )
    code, doc = check(m.address)
    bg = results(doc, "persist.bgsave", m.address)[0]
    assert code == 2 and bg["status"] == "CRITICAL" and "MISCONF" in bg["message"]


def test_the_textfile_is_written_atomically_and_parses_back(
    redis_factory: RedisFactory, tmp_path: Path
) -> None:
    m, *_ = group(redis_factory)
    prom = tmp_path / "textfile" / "redisops-test.prom"
    prom.parent.mkdir()
    for _ in range(2):
        run = cli("check", m.address, "--format", "prometheus", "--textfile", str(prom))
        assert run.code == 0 and run.stdout == "", run
    assert [p.name for p in prom.parent.iterdir()] == [prom.name]  # no temp file left
    families = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
    success = families["redisops_last_run_success"].samples[0]
    assert success.value == 1 and success.timestamp is None
    addrs = {s.labels["redis_addr"] for s in families["redisops_up"].samples}
    assert addrs == {p.address for p in redis_factory.procs}
    assert families["redisops_sync_full"].type == "counter"


def test_a_textfile_in_a_directory_that_does_not_exist_is_unknown_and_creates_nothing(
    redis_factory: RedisFactory, tmp_path: Path
) -> None:
    m, *_ = group(redis_factory)
    prom = tmp_path / "typo" / "redisops-test.prom"
    run = cli("check", m.address, "--format", "prometheus", "--textfile", str(prom))
    assert run.code == 3 and "does not exist" in run.stdout + run.stderr, run
    assert not prom.parent.exists()  # node_exporter would never read a directory made here


def test_state_file_baseline_deltas_and_a_restart(
    redis_factory: RedisFactory, tmp_path: Path
) -> None:
    m, r = group(redis_factory, 1)
    state = tmp_path / "check-state.json"
    args = (m.address, "--state-file", str(state), "--interval", "600")
    _, doc = check(*args)
    assert "baseline" in results(doc, "repl.resync_loop", m.address)[0]["message"]
    first = json.loads(state.read_text())["nodes"][m.address]
    write_keys(m, 100)
    _, doc = check(*args)
    cov = results(doc, "repl.backlog_coverage", m.address)[0]
    assert cov["value"] is not None and cov["value"] > 0  # a write rate measured from the baseline
    m.restart()  # new run_id, uptime back to 0: a new baseline, never a negative delta
    replicate(r, m)
    wait_link_up(r)
    _code, doc = check(*args)
    assert "restarted" in results(doc, "repl.resync_loop", m.address)[0]["message"]
    assert json.loads(state.read_text())["nodes"][m.address]["run_id"] != first["run_id"]


def test_unreadable_state_file_is_unknown_not_critical(
    redis_factory: RedisFactory, tmp_path: Path
) -> None:
    m = redis_factory.start(PERSIST)
    state = tmp_path / "bad.json"
    state.write_text("{not json")
    run = cli("check", m.address, "--state-file", str(state), "--format", "nagios")
    assert run.code == 3, run
    assert run.stdout.startswith("REDISOPS UNKNOWN - state file")


@pytest.mark.parametrize(
    "args",
    [
        ["--warn", "nonsense"],
        ["--warn", "repl.lag_bytes=abc"],
        ["--no-such-option"],
        ["--only", "nope"],
    ],
)
def test_bad_arguments_are_unknown_with_a_nagios_line(args: list[str]) -> None:
    run = cli("check", "127.0.0.1:1", *args, "--format", "nagios")
    assert run.code == 3, run
    assert run.stdout.startswith("REDISOPS UNKNOWN - ")
    assert "Traceback" not in run.stdout + run.stderr


def test_an_unreachable_redis_is_critical_not_unknown(redis_factory: RedisFactory) -> None:
    m = redis_factory.start(PERSIST)
    m.kill()
    run = cli("check", m.address, "--format", "nagios", "--deadline", "0.5")
    assert run.code == 2 and run.stdout.startswith("REDISOPS CRITICAL - "), run


def test_an_attach_full_sync_does_not_page_anyone(redis_factory: RedisFactory) -> None:
    m, _r = group(redis_factory, 1)
    args = (m.address, "--interval", "600")
    assert check(*args)[0] == 0
    fresh = redis_factory.start(PERSIST)
    write_keys(fresh, 3, prefix="own")  # its own data: the attach needs --yes to discard it
    run = cli("attach", fresh.address, "--to", m.address, "--yes", "--sample", "0")
    assert run.code == 0, run
    code, doc = check(*args, "--expect-replicas", "2")
    loop = results(doc, "repl.resync_loop", m.address)[0]
    assert loop["status"] == "OK" and loop["fields"]["explained"] == 1, loop
    assert code == 0, [r for r in doc["results"] if r["status"] != "OK"]
    # the marker explained that sync once; a later, unannounced full sync alerts
    _force_full_resync(m, fresh, size=5000)  # 1.5 MB > the 1 MB default backlog
    assert status_of(check(*args)[1], "repl.resync_loop", m.address) == "WARNING"


def test_failover_with_no_seeds_uses_the_topology_check_recorded(
    redis_factory: RedisFactory,
) -> None:
    m, r1, r2 = group(redis_factory)
    write_keys(m, 10)
    wait_in_sync(m, [r1, r2])
    assert check(m.address)[0] == 0
    m.kill()
    status = cli("status", m.address, "--format", "json")
    assert status.code == 4
    nodes = {n["address"]: n for n in status.json["nodes"]}
    assert {r1.address, r2.address} <= set(nodes)  # the replicas it was last seen with
    assert any(p["kind"] == "last_known" for p in status.json["problems"])
    run = cli("failover", "--master", m.address, "--auto", "--yes")
    assert run.code == 0, run
    assert "using the last-known topology" in run.stderr
    # the plan says how old the knowledge it used is (from before this run's own reads)
    used = " ".join(run.stdout.split())
    assert "replicas taken from the last-known topology" in used
    assert "by operation" not in used, used
    roles = sorted(p.info()["role"] for p in (r1, r2))
    assert roles == ["master", "slave"]
    # the fenced old master is expected to be down: the new group checks OK without it
    new = r1 if r1.info()["role"] == "master" else r2
    other = r2 if new is r1 else r1
    wait_in_sync(new, [other])
    code, doc = check(new.address)
    assert code == 0, [r for r in doc["results"] if r["status"] != "OK"]
    assert not results(doc, "reachable", m.address)


def test_attach_plan_lists_a_replica_last_seen_under_the_moved_node(
    redis_factory: RedisFactory,
) -> None:
    b, c = group(redis_factory, 1)  # b is a master with replica c
    d = redis_factory.start(PERSIST)  # another master, another history
    assert cli("status", b.address).code == 0  # records c under b
    c.kill()
    wait_until(lambda: b.info()["connected_slaves"] == 0, what="b to drop c")
    run = cli(
        "attach", b.address, "--to", d.address, "--dry-run", "--sample", "0", "--format", "json"
    )
    assert run.code == 0, run
    plan = run.json
    returning = [f for f in plan["findings"] if f["code"] == "returning_replica"]
    assert returning and returning[0]["node"] == c.address
    assert (
        "s ago and is not connected now: when it comes back it will full-sync"
        in returning[0]["message"]
    )
    followers = {f["replica"]: f for f in plan["prediction"]["followers"]}
    assert followers[c.address]["sync"] == "full"
    assert "last-known topology" in followers[c.address]["reason"]


def test_host_facts_of_a_node_on_this_machine_are_read_and_judged(
    redis_factory: RedisFactory,
) -> None:
    m = redis_factory.start(PERSIST)
    _, doc = check(m.address)
    assert results(doc, "host.kernel")[0]["message"] == "not checked (no SSH configured)"
    _, doc = check(m.address, "--host-facts")
    kernel = results(doc, "host.kernel", m.address)[0]
    overcommit = Path("/proc/sys/vm/overcommit_memory").read_text().strip()
    if overcommit == "1":
        assert kernel["status"] in ("OK", "WARNING")  # THP may still warn
    else:
        assert kernel["status"] == "WARNING"
        assert f"vm.overcommit_memory = {overcommit}" in kernel["message"]


def test_a_first_run_with_sample_measures_the_write_rate_for_backlog_coverage(
    redis_factory: RedisFactory, tmp_path: Path
) -> None:
    import threading
    import time

    from redisops.ops.check import sample_again
    from redisops.session import build_session

    m, _r = group(redis_factory, 1)
    state = tmp_path / "state.json"
    _, doc = check(m.address, "--state-file", str(tmp_path / "unsampled.json"))
    assert "no write rate yet" in results(doc, "repl.backlog_coverage", m.address)[0]["message"]
    stop = threading.Event()

    def writer() -> None:
        with m.client() as c:
            for i in range(200_000):
                if stop.is_set():
                    return
                c.set(f"w:{i % 1000}", "v" * 100)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        _, doc = check(m.address, "--state-file", str(state), "--sample", "1")
    finally:
        stop.set()
        thread.join()
    cov = results(doc, "repl.backlog_coverage", m.address)[0]
    assert cov["value"] is not None and cov["value"] > 0, cov
    assert cov["fields"]["peak_rate"] > 0 and "covers" in cov["message"]
    # with a baseline in the state file now, --sample takes no second sample
    slept: list[float] = []
    with build_session(seeds=[m.address], purpose=None) as session:
        topo = session.discover()
        again, earlier, _ = sample_again(session, topo, 5.0, state, 60.0, time.time(), slept.append)
    assert slept == [] and earlier == {} and again is topo
