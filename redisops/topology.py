"""Discover a replication topology from seed nodes, and say what is wrong with it.

Discovery walks up (``master_host``/``master_port``) and down (``slaveN`` lines) from
every seed until no new address appears, probing each wave of addresses in parallel. A
node reached under two addresses (``localhost`` and ``127.0.0.1``, or a NAT address) is
recognised by its ``run_id`` and kept once; the other address becomes an alias.

The seeds of one call are taken to be one replication group: two masters among them is
a split brain even when no replication link joins them (an old master that came back).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from redisops.info import ReplicaEntry
from redisops.model import Address, NodeInfo, Problem, Topology

Prober = Callable[[Address], NodeInfo]
Resolver = Callable[[str], frozenset[str]]

#: Key on the master (replicated everywhere) listing old masters fenced by a failover.
FENCE_KEY = "redisops:fence"

#: ``repl-ping-replica-period`` a switchover sets on the old master while it switches (no
#: replication PING may land between the catch-up and the demotion). Never an original
#: value: a node found with it was left so by an interrupted run.
PING_FREEZE = "2147483647"

#: Key ``redisops detach`` writes on the node it promotes: the promotion was intended.
DETACH_KEY = "redisops:detached"


def detach_record(node: NodeInfo) -> dict[str, object] | None:
    """The record ``redisops detach`` left on ``node`` when it made *this* node a master
    (a copy a replica of it holds, or a stale one, does not count)."""
    raw = node.info.get("redisops_detached") if node.reachable and node.is_master else None
    if not raw:
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    mine = record.get("run_id") == node.run_id or record.get("address") == str(node.address)
    return record if mine else None


def fence_records(topo: Topology) -> list[dict[str, object]]:
    """Fence records found on any reachable node (the probe reads ``redisops:fence``)."""
    seen: dict[str, dict[str, object]] = {}
    for n in topo.nodes:
        raw = n.info.get("redisops_fence") if n.reachable else None
        if not raw:
            continue
        try:
            for entry in json.loads(raw).get("fenced", []):
                if isinstance(entry, dict):
                    seen[str(entry.get("address"))] = entry
        except (ValueError, AttributeError):
            continue
    return list(seen.values())


def fences_one_of(node: NodeInfo, addresses: Iterable[Address]) -> bool:
    """Whether ``node`` holds a fence record naming one of ``addresses`` (it is the master
    a failover put in their place)."""
    wanted = {str(a) for a in addresses}
    return any(str(r.get("address")) in wanted for r in fence_records(Topology((node,))))


def entry_address(entry: ReplicaEntry) -> Address | None:
    """The address a master lists for a replica, or None when it is unusable (port 0)."""
    if not entry.ip or entry.port <= 0:
        return None
    return Address(entry.ip, entry.port)


def probe_all(
    addresses: Sequence[Address], prober: Prober, parallel: bool, deadline: float | None = None
) -> list[NodeInfo]:
    """Probe ``addresses`` (in parallel threads unless told not to). With ``deadline``, a
    node that has not answered after that many seconds is reported unreachable and its
    thread abandoned: one frozen node costs the wave its deadline, not more."""
    if not parallel or (len(addresses) == 1 and deadline is None):
        return [prober(a) for a in addresses]
    results: list[NodeInfo | None] = [None] * len(addresses)

    def run(i: int, addr: Address) -> None:
        try:
            results[i] = prober(addr)
        except Exception as exc:  # a prober bug must not kill the walk
            results[i] = NodeInfo(address=addr, reachable=False, error=f"probe failed: {exc}")

    threads = [
        threading.Thread(target=run, args=(i, a), daemon=True) for i, a in enumerate(addresses)
    ]
    for t in threads:
        t.start()
    end = None if deadline is None else time.monotonic() + deadline
    for t in threads:
        t.join(None if end is None else max(end - time.monotonic(), 0.0))
    late = f"no reply within the {deadline:g}s deadline" if deadline is not None else "probe failed"
    return [
        r
        if r is not None
        else NodeInfo(address=a, reachable=False, error=late, read_at=time.time())
        for r, a in zip(results, addresses, strict=True)
    ]


def discover(
    seeds: Iterable[Address],
    prober: Prober,
    *,
    parallel: bool = True,
    max_nodes: int = 500,
    deadline: float | None = None,
    resolve: Resolver | None = None,
) -> Topology:
    """Walk the replication graph from ``seeds`` and return the validated topology.

    ``deadline``: seconds each wave of probes may take (see :func:`probe_all`).
    ``resolve`` (host -> addresses) recognises one unreachable node written two ways (a
    dead master given as ``localhost:7000`` that its replicas name ``127.0.0.1:7000``).
    """
    seed_list = list(dict.fromkeys(seeds))
    probed: dict[Address, NodeInfo] = {}
    canonical_by_run_id: dict[str, Address] = {}
    aliases: dict[Address, Address] = {}
    order: list[Address] = []
    pending = list(seed_list)
    while pending and len(probed) < max_nodes:
        wave = [a for a in dict.fromkeys(pending) if a not in probed and a not in aliases]
        pending = []
        if not wave:
            break
        for node in probe_all(wave, prober, parallel, deadline):
            addr = node.address
            run_id = node.run_id if node.reachable else None
            if run_id and run_id in canonical_by_run_id:
                aliases[addr] = canonical_by_run_id[run_id]
                continue
            if run_id:
                canonical_by_run_id[run_id] = addr
            probed[addr] = node
            order.append(addr)
            if not node.reachable:
                continue
            master = node.master_address if node.is_replica else None
            if master is not None:
                pending.append(master)
            for entry in node.replicas:
                a = entry_address(entry)
                if a is not None:
                    pending.append(a)
    _alias_announced(probed, order, aliases)
    if resolve is not None:
        _alias_spellings(probed, order, aliases, resolve)
    nodes = [probed[a] for a in order]
    draft = Topology(nodes=tuple(nodes), aliases=aliases)
    ordered = _tree_order(draft)
    topo = Topology(nodes=tuple(ordered), aliases=aliases)
    return Topology(nodes=topo.nodes, problems=tuple(find_problems(topo)), aliases=aliases)


def _alias_announced(
    probed: dict[Address, NodeInfo], order: list[Address], aliases: dict[Address, Address]
) -> None:
    """A replica that announces another address (``replica-announce-ip/port``, NAT) is
    listed by its master under that address, which may lead nowhere from here: when a node
    reached at its real address announces exactly it, it is that node (an alias), not an
    unreachable replica."""
    announced = {
        n.announced_address: a
        for a, n in probed.items()
        if n.reachable and n.is_replica and n.announced_address is not None
    }
    for addr in list(order):
        node = probed[addr]
        if not node.reachable and node.service == "redis" and addr in announced:
            aliases[addr] = announced[addr]
            del probed[addr]
            order.remove(addr)


def _alias_spellings(
    probed: dict[Address, NodeInfo],
    order: list[Address],
    aliases: dict[Address, Address],
    resolve: Resolver,
) -> None:
    """Unreachable nodes that are one endpoint under two spellings become one node (a
    reachable one is recognised by its run id instead). The spelling the replicas use for
    their master is kept."""
    named = {
        n.master_address for n in probed.values() if n.reachable and n.master_address is not None
    }
    down = [a for a in order if not probed[a].reachable and probed[a].service == "redis"]
    down.sort(key=lambda a: a not in named)
    kept: list[Address] = []
    for addr in down:
        same = next(
            (k for k in kept if k.port == addr.port and resolve(k.host) & resolve(addr.host)),
            None,
        )
        if same is None:
            kept.append(addr)
            continue
        aliases[addr] = same
        del probed[addr]
        order.remove(addr)


def _tree_order(topo: Topology) -> list[NodeInfo]:
    out: list[NodeInfo] = []
    seen: set[Address] = set()
    for root in topo.roots():
        for node in [root, *topo.descendants(root)]:
            if node.address not in seen:
                seen.add(node.address)
                out.append(node)
    return out


def _entry_for(topo: Topology, parent: NodeInfo | None, node: NodeInfo) -> ReplicaEntry | None:
    if parent is None or not parent.reachable:
        return None
    for entry in parent.replicas:
        if topo.entry_matches(entry, node):
            return entry
    return None


def find_cycle(topo: Topology, node: NodeInfo) -> list[Address] | None:
    """The replication cycle ``node`` sits on (or leads into), as a list of addresses."""
    path: list[Address] = []
    cur: NodeInfo | None = node
    while cur is not None and cur.is_replica:
        if cur.address in path:
            return path[path.index(cur.address) :]
        path.append(cur.address)
        cur = topo.parent(cur)
    return None


def find_problems(topo: Topology) -> list[Problem]:
    """Everything wrong with ``topo``, most serious first."""
    problems: list[Problem] = list(_unfit_problems(topo))
    reachable = [n for n in topo.nodes if n.reachable and n.unfit is None]
    masters = [n for n in reachable if n.is_master]

    detached = [(m, r) for m in masters for r in [detach_record(m)] if r is not None]
    others = [m for m in masters if detach_record(m) is None]
    if len(masters) > 1:
        for node, record in detached:
            problems.append(_detached_problem(node, record))
    if len(others) > 1:
        names = ", ".join(str(m.address) for m in others)
        problems.append(
            Problem(
                None,
                "multiple_masters",
                f"{len(others)} masters in one replication group ({names}): split brain; "
                f"fence the stale one with 'redisops fence OLD --to NEW'",
            )
        )
    elif not masters and reachable:
        problems.append(Problem(None, "no_master", "no reachable master in the replication group"))

    reported_cycles: set[frozenset[Address]] = set()
    for node in topo.nodes:
        name = str(node.address)
        if node.unfit is not None:
            continue  # reported above
        if not node.reachable:
            problems.append(Problem(name, "unreachable", f"{name} is unreachable: {node.error}"))
            continue
        if node.config.get("repl-ping-replica-period") == PING_FREEZE:
            problems.append(
                Problem(
                    name,
                    "ping_period_frozen",
                    f"{name}: repl-ping-replica-period is {PING_FREEZE}, the value a redisops "
                    f"switchover sets only while it switches (an interrupted run left it): its "
                    f"replicas get no PING and drop their link after repl-timeout; restore it "
                    f"with CONFIG SET repl-ping-replica-period 10",
                )
            )
        if not node.is_replica:
            continue
        cycle = find_cycle(topo, node)
        if cycle:
            key = frozenset(cycle)
            if key not in reported_cycles:
                reported_cycles.add(key)
                loop = " -> ".join(str(a) for a in [*cycle, cycle[0]])
                problems.append(Problem(name, "cycle", f"replication cycle: {loop}"))
            continue
        master_addr = node.master_address
        parent = topo.parent(node)
        if master_addr is not None and (parent is None or not parent.reachable):
            problems.append(
                Problem(
                    name,
                    "master_unreachable",
                    f"{name} replicates from {master_addr}, which is unreachable",
                )
            )
        entry = _entry_for(topo, parent, node)
        unloadable = (
            node.cannot_load_from(parent)
            if node.link == "down" and parent is not None and parent.reachable
            else None
        )
        if unloadable is not None and parent is not None:
            problems.append(
                Problem(
                    name,
                    "rdb_unloadable",
                    f"{name}: its full sync from {parent.address} can never complete "
                    f"({unloadable}), it is retried in a loop: point it at a master of "
                    f"its own version or upgrade it",
                )
            )
        elif (
            node.link == "down"
            and entry is not None
            and entry.state in ("wait_bgsave", "send_bulk")
        ):
            problems.append(
                Problem(
                    name,
                    "sync_in_progress",
                    f"{name}: full sync from {parent.address if parent else master_addr} in progress "
                    f"(master side: {entry.state})",
                    severity="warning",
                )
            )
        elif node.link == "down":
            since = node.link_down_seconds
            since_txt = "never connected" if since is None or since < 0 else f"down for {since}s"
            state = node.repl_state or "unknown"
            problems.append(
                Problem(
                    name,
                    "link_down",
                    f"{name}: link to master {master_addr} is down ({since_txt}, state {state})",
                )
            )
        if node.sync_in_progress:
            p = node.sync_progress or {}
            problems.append(
                Problem(
                    name,
                    "sync_in_progress",
                    f"{name}: full sync in progress ({p.get('read_bytes', 0)} of {p.get('total_bytes', 0)} bytes)",
                    severity="warning",
                )
            )
        if node.loading:
            problems.append(
                Problem(name, "loading", f"{name} is loading its dataset", severity="warning")
            )
        if parent is not None and parent.reachable and node.link == "up" and entry is None:
            listed = ", ".join(f"{e.ip}:{e.port}" for e in parent.replicas) or "none"
            problems.append(
                Problem(
                    name,
                    "address_mismatch",
                    f"{name} replicates from {parent.address}, which lists its replicas as {listed}: "
                    f"check replica-announce-ip/port or NAT",
                    severity="warning",
                )
            )

    for node in reachable:
        if not node.is_master and not node.is_replica:
            continue
        for entry in node.replicas:
            addr = entry_address(entry)
            target = topo.get(addr) if addr is not None else None
            if target is None:
                continue
            if not target.reachable:
                continue  # reported as unreachable
            if (
                target.is_replica
                and target.master_address is not None
                and topo.canonical(target.master_address) != node.address
            ):
                problems.append(
                    Problem(
                        str(node.address),
                        "stale_replica_entry",
                        f"{node.address} lists {addr} as its replica, but {target.address} replicates from "
                        f"{target.master_address}",
                        severity="warning",
                    )
                )
        fstate = node.failover_state
        if fstate and fstate != "no-failover":
            problems.append(
                Problem(
                    str(node.address),
                    "failover_in_progress",
                    f"{node.address}: FAILOVER in progress ({fstate})",
                    severity="warning",
                )
            )

    problems += divergence_problems(topo)

    for record in fence_records(topo):
        try:
            addr = Address.parse(str(record.get("address")))
        except Exception:
            continue
        fenced = topo.get(addr)
        if fenced is not None and fenced.reachable and fenced.is_master:
            node = fenced
            new = record.get("new_master")
            problems.append(
                Problem(
                    str(node.address),
                    "fenced_master_returned",
                    f"{node.address} was failed over (new master {new}) and is running as a master again: split "
                    f"brain; run 'redisops fence {node.address} --to {new}'",
                )
            )
    problems.sort(key=lambda p: p.severity != "critical")
    return problems


def _detached_problem(node: NodeInfo, record: dict[str, object]) -> Problem:
    """A master that ``redisops detach`` made one: say what happened, not split brain."""
    import time

    at = record.get("at")
    when = (
        time.strftime(" on %Y-%m-%d %H:%M:%S", time.localtime(at))
        if isinstance(at, (int, float))
        else ""
    )
    was = record.get("from")
    return Problem(
        str(node.address),
        "detached",
        f"{node.address} is a master since 'redisops detach'{when} (it was a replica of "
        f"{was}): an intended separate master with its own data, not a split brain; "
        f"'redisops attach {node.address} --to {was}' makes it a replica again (a full sync "
        f"that replaces its data)",
        severity="warning",
    )


def divergence_problems(topo: Topology) -> list[Problem]:
    """Replicas whose dataset differs from their master's although they are in sync.

    A replica with its link up, on its master's history and at its master's exact offset
    must hold the same number of keys: when it does not, something changed one side
    without replicating (``DEBUG POPULATE``, a write to a replica with
    ``replica-read-only no``, a module), and a failover to it would lose the difference.
    """
    out: list[Problem] = []
    for node in topo.nodes:
        parent = topo.parent(node) if node.reachable and node.is_replica else None
        if parent is None or not parent.reachable or node.link != "up":
            continue
        if node.replid != parent.replid or node.offset != parent.offset:
            continue  # not at the same point of the same history: counts may differ
        if node.keys != parent.keys:
            out.append(
                Problem(
                    str(node.address),
                    "diverged",
                    f"{node.address} holds {_keys(node.keys)} but its master {parent.address} "
                    f"holds {_keys(parent.keys)} at the same offset {node.offset}: the datasets differ "
                    f"(a change that was not replicated, e.g. DEBUG POPULATE or a write to a "
                    f"replica with replica-read-only no); a failover to it would lose the "
                    f"difference. Resync it: 'redisops detach {node.address}' then 'redisops "
                    f"attach {node.address} --to {parent.address}' (a full sync)",
                )
            )
    return out


def _keys(n: int) -> str:
    return f"{n} key" if n == 1 else f"{n} keys"


def _unfit_problems(topo: Topology) -> Iterable[Problem]:
    """Nodes among the seeds that are not Redis data nodes (Sentinel, cluster mode, not
    Redis at all): labelled, never treated as masters or replicas."""
    kinds = {"not-redis": ("not_redis", "critical")}
    for node in topo.nodes:
        reason = node.unfit
        if reason is None:
            continue
        if node.service in kinds:
            kind, severity = kinds[node.service]
        elif node.role == "sentinel":
            kind, severity = "sentinel_seed", "warning"
        else:
            kind, severity = "cluster_mode", "warning"
        yield Problem(str(node.address), kind, f"{node.address} {reason}", severity=severity)


def sentinel_problems(topo: Topology, view: dict[str, object]) -> list[Problem]:
    """What is wrong between the Sentinel view and the discovered topology."""
    out: list[Problem] = []
    entries = [s for s in view.get("sentinels", []) if isinstance(s, dict)]  # type: ignore[attr-defined]
    for s in entries:
        if s.get("reachable") is False:
            out.append(
                Problem(
                    str(s.get("address")),
                    "sentinel_unreachable",
                    f"sentinel {s.get('address')} is {s.get('status')}",
                )
            )
    if view.get("agree") is None:
        why = "; ".join(f"{s.get('address')}: {s.get('status')}" for s in entries)
        out.append(
            Problem(
                None,
                "sentinel_no_master",
                f"no sentinel named the master ({why})" if why else "no sentinel named the master",
            )
        )
    if view.get("agree") is False:
        out.append(
            Problem(
                None,
                "sentinels_disagree",
                "the sentinels name different masters: "
                + ", ".join(
                    f"{s.get('address')}: {s.get('master')}"
                    for s in view.get("sentinels", [])  # type: ignore[attr-defined]
                    if isinstance(s, dict)
                ),
            )
        )
    master = view.get("master")
    masters = [str(m.address) for m in topo.masters]
    if isinstance(master, str) and masters and master not in masters:
        out.append(
            Problem(
                master,
                "sentinel_master_mismatch",
                f"Sentinel says the master is {master}, but the discovered master is {', '.join(masters)}",
            )
        )
    quorum = view.get("quorum")
    if isinstance(quorum, str) and quorum.startswith("FAILED"):
        out.append(Problem(None, "sentinel_quorum", f"SENTINEL CKQUORUM {quorum}"))
    return out
