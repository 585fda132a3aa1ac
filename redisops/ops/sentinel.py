"""Sentinel awareness: what the sentinels think, and asking them to fail over.

Sentinel is the distributed engine many Redis deployments already run for automatic
failover. redisops must not fight it: manual REPLICAOF changes to a set it manages are
refused unless ``--force``; ``switchover --via-sentinel`` asks it (``SENTINEL FAILOVER``)
and waits for the new master; ``status`` shows its view and its quorum (``CKQUORUM``).
"""

from __future__ import annotations

import time
from typing import Any

from redisops.errors import CommandFailed, RedisopsError, Unreachable, WaitTimeout
from redisops.model import Address, Step
from redisops.plan import RunContext, action
from redisops.redis_node import RedisNode
from redisops.retry import NO_RETRY
from redisops.session import Session


def _pairs(reply: Any) -> dict[str, str]:
    if not isinstance(reply, list):
        return {}
    return {str(reply[i]): str(reply[i + 1]) for i in range(0, len(reply) - 1, 2)}


def _sentinel(session: Session, addr: Address) -> RedisNode:
    return RedisNode(addr, session.options_for(addr), NO_RETRY)


def master_name(session: Session, errors: dict[str, RedisopsError] | None = None) -> str | None:
    """``--sentinel-master``, or the only master the first reachable sentinel monitors.

    ``errors`` receives, per sentinel address, why it could not be asked.
    """
    if session.sentinel_master:
        return session.sentinel_master
    for addr in session.sentinels:
        try:
            with _sentinel(session, addr) as s:
                masters = s.execute("SENTINEL", "MASTERS")
        except RedisopsError as exc:
            if errors is not None:
                errors[str(addr)] = exc
            continue
        names = [n for n in (_pairs(m).get("name") for m in masters or []) if n]
        if len(names) == 1:
            return names[0]
        if errors is not None:
            errors[str(addr)] = CommandFailed(
                f"monitors {len(names)} masters ({', '.join(sorted(names))}): "
                f"name one with --sentinel-master"
                if names
                else "monitors no master"
            )
    return None


def _reason(exc: RedisopsError, addr: Address) -> str:
    return exc.message.removeprefix(f"{addr}: ")


def master_addr(session: Session, addr: Address, name: str) -> Address | None:
    with _sentinel(session, addr) as s:
        reply = s.execute("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)
    if isinstance(reply, list) and len(reply) == 2:
        return Address.parse(
            f"{reply[0]}:{reply[1]}" if ":" not in str(reply[0]) else f"[{reply[0]}]:{reply[1]}"
        )
    return None


def sentinel_view(session: Session) -> dict[str, Any] | None:
    """Each sentinel's idea of the master, and the quorum check, for ``status``.

    A sentinel that cannot be asked is listed with the real cause (``reachable: false``);
    ``agree`` is None when no sentinel named a master (nothing to agree on).
    """
    if not session.sentinels:
        return None
    errors: dict[str, RedisopsError] = {}
    name = master_name(session, errors)
    view: dict[str, Any] = {
        "name": name,
        "master": None,
        "sentinels": [],
        "quorum": None,
        "agree": True,
    }
    masters = set()
    answered = 0
    for addr in session.sentinels:
        entry: dict[str, Any] = {"address": str(addr), "reachable": True}
        try:
            if name is None:
                if str(addr) in errors:
                    raise errors[str(addr)]
                with _sentinel(session, addr) as s:
                    s.execute("PING")
                entry["status"] = "answers, but names no master (use --sentinel-master)"
                view["sentinels"].append(entry)
                continue
            m = master_addr(session, addr, name)
            answered += 1
            entry["master"] = str(m) if m else None
            entry["status"] = f"master {m}" if m else f"does not know a master named {name!r}"
            if m:
                masters.add(str(m))
            if view["quorum"] is None:
                with _sentinel(session, addr) as s:
                    try:
                        view["quorum"] = str(s.execute("SENTINEL", "CKQUORUM", name))
                    except CommandFailed as exc:
                        view["quorum"] = f"FAILED: {exc.message.split('failed: ', 1)[-1]}"
        except Unreachable as exc:
            entry["reachable"] = False
            entry["status"] = f"unreachable: {_reason(exc, addr)}"
        except RedisopsError as exc:
            entry["status"] = _reason(exc, addr)
        view["sentinels"].append(entry)
    view["master"] = sorted(masters)[0] if len(masters) == 1 else None
    view["agree"] = len(masters) <= 1 if masters else None
    return view


def discover_master(session: Session) -> Address | None:
    """The master's address as the first sentinel that answers names it."""
    name = master_name(session)
    if name is None:
        return None
    for addr in session.sentinels:
        try:
            found = master_addr(session, addr, name)
        except RedisopsError:
            continue
        if found is not None:
            return found
    return None


def _new_master(ctx: RunContext, sentinel: Address, name: str, old: Address) -> Address | None:
    """The master Sentinel names now, once it differs from ``old`` and says it is one."""
    try:
        new = master_addr(ctx.session, sentinel, name)
    except RedisopsError:
        return None
    if new is None or new == old:
        return None
    info = ctx.session.probe(new)
    return new if info.reachable and info.is_master else None


def _wait_candidates(
    ctx: RunContext, mnode: RedisNode, candidates: list[str], deadline: float
) -> int:
    """Until every replica Sentinel may promote has the paused master's offset."""
    from redisops.ops.promotion import repl_offset

    pending = list(candidates)
    while True:
        moff = repl_offset(mnode, deadline - time.perf_counter())
        pending = [
            c for c in pending if repl_offset(ctx.node(c), deadline - time.perf_counter()) < moff
        ]
        if not pending:
            return moff
        if time.perf_counter() >= deadline:
            raise WaitTimeout(
                f"{', '.join(pending)} did not reach {mnode.address}'s offset {moff} while "
                f"writes were paused"
            )
        ctx.progress.update("replicas catching up", len(candidates) - len(pending), None)
        time.sleep(0.001)


@action("sentinel-failover")
def sentinel_failover(ctx: RunContext, step: Step) -> str:
    """Pause writes, let every candidate catch up, ``SENTINEL FAILOVER``, wait for the new
    master, demote the old master under it at the same offset, unpause.

    Without the pause, the old master would keep acknowledging writes (and Sentinel's own
    hello messages) after the promotion; demoting it would then need a full resync that
    discards them. Sentinel would demote it too, but only seconds later.
    """
    from redisops.ops.promotion import unpause

    name = str(step.args["name"])
    old = Address.parse(str(step.args["master"]))
    timeout_ms = int(step.args.get("timeout_ms", 5000))
    candidates = [str(c) for c in step.args.get("candidates", [])]
    sentinel = Address.parse(step.node)
    mnode = ctx.node(str(old))
    mnode.connect()
    t0 = time.perf_counter()
    try:
        mnode.execute("CLIENT", "PAUSE", str(timeout_ms), "WRITE")
        offset = _wait_candidates(ctx, mnode, candidates, t0 + timeout_ms / 1000.0 * 0.5)
        with _sentinel(ctx.session, sentinel) as s:
            s.execute("SENTINEL", "FAILOVER", name)
    except RedisopsError as exc:
        left = unpause(mnode)
        note = "; writes unpaused" if left is None else f"; could not unpause ({left})"
        raise type(exc)(f"{exc.message}{note}", hint=exc.hint) from None
    except BaseException:
        unpause(mnode)
        raise
    # Sentinel is failing over now: from here on, finish forward (an interrupt waits)
    ctx.mark_committed()
    with ctx.critical():
        return _follow_sentinel(ctx, step, mnode, sentinel, offset, t0)


def _follow_sentinel(
    ctx: RunContext, step: Step, mnode: RedisNode, sentinel: Address, offset: int, t0: float
) -> str:
    """After ``SENTINEL FAILOVER``: wait for the new master, demote the old one under it
    at the paused offset, unpause."""
    from redisops.ops.promotion import reconnecting, unpause

    name = str(step.args["name"])
    old = Address.parse(str(step.args["master"]))
    prefer = str(step.args.get("prefer") or "")
    timeout_ms = int(step.args.get("timeout_ms", 5000))
    asked = time.perf_counter()
    new: Address | None = None
    while time.perf_counter() < asked + 60.0:
        new = _new_master(ctx, sentinel, name, old)
        if new is not None:
            break
        ctx.sleep(0.05)
    if new is None:
        unpause(mnode)
        ctx.warnings.append(
            f"Sentinel accepted SENTINEL FAILOVER {name} but named no new master within 60s; "
            f"writes are unpaused on {old}"
        )
        return f"SENTINEL FAILOVER {name} sent; no new master seen"
    promoted = time.perf_counter()
    # Sentinel kills the clients of the nodes it reconfigures: start afresh
    ctx.node(str(new)).close()
    ctx.facts["new_master"] = str(new)
    ctx.facts["lock_release_on"] = str(new)
    ctx.facts["switch_offset"] = offset
    notes = [f"Sentinel promoted {new} in {(promoted - asked) * 1000:.0f} ms"]
    if prefer and str(new) != prefer:
        ctx.warnings.append(
            f"Sentinel chose {new}, not {prefer}: its rules (priority, offset, run id) preferred it"
        )
    try:
        reconnecting(mnode, lambda: mnode.execute("REPLICAOF", new.host, str(new.port)))
        notes.append(f"{old} made its replica at offset {offset}")
    except RedisopsError as exc:
        ctx.warnings.append(f"could not make {old} a replica of {new} ({exc}); Sentinel will")
    left = unpause(mnode)
    t1 = time.perf_counter()
    if (t1 - t0) * 1000.0 > timeout_ms:
        ctx.warnings.append(
            f"Sentinel took longer than the {timeout_ms} ms write pause: {old} took writes "
            f"again before it was demoted, and those are lost (raise --timeout-ms)"
        )
    if left is not None:
        ctx.warnings.append(f"could not unpause {old} ({left}); the pause ends by itself")
    ctx.facts["pause_ms"] = (t1 - t0) * 1000.0
    notes.append(f"writes paused {ctx.facts['pause_ms']:.0f} ms")
    return "; ".join(notes)
