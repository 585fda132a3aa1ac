"""Sentinel awareness: what the sentinels think, and asking them to fail over.

Sentinel is the distributed engine many Redis deployments already run for automatic
failover. redisops must not fight it: manual REPLICAOF changes to a set it manages are
refused unless ``--force``; ``switchover --via-sentinel`` asks it (``SENTINEL FAILOVER``)
and waits for the new master; ``status`` shows its view and its quorum (``CKQUORUM``).
"""

from __future__ import annotations

import time
from typing import Any

from redisops.errors import CommandFailed, RedisopsError, WaitTimeout
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


def master_name(session: Session) -> str | None:
    """``--sentinel-master``, or the only master the first reachable sentinel monitors."""
    if session.sentinel_master:
        return session.sentinel_master
    for addr in session.sentinels:
        try:
            with _sentinel(session, addr) as s:
                masters = s.execute("SENTINEL", "MASTERS")
        except RedisopsError:
            continue
        names = [_pairs(m).get("name") for m in masters or []]
        names = [n for n in names if n]
        if len(names) == 1:
            return names[0]
    return None


def master_addr(session: Session, addr: Address, name: str) -> Address | None:
    with _sentinel(session, addr) as s:
        reply = s.execute("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)
    if isinstance(reply, list) and len(reply) == 2:
        return Address.parse(
            f"{reply[0]}:{reply[1]}" if ":" not in str(reply[0]) else f"[{reply[0]}]:{reply[1]}"
        )
    return None


def sentinel_view(session: Session) -> dict[str, Any] | None:
    """Each sentinel's idea of the master, and the quorum check, for ``status``."""
    if not session.sentinels:
        return None
    name = master_name(session)
    view: dict[str, Any] = {
        "name": name,
        "master": None,
        "sentinels": [],
        "quorum": None,
        "agree": True,
    }
    masters = set()
    for addr in session.sentinels:
        entry: dict[str, Any] = {"address": str(addr)}
        try:
            if name is None:
                raise CommandFailed("no master name (use --sentinel-master)")
            m = master_addr(session, addr, name)
            entry["master"] = str(m) if m else None
            entry["status"] = f"master {m}" if m else "does not know the master"
            if m:
                masters.add(str(m))
            if view["quorum"] is None:
                with _sentinel(session, addr) as s:
                    try:
                        view["quorum"] = str(s.execute("SENTINEL", "CKQUORUM", name))
                    except CommandFailed as exc:
                        view["quorum"] = f"FAILED: {exc.message.split('failed: ', 1)[-1]}"
        except RedisopsError as exc:
            entry["status"] = f"unreachable: {exc}"
        view["sentinels"].append(entry)
    view["master"] = sorted(masters)[0] if len(masters) == 1 else None
    view["agree"] = len(masters) <= 1
    return view


@action("sentinel-failover")
def sentinel_failover(ctx: RunContext, step: Step) -> str:
    """``SENTINEL FAILOVER name``, then poll until a new master is in place."""
    name = str(step.args["name"])
    old = Address.parse(str(step.args["master"]))
    addr = Address.parse(step.node)
    t0 = time.monotonic()
    with _sentinel(ctx.session, addr) as s:
        s.execute("SENTINEL", "FAILOVER", name)
    deadline = t0 + 60.0
    while time.monotonic() < deadline:
        try:
            new = master_addr(ctx.session, addr, name)
        except RedisopsError:
            new = None
        if new is not None and new != old:
            try:
                role = ctx.session.probe(new)
            except RedisopsError:
                role = None
            if role is not None and role.reachable and role.is_master:
                ctx.facts["new_master"] = str(new)
                ctx.facts["pause_ms"] = (time.monotonic() - t0) * 1000.0
                return f"Sentinel promoted {new} in {ctx.facts['pause_ms']:.0f} ms"
        ctx.sleep(0.1)
    raise WaitTimeout(f"Sentinel did not finish failing {name} over within 60s")
