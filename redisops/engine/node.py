"""An engine node: one Redis 7.0 server, modelled in pure Python.

This module is the replication plane: command dispatch and gating, propagation of
execution units (``SELECT`` insertion, ``MULTI``/``EXEC`` wrapping, the backlog), the
master side of replication (``PSYNC``/``SYNC``, the partial-resync rule, BGSAVE sharing,
diskless delay, replica states, output-buffer limits, ACKs, ``WAIT``, ``min-replicas``),
the replica side (``REPLICAOF``, the handshake, ``+FULLRESYNC``/``+CONTINUE``, loading,
applying and forwarding the stream, the cached master, timeouts), PSYNC2 id shifts,
``FAILOVER``, ``CLIENT PAUSE``, persistence of replication info across restarts, and
``INFO``/``ROLE``. Data commands live in :mod:`redisops.engine.datacmds`; this module
calls them through the contract in :mod:`redisops.engine.command`.

Section numbers (§) refer to ``shared/docs/redis-replication.md``; function names in
comments are Redis's (``src/replication.c`` unless noted).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable

from redisops.engine import datacmds  # noqa: F401  (registers the data commands)
from redisops.engine import replication as repl
from redisops.engine.backlog import Backlog
from redisops.engine.client import Blocked, Client, SlaveState
from redisops.engine.clock import Scheduler, Timer
from redisops.engine.command import (
    COMMANDS,
    Block,
    CommandError,
    CommandSpec,
    EngineStats,
    ExecContext,
)
from redisops.engine.config import Config
from redisops.engine.keyspace import Keyspace
from redisops.engine.network import Conn, Endpoint, Network, Segment, normalise_host
from redisops.engine.nodecmd import NO_REPLY, NODE_COMMANDS, NODE_HANDLERS, int_arg
from redisops.engine.rdb import RdbImage, ReplInfo, image_of
from redisops.engine.resp import (
    NIL_ARRAY,
    OK,
    QUEUED,
    ErrorReply,
    ProtocolError,
    Reply,
    encode_command,
    encode_reply,
)
from redisops.engine.rules import obuf_hard_limit
from redisops.engine.state import (
    EXEC_ARGV,
    GETACK_ARGV,
    GETACK_BYTES,
    MULTI_ARGV,
    NULL_REPLID,
    Bgsave,
    CachedMaster,
    EngineTiming,
    Failover,
    ReplState,
    Storage,
    new_replid,
)


class Node:
    """One server. Create it, then :meth:`start` it (loads its disk, listens, runs cron)."""

    def __init__(
        self,
        host: str,
        port: int,
        network: Network,
        config: dict[str, str] | None = None,
        storage: Storage | None = None,
        rng: random.Random | None = None,
        timing: EngineTiming | None = None,
        name: str | None = None,
    ) -> None:
        # Propagated commands not yet encoded and fed (see sync_stream). Before anything
        # else: the offset and backlog properties look at it.
        self._pend: list[list[bytes]] = []
        self._master_repl_offset = 0
        self._backlog: Backlog | None = None
        self.host = normalise_host(host)
        self.port = port
        self.key = (self.host, port)
        self.name = name or f"{host}:{port}"
        self.network = network
        self.sched: Scheduler = network.scheduler
        self.rng = rng or random.Random()
        self.timing = timing or EngineTiming()
        overrides = dict(config or {})
        overrides.setdefault("port", str(port))
        self.config = Config(overrides.items())
        self.config.observers.append(self._config_changed)
        self._cmd_cache: dict[bytes, CommandSpec | None] = {}
        self._pending_writes: list[Client] = []
        self._flush_scheduled = False
        self.acl_denied: set[str] = set()  # ACL SETUSER default -cmd
        self.watching: set[Client] = set()
        self._cache_config()
        self.storage = storage or Storage()
        self.keyspace = Keyspace(self.config.get_int("databases"))
        self.data_stats = EngineStats()
        self.stats: dict[str, int] = {
            "total_connections_received": 0,
            "total_commands_processed": 0,
            "total_net_input_bytes": 0,
            "total_net_output_bytes": 0,
            "total_net_repl_input_bytes": 0,
            "total_net_repl_output_bytes": 0,
            "rejected_connections": 0,
            "sync_full": 0,
            "sync_partial_ok": 0,
            "sync_partial_err": 0,
            "evicted_keys": 0,
            "total_forks": 0,
            "latest_fork_usec": 0,
            "total_error_replies": 0,
            "client_output_buffer_limit_disconnections": 0,
        }
        self.dirty = 0
        self.run_id = new_replid(self.rng)
        self.start_ms = 0
        self.alive = False
        self.loading = False
        self.rdb_last_save_ms = 0
        self.rdb_last_bgsave_status = "ok"
        self.rdb_last_load_keys_expired = 0
        self.rdb_last_load_keys_loaded = 0
        self.bgsave: Bgsave | None = None
        self.bgsave_scheduled = False
        self.active_expire_enabled = True
        # replication: own history
        self.replid = new_replid(self.rng)
        self.replid2 = NULL_REPLID
        self.second_repl_offset = -1
        self.slaveseldb = -1
        self.repl_no_slaves_since_ms = 0
        self.replicas: list[Client] = []
        self.good_replicas = 0
        # replication: replica side
        self.master_host: str | None = None
        self.master_port = 0
        self.repl_state = ReplState.NONE
        self.master_conn: Endpoint | None = None
        self.master_client: Client | None = None
        self.master_inbuf = bytearray()
        self.loading_inbox: list[Segment] = []
        self.master_stream_parser = repl.StreamParser()
        self.master_pending_stream = bytearray()
        self.master_unapplied = 0
        self.handshake_expect: list[str] = []
        self.cached_master: CachedMaster | None = None
        self.master_replid = ""
        self.master_initial_offset = -1
        self.repl_transfer_size = -1
        self.repl_transfer_read = 0
        self.repl_transfer_lastio_ms = 0
        self.repl_down_since_ms = 0
        self.master_lastinteraction_ms = 0
        self.master_read_reploff = 0
        self.master_reploff = 0
        # clients
        self.clients: dict[int, Client] = {}
        self._next_client_id = 1
        self.blocked_on_keys: dict[tuple[int, bytes], list[Client]] = {}
        self.wait_clients: list[Client] = []
        self.postponed: list[Client] = []
        self.get_ack_from_replicas = False
        self.pause_end_ms = 0
        self.pause_write_only = True
        self.failover_pause = False
        # FAILOVER
        self.failover = Failover.NO_FAILOVER
        self.failover_end_ms = 0
        self.failover_force = False
        self.failover_target: tuple[str, int] | None = None
        # SHUTDOWN waiting for lagging replicas (prepareForShutdown)
        self.shutdown_deadline_ms = 0
        self.shutdown_save: bool | None = None
        self.shutdown_waiters: list[Client] = []
        self._shutdown_then: list[Callable[[], None]] = []
        # DEBUG SLEEP / SIGSTOP: the node processes nothing until woken
        self.sleeping_until = 0
        self._wake_callbacks: list[Callable[[], None]] = []
        # timers
        self._timers: list[Timer] = []
        self.cron_loops = 0
        self.server_cronloops = 0  # serverCron calls since start-up (hz 10)

    # ================================================================== lifecycle
    def start(self) -> Node:
        """Boot: load the RDB from disk (with replication info, §4.4), listen, run cron."""
        now = self.sched.now_ms()
        self.start_ms = now
        self.repl_no_slaves_since_ms = now
        self.alive = True
        self.network.listen(self.host, self.port, self._accept)
        self._load_from_disk()
        replicaof = self.config.get("replicaof")
        if replicaof:
            host, _, port = replicaof.partition(" ")
            repl.set_master(self, host, int(port))
        # serverCron runs at hz 10, the first time right after start-up (aeCreateTimeEvent(1))
        self._timers.append(self.sched.call_later(1, self._server_cron))
        return self

    def crash(self) -> None:
        """kill -9: nothing is saved, every connection is reset."""
        if not self.alive:
            return
        self.alive = False
        for t in self._timers:
            t.cancel()
        self._timers.clear()
        if self.bgsave is not None and self.bgsave.timer is not None:
            self.bgsave.timer.cancel()
        self.network.unlisten(self.host, self.port)
        self.network.close_all(self.key)
        self.network.frozen.pop(self.key, None)
        for client in list(self.clients.values()):
            client.closed = True
            if not client.conn.closed:
                client.conn.close()
        self.clients.clear()
        self.replicas.clear()

    # ================================================================== shutdown
    def shutdown(
        self,
        save: bool | None = None,
        *,
        now: bool = False,
        client: Client | None = None,
        then: Callable[[], None] | None = None,
    ) -> bool:
        """SHUTDOWN / SIGTERM (``prepareForShutdown()``): unless NOW, wait up to
        ``shutdown-timeout`` with writes paused for lagging replicas (after a GETACK), then
        save (``save``; None: if save points are configured) and exit. Returns True when
        the node is gone, False when it waits."""
        if then is not None:
            self._shutdown_then.append(then)
        if client is not None:
            self.shutdown_waiters.append(client)
        if self.shutdown_deadline_ms:
            return False
        self.shutdown_save = save
        timeout = self.config.get_int("shutdown-timeout")
        if not now and timeout and not self._ready_to_shutdown():
            t = self.sched.clock.now_ms()
            self.shutdown_deadline_ms = t + timeout * 1000
            if not self._writes_paused(t) and self.backlog is not None:
                self._feed(GETACK_BYTES, [GETACK_ARGV])
            self.pause_end_ms = 2**62
            self.pause_write_only = True
            self.failover_pause = True  # not lifted by the pause timer
            return False
        self._finish_shutdown()
        return True

    def _ready_to_shutdown(self) -> bool:
        """``isReadyToShutdown()``: no replica, or every replica acked the whole stream."""
        return all(r.ack_off == self.master_repl_offset for r in self.replicas)

    def _finish_shutdown(self) -> None:
        save = self.shutdown_save
        if save or (save is None and self.config.get("save")):
            self.save_now()
        callbacks, self._shutdown_then = self._shutdown_then, []
        self.crash()
        for cb in callbacks:
            cb()

    def abort_shutdown(self) -> bool:
        """``SHUTDOWN ABORT``: waiters get an error, writes resume."""
        if not self.shutdown_deadline_ms:
            return False
        self.shutdown_deadline_ms = 0
        self._shutdown_then.clear()
        waiters, self.shutdown_waiters = self.shutdown_waiters, []
        for c in waiters:
            self._reply(c, ErrorReply("ERR Errors trying to SHUTDOWN. Check logs."))
        self.failover_pause = False
        self.unpause()
        return True

    def _load_from_disk(self) -> None:
        image = self.storage.rdb
        if image is None:
            return
        info = image.repl
        now = self.sched.now_ms()
        usable = info is not None and info.replid and info.offset != -1 and info.stream_db != -1
        aof = self.config.get_bool("appendonly")
        is_master = not self.config.get("replicaof")
        if usable and is_master and not aof:
            # a master creates its backlog before loading, so expired keys feed DELs (§4.4)
            self._create_backlog()
        expired = loaded = 0
        src = image.keyspace
        ctx = self._ctx(0, "master")
        for db in range(min(src.databases, self.keyspace.databases)):
            ctx.db = db
            for key, value, exp in src.items(db):
                if exp is not None and exp < now and is_master:
                    expired += 1
                    self.slaveseldb_feed_del(db, key)
                    continue
                self.keyspace.set_raw(db, key, value, exp)
                loaded += 1
        self.rdb_last_load_keys_expired = expired
        self.rdb_last_load_keys_loaded = loaded
        self.rdb_last_save_ms = image.saved_at_ms
        if not usable or aof or info is None:
            return
        if is_master:
            # new replid; the old history becomes replid2 (§4.4)
            self.replid2 = info.replid
            self.second_repl_offset = info.offset + 1
            self.master_repl_offset += info.offset
            if self.backlog is not None:
                self.backlog.rebase(info.offset)  # first = master_repl_offset - histlen + 1
            self.slaveseldb = -1
        else:
            self.replid = info.replid
            self.master_repl_offset = info.offset
            self.cached_master = CachedMaster(info.replid, info.offset, info.stream_db)

    def slaveseldb_feed_del(self, db: int, key: bytes) -> None:
        """Start-up load of an already expired key: a DEL in the backlog (§3.6)."""
        self._propagate_unit([(db, [b"DEL", key])])

    # ================================================================== cron
    def _server_cron(self) -> None:
        if not self.alive:
            return
        self._timers = [t for t in self._timers if not t.cancelled]
        self._timers.append(self.sched.call_later(100, self._server_cron))
        if self.network.is_frozen(self.key):
            return
        now = self.sched.now_ms()
        if self.shutdown_deadline_ms and (
            now >= self.shutdown_deadline_ms or self._ready_to_shutdown()
        ):
            self._finish_shutdown()
            return
        self._check_pause(now)
        self._check_blocked_timeouts(now)
        if self.active_expire_enabled and self.master_host is None and not self._writes_paused(now):
            self._active_expire(now)
        repl.start_pending_fork(self, now)
        # run_with_period(1000) replicationCron(), or every tick (100 ms) during FAILOVER
        every = 1 if self.failover is not Failover.NO_FAILOVER else 10
        if self.server_cronloops % every == 0:
            repl.replication_cron(self, now)
        self.server_cronloops += 1

    def _active_expire(self, now: int) -> None:
        for db in range(self.keyspace.databases):
            if not self.keyspace.expires_count(db):
                continue
            for key in self.keyspace.expired_candidates(db, now, 200):
                ctx = self._ctx(db, "master")
                self.keyspace.expire_now(ctx, key)
                self._after_command(ctx)
                # active expiry: one unwrapped DEL per key
                for op_db, argv in ctx.extra_ops:
                    self._propagate_unit([(op_db, argv)])

    # ================================================================== sleeping
    def is_loading(self) -> bool:
        return self.loading

    @property
    def sleeping(self) -> bool:
        return self.sleeping_until > 0

    def sleep(self, ms: int) -> None:
        """``DEBUG SLEEP``: stop processing anything for ``ms`` (the event loop is blocked)."""
        self.sleeping_until = self.sched.now_ms() + max(ms, 0)
        self.network.freeze(self.key)
        self._timers.append(self.sched.call_at(self.sleeping_until, self._wake))

    def freeze(self) -> None:
        """SIGSTOP: like an endless DEBUG SLEEP; :meth:`thaw` is SIGCONT."""
        self.sleeping_until = 2**62
        self.network.freeze(self.key)

    def thaw(self) -> None:
        self._wake()

    def after_wake(self, callback: Callable[[], None]) -> None:
        if self.sleeping:
            self._wake_callbacks.append(callback)
        else:
            callback()

    def _wake(self) -> None:
        if not self.alive or not self.sleeping:
            return
        self.sleeping_until = 0
        callbacks, self._wake_callbacks = self._wake_callbacks, []
        for cb in callbacks:
            cb()
        self.network.thaw(self.key)
        for client in list(self.clients.values()):
            if client.pending and client.blocked is None:
                self.sched.call_soon(functools.partial(self._resume_pending, client))

    # ================================================================== clients
    def _accept(self, endpoint: Endpoint) -> None:
        self.accept(endpoint)

    def new_client(self, conn: Conn) -> Client:
        client = Client(self._next_client_id, conn, self.sched.now_ms())
        client.stream_hook = self.sync_stream
        self._next_client_id += 1
        self.clients[client.id] = client
        return client

    def accept(self, conn: Conn) -> Client:
        """A new connection (in-process endpoint or lab TCP socket)."""
        client = self.new_client(conn)
        self.stats["total_connections_received"] += 1
        client.authenticated = not self.cfg_requirepass
        if isinstance(conn, Endpoint):
            conn.on_data = functools.partial(self._on_client_segments, client)
            conn.on_close = functools.partial(self.free_client, client)
        return client

    def _on_client_segments(self, client: Client, segs: list[Segment]) -> None:
        for seg in segs:
            if seg.data:
                self.on_client_bytes(client, seg.data)

    def on_client_bytes(self, client: Client, data: bytes) -> None:
        """Bytes from a client: parse commands and run them (or queue while blocked)."""
        if client.closed or not self.alive:
            return
        self.stats["total_net_input_bytes"] += len(data)
        client.last_interaction_ms = self.sched.now_ms()
        client.parser.feed(data)
        try:
            commands = client.parser.commands()
        except ProtocolError as exc:
            self._reply(client, ErrorReply(f"ERR {exc}"))
            self.free_client(client)
            return
        for argv in commands:
            if client.is_gone():  # a previous command may have closed it
                return
            if client.blocked is not None or client.pending or self.sleeping:
                client.pending.append(argv)
                continue
            self.process_command(client, argv)

    def free_client(self, client: Client) -> None:
        if client.closed:
            return
        self.flush_client(client)  # what was already produced still goes out first
        client.closed = True
        self.clients.pop(client.id, None)
        self.watching.discard(client)
        self._unblock(client, None, send=False)
        if client in self.wait_clients:
            self.wait_clients.remove(client)
        if client in self.postponed:
            self.postponed.remove(client)
        if client.is_replica and client in self.replicas:
            self.replicas.remove(client)
            if not self.replicas:
                self.repl_no_slaves_since_ms = self.sched.now_ms()
            self._refresh_good_replicas()
        if client is self.master_client:
            repl.master_lost(self)
        if not client.conn.closed:
            client.conn.close()

    def _reply(self, client: Client, value: Reply) -> None:
        if client.closed:
            return
        if isinstance(value, ErrorReply):
            self.stats["total_error_replies"] += 1
        if client.is_master:
            return  # the master never gets replies (only REPLCONF ACK, sent explicitly)
        if client.is_replica:
            # "Replica generated a reply to command": Redis drops such a replica (§6.3)
            self.sched.call_soon(functools.partial(self.free_client, client))
            return
        self._queue_reply(client, _OK_BYTES if value is OK else encode_reply(value, client.resp))

    def _queue_reply(self, client: Client, data: bytes) -> None:
        """Queue reply bytes; they go out with the end of this event-loop iteration."""
        self.stats["total_net_output_bytes"] += len(data)
        if not client.out and not client.out_stream:
            self._pending_writes.append(client)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self.sched.call_soon(self._flush_writes)
        client.out.append(data)

    def _flush_writes(self) -> None:
        """``handleClientsWithPendingWrites()``: what this iteration produced for each
        client goes out in one write (one segment, one TCP send)."""
        self._flush_scheduled = False
        self.sync_stream()
        clients, self._pending_writes = self._pending_writes, []
        # replicas first: their stream was queued by the writes whose replies follow
        for r in [r for r in self.replicas if r.out_stream]:
            self._flush_client(r)
        for client in clients:
            self._flush_client(client)

    def _flush_client(self, client: Client) -> None:
        conn = client.conn
        if client.out:
            data = client.out[0] if len(client.out) == 1 else b"".join(client.out)
            client.out = []
            if not conn.closed:
                conn.write(data)
        if client.out_stream:
            chunks, client.out_stream = client.out_stream, []
            for data, frames in _stream_segments(chunks):
                if conn.closed:
                    break
                conn.write(data, frames, stream=True)

    def flush_client(self, client: Client) -> None:
        """Send what is queued for ``client`` now (before a write that must follow it)."""
        self.sync_stream()
        if client.out or client.out_stream:
            self._flush_client(client)

    def write_to(self, client: Client, data: bytes, *, stream: bool = False) -> None:
        """Write to a client right away, after whatever was already queued for it."""
        self.flush_client(client)
        client.conn.write(data, None, stream=stream)

    def _ctx(self, db: int, mode: str) -> ExecContext:
        if mode == "master" and self.pause_end_ms and self.pause_end_ms > self.sched.clock.now_ms():
            # paused writes: expired keys look missing but are not deleted (no DEL in the
            # stream), as expireIfNeeded() does under checkClientPauseTimeoutAndReturnIfPaused()
            mode = "replica_client"
        ctx = ExecContext(
            self.keyspace,
            db,
            self.sched.clock.now_ms(),
            mode,  # type: ignore[arg-type]
            self.cfg_lazy_expire,
            self.data_stats,
        )
        if self.cfg_lazy_user_del:
            ctx.lazyfree_lazy_user_del = True
        return ctx

    # ================================================================== dispatch
    def lookup(self, name: bytes) -> CommandSpec | None:
        try:
            return self._cmd_cache[name]
        except KeyError:
            key = name.lower().decode(errors="replace")
            spec = NODE_COMMANDS.get(key) or COMMANDS.get(key)
            if len(self._cmd_cache) < 4096:
                self._cmd_cache[name] = spec
            return spec

    def process_command(self, client: Client, argv: list[bytes]) -> None:
        """``processCommand()``: checks in Redis's order, then call or queue."""
        if not argv:
            return
        spec = self.lookup(argv[0])
        if spec is None:
            name = argv[0].decode(errors="replace")
            args = " ".join(f"'{a.decode(errors='replace')[:128]}'" for a in argv[1:])
            err = ErrorReply(
                f"ERR unknown command '{name[:128]}', with args beginning with: {args}"
            )
            if args:
                err = ErrorReply(f"{err} ")
            self._flag_multi_error(client)
            self._reply(client, err)
            return
        arity = spec.arity
        if (arity > 0 and len(argv) != arity) or len(argv) < -arity:
            self._flag_multi_error(client)
            self._reply(
                client, ErrorReply(f"ERR wrong number of arguments for '{spec.name}' command")
            )
            return
        if client.is_master:
            if client.multi is not None and spec.name not in _MULTI_CONTROL:
                client.multi.append((spec, argv))
                return
            self.call(client, spec, argv)
            return
        if not client.authenticated and spec.name not in _NO_AUTH:
            self._flag_multi_error(client)
            self._reply(client, ErrorReply("NOAUTH Authentication required."))
            return
        if self.acl_denied and spec.name in self.acl_denied:
            self._flag_multi_error(client)
            self._reply(
                client,
                ErrorReply(f"NOPERM this user has no permissions to run the '{spec.name}' command"),
            )
            return
        if self.loading or self.master_host is not None or self.cfg_min_replicas:
            refusal = self._gate(client, spec, "write" in spec.flags)
            if refusal is not None:
                self._flag_multi_error(client)
                self._reply(client, refusal)
                return
        if client.multi is not None and spec.name not in _MULTI_CONTROL:
            if "no_multi" in spec.flags:
                self._flag_multi_error(client)
                self._reply(client, ErrorReply("ERR Command not allowed inside a transaction"))
                return
            client.multi.append((spec, argv))
            self._reply(client, QUEUED)
            return
        # CLIENT PAUSE: postpone writes (and everything with ALL) from normal clients
        if self.pause_end_ms and not client.is_replica and self._is_paused_for(spec, argv):
            client.blocked = Blocked("pause", argv, spec)
            self.postponed.append(client)
            return
        self.call(client, spec, argv)

    def _flag_multi_error(self, client: Client) -> None:
        if client.multi is not None:
            client.multi_error = True

    def _gate(self, client: Client, spec: CommandSpec, is_write: bool) -> ErrorReply | None:
        """§6.7 in ``processCommand()`` order, plus LOADING. Every refusal here needs
        ``loading``, a master (replica) or ``min-replicas-to-write``: process_command
        skips the call otherwise, so a new check must keep to that (or widen the skip)."""
        if self.loading and "loading" not in spec.flags:
            return ErrorReply("LOADING Redis is loading the dataset in memory")
        if self.master_host is None:
            if (
                is_write
                and self.cfg_min_replicas
                and self.cfg_min_replicas_lag
                and self.good_replicas < self.cfg_min_replicas
            ):
                return ErrorReply("NOREPLICAS Not enough good replicas to write.")
        else:
            if is_write and self.cfg_read_only:
                return ErrorReply("READONLY You can't write against a read only replica.")
            if (
                self.repl_state is not ReplState.CONNECTED
                and not self.cfg_serve_stale
                and "stale" not in spec.flags
            ):
                return ErrorReply(
                    "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
                )
        return None

    def call(self, client: Client, spec: CommandSpec, argv: list[bytes]) -> None:
        """Run one command as its own execution unit and propagate what it wrote."""
        self.stats["total_commands_processed"] += 1
        if client.is_master:
            ctx = self._ctx(client.db, "replica_apply")
        elif self.master_host is not None or self.pause_end_ms:
            ctx = self._ctx(client.db, "replica_client" if self.master_host else "master")
        else:  # a master serving a client, writes not paused: the hot path, inlined
            ctx = ExecContext(
                self.keyspace,
                client.db,
                self.sched.clock.now_ms(),
                "master",
                self.cfg_lazy_expire,
                self.data_stats,
            )
            if self.cfg_lazy_user_del:
                ctx.lazyfree_lazy_user_del = True
        try:
            result = (
                spec.handler(ctx, argv)
                if spec.name not in NODE_COMMANDS
                else self._node_call(client, spec, argv, ctx)
            )
        except CommandError as exc:
            self._after_command(ctx)
            self._propagate_ctx(ctx, argv, spec, client)
            self._reply(client, ErrorReply(exc.message))
            return
        self._after_command(ctx)
        if ctx.dirty or ctx.forced or ctx._extra_ops:
            self._propagate_ctx(ctx, argv, spec, client)
        if isinstance(result, Block):
            self._block_on_keys(client, spec, argv, result)
            return
        if result is OK and not (client.closed or client.is_master or client.is_replica):
            self._queue_reply(client, _OK_BYTES)  # +OK to an ordinary client: no checks
        elif result is not NO_REPLY:
            self._reply(client, result)
        if ctx._ready_keys is not None:
            self._serve_ready_keys(ctx._ready_keys)

    def _after_command(self, ctx: ExecContext) -> None:
        if ctx.dirty:
            self.dirty += ctx.dirty
        if ctx._touched is not None and self.watching:
            self._touch_watched(ctx._touched)

    def _propagate_ctx(
        self, ctx: ExecContext, argv: list[bytes], spec: CommandSpec, client: Client
    ) -> None:
        """Collect the unit's ops: extra ops first, then the command (rewritten or not)."""
        if client.is_master:
            return  # a replica never generates stream bytes (it forwards, §3.8)
        extra = ctx._extra_ops
        if (ctx.dirty or ctx.forced) and ctx.propagate_self and "no_propagate" not in spec.flags:
            out = ctx.rewritten if ctx.rewritten is not None else argv
            if extra:
                self._propagate_unit([*extra, (ctx.db, out)])
            elif ctx.db == self.slaveseldb and self.master_host is None:
                # the common case: one command in the db the stream already selected
                if self._backlog is not None or self.replicas:
                    self._pend.append(out)
                    if not self._flush_scheduled:
                        self._flush_scheduled = True
                        self.sched.call_soon(self._flush_writes)
            else:
                self._propagate_unit([(ctx.db, out)])
        elif extra:
            self._propagate_unit(extra)

    # ================================================================== propagation (§3)
    def _propagate_unit(self, ops: list[tuple[int, list[bytes]]]) -> None:
        """``propagatePendingCommands()`` + ``replicationFeedSlaves()`` for one unit."""
        if self.master_host is not None:
            return
        if self._backlog is None and not self.replicas:
            return  # §3.1: nothing to feed, the offset does not move
        pend = self._pend
        wrap = len(ops) > 1
        seldb = self.slaveseldb
        for i, (db, argv) in enumerate(ops):
            if db != seldb:
                pend.append([b"SELECT", str(db).encode()])
                seldb = db
            if wrap and i == 0:
                pend.append(MULTI_ARGV)
            pend.append(argv)
        if wrap:
            pend.append(EXEC_ARGV)
        self.slaveseldb = seldb
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.sched.call_soon(self._flush_writes)

    # The stream is produced lazily: propagation appends each command's argv to _pend
    # (SELECT, MULTI and EXEC included, in order, as decided at propagation time), and
    # sync_stream() encodes and feeds them in one go - before anything can observe the
    # offset or the backlog (the properties below), before any other bytes are fed, before
    # any write to a replica and at the end of the event-loop iteration. Nothing can tell
    # the difference from feeding each command at once: block sizes and trimming follow
    # the per-command rule (see Backlog.feed_pieces), and replicas get the same bytes in order.

    def config_file_lines(self) -> list[str]:
        """What ``CONFIG REWRITE`` writes: every non-default setting, and the master."""
        lines = self.config.rewrite_lines()
        if self.master_host is not None:
            lines.append(f"replicaof {self.master_host} {self.master_port}")
        return lines

    @property
    def master_repl_offset(self) -> int:
        self.sync_stream()
        return self._master_repl_offset

    @master_repl_offset.setter
    def master_repl_offset(self, value: int) -> None:
        self.sync_stream()
        self._master_repl_offset = value

    @property
    def backlog(self) -> Backlog | None:
        self.sync_stream()
        return self._backlog

    @backlog.setter
    def backlog(self, value: Backlog | None) -> None:
        self.sync_stream()
        self._backlog = value

    def sync_stream(self) -> None:
        """Encode and feed the propagated commands queued in ``_pend`` (also called before
        a replica changes state, through its ``stream_hook``)."""
        if not self._pend:
            return
        frames, self._pend = self._pend, []
        if len(frames) == 1:
            self._feed_now(encode_command(frames[0]), frames)
            return
        parts = [encode_command(argv) for argv in frames]
        self._feed_now(b"".join(parts), frames, [len(p) for p in parts])

    def _feed(self, data: bytes, frames: list[list[bytes]] | None) -> None:
        """``feedReplicationBuffer()``: backlog + every replica that takes the stream."""
        self.sync_stream()  # what was propagated before goes first
        self._feed_now(data, frames)

    def _feed_now(
        self, data: bytes, frames: list[list[bytes]] | None, lens: list[int] | None = None
    ) -> None:
        """Feed ``data`` (``lens``: the lengths of the writes it is made of) now."""
        backlog = self._backlog
        if backlog is None:
            if not self.replicas:
                return
            # replicas without a backlog cannot happen in Redis; be defensive
            self._create_backlog()
            backlog = self._backlog
            assert backlog is not None
        replicas = self.replicas
        pins = self._replica_pins if replicas else None
        new_block = (
            backlog.feed(data, pins) if lens is None else backlog.feed_pieces(data, lens, pins)
        )
        self._master_repl_offset = backlog.end
        if not replicas:
            return
        # Replicas waiting for a BGSAVE, or for the ACK after a diskless transfer, get
        # the stream later from the backlog; online ones get it queued now (one shared
        # item: the same bytes go to every replica, as Redis's shared replication buffer).
        n = len(data)
        item = (data, frames)
        online = 0
        for r in replicas:
            if r._repl_state is _ONLINE and not r._start_stream_on_ack:
                r.out_stream.append(item)
                online += 1
        if online:
            self.stats["total_net_repl_output_bytes"] += n * online
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self.sched.call_soon(self._flush_writes)
        if new_block:
            self._check_output_buffers()

    @staticmethod
    def _unsent(r: Client) -> int:
        """Stream bytes a replica has not been sent yet: queued here, or in flight."""
        return r.out_stream_bytes + r.conn.pending_stream_bytes()

    def _replica_pins(self) -> list[int]:
        pins = []
        for r in self.replicas:
            if r.repl_state is SlaveState.ONLINE and not r.start_stream_on_ack:
                pending = self._unsent(r)
                if pending:
                    pins.append(self.master_repl_offset - pending + 1)
            elif (
                r.repl_state in (SlaveState.WAIT_BGSAVE_END, SlaveState.SEND_BULK)
                or r.start_stream_on_ack
            ):
                pins.append(r.psync_initial_offset + 1)
        return pins

    def replica_buffer_usage(self, r: Client) -> int:
        """Output-buffer memory held for replica ``r`` (``getClientOutputBufferMemoryUsage``)."""
        if self.backlog is None:
            return 0
        if r.repl_state is SlaveState.ONLINE and not r.start_stream_on_ack:
            pending = self._unsent(r)
            return (
                self.backlog.buffer_usage_from(self.master_repl_offset - pending + 1)
                if pending
                else 0
            )
        if (
            r.repl_state in (SlaveState.WAIT_BGSAVE_END, SlaveState.SEND_BULK)
            or r.start_stream_on_ack
        ):
            if self.master_repl_offset <= r.psync_initial_offset:
                return 0
            return self.backlog.buffer_usage_from(r.psync_initial_offset + 1)
        return 0

    def _obuf_limits(self) -> tuple[int, int, int]:
        hard, soft, secs = self.config.obl("slave")
        return obuf_hard_limit(hard, self.config.get_int("repl-backlog-size")), soft, secs

    def _check_output_buffers(self) -> None:
        """``checkClientOutputBufferLimits()`` for replicas; closes asynchronously."""
        hard, soft, secs = self._obuf_limits()
        now = self.sched.now_ms()
        for r in list(self.replicas):
            usage = self.replica_buffer_usage(r)
            over = False
            if hard and usage >= hard:
                over = True
            elif soft and usage >= soft:
                if not r.obuf_soft_since_ms:
                    r.obuf_soft_since_ms = now
                elif (now - r.obuf_soft_since_ms) // 1000 > secs:
                    over = True
            else:
                r.obuf_soft_since_ms = 0
            if over:
                self.stats["client_output_buffer_limit_disconnections"] += 1
                self.sched.call_soon(functools.partial(self.free_client, r))

    def _create_backlog(self) -> None:
        """``createReplicationBacklog()``: empty, first byte = offset + 1."""
        self.backlog = Backlog(self.config.get_int("repl-backlog-size"), self.master_repl_offset)
        # a backlog just created is new history for whoever reads it
        self.slaveseldb = -1

    def _free_backlog(self) -> None:
        self.backlog = None

    def change_replication_id(self) -> None:
        self.replid = new_replid(self.rng)

    def clear_replication_id2(self) -> None:
        self.replid2 = NULL_REPLID
        self.second_repl_offset = -1

    def shift_replication_id(self) -> None:
        """``shiftReplicationId()``: the current history becomes the second one (§4.1)."""
        self.replid2 = self.replid
        self.second_repl_offset = self.master_repl_offset + 1
        self.change_replication_id()

    # ================================================================== transactions & WATCH
    def _touch_watched(self, touched: list[tuple[int, bytes]]) -> None:
        if not self.watching:
            return
        keys = set(touched)
        for c in self.watching:
            if not keys.isdisjoint(c.watched):
                c.dirty_cas = True

    def _exec(self, client: Client, ctx: ExecContext) -> Reply:
        """EXEC: run the queue as one execution unit (one MULTI/EXEC in the stream if > 1 op)."""
        queue = client.multi
        if queue is None:
            raise CommandError("ERR EXEC without MULTI")
        client.multi = None
        watched_dirty = client.dirty_cas
        client.watched.clear()
        self.watching.discard(client)
        client.dirty_cas = False
        if client.multi_error:
            client.multi_error = False
            raise CommandError("EXECABORT Transaction discarded because of previous errors.")
        if watched_dirty:
            return NIL_ARRAY
        return self._exec_run(client, list(queue), [], [], [], ctx.mode)

    def _exec_run(
        self,
        client: Client,
        queue: list[tuple[CommandSpec, list[bytes]]],
        replies: list[Reply],
        ops: list[tuple[int, list[bytes]]],
        ready: list[tuple[int, bytes]],
        mode: str,
    ) -> Reply:
        """Run queued commands; a DEBUG SLEEP inside defers the rest until the node wakes."""
        while queue:
            spec, argv = queue.pop(0)
            self.stats["total_commands_processed"] += 1
            sub = self._ctx(client.db, mode)
            sub.in_multi = True
            if not client.is_master:
                err = self._gate(client, spec, "write" in spec.flags)
                if err is not None:
                    replies.append(err)
                    continue
            res: Reply | Block
            try:
                if spec.name in NODE_COMMANDS:
                    res = self._node_call(client, spec, argv, sub)
                else:
                    res = spec.handler(sub, argv)
                if isinstance(res, Block):
                    res = res.timeout_reply
            except CommandError as exc:
                res = ErrorReply(exc.message)
            self._after_command(sub)
            if not client.is_master:
                unit = list(sub.extra_ops)
                if (
                    (sub.dirty or sub.forced)
                    and sub.propagate_self
                    and "no_propagate" not in spec.flags
                ):
                    unit = [*unit, (sub.db, sub.rewritten if sub.rewritten is not None else argv)]
                ops.extend(unit)
            ready.extend(sub.ready_keys)
            replies.append(res if res is not NO_REPLY else OK)
            if self.sleeping and queue:

                def resume() -> None:
                    result = self._exec_run(client, queue, replies, ops, ready, mode)
                    if result is not NO_REPLY:
                        self._reply(client, result)

                self._wake_callbacks.append(resume)
                return NO_REPLY
        if ops:
            self._propagate_unit(ops)
        if ready:
            self.sched.call_soon(lambda: self._serve_ready_keys(ready))
        return replies

    # ================================================================== blocking
    def _block_on_keys(
        self, client: Client, spec: CommandSpec, argv: list[bytes], blk: Block
    ) -> None:
        client.blocked = Blocked(
            "keys", argv, spec, list(blk.keys), client.db, blk.deadline_ms, blk.timeout_reply
        )
        for key in blk.keys:
            self.blocked_on_keys.setdefault((client.db, key), []).append(client)

    def _serve_ready_keys(self, ready: list[tuple[int, bytes]]) -> None:
        """``handleClientsBlockedOnKeys()``: each served pop is its own unit, after the push."""
        for db, key in ready:
            waiters = self.blocked_on_keys.get((db, key))
            if not waiters:
                continue
            for client in list(waiters):
                blk = client.blocked
                if blk is None or blk.spec is None:
                    continue
                ctx = self._ctx(blk.db, "master" if self.master_host is None else "replica_client")
                ctx.unblocking = True
                ctx.unblock_key = key
                try:
                    res = blk.spec.handler(ctx, blk.argv)
                except CommandError as exc:
                    res = ErrorReply(exc.message)
                if isinstance(res, Block):
                    continue
                self._after_command(ctx)
                self._propagate_ctx(ctx, blk.argv, blk.spec, client)
                self._unblock(client, res)
                if ctx.ready_keys:
                    self.sched.call_soon(
                        functools.partial(self._serve_ready_keys, list(ctx.ready_keys))
                    )

    def _unblock(self, client: Client, reply: Reply | None, send: bool = True) -> None:
        blk = client.blocked
        if blk is None:
            return
        client.blocked = None
        if blk.kind == "keys":
            for key in blk.keys:
                lst = self.blocked_on_keys.get((blk.db, key))
                if lst and client in lst:
                    lst.remove(client)
                    if not lst:
                        del self.blocked_on_keys[(blk.db, key)]
        elif blk.kind == "wait" and client in self.wait_clients:
            self.wait_clients.remove(client)
        if send:
            self._reply(client, reply)
        if client.pending and not client.closed:
            self.sched.call_soon(lambda: self._resume_pending(client))

    def _resume_pending(self, client: Client) -> None:
        while client.pending and client.blocked is None and not client.closed and not self.sleeping:
            argv = client.pending.pop(0)
            self.process_command(client, argv)

    def _check_blocked_timeouts(self, now: int) -> None:
        for client in list(self.clients.values()):
            blk = client.blocked
            if blk is None or not blk.deadline_ms or blk.deadline_ms > now:
                continue
            if blk.kind == "keys":
                self._unblock(client, blk.timeout_reply)
            elif blk.kind == "wait":
                self._unblock(client, self._count_acks(blk.wait_offset))

    def disconnect_blocked_clients(self) -> None:
        """``disconnectAllBlockedClients()`` when the node turns into a replica (§4.2)."""
        for client in list(self.clients.values()):
            if client.blocked is not None and client.blocked.kind == "keys":
                self._unblock(
                    client,
                    ErrorReply(
                        "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)"
                    ),
                )
                # sent with CLIENT_CLOSE_AFTER_REPLY: the connection goes too
                self.sched.call_soon(functools.partial(self.free_client, client))

    # ================================================================== CLIENT PAUSE
    def _writes_paused(self, now: int) -> bool:
        return self.pause_end_ms > now

    def _is_paused_for(self, spec: CommandSpec, argv: list[bytes]) -> bool:
        if self.pause_end_ms <= self.sched.now_ms():
            return False
        if not self.pause_write_only:
            return True
        return (
            "write" in spec.flags
            or "may_replicate" in spec.flags
            or spec.name in ("publish", "eval", "evalsha")
        )

    def pause(self, ms: int, write_only: bool) -> None:
        self.pause_end_ms = max(self.pause_end_ms, self.sched.now_ms() + ms)
        self.pause_write_only = write_only
        self._timers.append(
            self.sched.call_at(self.pause_end_ms, lambda: self._check_pause(self.sched.now_ms()))
        )

    def unpause(self) -> None:
        self.pause_end_ms = 0
        self._release_postponed()

    def _check_pause(self, now: int) -> None:
        if self.pause_end_ms and self.pause_end_ms <= now and not self.failover_pause:
            self.pause_end_ms = 0
            self._release_postponed()

    def _release_postponed(self) -> None:
        waiting, self.postponed = self.postponed, []
        for client in waiting:
            blk = client.blocked
            client.blocked = None
            if blk is not None and not client.closed:
                self.process_command(client, blk.argv)
            if client.pending and not client.closed:
                self.sched.call_soon(functools.partial(self._resume_pending, client))

    # ================================================================== WAIT / ACKs
    def _count_acks(self, offset: int) -> int:
        return sum(
            1 for r in self.replicas if r.repl_state is SlaveState.ONLINE and r.ack_off >= offset
        )

    def _wait(self, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
        if self.master_host is not None:
            raise CommandError(
                "ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated."
            )
        numreplicas = int_arg(argv[1])
        timeout = int_arg(argv[2])
        if timeout < 0:
            raise CommandError("ERR timeout is negative")
        offset = self.master_repl_offset
        acked = self._count_acks(offset)
        if acked >= numreplicas or ctx.in_multi:
            return acked
        deadline = self.sched.now_ms() + timeout if timeout else 0
        client.blocked = Blocked(
            "wait", argv, None, [], client.db, deadline, None, offset, numreplicas
        )
        self.wait_clients.append(client)
        if not self.get_ack_from_replicas:
            self.get_ack_from_replicas = True
            self.sched.call_soon(self._before_sleep_getack)
        if deadline:
            self._timers.append(
                self.sched.call_at(
                    deadline, lambda: self._check_blocked_timeouts(self.sched.now_ms())
                )
            )
        return NO_REPLY

    def _before_sleep_getack(self) -> None:
        """beforeSleep(): ask replicas for an ACK after a WAIT blocked, unless paused."""
        if not self.alive or not self.get_ack_from_replicas:
            return
        if self._writes_paused(self.sched.now_ms()):
            self.sched.call_later(10, self._before_sleep_getack)
            return
        self.get_ack_from_replicas = False
        if self.replicas and self.backlog is not None:
            self._feed(GETACK_BYTES, [GETACK_ARGV])

    def _process_wait_clients(self) -> None:
        for client in list(self.wait_clients):
            blk = client.blocked
            if blk is None:
                continue
            acked = self._count_acks(blk.wait_offset)
            if acked >= blk.wait_replicas:
                self._unblock(client, acked)

    def _refresh_good_replicas(self) -> None:
        """``refreshGoodSlavesCount()``."""
        need = self.config.get_int("min-replicas-to-write")
        max_lag = self.config.get_int("min-replicas-max-lag")
        if not need or not max_lag:
            self.good_replicas = 0
            return
        now = self.sched.now_ms()
        self.good_replicas = sum(
            1
            for r in self.replicas
            if r.repl_state is SlaveState.ONLINE and (now - r.ack_time_ms) // 1000 <= max_lag
        )

    # ================================================================== config observers
    def _cache_config(self) -> None:
        """Hot-path copies of config values (kept current by :meth:`_config_changed`)."""
        cfg = self.config
        self.cfg_min_replicas = cfg.get_int("min-replicas-to-write")
        self.cfg_min_replicas_lag = cfg.get_int("min-replicas-max-lag")
        self.cfg_read_only = cfg.get_bool("replica-read-only")
        self.cfg_serve_stale = cfg.get_bool("replica-serve-stale-data")
        self.cfg_lazy_expire = cfg.get_bool("lazyfree-lazy-expire")
        self.cfg_lazy_user_del = cfg.get_bool("lazyfree-lazy-user-del")
        self.cfg_requirepass = bool(cfg.get("requirepass"))

    def _config_changed(self, name: str, value: str) -> None:
        self._cache_config()
        if name == "repl-backlog-size" and self.backlog is not None:
            self.backlog.resize(int(value))
        elif name in ("min-replicas-to-write", "min-replicas-max-lag"):
            self._refresh_good_replicas()

    # ================================================================== persistence
    def _repl_info_for_save(self) -> ReplInfo | None:
        """``rdbPopulateSaveInfo()``: master with a backlog, or replica with a (cached) master."""
        if self.master_host is None:
            if self.backlog is None:
                return None
            return ReplInfo(self.replid, self.master_repl_offset, max(self.slaveseldb, 0))
        if self.master_client is not None:
            return ReplInfo(self.replid, self.master_reploff, self.master_client.db)
        if self.cached_master is not None:
            return ReplInfo(
                self.cached_master.replid, self.cached_master.reploff, self.cached_master.db
            )
        return None

    def save_now(self) -> RdbImage:
        image = image_of(self.keyspace, self.sched.now_ms(), self._repl_info_for_save())
        self.storage.store(image)
        self.dirty = 0
        self.rdb_last_save_ms = image.saved_at_ms
        self.rdb_last_bgsave_status = "ok"
        return image

    def _fork_ms(self) -> int:
        gb = max(self.used_memory(), 0) / 1024**3
        return int(gb * self.timing.fork_ms_per_gb)

    def start_bgsave(self, for_replication: bool, socket_target: bool) -> Bgsave | None:
        """Fork a child: the snapshot is taken now (copy-on-write), finishing later."""
        if self.bgsave is not None:
            return None
        now = self.sched.now_ms()
        fork_ms = self._fork_ms()
        self.stats["total_forks"] += 1
        self.stats["latest_fork_usec"] = fork_ms * 1000 + 150
        image = image_of(self.keyspace, now, self._repl_info_for_save())
        job = Bgsave("socket" if socket_target else "disk", now, image, for_replication)
        self.bgsave = job
        delay = self.config.get_int("rdb-key-save-delay")
        produce_ms = image.size / self.timing.rdb_produce_bps * 1000
        if delay > 0:
            produce_ms += image.keys * delay / 1000
        if not socket_target:
            produce_ms += image.size / self.timing.disk_write_bps * 1000
        job.timer = self.sched.call_later(fork_ms + produce_ms, lambda: self._bgsave_done(job))
        return job

    def _bgsave_done(self, job: Bgsave) -> None:
        if not self.alive or self.bgsave is not job:
            return
        self.bgsave = None
        now = self.sched.now_ms()
        if job.kind == "disk":
            self.storage.store(job.image)
            self.rdb_last_save_ms = now
            self.rdb_last_bgsave_status = "ok"
            self.dirty = 0
        repl.bgsave_done_for_replicas(self, job)

    def used_memory(self) -> int:
        base = 870_000
        return (
            base
            + self.keyspace.rdb_size_estimate() * 2
            + (self.backlog.memory if self.backlog else 0)
        )

    # ================================================================== commands the node owns
    def _node_call(
        self, client: Client, spec: CommandSpec, argv: list[bytes], ctx: ExecContext
    ) -> Reply:
        self.sync_stream()  # server commands see (and may feed) the stream as it is
        return NODE_HANDLERS[spec.name](self, client, argv, ctx)


_StreamItem = tuple[bytes, "list[list[bytes]] | None"]


def _stream_segments(chunks: list[_StreamItem]) -> list[_StreamItem]:
    """Queued stream items as segments: consecutive pre-parsed units travel as one
    segment carrying all their frames; raw bytes (frames None) break the run."""
    if len(chunks) == 1:
        return chunks  # receivers never mutate frames: no copy needed
    segments: list[_StreamItem] = []
    data_parts: list[bytes] = []
    frames: list[list[bytes]] | None = []
    for data, fr in chunks:
        if fr is None or frames is None:
            if data_parts:
                segments.append((b"".join(data_parts), frames))
            data_parts, frames = [data], (list(fr) if fr is not None else None)
        else:
            data_parts.append(data)
            frames.extend(fr)
    if data_parts:
        segments.append((data_parts[0] if len(data_parts) == 1 else b"".join(data_parts), frames))
    return segments


_OK_BYTES = encode_reply(OK)
_ONLINE = SlaveState.ONLINE
_MULTI_CONTROL = frozenset(("exec", "discard", "multi", "watch", "quit", "reset"))
_NO_AUTH = frozenset(("auth", "hello", "quit", "reset"))

# server and replication commands register themselves in NODE_COMMANDS on import
from redisops.engine import server_cmds as _server_cmds  # noqa: E402,F401
