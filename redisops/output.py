"""The one renderer: tables, trees and JSON. Nothing else in redisops prints.

Commands build plain data; this module turns it into text for ``--format table`` (the
default, for people) or ``--format json`` (for scripts: one JSON document on stdout).
Diagnostics go to stderr so stdout stays parseable. ``tabulate`` is imported here only,
and only when a table is drawn.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any, TextIO

from redisops.formats import Format

if TYPE_CHECKING:  # pragma: no cover - the renderer needs the model only for types
    from redisops.model import NodeInfo, Topology

# ----------------------------------------------------------------------------- streams


def write(text: str, stream: TextIO | None = None) -> None:
    """Print ``text`` (plus a newline) to stdout or ``stream``."""
    out = stream or sys.stdout
    out.write(text if text.endswith("\n") else text + "\n")
    out.flush()


def note(text: str) -> None:
    """A human diagnostic on stderr (progress, warnings); never part of the JSON."""
    sys.stderr.write(text.rstrip("\n") + "\n")
    sys.stderr.flush()


def error_line(message: str) -> None:
    sys.stderr.write(f"redisops: error: {message}\n")
    sys.stderr.flush()


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False, default=_json_default)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, Enum):
        return obj.value
    return str(obj)


# ----------------------------------------------------------------------------- helpers


def human_bytes(n: int | float | None) -> str:
    """Compact byte counts.

    >>> human_bytes(1048576), human_bytes(1536), human_bytes(12), human_bytes(None)
    ('1.0M', '1.5K', '12B', '-')
    """
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "K", "M", "G", "T"):
        if abs(value) < 1024 or unit == "T":
            return f"{int(value)}B" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}T"  # pragma: no cover


def human_seconds(s: float | None) -> str:
    """Compact durations.

    >>> human_seconds(0.25), human_seconds(75), human_seconds(7200)
    ('250ms', '1m15s', '2h0m')
    """
    if s is None:
        return "-"
    if s < 1:
        return f"{s * 1000:.0f}ms"
    if s < 60:
        return f"{s:.1f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60)}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60)}m"


def _dash(value: Any) -> Any:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    from tabulate import tabulate

    return tabulate(
        [[_dash(c) for c in r] for r in rows],
        headers=list(headers),
        tablefmt="simple",
        disable_numparse=True,
    )


# ----------------------------------------------------------------------------- status


def status_data(topo: Topology) -> dict[str, Any]:
    data: dict[str, Any] = {
        "nodes": [topo.record(n) for n in topo.nodes],
        "problems": [p.to_dict() for p in topo.problems],
    }
    if topo.sentinel is not None:
        data["sentinel"] = dict(topo.sentinel)
    return data


def _tree_label(topo: Topology, node: NodeInfo) -> str:
    if node.unfit is not None:
        what = node.role if node.reachable else "not Redis"
        if node.redis_mode == "cluster":
            what = f"cluster-mode {node.role}"
        return f"{node.address}  ({what}: not a data node)"
    if not node.reachable:
        return f"{node.address}  UNREACHABLE ({node.error})"
    parts = [node.role]
    if node.is_master:
        parts.append(f"offset {node.offset}")
        parts.append(f"{len(node.replicas)} replica{'s' if len(node.replicas) != 1 else ''}")
    else:
        link = node.link or "?"
        if link == "down":
            since = node.link_down_seconds
            link = "down" + (f" {since}s" if since is not None and since >= 0 else "")
        parts.append(f"link {link}")
        lag = topo.lag_bytes(node)
        if lag is not None:
            parts.append(f"lag {lag}B")
        if node.sync_in_progress:
            p = node.sync_progress or {}
            parts.append(
                f"syncing {human_bytes(p.get('read_bytes'))}/{human_bytes(p.get('total_bytes'))}"
            )
        elif node.repl_state and node.repl_state != "connected":
            parts.append(node.repl_state)
    return f"{node.address}  ({', '.join(parts)})"


def render_tree(topo: Topology) -> str:
    """Masters with their replicas below them, chained replicas indented further."""
    lines: list[str] = []
    placed: set[Any] = set()

    def visit(node: NodeInfo, prefix: str, last: bool, top: bool) -> None:
        placed.add(node.address)
        if top:
            lines.append(_tree_label(topo, node))
            child_prefix = ""
        else:
            lines.append(f"{prefix}{'└── ' if last else '├── '}{_tree_label(topo, node)}")
            child_prefix = prefix + ("    " if last else "│   ")
        kids = [k for k in topo.children(node) if k.address not in placed]
        for i, kid in enumerate(kids):
            visit(kid, child_prefix, i == len(kids) - 1, False)

    for root in topo.roots():
        if root.address in placed:
            continue
        if root.is_replica and topo.parent(root) is None:
            lines.append(f"{root.master_address}  (master not reached)")
            visit(root, "", True, False)
        else:
            visit(root, "", True, True)
    return "\n".join(lines)


STATUS_HEADERS = (
    "ADDRESS",
    "ROLE",
    "MASTER",
    "LINK",
    "OFFSET",
    "LAG_B",
    "LAG_S",
    "IO_S",
    "SYNC",
    "RO",
    "PRIO",
    "REPLID",
    "REPLID2",
    "BACKLOG",
    "BACKLOG_RANGE",
    "SERVER",
    "RDB",
    "MEM",
)


def status_rows(topo: Topology) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for node in topo.nodes:
        rec = topo.record(node)
        if not node.reachable:
            what = "not redis" if node.service == "not-redis" else "unreachable"
            rows.append([rec["address"], what] + [None] * (len(STATUS_HEADERS) - 2))
            continue
        if node.loading:
            sync = "loading"
        elif node.sync_in_progress:
            p = node.sync_progress or {}
            sync = f"transfer {p.get('perc', 0):.0f}%"
        elif node.is_replica:
            sync = node.repl_state or "-"
        else:
            sync = None
        link = node.link
        if link == "down" and node.link_down_seconds is not None and node.link_down_seconds >= 0:
            link = f"down {node.link_down_seconds}s"
        brange = node.backlog_range
        rows.append(
            [
                rec["address"],
                node.role,
                rec["master"],
                link,
                node.offset,
                rec["lag_bytes"],
                rec["lag_seconds"],
                node.last_io_seconds,
                sync,
                None if node.read_only is None else ("yes" if node.read_only else "no"),
                node.replica_priority,
                node.replid[:8] if node.replid else None,
                None if node.replid2 == "0" * 40 else node.replid2[:8],
                human_bytes(node.backlog_size) if node.backlog_active else "off",
                f"{brange[0]}-{brange[1]}" if brange else None,
                str(node.server) if node.server is not None else None,
                rec["rdb_format"],
                human_bytes(node.used_memory),
            ]
        )
    return rows


def render_problems(problems: Sequence[Any]) -> str:
    if not problems:
        return "No problems found."
    lines = [f"{len(problems)} problem{'s' if len(problems) != 1 else ''}:"]
    for p in problems:
        lines.append(f"  [{p.severity.upper()}] {p.kind}: {p.message}")
    return "\n".join(lines)


def render_status(topo: Topology, fmt: Format) -> str:
    if fmt is Format.json:
        return to_json(status_data(topo))
    parts = [render_tree(topo), "", table(STATUS_HEADERS, status_rows(topo))]
    if topo.sentinel is not None:
        parts += ["", render_sentinel(topo.sentinel)]
    parts += ["", render_problems(topo.problems)]
    return "\n".join(parts)


def watch_keys(topo: Topology) -> dict[str, Any]:
    """What ``status --watch`` compares between frames: reachability, role, link, lag."""
    return {str(n.address): (n.reachable, n.role, n.link, topo.lag_bytes(n)) for n in topo.nodes}


def _lag_moved(a: int | None, b: int | None) -> bool:
    if a is None or b is None:
        return a != b
    return (a == 0) != (b == 0) or abs(a - b) > max(a, b) / 2


def watch_changes(before: dict[str, Any] | None, now: dict[str, Any]) -> set[str]:
    """Addresses whose role, link or reachability changed, or whose lag moved markedly
    (from or to zero, or by more than half); new nodes count as changed.

    >>> watch_changes({"a": (True, "replica", "up", 0)}, {"a": (True, "replica", "down", 0)})
    {'a'}
    >>> watch_changes({"a": (True, "replica", "up", 100)}, {"a": (True, "replica", "up", 120)})
    set()
    """
    if before is None:
        return set()
    out = set()
    for addr, (reach, role, link, lag) in now.items():
        old = before.get(addr)
        if old is None or old[:3] != (reach, role, link) or _lag_moved(old[3], lag):
            out.add(addr)
    return out


REVERSE, RESET, HOME_CLEAR = "\x1b[7m", "\x1b[0m", "\x1b[H\x1b[2J"


def render_watch_frame(
    topo: Topology,
    previous: dict[str, Any] | None,
    fmt: Format,
    now: float,
    interval: float,
    tty: bool,
) -> str:
    """One ``status --watch`` frame. On a terminal the screen is cleared first and changed
    nodes are shown in reverse video; otherwise changed lines start with ``*``."""
    import time as _time

    changed = watch_changes(previous, watch_keys(topo))
    if fmt is Format.json:
        doc = {**status_data(topo), "time": round(now, 3), "changed": sorted(changed)}
        return json.dumps(doc, default=_json_default) + "\n"
    stamp = _time.strftime("%Y-%m-%d %H:%M:%S", _time.localtime(now))
    header = f"Every {interval:g}s: redisops status    {stamp}"
    if changed:
        header += f"    changed: {', '.join(sorted(changed))}"
    gone = sorted(set(previous or {}) - {str(n.address) for n in topo.nodes})
    if gone:
        header += f"    gone: {', '.join(gone)}"
    lines = []
    for line in render_status(topo, fmt).splitlines():
        hit = any(line.lstrip("│├└─ ").startswith(a) for a in changed)
        if hit:
            line = f"{REVERSE}{line}{RESET}" if tty else f"* {line}"
        elif not tty and changed:
            line = f"  {line}"
        lines.append(line)
    body = "\n".join([header, "", *lines]) + "\n"
    return HOME_CLEAR + body if tty else body + "\n"


def render_sentinel(view: Any) -> str:
    lines = [f"Sentinel view of {view.get('name')!r}: master {view.get('master') or '?'}"]
    for s in view.get("sentinels", []):
        lines.append(f"  {s.get('address')}: {s.get('status')}")
    if view.get("quorum"):
        lines.append(f"  quorum: {view['quorum']}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- plans


_LEVEL_MARK = {"refuse": "REFUSED", "confirm": "NEEDS --yes", "warn": "WARNING", "info": "note"}


def render_plan(plan: Any, force: bool = False) -> str:
    """A plan for people: summary, findings, steps, prediction."""
    lines = [plan.summary or plan.operation]
    if plan.findings:
        lines.append("")
        lines.append("Preflight:")
        for f in plan.findings:
            mark = _LEVEL_MARK.get(f.level, f.level)
            if f.level == "refuse" and force and f.forceable:
                mark = "OVERRIDDEN (--force)"
            lines.append(f"  [{mark}] {f.message}")
    if plan.steps:
        lines.append("")
        rows = []
        for s in plan.steps:
            cmd = " ".join(s.command) if s.command else ""
            rows.append([s.n, s.node, s.description, cmd, s.verify])
        lines.append(table(["#", "NODE", "STEP", "COMMAND", "VERIFY"], rows))
    pred = plan.prediction
    if pred:
        lines.append("")
        lines.append(render_prediction(pred))
    return "\n".join(lines)


def render_prediction(pred: Any) -> str:
    lines = ["Prediction (reference engine):"]
    sync = pred.get("sync")
    if sync in ("full", "partial") and pred.get("replica"):
        lines.append(
            f"  {pred.get('replica', '')} <- {pred.get('master', '')}: {sync.upper()} resync, "
            f"{human_bytes(pred.get('transfer_bytes'))}, ~{human_seconds(pred.get('estimated_seconds'))}"
        )
    lines.append(f"  why: {pred.get('reason', '')}")
    for p in pred.get("phases", []):
        lines.append(f"    {p['phase']}: {human_seconds(p['seconds'])}")
    if pred.get("peak_output_buffer"):
        lines.append(f"  peak replica output buffer: {human_bytes(pred['peak_output_buffer'])}")
    for f in pred.get("followers", []):
        lines.append(f"  then {f['replica']} <- {f['master']}: {f['sync']} ({f['reason']})")
    for extra in pred.get("replicas", []):
        lines.append(
            f"  {extra['replica']} <- {extra['master']}: {extra['sync']} ({extra['reason']})"
        )
    for r in pred.get("risks", []):
        lines.append(f"  risk: {r}")
    return "\n".join(lines)


def render_result(result: Any) -> str:
    lines = ["", f"Result: {result.outcome} - {result.message}"]
    rows = [[s.n, s.node, s.action, s.result, s.detail[:100]] for s in result.steps]
    if rows:
        lines.append(table(["#", "NODE", "ACTION", "RESULT", "DETAIL"], rows))
    obs = result.observed
    if "prediction_check" in obs:
        lines.append(f"Verification: {obs['prediction_check']}")
    if "pause_ms" in obs:
        lines.append(f"Writes paused for {obs['pause_ms']:.1f} ms")
    for w in result.warnings:
        lines.append(f"warning: {w}")
    if result.final_state:
        lines.append("State now:")
        for n in result.final_state:
            if not n.get("reachable"):
                lines.append(f"  {n['address']}: UNREACHABLE ({n.get('error')})")
            else:
                where = f" of {n['master']} (link {n['link']})" if n.get("master") else ""
                lines.append(f"  {n['address']}: {n['role']}{where}, offset {n['offset']}")
    return "\n".join(lines)


class LineProgress:
    """Plain progress lines on stderr (not a terminal): one per phase change."""

    def __init__(self) -> None:
        self._last = ""

    def phase(self, text: str) -> None:
        note(text)

    def update(self, label: str, done: float, total: float | None) -> None:
        if label != self._last:
            self._last = label
            note(f"  {label}...")

    def finish(self) -> None:
        self._last = ""


class TerminalProgress(LineProgress):
    """A one-line progress bar on a terminal."""

    def update(self, label: str, done: float, total: float | None) -> None:
        if total:
            frac = max(0.0, min(done / total, 1.0))
            bar = "#" * int(frac * 30)
            text = f"  {label:<12} [{bar:<30}] {frac * 100:5.1f}% {human_bytes(done)}/{human_bytes(total)}"
        else:
            text = f"  {label}..."
        sys.stderr.write("\r" + text[:100].ljust(100))
        sys.stderr.flush()

    def finish(self) -> None:
        sys.stderr.write("\r" + " " * 100 + "\r")
        sys.stderr.flush()


def make_progress(fmt: Format) -> Any:
    from redisops.plan import NullProgress

    if fmt is Format.json:
        return NullProgress()
    return TerminalProgress() if sys.stderr.isatty() else LineProgress()


# ----------------------------------------------------------------------------- host facts

HOST_FACTS_HEADERS = [
    "node",
    "mem avail/total",
    "swap free/total",
    "overcommit",
    "THP",
    "somaxconn/backlog",
    "nofile",
    "disk free (dir)",
    "cpus",
    "kernel",
    "redis-server",
    "service",
]


def render_host_facts(facts: Sequence[Any], fmt: Format) -> str:
    """One row per node; what could not be read is listed under the table."""
    if fmt is Format.json:
        return to_json({"hosts": [f.to_dict() for f in facts]})
    rows = []
    for f in facts:
        rows.append(
            [
                f.node,
                f"{human_bytes(f.mem_available_bytes)}/{human_bytes(f.mem_total_bytes)}",
                f"{human_bytes(f.swap_free_bytes)}/{human_bytes(f.swap_total_bytes)}",
                f.overcommit_memory,
                f.thp_enabled,
                f"{_dash(f.somaxconn)}/{_dash(f.tcp_backlog)}"
                + (" (capped)" if f.backlog_capped else ""),
                "unlimited" if f.max_open_files == -1 else f.max_open_files,
                f"{human_bytes(f.disk_free_bytes)} ({_dash(f.redis_dir)})",
                f.cpu_count,
                f.kernel,
                f.redis_version,
                f.service_state,
            ]
        )
    parts = [table(HOST_FACTS_HEADERS, rows)]
    notes = [f"  {f.node} ({f.host}): {e}" for f in facts for e in f.errors]
    if notes:
        parts += ["", "Not read:", *notes]
    return "\n".join(parts)


def render_service_status(status: Any, fmt: Format) -> str:
    if fmt is Format.json:
        return to_json(status.to_dict())
    return (
        f"{status.node} on {status.host}: service {status.state} "
        f"(`{' '.join(status.command)}` exited {_dash(status.exit_status)}); redis {status.redis}"
    )


def render_config_file(doc: dict[str, Any], fmt: Format) -> str:
    """A config file's effective directives (secrets already redacted by the caller)."""
    if fmt is Format.json:
        return to_json(doc)
    rows = [[d["name"], d["line"], d["where"]] for d in doc["directives"]]
    head = f"{doc['path']} on {doc['host']} (found by {doc['found_by']})"
    return "\n".join([head, "", table(["DIRECTIVE", "VALUE", "WHERE"], rows)])


# ----------------------------------------------------------------------------- drift


def render_drift(report: Any, fmt: Format) -> str:
    """A :class:`~redisops.checks.drift.DriftReport`: nodes, across-node and per-node findings."""
    if fmt is Format.json:
        return to_json(report.to_dict())
    lines = [
        table(
            ["NODE", "ROLE", "VERSION", "TABLE", "RUNNING CONFIG", "CONFIG FILE"],
            [
                [n.node, n.role, n.version, n.table, n.config, n.file or n.file_status]
                for n in report.nodes
            ],
        )
    ]
    cross = [f for f in report.findings if f.node is None]
    per_node = [f for f in report.findings if f.node is not None and f.severity != "info"]
    notes = [f for f in report.findings if f.node is not None and f.severity == "info"]
    if cross:
        lines += ["", f"Across nodes (reference {report.reference or '-'}):"]
        rows = [
            [f.parameter, _grouped(f.values), ", ".join(f.differs), f.severity, f.message]
            for f in cross
        ]
        lines.append(table(["PARAMETER", "VALUES", "DIFFERS", "SEVERITY", "WHY"], rows))
    if per_node:
        lines += ["", "Per node (running vs file):"]
        rows = [
            [
                f.node,
                f.parameter,
                f.cls,
                f.severity,
                f.values.get("running", ""),
                f.values.get("file", ""),
                f.message,
            ]
            for f in per_node
        ]
        lines.append(
            table(["NODE", "PARAMETER", "CLASS", "SEVERITY", "RUNNING", "FILE", "DETAIL"], rows)
        )
    if notes:
        lines += ["", "Notes:"]
        lines += [f"  {f.node}: {f.parameter} ({f.cls}): {f.message}" for f in notes]
    counted = [f for f in report.findings if f.severity != "info"]
    crit = sum(1 for f in counted if f.severity == "critical")
    lines.append("")
    if report.drift:
        lines.append(f"Drift found: {len(counted)} finding(s), {crit} critical (exit 11).")
    elif report.unreachable:
        lines.append(
            f"No drift among the nodes read; unreachable: {', '.join(report.unreachable)} (exit 3)."
        )
    else:
        lines.append("No drift.")
    return "\n".join(lines)


def _grouped(values: Any) -> str:
    """Node -> value as ``value: node, node; value: node`` (a column per node does not fit)."""
    groups: dict[str, list[str]] = {}
    for node, value in values.items():
        groups.setdefault(str(value), []).append(str(node))
    return "; ".join(f"{v}: {', '.join(nodes)}" for v, nodes in groups.items())


# ----------------------------------------------------------------------------- advise


def render_advice(report: Any, fmt: Format, mean_rate: float = 0.0) -> str:
    """An :class:`~redisops.checks.advise.AdviceReport`: one table, then storm and loop."""
    if fmt is Format.json:
        return to_json({**report.to_dict(), "write_rate_mean": mean_rate})
    inp = report.inputs
    lines = [
        f"Master {report.master}: peak write rate {human_bytes(inp['write_rate_peak'])}/s "
        f"(mean {human_bytes(mean_rate)}/s), tolerate {human_seconds(inp['tolerate_seconds'])}, "
        f"bandwidth {human_bytes(inp['bandwidth'])}/s, RDB {human_bytes(inp['rdb_bytes'])} "
        f"({inp['rdb_source']}), full sync ~{human_seconds(inp['full_sync_seconds'])}",
        "",
    ]
    rows = [
        [
            r.parameter,
            r.current,
            r.recommended,
            r.status,
            r.formula,
            "; ".join(f"{k} = {v}" for k, v in r.inputs.items()),
        ]
        for r in report.rows
    ]
    lines.append(
        table(["PARAMETER", "CURRENT", "RECOMMENDED", "STATUS", "FORMULA", "INPUTS"], rows)
    )
    notes = [f"  {r.parameter}: {r.note}" for r in report.rows if r.note]
    if notes:
        lines += ["", "Notes:", *notes]
    storm = report.storm
    lines += ["", "Replication storm:", f"  {storm.get('text', '')}"]
    if storm.get("loops"):
        lines.append(f"  the engine predicts a full-resync loop: {storm.get('failure')}")
    for remedy in ("tree", "staggered"):
        if remedy in storm:
            lines.append(f"  remedy ({remedy}): {storm[remedy]['text']}")
    loop = report.resync_loop
    lines += ["", "Full-resync loop with today's settings:"]
    if loop.get("predicted"):
        lines.append(f"  PREDICTED: {loop.get('today')}")
        lines.append(
            "  avoided by: " + ", ".join(f"{k} {v}" for k, v in loop.get("settings", {}).items())
        )
        lines.append(f"  with them: {loop.get('with_settings')}")
    else:
        lines.append("  none predicted")
    return "\n".join(lines)
