"""``drift``: read every node's running configuration and config file, compare, and fix.

Reading (:func:`read_configs`) happens concurrently, one connection per node: ``INFO
server`` (version, ``config_file``) and ``CONFIG GET *`` in one round trip, then the config
file through the node's :class:`~redisops.host.Host` (this machine directly, another over
SSH), ``include`` lines followed on the same host. The comparison itself is pure
(:mod:`redisops.checks.drift`).

The fix (:func:`plan_fix`) is a plan for the executor: ``CONFIG SET`` of every drifted
mutable must-match key to the reference node's value (read from it when the step runs, so
no secret is ever in the plan), ``CONFIG REWRITE`` on every node changed or carrying a
runtime change not persisted (falling back to an edit of its file through its host when
REWRITE fails), then a verification that runs the comparison again. Keys that need a
restart, unknown directives and passwords are listed, not touched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from redisops.checks import drift as checks
from redisops.checks.versions import table_for
from redisops.errors import CommandFailed, RedisopsError, VerifyFailed
from redisops.host import Host, HostUnavailable
from redisops.info import parse_info
from redisops.inventory import Secret
from redisops.model import Address, Finding, NodeInfo, Plan, Step, Topology
from redisops.ops.common import lock_steps, unlock_step
from redisops.plan import RunContext, action, remembered, run_config_rewrite, undo
from redisops.redisconf import (
    ConfigFile,
    ConfigSyntaxError,
    Globber,
    Reader,
    parse_config,
)
from redisops.session import Session

MAX_READERS = 32


# ----------------------------------------------------------------------------- reading


def host_reader(host: Host) -> tuple[Reader, Globber]:
    """A (reader, globber) pair for :func:`redisops.redisconf.parse_config` on ``host``."""

    def read(path: str) -> str:
        return host.read_bytes(path).decode("utf-8", "replace")

    def glob(pattern: str) -> list[str]:
        # the pattern is an argument, expanded by the shell's pathname expansion only
        script = 'for f in $1; do [ -e "$f" ] && printf "%s\\0" "$f"; done; exit 0'
        result = host.run(["sh", "-c", script, "sh", pattern], timeout=10.0)
        return [p for p in result.stdout.decode("utf-8", "replace").split("\0") if p]

    return read, glob


def read_file(session: Session, address: Address, path: str) -> ConfigFile:
    """Parse the config file ``path`` of the node at ``address``, includes followed."""
    host = session.host(address)
    reader, globber = host_reader(host)
    return parse_config(reader(path), path, reader=reader, globber=globber)


def read_node(
    session: Session, node: NodeInfo, config_file: str | None = None
) -> checks.NodeConfig:
    """One node's :class:`~redisops.checks.drift.NodeConfig`; never raises for I/O."""
    name = str(node.address)
    if not node.reachable:
        return checks.NodeConfig(name, reachable=False, error=node.error)
    try:
        with session.fresh_node(node.address) as conn:
            info_reply, config_reply = conn.pipeline(
                [("INFO", "server"), ("CONFIG", "GET", "*")], raise_errors=False
            )
    except RedisopsError as exc:
        return checks.NodeConfig(name, reachable=False, error=exc.message)
    info = parse_info(str(info_reply)) if not isinstance(info_reply, CommandFailed) else {}
    server = info.get("server_name") or "redis"
    version = info.get(f"{server}_version") or info.get("redis_version", "")
    running: dict[str, str] | None = None
    running_error: str | None = None
    if isinstance(config_reply, CommandFailed):
        running_error = _config_error(config_reply.message)
    else:
        items = [str(x) for x in config_reply]
        running = dict(zip(items[::2], items[1::2], strict=False))
    settings = session.ssh_settings(node.address)
    inventory_file = settings.config_file if settings is not None else None
    path = config_file or inventory_file or info.get("config_file") or None
    file: ConfigFile | None = None
    file_error: str | None = None
    if path is None:
        file_error = "started without a config file (INFO config_file is empty)"
    else:
        try:
            file = read_file(session, node.address, path)
        except HostUnavailable as exc:
            file_error = f"{exc.message} (or give --config-file {name}=PATH for a local copy)"
        except ConfigSyntaxError as exc:
            file_error = f"syntax error: {exc.message} (Redis refuses to start with this file)"
        except RedisopsError as exc:
            file_error = exc.message
    return checks.NodeConfig(
        name,
        role=node.role,
        server=server,
        version=version,
        running=running,
        running_error=running_error,
        file=file,
        file_path=path,
        file_error=file_error,
    )


def _config_error(message: str) -> str:
    low = message.lower()
    if "unknown command" in low:
        return "CONFIG is renamed or disabled (rename-command)"
    if "noperm" in low or "no permissions" in low:
        return "this user may not run CONFIG GET (ACL)"
    return message.split("failed: ", 1)[-1]


def read_configs(
    session: Session, nodes: Sequence[NodeInfo], config_files: Mapping[str, str]
) -> list[checks.NodeConfig]:
    """Every node's configuration, read concurrently (order kept)."""
    if not nodes:
        return []
    workers = max(1, min(MAX_READERS, len(nodes)))
    with ThreadPoolExecutor(workers, thread_name_prefix="drift-read") as pool:
        return list(
            pool.map(lambda n: read_node(session, n, config_files.get(str(n.address))), nodes)
        )


def drift_report(
    session: Session,
    topo: Topology,
    *,
    reference: str | None = None,
    config_files: Mapping[str, str] | None = None,
) -> tuple[list[checks.NodeConfig], checks.DriftReport]:
    configs = read_configs(session, list(topo.nodes), config_files or {})
    return configs, checks.compare(configs, reference)


# ----------------------------------------------------------------------------- the fix


def plan_fix(
    topo: Topology,
    configs: Sequence[checks.NodeConfig],
    report: checks.DriftReport,
    cluster: str,
    reference: str,
    config_files: Mapping[str, str] | None = None,
) -> Plan:
    """The plan that brings the fixable findings back (see the module docstring)."""
    by_node = {c.node: c for c in configs}
    ref = by_node.get(reference)
    findings: list[Finding] = []
    if ref is None or not ref.reachable or ref.running is None:
        why = "is not in the group" if ref is None else "cannot be read with CONFIG GET"
        findings.append(
            Finding("refuse", "reference", f"reference node {reference} {why}", reference)
        )
        return Plan("drift-fix", cluster, (), tuple(findings), summary="nothing can be fixed")
    sets: list[Step] = []
    persist: dict[str, list[str]] = {}
    for f in report.findings:
        if f.cls == checks.PEER_MISMATCH and f.fixable:
            for node in f.differs:
                step = _set_step(by_node, ref, node, f.parameter, len(sets), findings)
                if step is not None:
                    sets.append(step)
                    persist.setdefault(node, []).append(str(step.args["key"]))
        elif f.cls == checks.NOT_PERSISTED and f.node:
            cfg = by_node[f.node]
            own = table_for(cfg.server, cfg.version)[0].own_name(f.parameter)
            persist.setdefault(f.node, []).append(own)
        else:
            manual = _manual(f, by_node)
            if manual is not None:
                findings.append(manual)
    if not sets and not persist:
        return Plan(
            "drift-fix",
            cluster,
            (),
            tuple(findings),
            summary="nothing --fix can change: "
            + ("see the notes" if findings else "no fixable drift"),
            nothing_to_do=True,
        )
    master = _master(topo) or reference
    steps = [lock_steps(master, 1)]
    for s in sets:
        steps.append(_renumber(s, len(steps) + 1))
    for node, keys in persist.items():
        steps.append(_persist_step(len(steps) + 1, node, keys, by_node[node]))
    nodes = [str(n.address) for n in topo.nodes]
    steps.append(
        Step(
            len(steps) + 1,
            reference,
            "drift-verify",
            "run drift again: no fixable finding may remain",
            verify="the comparison finds nothing --fix could have changed",
            args={
                "nodes": nodes,
                "roles": {str(n.address): n.role for n in topo.nodes},
                "reference": reference,
                "config_files": dict(config_files or {}),
            },
        )
    )
    steps.append(unlock_step(master, len(steps) + 1))
    touched = tuple(dict.fromkeys([s.node for s in sets] + list(persist)))
    summary = (
        f"set {len(sets)} value(s) to {reference}'s and persist them on "
        f"{len(persist)} node(s); then verify with drift"
    )
    return Plan(
        "drift-fix", cluster, tuple(steps), tuple(findings), summary=summary, touched=touched
    )


def _settable(f: checks.Finding, by_node: Mapping[str, checks.NodeConfig]) -> bool:
    """Whether --fix could have changed ``f``: some node it concerns answers CONFIG (a node
    whose CONFIG is renamed away is left to its file and a restart, as the plan says)."""
    nodes = [f.node] if f.node else list(f.differs)
    return any(
        (c := by_node.get(n)) is not None and c.reachable and c.running is not None for n in nodes
    )


def _master(topo: Topology) -> str | None:
    masters = topo.masters
    return str(masters[0].address) if masters else None


def _renumber(step: Step, n: int) -> Step:
    return Step(
        n,
        step.node,
        step.action,
        step.description,
        step.command,
        step.precondition,
        step.verify,
        step.rollback,
        step.idempotent,
        step.commit,
        step.args,
    )


def _set_step(
    by_node: Mapping[str, checks.NodeConfig],
    ref: checks.NodeConfig,
    node: str,
    param: str,
    n: int,
    findings: list[Finding],
) -> Step | None:
    target = by_node.get(node)
    if target is None or not target.reachable or target.running is None:
        findings.append(
            Finding(
                "warn",
                "manual",
                f"{param} on {node}: CONFIG is unavailable there; change its file and restart",
                node,
            )
        )
        return None
    t_table = table_for(target.server, target.version)[0]
    r_table = table_for(ref.server, ref.version)[0]
    key = t_table.own_name(param)
    if param == "replica-read-only":
        shown = "yes"
    elif param in checks.SECRETS:
        shown = "***"
    else:
        shown = f"<{ref.node}'s value>"
    return Step(
        n,
        node,
        "config-copy",
        f"set {param} on {node} to "
        + ("yes" if param == "replica-read-only" else f"the value on {ref.node}"),
        command=("CONFIG", "SET", key, shown),
        precondition=f"{ref.node} answers CONFIG GET {r_table.own_name(param)}",
        verify=f"CONFIG GET {key} on {node} equals the value on {ref.node}",
        rollback=("CONFIG", "SET", key, "***"),
        args={
            "key": key,
            "param": param,
            "reference": ref.node,
            "reference_key": r_table.own_name(param),
            "rollback_secret": (3, remembered(node, key)),
        },
    )


def _persist_step(n: int, node: str, keys: list[str], cfg: checks.NodeConfig) -> Step:
    what = ", ".join(dict.fromkeys(keys))
    fallback = f" (or edit {cfg.file_path} through its host)" if cfg.file_path else ""
    return Step(
        n,
        node,
        "persist-config",
        f"persist {what} in {node}'s config file: CONFIG REWRITE{fallback}",
        command=("CONFIG", "REWRITE"),
        verify="the file's values equal the running ones (checked by the verify step)",
        args={"keys": list(dict.fromkeys(keys)), "file": cfg.file_path},
    )


def _manual(f: checks.Finding, by_node: Mapping[str, checks.NodeConfig]) -> Finding | None:
    if f.severity == checks.INFO or f.cls in (checks.UNREACHABLE,):
        return None
    node = f.node or ", ".join(f.differs)
    if f.cls == checks.PENDING_RESTART:
        cfg = by_node.get(f.node or "")
        how = "a switchover first, then a restart" if cfg and cfg.role == "master" else "a restart"
        return Finding("warn", "restart", f"{f.message}: needs {how}", f.node)
    if f.cls == checks.PEER_MISMATCH:
        return Finding(
            "warn",
            "manual",
            f"{f.parameter} differs on {node}: --fix does not change it "
            + (
                "(a password: change it in your secret store and on the nodes)"
                if f.parameter == "requirepass"
                else "(file-only or needs a restart: change the files, then restart replicas "
                "first and the master via switchover)"
            ),
            f.node,
        )
    said = f.message if not f.node or f.node in f.message else f"{f.node}: {f.message}"
    return Finding("warn", "manual", f"{said} (not changed by --fix)", f.node)


# ----------------------------------------------------------------------------- step routines


def _config_value(ctx: RunContext, node: str, key: str) -> str:
    reply = ctx.node(node).execute("CONFIG", "GET", key)
    pairs = dict(zip(reply[::2], reply[1::2], strict=False)) if isinstance(reply, list) else {}
    if key not in pairs:
        raise CommandFailed(f"{node}: CONFIG GET {key} returned nothing")
    return str(pairs[key])


@action("config-copy")
def run_config_copy(ctx: RunContext, step: Step) -> str:
    """CONFIG SET a key to the reference's value (read now; a secret is never shown)."""
    key, param = str(step.args["key"]), str(step.args["param"])
    old = _config_value(ctx, step.node, key)
    ctx.remembered[remembered(step.node, key)] = Secret(old)
    if param == "replica-read-only":
        value = "yes"
    else:
        value = _config_value(ctx, str(step.args["reference"]), str(step.args["reference_key"]))
    if param == "client-output-buffer-limit":
        from redisops.checks.normalise import obl_class

        hard, soft, secs = obl_class(value)
        value = f"replica {hard} {soft} {secs}"
    ctx.node(step.node).execute("CONFIG", "SET", key, value)
    if param in checks.SECRETS:
        return f"{key} set (value hidden)"
    return f"{key} = {value}"


@action("persist-config")
def run_persist_config(ctx: RunContext, step: Step) -> str:
    """CONFIG REWRITE; when Redis cannot rewrite its file, the running values of the step's
    keys are written into the file drift read, through the node's host: the routine of
    ``--persist`` (:func:`redisops.plan.run_config_rewrite`)."""
    return run_config_rewrite(ctx, step)


@undo("persist-config")
def undo_persist_config(ctx: RunContext, step: Step) -> str:
    """A rolled-back fix puts the running values back (the config-copy steps' undo, which
    run after this one); the file this step rewrote must follow, or a restart would bring
    the values back that the rollback removed: set the values the config-copy steps
    overwrote now, and persist again."""
    node = ctx.node(step.node)
    restored = []
    for key in step.args["keys"]:
        ref = remembered(step.node, str(key))
        if ref in ctx.remembered:
            node.execute("CONFIG", "SET", str(key), ctx.secret(ref))
            restored.append(str(key))
    if not restored:
        return "nothing this plan changed to take back from the file"
    return f"{', '.join(restored)} back in the file: {run_config_rewrite(ctx, step)}"


@action("drift-verify")
def run_drift_verify(ctx: RunContext, step: Step) -> str:
    """Read every node again and compare: a fixable finding left means the fix failed."""
    names = [str(n) for n in step.args["nodes"]]
    roles = dict(step.args.get("roles", {}))
    files = {str(k): str(v) for k, v in dict(step.args.get("config_files", {})).items()}
    infos = [ctx.session.probe(Address.parse(n)) for n in names]
    configs = [read_node(ctx.session, info, files.get(str(info.address))) for info in infos]
    configs = [replace(c, role=str(roles.get(c.node, c.role))) for c in configs]
    report = checks.compare(configs, str(step.args["reference"]))
    by_node = {c.node: c for c in configs}
    left = [f for f in report.findings if f.fixable and _settable(f, by_node)]
    ctx.facts["drift_after"] = [f.to_dict() for f in report.findings]
    if left:
        text = "; ".join(
            f"{f.parameter} ({f.cls}) on {f.node or ', '.join(f.differs)}" for f in left
        )
        raise VerifyFailed(f"drift remains after the fix: {text}")
    manual = [f for f in report.findings if f.severity != checks.INFO]
    return "drift clean: no fixable finding remains" + (
        f" ({len(manual)} finding(s) left for manual action)" if manual else ""
    )
