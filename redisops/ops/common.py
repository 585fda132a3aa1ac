"""Pieces every operation shares: reading the cluster, measuring the write rate,
Sentinel detection, the lock/unlock steps, and the wait/verify routines."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from redisops.errors import Refused
from redisops.model import Address, Finding, NodeInfo, Step, Topology
from redisops.session import Session

SENTINEL_SUBSCRIBERS = "redisops_sentinel_subscribers"


@dataclass(frozen=True)
class Options:
    """What every mutating command takes besides its targets."""

    dry_run: bool = False
    yes: bool = False
    force: bool = False
    persist: bool = False
    bandwidth: float = 100e6
    write_rate: float | None = None  # bytes/s; None: measure
    sample_seconds: float = 1.0
    timeout: float = 300.0
    wait: bool = True


def measure_write_rate(
    session: Session, master: Address, seconds: float, sleep: Callable[[float], None] = time.sleep
) -> float:
    """Bytes/s of replication stream the master produces now (two offset samples)."""
    if seconds <= 0:
        return 0.0
    node = session.node(master)
    t0 = time.monotonic()
    o0 = int(node.info("replication").get("master_repl_offset", "0"))
    sleep(seconds)
    o1 = int(node.info("replication").get("master_repl_offset", "0"))
    return max(o1 - o0, 0) / max(time.monotonic() - t0, 1e-3)


def sentinel_watched(node: NodeInfo) -> bool:
    """Sentinels subscribe to ``__sentinel__:hello`` on every instance they monitor."""
    try:
        return int(node.info.get(SENTINEL_SUBSCRIBERS, "0")) > 0
    except ValueError:
        return False


def sentinel_finding(nodes: list[NodeInfo], session: Session, force: bool) -> Finding | None:
    watched = [str(n.address) for n in nodes if n.reachable and sentinel_watched(n)]
    if not watched and not session.sentinels:
        return None
    where = ", ".join(watched) if watched else "the given --sentinel"
    return Finding(
        "refuse",
        "sentinel_managed",
        f"Sentinel monitors {where}: a manual change will be fought or undone by Sentinel "
        f"(use its failover, or --force to act anyway)",
        forceable=True,
    )


def reachable_or_finding(
    topo: Topology, address: Address, what: str
) -> tuple[NodeInfo | None, Finding | None]:
    """The node at ``address`` when it is a reachable Redis data node, else why not: a
    Sentinel, a cluster-mode node or another service is refused (exit 5) like an
    unreachable node (exit 3), before anything is planned on it."""
    node = topo.get(address)
    if node is None:
        return None, Finding(
            "refuse", "unreachable", f"{what} {address} was not found", str(address)
        )
    unfit = unfit_finding(node, what)
    if unfit is not None:
        return None, unfit
    if not node.reachable:
        return None, Finding(
            "refuse", "unreachable", f"{what} {address} is unreachable: {node.error}", str(address)
        )
    return node, None


def unfit_finding(node: NodeInfo, what: str) -> Finding | None:
    """A refusal when ``node`` cannot be a master or replica (see :attr:`NodeInfo.unfit`)."""
    reason = node.unfit
    if reason is None:
        return None
    return Finding(
        "refuse", "not_a_data_node", f"{what} {node.address} {reason}", str(node.address)
    )


def group_members(topo: Topology, *extra: Address) -> tuple[str, ...]:
    """The lock identity of the replication group read into ``topo``: every address it
    was reached or listed at, and every run id (see :class:`redisops.lock.ClusterLock`).
    ``extra`` adds members the read could not reach (a dead master)."""
    names = {str(n.address) for n in topo.nodes}
    names.update(str(a) for a in topo.aliases)
    names.update(f"run:{n.run_id}" for n in topo.nodes if n.reachable and n.run_id)
    names.update(str(a) for a in extra)
    return tuple(sorted(names))


def group_nodes(topo: Topology) -> tuple[str, ...]:
    """Every node of the group that is (or claims to be) Redis: what a result reports."""
    return tuple(str(n.address) for n in topo.nodes if n.unfit is None)


def config_unavailable(node: NodeInfo, need: str) -> Finding | None:
    """A warning that ``need`` (a check or a step) cannot run on ``node`` because CONFIG is
    renamed or disabled there; None when CONFIG works."""
    if node.can_run("CONFIG"):
        return None
    return Finding(
        "warn",
        "config_unavailable",
        f"CONFIG is not available on {node.address} (renamed or disabled with "
        f"rename-command): {need}; if it is renamed, pass --rename-command CONFIG=NEWNAME "
        f"(or renamed_commands in the inventory)",
        str(node.address),
    )


def persist_refusal(nodes: list[NodeInfo], session: Session) -> Finding | None:
    """``--persist`` needs CONFIG REWRITE on every node it persists, or a config file that
    redisops can edit itself on the node's machine (the fallback, see
    :func:`redisops.ops.confedit.can_edit_config_file`)."""
    from redisops.ops.confedit import can_edit_config_file

    blocked = [
        str(n.address)
        for n in nodes
        if not n.can_run("CONFIG") and not can_edit_config_file(session, n)
    ]
    if not blocked:
        return None
    return Finding(
        "refuse",
        "persist_unavailable",
        f"--persist needs CONFIG REWRITE, and CONFIG is renamed or disabled on "
        f"{', '.join(blocked)}: pass --rename-command CONFIG=NEWNAME if it is renamed, set "
        f"config_file (and ssh:) for the node in the inventory so redisops edits the file "
        f"itself, or leave out --persist and put the change in redis.conf by hand",
    )


def lock_steps(master: str, n0: int, *, local_only: str | None = None) -> Step:
    """Take the cluster lock: the local layer and the key on ``master``; with
    ``local_only`` (why no node can hold the key, e.g. the master is unreachable), only
    the local layer."""
    if local_only is not None:
        return Step(
            n0,
            master,
            "lock",
            f"take the local cluster lock ({local_only})",
            precondition="no other redisops operation on this host holds the lock",
            verify="flock held",
            args={"local_only": local_only},
        )
    return Step(
        n0,
        master,
        "lock",
        "take the cluster lock",
        command=("SET", "redisops:lock", "<owner>", "NX", "PX", "<ttl>"),
        precondition="no other redisops operation holds the lock",
        verify="SET NX succeeded (a key that cannot be written stops the operation)",
    )


def persist_step(n: int, node: str, what: str = "the change") -> Step:
    """``CONFIG REWRITE`` on ``node`` so a restart keeps ``what``; a failure is reported,
    not rolled back (the running state is already right)."""
    return Step(
        n,
        node,
        "config-rewrite",
        f"persist {what} in {node}'s config file",
        command=("CONFIG", "REWRITE"),
        verify="CONFIG REWRITE returns OK",
        args={"on_failure": "continue"},
    )


def unlock_step(master: str, n: int, *, drop_copies: tuple[str, ...] = ()) -> Step:
    """Release the lock; ``drop_copies`` names promoted nodes that got a replicated copy
    of the lock key while it was held (see :meth:`ClusterLock.drop_copy`)."""
    where = f" (and its replicated copy on {', '.join(drop_copies)})" if drop_copies else ""
    return Step(
        n,
        master,
        "unlock",
        f"release the cluster lock{where}",
        command=("DEL", "redisops:lock"),
        precondition="the lock is ours (owner token)",
        verify="key gone",
        args={"drop_copies": list(drop_copies)} if drop_copies else {},
    )


def check_refusals(findings: list[Finding], force: bool) -> None:
    """Raise when preflight refused (used by callers that act without rendering)."""
    refusals = [f for f in findings if f.level == "refuse" and not (force and f.forceable)]
    if refusals:
        raise Refused("; ".join(f.message for f in refusals))


def keys_of(node: NodeInfo) -> int:
    return node.keys


#: INFO fields where the probe puts redisops's own records it read (see redis_node.probe)
OWN_RECORDS = ("redisops_detached", "redisops_fence")


def data_keys(node: NodeInfo) -> int:
    """``node``'s keys, not counting the redisops records the probe found on it (the
    detach and fence records are ours, not the user's data a full sync would discard)."""
    return max(node.keys - sum(1 for f in OWN_RECORDS if node.info.get(f)), 0)
