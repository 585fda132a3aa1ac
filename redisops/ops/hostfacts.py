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

WORKERS = 16
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
    """Facts for each node, gathered in parallel (at most ``workers`` threads).

    Two rounds: first every SSH handshake and every Redis query at once (they wait on
    different machines), then one shell command per host on the ready connections."""
    todo = list(dict.fromkeys(addresses))
    if not todo:
        return {}
    for address in todo:
        # resolve the SSH settings here first (this reads ssh_config, importing paramiko),
        # so the handshakes start at once and the Redis client is imported while they wait
        session.ssh_for(address)
    with ThreadPoolExecutor(min(workers, 2 * len(todo)), "host-facts") as pool:
        opened = {a: pool.submit(_open, session, a) for a in todo}
        from_redis = {a: pool.submit(_from_redis, session, a) for a in todo}
        ready = {a: (opened[a].result(), from_redis[a].result()) for a in todo}
        done = {a: pool.submit(_gather, session, a, *ready[a]) for a in todo}
        return {a: done[a].result() for a in todo}


def node_facts(session: Session, address: Address) -> HostFacts:
    """The facts of one node's machine (see the module docstring)."""
    return _gather(session, address, _open(session, address), _from_redis(session, address))


def _open(session: Session, address: Address) -> str:
    """Connect to the node's host ahead of use; the error text when that fails."""
    try:
        session.open_host(address)
    except HostKeyError:
        raise
    except RedisopsError as exc:
        return str(exc)
    return ""


RedisFacts = tuple[str, str, str, int | None, str]


def _gather(session: Session, address: Address, host_error: str, redis: RedisFacts) -> HostFacts:
    pid, binary, redis_dir, backlog, redis_error = redis
    node = str(address)
    try:
        if host_error:
            raise RedisopsError(host_error)
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


def _from_redis(session: Session, address: Address) -> RedisFacts:
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
