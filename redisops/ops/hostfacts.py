"""Gather :class:`~redisops.hostfacts.HostFacts` for nodes, many hosts in parallel.

Per node: one pipelined round trip to Redis (``INFO server``, ``CONFIG GET dir
tcp-backlog``: the process id, the binary, the data directory) when the node answers, and
one shell command on its host (over the run's SSH connection, or locally for a node on this
machine) that reads every other fact and asks the service manager for the service state.
A node whose Redis is down still gets its host facts; a host that cannot be reached gets a
:class:`HostFacts` whose ``errors`` say why. A refused host key is raised (exit 12).
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from redisops.errors import HostKeyError, RedisopsError
from redisops.hostfacts import FACTS_SCRIPT, HostFacts, parse_facts
from redisops.model import Address
from redisops.session import Session
from redisops.ssh.settings import DEFAULT_SERVICE

WORKERS = 8
FACTS_TIMEOUT_S = 30.0


def service_argv(template: str, verb: str) -> list[str]:
    """The service command for ``verb``: the template split like a shell would, then
    ``{verb}`` replaced word by word (so a verb can never become shell syntax).

    >>> service_argv("systemctl {verb} redis-server@6380", "restart")
    ['systemctl', 'restart', 'redis-server@6380']
    >>> service_argv("/usr/local/bin/redisctl --port 6380 {verb}", "status")
    ['/usr/local/bin/redisctl', '--port', '6380', 'status']
    """
    return [word.replace("{verb}", verb) for word in shlex.split(template)]


def service_template(session: Session, address: Address) -> str:
    settings = session.ssh_settings(address)
    return (settings.service if settings is not None else None) or DEFAULT_SERVICE


def host_facts(
    session: Session, addresses: Sequence[Address], *, workers: int = WORKERS
) -> dict[Address, HostFacts]:
    """Facts for each node, gathered in parallel (at most ``workers`` hosts at a time)."""
    todo = list(dict.fromkeys(addresses))
    if len(todo) <= 1:
        return {a: node_facts(session, a) for a in todo}
    with ThreadPoolExecutor(min(workers, len(todo)), "host-facts") as pool:
        return dict(zip(todo, pool.map(lambda a: node_facts(session, a), todo), strict=True))


def node_facts(session: Session, address: Address) -> HostFacts:
    """The facts of one node's machine (see the module docstring)."""
    pid, binary, redis_dir, backlog, redis_error = _from_redis(session, address)
    node = str(address)
    try:
        host = session.host(address)
        argv = ["sh", "-c", FACTS_SCRIPT, "sh", pid, redis_dir, binary]
        argv += service_argv(service_template(session, address), "status")
        result = host.run(argv, timeout=FACTS_TIMEOUT_S)
    except HostKeyError:
        raise
    except RedisopsError as exc:
        return HostFacts(node=node, host="unreachable", errors=(f"host: {exc}",))
    facts = parse_facts(result.stdout.decode("utf-8", "replace"), node=node, host=host.name)
    errors = list(facts.errors)
    if redis_error:
        errors.insert(0, f"redis: {redis_error}")
    return dataclasses.replace(
        facts,
        tcp_backlog=backlog,
        redis_dir=redis_dir or None,
        errors=tuple(errors),
    )


def _from_redis(session: Session, address: Address) -> tuple[str, str, str, int | None, str]:
    """(pid, binary, dir, tcp-backlog, error) from the node itself; empty when it is down."""
    try:
        with session.fresh_node(address) as node:
            info_text, config = node.pipeline(
                [("INFO", "server"), ("CONFIG", "GET", "dir", "tcp-backlog")],
                raise_errors=False,
            )
    except HostKeyError:
        raise
    except RedisopsError as exc:
        return "", "", "", None, exc.message.removeprefix(f"{address}: ")
    from redisops.info import parse_info

    info = parse_info(str(info_text)) if not isinstance(info_text, RedisopsError) else {}
    pairs: dict[str, str] = {}
    if isinstance(config, list):
        pairs = {str(config[i]): str(config[i + 1]) for i in range(0, len(config) - 1, 2)}
    backlog = pairs.get("tcp-backlog", "")
    error = str(config) if isinstance(config, RedisopsError) else ""
    return (
        info.get("process_id", ""),
        info.get("executable", ""),
        pairs.get("dir", ""),
        int(backlog) if backlog.isdigit() else None,
        error,
    )
