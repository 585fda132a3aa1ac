"""Configuration drift: across the nodes of a replication group, and running vs file.

Pure: :class:`NodeConfig` snapshots in (what ``CONFIG GET *`` returned, the parsed
``redis.conf``, the version), a :class:`DriftReport` of plain findings out. The rules are
those of ``docs/drift.md`` (from checks-and-drift.md §3):

* **across nodes**, only the must-match parameters (:data:`MUST_MATCH`): any replica may
  become the master, so a smaller ``maxmemory``, another ``maxmemory-policy``, no persistence
  or a smaller backlog turns a failover into an outage. Per-node parameters (``port``,
  ``bind``, ``dir``, ``replicaof``...) are never compared. Versions are compared too: a
  replica cannot load a newer RDB;
* **running vs file**, per node, every key: a mutable key whose file value differs is a
  runtime change not persisted (lost at restart); an immutable one is a pending restart
  (``key: running -> file``); a file directive unknown to the version stops the next start
  ("Bad directive"); a running value off its default with no file line is a runtime change
  or a command-line override; ``replicaof`` is rewritten by REPLICAOF/Sentinel and only
  labelled.

Values are compared after :mod:`redisops.checks.normalise`; secrets (``requirepass``,
``masterauth``) are compared but shown as ``***`` (with a group number when they differ).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redisops.checks.normalise import (
    merge_obl,
    normalise,
    obl_class,
    obl_default,
    obl_text,
    save_pairs,
    save_text,
)
from redisops.checks.versions import FILE_ONLY, KeySpec, VersionTable, table_for
from redisops.redisconf import ConfigFile, canonical_name
from redisops.versions import rdb_format_of

CRITICAL, WARNING, INFO = "critical", "warning", "info"

#: Finding classes (the ``cls`` field; stable names for JSON consumers).
PEER_MISMATCH = "peer-mismatch"
VERSION_MISMATCH = "version-mismatch"
NOT_PERSISTED = "not-persisted"
PENDING_RESTART = "pending-restart"
UNKNOWN_DIRECTIVE = "unknown-directive"
COMMAND_LINE = "command-line"
FILE_ONLY_CLS = "file-only"
TOPOLOGY = "topology"
CONFIG_UNAVAILABLE = "config-unavailable"
FILE_UNAVAILABLE = "file-unavailable"
UNREACHABLE = "unreachable"

SECRETS = frozenset({"requirepass", "masterauth"})

#: Must match across master and replicas: key -> why it matters.
MUST_MATCH: dict[str, str] = {
    "requirepass": "after a switchover clients and siblings authenticate to the new master",
    "masterauth": "after a switchover the old master and siblings authenticate to the new master",
    "masteruser": "after a switchover the old master and siblings authenticate to the new master",
    "maxmemory": "a promoted replica with a smaller limit evicts or refuses writes at once",
    "maxmemory-policy": "a promoted replica evicts differently (or refuses writes)",
    "repl-backlog-size": "the promoted node's backlog decides whether its siblings resync partially",
    "client-output-buffer-limit": "replica buffer limit: a smaller one on the new master drops "
    "syncing replicas (full-resync loop)",
    "min-replicas-to-write": "master-side write safety changes on promotion",
    "min-replicas-max-lag": "master-side write safety changes on promotion",
    "save": "durability must not change with role (persistence only on replicas is the "
    "unsafe-master hazard after failover)",
    "appendonly": "durability must not change with role",
    "appendfsync": "durability must not change with role",
    "databases": "loading an RDB with more databases than configured is fatal",
    "hash-max-listpack-entries": "encodings are re-chosen on RDB load, so memory diverges",
    "hash-max-listpack-value": "encodings are re-chosen on RDB load, so memory diverges",
    "zset-max-listpack-entries": "encodings are re-chosen on RDB load, so memory diverges",
    "zset-max-listpack-value": "encodings are re-chosen on RDB load, so memory diverges",
    "list-max-listpack-size": "encodings are re-chosen on RDB load, so memory diverges",
    "set-max-listpack-entries": "encodings are re-chosen on RDB load, so memory diverges",
    "set-max-listpack-value": "encodings are re-chosen on RDB load, so memory diverges",
    "set-max-intset-entries": "encodings are re-chosen on RDB load, so memory diverges",
    "stream-node-max-bytes": "encodings are re-chosen on RDB load, so memory diverges",
    "stream-node-max-entries": "encodings are re-chosen on RDB load, so memory diverges",
    "rename-command": "commands propagate as sent: renamed or disabled on one side breaks "
    "replication (redis#2783)",
    "loadmodule": "a replica without the master's modules cannot load its data",
    "user": "ACL users must exist on whichever node becomes master",
}
#: Differences here are critical (the rest: warning).
CRITICAL_KEYS = frozenset(
    {"requirepass", "masterauth", "masteruser", "databases", "rename-command"}
)
#: Compared in the files (CONFIG GET cannot show them).
FILE_COMPARED = ("rename-command", "loadmodule", "user")
#: Never compared between nodes, nor against the default when missing from the file.
PER_NODE = frozenset(
    {
        "replicaof",
        "port",
        "bind",
        "replica-announce-ip",
        "replica-announce-port",
        "dir",
        "logfile",
        "pidfile",
        "unixsocket",
        "server_cpulist",
        "bio_cpulist",
        "aof_rewrite_cpulist",
        "bgsave_cpulist",
        "server-cpulist",
        "bio-cpulist",
        "aof-rewrite-cpulist",
        "bgsave-cpulist",
        "cluster-announce-ip",
        "cluster-announce-port",
        "cluster-announce-bus-port",
        "cluster-announce-tls-port",
        "cluster-announce-hostname",
        "tls-port",
        "replica-priority",
    }
)


@dataclass(frozen=True)
class NodeConfig:
    """One node's configuration as read: running (``CONFIG GET *``) and file."""

    node: str
    role: str = "unknown"  # master | replica | unknown
    server: str = "redis"
    version: str = ""
    reachable: bool = True
    error: str | None = None  # why the node could not be read at all
    running: Mapping[str, str] | None = None  # None: CONFIG unavailable
    running_error: str | None = None
    file: ConfigFile | None = None
    file_path: str | None = None
    file_error: str | None = None
    overrides: Mapping[str, str] | None = None  # command-line directives, when known


@dataclass(frozen=True)
class Finding:
    """One difference. ``values`` maps a node (or ``running``/``file``) to a shown value."""

    cls: str
    severity: str
    parameter: str
    node: str | None
    values: Mapping[str, str]
    message: str
    differs: tuple[str, ...] = ()
    fixable: bool = False  # --fix can bring it back (CONFIG SET and/or CONFIG REWRITE)

    def to_dict(self) -> dict[str, Any]:
        return {
            "class": self.cls,
            "severity": self.severity,
            "parameter": self.parameter,
            "node": self.node,
            "values": dict(self.values),
            "differs": list(self.differs),
            "fixable": self.fixable,
            "message": self.message,
        }


@dataclass(frozen=True)
class NodeSummary:
    node: str
    role: str
    version: str
    table: str  # the version table used ("redis 7.0.15", or "... (nearest)")
    config: str  # "CONFIG GET" or why not
    file: str | None
    file_status: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "role": self.role,
            "version": self.version,
            "table": self.table,
            "config": self.config,
            "file": self.file,
            "file_status": self.file_status,
        }


@dataclass(frozen=True)
class DriftReport:
    reference: str | None
    nodes: tuple[NodeSummary, ...]
    findings: tuple[Finding, ...] = field(default=())

    @property
    def drift(self) -> bool:
        """True when anything needs attention (info findings do not count)."""
        return any(f.severity != INFO and f.cls != UNREACHABLE for f in self.findings)

    @property
    def unreachable(self) -> list[str]:
        return [f.node for f in self.findings if f.cls == UNREACHABLE and f.node]

    def to_dict(self) -> dict[str, Any]:
        return {
            "drift": self.drift,
            "reference": self.reference,
            "nodes": [n.to_dict() for n in self.nodes],
            "findings": [f.to_dict() for f in self.findings],
        }


# ----------------------------------------------------------------------------- per node views


@dataclass
class _View:
    """A node's configuration normalised: comparison name -> value."""

    cfg: NodeConfig
    table: VersionTable
    exact: bool
    running: dict[str, str] | None
    file: dict[str, str]
    file_lines: dict[str, list[tuple[str, ...]]]

    @property
    def effective(self) -> dict[str, str] | None:
        """What the node runs with: CONFIG GET, or failing that defaults + file."""
        if self.running is not None:
            return self.running
        if self.cfg.file is None:
            return None
        out = {k: _norm(spec, spec.default) for k, spec in self.table.keys.items()}
        out.update(self.file)
        return out


def _norm(spec: KeySpec | None, value: str) -> str:
    return value if spec is None else normalise(spec.name, value, spec.type)


def _running_view(table: VersionTable, running: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in running.items():
        key = canonical_name(name)
        spec = table.spec(key)
        if spec is not None and name.lower() != spec.name and key in out:
            continue  # an alias: the server's own name wins
        out[key] = _norm(spec, value)
    return out


def _file_view(
    table: VersionTable, cfg: ConfigFile
) -> tuple[dict[str, str], dict[str, list[tuple[str, ...]]]]:
    """Normalised values of the keys the file sets (repeatable keys combined)."""
    lines: dict[str, list[tuple[str, ...]]] = {}
    for d in cfg.directives:
        lines.setdefault(d.name, []).append(d.args)
    out: dict[str, str] = {}
    for key, args_list in lines.items():
        spec = table.spec(key)
        if key in FILE_ONLY or spec is None:
            continue
        if spec.type == "save":
            out[key] = save_text(save_pairs(args_list))
        elif spec.type == "obl":
            try:
                base = merge_obl(obl_default(), [spec.default.split()])
                out[key] = obl_text(merge_obl(base, args_list))
            except ValueError:
                out[key] = " ".join(" ".join(a) for a in args_list)
        else:
            out[key] = _norm(spec, " ".join(args_list[-1]))
    return out, lines


def _view(cfg: NodeConfig) -> _View:
    table, exact = table_for(cfg.server, cfg.version)
    running = _running_view(table, cfg.running) if cfg.running is not None else None
    file, lines = _file_view(table, cfg.file) if cfg.file is not None else ({}, {})
    return _View(cfg, table, exact, running, file, lines)


# ----------------------------------------------------------------------------- shown values


def shown(key: str, value: str | None, spec: KeySpec | None = None) -> str:
    """A value as the report shows it: secrets hidden, bytes with a human size."""
    if value is None:
        return "-"
    if key in SECRETS:
        return "***" if value else "(none)"
    if spec is not None and spec.type == "memory" and value.isdigit() and int(value) >= 1024:
        return f"{value} ({_human(int(value))})"
    if value == "":
        return '""'
    return value


def _human(n: int) -> str:
    for unit, size in (("gb", 1 << 30), ("mb", 1 << 20), ("kb", 1 << 10)):
        if n >= size:
            q = n / size
            return f"{q:.0f}{unit}" if q == int(q) else f"{q:.1f}{unit}"
    return f"{n}b"


# ----------------------------------------------------------------------------- running vs file


def _file_findings(v: _View) -> list[Finding]:
    cfg = v.cfg
    out: list[Finding] = []
    if cfg.file is not None:
        for d in cfg.file.directives:
            if not v.table.accepts(d.written) and not (
                cfg.running is not None and d.written.lower() in cfg.running
            ):
                out.append(
                    Finding(
                        UNKNOWN_DIRECTIVE,
                        CRITICAL,
                        d.written,
                        cfg.node,
                        {"file": f"{d.file}:{d.lineno}"},
                        f"{d.file}:{d.lineno}: '{d.written}' is not a directive of "
                        f"{v.table.label}: the next start fails with 'Bad directive'",
                    )
                )
            elif d.name in FILE_ONLY and d.name != "include":
                out.append(
                    Finding(
                        FILE_ONLY_CLS,
                        INFO,
                        d.name,
                        cfg.node,
                        {"file": f"{d.file}:{d.lineno}"},
                        f"{d.name} is not visible to CONFIG GET: compared across the nodes' files",
                    )
                )
    if v.running is None or cfg.file is None:
        return out
    for key in sorted(set(v.running) | set(v.file)):
        found = _running_vs_file(v, key)
        if found is not None:
            out.append(found)
    return out


def _running_vs_file(v: _View, key: str) -> Finding | None:
    assert v.running is not None
    spec = v.table.spec(key)
    if spec is None or key in FILE_ONLY:
        return None
    node = v.cfg.node
    running = v.running.get(key)
    in_file = key in v.file
    if running is None:
        return None  # a file key CONFIG GET does not show (unknown ones are reported above)
    expected = v.file[key] if in_file else _norm(spec, spec.default)
    if key == "dir" and in_file:
        return _dir_finding(v, running, v.file[key])
    if running == expected:
        return None
    values = {"running": shown(key, running, spec), "file": shown(key, v.file.get(key), spec)}
    if not in_file:
        values["default"] = shown(key, expected, spec)
    if key == "replicaof":
        return Finding(
            TOPOLOGY,
            INFO,
            key,
            node,
            values,
            "replicaof is changed at runtime by REPLICAOF and Sentinel (which CONFIG REWRITE "
            "it): a topology matter, not drift",
        )
    overrides = v.cfg.overrides or {}
    if not in_file:
        if key in PER_NODE:
            return None  # per node by nature (port, bind, dir...): set where the node starts
        if key in overrides or spec.restart_needed:
            return Finding(
                COMMAND_LINE,
                INFO,
                key,
                node,
                values,
                f"{key} is {values['running']}, not in the file: set on the command line",
            )
        return Finding(
            NOT_PERSISTED,
            WARNING,
            key,
            node,
            values,
            f"{key} is {values['running']} but the file leaves it at the default "
            f"{values['default']}: a runtime change not persisted (or a command-line "
            f"override); a restart goes back to the default",
            fixable=True,
        )
    if spec.restart_needed:
        return Finding(
            PENDING_RESTART,
            WARNING,
            key,
            node,
            values,
            f"{key}: {values['running']} -> {values['file']} ({spec.cls}: the file's value "
            f"takes effect at the next restart)",
        )
    return Finding(
        NOT_PERSISTED,
        CRITICAL,
        key,
        node,
        values,
        f"{key} runs with {values['running']} but the file says {values['file']}: a runtime "
        f"change not persisted (CONFIG SET without CONFIG REWRITE); a restart reverts it",
        fixable=True,
    )


def _dir_finding(v: _View, running: str, filed: str) -> Finding | None:
    """``dir`` comes back absolute; a relative file value is relative to the start-up
    directory, which Redis leaves by chdir()ing into ``dir``: compare the tail."""
    want = posixpath.normpath(filed)
    got = posixpath.normpath(running)
    if got == want or (not posixpath.isabs(want) and got.endswith("/" + want.lstrip("./"))):
        return None
    if not posixpath.isabs(want) and want in (".", ""):
        return None
    return Finding(
        PENDING_RESTART,
        WARNING,
        "dir",
        v.cfg.node,
        {"running": running, "file": filed},
        f"dir: {running} -> {filed} (protected: the file's value takes effect at the next restart)",
    )


# ----------------------------------------------------------------------------- across nodes


def _cross_value(v: _View, key: str) -> str | None:
    eff = v.effective
    if key in FILE_COMPARED:
        return _file_only_value(v, key)
    if eff is None:
        return None
    value = eff.get(key)
    if value is None:
        spec = v.table.spec(key)
        return None if spec is None else _norm(spec, spec.default)
    if key == "client-output-buffer-limit":
        hard, soft, secs = obl_class(value)
        return f"replica {hard} {soft} {secs}"
    return value


def _file_only_value(v: _View, key: str) -> str | None:
    if v.cfg.file is None:
        return None
    lines = v.file_lines.get(key, [])
    if key == "rename-command":
        return " ".join(sorted(f"{a[0].lower()}={a[1] if len(a) > 1 else ''}" for a in lines))
    if key == "user":
        # the default user always exists (CONFIG REWRITE writes it out; a file may not)
        return " ".join(sorted({"default"} | {a[0] for a in lines if a}))
    return " ".join(sorted(" ".join(a) for a in lines))


def _shown_cross(key: str, value: str | None, spec: KeySpec | None, groups: list[str]) -> str:
    if value is None:
        return "?"
    if key in SECRETS:
        if not value:
            return "(none)"
        return "***" if len(groups) <= 1 else f"*** ({groups.index(value) + 1})"
    if key == "rename-command":
        # the new names are secrets of a kind (obscurity): show only what is renamed
        return (
            " ".join(
                f"{p.split('=')[0]}{' disabled' if p.endswith('=') else ' renamed'}"
                for p in value.split()
            )
            or "(none)"
        )
    if key == "client-output-buffer-limit":
        words = value.split()
        return f"replica {_human(int(words[1]))} {_human(int(words[2]))} {words[3]}"
    return shown(key, value, spec)


def _cross_findings(views: list[_View], ref: _View | None) -> list[Finding]:
    out: list[Finding] = []
    usable = [v for v in views if v.effective is not None or v.cfg.file is not None]
    if len(usable) < 2:
        return out
    for key, why in MUST_MATCH.items():
        values = {v.cfg.node: _cross_value(v, key) for v in usable}
        known = {n: val for n, val in values.items() if val is not None}
        if len(set(known.values())) <= 1:
            continue
        spec = next((s for v in usable if (s := v.table.spec(key)) is not None), None)
        groups = sorted(set(known.values()))
        ref_value = known.get(ref.cfg.node) if ref is not None else None
        if ref_value is None:
            ref_value = max(groups, key=lambda g: list(known.values()).count(g))
        differs = tuple(n for n, val in known.items() if val != ref_value)
        out.append(
            Finding(
                PEER_MISMATCH,
                CRITICAL if key in CRITICAL_KEYS else WARNING,
                key,
                None,
                {n: _shown_cross(key, val, spec, groups) for n, val in values.items()},
                why,
                differs,
                fixable=key not in FILE_COMPARED and key != "requirepass" and _mutable(usable, key),
            )
        )
    read_only = [
        v.cfg.node
        for v in usable
        if (eff := v.effective) is not None and eff.get("replica-read-only") == "no"
    ]
    if read_only:
        out.append(
            Finding(
                PEER_MISMATCH,
                WARNING,
                "replica-read-only",
                None,
                {v.cfg.node: (v.effective or {}).get("replica-read-only", "?") for v in usable},
                "should be yes everywhere: writes on a replica diverge and vanish at the next "
                "full sync",
                tuple(read_only),
                fixable=True,
            )
        )
    return out


def _mutable(views: Iterable[_View], key: str) -> bool:
    for v in views:
        spec = v.table.spec(key)
        if spec is None or spec.restart_needed:
            return False
    return True


def _version_findings(views: list[_View], ref: _View | None) -> list[Finding]:
    known = [v for v in views if v.cfg.version]
    labels = {v.cfg.node: f"{v.cfg.server} {v.cfg.version}" for v in known}
    if len(set(labels.values())) <= 1:
        return []
    masters = [v for v in known if v.cfg.role == "master"]
    top = ref if ref is not None and ref.cfg.version else (masters[0] if masters else None)
    older: list[str] = []
    if top is not None:
        top_rdb = rdb_format_of(top.cfg.server, top.cfg.version) or 0
        older = [
            v.cfg.node
            for v in known
            if v is not top
            and (rdb_format_of(v.cfg.server, v.cfg.version) or 0) < top_rdb
            and v.cfg.role != "master"
        ]
    top_label = labels.get(top.cfg.node) if top is not None else None
    differs = older or [n for n, lab in labels.items() if lab != top_label]
    message = "versions differ"
    if older:
        message = (
            f"{', '.join(older)} cannot load the RDB of {top.cfg.node if top else 'the master'} "
            f"(newer RDB format: 'Can't handle RDB format version'): upgrade replicas first, "
            f"switch over last"
        )
    return [
        Finding(
            VERSION_MISMATCH,
            CRITICAL if older else WARNING,
            "version",
            None,
            labels,
            message,
            tuple(differs),
        )
    ]


# ----------------------------------------------------------------------------- entry point


def _node_findings(v: _View) -> list[Finding]:
    cfg = v.cfg
    out: list[Finding] = []
    if cfg.running is None:
        out.append(
            Finding(
                CONFIG_UNAVAILABLE,
                WARNING,
                "CONFIG",
                cfg.node,
                {},
                f"CONFIG GET is unavailable ({cfg.running_error or 'unknown reason'}): only "
                f"its file is compared",
            )
        )
    if cfg.file is None:
        out.append(
            Finding(
                FILE_UNAVAILABLE,
                CRITICAL if cfg.file_error and "syntax" in cfg.file_error else WARNING,
                "config_file",
                cfg.node,
                {"file": cfg.file_path or "-"},
                cfg.file_error or "the node's config file could not be read",
            )
        )
    return out


def compare(configs: Sequence[NodeConfig], reference: str | None = None) -> DriftReport:
    """Every drift finding for one replication group (see the module docstring).

    ``reference`` names the node the others are measured against (default: the master).
    """
    out: list[Finding] = []
    views: list[_View] = []
    summaries: list[NodeSummary] = []
    for cfg in configs:
        if not cfg.reachable:
            out.append(
                Finding(
                    UNREACHABLE,
                    WARNING,
                    "node",
                    cfg.node,
                    {},
                    f"unreachable: {cfg.error or 'no answer'}; not compared",
                )
            )
            summaries.append(NodeSummary(cfg.node, "unknown", "", "-", "unreachable", None, "-"))
            continue
        v = _view(cfg)
        views.append(v)
        summaries.append(_summary(v))
    ref = _reference(views, reference)
    for v in views:
        out += _node_findings(v)
        out += _file_findings(v)
    out += _version_findings(views, ref)
    out += _cross_findings(views, ref)
    order = {CRITICAL: 0, WARNING: 1, INFO: 2}
    out.sort(key=lambda f: (order.get(f.severity, 3), f.node or "", f.parameter))
    return DriftReport(ref.cfg.node if ref else None, tuple(summaries), tuple(out))


def _reference(views: list[_View], reference: str | None) -> _View | None:
    if reference is not None:
        for v in views:
            if v.cfg.node == reference:
                return v
        return None
    masters = [v for v in views if v.cfg.role == "master"]
    return masters[0] if masters else (views[0] if views else None)


def _summary(v: _View) -> NodeSummary:
    cfg = v.cfg
    table = v.table.label + ("" if v.exact else " (nearest)")
    status = "read" if cfg.file is not None else (cfg.file_error or "not read")
    return NodeSummary(
        cfg.node,
        cfg.role,
        f"{cfg.server} {cfg.version}".strip(),
        table,
        "CONFIG GET" if cfg.running is not None else (cfg.running_error or "unavailable"),
        cfg.file_path,
        status,
    )
