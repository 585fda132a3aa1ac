"""The playbook actions: the one place where a step's ``action:`` meets the operations.

Each action declares its arguments (``with:``, typed) and whether it only reads
(``probe``), waits (``wait``), changes the cluster (``mutate``) or steers the run
(``control``). Mutating actions build the operation's own :class:`~redisops.model.Plan`
with the same planning functions the CLI commands use, so a step is exactly the command
an operator would type: same preflight, same engine prediction, same executor, same
audit, same verification. In a dry run the plan is shown and its predicted effect is
added to the :class:`~redisops.playbook.overlay.World`, instead of being executed.

What each action registers (``register: NAME``) is plain data, documented in
``docs/playbooks.md``. Actions that belong to commands not in this build yet are listed
with the issue they wait on: a playbook using one validates and shows, but does not run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redisops.audit import AuditLog
from redisops.errors import BadInput, ExitCode, RedisopsError
from redisops.playbook import expr
from redisops.playbook.overlay import Down, Effect, Promote, Replicate, World

if TYPE_CHECKING:  # pragma: no cover
    from redisops.model import Address, Plan, Topology
    from redisops.ops.api import Operation, Reader
    from redisops.plan import PlanResult, Progress
    from redisops.session import Session


# ----------------------------------------------------------------------------- types


@dataclass(frozen=True)
class Param:
    type: str = "str"
    required: bool = False
    default: Any = None
    help: str = ""
    choices: tuple[str, ...] | None = None


@dataclass
class ActionResult:
    """What one step did: ``value`` is what ``register:`` stores."""

    value: dict[str, Any]
    summary: str
    plan: Plan | None = None
    result: PlanResult | None = None
    predicted: bool = False
    details: str = ""


class StepFailed(RedisopsError):
    """A step did not do what it should; carries the exit code and what it registers."""

    def __init__(
        self,
        message: str,
        code: ExitCode,
        *,
        hint: str | None = None,
        value: Mapping[str, Any] | None = None,
        plan: Plan | None = None,
        result: PlanResult | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = code
        self.value = dict(value or {})
        self.plan = plan
        self.result = result


@dataclass(frozen=True)
class Connector:
    """How actions reach the cluster: ``make(seeds, cluster)`` builds a session with the
    run's connection options (credentials, TLS, inventory)."""

    make: Callable[[Sequence[str], str | None], Session]
    inventory: Path | None = None
    cluster: str | None = None

    def session(self, seeds: Sequence[str], cluster: str | None = None) -> Session:
        return self.make(list(seeds), cluster or self.cluster)


@dataclass
class ActionContext:
    connect: Connector
    dry_run: bool = False
    yes: bool = False
    audit_path: Path | None = None
    run_id: str = ""
    world: World = field(default_factory=World)
    progress: Progress | None = None
    #: asks the operator a yes/no question; None when nobody can answer (not a terminal)
    ask: Callable[[str], bool] | None = None
    #: shows text as the run goes (a plan before it is confirmed)
    show: Callable[[str], None] = lambda text: None
    sleep: Callable[[float], None] = time.sleep
    #: every node the run has seen, in order (for the state shown when it stops)
    seen: dict[str, None] = field(default_factory=dict)
    #: a step of this run has changed the cluster
    changed: bool = False
    #: resume: build the plan and check its preflight, act on nothing
    check_only: bool = False
    #: a rehearsal's own directory: backups are written under it, never to the real
    #: destination the playbook names (a rehearsal only reads the real world)
    scratch: Path | None = None
    #: in a rehearsal, each real destination URL and the scratch directory standing in for it
    stand_ins: dict[str, str] = field(default_factory=dict)

    def backup_dest(self, text: str, *, writes: bool) -> str:
        """``text``, or in a rehearsal the scratch directory standing in for it: always for
        a step that writes there, for one that reads only once this rehearsal wrote there."""
        if self.scratch is None or (not writes and text not in self.stand_ins):
            return text
        if text not in self.stand_ins:
            where = self.scratch / "backups" / f"dest-{len(self.stand_ins) + 1}"
            where.mkdir(parents=True, exist_ok=True)
            self.stand_ins[text] = str(where)
        return self.stand_ins[text]

    def note_nodes(self, names: Iterable[str]) -> None:
        for name in names:
            self.seen.setdefault(str(name), None)


Runner = Callable[[ActionContext, dict[str, Any]], ActionResult]


@dataclass(frozen=True)
class ActionDef:
    name: str
    kind: str  # probe | wait | mutate | control
    help: str
    params: Mapping[str, Param]
    run: Runner | None = None
    precondition: str = ""  # the default precondition, in words
    verify: str = ""  # the default verification, in words

    #: for an action that changes the cluster only with some arguments (``drift`` with
    #: ``fix``): the argument that makes it mutating
    mutating_with: str | None = None

    @property
    def mutating(self) -> bool:
        return self.kind == "mutate"

    def changes(self, args: Mapping[str, Any]) -> bool:
        """Whether a step with ``args`` (as written, or rendered) may change the cluster."""
        if self.mutating_with is not None:
            value = args.get(self.mutating_with)
            return bool(value) and str(value).lower() not in ("false", "no", "off", "0")
        return self.mutating


# ----------------------------------------------------------------------------- reading


def _discover(ctx: ActionContext, session: Session, extra: Iterable[str] = ()) -> Topology:
    from redisops.model import Address

    return _reader(ctx)(session, [Address.parse(a) for a in extra])


def cluster_view(topo: Topology, predicted: Iterable[str] = ()) -> dict[str, Any]:
    """The registered form of a topology: what ``status`` gives expressions."""
    marked = set(predicted)
    nodes: dict[str, Any] = {}
    for n in topo.nodes:
        rec = topo.record(n)
        nodes[str(n.address)] = {
            "address": str(n.address),
            "reachable": n.reachable,
            "role": rec["role"],
            "master": rec.get("master"),
            "link": rec.get("link"),
            "offset": rec.get("offset"),
            "lag_bytes": rec.get("lag_bytes"),
            "keys": rec.get("keys"),
            "replid": rec.get("replid"),
            "replid2": rec.get("replid2"),
            "sync_in_progress": rec.get("sync_in_progress"),
            "loading": rec.get("loading"),
            "priority": rec.get("replica_priority"),
            "version": rec.get("version"),
            "server": rec.get("server"),
            "rdb_format": rec.get("rdb_format"),
            "error": rec.get("error"),
            "predicted": str(n.address) in marked,
        }
    masters = [str(n.address) for n in topo.masters if n.reachable]
    master = masters[0] if len(masters) == 1 else None
    replicas: list[str] = []
    if master is not None:
        mnode = topo.get(topo.masters[0].address) if topo.masters else None
        if mnode is not None:
            replicas = [str(d.address) for d in topo.descendants(mnode)]
    return {
        "master": master,
        "masters": masters,
        "replicas": replicas,
        "unreachable": [str(n.address) for n in topo.nodes if not n.reachable],
        "nodes": nodes,
        "problems": [p.to_dict() for p in topo.problems],
        "healthy": not topo.problems,
        "predicted": bool(marked & set(nodes)),
    }


def _view_summary(view: Mapping[str, Any]) -> str:
    if view["master"]:
        head = f"master {view['master']}, {len(view['replicas'])} replica(s)"
    elif view["masters"]:
        head = f"{len(view['masters'])} masters: {', '.join(view['masters'])}"
    else:
        head = "no reachable master"
    if view["unreachable"]:
        head += f", unreachable: {', '.join(view['unreachable'])}"
    problems = view["problems"]
    head += (
        "; no problems"
        if not problems
        else f"; {len(problems)} problem(s): " + "; ".join(p["message"] for p in problems[:3])
    )
    return head


def peers(ctx: ActionContext, address: str) -> tuple[list[str], str | None]:
    """Where to find the other members of the group of ``address`` when it cannot be asked:
    the run's ``--cluster``, else an inventory cluster that lists it, else the group it was
    last seen in (the last-known topology every read records)."""
    from redisops.inventory import load_inventory
    from redisops.model import Address

    inv = load_inventory(ctx.connect.inventory)
    if ctx.connect.cluster is not None:
        cfg = inv.cluster(ctx.connect.cluster)
        return [str(s.address) for s in cfg.nodes], ctx.connect.cluster
    target = Address.parse(address)
    for name, cfg in sorted(inv.clusters.items()):
        if any(spec.address == target for spec in cfg.nodes):
            return [str(s.address) for s in cfg.nodes], name
    from redisops.state import group_of

    known = group_of(target)  # the last-known topology (recorded by every read)
    if known is not None:
        return [a for a in known.members() if a != address], None
    return [], None


def _status(ctx: ActionContext, args: dict[str, Any]) -> ActionResult:
    seeds = list(args.get("seeds") or [])
    dead = args.get("dead")
    cluster = args.get("cluster") or None
    if dead:
        found, found_cluster = peers(ctx, dead)
        cluster = cluster or found_cluster
        seeds += [s for s in found if s not in seeds]
        seeds.append(dead)
    if not seeds and cluster is None and ctx.connect.cluster is None:
        raise StepFailed(
            "status needs seeds or cluster (with: {seeds: [...]}), or a --cluster for the run",
            ExitCode.BAD_INPUT,
        )
    from redisops.ops import api

    with ctx.connect.session(seeds, cluster) as session:
        topo = api.status(session, read=_reader(ctx))
    view = cluster_view(topo, ctx.world.predicted if ctx.dry_run else ())
    summary = _view_summary(view)
    if dead:
        from redisops.model import Address
        from redisops.ops.failover import rank_candidates

        cands = [c.to_dict() for c in rank_candidates(topo, topo.canonical(Address.parse(dead)))]
        view["candidates"] = cands
        chosen = next((c["address"] for c in cands if c["chosen"]), None)
        view["chosen"] = chosen
        summary += f"; candidates for {dead}: " + (
            ", ".join(
                f"{c['address']} ({'CHOSEN' if c['chosen'] else 'eligible' if c['eligible'] else 'not eligible'}: {c['reason']})"
                for c in cands
            )
            or "none"
        )
    if args.get("require_healthy") and view["problems"]:
        raise StepFailed(f"the cluster has problems: {summary}", _probe_code(ctx), value=view)
    return ActionResult(view, summary, predicted=view["predicted"])


def _probe_code(ctx: ActionContext) -> ExitCode:
    """A check that fails before the run changed anything refuses (5); after, the
    procedure did not reach the promised state (9)."""
    return ExitCode.VERIFY_FAILED if ctx.changed else ExitCode.REFUSED


def _node_state(ctx: ActionContext, address: str) -> tuple[str, bool]:
    """``down``, ``master`` or ``replica`` (as predicted in a dry run), and whether predicted."""
    from redisops.model import Address

    with ctx.connect.session([address]) as session:
        if ctx.dry_run and ctx.world.effects:
            topo = ctx.world.discover(session)
            node = topo.get(Address.parse(address))
            predicted = address in ctx.world.predicted
        else:
            node = session.probe(Address.parse(address))
            predicted = False
    ctx.note_nodes([address])
    if node is None or not node.reachable:
        return "down", predicted
    return node.role, predicted


def _confirm(ctx: ActionContext, args: dict[str, Any]) -> ActionResult:
    prompt = args.get("prompt")
    if prompt:
        if ctx.dry_run:
            return ActionResult({"confirmed": True, "asked": prompt}, f"would ask: {prompt}")
        if ctx.yes:
            return ActionResult({"confirmed": True, "asked": prompt}, f"{prompt}: yes (--yes)")
        if ctx.ask is None:
            raise StepFailed(
                f"{prompt}: nobody to answer (not a terminal)",
                ExitCode.REFUSED,
                hint="pass --yes to answer yes",
            )
        if not ctx.ask(str(prompt)):
            raise StepFailed(f"{prompt}: answered no", ExitCode.REFUSED)
        return ActionResult({"confirmed": True, "asked": prompt}, f"{prompt}: yes")
    node, want = args.get("node"), args.get("state")
    if not node or not want:
        raise StepFailed("confirm needs prompt, or node and state", ExitCode.BAD_INPUT)
    probes, interval = int(args["probes"]), float(args["interval"])
    seen: list[str] = []
    predicted = False
    for i in range(probes):
        state, predicted = _node_state(ctx, node)
        seen.append(state)
        if state != want:
            raise StepFailed(
                f"{node} is {state}, not {want} (probe {i + 1} of {probes})"
                + (" (predicted by the dry run)" if predicted else ""),
                _probe_code(ctx),
                value={"confirmed": False, "node": node, "state": state, "probes": seen},
            )
        if predicted:
            break
        if i + 1 < probes:
            ctx.sleep(interval)
    return ActionResult(
        {"confirmed": True, "node": node, "state": want, "probes": seen},
        f"{node} is {want} ({len(seen)} probe(s){', predicted' if predicted else ''})",
        predicted=predicted,
    )


def _assert(ctx: ActionContext, args: dict[str, Any], scope: Mapping[str, Any]) -> ActionResult:
    that = args["that"]
    checks = that if isinstance(that, list) else [that]
    for text in checks:
        if not expr.truth(str(text), scope):
            message = f"assertion failed: {text}"
            if args.get("message"):
                try:
                    message = f"{expr.render(str(args['message']), scope)} ({message})"
                except expr.ExprError as exc:
                    message += f" (and its message could not be filled in: {exc.message})"
            raise StepFailed(message, _probe_code(ctx), value={"ok": False, "failed": text})
    return ActionResult({"ok": True}, f"{len(checks)} condition(s) hold")


def _sleep(ctx: ActionContext, args: dict[str, Any]) -> ActionResult:
    seconds = float(args["seconds"])
    if ctx.dry_run:
        return ActionResult({"slept": 0.0}, f"would sleep {seconds:g}s")
    ctx.sleep(seconds)
    return ActionResult({"slept": seconds}, f"slept {seconds:g}s")


def _wait_sync(ctx: ActionContext, args: dict[str, Any]) -> ActionResult:
    from redisops.model import Address
    from redisops.ops import api

    replica = _canonical(str(args["replica"]))
    req = api.WaitSyncRequest(
        replica,
        _canonical(str(args["master"])) if args.get("master") else None,
        float(args["timeout"]),
    )
    with ctx.connect.session([replica]) as session:
        ctx.note_nodes([replica])
        if ctx.dry_run and replica in ctx.world.predicted:
            topo = ctx.world.discover(session)
            node = topo.get(Address.parse(replica))
            if node is not None and node.is_replica and node.link == "up":
                return ActionResult(
                    {"in_sync": True, "master": str(node.master_address), "offset": node.offset},
                    f"{replica} in sync with {node.master_address} (predicted)",
                    predicted=True,
                )
        try:
            done = api.wait_sync(session, req, progress=ctx.progress, sleep=ctx.sleep)
        except RedisopsError as exc:
            code = _probe_code(ctx) if exc.exit_code is ExitCode.REFUSED else exc.exit_code
            raise StepFailed(str(exc), code, value={"in_sync": False}) from None
    return ActionResult(
        {"in_sync": True, "master": done.master, "offset": done.offset}, done.detail
    )


# ----------------------------------------------------------------------------- mutating


class RunAudit(AuditLog):
    """An operation's audit records, each naming the playbook run it belongs to."""

    def __init__(self, path: Path | None, operation: str, cluster: str, run_id: str) -> None:
        super().__init__(path, operation, cluster)
        self.run_id = run_id

    def record(self, **fields: Any) -> None:
        super().record(playbook_run=self.run_id, **fields)


def _reader(ctx: ActionContext) -> Reader:
    """How the operations read the cluster for this run: as it is, or in a dry run with the
    predicted effects of the steps so far; every node read is remembered."""

    def read(session: Session, extra: Sequence[Address]) -> Topology:
        topo = ctx.world.discover(session, extra) if ctx.dry_run else session.discover(list(extra))
        ctx.note_nodes(str(n.address) for n in topo.nodes)
        return topo

    return read


def _outcome_value(plan: Plan, **extra: Any) -> dict[str, Any]:
    pred = dict(plan.prediction or {})
    return {
        "operation": plan.operation,
        "summary": plan.summary,
        "prediction": pred,
        "sync": pred.get("sync"),
        "findings": [f.to_dict() for f in plan.findings],
        **extra,
    }


def _operate(
    ctx: ActionContext,
    session: Session,
    op: Operation,
    *,
    force: bool,
    effects: Sequence[Effect],
    value: Mapping[str, Any] | None = None,
) -> ActionResult:
    """Gate, then predict (dry run) or execute the operation, as the CLI commands do
    (:func:`redisops.ops.api.gate` and :func:`~redisops.ops.api.execute`)."""
    from redisops.ops.api import execute, gate
    from redisops.output import render_plan

    plan = op.plan
    extra = dict(value or {})
    ctx.note_nodes(plan.touched)
    for text in op.notes:
        ctx.show(f"  note: {text}")
    if plan.nothing_to_do:
        return ActionResult(
            _outcome_value(plan, outcome="nothing-to-do", changed=False, **extra),
            plan.summary,
            plan=plan,
        )
    refused = gate(plan, force)
    if refused is not None:
        code, why = refused
        raise StepFailed(
            f"refused: {why}",
            code,
            value=_outcome_value(plan, outcome="refused", changed=False, **extra),
            plan=plan,
        )
    if ctx.check_only:
        return ActionResult(
            _outcome_value(plan, outcome="ready", changed=False, **extra),
            f"precondition holds: {plan.summary}",
            plan=plan,
        )
    if ctx.dry_run:
        ctx.world.add(*effects)
        return ActionResult(
            _outcome_value(plan, outcome="predicted", changed=True, **extra),
            f"would {plan.summary}",
            plan=plan,
            predicted=True,
        )
    needs_yes = [f for f in plan.findings if f.level == "confirm"]
    if ctx.yes:  # the plan is not shown for confirmation: its warnings still are
        for f in plan.findings:
            if f.level in ("warn", "confirm"):
                ctx.show(f"  preflight warning: {f.message}")
    else:
        ctx.show(render_plan(plan, force))
        if needs_yes or ctx.ask is None:
            why = "; ".join(f.message for f in needs_yes) or "not confirmed (not a terminal)"
            raise StepFailed(
                f"refused: {why}",
                ExitCode.REFUSED,
                hint="pass --yes to proceed",
                value=_outcome_value(plan, outcome="refused", changed=False, **extra),
                plan=plan,
            )
        if not ctx.ask(f"Proceed with {plan.operation}?"):
            raise StepFailed(
                "not confirmed; nothing was changed",
                ExitCode.REFUSED,
                value=_outcome_value(plan, outcome="refused", changed=False, **extra),
                plan=plan,
            )
    result = execute(
        op,
        session,
        force=force,
        audit_path=ctx.audit_path,
        progress=ctx.progress,
        audit=RunAudit(ctx.audit_path, plan.operation, plan.cluster, ctx.run_id),
        sleep=ctx.sleep,
    )
    if result.outcome in ("applied", "partial", "timeout", "verify-failed"):
        ctx.changed = True
    val = _outcome_value(
        plan,
        outcome=result.outcome,
        changed=result.outcome != "rolled-back",
        observed=dict(result.observed),
        observed_sync=result.observed.get("observed_sync"),
        final_state=result.final_state,
        warnings=list(result.warnings),
        **extra,
    )
    if result.exit_code is not ExitCode.OK:
        raise StepFailed(result.message, result.exit_code, value=val, plan=plan, result=result)
    return ActionResult(val, _result_summary(plan, result), plan=plan, result=result)


def _result_summary(plan: Plan, result: PlanResult) -> str:
    """What the operation did, in one line: its message and what it measured."""
    parts = [f"{result.message}: {plan.summary}"]
    obs = result.observed
    if "prediction_check" in obs:
        parts.append(str(obs["prediction_check"]))
    if "pause_ms" in obs:
        parts.append(f"writes paused {float(obs['pause_ms']):.1f} ms")
    if obs.get("full_resyncs"):
        parts.append(f"{obs['full_resyncs']} full resync(s)")
    parts += [f"warning: {w}" for w in result.warnings]
    return "; ".join(parts)


def _repointed(plan: Plan) -> list[str]:
    """The replicas a promotion plan repoints to the new master (its ``repoint`` step)."""
    for step in plan.steps:
        if step.action == "repoint":
            return [str(n) for n in step.args.get("nodes", [])]
    return []


def _canonical(address: str) -> str:
    from redisops.model import parse_target

    return str(parse_target(address).address)


def _attach(ctx: ActionContext, args: dict[str, Any]) -> ActionResult:
    from redisops.ops import api
    from redisops.units import parse_rate

    req = api.AttachRequest(
        str(args["replica"]),
        str(args["master"]),
        persist=bool(args["persist"]),
        force=bool(args["force"]),
        wait=bool(args["wait"]),
        timeout=float(args["timeout"]),
        bandwidth=parse_rate(str(args["bandwidth"]), option="bandwidth"),
        write_rate=parse_rate(str(args["write_rate"]), option="write_rate")
        if args.get("write_rate")
        else None,
        sample=float(args["sample"]),
    )
    with ctx.connect.session(req.seeds()) as session:
        op = api.attach(session, req, read=_reader(ctx), sleep=ctx.sleep)
        full = (op.plan.prediction or {}).get("sync") == "full"
        r, m = _canonical(req.replica), _canonical(req.master)
        return _operate(
            ctx,
            session,
            op,
            force=req.force,
            effects=[Replicate(r, m, full)],
            value={"replica": r, "master": m},
        )


def _detach(ctx: ActionContext, args: dict[str, Any]) -> ActionResult:
    from redisops.ops import api

    req = api.DetachRequest(
        str(args["replica"]), persist=bool(args["persist"]), force=bool(args["force"])
    )
    with ctx.connect.session(req.seeds()) as session:
        op = api.detach(session, req, read=_reader(ctx))
        r = _canonical(req.replica)
        return _operate(
            ctx, session, op, force=req.force, effects=[Promote(r)], value={"replica": r}
        )


def _switchover(ctx: ActionContext, args: dict[str, Any]) -> ActionResult:
    from redisops.ops import api

    req = api.SwitchoverRequest(
        str(args["to"]),
        str(args["master"]) if args.get("master") else None,
        method=str(args["method"]),
        max_lag_bytes=int(args["max_lag"]),
        pause_timeout_ms=int(float(args["pause_timeout"]) * 1000),
        persist=bool(args["persist"]),
        force=bool(args["force"]),
    )
    with ctx.connect.session(req.seeds()) as session:
        op = api.switchover(session, req, read=_reader(ctx))
        t = _canonical(req.to)
        m = next((s.node for s in op.plan.steps if s.action in ("switch", "native-failover")), None)
        effects: list[Effect] = [Promote(t)]
        if m is not None:
            effects.append(Replicate(m, t))
        effects += [Replicate(o, t) for o in _repointed(op.plan)]
        result = _operate(
            ctx,
            session,
            op,
            force=req.force,
            effects=effects,
            value={"old_master": m, "new_master": t},
        )
        observed = result.value.get("observed") or {}
        if "pause_ms" in observed:
            result.value["pause_ms"] = round(float(observed["pause_ms"]), 3)
        return result


def _failover(ctx: ActionContext, args: dict[str, Any]) -> ActionResult:
    from redisops.ops import api

    dead = _canonical(str(args["master"]))
    seeds = list(args.get("seeds") or [])
    cluster = None
    if not seeds:
        seeds, cluster = peers(ctx, dead)
    known_down = ctx.dry_run and dead in {e.node for e in ctx.world.effects if isinstance(e, Down)}
    req = api.FailoverRequest(
        dead,
        str(args["to"]) if args.get("to") else None,
        tuple(seeds),
        max_disconnect=int(float(args["max_disconnect"])),
        persist=bool(args["persist"]),
        force=bool(args["force"]),
        probes=int(args["probes"]),
        interval=float(args["interval"]),
        accept_data_loss=bool(args["accept_data_loss"]),
        known_down=known_down,
    )
    with ctx.connect.session(req.seeds(), cluster) as session:
        op = api.failover(session, req, read=_reader(ctx))
        chosen = (op.plan.prediction or {}).get("chosen")
        effects: list[Effect] = []
        if chosen:
            effects = [
                Promote(str(chosen)),
                *[Replicate(o, str(chosen)) for o in _repointed(op.plan)],
            ]
        return _operate(
            ctx,
            session,
            op,
            force=req.force,
            effects=effects,
            value={
                "old_master": dead,
                "new_master": chosen,
                "candidates": (op.plan.prediction or {}).get("candidates", []),
            },
        )


def _fence(ctx: ActionContext, args: dict[str, Any]) -> ActionResult:
    """Make sure the old master cannot act as a master: a replica of the new one if it
    answers; if it is down, recorded as fenced on the new master (``status`` reports it
    as a split brain the moment it answers as a master again)."""
    from redisops.model import Address
    from redisops.ops import api
    from redisops.ops.fence import write_fence_record
    from redisops.topology import fence_records

    old, new = _canonical(str(args["old"])), _canonical(str(args["to"]))
    req = api.FenceRequest(
        old,
        new,
        persist=bool(args["persist"]),
        force=bool(args["force"]),
        timeout=float(args["timeout"]),
    )
    with ctx.connect.session([new, old]) as session:
        topo = _reader(ctx)(session, [])
        onode = topo.get(Address.parse(old))
        if onode is None or not onode.reachable:
            recorded = any(str(r.get("address")) == old for r in fence_records(topo))
            value = {"old": old, "new_master": new, "fenced": "recorded", "changed": not recorded}
            if recorded:
                return ActionResult(
                    {**value, "outcome": "nothing-to-do"},
                    f"{old} is down and already recorded as fenced on {new}",
                )
            if ctx.check_only:
                return ActionResult(
                    {**value, "outcome": "ready"}, f"{old} is down; it will be recorded as fenced"
                )
            if ctx.dry_run:
                return ActionResult(
                    {**value, "outcome": "predicted"},
                    f"would record {old} as fenced on {new} (it is down)",
                    predicted=True,
                )
            nnode = topo.get(Address.parse(new))
            if nnode is None or not nnode.is_master:
                raise StepFailed(
                    f"{new} is not a reachable master: cannot record the fence", _probe_code(ctx)
                )
            write_fence_record(
                session.node(Address.parse(new)), old, new, old_run_id=None, op=ctx.run_id
            )
            ctx.changed = True
            return ActionResult(
                {**value, "outcome": "applied"}, f"{old} is down; recorded as fenced on {new}"
            )
        op = api.fence(session, req, read=_reader(ctx))
        return _operate(
            ctx,
            session,
            op,
            force=req.force,
            effects=[Replicate(old, new, (op.plan.prediction or {}).get("sync") == "full")],
            value={"old": old, "new_master": new, "fenced": "replica"},
        )


def _backup(ctx: ActionContext, args: dict[str, Any]) -> ActionResult:
    """A verified RDB backup (``redisops backup take``): in a dry run, what would be taken
    and pruned (read for real); for real, after confirmation, taken and verified."""
    from redisops.backup.crypto import load_key
    from redisops.backup.dest import parse_dest
    from redisops.backup.retention import Policy
    from redisops.backup.take import BackupRequest
    from redisops.model import parse_target
    from redisops.ops import api

    node = _canonical(str(args["node"]))
    req = BackupRequest(
        node=parse_target(node).address,
        dest=parse_dest(ctx.backup_dest(str(args["dest"]), writes=True)),
        copy_to=tuple(
            parse_dest(ctx.backup_dest(str(c), writes=True)) for c in args.get("copy_to") or ()
        ),
        group=args.get("group") or None,
        from_master=bool(args["from_master"]),
        no_bgsave=bool(args["no_bgsave"]),
        policy=Policy(int(args["keep_hourly"]), int(args["keep_daily"]), int(args["keep_min"])),
        dry_run=ctx.dry_run or ctx.check_only,
        timeout=float(args["timeout"]),
    )
    key = load_key(Path(str(args["encrypt_key_file"]))) if args.get("encrypt_key_file") else None
    if not req.dry_run and not ctx.yes:
        if ctx.ask is None:
            raise StepFailed(
                f"refused: a backup of {node} writes to {req.dest.url} (not confirmed: not a terminal)",
                ExitCode.REFUSED,
                hint="pass --yes to proceed",
            )
        if not ctx.ask(f"Take a backup of {node} into {req.dest.url}?"):
            raise StepFailed("not confirmed; nothing was taken", ExitCode.REFUSED)
    notes: list[str] = []
    with ctx.connect.session([node]) as session:
        ctx.note_nodes([node])
        outcome = api.backup(session, req, key=key, progress=ctx.progress, note=notes.append)
    value = outcome.to_dict()
    record = value.get("backup") or {}
    if req.dry_run:
        return ActionResult(
            {**value, "outcome": "predicted" if ctx.dry_run else "ready"},
            f"would take a backup of {outcome.source} ({outcome.reason}) into {req.dest.url}",
            predicted=ctx.dry_run,
        )
    if record.get("status") != "verified":
        raise StepFailed(
            f"the backup of {node} failed verification: {record.get('failure') or 'no record'}",
            ExitCode.VERIFY_FAILED,
            value=value,
        )
    return ActionResult(
        {**value, "outcome": "applied"},
        f"backup {record.get('id')} of {outcome.source} verified in {req.dest.url} "
        + (f"(the rehearsal's stand-in for {args['dest']}) " if ctx.scratch else "")
        + f"({record.get('size')} bytes, sha256 {str(record.get('sha256'))[:12]})",
    )


def _restore(ctx: ActionContext, args: dict[str, Any]) -> ActionResult:
    """Put a backup back on a node (``redisops restore``)."""
    from redisops.backup.crypto import load_key
    from redisops.backup.dest import parse_dest
    from redisops.ops import api

    backup = str(args["backup"])
    req = api.RestoreRequest(
        backup,
        _canonical(str(args["to"])),
        str(args["method"]),
        None
        if Path(backup).is_file()
        else parse_dest(ctx.backup_dest(str(args["dest"] or ""), writes=False)),
        args.get("group") or None,
        force=bool(args["force"]),
        timeout=float(args["timeout"]),
    )
    key = load_key(Path(str(args["key_file"]))) if args.get("key_file") else None
    with ctx.connect.session(req.seeds()) as session:
        op = api.restore(session, req, key=key, read=_reader(ctx))
        return _operate(ctx, session, op, force=req.force, effects=[], value={"to": req.to})


_SERVICE_VERBS = {"started": "start", "stopped": "stop", "restarted": "restart"}


def _service(ctx: ActionContext, args: dict[str, Any]) -> ActionResult:
    """Start, stop or restart a node's service (``redisops service``), checked from outside."""
    from redisops.ops import api

    node = _canonical(str(args["node"]))
    req = api.ServiceRequest(node, _SERVICE_VERBS[str(args["state"])], float(args["timeout"]))
    with ctx.connect.session(req.seeds()) as session:
        op = api.service(session, req, read=_reader(ctx))
        effects: list[Effect] = [Down(node)] if req.verb == "stop" else []
        return _operate(
            ctx, session, op, force=bool(args["force"]), effects=effects, value={"node": node}
        )


def _ssh(ctx: ActionContext, args: dict[str, Any]) -> ActionResult:
    """A command on a node's machine (over SSH, or on this machine for a local node): an
    argument list, never a shell line; its output is registered, and a non-zero exit fails
    the step unless ``allow_failure``. In a dry run it is shown, not run."""
    from redisops.model import Address

    node = _canonical(str(args["node"]))
    argv = [str(a) for a in args["command"]]
    if not argv:
        raise StepFailed("ssh: the command is empty", ExitCode.BAD_INPUT)
    shown = " ".join(argv)
    if ctx.dry_run or ctx.check_only:
        return ActionResult(
            {"node": node, "command": argv, "outcome": "predicted" if ctx.dry_run else "ready"},
            f"would run on {node}'s machine: {shown}",
            predicted=ctx.dry_run,
        )
    if not ctx.yes:
        if ctx.ask is None:
            raise StepFailed(
                f"refused: running `{shown}` on {node}'s machine is not confirmed (not a terminal)",
                ExitCode.REFUSED,
                hint="pass --yes to proceed",
            )
        if not ctx.ask(f"Run `{shown}` on {node}'s machine?"):
            raise StepFailed("not confirmed; nothing was run", ExitCode.REFUSED)
    with ctx.connect.session([node]) as session:
        host = session.host(Address.parse(node))
        audit = RunAudit(ctx.audit_path, "ssh", session.cluster_name, ctx.run_id)
        audit.record(
            step=1, node=node, action="ssh", command=argv, host=host.name, result="started"
        )
        result = host.run(argv, sudo=bool(args["sudo"]), timeout=float(args["timeout"]))
        audit.record(
            step=1, node=node, action="ssh", command=argv, result=f"exit {result.exit_status}"
        )
    ctx.note_nodes([node])
    stderr = result.stderr.decode("utf-8", "replace")
    value = {
        "node": node,
        "host": host.name,
        "command": argv,
        "exit_status": result.exit_status,
        "stdout": result.text(),
        "stderr": stderr,
        "outcome": "applied",
    }
    if not result.ok and not args["allow_failure"]:
        err = stderr.strip().splitlines()
        raise StepFailed(
            f"`{shown}` on {host.name} exited {result.exit_status}: {err[-1] if err else 'no error output'}",
            ExitCode.ERROR,
            value=value,
        )
    ctx.changed = True
    return ActionResult(value, f"`{shown}` on {host.name}: exit {result.exit_status}")


def _check(ctx: ActionContext, args: dict[str, Any]) -> ActionResult:
    """The health checks (``redisops check``); in a dry run over the predicted topology,
    with nothing written to the state file."""
    from redisops.checks.result import Status
    from redisops.ops.check import CheckRequest, run_check
    from redisops.output_checks import summary

    seeds = list(args.get("seeds") or [])
    cluster = args.get("cluster") or None
    if not seeds and cluster is None and ctx.connect.cluster is None:
        raise StepFailed(
            "check needs seeds or cluster, or a --cluster for the run", ExitCode.BAD_INPUT
        )
    with ctx.connect.session(seeds, cluster) as session:
        topo = session.with_last_known(_discover(ctx, session))
        req = CheckRequest(
            warn=tuple(args.get("warn") or ()),
            crit=tuple(args.get("crit") or ()),
            expect_replicas=args.get("expect_replicas"),
            only=tuple(args.get("only") or ()),
            record=not ctx.dry_run,
        )
        report = run_check(session, req, now=time.time(), topo=topo)
    predicted = ctx.dry_run and bool(ctx.world.predicted)
    view = {
        "status": report.status.name,
        "ok": report.status is Status.OK,
        "summary": summary(report),
        "results": [r.to_dict() for r in report.results],
        "problems": [r.to_dict() for r in report.problems()],
        "predicted": predicted,
    }
    limit = {"warning": Status.WARNING, "critical": Status.CRITICAL}.get(str(args["fail_on"]))
    line = f"{report.status.name}: {view['summary']}" + (" (predicted)" if predicted else "")
    if limit is not None and report.status is not Status.UNKNOWN and report.status >= limit:
        raise StepFailed(f"check {line}", _probe_code(ctx), value=view)
    if limit is not None and report.status is Status.UNKNOWN:
        raise StepFailed(f"check {line}", ExitCode.ERROR, value=view)
    return ActionResult(view, line, predicted=predicted)


def _drift(ctx: ActionContext, args: dict[str, Any]) -> ActionResult:
    """Configuration drift (``redisops drift``): read and compare; with ``fix``, the fix
    (``drift --fix``), executed like every operation."""
    from redisops.ops import api

    seeds = list(args.get("seeds") or [])
    cluster = args.get("cluster") or None
    if not seeds and cluster is None and ctx.connect.cluster is None:
        raise StepFailed(
            "drift needs seeds or cluster, or a --cluster for the run", ExitCode.BAD_INPUT
        )
    req = api.DriftRequest(_canonical(str(args["reference"])) if args.get("reference") else None)
    with ctx.connect.session(seeds, cluster) as session:
        if args.get("fix"):
            op = api.drift_fix(session, req)
            report = op.extra["report"]
            ctx.note_nodes(n.node for n in report.nodes)
            view = _drift_view(report, ctx.world.fixed if ctx.dry_run else set())
            fixes = {
                (f.parameter, node)
                for f in report.findings
                if f.fixable
                for node in (f.differs or ((f.node,) if f.node else ()))
            }
            result = _operate(ctx, session, op, force=False, effects=[], value={"report": view})
            if ctx.dry_run:
                ctx.world.fixed |= fixes
            return result
        report = api.drift(session, req).report
    ctx.note_nodes(n.node for n in report.nodes)
    view = _drift_view(report, ctx.world.fixed if ctx.dry_run else set())
    fixable = view["fixable"]
    summary = (
        "no drift"
        if not view["drift"]
        else f"drift: {len(view['findings'])} finding(s), {len(fixable)} fixable by --fix"
        + (" (after the predicted fix)" if view["predicted"] else "")
    )
    fail_on = str(args.get("fail_on") or "none")
    if (fail_on == "fixable" and fixable) or (fail_on == "any" and view["drift"]):
        shown = fixable if fail_on == "fixable" else view["findings"]
        raise StepFailed(
            f"{summary}: " + "; ".join(_finding_line(f) for f in shown[:5]),
            ExitCode.DRIFT,
            value=view,
        )
    return ActionResult(view, summary, predicted=view["predicted"])


def _finding_line(f: Mapping[str, Any]) -> str:
    where = ", ".join(f.get("differs") or ([f["node"]] if f.get("node") else []))
    return (
        f"{f['parameter']} on {where}: {f['message']}"
        if where
        else f"{f['parameter']}: {f['message']}"
    )


def _drift_view(report: Any, fixed: set[tuple[str, str]]) -> dict[str, Any]:
    """The registered form of a drift report; in a dry run, findings a predicted fix
    removes are left out (and the view says it is predicted)."""
    doc = report.to_dict()
    findings = []
    predicted = False
    for f in doc["findings"]:
        nodes = f["differs"] or ([f["node"]] if f["node"] else [])
        if f["fixable"] and nodes and all((f["parameter"], n) in fixed for n in nodes):
            predicted = True
            continue
        findings.append(f)
    real = [f for f in findings if f["severity"] != "info" and f["class"] != "unreachable"]
    return {
        **doc,
        "findings": findings,
        "drift": bool(real),
        "fixable": [f for f in findings if f["fixable"]],
        "manual": [f for f in real if not f["fixable"]],
        "predicted": predicted,
    }


# ----------------------------------------------------------------------------- registry

_FORCE = Param("bool", default=False, help="override refusals marked forceable")
_PERSIST = Param("bool", default=False, help="CONFIG REWRITE so a restart keeps the change")


ACTIONS: dict[str, ActionDef] = {
    a.name: a
    for a in (
        ActionDef(
            "status",
            "probe",
            "read the topology from any node(s); registers the cluster view",
            {
                "seeds": Param(
                    "addresses", help="nodes to start from (default: the run's --cluster)"
                ),
                "cluster": Param("str", help="an inventory cluster to read (instead of seeds)"),
                "dead": Param(
                    "address",
                    help="a dead master: its replicas come from the inventory, and candidates are ranked",
                ),
                "require_healthy": Param(
                    "bool", default=False, help="fail the step when problems are found"
                ),
            },
            _status,
        ),
        ActionDef(
            "confirm",
            "probe",
            "confirm a node's state with several probes (down, master, replica), or ask the operator",
            {
                "node": Param("address"),
                "state": Param("str", choices=("down", "master", "replica")),
                "probes": Param("int", default=3),
                "interval": Param("duration", default=0.5),
                "prompt": Param("str", help="a question for the operator (--yes answers yes)"),
            },
            _confirm,
        ),
        ActionDef(
            "wait_sync",
            "wait",
            "wait until a replica's link is up and its offset equals its master's",
            {
                "replica": Param("address", required=True),
                "master": Param("address", help="default: the replica's master"),
                "timeout": Param("duration", default=300.0),
            },
            _wait_sync,
        ),
        ActionDef(
            "sleep",
            "control",
            "wait a fixed time",
            {"seconds": Param("duration", required=True)},
            _sleep,
        ),
        ActionDef(
            "assert",
            "control",
            "check conditions on vars and registered values; the run stops when one is false",
            {"that": Param("expr", required=True), "message": Param("str")},
            None,  # evaluated by the runner, which owns the scope
        ),
        ActionDef(
            "attach",
            "mutate",
            "make a node a replica of a master: predicted resync, followed and verified",
            {
                "replica": Param("address", required=True),
                "master": Param("address", required=True),
                "persist": _PERSIST,
                "force": _FORCE,
                "wait": Param("bool", default=True),
                "timeout": Param("duration", default=300.0),
                "bandwidth": Param("str", default="100MB"),
                "write_rate": Param("str"),
                "sample": Param("duration", default=0.5),
            },
            _attach,
            precondition="attach preflight: both reachable, no cycle, RDB version loadable, no Sentinel",
            verify="sync counters match the predicted resync; offsets converge; DBSIZE equal",
        ),
        ActionDef(
            "detach",
            "mutate",
            "REPLICAOF NO ONE on a replica: it keeps its data and becomes a master",
            {"replica": Param("address", required=True), "persist": _PERSIST, "force": _FORCE},
            _detach,
            precondition="the node is a reachable replica",
            verify="role master, replid2 the old id, its replicas back by partial resync",
        ),
        ActionDef(
            "switchover",
            "mutate",
            "planned change of master with no lost write (the master is alive)",
            {
                "to": Param("address", required=True),
                "master": Param("address", help="default: the target's master"),
                "method": Param("str", default="redisops", choices=("redisops", "native")),
                "max_lag": Param("size", default=1024 * 1024),
                "pause_timeout": Param("duration", default=5.0),
                "persist": _PERSIST,
                "force": _FORCE,
            },
            _switchover,
            precondition="target is an up-to-date replica of the master (switchover preflight)",
            verify="one master; every link up; no full resync; journal key read back everywhere",
        ),
        ActionDef(
            "failover",
            "mutate",
            "the master is dead: promote the best (or the given) replica, repoint the others, fence it",
            {
                "master": Param("address", required=True, help="the dead master"),
                "to": Param("address", help="default: chosen by Sentinel's rules"),
                "seeds": Param(
                    "addresses", help="default: the inventory cluster that lists the master"
                ),
                "max_disconnect": Param("duration", default=60.0),
                "accept_data_loss": Param(
                    "bool", default=False, help="promote a replica that loses writes"
                ),
                "probes": Param("int", default=3),
                "interval": Param("duration", default=0.3),
                "persist": _PERSIST,
                "force": _FORCE,
            },
            _failover,
            precondition="the master is down (confirmed by probes); an eligible replica exists",
            verify="the new master is the only one; every other replica linked to it",
        ),
        ActionDef(
            "fence",
            "mutate",
            "make an old master a replica of the new one; if it is down, record it as fenced",
            {
                "old": Param("address", required=True),
                "to": Param("address", required=True),
                "persist": _PERSIST,
                "force": _FORCE,
                "timeout": Param("duration", default=300.0),
            },
            _fence,
            precondition="the new master is a master",
            verify="the old master replicates from the new one (or is recorded as fenced)",
        ),
        ActionDef(
            "check",
            "probe",
            "the health checks (redisops check): fails the step at or above fail_on",
            {
                "seeds": Param("addresses"),
                "cluster": Param("str", help="an inventory cluster (instead of seeds)"),
                "expect_replicas": Param("int", help="default: the inventory, else last known"),
                "only": Param("list", help="check ids to run (default: all)"),
                "warn": Param("list", help="ID=RANGE warning thresholds"),
                "crit": Param("list", help="ID=RANGE critical thresholds"),
                "fail_on": Param(
                    "str",
                    default="warning",
                    choices=("warning", "critical", "never"),
                    help="the worst state that fails the step",
                ),
            },
            _check,
        ),
        ActionDef(
            "drift",
            "probe",
            "configuration drift across the nodes and against their files; with fix, fix it",
            {
                "seeds": Param("addresses"),
                "cluster": Param("str", help="an inventory cluster (instead of seeds)"),
                "reference": Param("address", help="default: the master"),
                "fix": Param(
                    "bool", default=False, help="plan, act, persist and verify (drift --fix)"
                ),
                "fail_on": Param(
                    "str",
                    default="none",
                    choices=("none", "fixable", "any"),
                    help="fail (exit 11) when fixable / any drift is found",
                ),
            },
            _drift,
            precondition="drift --fix preflight: the reference node can be read",
            verify="drift runs again: nothing --fix could change remains",
            mutating_with="fix",
        ),
        ActionDef(
            "backup",
            "mutate",
            "a verified RDB backup of a node's group (redisops backup take)",
            {
                "node": Param(
                    "address", required=True, help="a replica is used unless from_master"
                ),
                "dest": Param("str", required=True, help="a directory or sftp://[user@]host/path"),
                "copy_to": Param("list", help="more destinations, each copy verified"),
                "group": Param("str"),
                "from_master": Param("bool", default=False),
                "no_bgsave": Param("bool", default=False),
                "encrypt_key_file": Param("str", help="encrypt copies that leave this machine"),
                "keep_hourly": Param("int", default=48),
                "keep_daily": Param("int", default=30),
                "keep_min": Param("int", default=1),
                "timeout": Param("duration", default=3600.0),
            },
            _backup,
            precondition="the node is reachable; a dry run of the backup says what it would take",
            verify="size and SHA-256 of the copy equal the source's; the RDB's own checksum",
        ),
        ActionDef(
            "restore",
            "mutate",
            "put a backup back on a node (redisops restore)",
            {
                "backup": Param("str", required=True, help="a file, or an id or latest at dest"),
                "to": Param("address", required=True),
                "method": Param("str", default="online", choices=("online", "file")),
                "dest": Param("str"),
                "group": Param("str"),
                "key_file": Param("str", help="the key of an encrypted backup"),
                "force": _FORCE,
                "timeout": Param("duration", default=3600.0),
            },
            _restore,
            precondition="restore preflight: not a replica, the RDB format loadable, the backup verified",
            verify="key count equal to the catalogue's; the node a master",
        ),
        ActionDef(
            "service",
            "mutate",
            "start, stop or restart a node's service (redisops service), then check it",
            {
                "node": Param("address", required=True),
                "state": Param("str", required=True, choices=("started", "stopped", "restarted")),
                "timeout": Param("duration", default=60.0),
                "force": _FORCE,
            },
            _service,
            precondition="service preflight: stopping or restarting a master with replicas is refused",
            verify="PING answers after start (a new run id after restart); nothing answers after stop",
        ),
        ActionDef(
            "ssh",
            "mutate",
            "run a command (an argument list) on a node's machine, over SSH or locally",
            {
                "node": Param("address", required=True),
                "command": Param("list", required=True, help="the arguments, e.g. [df, -h, /data]"),
                "sudo": Param("bool", default=False),
                "timeout": Param("duration", default=60.0),
                "allow_failure": Param(
                    "bool", default=False, help="register a non-zero exit, do not fail"
                ),
            },
            _ssh,
            precondition="the node's machine is reachable (SSH settings, host key known)",
            verify="the command exits 0 (unless allow_failure)",
        ),
    )
}


def coerce_args(action: ActionDef, args: Mapping[str, Any]) -> dict[str, Any]:
    """Rendered ``with:`` values, typed, with the defaults filled in (BadInput names the field)."""
    from redisops.playbook import vartypes

    out: dict[str, Any] = {}
    for key, param in action.params.items():
        if key not in args or args[key] is None:
            if param.required:
                raise BadInput(f"with.{key}: {action.name} needs {key} (it rendered empty)")
            out[key] = param.default
            continue
        value = args[key]
        if param.type != "expr":
            try:
                value = vartypes.coerce(param.type, value)
            except ValueError as exc:
                raise BadInput(
                    f"with.{key}: {value!r} is not {vartypes.describe(param.type)} ({exc})"
                ) from None
        if param.choices and value not in param.choices:
            raise BadInput(f"with.{key}: {value!r} is not one of {', '.join(param.choices)}")
        out[key] = value
    return out


def run_action(
    ctx: ActionContext, name: str, args: dict[str, Any], scope: Mapping[str, Any]
) -> ActionResult:
    """Run one action with already-rendered, typed ``args``."""
    if name == "assert":
        return _assert(ctx, args, scope)
    run = ACTIONS[name].run
    assert run is not None  # only assert is run by the runner itself
    return run(ctx, args)
