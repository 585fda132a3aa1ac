"""Replication, both sides, as functions over a :class:`~redisops.engine.node.Node`.

Master side: ``PSYNC``/``SYNC`` (§2.2), the partial-resync rule (§2.3), full syncs with
BGSAVE sharing and the diskless delay (§6.2), putting replicas online, ``REPLCONF``,
keep-alive newlines, timeouts, the backlog TTL and ``FAILOVER``.

Replica side: ``REPLICAOF`` (§8), ``replicationSetMaster``/``replicationUnsetMaster``
(§4.1-4.2), the handshake (§2.1), ``+FULLRESYNC``/``+CONTINUE`` (§2.4), loading the RDB
(§6.4), applying and forwarding the stream (§3.8), ACKs and timeouts (§6.6).

Names follow ``src/replication.c`` of Redis 7.0.15 so the two can be read side by side.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from redisops.engine import datacmds  # noqa: F401  (registers SET, used below)
from redisops.engine.client import Client, SlaveState
from redisops.engine.command import COMMANDS, CommandError, ExecContext
from redisops.engine.network import Endpoint, RdbTransfer, Segment
from redisops.engine.nodecmd import NO_REPLY, NODE_COMMANDS, int_arg, node_command
from redisops.engine.rdb import RdbImage
from redisops.engine.resp import OK, ProtocolError, Reply, SimpleString, encode_command
from redisops.engine.rules import psync_decision
from redisops.engine.state import (
    PING_ARGV,
    PING_BYTES,
    CachedMaster,
    Failover,
    ReplState,
)

if TYPE_CHECKING:  # pragma: no cover
    from redisops.engine.node import Node

#: SET as registered: a plain ``SET key value`` from the master is applied inline
_SET_SPEC = COMMANDS["set"]


# ============================================================================ master side


def try_partial(node: Node, req_id: str, offset: int) -> bool:
    """``masterTryPartialResynchronization()``'s acceptance rule (§2.3), from :mod:`rules`."""
    backlog = node.backlog
    return psync_decision(
        req_id,
        offset,
        replid=node.replid,
        replid2=node.replid2,
        second_repl_offset=node.second_repl_offset,
        backlog_first=backlog.first if backlog is not None else None,
        master_repl_offset=node.master_repl_offset,
    ).partial


@node_command("psync", -3, "admin noscript no_multi")
def psync_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    return sync_command(node, client, argv, ctx)


@node_command("sync", 1, "admin noscript no_multi")
def sync_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    """``syncCommand()``, in order (§2.2)."""
    if client.is_replica:
        return NO_REPLY  # already a replica: silently ignored
    is_psync = argv[0].lower() == b"psync"
    if is_psync and len(argv) > 3 and argv[3].lower() == b"failover":
        if node.master_host is None:
            raise CommandError("ERR PSYNC FAILOVER can't be sent to a master.")
        if argv[1].decode(errors="replace").lower() != node.replid:
            raise CommandError("ERR PSYNC FAILOVER replid must match my replid.")
        unset_master(node)  # promote ourselves, then serve the PSYNC below
    if node.failover is not Failover.NO_FAILOVER:
        node.write_to(client, b"-NOMASTERLINK Can't SYNC while failing over\r\n")
        return NO_REPLY
    if node.master_host is not None and node.repl_state is not ReplState.CONNECTED:
        node.write_to(client, b"-NOMASTERLINK Can't SYNC while not connected with my master\r\n")
        return NO_REPLY
    if client.multi is not None or client.blocked is not None:
        raise CommandError("ERR SYNC and PSYNC are invalid with pending output")
    if is_psync:
        req_id = argv[1].decode(errors="replace")
        offset = int_arg(argv[2])
        if try_partial(node, req_id, offset):
            _partial_resync(node, client, offset)
            return NO_REPLY
        if not req_id.startswith("?"):
            node.stats["sync_partial_err"] += 1
    else:
        client.capa.discard("psync2")  # old SYNC: no +FULLRESYNC, never timed out on ACKs
        client.name = client.name or ""
    _full_resync(node, client, is_psync)
    return NO_REPLY


def _partial_resync(node: Node, client: Client, offset: int) -> None:
    client.is_replica = True
    client.repl_state = SlaveState.ONLINE
    client.ack_time_ms = node.sched.now_ms()
    client.start_stream_on_ack = False
    node.replicas.append(client)
    line = f"+CONTINUE {node.replid}\r\n" if "psync2" in client.capa else "+CONTINUE\r\n"
    node.write_to(client, line.encode())
    assert node.backlog is not None
    data = node.backlog.read_from(offset)
    if data:
        node.write_to(client, data, stream=True)
    node.stats["sync_partial_ok"] += 1
    node._refresh_good_replicas()


def _full_resync(node: Node, client: Client, is_psync: bool) -> None:
    node.stats["sync_full"] += 1
    client.is_replica = True
    client.repl_state = SlaveState.WAIT_BGSAVE_START
    client.repl_last_partial_write_ms = 0
    client.psync_initial_offset = 0
    if not is_psync:
        client.capa.add("presync-legacy")
    node.replicas.append(client)
    if len(node.replicas) == 1 and node.backlog is None:
        # a backlog from scratch: new history (the master's replid changes here, §2.2)
        node.change_replication_id()
        node.clear_replication_id2()
        node._create_backlog()
    job = node.bgsave
    if job is not None and job.kind == "disk" and job.for_replication:
        donor = next((r for r in node.replicas if r.repl_state is SlaveState.WAIT_BGSAVE_END), None)
        if (
            donor is not None
            and donor.capa.issuperset(c for c in donor.capa if c in ("eof", "psync2"))
            and {c for c in donor.capa if c in ("eof", "psync2")} <= client.capa
        ):
            _setup_for_full_resync(node, client, donor.psync_initial_offset)
        return
    if job is not None:
        return  # socket target (or a user BGSAVE): wait for the next one
    if (
        node.config.get_bool("repl-diskless-sync")
        and "eof" in client.capa
        and node.config.get_int("repl-diskless-sync-delay")
    ):
        return  # started by replicationCron once the delay has passed
    _start_bgsave_for_replication(node, _min_capa(node))


def _min_capa(node: Node) -> set[str]:
    capa: set[str] | None = None
    for r in node.replicas:
        if r.repl_state is SlaveState.WAIT_BGSAVE_START:
            capa = set(r.capa) if capa is None else capa & r.capa
    return capa or set()


def _setup_for_full_resync(node: Node, client: Client, offset: int) -> None:
    """``replicationSetupSlaveForFullResync()``."""
    client.psync_initial_offset = offset
    client.repl_state = SlaveState.WAIT_BGSAVE_END
    node.slaveseldb = -1
    if "presync-legacy" not in client.capa:
        node.write_to(client, f"+FULLRESYNC {node.replid} {offset}\r\n".encode())


def _start_bgsave_for_replication(node: Node, mincapa: set[str]) -> None:
    """``startBgsaveForReplication()``: socket target iff diskless and every waiter has EOF."""
    socket_target = node.config.get_bool("repl-diskless-sync") and "eof" in mincapa
    job = node.start_bgsave(for_replication=True, socket_target=socket_target)
    if job is None:
        return
    waiting = [r for r in node.replicas if r.repl_state is SlaveState.WAIT_BGSAVE_START]
    offset = node.master_repl_offset
    for r in waiting:
        _setup_for_full_resync(node, r, offset)
    if socket_target:
        eof = f"{node.rng.getrandbits(160):040x}"
        pending = {r.id for r in waiting}

        def sent(r: Client) -> None:
            r.repl_last_partial_write_ms = node.sched.now_ms()
            pending.discard(r.id)

        for r in waiting:
            transfer = RdbTransfer(job.image, job.image.size, eof.encode())
            r.repl_last_partial_write_ms = node.sched.now_ms()
            node.flush_client(r)
            r.conn.write_rdb(transfer, functools.partial(sent, r))
        job.pending_sockets = pending  # type: ignore[attr-defined]


def start_pending_fork(node: Node, now: int) -> None:
    """``replicationStartPendingFork()`` / ``shouldStartChildReplication()``."""
    if node.bgsave is not None or not node.replicas:
        return
    waiting = [r for r in node.replicas if r.repl_state is SlaveState.WAIT_BGSAVE_START]
    if not waiting:
        return
    max_idle = max((now - r.last_interaction_ms) // 1000 for r in waiting)
    max_replicas = node.config.get_int("repl-diskless-sync-max-replicas")
    if (
        not node.config.get_bool("repl-diskless-sync")
        or (max_replicas > 0 and len(waiting) >= max_replicas)
        or max_idle >= node.config.get_int("repl-diskless-sync-delay")
    ):
        _start_bgsave_for_replication(node, _min_capa(node))


def bgsave_done_for_replicas(node: Node, job: object) -> None:
    """``updateSlavesWaitingBgsave()``."""
    kind = getattr(job, "kind", "disk")
    image: RdbImage = getattr(job, "image")  # noqa: B009
    for r in list(node.replicas):
        if r.repl_state is not SlaveState.WAIT_BGSAVE_END:
            continue
        if kind == "socket":
            _put_online(node, r)
            r.start_stream_on_ack = True
        else:
            r.repl_state = SlaveState.SEND_BULK
            node.flush_client(r)
            r.conn.write_rdb(RdbTransfer(image, image.size), functools.partial(_bulk_sent, node, r))
    # replicas that arrived meanwhile get the next BGSAVE
    node.sched.call_soon(lambda: start_pending_fork(node, node.sched.now_ms()))


def _bulk_sent(node: Node, r: Client) -> None:
    if r.closed or r.repl_state is not SlaveState.SEND_BULK:
        return
    _put_online(node, r)
    _start_command_stream(node, r)


def _put_online(node: Node, r: Client) -> None:
    """``replicaPutOnline()``."""
    r.repl_state = SlaveState.ONLINE
    r.ack_time_ms = node.sched.now_ms()
    node._refresh_good_replicas()


def _start_command_stream(node: Node, r: Client) -> None:
    """``replicaStartCommandStream()``: flush what accumulated since the fork."""
    r.start_stream_on_ack = False
    backlog = node.backlog
    if backlog is None or r.closed:
        return
    start = r.psync_initial_offset + 1
    if start <= backlog.end:
        node.write_to(r, backlog.read_from(max(start, backlog.first)), stream=True)


@node_command("replconf", -1, "admin noscript loading stale")
def replconf_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    """``replconfCommand()``."""
    if len(argv) % 2 == 0:
        raise CommandError("ERR syntax error")
    for j in range(1, len(argv), 2):
        opt = argv[j].lower()
        val = argv[j + 1]
        if opt == b"listening-port":
            client.listening_port = int_arg(val)
        elif opt == b"ip-address":
            client.announced_ip = val.decode(errors="replace")
        elif opt == b"capa":
            cap = val.lower().decode(errors="replace")
            if cap in ("eof", "psync2"):
                client.capa.add(cap)
        elif opt == b"ack":
            if not client.is_replica:
                return NO_REPLY
            try:
                off = int(val)
            except ValueError:
                return NO_REPLY
            client.ack_off = max(client.ack_off, off)
            client.ack_time_ms = node.sched.now_ms()
            if client.start_stream_on_ack and client.repl_state is SlaveState.ONLINE:
                _start_command_stream(node, client)
            node._process_wait_clients()
            return NO_REPLY
        elif opt == b"getack":
            if node.master_host is not None and node.master_client is not None:
                send_ack(node)
            return NO_REPLY
        elif opt == b"rdb-only":
            if val not in (b"0", b"1"):
                raise CommandError("ERR value is out of range, must be positive")
        else:
            raise CommandError(
                f"ERR Unrecognized REPLCONF option: {argv[j].decode(errors='replace')}"
            )
    return OK


# ============================================================================ replica side


@node_command("replicaof", 3, "admin noscript stale no_async_loading")
def replicaof_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    return _replicaof(node, client, argv)


@node_command("slaveof", 3, "admin noscript stale no_async_loading")
def slaveof_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    return _replicaof(node, client, argv)


def _replicaof(node: Node, client: Client, argv: list[bytes]) -> Reply:
    """``replicaofCommand()`` (§8)."""
    if node.failover is not Failover.NO_FAILOVER:
        raise CommandError("ERR REPLICAOF not allowed while failing over.")
    if argv[1].lower() == b"no" and argv[2].lower() == b"one":
        if node.master_host is not None:
            unset_master(node)
        return OK
    if client.is_replica:
        raise CommandError(
            "ERR Command is not valid when client is a replica."
        )  # (never seen: see _reply)
    if node.config.get_bool("cluster-enabled"):
        raise CommandError("ERR REPLICAOF not allowed in cluster mode.")
    try:
        port = int(argv[2])
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise CommandError("ERR Invalid master port")
    host = argv[1].decode(errors="replace")
    if (
        node.master_host is not None
        and node.master_host.lower() == host.lower()
        and node.master_port == port
    ):
        return SimpleString("OK Already connected to specified master")
    set_master(node, host, port)
    return OK


def set_master(node: Node, host: str, port: int) -> None:
    """``replicationSetMaster()`` (§4.2)."""
    was_master = node.master_host is None
    node.master_host = None
    if node.master_client is not None:
        node.free_client(node.master_client)  # caches it (replicationCacheMaster)
    node.disconnect_blocked_clients()
    node.master_host = host
    node.master_port = port
    node.config.values["replicaof"] = f"{host} {port}"
    cancel_handshake(node)
    if was_master:
        node.cached_master = None
        # replicationCacheMasterUsingMyself(): PSYNC <own replid> <offset+1>
        node.master_initial_offset = node.master_repl_offset
        node.cached_master = CachedMaster(node.replid, node.master_repl_offset, 0)
    node.repl_state = ReplState.CONNECT
    connect_with_master(node)


def unset_master(node: Node) -> None:
    """``replicationUnsetMaster()`` (§4.1): data and backlog kept, history shifted."""
    if node.master_host is None:
        return
    node.master_host = None
    node.config.values["replicaof"] = ""
    if node.master_client is not None:
        node.free_client(node.master_client)
    node.cached_master = None
    cancel_handshake(node)
    node.shift_replication_id()
    disconnect_replicas(node)
    node.repl_state = ReplState.NONE
    node.slaveseldb = -1
    node.repl_no_slaves_since_ms = node.sched.now_ms()
    if node.backlog is None:
        node._create_backlog()


def disconnect_replicas(node: Node) -> None:
    for r in list(node.replicas):
        node.free_client(r)


def cancel_handshake(node: Node) -> None:
    """``cancelReplicationHandshake()``: abort a transfer or handshake in progress."""
    if (
        node.repl_state is ReplState.TRANSFER
        or node.repl_state in (ReplState.CONNECTING,)
        or node.repl_state.in_handshake
    ):
        conn = node.master_conn
        node.master_conn = None
        if conn is not None and not conn.closed:
            conn.close()
        node.repl_state = ReplState.CONNECT
    node.master_inbuf.clear()
    node.loading_inbox.clear()


def connect_with_master(node: Node) -> None:
    """``connectWithMaster()``: non-blocking connect; refused -> stay in CONNECT, cron retries."""
    if node.master_host is None:
        return
    now = node.sched.now_ms()
    ep = node.network.connect(node.key, node.master_host, node.master_port)
    node.repl_transfer_lastio_ms = now
    if ep is None:
        node.repl_state = ReplState.CONNECT
        return
    node.master_conn = ep
    node.master_inbuf.clear()
    node.repl_state = ReplState.CONNECTING
    ep.on_data = functools.partial(_on_master_data, node, ep)
    ep.on_close = functools.partial(_on_master_conn_closed, node, ep)
    ep.on_rdb_progress = lambda done, total: _on_rdb_progress(node, done, total)
    # the TCP connect completes one event later; then syncWithMaster sends PING
    node.sched.call_soon(lambda: _on_connected(node, ep))


def _on_connected(node: Node, ep: Endpoint) -> None:
    if node.master_conn is not ep or node.repl_state is not ReplState.CONNECTING:
        return
    node.repl_state = ReplState.RECEIVE_PING_REPLY
    ep.write(encode_command([b"PING"]))


def _on_master_conn_closed(node: Node, ep: object) -> None:
    if node.master_conn is not ep:
        return
    node.master_conn = None
    if node.master_client is not None and node.master_client.conn is ep:
        node.free_client(node.master_client)  # -> master_lost: cache it
    elif node.repl_state is not ReplState.NONE and node.master_host is not None:
        node.repl_state = ReplState.CONNECT
        node.master_inbuf.clear()
        node.loading_inbox.clear()


def _on_rdb_progress(node: Node, done: int, total: int) -> None:
    if node.repl_state is ReplState.TRANSFER:
        node.repl_transfer_read = done
        node.repl_transfer_lastio_ms = node.sched.now_ms()


def _read_line(node: Node) -> str | None:
    buf = node.master_inbuf
    i = buf.find(b"\n")
    if i < 0:
        return None
    line = bytes(buf[:i]).rstrip(b"\r").decode(errors="replace")
    del buf[: i + 1]
    return line


def _on_master_data(node: Node, ep: object, segs: list[Segment]) -> None:
    if node.master_conn is not ep or not node.alive:
        return
    node.repl_transfer_lastio_ms = node.sched.now_ms()
    if node.loading:
        node.loading_inbox.extend(segs)
        return
    i = 0
    n = len(segs)
    while i < n:
        seg = segs[i]
        if node.master_conn is not ep:
            return
        if node.is_loading():  # the previous segment may have started a load
            node.loading_inbox.extend(segs[i:])
            return
        st = node.repl_state
        if st is ReplState.CONNECTED and node.master_client is not None:
            # consecutive pre-parsed units (the live stream) are applied as one batch
            j = i
            while j < n and segs[j].frames is not None and not _is_getack(segs[j]):
                j += 1
            if j - i > 1 and not node.master_pending_stream:
                _apply_batch(node, segs[i:j])
                i = j
                continue
            apply_stream(node, seg)
            i += 1
            continue
        i += 1
        if seg.rdb is not None:
            if st is ReplState.TRANSFER:
                _receive_rdb(node, seg.rdb)
            continue
        node.master_inbuf += seg.data
        _handshake_step(node)


def _handshake_step(node: Node) -> None:
    """``syncWithMaster()`` reading replies; pipelined AUTH/REPLCONF replies in order."""
    while node.master_conn is not None:
        st = node.repl_state
        if st is ReplState.CONNECTED:
            if node.master_inbuf:
                rest = bytes(node.master_inbuf)
                node.master_inbuf.clear()
                apply_stream(node, Segment(rest))
            return
        if st is ReplState.TRANSFER:
            # keep-alive newlines before the payload only refresh lastio
            while node.master_inbuf[:1] == b"\n":
                del node.master_inbuf[:1]
            return
        line = _read_line(node)
        if line is None:
            return
        if st is ReplState.RECEIVE_PING_REPLY:
            if not (line.startswith(("+", "-NOAUTH", "-NOPERM", "-ERR operation not permitted"))):
                _handshake_error(node)
                return
            _send_handshake(node)
        elif st in (
            ReplState.RECEIVE_AUTH_REPLY,
            ReplState.RECEIVE_PORT_REPLY,
            ReplState.RECEIVE_IP_REPLY,
            ReplState.RECEIVE_CAPA_REPLY,
        ):
            expect = node.handshake_expect.pop(0) if node.handshake_expect else ""
            if expect == "auth" and line.startswith("-"):
                _handshake_error(node)  # "Unable to AUTH to MASTER"
                return
            if not node.handshake_expect:
                _send_psync(node)
            else:
                nxt = node.handshake_expect[0]
                node.repl_state = {
                    "port": ReplState.RECEIVE_PORT_REPLY,
                    "ip": ReplState.RECEIVE_IP_REPLY,
                    "capa": ReplState.RECEIVE_CAPA_REPLY,
                }[nxt]
        elif st is ReplState.RECEIVE_PSYNC_REPLY:
            if line == "":
                continue  # keep-alive while the master prepares
            _psync_reply(node, line)
        else:
            return


def _send_handshake(node: Node) -> None:
    conn = node.master_conn
    assert conn is not None
    cfg = node.config
    cmds: list[list[bytes]] = []
    expect: list[str] = []
    masterauth = cfg.get("masterauth")
    if masterauth:
        user = cfg.get("masteruser")
        cmds.append(
            [b"AUTH", user.encode(), masterauth.encode()]
            if user
            else [b"AUTH", masterauth.encode()]
        )
        expect.append("auth")
    port = cfg.get_int("replica-announce-port") or (
        cfg.get_int("tls-port") if cfg.get_bool("tls-replication") else cfg.get_int("port")
    )
    cmds.append([b"REPLCONF", b"listening-port", str(port).encode()])
    expect.append("port")
    ip = cfg.get("replica-announce-ip")
    if ip:
        cmds.append([b"REPLCONF", b"ip-address", ip.encode()])
        expect.append("ip")
    cmds.append([b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"])
    expect.append("capa")
    conn.write(b"".join(encode_command(c) for c in cmds))
    node.handshake_expect = expect
    node.repl_state = {"auth": ReplState.RECEIVE_AUTH_REPLY, "port": ReplState.RECEIVE_PORT_REPLY}[
        expect[0]
    ]


def _send_psync(node: Node) -> None:
    """``slaveTryPartialResynchronization(read_reply=0)``."""
    conn = node.master_conn
    assert conn is not None
    cached = node.cached_master
    if cached is not None:
        args = [b"PSYNC", cached.replid.encode(), str(cached.reploff + 1).encode()]
    else:
        args = [b"PSYNC", b"?", b"-1"]
    if node.failover is Failover.IN_PROGRESS:
        args.append(b"FAILOVER")
    conn.write(encode_command(args))
    node.repl_state = ReplState.RECEIVE_PSYNC_REPLY


def _handshake_error(node: Node) -> None:
    conn = node.master_conn
    node.master_conn = None
    if conn is not None and not conn.closed:
        conn.close()
    node.repl_state = ReplState.CONNECT
    node.master_inbuf.clear()


def _psync_reply(node: Node, line: str) -> None:
    """``slaveTryPartialResynchronization(read_reply=1)`` and what syncWithMaster does next."""
    if line.startswith("+FULLRESYNC"):
        parts = line.split()
        replid = parts[1] if len(parts) > 1 else ""
        node.master_replid = replid if len(replid) == 40 else ""
        try:
            node.master_initial_offset = int(parts[2]) if len(parts) > 2 else -1
        except ValueError:
            node.master_initial_offset = -1
        node.cached_master = None  # replicationDiscardCachedMaster()
        _failover_psync_result(node, ok=True)
        node.repl_state = ReplState.TRANSFER
        node.repl_transfer_size = -1
        node.repl_transfer_read = 0
        node.repl_transfer_lastio_ms = node.sched.now_ms()
        return
    if line.startswith("+CONTINUE"):
        new_id = line[10:].strip()
        cached = node.cached_master
        assert cached is not None
        if len(new_id) == 40 and new_id != cached.replid:
            node.replid2 = cached.replid
            node.second_repl_offset = node.master_repl_offset + 1
            node.replid = new_id
            cached.replid = new_id
            disconnect_replicas(node)
        _resurrect_cached_master(node)
        if node.backlog is None:
            node._create_backlog()
        _failover_psync_result(node, ok=True)
        return
    if line.startswith(("-NOMASTERLINK", "-LOADING")):
        _failover_psync_result(node, ok=False)
        _handshake_error(node)  # try later
        return
    if node.failover is Failover.IN_PROGRESS:
        # any answer but +CONTINUE/+FULLRESYNC: "Failover target rejected psync request"
        _failover_psync_result(node, ok=False)
        _handshake_error(node)
        return
    # anything else: the master does not speak PSYNC -> legacy SYNC
    assert node.master_conn is not None
    node.master_conn.write(b"SYNC\r\n")
    node.repl_state = ReplState.TRANSFER
    node.repl_transfer_size = -1
    node.master_initial_offset = -1


def _resurrect_cached_master(node: Node) -> None:
    """``replicationResurrectCachedMaster()``: offsets unchanged, link up."""
    cached = node.cached_master
    conn = node.master_conn
    assert cached is not None and conn is not None
    node.cached_master = None
    client = _new_master_client(node, conn, cached.reploff, cached.db)
    node.master_client = client
    node.repl_state = ReplState.CONNECTED
    node.repl_down_since_ms = 0
    node.master_lastinteraction_ms = node.sched.now_ms()


def _new_master_client(node: Node, conn: Endpoint, reploff: int, db: int) -> Client:
    """``replicationCreateMasterClient()``: the link's data keeps flowing to apply_stream."""
    client = node.new_client(conn)
    client.is_master = True
    client.authenticated = True
    client.db = max(db, 0)
    node.master_reploff = reploff
    node.master_read_reploff = reploff
    node.master_stream_parser.clear()
    node.master_pending_stream.clear()
    node.master_unapplied = 0
    return client


def _receive_rdb(node: Node, transfer: RdbTransfer) -> None:
    """The whole payload arrived: flush, load (taking time), then link up (§6.4)."""
    node.repl_transfer_size = 0 if transfer.eof_mark is not None else transfer.size
    node.repl_transfer_read = transfer.wire_size
    node.repl_transfer_lastio_ms = node.sched.now_ms()
    # replicationAttachToNewMaster(): the history is changing
    node.cached_master = None
    disconnect_replicas(node)
    node._free_backlog()
    node.keyspace.flushall()
    node.loading = True
    image = transfer.image
    load_ms = image.size / node.timing.rdb_load_bps * 1000
    delay = node.config.get_int("key-load-delay")
    if delay > 0:
        load_ms += image.keys * delay / 1000
    eof = transfer.eof_mark is not None
    node.sched.call_later(load_ms, lambda: _rdb_loaded(node, image, eof))


def _rdb_loaded(node: Node, image: RdbImage, eof_mode: bool) -> None:
    if not node.alive:
        return
    node.loading = False
    conn = node.master_conn
    if conn is None or node.repl_state is not ReplState.TRANSFER:
        return
    src = image.keyspace
    for db in range(min(src.databases, node.keyspace.databases)):
        for key, value, exp in src.items(db):
            node.keyspace.set_raw(db, key, value, exp)
    stream_db = image.repl.stream_db if image.repl is not None else 0
    client = _new_master_client(node, conn, node.master_initial_offset, stream_db)
    node.master_client = client
    node.repl_state = ReplState.CONNECTED
    node.repl_down_since_ms = 0
    node.master_lastinteraction_ms = node.sched.now_ms()
    node.replid = node.master_replid or node.replid
    node.master_repl_offset = node.master_initial_offset
    node.clear_replication_id2()
    if node.backlog is None:
        node._create_backlog()
    if eof_mode:
        send_ack(node)
    inbox, node.loading_inbox = node.loading_inbox, []
    if inbox:
        _on_master_data(node, conn, inbox)


def master_lost(node: Node) -> None:
    """``replicationCacheMaster()`` + ``replicationHandleMasterDisconnection()``."""
    client = node.master_client
    if client is None:
        return
    node.master_client = None
    node.cached_master = CachedMaster(node.replid, node.master_reploff, client.db)
    node.master_conn = None
    node.repl_down_since_ms = node.sched.now_ms()  # even when REPLICAOF is moving us elsewhere
    if node.master_host is not None:
        node.repl_state = ReplState.CONNECT
        # Redis 7.0 reconnects at once ("Reconnecting to MASTER", logged right after
        # "Connection with master lost") instead of waiting for the next cron: a replica
        # dropped by its master's REPLICAOF NO ONE is back within milliseconds
        connect_with_master(node)


def send_ack(node: Node) -> None:
    """``replicationSendAck()``: ``REPLCONF ACK <reploff>``."""
    conn = node.master_conn
    if conn is not None and node.master_client is not None:
        conn.write(encode_command([b"REPLCONF", b"ACK", str(node.master_reploff).encode()]))


# ------------------------------------------------------------------ applying the stream


class StreamParser:
    """Parses the master's stream, remembering where each command ends (for offsets)."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def clear(self) -> None:
        self.buf.clear()

    def commands(self) -> list[tuple[list[bytes], int]]:
        """Complete commands with their byte length; consumed bytes are dropped."""
        buf = self.buf
        out: list[tuple[list[bytes], int]] = []
        pos = 0
        n = len(buf)
        while pos < n:
            start = pos
            if buf[pos] != 0x2A:
                if buf[pos] == 0x0A:  # a stray keep-alive newline
                    pos += 1
                    out.append(([], pos - start))
                    continue
                raise ProtocolError("Protocol error: expected '*' in the replication stream")
            e = buf.find(b"\r\n", pos)
            if e < 0:
                break
            count = int(buf[pos + 1 : e])
            p = e + 2
            args: list[bytes] = []
            complete = True
            for _ in range(count):
                if p >= n or buf[p] != 0x24:
                    if p >= n:
                        complete = False
                        break
                    raise ProtocolError("Protocol error: expected '$' in the replication stream")
                e2 = buf.find(b"\r\n", p)
                if e2 < 0:
                    complete = False
                    break
                ln = int(buf[p + 1 : e2])
                s = e2 + 2
                if s + ln + 2 > n:
                    complete = False
                    break
                args.append(bytes(buf[s : s + ln]))
                p = s + ln + 2
            if not complete:
                break
            out.append((args, p - start))
            pos = p
        del buf[:pos]
        return out


def _apply_frames(node: Node, client: Client, frames: list[list[bytes]]) -> None:
    """Run parsed stream commands. Plain data commands take a short path (no gating, no
    reply: the master client needs neither); anything else goes through dispatch.

    A plain ``SET key value`` from the master (the bulk of most streams) is applied
    inline: on a replica applying its master's stream it never expires the old key
    (``replica_apply``), so its whole effect is "store the value, drop the TTL, count
    one command and one change". That holds only while nobody WATCHes keys here and no
    MULTI is open; otherwise, and for every other command, the full path runs.
    """
    cache = node._cmd_cache
    lookup = node.lookup
    keyspace = node.keyspace
    now = node.sched.clock.now_ms()
    stats = node.data_stats
    lazy = node.cfg_lazy_expire
    node_cmds = NODE_COMMANDS
    set_spec = _SET_SPEC
    inline = 0  # plain SETs applied inline, counted in one go
    watching = bool(node.watching)
    db = keyspace.dbs[client.db]
    expires = keyspace.expires[client.db]
    for argv in frames:
        spec = cache.get(argv[0]) or lookup(argv[0])
        if spec is set_spec and len(argv) == 3 and not watching and client.multi is None:
            db[argv[1]] = argv[2]
            if expires:
                expires.pop(argv[1], None)
            inline += 1
            continue
        if inline:
            node.stats["total_commands_processed"] += inline
            node.dirty += inline
            inline = 0
        if (
            spec is None
            or client.multi is not None
            or spec.name in node_cmds
            or "blocking" in spec.flags
        ):
            node.process_command(client, argv)
            if client.closed:
                return
        else:
            node.stats["total_commands_processed"] += 1
            ctx = ExecContext(keyspace, client.db, now, "replica_apply", lazy, stats)
            try:
                spec.handler(ctx, argv)
            except CommandError:
                pass  # an error on a replica applying the stream is only logged by Redis
            if ctx.dirty:
                node.dirty += ctx.dirty
            if ctx._touched is not None and node.watching:
                node._touch_watched(ctx._touched)
            if ctx._ready_keys is not None:
                node._serve_ready_keys(ctx._ready_keys)
        # the command may have selected a db, flushed or swapped dbs, or added watchers
        watching = bool(node.watching)
        db = keyspace.dbs[client.db]
        expires = keyspace.expires[client.db]
    if inline:
        node.stats["total_commands_processed"] += inline
        node.dirty += inline


def _is_getack(seg: Segment) -> bool:
    frames = seg.frames
    return bool(frames) and frames[0][0] in (b"REPLCONF", b"replconf")  # type: ignore[index]


def _apply_batch(node: Node, segs: list[Segment]) -> None:
    """Several whole units from an engine master: apply, then forward them in one piece."""
    client = node.master_client
    assert client is not None
    frames: list[list[bytes]] = []
    for seg in segs:
        frames.extend(seg.frames or ())
    data = b"".join(seg.data for seg in segs)
    node.master_lastinteraction_ms = node.sched.now_ms()
    node.stats["total_net_repl_input_bytes"] += len(data)
    node.master_read_reploff += len(data)
    _apply_frames(node, client, frames)
    if client.closed:
        return
    node.master_reploff += len(data)
    node._feed(data, frames)


def apply_stream(node: Node, seg: Segment) -> None:
    """Apply master stream bytes, then forward exactly the applied bytes (§3.8).

    ``slave_read_repl_offset`` counts what arrived, ``slave_repl_offset`` what was applied:
    inside a ``MULTI`` the applied offset stays before the ``MULTI`` until its ``EXEC``.
    """
    client = node.master_client
    if client is None:
        return
    data = seg.data
    if not data:
        return
    node.master_lastinteraction_ms = node.sched.now_ms()
    node.stats["total_net_repl_input_bytes"] += len(data)
    node.master_read_reploff += len(data)
    parser = node.master_stream_parser
    pending = node.master_pending_stream
    if seg.frames is not None and not pending:
        # a whole execution unit from an engine master: its commands are already parsed
        _apply_frames(node, client, seg.frames)
        if client.closed:
            return
        node.master_reploff += len(data)
        node._feed(data, seg.frames)
        return
    pending += data
    parser.buf += data
    try:
        commands = parser.commands()
    except ProtocolError:
        node.free_client(client)  # Redis drops a master that sends garbage
        return
    consumed = node.master_unapplied
    applied = 0
    base = node.master_reploff
    for argv, nbytes in commands:
        if argv:
            node.process_command(client, argv)
            if client.closed:
                return
        consumed += nbytes
        if client.multi is None:
            applied = consumed
            node.master_reploff = base + applied
    node.master_unapplied = consumed - applied
    if applied:
        chunk = bytes(pending[:applied])
        del pending[:applied]
        node._feed(chunk, None)


# ============================================================================ cron


def replication_cron(node: Node, now: int) -> None:
    """``replicationCron()``, once a second (every 100 ms during FAILOVER)."""
    update_failover_status(node, now)
    timeout_ms = node.config.get_int("repl-timeout") * 1000
    st = node.repl_state
    if (
        node.master_host is not None
        and (st is ReplState.CONNECTING or st.in_handshake)
        and now - node.repl_transfer_lastio_ms > timeout_ms
    ):
        cancel_handshake(node)  # "Timeout connecting to the MASTER..."
    if (
        node.master_host is not None
        and node.repl_state is ReplState.TRANSFER
        and now - node.repl_transfer_lastio_ms > timeout_ms
    ):
        cancel_handshake(node)  # "Timeout receiving bulk data from MASTER..."
    if (
        node.master_host is not None
        and node.repl_state is ReplState.CONNECTED
        and node.master_client is not None
        and now - node.master_lastinteraction_ms > timeout_ms
    ):
        node.free_client(node.master_client)  # "MASTER timeout: no data nor PING received..."
    if node.repl_state is ReplState.CONNECT:
        connect_with_master(node)
    if node.master_host is not None and node.master_client is not None:
        send_ack(node)
    period = node.config.get_int("repl-ping-replica-period")
    if node.cron_loops % period == 0 and node.replicas:
        failover_pause = bool(node.failover_end_ms) and node.pause_end_ms > now
        if not failover_pause and node.master_host is None:
            node._feed(PING_BYTES, [PING_ARGV]) if node.backlog is not None else None
    for r in node.replicas:
        presync = r.repl_state is SlaveState.WAIT_BGSAVE_START or (
            r.repl_state is SlaveState.WAIT_BGSAVE_END
            and (node.bgsave is None or node.bgsave.kind != "socket")
        )
        if presync:
            node.write_to(r, b"\n")
    timeout_s = timeout_ms // 1000
    for r in list(node.replicas):
        streaming = r.repl_state is SlaveState.ONLINE and "presync-legacy" not in r.capa
        if streaming and (now - r.ack_time_ms) // 1000 > timeout_s:
            node.free_client(r)  # "Disconnecting timedout replica (streaming sync)"
            continue
        diskless = (
            r.repl_state is SlaveState.WAIT_BGSAVE_END
            and node.bgsave is not None
            and node.bgsave.kind == "socket"
        )
        stale = (
            bool(r.repl_last_partial_write_ms)
            and (now - r.repl_last_partial_write_ms) // 1000 > timeout_s
        )
        if diskless and stale:
            node.free_client(r)  # "Disconnecting timedout replica (full sync)"
    ttl = node.config.get_int("repl-backlog-ttl")
    idle_s = (now - node.repl_no_slaves_since_ms) // 1000
    if (
        not node.replicas
        and ttl
        and node.backlog is not None
        and node.master_host is None
        and idle_s > ttl
    ):
        # "Replication backlog freed after N seconds without connected replicas."
        node.change_replication_id()
        node.clear_replication_id2()
        node._free_backlog()
    start_pending_fork(node, now)
    node._refresh_good_replicas()
    node.cron_loops += 1


# ============================================================================ FAILOVER


@node_command("failover", -1, "admin noscript stale")
def failover_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    """``failoverCommand()``."""
    if len(argv) == 2 and argv[1].lower() == b"abort":
        if node.failover is Failover.NO_FAILOVER:
            raise CommandError("ERR No failover in progress.")
        abort_failover(node)
        return OK
    timeout = 0
    force = False
    host: str | None = None
    port = 0
    j = 1
    while j < len(argv):
        word = argv[j].lower()
        if word == b"timeout" and j + 1 < len(argv) and timeout == 0:
            timeout = int_arg(argv[j + 1])
            if timeout <= 0:
                raise CommandError("ERR FAILOVER timeout must be greater than 0")
            j += 2
        elif word == b"to" and j + 2 < len(argv) and host is None:
            port = int_arg(argv[j + 2])
            host = argv[j + 1].decode(errors="replace")
            j += 3
        elif word == b"force" and not force:
            force = True
            j += 1
        else:
            raise CommandError("ERR syntax error")
    if node.failover is not Failover.NO_FAILOVER:
        raise CommandError("ERR FAILOVER already in progress.")
    if node.master_host is not None:
        raise CommandError("ERR FAILOVER is not valid when server is a replica.")
    if not node.replicas:
        raise CommandError("ERR FAILOVER requires connected replicas.")
    if force and (not timeout or host is None):
        raise CommandError(
            "ERR FAILOVER with force option requires both a timeout and target HOST and IP."
        )
    if host is not None:
        target = _find_replica(node, host, port)
        if target is None:
            raise CommandError("ERR FAILOVER target HOST and PORT is not a replica.")
        if target.repl_state is not SlaveState.ONLINE:
            raise CommandError("ERR FAILOVER target replica is not online.")
        node.failover_target = (host, port)
    else:
        node.failover_target = None
    now = node.sched.now_ms()
    node.failover_end_ms = now + timeout if timeout else 0
    node.failover_force = force
    node.failover = Failover.WAIT_FOR_SYNC
    node.failover_pause = True
    node.pause_end_ms = 2**62
    node.pause_write_only = True
    return OK


def _find_replica(node: Node, host: str, port: int) -> Client | None:
    for r in node.replicas:
        if r.replica_ip.lower() == host.lower() and r.listening_port == port:
            return r
    return None


def update_failover_status(node: Node, now: int) -> None:
    """``updateFailoverStatus()``."""
    if node.failover is not Failover.WAIT_FOR_SYNC:
        return
    if node.failover_end_ms and node.failover_end_ms <= now:
        if node.failover_force and node.failover_target is not None:
            node.failover = Failover.IN_PROGRESS
            set_master(node, *node.failover_target)
        else:
            abort_failover(node)  # "Replica never caught up before timeout"
        return
    replica: Client | None = None
    if node.failover_target is not None:
        replica = _find_replica(node, *node.failover_target)
    else:
        for r in node.replicas:
            if r.ack_off == node.master_repl_offset:
                node.failover_target = (r.replica_ip, r.listening_port)
                replica = r
                break
    if (
        replica is not None
        and replica.ack_off == node.master_repl_offset
        and node.failover_target is not None
    ):
        node.failover = Failover.IN_PROGRESS
        set_master(node, *node.failover_target)


def _failover_psync_result(node: Node, ok: bool) -> None:
    if node.failover is not Failover.IN_PROGRESS:
        return
    if ok:
        clear_failover_state(node)
    else:
        abort_failover(node)  # "Failover target rejected psync request"


def clear_failover_state(node: Node) -> None:
    node.failover_end_ms = 0
    node.failover_force = False
    node.failover_target = None
    node.failover = Failover.NO_FAILOVER
    node.failover_pause = False
    node.unpause()


def abort_failover(node: Node) -> None:
    if node.failover is Failover.NO_FAILOVER:
        return
    if node.failover is Failover.IN_PROGRESS:
        unset_master(node)
    clear_failover_state(node)


def role_reply(node: Node) -> Reply:
    """ROLE (§7): master lists ONLINE replicas only; a replica reports -1 without a master client."""
    if node.master_host is None:
        reps: list[Reply] = [
            [r.replica_ip.encode(), str(r.listening_port).encode(), str(r.ack_off).encode()]
            for r in node.replicas
            if r.repl_state is SlaveState.ONLINE
        ]
        return [b"master", node.master_repl_offset, reps]
    off = node.master_reploff if node.master_client is not None else -1
    return [
        b"slave",
        node.master_host.encode(),
        node.master_port,
        node.repl_state.role_name.encode(),
        off,
    ]


@node_command("role", 1, "noscript loading stale fast")
def role_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    return role_reply(node)
