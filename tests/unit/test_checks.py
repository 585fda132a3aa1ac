"""The health-check catalogue over hand-built snapshots (no Redis): each check's paths,
thresholds, counters between runs, markers, and the three output formats."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from redisops.checks.health import CATALOGUE, METRICS, CheckInput, run_checks
from redisops.checks.ranges import Range, Thresholds
from redisops.checks.result import Report, Sample, Status, worst
from redisops.errors import BadInput
from redisops.hostfacts import HostFacts
from redisops.model import NodeInfo, Topology
from redisops.output_checks import render_check_json, render_nagios, render_prometheus
from tests.builders import addr, master, replica, topology, unreachable

M, R1, R2 = "10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"
SAFE = {
    "save": "3600 1",
    "appendonly": "no",
    "repl-timeout": "60",
    "repl-ping-replica-period": "10",
}


PERSIST = {
    "rdb_last_bgsave_status": "ok",
    "aof_enabled": "0",
    "rdb_last_save_time": "900",
    "total_system_memory": "8000000000",
    "used_memory_rss": "2000000",
}
OBL = {
    "client-output-buffer-limit": "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
}


def healthy(offset: int = 1000, **extra: str) -> Topology:
    return topology(
        master(M, offset=offset, replicas=[R1, R2], config={**SAFE, **OBL}, **PERSIST, **extra),
        replica(R1, M, offset=offset, **PERSIST),
        replica(R2, M, offset=offset, **PERSIST),
    )


def run(topo: Topology, now: float = 1000.0, **kw: Any) -> tuple[Report, dict[str, Any]]:
    return run_checks(CheckInput("c1", topo, now, **kw))


def result(report: Report, cid: str, node: str | None = None) -> Any:
    found = [r for r in report.results if r.id == cid and (node is None or r.node == node)]
    assert found, f"no {cid} result for {node}: {[r.id for r in report.results]}"
    return found[0]


# ----------------------------------------------------------------------------- ranges


@pytest.mark.parametrize(
    ("spec", "alerts", "quiet"),
    [
        ("10", [-1, 11], [0, 10]),
        ("10:", [9.9, -5], [10, 1e9]),
        ("~:10", [10.1], [-1e9, 10]),
        ("10:20", [9, 21], [10, 20]),
        ("@10:20", [10, 15, 20], [9, 21]),
    ],
)
def test_nagios_range_alerts_outside_or_inside_with_at(
    spec: str, alerts: list[float], quiet: list[float]
) -> None:
    r = Range.parse(spec)
    assert [r.alerts(v) for v in alerts] == [True] * len(alerts)
    assert [r.alerts(v) for v in quiet] == [False] * len(quiet)
    assert str(r) == spec


@pytest.mark.parametrize("spec", ["", "abc", "20:10", "1:x", "@"])
def test_a_malformed_range_is_bad_input(spec: str) -> None:
    with pytest.raises(BadInput):
        Range.parse(spec)


def test_thresholds_refuse_an_unknown_check_id() -> None:
    with pytest.raises(BadInput, match="no check has the id"):
        Thresholds.parse(["repl.lagbytes=10"], [], known=CATALOGUE)


def test_a_malformed_range_names_the_option_and_the_check_it_was_given_for() -> None:
    with pytest.raises(BadInput, match=r"^--crit repl\.lag_bytes=abc: "):
        Thresholds.parse([], ["repl.lag_bytes=abc"], known=CATALOGUE)


def test_states_fold_critical_over_warning_over_unknown_over_ok() -> None:
    assert worst([Status.OK, Status.UNKNOWN, Status.WARNING]) is Status.WARNING
    assert worst([Status.UNKNOWN, Status.CRITICAL]) is Status.CRITICAL
    assert worst([Status.OK, Status.UNKNOWN]) is Status.UNKNOWN


# ----------------------------------------------------------------------------- the catalogue


def test_a_healthy_group_is_ok_and_every_check_of_the_catalogue_reports() -> None:
    report, _ = run(healthy())
    assert report.status is Status.OK, report.problems()
    assert {r.id for r in report.results} == set(CATALOGUE)


def test_an_unreachable_replica_is_critical_and_missing_from_the_expected_count() -> None:
    topo = topology(
        master(M, offset=10, replicas=[R1, R2], config=SAFE),
        replica(R1, M, offset=10),
        unreachable(R2),
    )
    report, _ = run(topo, inventory=(addr(M), addr(R1), addr(R2)))
    assert result(report, "reachable", R2).status is Status.CRITICAL
    reps = result(report, "topology.replicas")
    assert reps.status is Status.CRITICAL and reps.value == 1
    assert f"{R2} (does not answer" in reps.message


def test_expect_replicas_above_what_is_connected_is_critical() -> None:
    report, _ = run(healthy(), expect_replicas=3)
    r = result(report, "topology.replicas")
    assert r.status is Status.CRITICAL and "2 of 3" in r.message


def test_replicas_last_seen_recently_are_expected_back() -> None:
    topo = topology(master(M, offset=10, replicas=[R1], config=SAFE), replica(R1, M, offset=10))
    report, _ = run(topo, known_replicas={R1: 990.0, R2: 900.0})
    r = result(report, "topology.replicas")
    assert r.status is Status.CRITICAL
    assert f"{R2} (not found, last seen 100s ago)" in r.message


def test_two_masters_are_critical() -> None:
    topo = topology(master(M, config=SAFE), master(R1, config=SAFE), seeds=[M, R1])
    r = result(run(topo)[0], "topology.masters")
    assert r.status is Status.CRITICAL and "split brain" in r.message


def test_no_master_names_the_dead_master_to_fail_over_or_says_there_is_nothing_to_promote() -> None:
    topo = topology(replica(R1, M, offset=10, link="down"), unreachable(M), seeds=[R1, M])
    r = result(run(topo)[0], "topology.masters")
    assert r.status is Status.CRITICAL
    assert f"failover --master {M} --auto" in r.message
    alone = result(run(topology(unreachable(M)))[0], "topology.masters")
    assert alone.status is Status.CRITICAL
    assert "nothing to fail over to" in alone.message and "failover --master" not in alone.message


def test_a_link_down_is_critical_unless_an_operation_announced_the_full_sync() -> None:
    topo = topology(
        master(M, offset=50, replicas=[], config=SAFE),
        _with(
            replica(R1, M, offset=0, link="down", down_since=-1, state="sync"),
            master_sync_in_progress="1",
            master_sync_left_bytes="500",
        ),
        seeds=[M, R1],
    )
    report, _ = run(topo)
    assert result(report, "repl.link", R1).status is Status.CRITICAL
    assert result(report, "repl.sync_in_progress", R1).status is Status.WARNING
    marker = {"id": "m1", "master": M, "replica": R1, "op": "attach", "at": 995.0, "until": 4000.0}
    report, _ = run(topo, markers=[marker])
    assert result(report, "repl.link", R1).status is Status.OK
    assert result(report, "repl.sync_in_progress", R1).status is Status.OK


def test_lag_in_bytes_is_judged_against_the_backlog() -> None:
    topo = topology(
        master(M, offset=900_000, replicas=[R1], offsets={R1: 100}, config=SAFE),
        replica(R1, M, offset=100),
    )
    r = result(run(topo)[0], "repl.lag_bytes", R1)
    assert r.value == 899_900 and r.status is Status.WARNING  # over 50 % of 1 MiB
    r = result(
        run(topo, thresholds=Thresholds.parse([], ["repl.lag_bytes=1000"]))[0], "repl.lag_bytes", R1
    )
    assert r.status is Status.CRITICAL and str(r.crit) == "1000"


def test_lag_in_seconds_defaults_follow_min_replicas_max_lag_and_repl_timeout() -> None:
    topo = topology(
        master(M, offset=10, replicas=[R1], lags={R1: 12}, config=SAFE), replica(R1, M, offset=10)
    )
    r = result(run(topo)[0], "repl.lag_seconds", R1)
    assert r.status is Status.WARNING and str(r.warn) == "10" and str(r.crit) == "29"


def test_master_without_persistence_with_replicas_is_critical() -> None:
    topo = topology(
        master(M, offset=10, replicas=[R1], config={"save": "", "appendonly": "no"}),
        replica(R1, M, offset=10),
    )
    r = result(run(topo)[0], "hazard.unsafe_master", M)
    assert r.status is Status.CRITICAL and "comes back empty" in r.message


def test_bgsave_error_is_critical_when_writes_stop() -> None:
    topo = topology(
        master(
            M, config={**SAFE, "stop-writes-on-bgsave-error": "yes"}, rdb_last_bgsave_status="err"
        )
    )
    assert result(run(topo)[0], "persist.bgsave", M).status is Status.CRITICAL
    topo = topology(
        master(
            M, config={**SAFE, "stop-writes-on-bgsave-error": "no"}, rdb_last_bgsave_status="err"
        )
    )
    assert result(run(topo)[0], "persist.bgsave", M).status is Status.WARNING


def test_repl_timeout_at_or_below_the_ping_period_is_critical() -> None:
    topo = topology(master(M, config={**SAFE, "repl-ping-replica-period": "2147483647"}))
    r = result(run(topo)[0], "config.repl_timeout", M)
    assert r.status is Status.CRITICAL and "frozen" in r.message


def test_output_buffer_limit_below_the_backlog_warns_on_redis_7_and_is_critical_before() -> None:
    cfg = {
        **SAFE,
        "client-output-buffer-limit": "normal 0 0 0 slave 1000 500 10 pubsub 0 0 0",
        "repl-backlog-size": "1048576",
    }
    assert (
        result(run(topology(master(M, config=cfg)))[0], "repl.output_buffer", M).status
        is Status.WARNING
    )
    old = topology(master(M, config=cfg, redis_version="6.2.14"))
    assert result(run(old)[0], "repl.output_buffer", M).status is Status.CRITICAL


def test_min_replicas_to_write_not_met_is_critical() -> None:
    topo = topology(
        master(M, config={**SAFE, "min-replicas-to-write": "2"}, min_slaves_good_slaves="1")
    )
    assert result(run(topo)[0], "repl.min_replicas", M).status is Status.CRITICAL


def test_a_writable_replica_warns() -> None:
    topo = topology(
        master(M, offset=5, replicas=[R1], config=SAFE),
        _with(replica(R1, M, offset=5), slave_read_only="0"),
    )
    assert result(run(topo)[0], "repl.writable_replica", R1).status is Status.WARNING


def test_host_kernel_is_not_checked_without_ssh_and_judged_with_facts() -> None:
    r = result(run(healthy())[0], "host.kernel")
    assert r.status is Status.OK and r.message == "not checked (no SSH configured)"
    facts = {
        M: HostFacts(M, "h", overcommit_memory=0, thp_enabled="always"),
        R1: HostFacts(R1, "h", overcommit_memory=1),
        R2: None,
    }
    cfg = {**SAFE, "disable-thp": "no"}
    topo = topology(
        master(M, offset=1, replicas=[R1, R2], config=cfg),
        replica(R1, M, offset=1),
        replica(R2, M, offset=1),
    )
    report, _ = run(topo, host_facts=facts)
    m = result(report, "host.kernel", M)
    assert (
        m.status is Status.WARNING
        and "overcommit" in m.message
        and "transparent huge pages" in m.message
    )
    assert result(report, "host.kernel", R1).status is Status.OK
    assert result(report, "host.kernel", R2).status is Status.UNKNOWN


def test_backup_age_uses_the_catalogue_when_there_is_one() -> None:
    topo = topology(master(M, config=SAFE, rdb_last_save_time="999"))
    assert result(run(topo)[0], "persist.backup_age").value == 1
    r = result(
        run(topo, now=200_000.0, backup=(190_000.0, True), backup_catalogue=True)[0],
        "persist.backup_age",
    )
    assert r.value == 10_000 and r.status is Status.OK
    r = result(
        run(topo, now=200_000.0, backup=(190_000.0, False), backup_catalogue=True)[0],
        "persist.backup_age",
    )
    assert r.status is Status.WARNING and "off-host" in r.message
    r = result(
        run(topo, now=200_000.0 + 2 * 86400, backup=(190_000.0, True))[0], "persist.backup_age"
    )
    assert r.status is Status.CRITICAL


def test_backup_age_is_critical_when_a_catalogue_is_configured_but_holds_no_verified_backup() -> (
    None
):
    topo = topology(master(M, config=SAFE, rdb_last_save_time="199999"))
    r = result(run(topo, now=200_000.0, backup_catalogue=True)[0], "persist.backup_age")
    assert r.status is Status.CRITICAL and "no verified backup" in r.message
    assert result(run(topo, now=200_000.0)[0], "persist.backup_age").status is Status.OK


def test_memory_past_ninety_percent_of_maxmemory_warns() -> None:
    topo = topology(
        master(M, config=SAFE, used_memory="950", maxmemory="1000", total_system_memory="100000")
    )
    assert result(run(topo)[0], "mem.used", M).status is Status.WARNING


def test_fork_headroom_critical_when_maxmemory_is_most_of_the_ram() -> None:
    topo = topology(master(M, config=SAFE, maxmemory="95", total_system_memory="100"))
    assert result(run(topo)[0], "mem.fork_headroom", M).status is Status.CRITICAL


def test_returning_fenced_master_is_critical() -> None:
    fence = json.dumps({"fenced": [{"address": R1, "new_master": M}]})
    topo = topology(
        master(M, config=SAFE, redisops_fence=fence), master(R1, config=SAFE), seeds=[M, R1]
    )
    r = result(run(topo)[0], "topology.fenced_master")
    assert r.status is Status.CRITICAL and f"redisops fence {R1} --to {M}" in r.message


# ----------------------------------------------------------------------------- counters between runs


def _with(node: NodeInfo, **fields: str) -> NodeInfo:
    return NodeInfo(
        node.address,
        True,
        info={**node.info, **fields},
        config=node.config,
        role_reply=node.role_reply,
    )


def _group(
    offset: int, sync_full: int, err: int = 0, run_id: str | None = None, uptime: int = 100
) -> Topology:
    extra = {
        "sync_full": str(sync_full),
        "sync_partial_err": str(err),
        "uptime_in_seconds": str(uptime),
    }
    if run_id:
        extra["run_id"] = run_id
    return topology(
        master(M, offset=offset, replicas=[R1], config=SAFE, **extra), replica(R1, M, offset=offset)
    )


def test_first_run_is_a_baseline_then_deltas_and_write_rate_follow() -> None:
    report, state = run(_group(1000, 1), now=1000.0)
    assert "baseline" in result(report, "repl.resync_loop", M).message
    assert result(report, "repl.backlog_coverage", M).value is None
    report, state = run(_group(7000, 1), now=1060.0, previous=state["nodes"])
    cov = result(report, "repl.backlog_coverage", M)
    assert cov.value == pytest.approx(1048576 / 100)  # 6000 bytes in 60 s
    assert result(report, "repl.resync_loop", M).status is Status.OK


def test_unexplained_full_syncs_warn_then_go_critical_when_they_repeat() -> None:
    _, state = run(_group(100, 1), now=1000.0)
    report, state = run(_group(200, 2, err=1), now=1060.0, previous=state["nodes"])
    assert result(report, "repl.resync_loop", M).status is Status.WARNING
    report, state = run(_group(300, 3, err=2), now=1120.0, previous=state["nodes"])
    loop = result(report, "repl.resync_loop", M)
    assert loop.status is Status.CRITICAL and "2 consecutive" in loop.message
    report, state = run(_group(400, 3, err=2), now=1180.0, previous=state["nodes"])
    assert result(report, "repl.resync_loop", M).status is Status.OK


def test_a_full_sync_an_operation_announced_does_not_alert_and_its_marker_is_used_once() -> None:
    _, state = run(_group(100, 1), now=1000.0)
    marker = {
        "id": "att1",
        "master": M,
        "replica": R2,
        "op": "attach",
        "at": 1010.0,
        "until": 5000.0,
    }
    report, state = run(
        _group(200, 2, err=1), now=1060.0, previous=state["nodes"], markers=[marker]
    )
    loop = result(report, "repl.resync_loop", M)
    assert loop.status is Status.OK and "1 expected by an operation" in loop.message
    assert state["consumed"] == ["att1"]
    report, _ = run(
        _group(300, 3),
        now=1120.0,
        previous=state["nodes"],
        markers=[marker],
        consumed=frozenset(state["consumed"]),
    )
    assert result(report, "repl.resync_loop", M).status is Status.WARNING


def test_a_restart_resets_the_baseline_instead_of_a_negative_delta() -> None:
    _, state = run(_group(100, 5, run_id="a" * 40, uptime=500), now=1000.0)
    report, _ = run(_group(10, 0, run_id="b" * 40, uptime=3), now=1060.0, previous=state["nodes"])
    loop = result(report, "repl.resync_loop", M)
    assert loop.status is Status.OK and "restarted" in loop.message


def test_an_old_baseline_is_not_used() -> None:
    _, state = run(_group(100, 1), now=1000.0)
    report, _ = run(_group(200, 9), now=1000.0 + 181, previous=state["nodes"])
    assert "old" in result(report, "repl.resync_loop", M).message


def test_an_overlapping_older_run_keeps_the_newer_sample() -> None:
    _, newer = run(_group(500, 2), now=2000.0)
    _, older = run(_group(100, 1), now=1990.0, previous=newer["nodes"])
    assert older["nodes"][M]["t"] == 2000.0


# ----------------------------------------------------------------------------- output formats

NAGIOS_LINE1 = re.compile(
    r"^REDISOPS (OK|WARNING|CRITICAL|UNKNOWN) - [^|\n]+( \| (\S+=\S+)( \S+=\S+)*)?$"
)
PERF = re.compile(r"^('([^']|'')+'|[^' =]+)=-?[0-9.]+(s|ms|us|%|B|KB|MB|TB|c)?(;[^; ]*){0,4}$")


def _all_perf(text: str) -> list[str]:
    items: list[str] = []
    for i, line in enumerate(text.splitlines()):
        if " | " in line:
            items += line.split(" | ", 1)[1].split()
        elif (
            i > 0
            and "=" in line
            and ":" not in line.split("=")[0].split("_")[0]
            and not line.startswith(("CRITICAL", "WARNING", "UNKNOWN"))
        ):
            items += line.split()
    return items


def test_nagios_first_line_and_every_perfdata_item_follow_the_plugin_syntax() -> None:
    topo = topology(
        master(M, offset=10, replicas=[R1], config=SAFE),
        replica(R1, M, offset=10),
        unreachable(R2),
        seeds=[M, R2],
    )
    report, _ = run(topo)
    text = render_nagios(report)
    first = text.splitlines()[0]
    assert NAGIOS_LINE1.match(first), first
    assert first.startswith("REDISOPS CRITICAL - c1: CRITICAL reachable 10.0.0.3:6379")
    items = _all_perf(text)
    assert items and all(PERF.match(p) for p in items), [p for p in items if not PERF.match(p)]
    assert "sync_full_10.0.0.1:6379=0c" in items
    assert f"CRITICAL: reachable {R2}:" in text


def test_json_has_the_documented_fields_and_the_exit_code() -> None:
    report, _ = run(healthy(), expect_replicas=5)
    doc = json.loads(render_check_json(report))
    assert doc["status"] == "CRITICAL" and doc["exit_code"] == 2
    assert {"check", "status", "exit_code", "summary", "generated_at", "results"} <= set(doc)
    r = doc["results"][0]
    assert {"id", "node", "status", "value", "uom", "warn", "crit", "message", "fields"} <= set(r)


def test_prometheus_text_parses_back_with_base_units_and_no_timestamps() -> None:
    _, state = run(_group(100, 1), now=1000.0)
    report, _ = run(_group(7000, 1), now=1060.0, previous=state["nodes"])
    text = render_prometheus(report.samples)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert "redisops_check_status" in families and "redisops_sync_full" in families
    for fam in families.values():
        assert fam.name.startswith("redisops_")
        for s in fam.samples:
            assert s.timestamp is None
            assert not {"instance", "job"} & set(s.labels)
    lag = [s for s in families["redisops_repl_lag_bytes"].samples if s.labels["redis_addr"] == R1]
    assert lag[0].value == 0
    assert set(families) <= {n.removesuffix("_total") for n in METRICS}


def test_prometheus_keeps_every_digit_of_the_last_run_unix_time() -> None:
    when = 1796547214.626
    text = render_prometheus(
        [Sample("redisops_last_run_timestamp_seconds", {"cluster": "c"}, when)]
    )
    (fam,) = text_string_to_metric_families(text)
    assert fam.samples[0].value == when  # 6 significant digits were 5000 s off
