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


# ----------------------------------------------------------------------------- width

#: narrowest width anything is laid out for (a smaller COLUMNS is taken as this)
MIN_WIDTH = 40


def terminal_width() -> int:
    """Columns to lay text out in: ``COLUMNS`` if set, else the terminal's, else 80."""
    import shutil

    return max(shutil.get_terminal_size((80, 24)).columns, MIN_WIDTH)


def wrap(text: str, width: int, first: str = "", rest: str | None = None) -> list[str]:
    """``text`` as lines of at most ``width`` columns, broken between words; ``first``
    prefixes the first line, ``rest`` (default: spaces as wide as ``first``) the others.
    A word longer than a whole line is cut (nothing else could keep it inside the width).

    >>> wrap("a replica that lags behind", 12, "- ")
    ['- a replica', '  that lags', '  behind']
    """
    import textwrap

    rest = " " * len(first) if rest is None else rest
    return textwrap.wrap(
        text,
        width=max(width, len(first) + 8, len(rest) + 8),
        initial_indent=first,
        subsequent_indent=rest,
        break_long_words=True,
        break_on_hyphens=False,
    ) or [first.rstrip()]


_GAP = 2  # tabulate's "simple" format puts two spaces between columns
_HEADER_PAD = 2  # and makes a column at least its header plus two wide


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], width: int | None = None) -> str:
    """A table no wider than ``width`` (the terminal's by default).

    Too wide, the widest columns are narrowed and their cells wrapped on word boundaries
    (tabulate draws multi-line cells); when even that cannot fit (columns narrower than
    their headers), each row becomes a block of ``HEADER: value`` lines instead.
    """
    from tabulate import tabulate

    width = terminal_width() if width is None else width
    cells = [[str(_dash(c)) for c in r] for r in rows]
    natural = [len(h) + _HEADER_PAD for h in headers]
    longest_word = [0] * len(headers)
    prose = [False] * len(headers)
    for r in cells:
        for i, c in enumerate(r):
            words = c.split()
            natural[i] = max(natural[i], max((len(x) for x in c.splitlines()), default=0))
            longest_word[i] = max(longest_word[i], max(map(len, words), default=0))
            prose[i] = prose[i] or len(words) >= _PROSE_WORDS
    narrowest = [max(len(h) + _HEADER_PAD, 8) for h in headers]
    # first try to keep the words of the other columns whole (an address, a backup id, a
    # check id), the longest words first given up (prose wraps between its words anyway),
    # then allow breaking any, then give up on columns
    for cap in (*_WORD_CAPS, 0):
        floor = [
            n if p else max(n, min(w, cap))
            for n, w, p in zip(narrowest, longest_word, prose, strict=True)
        ]
        widths = _narrowed(natural, floor, width)
        if widths is not None:
            fitted = [["\n".join(_wrap_cell(c, widths[i])) for i, c in enumerate(r)] for r in cells]
            return tabulate(fitted, headers=list(headers), tablefmt="simple", disable_numparse=True)
    return _records(headers, cells, width)


#: word lengths kept whole, tried in turn (see :func:`table`)
_WORD_CAPS = (40, 32, 24, 16)
#: a cell of this many words or more makes its column prose: it wraps between words
_PROSE_WORDS = 4


def _narrowed(natural: list[int], floor: list[int], width: int) -> list[int] | None:
    """Column widths that fit ``width``: the widest columns (above their floor) narrowed
    first; None when even the floors do not fit."""
    widths = list(natural)
    gaps = _GAP * (len(widths) - 1)
    while sum(widths) + gaps > width:
        i = max(range(len(widths)), key=lambda j: widths[j] - floor[j])
        if widths[i] <= floor[i]:
            return None
        widths[i] -= 1
    return widths


def _wrap_cell(text: str, width: int) -> list[str]:
    out: list[str] = []
    for part in text.splitlines() or [""]:
        out += wrap(part, width) if len(part) > width else [part]
    return out


def _records(headers: Sequence[str], cells: list[list[str]], width: int) -> str:
    """One block per row, ``HEADER: value``: the layout of last resort for narrow terminals."""
    label = max(len(h) for h in headers) + 2
    blocks = []
    for r in cells:
        lines: list[str] = []
        for h, c in zip(headers, r, strict=False):
            lines += wrap(c, width, f"{h + ':':<{label}}", " " * label)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


# ----------------------------------------------------------------------------- status


def status_data(topo: Topology) -> dict[str, Any]:
    data: dict[str, Any] = {
        "nodes": [topo.record(n) for n in topo.nodes],
        "problems": [p.to_dict() for p in topo.problems],
    }
    if topo.sentinel is not None:
        data["sentinel"] = dict(topo.sentinel)
    return data


def _tree_label(topo: Topology, node: NodeInfo, mixed: bool) -> str:
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
            parts.append("syncing " + _sync_bytes(node))
        elif node.repl_state and node.repl_state != "connected":
            parts.append(node.repl_state)
    if node.server is not None and mixed:  # a migration or upgrade under way
        fmt_ = topo.record(node)["rdb_format"]
        parts.append(f"{node.server}" + (f", RDB {fmt_}" if fmt_ is not None else ""))
    return f"{node.address}  ({', '.join(parts)})"


def _sync_bytes(node: NodeInfo) -> str:
    """``12.0M/40.0M`` during a disk-based transfer, ``12.0M`` received in a diskless one
    (whose size is not known until it ends)."""
    p = node.sync_progress or {}
    read, total = p.get("read_bytes"), p.get("total_bytes")
    if total is not None and total > 0:
        return f"{human_bytes(read)}/{human_bytes(total)}"
    return f"{human_bytes(read)} received"


def render_tree(topo: Topology, width: int | None = None) -> str:
    """Masters with their replicas below them, chained replicas indented further; a line
    too long for ``width`` continues under its own label."""
    width = terminal_width() if width is None else width
    lines: list[str] = []
    placed: set[Any] = set()
    mixed = mixed_servers(topo)  # then each label names its node's server

    def visit(node: NodeInfo, prefix: str, last: bool, top: bool) -> None:
        placed.add(node.address)
        label = _tree_label(topo, node, mixed)
        if top:
            lines.extend(wrap(label, width, "", "    "))
            child_prefix = ""
        else:
            child_prefix = prefix + ("    " if last else "│   ")
            lines.extend(
                wrap(label, width, f"{prefix}{'└── ' if last else '├── '}", child_prefix + "    ")
            )
        kids = [k for k in topo.children(node) if k.address not in placed]
        for i, kid in enumerate(kids):
            visit(kid, child_prefix, i == len(kids) - 1, False)

    for root in topo.roots():
        if root.address in placed:
            continue
        if root.is_replica and topo.parent(root) is None:
            lines.extend(wrap(f"{root.master_address}  (master not reached)", width))
            visit(root, "", True, False)
        else:
            visit(root, "", True, True)
    return "\n".join(lines)


#: every column (``-o wide``)
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

#: the default columns: what an operator reads first (kubectl's compact/wide split)
STATUS_COMPACT_HEADERS = ("ADDRESS", "ROLE", "MASTER", "LINK", "LAG", "OFFSET")


def _unreachable_role(node: NodeInfo) -> str:
    """What stands in a table's ROLE column for a node that could not be read: the cause."""
    if node.service == "not-redis":
        return "not-redis"
    return {
        "auth": "auth-failed",
        "not_redis": "not-redis",
        "no_reply": "no-reply",
        "down": "down",
    }.get(node.error_kind or "", "unreachable")


def _link_text(node: NodeInfo) -> str | None:
    link = node.link
    if link == "down" and node.link_down_seconds is not None and node.link_down_seconds >= 0:
        link = f"down {node.link_down_seconds}s"
    return link


def _sync_text(node: NodeInfo) -> str | None:
    if node.loading:
        return "loading"
    if node.sync_in_progress:
        p = node.sync_progress or {}
        if (p.get("total_bytes") or 0) > 0:
            return f"transfer {p.get('perc', 0):.0f}%"
        return "transfer " + _sync_bytes(node)
    if node.is_replica:
        return node.repl_state or "-"
    return None


def mixed_servers(topo: Topology) -> bool:
    """Whether the reachable members run different servers or versions (a migration, an
    upgrade under way): then the tree names each node's server and RDB format."""
    return len({str(n.server) for n in topo.nodes if n.reachable and n.server is not None}) > 1


def status_compact_rows(topo: Topology) -> list[list[Any]]:
    """Address, role, master, link (or the sync under way), lag, offset. (When the members
    run different servers, the tree above the table names each node's.)"""
    rows: list[list[Any]] = []
    for node in topo.nodes:
        rec = topo.record(node)
        if not node.reachable:
            rows.append([rec["address"], _unreachable_role(node), None, None, None, None])
            continue
        link = _link_text(node)
        if node.loading or node.sync_in_progress:
            link = f"{link} ({_sync_text(node)})"
        lag = rec["lag_bytes"]
        lag_text = None if lag is None else human_bytes(lag)
        if lag_text is not None and rec["lag_seconds"] is not None:
            lag_text += f" {rec['lag_seconds']}s"
        rows.append([rec["address"], node.role, rec["master"], link, lag_text, node.offset])
    return rows


def status_rows(topo: Topology) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for node in topo.nodes:
        rec = topo.record(node)
        if not node.reachable:
            rows.append(
                [rec["address"], _unreachable_role(node)] + [None] * (len(STATUS_HEADERS) - 2)
            )
            continue
        brange = node.backlog_range
        rows.append(
            [
                rec["address"],
                node.role,
                rec["master"],
                _link_text(node),
                node.offset,
                rec["lag_bytes"],
                rec["lag_seconds"],
                node.last_io_seconds,
                _sync_text(node),
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


def render_problems(problems: Sequence[Any], width: int | None = None) -> str:
    width = terminal_width() if width is None else width
    if not problems:
        return "No problems found."
    lines = [f"{len(problems)} problem{'s' if len(problems) != 1 else ''}:"]
    for p in problems:
        lines += wrap(f"[{p.severity.upper()}] {p.kind}: {p.message}", width, "  ", "      ")
    return "\n".join(lines)


def render_status(topo: Topology, fmt: Format, width: int | None = None) -> str:
    """The tree, the table (compact, or every column with ``-o wide``), the Sentinel view
    and the problems, each fitted to ``width`` (the terminal's by default)."""
    if fmt is Format.json:
        return to_json(status_data(topo))
    width = terminal_width() if width is None else width
    if fmt is Format.wide:
        grid = table(STATUS_HEADERS, status_rows(topo), width)
    else:
        grid = table(STATUS_COMPACT_HEADERS, status_compact_rows(topo), width)
    parts = [render_tree(topo, width), "", grid]
    if topo.sentinel is not None:
        parts += ["", render_sentinel(topo.sentinel, width)]
    parts += ["", render_problems(topo.problems, width)]
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
    # off a terminal every line gets a two-column mark ("* " or "  "): leave room for it
    width = terminal_width() - (0 if tty else 2)
    for line in render_status(topo, fmt, width).splitlines():
        hit = any(line.lstrip("│├└─ ").startswith(a) for a in changed)
        if hit:
            line = f"{REVERSE}{line}{RESET}" if tty else f"* {line}"
        elif not tty and changed:
            line = f"  {line}"
        lines.append(line)
    body = "\n".join([header, "", *lines]) + "\n"
    return HOME_CLEAR + body if tty else body + "\n"


def render_sentinel(view: Any, width: int | None = None) -> str:
    width = terminal_width() if width is None else width
    name = view.get("name")
    head = (
        f"Sentinel view of {name!r}: master {view.get('master') or '?'}"
        if name
        else "Sentinel view: no master name (no sentinel answered; see the problems below)"
    )
    lines = wrap(head, width)
    for s in view.get("sentinels", []):
        lines += wrap(f"{s.get('address')}: {s.get('status')}", width, "  ", "      ")
    if view.get("quorum"):
        lines += wrap(f"quorum: {view['quorum']}", width, "  ", "      ")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- plans


_LEVEL_MARK = {"refuse": "REFUSED", "confirm": "NEEDS --yes", "warn": "WARNING", "info": "note"}


def render_plan(plan: Any, force: bool = False, width: int | None = None) -> str:
    """A plan for people: summary, findings, then the steps as a numbered list (each step's
    node and what it does, with its exact command and its check indented below), then the
    prediction; every line fitted to ``width``."""
    width = terminal_width() if width is None else width
    lines = wrap(plan.summary or plan.operation, width)
    if plan.findings:
        lines.append("")
        lines.append("Preflight:")
        for f in plan.findings:
            mark = _LEVEL_MARK.get(f.level, f.level)
            if f.level == "refuse" and force and f.forceable:
                mark = "OVERRIDDEN (--force)"
            lines += wrap(f"[{mark}] {f.message}", width, "  ", "      ")
    if plan.steps:
        lines.append("")
        lines.append("Steps:")
        lines += render_steps(plan.steps, width)
    pred = plan.prediction
    if pred:
        lines.append("")
        lines.append(render_prediction(pred, width))
    return "\n".join(lines)


def render_steps(steps: Sequence[Any], width: int) -> list[str]:
    """``  3. 10.0.0.2:6379: point it at ...`` then ``command:`` and ``verify:`` lines."""
    digits = len(str(max((s.n for s in steps), default=1)))
    head_indent = " " * (digits + 4)
    sub = head_indent + " " * 9
    lines: list[str] = []
    for s in steps:
        lines += wrap(f"{s.node}: {s.description}", width, f"  {s.n:>{digits}}. ", head_indent)
        if s.command:
            lines += wrap(" ".join(s.command), width, f"{head_indent}command: ", sub)
        if s.verify:
            lines += wrap(s.verify, width, f"{head_indent}verify:  ", sub)
    return lines


def render_prediction(pred: Any, width: int | None = None) -> str:
    width = terminal_width() if width is None else width
    lines = ["Prediction (reference engine):"]

    def add(text: str, indent: str = "  ") -> None:
        lines.extend(wrap(text, width, indent, indent + "    "))

    sync = pred.get("sync")
    if sync in ("full", "partial") and pred.get("replica"):
        add(
            f"{pred.get('replica', '')} <- {pred.get('master', '')}: {sync.upper()} resync, "
            f"{human_bytes(pred.get('transfer_bytes'))}, ~{human_seconds(pred.get('estimated_seconds'))}"
        )
    if pred.get("reason"):
        add(f"why: {pred['reason']}")
    for p in pred.get("phases", []):
        add(f"{p['phase']}: {human_seconds(p['seconds'])}", "    ")
    if pred.get("peak_output_buffer"):
        add(f"peak replica output buffer: {human_bytes(pred['peak_output_buffer'])}")
    for f in pred.get("followers", []):
        add(f"then {f['replica']} <- {f['master']}: {f['sync']} ({f['reason']})")
    for extra in pred.get("replicas", []):
        add(f"{extra['replica']} <- {extra['master']}: {extra['sync']} ({extra['reason']})")
    for r in dict.fromkeys(pred.get("risks", [])):  # one line per distinct risk
        add(f"risk: {r}")
    for n in pred.get("notes", []):  # what the model does or does not cover for these servers
        add(f"note: {n}")
    return "\n".join(lines)


def render_result(result: Any, width: int | None = None) -> str:
    width = terminal_width() if width is None else width
    lines = ["", *wrap(f"Result: {result.outcome} - {result.message}", width, "", "    ")]
    rows = [[s.n, s.node, s.action, s.result, s.detail] for s in result.steps]
    if rows:
        lines.append(table(["#", "NODE", "ACTION", "RESULT", "DETAIL"], rows, width))
    obs = result.observed
    if "prediction_check" in obs:
        lines += wrap(f"Verification: {obs['prediction_check']}", width, "", "    ")
    if "pause_ms" in obs:
        lines.append(f"Writes paused for {obs['pause_ms']:.1f} ms")
    if obs.get("prediction_recheck", "").startswith("the prediction changed"):
        lines += wrap(f"Re-check: {obs['prediction_recheck']}", width, "", "    ")
    if isinstance(obs.get("sync_duration"), dict):
        lines += wrap(duration_line(obs["sync_duration"]), width, "", "    ")
    for w in result.warnings:
        lines += wrap(f"warning: {w}", width, "", "    ")
    if obs.get("interrupt_note"):  # a wait was cut short: what goes on without redisops
        lines += wrap(f"Note: {obs['interrupt_note']}", width, "", "    ")
    if result.final_state:
        lines.append("State now:")
        for n in result.final_state:
            lines += wrap(state_line(n), width, "  ", "      ")
    return "\n".join(lines)


def duration_line(d: dict[str, Any]) -> str:
    """What the sync took beside what was predicted.

    >>> duration_line({"measured_seconds": 12.3, "predicted_seconds": 8.1,
    ...                "measured_rdb_bytes": 11_000_000, "predicted_bytes": 10_500_000})
    'Sync took 12.3s (predicted ~8.1s); RDB 10.5M (estimated 10.0M)'
    """
    text = f"Sync took {human_seconds(d.get('measured_seconds'))}"
    if d.get("predicted_seconds") is not None:
        text += f" (predicted ~{human_seconds(d['predicted_seconds'])})"
    if d.get("measured_rdb_bytes"):
        text += f"; RDB {human_bytes(d['measured_rdb_bytes'])}"
        if d.get("predicted_bytes"):
            text += f" (estimated {human_bytes(d['predicted_bytes'])})"
    return text


def state_line(n: dict[str, Any]) -> str:
    """One node of a result's final state, for people."""
    if not n.get("reachable"):
        return f"{n['address']}: UNREACHABLE ({n.get('error')})"
    where = f" of {n['master']} (link {n['link']})" if n.get("master") else ""
    sync = f"; {n['sync']}" if n.get("sync") else ""
    return f"{n['address']}: {n['role']}{where}, offset {n['offset']}{sync}"


# ----------------------------------------------------------------------------- progress

_SPIN = "|/-\\"


def progress_text(
    label: str,
    done: float,
    total: float | None,
    rate: float | None,
    elapsed: float,
    tick: int = 0,
    width: int = 80,
) -> str:
    """One progress line. With a known total: a bar, the percentage, bytes, rate and ETA.
    Without one (a diskless transfer, a fork being waited for) a spinner and what is known:
    bytes so far and their rate, or the time spent; never a made-up total.

    >>> progress_text("transfer", 5 * 2**20, 20 * 2**20, 2**20, 5.0, width=80)
    '  transfer     [#####..................]   25.0%  5.0M/20.0M  1.0M/s  ETA 15.0s'
    >>> progress_text("transfer", 3 * 2**20, None, 2**20, 3.0, tick=1)
    '  transfer     / 3.0M received  1.0M/s'
    >>> progress_text("handshake", 0, None, None, 2.0)
    '  handshake    | 2.0s'
    """
    speed = f"  {human_bytes(rate)}/s" if rate else ""
    if total is not None and total > 0:
        frac = max(0.0, min(done / total, 1.0))
        eta = ""
        if rate and done < total:
            eta = f"  ETA {human_seconds((total - done) / rate)}"
        tail = f"{frac * 100:6.1f}%  {human_bytes(done)}/{human_bytes(total)}{speed}{eta}"
        room = width - len(f"  {label:<12} []") - len(tail) - 2
        bars = max(min(room, 28), 5)
        bar = "#" * int(frac * bars)
        text = f"  {label:<12} [{bar:.<{bars}}] {tail}"
    elif done > 0:
        text = f"  {label:<12} {_SPIN[tick % 4]} {human_bytes(done)} received{speed}"
    else:
        text = f"  {label:<12} {_SPIN[tick % 4]} {human_seconds(elapsed)}"
    return text[: max(width - 1, 10)]


class _Meter:
    """Rate over the last few seconds of one phase's samples, and the phase's age."""

    def __init__(self, window: float = 3.0) -> None:
        import time

        self._clock = time.monotonic
        self.window = window
        self.label = ""
        self.started = self._clock()
        self.samples: list[tuple[float, float]] = []

    def add(self, label: str, done: float) -> tuple[float | None, float]:
        now = self._clock()
        if label != self.label:
            self.label, self.started, self.samples = label, now, []
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[1][0] >= self.window:
            self.samples.pop(0)
        t0, d0 = self.samples[0]
        rate = (done - d0) / (now - t0) if now - t0 > 0.2 and done > d0 else None
        return rate, now - self.started


class LineProgress:
    """Plain progress lines on stderr (not a terminal): a line when a phase starts, then
    one every ``every`` seconds with its bytes, rate and ETA."""

    def __init__(self, every: float = 10.0) -> None:
        self._meter = _Meter()
        self._every = every
        self._printed = -1.0

    def phase(self, text: str) -> None:
        note("\n".join(wrap(text, terminal_width(), "", "    ")))

    def update(self, label: str, done: float, total: float | None) -> None:
        new = label != self._meter.label
        rate, age = self._meter.add(label, done)
        if new or age - self._printed >= self._every:
            self._printed = 0.0 if new else age
            note(progress_text(label, done, total, rate, age, width=terminal_width()).rstrip())

    def finish(self) -> None:
        self._meter = _Meter()
        self._printed = -1.0


class TerminalProgress(LineProgress):
    """A one-line progress display on a terminal, redrawn in place."""

    def __init__(self) -> None:
        super().__init__()
        self._tick = 0
        self._drawn = 0

    def update(self, label: str, done: float, total: float | None) -> None:
        rate, age = self._meter.add(label, done)
        self._tick += 1
        width = terminal_width()
        text = progress_text(label, done, total, rate, age, self._tick, width)
        sys.stderr.write("\r" + text.ljust(self._drawn))
        self._drawn = len(text)
        sys.stderr.flush()

    def phase(self, text: str) -> None:
        self.finish()
        super().phase(text)

    def finish(self) -> None:
        if self._drawn:
            sys.stderr.write("\r" + " " * self._drawn + "\r")
            sys.stderr.flush()
        self._drawn = 0
        self._meter = _Meter()


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
