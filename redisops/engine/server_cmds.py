"""Server commands of an engine node: connection, transactions, INFO, CONFIG, CLIENT,
DEBUG, persistence and shutdown. Replies and error texts follow Redis 7.0.15.
"""

from __future__ import annotations

import functools
import os
import platform
import re
from typing import TYPE_CHECKING

from redisops.engine.client import Client, SlaveState
from redisops.engine.command import Block, CommandError, CommandSpec, ExecContext
from redisops.engine.datacmds import string2ll
from redisops.engine.nodecmd import NO_REPLY, NODE_COMMANDS, int_arg, node_command
from redisops.engine.resp import (
    NIL_ARRAY,
    OK,
    PONG,
    ErrorReply,
    MapReply,
    RawReply,
    Reply,
    SimpleString,
    Verbatim,
    as_resp2,
    encode_reply,
)
from redisops.engine.state import REDIS_VERSION, ReplState

if TYPE_CHECKING:  # pragma: no cover
    from redisops.engine.node import Node


# ============================================================================ connection


@node_command("ping", -1, "fast loading")
def ping_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    if len(argv) > 2:
        raise CommandError("ERR wrong number of arguments for 'ping' command")
    return argv[1] if len(argv) == 2 else PONG


@node_command("echo", 2, "fast stale loading")
def echo_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    return argv[1]


def _check_password(node: Node, user: bytes | None, password: bytes) -> bool:
    required = node.config.get("requirepass")
    if user is not None and user != b"default":
        return False
    return bool(required) and password.decode(errors="replace") == required


@node_command("auth", -2, "fast stale loading no_auth")
def auth_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    if len(argv) > 3:
        raise CommandError("ERR syntax error")
    user = argv[1] if len(argv) == 3 else None
    if user is None and not node.config.get("requirepass"):
        raise CommandError(
            "ERR AUTH <password> called without any password configured for the default user. "
            "Are you sure your configuration is correct?"
        )
    if _check_password(node, user, argv[-1]):
        client.authenticated = True
        return OK
    raise CommandError("WRONGPASS invalid username-password pair or user is disabled.")


def _set_client_name(client: Client, name: bytes) -> None:
    """``clientSetNameOrReply()``: printable ASCII without spaces; empty removes the name."""
    if any(c < 0x21 or c > 0x7E for c in name):
        raise CommandError(
            "ERR Client names cannot contain spaces, newlines or special characters."
        )
    client.name = name.decode()


@node_command("hello", -1, "fast stale loading no_auth")
def hello_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    """``helloCommand()``: HELLO [protover [AUTH user pass] [SETNAME name]]. The reply is a
    map in the protocol just selected (no protover: the client's current one)."""
    ver = 0
    j = 1
    if len(argv) > 1:
        parsed = string2ll(argv[1])
        if parsed is None:
            raise CommandError("ERR Protocol version is not an integer or out of range")
        ver = parsed
        j = 2
        if ver < 2 or ver > 3:
            raise CommandError("NOPROTO unsupported protocol version")
    while j < len(argv):
        opt = argv[j].lower()
        if opt == b"auth" and j + 2 < len(argv):
            if not _check_password(node, argv[j + 1], argv[j + 2]):
                raise CommandError("WRONGPASS invalid username-password pair or user is disabled.")
            client.authenticated = True
            j += 3
        elif opt == b"setname" and j + 1 < len(argv):
            _set_client_name(client, argv[j + 1])
            j += 2
        else:
            raise CommandError(
                f"ERR Syntax error in HELLO option '{argv[j].decode(errors='replace')}'"
            )
    if not client.authenticated:
        raise CommandError(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"
        )
    if ver:
        client.resp = ver
    role = b"master" if node.master_host is None else b"replica"
    return MapReply(
        [
            b"server",
            b"redis",
            b"version",
            REDIS_VERSION.encode(),
            b"proto",
            client.resp,
            b"id",
            client.id,
            b"mode",
            b"standalone",
            b"role",
            role,
            b"modules",
            [],
        ]
    )


@node_command("select", 2, "loading stale fast")
def select_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    db = int_arg(argv[1])
    if not 0 <= db < node.keyspace.databases:
        raise CommandError("ERR DB index is out of range")
    client.db = db
    return OK


@node_command("quit", -1, "fast stale loading no_auth")
def quit_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    node._reply(client, OK)
    node.sched.call_soon(lambda: node.free_client(client))
    return NO_REPLY


@node_command("reset", 1, "fast stale loading no_auth")
def reset_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    client.multi = None
    client.watched.clear()
    node.watching.discard(client)
    client.db = 0
    client.name = ""
    client.resp = 2
    client.authenticated = not node.config.get("requirepass")
    return SimpleString("RESET")


@node_command("time", 1, "fast stale loading")
def time_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    us = node.sched.clock.now_us()
    return [str(us // 1_000_000).encode(), str(us % 1_000_000).encode()]


@node_command("command", -1, "stale loading")
def command_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    from redisops.engine.command import COMMANDS
    from redisops.engine.nodecmd import NODE_COMMANDS

    specs = {**COMMANDS, **NODE_COMMANDS}
    sub = argv[1].lower() if len(argv) > 1 else b""
    if sub == b"count":
        return len(specs)
    if sub == b"docs":
        return []  # redis-cli uses docs only for hints
    if sub in (b"", b"info"):
        names = [a.decode().lower() for a in argv[2:]] if sub else sorted(specs)
        out: list[Reply] = []
        for n in names:
            s = specs.get(n)
            if s is None:
                out.append(None)
                continue
            out.append(
                [
                    n.encode(),
                    s.arity,
                    [f.encode() for f in sorted(s.flags)],
                    s.first_key,
                    s.last_key,
                    s.key_step,
                ]
            )
        return out
    raise CommandError(
        f"ERR unknown subcommand '{argv[1].decode(errors='replace')}'. Try COMMAND HELP."
    )


@node_command("publish", 3, "pubsub loading stale fast may_replicate")
def publish_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    ctx.dirty += 1  # PUBLISH is propagated as-is (§3.5)
    return 0


@node_command("wait", 3, "noscript")
def wait_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    return node._wait(client, argv, ctx)


# ============================================================================ transactions


@node_command("multi", 1, "noscript loading stale fast no_multi")
def multi_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    if client.multi is not None:
        raise CommandError("ERR MULTI calls can not be nested")
    client.multi = []
    client.multi_error = False
    return OK


@node_command("exec", 1, "noscript loading stale skip_slowlog")
def exec_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    queue = client.multi or []
    before = client.resp
    replies = node._exec(client, ctx)
    if type(replies) is list and any(spec.name == "hello" for spec, _ in queue):
        return _in_their_protocol(queue, replies, before, client.resp)
    return replies


def _in_their_protocol(
    queue: list[tuple[CommandSpec, list[bytes]]], replies: list[Reply], resp: int, final: int
) -> list[Reply]:
    """A HELLO inside the transaction (maybe) switched the protocol: Redis wrote each reply
    as it went, each in the protocol of that moment (the array header is the same in both).
    Replies in another protocol than the final one are encoded here, the rest as usual."""
    out: list[Reply] = []
    for (spec, argv), reply in zip(queue, replies, strict=True):
        if spec.name == "hello" and len(argv) > 1 and not isinstance(reply, ErrorReply):
            resp = int(argv[1])  # HELLO answers in the protocol it selects
        out.append(reply if resp == final else RawReply(encode_reply(reply, resp)))
    return out


@node_command("discard", 1, "noscript loading stale fast")
def discard_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    if client.multi is None:
        raise CommandError("ERR DISCARD without MULTI")
    client.multi = None
    client.multi_error = False
    client.watched.clear()
    node.watching.discard(client)
    client.dirty_cas = False
    return OK


@node_command("watch", -2, "noscript loading stale fast no_multi")
def watch_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    if client.multi is not None:
        raise CommandError("ERR WATCH inside MULTI is not allowed")
    for key in argv[1:]:
        client.watched.add((client.db, key))
    node.watching.add(client)
    return OK


@node_command("unwatch", 1, "noscript loading stale fast")
def unwatch_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    client.watched.clear()
    node.watching.discard(client)
    client.dirty_cas = False
    return OK


# ============================================================================ CONFIG


@node_command("config", -2, "admin noscript loading stale")
def config_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    sub = argv[1].lower()
    if sub == b"get":
        if len(argv) < 3:
            raise CommandError("ERR wrong number of arguments for 'config|get' command")
        return MapReply(node.config.get_matching(argv[2:]))
    if sub == b"set":
        if len(argv) < 4 or len(argv) % 2:
            raise CommandError("ERR wrong number of arguments for 'config|set' command")
        pairs = [(argv[i], argv[i + 1]) for i in range(2, len(argv), 2)]
        node.config.set_many(pairs)
        return OK
    if sub == b"resetstat":
        for k in (
            "sync_full",
            "sync_partial_ok",
            "sync_partial_err",
            "total_commands_processed",
            "total_connections_received",
            "total_net_input_bytes",
            "total_net_output_bytes",
            "total_net_repl_input_bytes",
            "total_net_repl_output_bytes",
            "rejected_connections",
            "evicted_keys",
            "total_error_replies",
            "client_output_buffer_limit_disconnections",
        ):
            node.stats[k] = 0
        node.data_stats.expired_keys = node.data_stats.keyspace_hits = (
            node.data_stats.keyspace_misses
        ) = 0
        return OK
    if sub == b"rewrite":
        if node.storage.config_file is None:
            raise CommandError("ERR The server is running without a config file")
        node.storage.rewrite(node.config_file_lines())
        return OK
    raise CommandError(
        f"ERR unknown subcommand '{argv[1].decode(errors='replace')}'. Try CONFIG HELP."
    )


# ============================================================================ CLIENT


@node_command("client", -2, "admin noscript loading stale")
def client_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    sub = argv[1].lower()
    if sub == b"pause":
        if len(argv) not in (3, 4):
            raise CommandError("ERR wrong number of arguments for 'client|pause' command")
        ms = int_arg(argv[2], "ERR timeout is not an integer or out of range")
        if ms < 0:
            raise CommandError("ERR timeout is negative")
        write_only = False
        if len(argv) == 4:
            mode = argv[3].lower()
            if mode == b"write":
                write_only = True
            elif mode != b"all":
                raise CommandError("ERR CLIENT PAUSE mode must be WRITE or ALL")
        node.pause(ms, write_only)
        return OK
    if sub == b"unpause":
        node.unpause()
        return OK
    if sub == b"setname":
        _set_client_name(client, argv[2] if len(argv) > 2 else b"")
        return OK
    if sub == b"getname":
        return client.name.encode() if client.name else None
    if sub == b"id":
        return client.id
    # Redis 7.0: no CLIENT SETINFO / NO-TOUCH yet (7.2); clients that send SETINFO on
    # connect (redis-py) ignore the error, as they do with a real 7.0 server
    if sub in (b"no-evict", b"reply"):
        return OK
    if sub in (b"list", b"info"):
        targets = [client] if sub == b"info" else list(node.clients.values())
        return Verbatim("".join(_client_line(node, c) + "\n" for c in targets).encode())
    if sub == b"kill":
        return _client_kill(node, client, argv)
    raise CommandError(
        f"ERR unknown subcommand '{argv[1].decode(errors='replace')}'. Try CLIENT HELP."
    )


def _client_flags(c: Client) -> str:
    if c.is_master:
        return "M"
    if c.is_replica:
        return "S"
    if c.multi is not None:
        return "x"
    if c.blocked is not None:
        return "b"
    return "N"


def _client_line(node: Node, c: Client) -> str:
    now = node.sched.now_ms()
    return (
        f"id={c.id} addr={c.addr} laddr={node.host}:{node.port} fd=8 name={c.name} "
        f"age={(now - c.created_ms) // 1000} idle={(now - c.last_interaction_ms) // 1000} "
        f"flags={_client_flags(c)} db={c.db} sub=0 psub=0 ssub=0 multi={-1 if c.multi is None else len(c.multi)} "
        f"qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=1024 rbp=0 obl=0 oll=0 omem=0 tot-mem=1024 "
        f"events=r cmd=client|list user={c.username} redir=-1 resp={c.resp}"
    )


def _client_kill(node: Node, me: Client, argv: list[bytes]) -> Reply:
    if len(argv) == 3:  # old form: CLIENT KILL addr:port
        addr = argv[2].decode(errors="replace")
        for c in list(node.clients.values()):
            if c.addr == addr:
                node.sched.call_soon(functools.partial(node.free_client, c))
                return OK
        raise CommandError("ERR No such client")
    filters: dict[str, str] = {}
    if (len(argv) - 2) % 2:
        raise CommandError("ERR syntax error")
    for i in range(2, len(argv), 2):
        filters[argv[i].decode().lower()] = argv[i + 1].decode(errors="replace")
    skipme = filters.get("skipme", "yes").lower() != "no"
    killed = 0
    for c in list(node.clients.values()):
        if skipme and c is me:
            continue
        kind = filters.get("type")
        if kind is not None:
            kind = kind.lower()
            ctype = "master" if c.is_master else ("replica" if c.is_replica else "normal")
            if kind == "slave":
                kind = "replica"
            if kind not in ("normal", "master", "replica", "pubsub"):
                raise CommandError(f"ERR Unknown client type '{filters['type']}'")
            if kind != ctype:
                continue
        if "id" in filters and str(c.id) != filters["id"]:
            continue
        if "addr" in filters and c.addr != filters["addr"]:
            continue
        if "laddr" in filters and f"{node.host}:{node.port}" != filters["laddr"]:
            continue
        killed += 1
        node.sched.call_soon(functools.partial(node.free_client, c))
    return killed


# ============================================================================ DEBUG


@node_command("debug", -2, "admin noscript loading stale")
def debug_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    if node.config.get("enable-debug-command") == "no":
        raise CommandError(
            'ERR DEBUG command not allowed. If the enable-debug-command option is set to "local", '
            "you can run it from a local connection, otherwise you need to set this option in the "
            "configuration file, and then restart the server."
        )
    sub = argv[1].lower()
    if sub == b"sleep":
        try:
            secs = float(argv[2]) if len(argv) > 2 else 0.0
        except ValueError:
            raise CommandError("ERR value is not a valid float") from None
        node.sleep(int(secs * 1000))
        if ctx.in_multi:
            return OK  # EXEC defers the rest of the transaction until the node wakes
        node.after_wake(lambda: node._reply(client, OK))
        return NO_REPLY
    if sub == b"set-active-expire":
        node.active_expire_enabled = argv[2] != b"0"
        return OK
    if sub == b"digest":
        return SimpleString(node.keyspace.digest())
    if sub == b"digest-value":
        return [SimpleString(node.keyspace.digest_value(client.db, k)) for k in argv[2:]]
    if sub == b"reload":
        node.save_now()
        node.keyspace.flushall()
        image = node.storage.rdb
        assert image is not None
        for db in range(image.keyspace.databases):
            for key, value, exp in image.keyspace.items(db):
                node.keyspace.set_raw(db, key, value, exp)
        return OK
    if sub == b"populate":
        count = int_arg(argv[2])
        prefix = argv[3] if len(argv) > 3 else b"key"
        size = int_arg(argv[4]) if len(argv) > 4 else 0
        for i in range(count):
            key = prefix + b":" + str(i).encode()
            if key in node.keyspace.dbs[client.db]:
                continue
            val = b"value:" + str(i).encode()
            if size:
                val = (val + b"\x00" * size)[:size]
            node.keyspace.set_raw(client.db, key, val, None)
        return OK
    raise CommandError(
        f"ERR unknown subcommand '{argv[1].decode(errors='replace')}'. Try DEBUG HELP."
    )


# ============================================================================ persistence


@node_command("save", 1, "admin noscript no_async_loading no_multi")
def save_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    if node.bgsave is not None:
        raise CommandError("ERR Background save already in progress")
    node.save_now()
    return OK


@node_command("bgsave", -1, "admin noscript no_async_loading")
def bgsave_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    if node.bgsave is not None:
        raise CommandError("ERR Background save already in progress")
    node.start_bgsave(for_replication=False, socket_target=False)
    return SimpleString("Background saving started")


@node_command("lastsave", 1, "loading stale fast")
def lastsave_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    return node.rdb_last_save_ms // 1000


@node_command("shutdown", -1, "admin noscript loading stale no_multi")
def shutdown_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    """``shutdownCommand()``: NOSAVE | SAVE, NOW, FORCE, ABORT."""
    opts = [a.lower() for a in argv[1:]]
    if any(o not in (b"nosave", b"save", b"now", b"force", b"abort") for o in opts):
        raise CommandError("ERR syntax error")
    abort = b"abort" in opts
    if (abort and len(opts) > 1) or (b"nosave" in opts and b"save" in opts):
        raise CommandError("ERR syntax error")
    if abort:
        if node.abort_shutdown():
            return OK
        raise CommandError("ERR No shutdown in progress.")
    save = True if b"save" in opts else (False if b"nosave" in opts else None)
    node.shutdown(save, now=b"now" in opts, client=client)
    return NO_REPLY  # the connection closes when the server exits


# ============================================================================ INFO


@node_command("info", -1, "loading stale")
def info_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    sections = [a.decode(errors="replace").lower() for a in argv[1:]] or ["default"]
    return Verbatim(render_info(node, sections).encode())


SECTIONS = (
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "errorstats",
    "cluster",
    "keyspace",
)


def render_info(node: Node, wanted: list[str]) -> str:
    want: list[str] = []
    for w in wanted:
        if w in ("default", "all", "everything"):
            want.extend(SECTIONS)
        elif w in SECTIONS:
            want.append(w)
    parts: list[str] = []
    for name in dict.fromkeys(want):
        fields = _SECTION_RENDERERS[name](node)
        body = "".join(f"{k}:{v}\r\n" for k, v in fields)
        parts.append(f"# {_SECTION_TITLES.get(name) or name.capitalize()}\r\n{body}")
    return "\r\n".join(parts)


Fields = list[tuple[str, object]]
_SECTION_TITLES = {"cpu": "CPU"}  # the others are capitalised ("# Errorstats")


def _server(node: Node) -> Fields:
    now = node.sched.now_ms()
    uptime = (now - node.start_ms) // 1000
    return [
        ("redis_version", REDIS_VERSION),
        ("redis_git_sha1", "00000000"),
        ("redis_git_dirty", 0),
        ("redis_build_id", "redisops-engine"),
        ("redis_mode", "standalone"),
        ("os", f"{platform.system()} {platform.release()} {platform.machine()}"),
        ("arch_bits", 64),
        ("monotonic_clock", "redisops engine clock"),
        ("multiplexing_api", "redisops"),
        ("atomicvar_api", "c11-builtin"),
        ("gcc_version", "0.0.0"),
        ("process_id", os.getpid()),
        ("process_supervised", "no"),
        ("run_id", node.run_id),
        ("tcp_port", node.port),
        ("server_time_usec", node.sched.clock.now_us()),
        ("uptime_in_seconds", uptime),
        ("uptime_in_days", uptime // 86400),
        ("hz", node.config.get_int("hz")),
        ("configured_hz", node.config.get_int("hz")),
        ("lru_clock", (now // 1000) & ((1 << 24) - 1)),
        ("executable", "redisops-engine"),
        ("config_file", node.storage.config_file or ""),
        ("io_threads_active", 0),
        *(
            [("shutdown_in_milliseconds", max(node.shutdown_deadline_ms - now, 0))]
            if node.shutdown_deadline_ms
            else []
        ),
    ]


def _clients(node: Node) -> Fields:
    blocked = sum(
        1 for c in node.clients.values() if c.blocked is not None and c.blocked.kind != "pause"
    )
    normal = [c for c in node.clients.values() if not c.is_replica and not c.is_master]
    return [
        ("connected_clients", len(normal)),
        ("cluster_connections", 0),
        ("maxclients", node.config.get_int("maxclients")),
        ("client_recent_max_input_buffer", 0),
        ("client_recent_max_output_buffer", 0),
        ("blocked_clients", blocked),
        ("tracking_clients", 0),
        ("clients_in_timeout_table", blocked),
    ]


def _human(n: int) -> str:
    for unit, size in (("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n}B"


def _memory(node: Node) -> Fields:
    used = node.used_memory()
    maxmem = node.config.get_int("maxmemory")
    total = _total_system_memory()
    repl_bufs = node.backlog.memory if node.backlog is not None else 0
    slaves_mem = sum(node.replica_buffer_usage(r) for r in node.replicas)
    return [
        ("used_memory", used),
        ("used_memory_human", _human(used)),
        ("used_memory_rss", used + 3_000_000),
        ("used_memory_rss_human", _human(used + 3_000_000)),
        ("used_memory_peak", used),
        ("used_memory_peak_human", _human(used)),
        ("used_memory_peak_perc", "100.00%"),
        ("used_memory_overhead", 860_000 + repl_bufs),
        ("used_memory_startup", 860_000),
        ("used_memory_dataset", max(used - 860_000 - repl_bufs, 0)),
        ("total_system_memory", total),
        ("total_system_memory_human", _human(total)),
        ("maxmemory", maxmem),
        ("maxmemory_human", _human(maxmem)),
        ("maxmemory_policy", node.config.get("maxmemory-policy")),
        ("mem_fragmentation_ratio", "1.10"),
        ("mem_allocator", "redisops-engine"),
        ("mem_clients_slaves", slaves_mem),
        ("mem_clients_normal", 20_000 * len(node.clients)),
        ("mem_total_replication_buffers", repl_bufs),
        ("mem_replication_backlog", repl_bufs),
        ("lazyfree_pending_objects", 0),
    ]


def _total_system_memory() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - non-Linux
        pass
    return 0


def _persistence(node: Node) -> Fields:
    job = node.bgsave
    now = node.sched.now_ms()
    return [
        ("loading", 1 if node.loading else 0),
        ("async_loading", 0),
        ("current_cow_peak", 0),
        ("current_cow_size", 0),
        ("current_fork_perc", "0.00"),
        ("current_save_keys_processed", 0),
        ("current_save_keys_total", 0),
        ("rdb_changes_since_last_save", node.dirty),
        ("rdb_bgsave_in_progress", 1 if job is not None else 0),
        ("rdb_last_save_time", node.rdb_last_save_ms // 1000 or node.start_ms // 1000),
        ("rdb_last_bgsave_status", node.rdb_last_bgsave_status),
        ("rdb_last_bgsave_time_sec", -1),
        ("rdb_current_bgsave_time_sec", (now - job.started_ms) // 1000 if job is not None else -1),
        ("rdb_saves", 0),
        ("rdb_last_cow_size", 0),
        ("rdb_last_load_keys_expired", node.rdb_last_load_keys_expired),
        ("rdb_last_load_keys_loaded", node.rdb_last_load_keys_loaded),
        ("aof_enabled", 1 if node.config.get_bool("appendonly") else 0),
        ("aof_rewrite_in_progress", 0),
        ("aof_rewrite_scheduled", 0),
        ("aof_last_rewrite_time_sec", -1),
        ("aof_current_rewrite_time_sec", -1),
        ("aof_last_bgrewrite_status", "ok"),
        ("aof_rewrites", 0),
        ("aof_rewrites_consecutive_failures", 0),
        ("aof_last_write_status", "ok"),
        ("aof_last_cow_size", 0),
        ("module_fork_in_progress", 0),
        ("module_fork_last_cow_size", 0),
    ]


def _stats(node: Node) -> Fields:
    s = node.stats
    d = node.data_stats
    return [
        ("total_connections_received", s["total_connections_received"]),
        ("total_commands_processed", s["total_commands_processed"]),
        ("instantaneous_ops_per_sec", 0),
        ("total_net_input_bytes", s["total_net_input_bytes"]),
        ("total_net_output_bytes", s["total_net_output_bytes"]),
        ("total_net_repl_input_bytes", s["total_net_repl_input_bytes"]),
        ("total_net_repl_output_bytes", s["total_net_repl_output_bytes"]),
        ("rejected_connections", s["rejected_connections"]),
        ("sync_full", s["sync_full"]),
        ("sync_partial_ok", s["sync_partial_ok"]),
        ("sync_partial_err", s["sync_partial_err"]),
        ("expired_keys", d.expired_keys),
        ("expired_stale_perc", "0.00"),
        ("expired_time_cap_reached_count", 0),
        ("evicted_keys", s["evicted_keys"]),
        ("evicted_clients", 0),
        ("total_eviction_exceeded_time", 0),
        ("keyspace_hits", d.keyspace_hits),
        ("keyspace_misses", d.keyspace_misses),
        ("pubsub_channels", 0),
        ("pubsub_patterns", 0),
        ("latest_fork_usec", s["latest_fork_usec"]),
        ("total_forks", s["total_forks"]),
        ("migrate_cached_sockets", 0),
        ("slave_expires_tracked_keys", 0),
        ("active_defrag_hits", 0),
        ("total_active_defrag_time", 0),
        ("total_error_replies", s["total_error_replies"]),
        ("dump_payload_sanitizations", 0),
        ("total_reads_processed", s["total_commands_processed"]),
        ("total_writes_processed", s["total_commands_processed"]),
        ("io_threaded_reads_processed", 0),
        ("io_threaded_writes_processed", 0),
        (
            "client_output_buffer_limit_disconnections",
            s["client_output_buffer_limit_disconnections"],
        ),
    ]


def _replication(node: Node) -> Fields:
    """INFO replication exactly as 7.0.15 prints it (§7)."""
    now = node.sched.now_ms()
    out: Fields = []
    if node.master_host is None:
        out.append(("role", "master"))
    else:
        st = node.repl_state
        mc = node.master_client
        out += [
            ("role", "slave"),
            ("master_host", node.master_host),
            ("master_port", node.master_port),
            ("master_link_status", "up" if st is ReplState.CONNECTED else "down"),
            (
                "master_last_io_seconds_ago",
                (now - node.master_lastinteraction_ms) // 1000 if mc is not None else -1,
            ),
            ("master_sync_in_progress", 1 if st is ReplState.TRANSFER else 0),
        ]
        if mc is not None:
            read_off, off = node.master_read_reploff, node.master_reploff
        elif node.cached_master is not None:
            read_off = off = node.cached_master.reploff
        else:
            read_off = off = 1
        out += [("slave_read_repl_offset", read_off), ("slave_repl_offset", off)]
        if st is ReplState.TRANSFER:
            total = max(node.repl_transfer_size, 0)
            read = node.repl_transfer_read
            perc = (read * 100.0 / total) if total > 0 else 0.0
            out += [
                ("master_sync_total_bytes", total),
                ("master_sync_read_bytes", read),
                ("master_sync_left_bytes", total - read),
                ("master_sync_perc", f"{perc:.2f}"),
                ("master_sync_last_io_seconds_ago", (now - node.repl_transfer_lastio_ms) // 1000),
            ]
        if st is not ReplState.CONNECTED:
            down = (now - node.repl_down_since_ms) // 1000 if node.repl_down_since_ms else -1
            out.append(("master_link_down_since_seconds", down))
        out += [
            ("slave_priority", node.config.get_int("replica-priority")),
            ("slave_read_only", 1 if node.config.get_bool("replica-read-only") else 0),
            ("replica_announced", 1 if node.config.get_bool("replica-announced") else 0),
        ]
    out.append(("connected_slaves", len(node.replicas)))
    need = node.config.get_int("min-replicas-to-write")
    if need and node.config.get_int("min-replicas-max-lag"):
        out.append(("min_slaves_good_slaves", node.good_replicas))
    for i, r in enumerate(node.replicas):
        st2 = r.repl_state or SlaveState.WAIT_BGSAVE_START
        lag = (now - r.ack_time_ms) // 1000 if st2 is SlaveState.ONLINE else 0
        out.append(
            (
                f"slave{i}",
                f"ip={r.replica_ip},port={r.listening_port},state={st2.info_name},offset={r.ack_off},lag={lag}",
            )
        )
    backlog = node.backlog
    out += [
        ("master_failover_state", node.failover.info_name),
        ("master_replid", node.replid),
        ("master_replid2", node.replid2),
        ("master_repl_offset", node.master_repl_offset),
        ("second_repl_offset", node.second_repl_offset),
        ("repl_backlog_active", 1 if backlog is not None else 0),
        ("repl_backlog_size", node.config.get_int("repl-backlog-size")),
        ("repl_backlog_first_byte_offset", backlog.first if backlog is not None else 0),
        ("repl_backlog_histlen", backlog.histlen if backlog is not None else 0),
    ]
    return out


def _cpu(node: Node) -> Fields:
    t = os.times()
    return [
        ("used_cpu_sys", f"{t.system:.6f}"),
        ("used_cpu_user", f"{t.user:.6f}"),
        ("used_cpu_sys_children", "0.000000"),
        ("used_cpu_user_children", "0.000000"),
    ]


def _empty(node: Node) -> Fields:
    return []


def _cluster(node: Node) -> Fields:
    return [("cluster_enabled", 0)]


def _keyspace(node: Node) -> Fields:
    return [
        (f"db{db}", f"keys={keys},expires={expires},avg_ttl={avg}")
        for db, (keys, expires, avg) in sorted(
            node.keyspace.info_keyspace(node.sched.now_ms()).items()
        )
        if keys
    ]


_SECTION_RENDERERS = {
    "server": _server,
    "clients": _clients,
    "memory": _memory,
    "persistence": _persistence,
    "stats": _stats,
    "replication": _replication,
    "cpu": _cpu,
    "modules": _empty,
    "errorstats": _empty,
    "cluster": _cluster,
    "keyspace": _keyspace,
}


# ============================================================================ ACL (deny-lists only)


@node_command("acl", -2, "admin noscript loading stale")
def acl_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    """``ACL SETUSER default [+cmd|-cmd|on|allcommands|...]`` and ``ACL WHOAMI``.

    The engine models one user, ``default``, and per-command permissions: enough for
    drills such as denying PSYNC to a failover target (catalogue #29).
    """
    sub = argv[1].lower()
    if sub == b"whoami":
        return client.username.encode()
    if sub != b"setuser":
        raise CommandError(
            f"ERR unknown subcommand '{argv[1].decode(errors='replace')}'. Try ACL HELP."
        )
    if len(argv) < 3:
        raise CommandError("ERR wrong number of arguments for 'acl|setuser' command")
    if argv[2] != b"default":
        raise CommandError("ERR the reference engine models only the 'default' user")
    for rule in argv[3:]:
        r = rule.lower()
        if r in (b"allcommands", b"+@all", b"reset"):
            node.acl_denied.clear()
        elif r in (b"on", b"nopass", b"allkeys", b"~*", b"&*", b"allchannels", b"resetchannels"):
            continue
        elif len(r) > 1 and r[:1] in (b"+", b"-") and not r.startswith((b"+@", b"-@")):
            name = r[1:].decode(errors="replace")
            if r[:1] == b"-":
                node.acl_denied.add(name)
            else:
                node.acl_denied.discard(name)
        else:
            raise CommandError(
                f"ERR Error in ACL SETUSER modifier '{rule.decode(errors='replace')}': Syntax error"
            )
    return OK


# ============================================================================ EVAL (redis.call scripts)

_CALL = re.compile(r"\s*(?:--[^\n]*\n\s*)*(return\s+)?redis\.(call|pcall)\s*\(", re.S)
_ARG = re.compile(
    r"""\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"|(KEYS|ARGV)\[(\d+)\]|(-?\d+))\s*"""
)


def _parse_script(
    script: str, keys: list[bytes], args: list[bytes]
) -> list[tuple[bool, bool, list[bytes]]]:
    """``[(is_return, is_pcall, argv)]`` for a script of ``redis.call()`` statements."""
    out: list[tuple[bool, bool, list[bytes]]] = []
    pos = 0
    err = CommandError(
        "ERR Error compiling script: the reference engine runs only scripts made of "
        "redis.call()/redis.pcall() statements with literal, KEYS[i] and ARGV[i] arguments"
    )
    while pos < len(script):
        rest = script[pos:]
        if not rest.strip() or (rest.strip().startswith("--") and "\n" not in rest.strip()):
            break
        m = _CALL.match(script, pos)
        if m is None:
            raise err
        pos = m.end()
        argv: list[bytes] = []
        while True:
            a = _ARG.match(script, pos)
            if a is None:
                raise err
            pos = a.end()
            single, double, table, index, number = a.groups()
            if single is not None or double is not None:
                text = single if single is not None else double
                argv.append(text.encode().decode("unicode_escape").encode("latin-1"))
            elif table is not None:
                source = keys if table == "KEYS" else args
                i = int(index)
                if not 1 <= i <= len(source):
                    raise CommandError(
                        "ERR Error running script: attempt to use a missing KEYS/ARGV element"
                    )
                argv.append(source[i - 1])
            else:
                argv.append(number.encode())
            if script[pos : pos + 1] == ",":
                pos += 1
                continue
            if script[pos : pos + 1] == ")":
                pos += 1
                break
            raise err
        while pos < len(script) and script[pos] in " \t\r\n;":
            pos += 1
        out.append((bool(m.group(1)), m.group(2) == "pcall", argv))
    return out


@node_command("eval", -3, "noscript may_replicate")
def eval_command(node: Node, client: Client, argv: list[bytes], ctx: ExecContext) -> Reply:
    """``EVAL``: the calls run as one execution unit, propagated by effects (7.0): one op
    unwrapped, several inside MULTI/EXEC."""
    numkeys = int_arg(argv[2])
    if numkeys < 0:
        raise CommandError("ERR Number of keys can't be negative")
    if numkeys > len(argv) - 3:
        raise CommandError("ERR Number of keys can't be greater than number of args")
    keys, args = argv[3 : 3 + numkeys], argv[3 + numkeys :]
    calls = _parse_script(argv[1].decode(errors="replace"), keys, args)
    ops: list[tuple[int, list[bytes]]] = []
    result: Reply = None
    for is_return, is_pcall, call in calls:
        spec = node.lookup(call[0])
        if spec is None:
            reply: Reply = ErrorReply("ERR Unknown Redis command called from script")
        elif (spec.arity > 0 and len(call) != spec.arity) or len(call) < -spec.arity:
            reply = ErrorReply("ERR Wrong number of args calling Redis command from script")
        elif "noscript" in spec.flags:
            reply = ErrorReply("ERR This Redis command is not allowed from script")
        else:
            sub = node._ctx(client.db, ctx.mode)
            sub.in_multi = True
            try:
                res = (
                    node._node_call(client, spec, call, sub)
                    if spec.name in NODE_COMMANDS
                    else spec.handler(sub, call)
                )
                reply = res.timeout_reply if isinstance(res, Block) else res
            except CommandError as exc:
                reply = ErrorReply(exc.message)
            node._after_command(sub)
            unit = list(sub.extra_ops)
            if (
                (sub.dirty or sub.forced)
                and sub.propagate_self
                and "no_propagate" not in spec.flags
            ):
                unit.append((sub.db, sub.rewritten if sub.rewritten is not None else call))
            ops.extend(unit)
        if isinstance(reply, ErrorReply) and not is_pcall:
            if ops:
                node._propagate_unit(ops)
            raise CommandError(f"{reply} script: {argv[1].decode(errors='replace')[:40]}")
        if is_return:
            result = reply
            break
    if ops:
        node._propagate_unit(ops)
    return _through_lua(result)


def _through_lua(value: Reply) -> Reply:
    """A ``redis.call()`` reply returned by a script: the script speaks RESP2, so RESP3
    types arrive as their RESP2 fallback, and both nils become Lua ``false``, which the
    caller gets as its protocol's null (``$-1`` or ``_``, never ``*-1``)."""
    if value is NIL_ARRAY:
        return None
    if isinstance(value, list):
        return [_through_lua(item) for item in value]
    return as_resp2(value)
