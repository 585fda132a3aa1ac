"""What every promotion shares: switchover, failover and the Sentinel path.

Views of a node after the promotion (for the predictions), the PING-freeze steps that
keep an old master from ending up ahead of the new history, the refusal of commands a
node does not know, the followers a promotion drops (verification waits for them), and
the small node-level moves the critical paths make (read an offset under a deadline,
unpause, retry once on a new connection).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from redisops.errors import RedisopsError, Unreachable
from redisops.info import parse_info
from redisops.model import Finding, NodeInfo, Step, Topology
from redisops.ops.common import config_unavailable
from redisops.redis_node import RedisNode
from redisops.topology import PING_FREEZE

#: written on the new master by verification and read back from every replica
JOURNAL_KEY = "redisops:journal"
PING_DEFAULT = "10"
T = TypeVar("T")


def original_ping_period(node: NodeInfo) -> tuple[str | None, Finding | None]:
    """The ``repl-ping-replica-period`` to restore after freezing it, and why not or what
    is odd: None when CONFIG cannot run (no freeze, nothing to restore); never the freeze
    value itself, which only an interrupted run leaves behind (the default is restored)."""
    value = node.config.get("repl-ping-replica-period", PING_DEFAULT)
    if not node.can_run("CONFIG"):
        return None, config_unavailable(
            node,
            "its replication PINGs cannot be frozen during the switch, so a PING landing "
            "between the catch-up and the demotion would make it full-sync (the switch "
            "usually takes milliseconds, PINGs come every 10 s)",
        )
    if value == PING_FREEZE:
        return PING_DEFAULT, Finding(
            "warn",
            "ping_period_frozen",
            f"{node.address} has repl-ping-replica-period {PING_FREEZE}, the value a switchover "
            f"sets only while it switches (an interrupted run left it): it is restored to "
            f"{PING_DEFAULT}, not kept",
            str(node.address),
        )
    return value, None


def freeze_step(n: int, node: str, period: str) -> Step:
    return Step(
        n,
        node,
        "freeze-pings",
        f"stop {node}'s replication PINGs during the switch",
        command=("CONFIG", "SET", "repl-ping-replica-period", PING_FREEZE),
        verify="CONFIG SET returns OK",
        rollback=("CONFIG", "SET", "repl-ping-replica-period", period),
        args={"optional": True, "runtime_only": True},
    )


def restore_pings_step(n: int, node: str, period: str) -> Step:
    """Put the PING period back, only if the freeze step changed it."""
    return Step(
        n,
        node,
        "command",
        f"restore {node}'s PING period",
        command=("CONFIG", "SET", "repl-ping-replica-period", period),
        verify="CONFIG SET returns OK",
        args={
            "on_failure": "continue",
            "if_fact": "pings_frozen",
            "if_fact_note": "the PING period was not changed",
        },
    )


def command_refusals(needs: dict[str, list[NodeInfo]]) -> list[Finding]:
    """Refusals for commands the plan must send that a node does not know (renamed or
    disabled with rename-command): ``{command: [nodes it is sent to]}``."""
    out = []
    for command, nodes in needs.items():
        for node in nodes:
            if node.reachable and not node.can_run(command):
                out.append(
                    Finding(
                        "refuse",
                        "command_unavailable",
                        f"{command} is renamed or disabled on {node.address}, and this plan "
                        f"must send it there: pass --rename-command {command}=NEWNAME (or "
                        f"renamed_commands in the inventory) if it is renamed",
                        str(node.address),
                    )
                )
    return out


def promoted_view(target: NodeInfo, offset: int) -> NodeInfo:
    """The target as it will look right after ``REPLICAOF NO ONE`` at ``offset`` (§4.1)."""
    info = dict(target.info)
    info.update(
        {
            "role": "master",
            "master_replid": "f" * 40,  # a fresh id nobody knows
            "master_replid2": target.replid,
            "second_repl_offset": str(offset + 1),
            "master_repl_offset": str(offset),
        }
    )
    for k in ("master_host", "master_port", "master_link_status"):
        info.pop(k, None)
    return NodeInfo(target.address, True, None, info, target.config, None, target.read_at)


def at_offset(node: NodeInfo, offset: int) -> NodeInfo:
    """``node`` once it has applied everything up to ``offset`` (caught up during the pause)."""
    info = dict(node.info)
    info["master_repl_offset"] = str(offset)
    if node.is_replica:
        info["slave_repl_offset"] = str(offset)
        info["slave_read_repl_offset"] = str(offset)
    return NodeInfo(node.address, True, None, info, node.config, node.role_reply, node.read_at)


def followers_of(topo: Topology, node: NodeInfo) -> dict[str, str]:
    """The reachable replicas under ``node`` (any depth) and the master each follows.

    Promoting ``node`` (REPLICAOF NO ONE) gives it a new replication id and drops its
    replicas; they reconnect on their next replication cron (within a second), continue
    partially and drop their own replicas in turn. Verification waits for all of them.
    """
    return {
        str(d.address): str(topo.canonical(d.master_address))
        for d in topo.descendants(node)
        if d.reachable and d.master_address is not None
    }


def repl_offset(node: RedisNode, timeout: float) -> int:
    info = parse_info(str(node.execute("INFO", "replication", timeout=max(timeout, 0.001))))
    return int(info.get("master_repl_offset", 0) or 0)


def unpause(node: RedisNode) -> str | None:
    """``CLIENT UNPAUSE``, best effort (the pause also expires by itself); the error, if any."""
    try:
        node.execute("CLIENT", "UNPAUSE", timeout=2.0)
    except RedisopsError as exc:
        return str(exc)
    return None


def reconnecting(node: RedisNode, call: Callable[[], T]) -> T:
    """``call()``, once more on a new connection if the first one was dropped."""
    try:
        return call()
    except Unreachable:
        node.close()
        return call()


def partial_only_findings(
    target: NodeInfo, nodes: list[NodeInfo], syncs: dict[str, str]
) -> list[Finding]:
    """The nodes that, once ``target`` is the master, can follow it only by partial
    resync (they cannot load its RDB), e.g. Redis 7.0 nodes under a Valkey 8.1 master
    during a migration. One that would need a full sync right away is refused."""
    out: list[Finding] = []
    ts = target.server
    for node in nodes:
        why = node.cannot_load_from(target)
        if why is None:
            continue
        name = str(node.address)
        if syncs.get(name, "partial") != "partial":
            out.append(
                Finding(
                    "refuse",
                    "cannot_load",
                    f"{name} would need a full sync from {target.address}, and {why}: it "
                    f"would retry the sync in a loop; upgrade it or detach it first",
                    name,
                    forceable=True,
                )
            )
            continue
        out.append(
            Finding(
                "warn",
                "partial_only",
                f"{name} continues partially, but {why}: until it is upgraded it can follow "
                f"{target.address} only by partial resync (a backlog overrun or a restart "
                f"without its RDB would leave it retrying a full sync in a loop), and "
                f"commands only {ts} has would fail on it",
                name,
            )
        )
    return out
