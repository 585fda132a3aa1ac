"""The renderer's health-check part: table, JSON, Nagios plugin output, Prometheus text.

Kept beside :mod:`redisops.output` (the one renderer; this file only keeps it to a
readable size): commands hand it a :class:`~redisops.checks.result.Report` and print
what comes back. Conventions are those of checks-and-drift.md §1.

>>> perf_label("repl.lag_bytes", "10.0.0.5:6380"), perf_label("a b", None)
('repl.lag_bytes_10.0.0.5:6380', "'a b'")
>>> perf_item("x", 12.5, "s", "10", "~:20")
'x=12.5s;10;~:20'
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from redisops.checks.health import METRICS
from redisops.checks.result import CheckResult, Report, Sample, Status

NAGIOS_PREFIX = "REDISOPS"
SUMMARY_ITEMS = 3  # non-OK items named on line 1; the rest are counted


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    short = f"{value:.6g}"
    # six digits lose a unix time (1.79655e+09 is 5000 s off): large values keep them all
    return short if "e+" not in short else repr(float(value))


def perf_label(cid: str, node: str | None) -> str:
    label = f"{cid}_{node}" if node else cid
    if any(c in label for c in " ='"):
        return "'" + label.replace("'", "''") + "'"
    return label


def perf_item(label: str, value: float, uom: str = "", warn: str = "", crit: str = "") -> str:
    """``label=value[UOM];[warn];[crit]`` with trailing empty fields dropped."""
    text = f"{label}={_num(value)}{uom};{warn};{crit}"
    return text.rstrip(";")


def _perf(r: CheckResult) -> str | None:
    if r.value is None:
        return None
    return perf_item(
        perf_label(r.id, r.node),
        r.value,
        r.uom,
        str(r.warn) if r.warn is not None else "",
        str(r.crit) if r.crit is not None else "",
    )


def summary(report: Report) -> str:
    """Line 1's text: the non-OK items worst first, or what was checked."""
    bad = report.problems()
    if not bad:
        return (
            f"{report.cluster}: {len(report.results)} checks OK on {report.nodes} "
            f"node{'s' if report.nodes != 1 else ''}"
        )
    items = [f"{r.status.name} {r.id}{' ' + r.node if r.node else ''}" for r in bad[:SUMMARY_ITEMS]]
    more = f" (+{len(bad) - SUMMARY_ITEMS} more)" if len(bad) > SUMMARY_ITEMS else ""
    return f"{report.cluster}: " + ", ".join(items) + more


def _counters(report: Report) -> list[str]:
    out = []
    for s in report.samples:
        if s.name == "redisops_sync_full_total":
            out.append(perf_item(perf_label("sync_full", s.labels.get("redis_addr")), s.value, "c"))
    return out


def render_nagios(report: Report, status: Status | None = None) -> str:
    """``REDISOPS <STATE> - <summary> | <perfdata>``, then one line per non-OK item, then
    the per-node perfdata after a ``|`` (the plugin "long text" layout)."""
    state = report.status if status is None else status
    group = [p for r in report.results if r.node is None and (p := _perf(r)) is not None]
    lines = [
        f"{NAGIOS_PREFIX} {state.name} - {summary(report)}"
        + (" | " + " ".join(group) if group else "")
    ]
    for r in report.problems():
        lines.append(f"{r.status.name}: {r.id}{' ' + r.node if r.node else ''}: {r.message}")
    per_node = [p for r in report.results if r.node is not None and (p := _perf(r)) is not None]
    per_node += _counters(report)
    if per_node:
        if len(lines) == 1:
            lines.append(f"{len(report.results)} checks OK")
        lines[-1] += " | " + per_node[0]
        lines.extend(per_node[1:])
    return "\n".join(lines)


def unknown_nagios(message: str) -> str:
    return f"{NAGIOS_PREFIX} {Status.UNKNOWN.name} - {message}"


def check_data(report: Report, status: Status | None = None) -> dict[str, Any]:
    state = report.status if status is None else status
    return {
        "check": "redisops",
        "cluster": report.cluster,
        "status": state.name,
        "exit_code": int(state),
        "summary": summary(report),
        "generated_at": round(report.generated_at, 3),
        "results": [r.to_dict() for r in report.results],
    }


def render_check_json(report: Report, status: Status | None = None) -> str:
    return json.dumps(check_data(report, status), indent=2)


def render_check_table(report: Report, verbose: bool = False) -> str:
    from redisops.output import table

    shown = list(report.results) if verbose else report.problems()
    lines = [f"{report.status.name} - {summary(report)}"]
    if shown:
        rows = [
            [r.status.name, r.id, r.node or "-", _value(r), r.message]
            for r in (
                sorted(shown, key=lambda r: -int(r.status != Status.OK)) if verbose else shown
            )
        ]
        lines += ["", table(["STATUS", "CHECK", "NODE", "VALUE", "MESSAGE"], rows)]
    ok = sum(1 for r in report.results if r.status is Status.OK)
    if not verbose and ok:
        lines += ["", f"{ok} other checks OK (-v lists them)"]
    return "\n".join(lines)


def _value(r: CheckResult) -> str:
    if r.value is None:
        return "-"
    return f"{_num(r.value)}{r.uom}"


# ----------------------------------------------------------------------------- Prometheus


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render_prometheus(
    samples: Iterable[Sample], metrics: Mapping[str, tuple[str, str]] = METRICS
) -> str:
    """The text exposition format, one ``# HELP``/``# TYPE`` per metric, no timestamps."""
    by_name: dict[str, list[Sample]] = {}
    for s in samples:
        by_name.setdefault(s.name, []).append(s)
    lines: list[str] = []
    for name, group in by_name.items():
        kind, help_text = metrics[name]
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for s in group:
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in s.labels.items())
            lines.append(
                f"{name}{{{labels}}} {_num(s.value)}" if labels else f"{name} {_num(s.value)}"
            )
    return "\n".join(lines) + "\n"
