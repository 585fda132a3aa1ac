"""The Redis side of a backup: which node, which file, and a fresh snapshot in it.

* :func:`choose_source` prefers a healthy replica (the seeds: fork and disk writes stay off
  the master), the replica with the most data first, never one whose dataset diverged from
  the master's; the master only when asked, or when
  it has no replica at all.
* :func:`rdb_path` is ``dir`` + ``dbfilename`` (``CONFIG GET``, or the config file when
  ``CONFIG`` is renamed away).
* :func:`take_snapshot` runs ``BGSAVE`` and waits, polling, until the save it asked for is
  done: no save in progress, ``rdb_last_bgsave_status:ok`` and ``LASTSAVE`` past the
  request. A save already running (a replica's full sync, a save point) is waited for
  first, then a new one is taken: the running one may be diskless, or may have started
  before data the operator expects in the backup. ``SAVE`` is never used.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from redisops.errors import CommandFailed, Refused, Unreachable, WaitTimeout
from redisops.host import Host
from redisops.info import as_int
from redisops.model import NodeInfo, Topology
from redisops.redis_node import RedisNode


def healthy_replica(node: NodeInfo) -> bool:
    return (
        node.reachable
        and node.is_replica
        and node.link == "up"
        and not node.loading
        and not node.sync_in_progress
    )


def choose_source(topo: Topology, named: NodeInfo, from_master: bool) -> tuple[NodeInfo, str]:
    """The node to BGSAVE on, and why it was chosen; :class:`Refused` when none fits."""
    if named.is_replica and not from_master:
        return named, "the replica named"
    master = named
    if named.is_replica:
        top = topo.root(named)
        if top is None or not top.reachable:
            raise Unreachable(f"--from-master: the master of {named.address} is not reachable")
        master = top
    if from_master:
        return master, "the master (--from-master)"
    replicas = topo.children(master)
    # a replica in sync whose keys differ from the master's holds other data: not a backup
    diverged = {p.node for p in topo.problems if p.kind == "diverged"}
    healthy = [r for r in replicas if healthy_replica(r) and str(r.address) not in diverged]
    if healthy:
        best = max(healthy, key=lambda r: (r.offset, -r.address.port, r.address.host))
        return best, f"a healthy replica of {master.address} (keeps the fork off the master)"
    if replicas:
        states = ", ".join(
            f"{r.address}: "
            + (
                "unreachable"
                if not r.reachable
                else "diverged from the master (other keys at the same offset)"
                if str(r.address) in diverged
                else "loading"
                if r.loading
                else "syncing"
                if r.sync_in_progress
                else f"link {r.link}"
            )
            for r in replicas
        )
        raise Refused(
            f"no healthy replica of {master.address} to take the backup from ({states})",
            hint="fix the replica, or pass --from-master to BGSAVE on the master",
        )
    return master, "the master (it has no replica)"


def rdb_path(node: RedisNode, host: Host, info: Mapping[str, str]) -> str:
    """Where the node writes its RDB file: ``dir`` + ``dbfilename``."""
    try:
        cfg = node.config_get("dir", "dbfilename")
        return posixpath.join(cfg["dir"], cfg["dbfilename"])
    except (CommandFailed, KeyError):
        pass
    conf = info.get("config_file", "")
    if not conf:
        raise CommandFailed(
            f"{node.address}: CONFIG GET dir/dbfilename is refused and the node runs without "
            f"a config file",
            hint="allow CONFIG GET for the backup user",
        )
    from redisops.redisconf import parse_config

    def read(path: str) -> str:
        return host.read_bytes(path).decode("utf-8", "replace")

    cfg_file = parse_config(read(conf), conf, reader=read)
    directory = (cfg_file.last("dir") or ("",))[0]
    name = (cfg_file.last("dbfilename") or ("dump.rdb",))[0]
    if not posixpath.isabs(directory):
        raise CommandFailed(
            f"{node.address}: CONFIG GET is refused and {conf} gives a relative dir "
            f"{directory!r}: the RDB file cannot be located",
            hint="allow CONFIG GET for the backup user",
        )
    return posixpath.join(directory, name)


@dataclass(frozen=True)
class Snapshot:
    lastsave: int  # the node's LASTSAVE: when the file was written (epoch seconds)
    how: str  # for the catalogue: "BGSAVE", "BGSAVE after waiting for one in progress", ...
    waited_for_other: bool = False


def _persistence(node: RedisNode) -> dict[str, str]:
    return node.info("persistence")


def _wait_idle(
    node: RedisNode, deadline: float, sleep: Callable[[float], None], what: str
) -> dict[str, str]:
    """Until no RDB save (and no AOF rewrite, for ``BGSAVE``) runs on the node."""
    while True:
        p = _persistence(node)
        if p.get("rdb_bgsave_in_progress") == "0":
            return p
        if time.monotonic() > deadline:
            raise WaitTimeout(
                f"{node.address}: {what} did not finish in time", hint="raise --timeout"
            )
        sleep(0.1)


def _server_time(node: RedisNode) -> int:
    reply = node.execute("TIME")
    return int(reply[0]) if isinstance(reply, list) and reply else int(time.time())


def take_snapshot(
    node: RedisNode,
    timeout: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    on_wait: Callable[[str], None] | None = None,
) -> Snapshot:
    """``BGSAVE`` on ``node`` and wait until that save is on disk."""
    deadline = time.monotonic() + timeout
    first = _persistence(node)
    waited = first.get("rdb_bgsave_in_progress") == "1"
    if waited and on_wait is not None:
        on_wait(f"{node.address}: a save is already running; waiting for it, then taking a new one")
    p = _wait_idle(node, deadline, sleep, "the save already in progress")
    before = as_int(p.get("rdb_last_save_time"), 0) or 0
    # LASTSAVE has one-second resolution: ask in a later second than the last save ended,
    # so that "LASTSAVE moved" can only mean our save
    while _server_time(node) <= before:
        if time.monotonic() > deadline:
            raise WaitTimeout(f"{node.address}: the server clock does not move", hint="check TIME")
        sleep(0.05)
    aof_busy = p.get("aof_rewrite_in_progress") == "1"
    while True:
        try:
            node.execute("BGSAVE", "SCHEDULE") if aof_busy else node.execute("BGSAVE")
            break
        except CommandFailed as exc:
            text = exc.message.lower()
            if "already in progress" in text:  # another client won the race: wait for it
                waited = True
                _wait_idle(node, deadline, sleep, "a concurrent save")
                continue
            if "rewriting in progress" in text:
                aof_busy = True
                continue
            raise CommandFailed(
                f"{node.address}: BGSAVE refused ({exc.message.rsplit('failed: ', 1)[-1]})",
                hint="see the node's log",
            ) from None
    while True:
        p = _persistence(node)
        last = as_int(p.get("rdb_last_save_time"), 0) or 0
        if p.get("rdb_bgsave_in_progress") == "0":
            if p.get("rdb_last_bgsave_status") != "ok":
                raise CommandFailed(
                    f"{node.address}: BGSAVE failed (rdb_last_bgsave_status:"
                    f"{p.get('rdb_last_bgsave_status')})",
                    hint="see the node's log: disk full, permissions, fork refused (memory)?",
                )
            if last > before:
                how = "BGSAVE after waiting for the save in progress" if waited else "BGSAVE"
                if aof_busy:
                    how += " (scheduled after the AOF rewrite in progress)"
                return Snapshot(last, how, waited)
        if time.monotonic() > deadline:
            raise WaitTimeout(
                f"{node.address}: the BGSAVE did not finish within {timeout:g}s",
                hint="raise --timeout for large datasets",
            )
        sleep(0.1)


def existing_snapshot(node: RedisNode, now: float, mtime: float | None) -> Snapshot:
    """``--no-bgsave``: the RDB file as it is, dated by its modification time (LASTSAVE
    also moves when a node starts, without writing the file)."""
    p = _persistence(node)
    if p.get("rdb_last_bgsave_status") not in (None, "ok"):
        raise CommandFailed(
            f"{node.address}: its last save failed (rdb_last_bgsave_status:"
            f"{p.get('rdb_last_bgsave_status')}); the RDB on disk is older than that",
            hint="run without --no-bgsave to take a new one",
        )
    when = int(mtime) if mtime is not None else as_int(p.get("rdb_last_save_time"), 0) or 0
    age = max(0, int(now) - when)
    return Snapshot(when, f"existing RDB ({age} s old, --no-bgsave)")
