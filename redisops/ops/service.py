"""``service``: start, stop or restart a node's redis-server through its service manager.

The command comes from the inventory (``ssh: {service: "systemctl {verb} redis-server@6380"}``,
default ``systemctl {verb} redis-server``) and runs on the node's machine (SSH, or locally),
as a privileged command (``sudo -n`` when the inventory says ``sudo: true``). Then the
result is checked from the outside: after ``start`` the node answers PING (and has finished
loading), after ``restart`` it answers with a new ``run_id``, after ``stop`` nothing answers
on its port any more.

Stopping or restarting a master that has replicas is refused without ``--force``: its
replicas lose their master, and clients their writes; ``switchover`` first.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redisops.errors import CommandFailed, HostKeyError, RedisopsError, VerifyFailed
from redisops.host import Host
from redisops.model import Address, Finding, NodeInfo, Plan, Step, Topology
from redisops.ops.common import lock_steps, unlock_step
from redisops.ops.hostfacts import service_argv, service_template
from redisops.plan import RunContext, action
from redisops.session import Session

VERBS = ("start", "stop", "restart", "status")
COMMAND_TIMEOUT_S = 120.0
POLL_S = 0.2


def plan_service(
    topo: Topology, address: Address, verb: str, session: Session, *, timeout: float = 60.0
) -> Plan:
    """The plan for ``start``, ``stop`` or ``restart`` of the node at ``address``."""
    node = topo.get(address)
    name = str(topo.canonical(address))
    argv = tuple(service_argv(service_template(session, address), verb))
    findings: list[Finding] = []
    up = node is not None and node.reachable
    if verb == "start" and up:
        return Plan(
            "service",
            session.cluster_name,
            (),
            summary=f"{name} already answers PING; nothing to do",
            nothing_to_do=True,
        )
    replicas = _replicas(topo, node) if node is not None and up else []
    if verb in ("stop", "restart") and node is not None and node.is_master and replicas:
        findings.append(
            Finding(
                "refuse",
                "master_with_replicas",
                f"{name} is the master of {len(replicas)} replica(s) ({', '.join(replicas)}): "
                f"{verb} would leave them without a master and its clients without writes; "
                f"run `redisops switchover` first, or pass --force",
                name,
                forceable=True,
            )
        )
    run_id = node.run_id if node is not None and up else None
    steps: list[Step] = []
    master = _lock_holder(topo, node)
    if master is not None:
        steps.append(lock_steps(master, 1))
    n = len(steps) + 1
    steps += service_steps(
        session, topo.canonical(address), verb, n, run_id=run_id, timeout=timeout
    )
    if master is not None:
        steps.append(unlock_step(master, n + 2))
    return Plan(
        "service",
        session.cluster_name,
        tuple(steps),
        tuple(findings),
        summary=f"{verb} {name}: {' '.join(argv)}",
        touched=(name,),
    )


def service_steps(
    session: Session,
    address: Address,
    verb: str,
    n: int,
    *,
    run_id: str | None = None,
    timeout: float = 60.0,
    why: str = "",
    keep_going: bool = False,
) -> list[Step]:
    """Run the node's service command for ``verb`` (step ``n``), then check the result
    (step ``n + 1``). ``keep_going``: both steps continue on failure (fencing after a
    failover, when the host may be as dead as the node)."""
    name = str(address)
    argv = tuple(service_argv(service_template(session, address), verb))
    cont = {"on_failure": "continue"} if keep_going else {}
    return [
        Step(
            n,
            name,
            "service",
            f"{verb} the redis-server service of {name}{why}",
            command=argv,
            verify="the command exits 0",
            idempotent=False,
            commit=not keep_going,
            args={"verb": verb, **cont},
        ),
        Step(
            n + 1,
            name,
            "verify-service",
            f"check that {name} {'stopped' if verb == 'stop' else 'answers PING'}",
            verify=_promise(verb, run_id),
            args={"verb": verb, "run_id": run_id, "timeout": timeout, "on_failure": "continue"},
        ),
    ]


def _replicas(topo: Topology, node: NodeInfo) -> list[str]:
    known = [str(c.address) for c in topo.children(node)]
    listed = [f"{e.ip}:{e.port}" for e in node.replicas]
    return list(dict.fromkeys(known or listed))


def _lock_holder(topo: Topology, node: NodeInfo | None) -> str | None:
    """Where the cluster lock key can live while this node's service changes: its master,
    when it is a replica of a reachable one (never the node itself, which may go down with
    the key in its dataset)."""
    if node is None or not node.reachable or not node.is_replica:
        return None
    parent = topo.parent(node)
    return str(parent.address) if parent is not None and parent.reachable else None


def _promise(verb: str, run_id: str | None) -> str:
    if verb == "stop":
        return "nothing answers on the port any more"
    if verb == "restart" and run_id:
        return f"PING answers with a run_id other than {run_id[:8]}"
    return "PING answers and the dataset is loaded"


@action("service")
def run_service(ctx: RunContext, step: Step) -> str:
    assert step.command is not None
    host = ctx.session.host(Address.parse(step.node))
    return run_service_command(host, step.node, step.command)


def run_service_command(host: Host, node: str, argv: Sequence[str]) -> str:
    """Run a service command on the node's host, privileged; one line for a non-zero exit."""
    result = host.run(list(argv), sudo=True, timeout=COMMAND_TIMEOUT_S)
    shown = " ".join(argv)
    if not result.ok:
        err = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise CommandFailed(
            f"{node}: `{shown}` exited {result.exit_status} on {host.name}: "
            f"{err[-1] if err else 'no error output'}",
            hint="check the service command (ssh: service: in the inventory) and sudo",
        )
    return f"`{shown}` exited 0 on {host.name}"


@action("verify-service")
def run_verify_service(ctx: RunContext, step: Step) -> str:
    verb = str(step.args["verb"])
    before = step.args.get("run_id")
    address = Address.parse(step.node)
    deadline = time.monotonic() + float(step.args.get("timeout", 60.0))
    last = "not checked"
    while True:
        info = ctx.session.probe(address)
        ok, last = _check(verb, info, before)
        if ok:
            return last
        if time.monotonic() >= deadline:
            raise VerifyFailed(
                f"{step.node}: after `{verb}`, {last}",
                hint="look at the service's log on the host",
            )
        ctx.progress.phase(f"waiting: {last}")
        ctx.sleep(POLL_S)


def _check(verb: str, info: NodeInfo, before: Any) -> tuple[bool, str]:
    if verb == "stop":
        if info.reachable:
            return False, "it still answers"
        return True, f"stopped ({info.error or 'not answering'})"
    if not info.reachable:
        return False, f"it does not answer ({info.error})"
    if info.loading:
        return False, "it is loading its dataset"
    if verb == "restart" and before and info.run_id == before:
        return False, "it answers with the old run_id (not restarted yet)"
    return True, f"answers PING (run_id {str(info.run_id or '?')[:8]})"


@dataclass(frozen=True)
class ServiceStatus:
    node: str
    host: str
    command: tuple[str, ...]
    exit_status: int | None
    state: str
    redis: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "host": self.host,
            "command": list(self.command),
            "exit_status": self.exit_status,
            "state": self.state,
            "redis": self.redis,
        }


def service_status(session: Session, address: Address) -> ServiceStatus:
    """What the service manager says about the node, and whether Redis answers."""
    from redisops.hostfacts import service_state

    argv = service_argv(service_template(session, address), "status")
    info = session.probe(address)
    redis = "answers PING" if info.reachable else f"not answering ({info.error})"
    try:
        host = session.host(address)
        result = host.run(argv, timeout=COMMAND_TIMEOUT_S)
    except HostKeyError:
        raise
    except RedisopsError as exc:
        return ServiceStatus(
            str(address), "unreachable", tuple(argv), None, f"unknown ({exc})", redis
        )
    state = service_state(f"exit={result.exit_status}")
    return ServiceStatus(str(address), host.name, tuple(argv), result.exit_status, state, redis)
