"""``attach``: make REPLICA a replica of MASTER, predicted, followed and verified.

:func:`plan_attach` is pure (snapshot in, plan out); the step routines registered here
(``wait-sync``, ``verify-sync``) run it against live nodes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from redisops.engine.predict import (
    RateParams,
    predict_followers,
    predict_returning,
    predict_sync,
)
from redisops.errors import VerifyFailed, WaitTimeout
from redisops.inventory import Credentials
from redisops.model import REDACTED, Address, Finding, NodeInfo, Plan, Step, Topology
from redisops.ops.common import (
    Options,
    config_unavailable,
    group_members,
    group_nodes,
    lock_steps,
    persist_refusal,
    persist_step,
    reachable_or_finding,
    sentinel_finding,
    unlock_step,
)
from redisops.plan import RunContext, action, remembered
from redisops.session import Session


def plan_attach(
    topo: Topology,
    replica_addr: Address,
    master_addr: Address,
    opts: Options,
    creds: Credentials,
    session: Session,
    write_rate: float = 0.0,
    known_followers: Sequence[tuple[NodeInfo, float]] = (),
) -> Plan:
    """Preflight, steps and prediction for ``REPLICAOF master`` on ``replica``.

    ``known_followers``: replicas last seen under ``replica`` (with the age of that
    knowledge) that are not connected to it now; they will sync from it when they return.
    """
    findings: list[Finding] = []
    replica, f1 = reachable_or_finding(topo, replica_addr, "replica")
    master, f2 = reachable_or_finding(topo, master_addr, "master")
    findings += [f for f in (f1, f2) if f is not None]
    cluster = session.cluster_name
    if replica is None or master is None:
        return Plan(
            "attach", cluster, (), tuple(findings), summary="cannot plan: a node is unreachable"
        )
    r, m = str(replica.address), str(master.address)
    if session.cluster is None:
        # name the lock after the master it is taken on: every operation on this cluster
        # (whatever its seeds, e.g. a standalone node that sorts first) excludes the others
        cluster = _lock_node(topo, master)[0]
    if replica.address == master.address or (replica.run_id and replica.run_id == master.run_id):
        findings.append(Finding("refuse", "same_node", f"{r} and {m} are the same node", r))
        return Plan(
            "attach", cluster, (), tuple(findings), summary="cannot attach a node to itself"
        )
    if master.address in {d.address for d in topo.descendants(replica)}:
        findings.append(
            Finding(
                "refuse",
                "cycle",
                f"{m} replicates (directly or through others) from {r}: attaching would make a cycle",
                m,
            )
        )
    current = replica.master_address
    if replica.is_replica and current is not None and topo.canonical(current) == master.address:
        link = replica.link
        note = "" if link == "up" else f" (its link is {link}: see 'redisops status')"
        return Plan(
            "attach",
            cluster,
            (),
            tuple(findings),
            nothing_to_do=True,
            summary=f"{r} is already a replica of {m}{note}; nothing to do",
        )
    sentinel = sentinel_finding([replica, master], session, opts.force)
    if sentinel is not None:
        findings.append(sentinel)
    params = RateParams(bandwidth=opts.bandwidth, write_rate=write_rate)
    prediction = predict_sync(master, replica, params)
    subs = topo.children(replica)
    followers = predict_followers(
        replica, subs, prediction, master.replid if prediction.sync == "partial" else None, params
    )
    returning = [predict_returning(replica, k, age, prediction) for k, age in known_followers]
    prediction.followers = followers + returning
    for ret, (_, age) in zip(returning, known_followers, strict=True):
        findings.append(
            Finding(
                "warn",
                "returning_replica",
                f"{ret.replica} was a replica of {r} {age:.0f}s ago and is not connected now: "
                f"when it comes back it will {ret.sync}-sync from {r}",
                ret.replica,
            )
        )
    findings += version_findings(replica, master, prediction.sync)
    if prediction.sync == "full" and replica.keys:
        findings.append(
            Finding(
                "confirm",
                "replica_has_data",
                f"{r} holds {replica.keys} keys that the full sync will discard "
                f"(they are replaced by {m}'s dataset)",
                r,
            )
        )
    if subs:
        names = ", ".join(f"{f.replica} ({f.sync})" for f in followers)
        findings.append(
            Finding(
                "warn",
                "has_replicas",
                f"{r} has replicas of its own, which will follow it: {names}",
                r,
            )
        )
    if master.is_replica:
        findings.append(
            Finding(
                "warn",
                "chained",
                f"{m} is itself a replica of {master.master_address}: {r} will be a chained "
                f"replica (it gets the stream second-hand; {m}'s link must stay up)",
                m,
            )
        )
    if master.config.get("save", "x") == "" and master.config.get("appendonly") == "no":
        findings.append(
            Finding(
                "warn",
                "unsafe_master",
                f'{m} has no persistence (save "", appendonly no): if it restarts it comes back '
                f"empty and every replica copies the empty dataset",
                m,
            )
        )
    for risk in prediction.risks:
        if "fork may need" in risk:
            findings.append(Finding("warn", "fork_headroom", risk, m))
        elif "resync loop" in risk:
            findings.append(Finding("warn", "resync_loop", risk, m))
    rollback = _rollback_command(replica)
    if rollback is None:
        findings.append(
            Finding(
                "refuse",
                "unknown_role",
                f"{r} is neither a master nor a replica with a known master (role "
                f"{replica.role}): there would be nothing to roll back to",
                r,
            )
        )
    findings += _hardened_findings(replica, master, creds, opts, session)
    give_password = creds.password is not None and replica.can_run("CONFIG")
    steps: list[Step] = []
    n = 1
    lock_on, local_only = _lock_node(topo, master)
    steps.append(lock_steps(lock_on, n, local_only=local_only))
    n += 1
    steps.append(
        Step(
            n,
            m,
            "baseline",
            f"record {m}'s sync counters",
            command=("INFO", "stats"),
            verify="sync_full / sync_partial_ok read",
        )
    )
    n += 1
    if give_password:
        if creds.username:
            steps.append(
                Step(
                    n,
                    r,
                    "command",
                    f"let {r} authenticate to {m} as {creds.username}",
                    command=("CONFIG", "SET", "masteruser", creds.username),
                    precondition=f"{m} requires auth",
                    verify="CONFIG SET returns OK",
                    rollback=("CONFIG", "SET", "masteruser", replica.config.get("masteruser", "")),
                )
            )
            n += 1
        steps.append(
            Step(
                n,
                r,
                "command",
                f"give {r} the password for {m} ({creds.source})",
                command=("CONFIG", "SET", "masterauth", REDACTED),
                precondition=f"{m} requires auth",
                verify="CONFIG SET returns OK",
                # a rollback puts back the password it had (read at run time, never shown)
                rollback=("CONFIG", "SET", "masterauth", REDACTED),
                args={
                    "secret": (3, "password"),
                    "remember_config": "masterauth",
                    "rollback_secret": (3, remembered(r, "masterauth")),
                    "runtime_only": True,
                },
            )
        )
        n += 1
    host, port = master.address.host, str(master.address.port)
    steps.append(
        Step(
            n,
            r,
            "command",
            f"point {r} at {m}",
            command=("REPLICAOF", host, port),
            precondition=f"{r} is {'a master' if replica.is_master else 'a replica of ' + str(current)}",
            verify=f"ROLE on {r} shows master {m}",
            commit=True,
            idempotent=False,
            rollback=rollback,
        )
    )
    n += 1
    if opts.wait:
        steps.append(
            Step(
                n,
                r,
                "wait-sync",
                f"follow the {prediction.sync} sync until {r} is in sync",
                verify="link up and offset equal to the master's",
                args={"master": m, "timeout": opts.timeout},
            )
        )
        n += 1
    if opts.persist:
        steps.append(persist_step(n, r))
        n += 1
    if opts.wait:
        steps.append(
            Step(
                n,
                r,
                "verify-sync",
                "check what happened against the prediction",
                verify=f"{m}: sync_full/sync_partial_ok deltas match the predicted {prediction.sync} sync; "
                f"offsets converge; DBSIZE equal",
                args={"master": m, "predicted": prediction.sync, "on_failure": "continue"},
            )
        )
        n += 1
    steps.append(unlock_step(lock_on, n))
    pred = prediction.to_dict()
    summary = (
        f"attach {r} to {m}: {prediction.sync} resync predicted "
        f"({_fmt_bytes(prediction.transfer_bytes)}, ~{prediction.estimated_seconds:.1f}s)"
    )
    return Plan(
        "attach",
        cluster,
        tuple(steps),
        tuple(findings),
        pred,
        summary,
        touched=tuple(dict.fromkeys((r, m, *[str(s.address) for s in subs], *group_nodes(topo)))),
        members=group_members(topo),
    )


def version_findings(replica: NodeInfo, master: NodeInfo, sync: str) -> list[Finding]:
    """A replica must be able to load its master's RDB for a full sync; a partial resync
    ships no RDB, so across formats it works but stays the only way to follow."""
    why = replica.cannot_load_from(master)
    if why is None:
        return []
    r, m = str(replica.address), str(master.address)
    if sync == "full":
        return [
            Finding(
                "refuse",
                "version",
                f"{r} cannot take a full sync from {m}: {why}. The sync would fail at the "
                f"load and be retried in a loop. Upgrade {r} first, or attach it to a "
                f"master it can load",
                r,
            )
        ]
    return [
        Finding(
            "warn",
            "partial_only",
            f"{r} continues partially, but {why}: if it ever needs a full sync from {m} "
            f"it cannot load it; upgrade it",
            r,
        )
    ]


def _hardened_findings(
    replica: NodeInfo, master: NodeInfo, creds: Credentials, opts: Options, session: Session
) -> list[Finding]:
    """What cannot be checked or done on nodes where CONFIG is renamed or disabled."""
    out = [
        config_unavailable(
            master, "whether it persists its data (save, appendonly) cannot be checked"
        ),
        config_unavailable(
            replica,
            "its replication settings cannot be read (the prediction assumes Redis defaults)"
            + (
                ", and it cannot be given the master's password (CONFIG SET masterauth): it "
                "must already have masterauth in its redis.conf"
                if creds.password is not None
                else ""
            ),
        ),
        persist_refusal([replica], session) if opts.persist else None,
    ]
    return [f for f in out if f is not None]


def _lock_node(topo: Topology, master: NodeInfo) -> tuple[str, str | None]:
    """Where the lock key goes (the top master above ``master``), or why only the local
    layer can be taken (that master is unreachable)."""
    top = topo.root(master)
    if top is not None and top.is_master:
        return str(top.address), None
    return str(master.address), f"the master above {master.address} is unreachable"


def _rollback_command(replica: NodeInfo) -> tuple[str, ...] | None:
    """What puts ``replica`` back where it is, or None when its role is unknown."""
    if replica.is_master:
        return ("REPLICAOF", "NO", "ONE")
    addr = replica.master_address
    if not replica.is_replica or addr is None:
        return None
    return ("REPLICAOF", addr.host, str(addr.port))


def _fmt_bytes(n: int) -> str:
    from redisops.output import human_bytes

    return human_bytes(n)


def last_known_followers(topo: Topology, replica: Address) -> list[tuple[NodeInfo, float]]:
    """Nodes last seen replicating from ``replica`` that do not answer now, each as last
    seen with the age of that knowledge (see :mod:`redisops.state`)."""
    from redisops.state import group_of

    known = group_of(replica)
    if known is None:
        return []
    now = time.time()
    out = []
    for addr in known.replicas_of(str(replica)):
        node = topo.get(Address.parse(addr))
        if node is not None and node.reachable:
            continue  # it answers: the topology has it as it is now
        last = known.node(addr)
        if last is not None:
            out.append((last, now - last.read_at))
    return out


# ----------------------------------------------------------------------------- routines


def baseline(ctx: RunContext, master: str) -> dict[str, int]:
    info = ctx.node(master).info("stats", "replication")
    return {
        "sync_full": int(info.get("sync_full", 0)),
        "sync_partial_ok": int(info.get("sync_partial_ok", 0)),
        "sync_partial_err": int(info.get("sync_partial_err", 0)),
    }


@action("wait-sync", waits=True)
def wait_sync(ctx: RunContext, step: Step) -> str:
    """Follow handshake -> transfer -> loading -> connected -> caught up, with progress.

    The master is ``args["master"]``, or, for a server the operation starts itself (a
    restore's throwaway server), the ``address`` in the fact named by ``args["master_fact"]``.
    """
    if "master" in step.args:
        master = str(step.args["master"])
    else:
        master = str(ctx.facts[str(step.args["master_fact"])]["address"])
    timeout = float(step.args.get("timeout", 300))
    rnode = ctx.node(step.node)
    mnode = ctx.node(master)
    deadline = time.monotonic() + timeout
    last_phase = ""
    seen: list[str] = []
    while True:
        rinfo = rnode.info("replication", "persistence")
        role = rnode.execute("ROLE")
        state = str(role[3]) if isinstance(role, list) and len(role) > 3 else "?"
        phase = state
        if rinfo.get("loading") == "1":
            phase = "loading"
        if phase != last_phase:
            seen.append(phase)
            last_phase = phase
        if state == "sync":
            total = int(rinfo.get("master_sync_total_bytes", 0) or 0)
            read = int(rinfo.get("master_sync_read_bytes", 0) or 0)
            ctx.progress.update("transfer", read, total or None)
        elif phase == "loading":
            ctx.progress.update("loading", 0, None)
        elif state == "connected":
            moff = int(mnode.info("replication").get("master_repl_offset", 0))
            roff = int(rinfo.get("master_repl_offset", 0))
            ctx.progress.update("catching up", roff, moff)
            if roff >= moff:
                ctx.facts.setdefault("phases_seen", seen)
                return f"in sync at offset {roff} (phases: {' -> '.join(seen)})"
        else:
            ctx.progress.update(state, 0, None)
        if time.monotonic() > deadline:
            raise WaitTimeout(
                f"{step.node} did not get in sync with {master} within {timeout:g}s: "
                + diagnose(rinfo, state, mnode.info("replication", "stats"), step.node),
                hint="see 'redisops status'; raise --timeout for large datasets",
            )
        ctx.sleep(0.1)


def diagnose(rinfo: dict[str, str], state: str, minfo: dict[str, str], replica: str) -> str:
    """Why a replica is not in sync, from INFO alone."""
    parts = [f"link {rinfo.get('master_link_status', '?')}, state {state}"]
    down = rinfo.get("master_link_down_since_seconds")
    if down not in (None, "-1"):
        parts.append(f"down for {down}s")
    if state in ("connect", "connecting"):
        parts.append("the replica cannot reach the master (address, firewall, NAT?)")
    elif state == "handshake":
        parts.append(
            "stuck in the handshake: check masterauth/masteruser, or the master is waiting to fork "
            "(repl-diskless-sync-delay)"
        )
    elif state == "sync":
        total = rinfo.get("master_sync_total_bytes", "?")
        if total in ("-1", "0"):
            parts.append(
                "the master has not started sending its RDB (waiting for the fork: "
                "repl-diskless-sync-delay, or the master refused PSYNC/SYNC: ACL permissions?)"
            )
        else:
            parts.append(f"transfer {rinfo.get('master_sync_read_bytes', '?')} of {total} bytes")
    listed = [v for k, v in minfo.items() if k.startswith("slave") and k[5:].isdigit()]
    port = replica.rsplit(":", 1)[-1]
    mine = [v for v in listed if f"port={port}," in v + ","]
    if mine:
        parts.append("the master lists it as " + "; ".join(mine))
    else:
        parts.append(f"the master does not list it among its {len(listed)} replica(s)")
    if int(minfo.get("client_output_buffer_limit_disconnections", 0) or 0):
        parts.append("the master has dropped replicas for output-buffer limits (resync loop?)")
    return ", ".join(parts)


@action("baseline")
def run_baseline(ctx: RunContext, step: Step) -> str:
    ctx.facts["baseline"] = baseline(ctx, step.node)
    return "counters " + ", ".join(f"{k}={v}" for k, v in ctx.facts["baseline"].items())


@action("verify-sync", waits=True)
def verify_sync(ctx: RunContext, step: Step) -> str:
    """Which sync happened (counter deltas) vs the prediction; offsets converge; DBSIZE equal."""
    master = str(step.args["master"])
    predicted = str(step.args.get("predicted", ""))
    before: dict[str, int] = ctx.facts.get("baseline", {})
    after = baseline(ctx, master)
    observed = "unknown"
    if before:
        if after["sync_full"] > before["sync_full"]:
            observed = "full"
        elif after["sync_partial_ok"] > before["sync_partial_ok"]:
            observed = "partial"
        else:
            observed = "none"
    ctx.facts["observed_sync"] = observed
    ctx.facts["counters"] = {k: after[k] - before.get(k, 0) for k in after}
    verdict = (
        "prediction confirmed"
        if observed == predicted
        else f"prediction mismatch: predicted {predicted}, observed {observed}"
    )
    ctx.facts["prediction_check"] = verdict
    if observed != predicted and observed != "unknown":
        ctx.warnings.append(verdict)
    rnode, mnode = ctx.node(step.node), ctx.node(master)
    compared = False
    for _ in range(40):
        mi, ri = mnode.info("replication", "keyspace"), rnode.info("replication", "keyspace")
        if mi.get("master_repl_offset") == ri.get("master_repl_offset"):
            mkeys, rkeys = _total_keys(mi), _total_keys(ri)
            if mkeys != rkeys:
                raise VerifyFailed(
                    f"{step.node} has {rkeys} keys but {master} has {mkeys} at the same offset",
                    hint="check for writes on the replica (replica-read-only no?)",
                )
            compared = True
            ctx.facts["offset"] = int(mi.get("master_repl_offset", 0))
            ctx.facts["keys"] = mkeys
            break
        ctx.sleep(0.05)
    if not compared:
        raise VerifyFailed(
            f"offsets of {step.node} and {master} did not converge",
            hint="writes may be too fast for the link; see 'redisops status'",
        )
    return f"{verdict}; offsets equal at {ctx.facts['offset']}; {ctx.facts['keys']} keys on both"


def _total_keys(info: dict[str, str]) -> int:
    from redisops.info import keyspace

    return sum(v["keys"] for v in keyspace(info).values())
