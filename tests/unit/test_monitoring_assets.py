"""contrib/grafana/redisops.json and contrib/prometheus/alerts.yml reference only metrics
that ``redisops check --format prometheus`` writes (and node_exporter's textfile mtime)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from redisops.checks.health import CheckInput, run_checks
from redisops.cli.check import run_samples
from redisops.output_checks import render_prometheus
from tests.builders import master, replica, topology, unreachable

ROOT = Path(__file__).resolve().parents[2]
METRIC = re.compile(r"\b(redisops_[a-z0-9_]+|node_textfile_mtime_seconds)\b")
FROM_NODE_EXPORTER = {"node_textfile_mtime_seconds"}


def _exprs(obj: Any) -> list[str]:
    if isinstance(obj, dict):
        return [
            e
            for k, v in obj.items()
            for e in ([v] if k in ("expr", "query") and isinstance(v, str) else _exprs(v))
        ]
    if isinstance(obj, list):
        return [e for v in obj for e in _exprs(v)]
    return []


def emitted() -> set[str]:
    """Sample names of a textfile written after two runs over a group with every kind of node."""
    m, r, gone = "10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"
    cfg = {"save": "3600 1", "repl-timeout": "60"}

    def topo(offset: int) -> Any:
        return topology(
            master(m, offset=offset, replicas=[r], config=cfg, rdb_last_save_time="100"),
            replica(r, m, offset=offset),
            unreachable(gone),
            seeds=[m, gone],
        )

    _, state = run_checks(CheckInput("c", topo(100), 1000.0))
    report, _ = run_checks(CheckInput("c", topo(5000), 1060.0, previous=state["nodes"]))
    text = render_prometheus([*report.samples, *run_samples(report, 0.1, True)])
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def test_every_metric_the_dashboard_and_the_alerts_use_is_one_check_emits() -> None:
    dashboard = json.loads((ROOT / "contrib/grafana/redisops.json").read_text())
    rules = yaml.safe_load((ROOT / "contrib/prometheus/alerts.yml").read_text())
    used: dict[str, set[str]] = {}
    for name, doc in (("dashboard", dashboard), ("alerts", rules)):
        exprs = _exprs(doc)
        assert exprs, f"no expressions found in the {name}"
        used[name] = {m for e in exprs for m in METRIC.findall(e)}
    names = emitted()
    for what, metrics in used.items():
        missing = metrics - names - FROM_NODE_EXPORTER
        assert not missing, f"{what} uses metrics check does not emit: {sorted(missing)}"
    # the staleness rule the doc asks for is there
    assert "node_textfile_mtime_seconds" in used["alerts"]
    # and the dashboard shows the five things the issue names
    for metric in (
        "redisops_check_status",
        "redisops_repl_lag_bytes",
        "redisops_repl_lag_seconds",
        "redisops_repl_backlog_coverage_seconds",
        "redisops_sync_full_total",
        "redisops_last_run_timestamp_seconds",
    ):
        assert metric in used["dashboard"]
