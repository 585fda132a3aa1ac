"""``detach``: ``REPLICAOF NO ONE`` on a replica. Data kept; the node becomes a writable
master with a new history (its old one becomes replid2), and its own replicas follow it."""

from __future__ import annotations

from redisops.engine.predict import promotion_effects
from redisops.errors import VerifyFailed
from redisops.model import Address, Finding, Plan, Step, Topology
from redisops.ops.common import (
    Options,
    lock_steps,
    reachable_or_finding,
    sentinel_finding,
    unlock_step,
)
from redisops.plan import RunContext, action
from redisops.session import Session


def plan_detach(topo: Topology, replica_addr: Address, opts: Options, session: Session) -> Plan:
    findings: list[Finding] = []
    replica, f = reachable_or_finding(topo, replica_addr, "replica")
    cluster = session.cluster_name
    if replica is None:
        return Plan(
            "detach", cluster, (), (f,) if f else (), summary="cannot plan: the node is unreachable"
        )
    r = str(replica.address)
    if replica.is_master:
        return Plan(
            "detach",
            cluster,
            (),
            (),
            nothing_to_do=True,
            summary=f"{r} is already a master; nothing to do",
        )
    sentinel = sentinel_finding([replica], session, opts.force)
    if sentinel is not None:
        findings.append(sentinel)
    subs = topo.descendants(replica)
    old_master = replica.master_address
    effects = promotion_effects(replica)
    findings.append(
        Finding(
            "warn",
            "becomes_master",
            f"{r} keeps its {replica.keys} keys and becomes a writable master with a new history; it no longer "
            f"receives {old_master}'s writes, and writes sent to it are not replicated back (two masters)",
            r,
        )
    )
    if replica.link != "up":
        findings.append(
            Finding(
                "warn",
                "link_down",
                f"{r}'s link is down: it keeps the data it had at offset {replica.offset}",
                r,
            )
        )
    if subs:
        findings.append(
            Finding(
                "info",
                "followers",
                f"its replicas follow it: {', '.join(str(s.address) for s in subs)} "
                f"(partial resync through replid2)",
                r,
            )
        )
    top = topo.root(replica)
    lock_on = str(top.address) if top is not None else r
    steps = [
        lock_steps(lock_on, 1),
        Step(
            2,
            r,
            "command",
            f"promote {r}",
            command=("REPLICAOF", "NO", "ONE"),
            precondition=f"{r} is a replica of {old_master}",
            verify="ROLE shows master; master_replid2 is the old replid",
            commit=True,
            idempotent=False,
            rollback=("REPLICAOF", old_master.host, str(old_master.port)) if old_master else None,
        ),
        Step(
            3,
            r,
            "verify-detach",
            "check the promotion",
            verify=f"role master, replid2 = {replica.replid[:8]}, second_repl_offset = {replica.offset + 1}",
            args={
                "old_replid": replica.replid,
                "subs": [str(s.address) for s in topo.children(replica)],
                "on_failure": "continue",
            },
        ),
    ]
    n = 4
    if opts.persist:
        steps.append(
            Step(
                n,
                r,
                "config-rewrite",
                f"persist the change in {r}'s config file",
                command=("CONFIG", "REWRITE"),
                verify="CONFIG REWRITE returns OK",
                args={"on_failure": "continue"},
            )
        )
        n += 1
    steps.append(unlock_step(lock_on, n))
    prediction = {
        "sync": "none",
        "reason": effects["reason"],
        "transfer_bytes": 0,
        "estimated_seconds": 0.0,
        "risks": [f.message for f in findings if f.level == "warn"],
        "replid2": effects["replid2"],
        "second_repl_offset": effects["second_repl_offset"],
        "followers": [
            {
                "replica": str(s.address),
                "master": r,
                "sync": "partial",
                "reason": "reconnects after the id shift and continues through replid2",
            }
            for s in topo.children(replica)
        ],
    }
    return Plan(
        "detach",
        cluster,
        tuple(steps),
        tuple(findings),
        prediction,
        f"detach {r} from {old_master}: it becomes a master (no data moves)",
        touched=(r, *[str(s.address) for s in subs]),
    )


@action("verify-detach")
def verify_detach(ctx: RunContext, step: Step) -> str:
    node = ctx.node(step.node)
    info = node.info("replication")
    old = str(step.args.get("old_replid", ""))
    if info.get("role") != "master":
        raise VerifyFailed(f"{step.node} is still {info.get('role')}")
    if old and info.get("master_replid2") != old:
        raise VerifyFailed(
            f"{step.node}: replid2 is {info.get('master_replid2')}, expected the old id {old}"
        )
    subs = list(step.args.get("subs", []))
    for _ in range(100):
        lines = [v for k, v in node.info("replication").items() if k.startswith("slave")]
        online = sum(1 for v in lines if "state=online" in v)
        if online >= len(subs):
            break
        ctx.sleep(0.05)
    else:
        raise VerifyFailed(f"{step.node}: {len(subs)} replica(s) expected back online, not all are")
    return f"master with new id {info.get('master_replid', '')[:8]}; {len(subs)} replica(s) back online"
