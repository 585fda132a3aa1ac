"""Replication conformance scenarios (spec ``/work/shared/docs/redis-replication.md`` §10).

Each ``scenario_*`` function drives nodes of any
:class:`~tests.engine.conformance.backend.Backend` and returns a dict of *observations*;
the values the specification predicts are attached to it by :func:`expects`
(``scenario.expected``, also in :data:`REGISTRY`), computed from the spec's rules
(byte lengths of the commands, counter rules), never copied from a run. Observations are normalised so that two correct backends produce *identical*
dicts: offsets relative to a quiesced baseline ``O₀`` (or absolute where the spec fixes
them), replids as names (``"<M>"``) or relations, ports as names, timestamps as
``b"<ms>"`` once checked against the wall-clock window. Keys starting with ``_`` are
diagnostics (raw values) and are not compared.

Conventions (§9): every node starts with ``repl-diskless-sync-delay 0`` and
``repl-ping-replica-period 3600`` unless the scenario is about them; waits are polls
with bounds; sleeps only where the spec needs time to pass.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from tests.engine.conformance.backend import PERSISTENT, Backend, Node
from tests.engine.conformance.probes import (
    EXEC,
    GETACK,
    HEX40,
    HOST,
    MULTI,
    PING,
    ZERO_ID,
    Counters,
    Err,
    FakeMaster,
    PseudoReplica,
    RawConn,
    attach,
    call,
    capture,
    counters,
    digest,
    encode,
    info,
    info_int,
    link_up,
    offset,
    ok,
    parse_stream,
    psync_probe,
    quiesce,
    refuses_connections,
    replica_lines,
    replicaof,
    replid,
    role,
    select,
    wait_closed,
    wait_for,
)

Observations = dict[str, Any]
Scenario = Callable[[Backend], Observations]

BASE: dict[str, str] = {"repl-diskless-sync-delay": "0", "repl-ping-replica-period": "3600"}
DEAD_PORT = 1  # nothing listens there: "REPLICAOF 127.0.0.1 1" detaches, keeping the cached master

NOREPLICAS = Err("NOREPLICAS Not enough good replicas to write.")
READONLY = Err("READONLY You can't write against a read only replica.")
MASTERDOWN = Err("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.")
UNBLOCKED = Err(
    "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)"
)
NO_DELTA = {"sync_full": 0, "sync_partial_ok": 0, "sync_partial_err": 0}


def delta(full: int = 0, ok: int = 0, err: int = 0) -> dict[str, int]:
    return {"sync_full": full, "sync_partial_ok": ok, "sync_partial_err": err}


REGISTRY: dict[str, tuple[str, Scenario, Observations]] = {}


def expects(number: str, expected: Observations) -> Callable[[Scenario], Scenario]:
    """Register a scenario with its catalogue number (§10, or the spec section) and the
    observations the spec predicts."""

    def deco(fn: Scenario) -> Scenario:
        fn.expected = expected  # type: ignore[attr-defined]
        fn.number = number  # type: ignore[attr-defined]
        REGISTRY[fn.__name__] = (number, fn, expected)
        return fn

    return deco


def public(obs: Mapping[str, Any]) -> dict[str, Any]:
    """The observations that are compared (diagnostic ``_`` keys dropped)."""
    return {k: v for k, v in obs.items() if not k.startswith("_")}


# ----------------------------------------------------------------------------- helpers


def cfg(**overrides: str) -> dict[str, str]:
    """BASE plus ``overrides`` (underscores in names become dashes)."""
    return {**BASE, **{k.replace("_", "-"): v for k, v in overrides.items()}}


def start(backend: Backend, n: int, config: Mapping[str, str] | None = None) -> list[Node]:
    return [backend.start_node(dict(config or BASE)) for _ in range(n)]


def warm(master: Node) -> None:
    """One write in DB 0, so later DB 0 commands are not preceded by a SELECT."""
    ok(master, "set", "warm", "1")


def topology(
    backend: Backend,
    replicas: int,
    config: Mapping[str, str] | None = None,
    master_config: Mapping[str, str] | None = None,
) -> tuple[Node, list[Node]]:
    """A master and ``replicas`` direct replicas, linked, warmed and quiesced."""
    master = backend.start_node(dict(master_config or config or BASE))
    reps = start(backend, replicas, config)
    for r in reps:
        attach(r, master)
    warm(master)
    quiesce([master, *reps])
    return master, reps


def is_hex40(value: str) -> bool:
    return bool(HEX40.fullmatch(value))


def backlog(node: Node) -> tuple[str, int, int]:
    """``(repl_backlog_active, first_byte_offset, histlen)``."""
    i = info(node)
    return (
        i["repl_backlog_active"],
        int(i["repl_backlog_first_byte_offset"]),
        int(i["repl_backlog_histlen"]),
    )


def psync_outcome(line: str, ids: Mapping[str, str], base: int = 0) -> tuple[Any, ...]:
    """A PSYNC reply line with replids replaced by names and offsets made relative."""
    names = {v: k for k, v in ids.items()}
    parts = line.split(" ")
    if parts[0] == "+FULLRESYNC":
        return ("FULLRESYNC", names.get(parts[1], parts[1]), int(parts[2]) - base)
    if parts[0] == "+CONTINUE":
        return ("CONTINUE", *(names.get(p, p) for p in parts[1:]))
    return (line,)


def norm_ports(value: Any, ports: Mapping[int, str]) -> Any:
    """Replace known ports (int or bulk) inside a reply by ``"<name>"`` / ``b"<name>"``."""
    if isinstance(value, list):
        return [norm_ports(v, ports) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and value in ports:
        return f"<{ports[value]}>"
    if isinstance(value, bytes) and value.isdigit() and int(value) in ports:
        return f"<{ports[int(value)]}>".encode()
    return value


def names_of(**nodes: Node) -> dict[int, str]:
    return {n.port: name for name, n in nodes.items()}


def fill_command(n: int, key: str = "pad") -> list[str]:
    """A ``set <key> <value>`` whose stream encoding is exactly ``n`` bytes long."""
    for length in range(n):
        argv = ["set", key, "x" * length]
        if len(encode(*argv)) == n:
            return argv
    raise ValueError(f"no single SET encodes to {n} bytes")


def wait_replid(node: Node, rid: str, timeout: float = 20.0) -> None:
    wait_for(
        lambda: link_up(node) and replid(node) == rid,
        timeout,
        f":{node.port} linked with replid {rid[:8]}",
    )


def now_ms() -> int:
    return int(time.time() * 1000)


def all_equal(values: Iterable[Any]) -> bool:
    return len(set(values)) == 1


# ============================================================================= §2.1 / #2


@expects(
    "2 (§2.1)",
    {
        "commands": [
            [b"PING"],
            [b"AUTH", b"secret"],
            [b"REPLCONF", b"listening-port", b"<R>"],
            [b"REPLCONF", b"ip-address", b"10.0.0.5"],
            [b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"],
            [b"PSYNC", b"<R's own replid>", b"1"],
        ],
    },
)
def scenario_replica_handshake_bytes(backend: Backend) -> Observations:
    """A fresh instance made a replica sends the §2.1 handshake and ``PSYNC <own id> 1``
    (it caches itself first)."""
    r = backend.start_node(cfg(masterauth="secret", replica_announce_ip="10.0.0.5"))
    own = replid(r)
    with FakeMaster() as fake:
        call(r, "REPLICAOF", HOST, fake.port)
        got = fake.handshake()
        replicaof(r, None)
    subst = {str(r.port).encode(): b"<R>", own.encode(): b"<R's own replid>"}
    return {"commands": [[subst.get(a, a) for a in cmd] for cmd in got], "_raw": got}


# ============================================================================= #1


@expects(
    "1",
    {
        "offset": 0,
        "backlog": ("0", 0, 0),
        "replid_unchanged": True,
        "replid_format": True,
        "replid2": ZERO_ID,
        "second_repl_offset": "-1",
    },
)
def scenario_no_replica(backend: Backend) -> Observations:
    """A master without replicas (and so without backlog) does not count writes."""
    m = backend.start_node(BASE)
    before = info(m)
    ok(m, "SET", "foo", "bar")
    after = info(m)
    return {
        "offset": int(after["master_repl_offset"]),
        "backlog": backlog(m),
        "replid_unchanged": after["master_replid"] == before["master_replid"],
        "replid_format": is_hex40(after["master_replid"]),
        "replid2": after["master_replid2"],
        "second_repl_offset": after["second_repl_offset"],
    }


# ============================================================================= #2, #3


@expects(
    "2",
    {
        "master_replid_changed": True,
        "master_replid_format": True,
        "replica_took_master_replid": True,
        "master_replid2": ZERO_ID,
        "replica_replid2": ZERO_ID,
        "master_offset": 0,
        "replica_offset": 0,
        "master_backlog": ("1", 1, 0),
        "replica_backlog": ("1", 1, 0),
        "delta": {"M": delta(full=1, err=1), "R": NO_DELTA},
        "role_master": [b"master", 0, [[b"127.0.0.1", b"<R>", b"0"]]],
        "role_replica": [b"slave", b"127.0.0.1", "<M>", b"connected", 0],
    },
)
def scenario_first_replica(backend: Backend) -> Observations:
    """The first replica of a fresh master: full sync at 0 and a new master replid."""
    m, r = start(backend, 2)
    m_id_before = replid(m)
    c = Counters({"M": m, "R": r})
    attach(r, m)
    quiesce([m, r])
    mi, ri = info(m), info(r)
    ports = names_of(M=m, R=r)
    return {
        "master_replid_changed": mi["master_replid"] != m_id_before,
        "master_replid_format": is_hex40(mi["master_replid"]),
        "replica_took_master_replid": ri["master_replid"] == mi["master_replid"],
        "master_replid2": mi["master_replid2"],
        "replica_replid2": ri["master_replid2"],
        "master_offset": int(mi["master_repl_offset"]),
        "replica_offset": int(ri["master_repl_offset"]),
        "master_backlog": backlog(m),
        "replica_backlog": backlog(r),
        "delta": c.delta(),
        "role_master": norm_ports(role(m), ports),
        "role_replica": norm_ports(role(r), ports),
    }


WORKED = select(0) + encode("set", "foo", "bar")


@expects(
    "3",
    {
        "stream_bytes": WORKED,
        "master_offset": 54,
        "replica_offset": 54,
        "master_backlog": ("1", 1, 54),
        "replica_backlog": ("1", 1, 54),
        "role_master": [b"master", 54, [[b"127.0.0.1", b"<R>", b"54"]]],
        "role_replica": [b"slave", b"127.0.0.1", "<M>", b"connected", 54],
    },
)
def scenario_worked_stream(backend: Backend) -> Observations:
    """§3.2: SELECT + SET after the first replica attached: 54 bytes, exactly these."""
    m, r = start(backend, 2)
    attach(r, m)
    ok(m, "set", "foo", "bar")
    quiesce([m, r])
    ports = names_of(M=m, R=r)
    obs = {
        "stream_bytes": capture(m, 0),
        "master_offset": offset(m),
        "replica_offset": offset(r),
        "master_backlog": backlog(m),
        "replica_backlog": backlog(r),
    }
    wait_closed(m, 1)
    quiesce([m, r])
    obs["role_master"] = norm_ports(role(m), ports)
    obs["role_replica"] = norm_ports(role(r), ports)
    return obs


# ============================================================================= #4, #5


STREAM_512 = select(0) + encode(*fill_command(512 - 23))


@expects(
    "4",
    {
        "master_offset": 512,
        "backlog": ("1", 1, 512),
        "at_1": (("CONTINUE", "<M>"), STREAM_512),
        "at_2": (("CONTINUE", "<M>"), STREAM_512[1:]),
        "at_513": (("CONTINUE", "<M>"), b""),
        "upper_case_id_at_1": (("CONTINUE", "<M>"), STREAM_512),
        "at_514": (("FULLRESYNC", "<M>", 512), b""),
        "at_0": (("FULLRESYNC", "<M>", 512), b""),
        "delta": delta(full=2, ok=4, err=2),
    },
)
def scenario_psync_boundaries(backend: Backend) -> Observations:
    """§2.3 table: master at 512 with backlog 1/512, raw PSYNC at 1, 2, 513, 514, 0 and
    with an upper-case replid."""
    m, r = start(backend, 2)
    attach(r, m)
    ok(m, *fill_command(512 - 23))
    quiesce([m, r])
    rid = replid(m)
    ids = {"<M>": rid}
    obs: Observations = {"master_offset": offset(m), "backlog": backlog(m)}
    c = Counters({"M": m})

    def probe(rid_sent: str, off: int) -> tuple[tuple[Any, ...], bytes]:
        line, data = psync_probe(m, rid_sent, off, until=512)
        return psync_outcome(line, ids), data

    obs["at_1"] = probe(rid, 1)
    obs["at_2"] = probe(rid, 2)
    obs["at_513"] = probe(rid, 513)
    obs["upper_case_id_at_1"] = probe(rid.upper(), 1)
    obs["at_514"] = probe(rid, 514)
    obs["at_0"] = probe(rid, 0)
    obs["delta"] = c.delta()["M"]
    return obs


@expects(
    "5",
    {
        "non_integer_offset": "-ERR value is not an integer or out of range",
        "delta_after_non_integer": NO_DELTA,
        "forced": ("FULLRESYNC", "<new M>", 0),
        "replid_changed": True,
        "delta_after_forced": delta(full=1),
        "backlog": ("1", 1, 0),
    },
)
def scenario_forced_and_invalid_psync(backend: Backend) -> Observations:
    """``PSYNC x 1.1`` is rejected without counting; ``PSYNC ? -1`` forces a full sync
    without counting a partial error (and, as first replica, renews the replid)."""
    m = backend.start_node(BASE)
    old = replid(m)
    c = Counters({"M": m})
    with PseudoReplica(m) as p:
        obs: Observations = {"non_integer_offset": p.psync("x", "1.1")}
    obs["delta_after_non_integer"] = c.delta()["M"]
    with PseudoReplica(m) as p:
        line = p.psync("?", -1)
    new = replid(m)
    obs["forced"] = psync_outcome(line, {"<new M>": new, "<old M>": old})
    obs["replid_changed"] = new != old and is_hex40(new)
    obs["delta_after_forced"] = c.delta()["M"]
    obs["backlog"] = backlog(m)
    return obs


# ============================================================================= #6


@expects(
    "6",
    {
        "at_least_two_pings": True,
        "delta_multiple_of_14": True,
        "stream_only_pings": True,
        "replica_equals_master": True,
    },
)
def scenario_pings_advance_offsets(backend: Backend) -> Observations:
    """``repl-ping-replica-period 1``: with no writes the offset grows only by 14-byte
    ``ping`` commands, and the replica follows."""
    m = backend.start_node(cfg(repl_ping_replica_period="1"))
    r = backend.start_node(BASE)
    attach(r, m)
    o0 = quiesce([m, r])
    wait_for(lambda: offset(m) >= o0 + 2 * len(PING), 15, "two PINGs")
    data = capture(m, o0)

    def equal() -> bool:
        a = offset(m)
        return offset(r) == a == offset(m)

    wait_for(equal, 15, "replica to match master between pings")
    grown = offset(m) - o0
    return {
        "at_least_two_pings": grown >= 28,
        "delta_multiple_of_14": grown % 14 == 0,
        "stream_only_pings": bool(data) and data == PING * (len(data) // len(PING)),
        "replica_equals_master": True,
        "_grown": grown,
        "_stream": data,
    }


# ============================================================================= #7


TX_STEPS: list[tuple[str, list[list[str]], bytes]] = [
    ("multi_one_write", [["MULTI"], ["set", "foo", "bar"], ["EXEC"]], encode("set", "foo", "bar")),
    (
        "multi_two_writes",
        [["MULTI"], ["set", "foo", "bar"], ["set", "foo", "baz"], ["EXEC"]],
        MULTI + encode("set", "foo", "bar") + encode("set", "foo", "baz") + EXEC,
    ),
    ("multi_read_only", [["MULTI"], ["get", "foo"], ["EXEC"]], b""),
    ("multi_empty", [["MULTI"], ["EXEC"]], b""),
    (
        "eval_one_write",
        [["EVAL", "redis.call('set', KEYS[1], ARGV[1])", "1", "foo", "x"]],
        encode("set", "foo", "x"),
    ),
    (
        "eval_two_writes",
        [
            [
                "EVAL",
                "redis.call('set', KEYS[1], ARGV[1]) redis.call('set', KEYS[2], ARGV[1])",
                "2",
                "foo",
                "bar",
                "y",
            ]
        ],
        MULTI + encode("set", "foo", "y") + encode("set", "bar", "y") + EXEC,
    ),
    ("eval_read_only", [["EVAL", "return redis.call('get', KEYS[1])", "1", "foo"]], b""),
    (
        "multi_in_db1_select_before_multi",
        [["SELECT", "1"], ["MULTI"], ["set", "a", "1"], ["set", "b", "2"], ["EXEC"]],
        select(1) + MULTI + encode("set", "a", "1") + encode("set", "b", "2") + EXEC,
    ),
]


@expects(
    "7",
    {
        **{f"delta_{name}": len(expected) for name, _, expected in TX_STEPS},
        "stream": b"".join(expected for _, _, expected in TX_STEPS),
        "replica_in_sync": True,
    },
)
def scenario_transactions(backend: Backend) -> Observations:
    """§3.7 wrapping: >1 write ops of one execution unit are wrapped in MULTI/EXEC (SELECT
    before MULTI in 7.0); one write is not; read-only/empty units add nothing."""
    m, (r,) = topology(backend, 1)
    o0 = quiesce([m, r])
    obs: Observations = {}
    prev = o0
    with RawConn.to(m) as c:
        for name, commands, _ in TX_STEPS:
            for cmd in commands:
                reply = c.call(*cmd)
                if isinstance(reply, Err):
                    raise AssertionError(f"{cmd} -> {reply}")
            now = offset(m)
            obs[f"delta_{name}"] = now - prev
            prev = now
    obs["stream"] = capture(m, o0)
    wait_closed(m, 1)
    quiesce([m, r])
    obs["replica_in_sync"] = digest(m) == digest(r)
    return obs


# ============================================================================= #8


def _set_pxat(key: str, value: str) -> list[bytes]:
    return [b"SET", key.encode(), value.encode(), b"PXAT", b"<ms>"]


REWRITE_STEPS: list[tuple[str, list[list[str]], list[list[bytes]], int | None]] = [
    # (name, client commands, propagated commands (b"<ms>" = absolute ms), relative ttl ms)
    ("set_ex", [["SET", "k1", "v", "EX", "100"]], [_set_pxat("k1", "v")], 100_000),
    ("set_px_nx", [["SET", "k4", "v", "PX", "100000", "NX"]], [_set_pxat("k4", "v")], 100_000),
    ("setex", [["SETEX", "k2", "100", "v"]], [_set_pxat("k2", "v")], 100_000),
    ("psetex", [["PSETEX", "k3", "100000", "v"]], [_set_pxat("k3", "v")], 100_000),
    ("set_get_without_expire", [["set", "k5", "v", "get"]], [[b"set", b"k5", b"v"]], None),
    ("set_keepttl", [["set", "k1", "w", "KEEPTTL"]], [[b"set", b"k1", b"w", b"KEEPTTL"]], None),
    ("getset", [["GETSET", "g", "v"]], [[b"SET", b"g", b"v"]], None),
    ("expire", [["EXPIRE", "k2", "200"]], [[b"PEXPIREAT", b"k2", b"<ms>"]], 200_000),
    (
        "expire_gt",
        [["EXPIRE", "k2", "300", "GT"]],
        [[b"PEXPIREAT", b"k2", b"<ms>", b"GT"]],
        300_000,
    ),
    (
        "expire_in_past",
        [["set", "e", "1"], ["EXPIRE", "e", "-1"]],
        [[b"set", b"e", b"1"], [b"DEL", b"e"]],
        None,
    ),
    ("getex_persist", [["GETEX", "k3", "PERSIST"]], [[b"PERSIST", b"k3"]], None),
    ("getex_ex", [["GETEX", "k4", "EX", "300"]], [[b"PEXPIREAT", b"k4", b"<ms>"]], 300_000),
    ("incrbyfloat", [["INCRBYFLOAT", "f", "1.5"]], [[b"SET", b"f", b"1.5", b"KEEPTTL"]], None),
    (
        "spop",
        [["sadd", "s", "a"], ["SPOP", "s"]],
        [[b"sadd", b"s", b"a"], [b"SREM", b"s", b"a"]],
        None,
    ),
    (
        "blpop_served_at_once",
        [["rpush", "l", "x"], ["BLPOP", "l", "0"]],
        [[b"rpush", b"l", b"x"], [b"LPOP", b"l"]],
        None,
    ),
    (
        "blmove_served_at_once",
        [["rpush", "l2", "y"], ["BLMOVE", "l2", "l3", "LEFT", "RIGHT", "0"]],
        [[b"rpush", b"l2", b"y"], [b"LMOVE", b"l2", b"l3", b"LEFT", b"RIGHT"]],
        None,
    ),
    (
        "brpoplpush_served_at_once",
        [["rpush", "l4", "z"], ["BRPOPLPUSH", "l4", "l5", "0"]],
        [[b"rpush", b"l4", b"z"], [b"RPOPLPUSH", b"l4", b"l5"]],
        None,
    ),
    ("no_op_write", [["DEL", "missing"]], [], None),
    ("publish", [["PUBLISH", "ch", "msg"]], [[b"PUBLISH", b"ch", b"msg"]], None),
]


@expects(
    "8",
    {
        **{name: propagated for name, _, propagated, _ in REWRITE_STEPS},
        "blpop_served_later": [[b"rpush", b"bl", b"z"], [b"LPOP", b"bl"]],
        "blocked_client_reply": [b"bl", b"z"],
    },
)
def scenario_propagation_rewrites(backend: Backend) -> Observations:
    """§3.5: commands are propagated as rewritten (absolute PXAT/PEXPIREAT within the
    wall-clock window of the call, DEL for past expiry, SET for INCRBYFLOAT/GETSET,
    SREM for SPOP, pops for served blocking commands)."""
    m, (r,) = topology(backend, 1)
    o0 = quiesce([m, r])
    bounds: list[tuple[str, int, int, int, int, int | None]] = []  # name, from, to, t0, t1, ttl
    with RawConn.to(m) as c:
        for name, commands, _, ttl in REWRITE_STEPS:
            before = offset(m)
            t0 = now_ms()
            for cmd in commands:
                reply = c.call(*cmd)
                if isinstance(reply, Err):
                    raise AssertionError(f"{cmd} -> {reply}")
            t1 = now_ms() + 1
            bounds.append((name, before, offset(m), t0, t1, ttl))
        # a blocked client served later: the push, then the pop (§3.5 last rows)
        with RawConn.to(m) as blocked:
            blocked.send("BLPOP", "bl", "0")
            wait_for(lambda: info_int(m, "blocked_clients", "clients") == 1, 10, "BLPOP to block")
            before = offset(m)
            ok(m, "rpush", "bl", "z")
            served = blocked.read()
        served_range = (before, offset(m))
    data = capture(m, o0)
    obs: Observations = {}
    for name, lo, hi, t0, t1, ttl in bounds:
        cmds = parse_stream(data[lo - o0 : hi - o0])
        obs[name] = [_mask_ms(cmd, t0, t1, ttl) for cmd in cmds]
    lo, hi = served_range
    obs["blpop_served_later"] = parse_stream(data[lo - o0 : hi - o0])
    obs["blocked_client_reply"] = served
    return obs


def _mask_ms(cmd: list[bytes], t0: int, t1: int, ttl: int | None) -> list[bytes]:
    """Replace the absolute-ms argument by ``b"<ms>"`` if it lies in ``[t0+ttl, t1+ttl]``."""
    idx = None
    if cmd[:1] == [b"SET"] and b"PXAT" in cmd:
        idx = cmd.index(b"PXAT") + 1
    elif cmd[:1] == [b"PEXPIREAT"]:
        idx = 2
    if idx is None or ttl is None:
        return cmd
    ms = int(cmd[idx])
    shown = (
        b"<ms>"
        if t0 + ttl <= ms <= t1 + ttl
        else b"<ms %d not in [%d, %d]>" % (ms, t0 + ttl, t1 + ttl)
    )
    return [*cmd[:idx], shown, *cmd[idx + 1 :]]


# ============================================================================= #9


@expects(
    "9",
    {
        "replica_keys_before": 3,
        "replica_get_expired": None,
        "lazy_read": {"reply": None, "stream": encode("DEL", "e1")},
        "write_on_expired": {
            "reply": 1,
            "stream": MULTI + encode("DEL", "e2") + encode("append", "e2", "x") + EXEC,
        },
        "replica_keys_after": 2,
        "replica_e2": b"x",
        "digests_equal": True,
    },
)
def scenario_expiry_propagation(backend: Backend) -> Observations:
    """§3.6: with active expiry off, a read of an expired key propagates a lone DEL; a
    write on one propagates MULTI/DEL/cmd/EXEC; the replica keeps keys until then."""
    m, (r,) = topology(backend, 1)
    ok(m, "DEBUG", "SET-ACTIVE-EXPIRE", "0")
    ok(m, "SET", "e1", "v", "PX", "10")
    ok(m, "SET", "e2", "v", "PX", "10")
    time.sleep(0.05)  # let both keys expire logically (spec: time must pass)
    o0 = quiesce([m, r])
    obs: Observations = {
        "replica_keys_before": ok(r, "DBSIZE"),
        "replica_get_expired": call(r, "GET", "e1"),
    }
    reply = call(m, "GET", "e1")
    obs["lazy_read"] = {"reply": reply, "stream": capture(m, o0)}
    o1 = offset(m)
    reply = call(m, "append", "e2", "x")
    obs["write_on_expired"] = {"reply": reply, "stream": capture(m, o1)}
    wait_closed(m, 1)
    quiesce([m, r])
    obs["replica_keys_after"] = ok(r, "DBSIZE")
    obs["replica_e2"] = call(r, "GET", "e2")
    obs["digests_equal"] = digest(m) == digest(r)
    return obs


# ============================================================================= #10


SET_X = encode("set", "x", "1")


@expects(
    "10",
    {
        "wait_reply": 1,
        "offset_delta": len(SET_X) + len(GETACK),
        "ack_from_getack_reply": len(SET_X),
        "ack_later": len(SET_X) + len(GETACK),
        "stream": SET_X + GETACK,
        "replica_offset_delta": len(SET_X) + len(GETACK),
    },
)
def scenario_wait_feeds_getack(backend: Backend) -> Observations:
    """§3.4: WAIT blocking feeds REPLCONF GETACK (37 counted bytes); the replica's answer
    excludes those 37 bytes, its next periodic ACK includes them."""
    m, (r,) = topology(backend, 1)
    for _attempt in range(3):
        o0 = quiesce([m, r])
        with RawConn.to(m) as c:
            # one TCP write: the master runs SET and WAIT before the replica can ACK the SET,
            # and INFO right after WAIT is released by the GETACK answer
            c.send_many([("set", "x", "1"), ("WAIT", "1", "0"), ("INFO", "replication")])
            c.read()
            wait_reply = c.read()
            text = c.read().decode()
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        acked = int(replica_lines(fields)[0]["offset"]) - o0
        if acked != len(SET_X) + len(GETACK):
            break
        # A periodic ACK (sent each second) overtook the GETACK answer: real-time race, retry.
    obs: Observations = {
        "wait_reply": wait_reply,
        "offset_delta": int(fields["master_repl_offset"]) - o0,
        "ack_from_getack_reply": acked,
    }
    obs["stream"] = capture(m, o0)
    wait_closed(m, 1)
    quiesce([m, r])
    obs["ack_later"] = int(replica_lines(info(m))[0]["offset"]) - o0
    obs["replica_offset_delta"] = offset(r) - o0
    return obs


# ============================================================================= #11


@expects(
    "11",
    {
        "killed": 1,
        "delta": {"M": delta(ok=1), "R": NO_DELTA, "S": NO_DELTA},
        "replid_unchanged": True,
        "offsets_delta": len(encode("set", "after", "1")),
    },
)
def scenario_replica_reconnect_inside_backlog(backend: Backend) -> Observations:
    """§2.3/§2.4: a replica losing its link reconnects with PSYNC inside the backlog:
    partial; same replid so its sub-replica stays connected."""
    m, r, s = start(backend, 3)
    attach(r, m)
    attach(s, r)
    warm(m)
    o0 = quiesce([m, r, s])
    rid = replid(m)
    c = Counters({"M": m, "R": r, "S": s})
    killed = ok(r, "CLIENT", "KILL", "TYPE", "master")
    wait_for(
        lambda: counters(m)["sync_partial_ok"] > c.before["M"]["sync_partial_ok"] and link_up(r),
        20,
        "R to resync",
    )
    ok(m, "set", "after", "1")
    o1 = quiesce([m, r, s])
    return {
        "killed": killed,
        "delta": c.delta(),
        "replid_unchanged": replid(m) == replid(r) == replid(s) == rid,
        "offsets_delta": o1 - o0,
    }


# ============================================================================= #12, #13, #15, §4


def _promotion(backend: Backend, sub: bool, sibling: bool) -> dict[str, Any]:
    """M with replica R (with sub-replica S if ``sub``) and replica T (if ``sibling``),
    quiesced at X; then ``REPLICAOF NO ONE`` on R."""
    m, r = start(backend, 2)
    attach(r, m)
    nodes = {"M": m, "R": r}
    if sub:
        nodes["S"] = backend.start_node(BASE)
        attach(nodes["S"], r)
    if sibling:
        nodes["T"] = backend.start_node(BASE)
        attach(nodes["T"], m)
    warm(m)
    x = quiesce(list(nodes.values()))
    old = replid(m)
    before = backlog(r)
    c = Counters(nodes)
    reply = replicaof(r, None)
    return {
        "nodes": nodes,
        "x": x,
        "old": old,
        "backlog_before": before,
        "counters": c,
        "reply": reply,
    }


@expects(
    "12",
    {
        "reply": "OK",
        "new_replid": True,
        "replid2_is_old": True,
        "second_is_x_plus_1": True,
        "offset_unchanged": True,
        "backlog_kept": True,
        "sub_replica": {"replid_is_new": True, "replid2_is_old": True, "second_is_x_plus_1": True},
        "sibling": {"replid_is_new": True, "replid2_is_old": True, "second_is_x_plus_1": True},
        "delta": {"M": NO_DELTA, "R": delta(ok=2), "S": NO_DELTA, "T": NO_DELTA},
        "old_id_at_x_plus_1": (("CONTINUE", "<R>"), b""),
        "old_id_at_x_plus_2": (("FULLRESYNC", "<R>", 0), b""),
    },
)
def scenario_promotion_and_sibling_repoint(backend: Backend) -> Observations:
    """§4.1: REPLICAOF NO ONE at X shifts the replid (replid2 = old, second = X+1), keeps
    data and backlog, drops sub-replicas (they re-PSYNC partially); a sibling repointed
    to the promoted replica resyncs partially via replid2. PSYNC under the old id is
    accepted up to X+1 only."""
    p = _promotion(backend, sub=True, sibling=True)
    r, s, t = (p["nodes"][k] for k in "RST")
    x, old = p["x"], p["old"]
    ri = info(r)
    new = ri["master_replid"]
    obs: Observations = {
        "reply": p["reply"],
        "new_replid": new != old and is_hex40(new),
        "replid2_is_old": ri["master_replid2"] == old,
        "second_is_x_plus_1": int(ri["second_repl_offset"]) == x + 1,
        "offset_unchanged": int(ri["master_repl_offset"]) == x,
        "backlog_kept": backlog(r) == p["backlog_before"],
    }
    attach(t, r)
    for node in (s, t):
        wait_replid(node, new)
    quiesce([r, s, t])

    def ids(node: Node) -> dict[str, bool]:
        i = info(node)
        return {
            "replid_is_new": i["master_replid"] == new,
            "replid2_is_old": i["master_replid2"] == old,
            "second_is_x_plus_1": int(i["second_repl_offset"]) == x + 1,
        }

    obs["sub_replica"], obs["sibling"] = ids(s), ids(t)
    obs["delta"] = p["counters"].delta()
    names = {"<R>": new, "<old>": old}
    line, data = psync_probe(r, old, x + 1, until=x)
    obs["old_id_at_x_plus_1"] = (psync_outcome(line, names, x), data)
    line, data = psync_probe(r, old, x + 2)
    obs["old_id_at_x_plus_2"] = (psync_outcome(line, names, x), data)
    return obs


@expects(
    "13",
    {
        "delta": {"M": NO_DELTA, "R": delta(ok=1)},
        "old_master": {
            "replid_is_r": True,
            "replid2_is_old": True,
            "second_is_x_plus_1": True,
            "offset_is_x": True,
        },
        "data_flows": True,
    },
)
def scenario_old_master_rejoins_promoted_replica_partially(backend: Backend) -> Observations:
    """§4.3: the old master (no new bytes) made a replica of the promoted one sends
    PSYNC <old id> X+1, accepted via replid2; it takes R's id, replid2 = its old id."""
    p = _promotion(backend, sub=False, sibling=False)
    m, r = p["nodes"]["M"], p["nodes"]["R"]
    x, old = p["x"], p["old"]
    c = Counters({"M": m, "R": r})
    attach(m, r)
    quiesce([r, m])
    mi = info(m)
    obs: Observations = {
        "delta": c.delta(),
        "old_master": {
            "replid_is_r": mi["master_replid"] == replid(r),
            "replid2_is_old": mi["master_replid2"] == old,
            "second_is_x_plus_1": int(mi["second_repl_offset"]) == x + 1,
            "offset_is_x": int(mi["master_repl_offset"]) == x,
        },
    }
    ok(r, "set", "new", "1")
    quiesce([r, m])
    obs["data_flows"] = call(m, "GET", "new") == b"1" and digest(m) == digest(r)
    return obs


AHEAD = encode("set", "ahead", "1")


@expects(
    "14",
    {
        "old_master_offset_delta": len(AHEAD),
        "delta": {"M": NO_DELTA, "R": delta(full=1, err=1)},
        "offsets_equal_x": True,
        "replid_is_r": True,
        "replid2": ZERO_ID,
        "ahead_key_gone": 0,
        "digests_equal": True,
        "missed_pings": {
            "replies": ["OK", "QUEUED", "QUEUED", ["OK", "OK"]],
            "old_master_ahead_by_pings": True,
            "delta": {"M": NO_DELTA, "R": delta(full=1, err=1)},
            "offsets_equal": True,
            "replid_is_r": True,
        },
    },
)
def scenario_old_master_ahead_needs_full_sync(backend: Backend) -> Observations:
    """§4.3 last paragraph: an old master that produced bytes after the promotion asks
    for more than second_repl_offset - 1 and gets a full sync. First with a write on the
    old master (deterministic), then as in the catalogue: PINGs (period 1) the replica
    never processed because it slept inside the transaction that promoted it."""
    p = _promotion(backend, sub=False, sibling=False)
    m, r = p["nodes"]["M"], p["nodes"]["R"]
    x = p["x"]
    ok(m, "set", "ahead", "1")  # M still has its backlog: the offset advances
    obs: Observations = {"old_master_offset_delta": offset(m) - x}
    c = Counters({"M": m, "R": r})
    attach(m, r)
    quiesce([r, m])
    mi = info(m)
    obs.update(
        {
            "delta": c.delta(),
            "offsets_equal_x": int(mi["master_repl_offset"]) == offset(r) == x,
            "replid_is_r": mi["master_replid"] == replid(r),
            "replid2": mi["master_replid2"],
            "ahead_key_gone": call(m, "EXISTS", "ahead"),
            "digests_equal": digest(m) == digest(r),
        }
    )

    m = backend.start_node(cfg(repl_ping_replica_period="1"))
    r = backend.start_node(BASE)
    attach(r, m)
    warm(m)
    quiesce([m, r])
    with RawConn.to(r, timeout=30) as tx:
        # 3 s asleep: at least two of M's once-a-second PINGs wait unread in R's socket and
        # are discarded with the master link when REPLICAOF NO ONE runs
        tx.send_many([("MULTI",), ("DEBUG", "SLEEP", "3"), ("REPLICAOF", "NO", "ONE"), ("EXEC",)])
        replies = [tx.read() for _ in range(4)]
    x = offset(r)
    wait_closed(m, 0)
    ahead = offset(m) - x
    c = Counters({"M": m, "R": r})
    attach(m, r)
    quiesce([r, m])
    obs["missed_pings"] = {
        "replies": replies,
        "old_master_ahead_by_pings": ahead > 0 and ahead % len(PING) == 0,
        "delta": c.delta(),
        "offsets_equal": offset(m) == offset(r) == x,
        "replid_is_r": replid(m) == replid(r),
    }
    obs["_pings_missed"] = ahead // len(PING)
    return obs


@expects(
    "15",
    {
        "delta": {"M": delta(full=1, err=1), "R": NO_DELTA},
        "replica_took_old_master_replid": True,
        "master_replid_unchanged": True,
        "replica_replid2": ZERO_ID,
        "offsets_equal_x": True,
    },
)
def scenario_promoted_replica_back_under_old_master_is_full(backend: Backend) -> Observations:
    """§4.3: making the promoted replica a replica of the old master again is a full sync
    (the old master does not know the promoted replica's new id)."""
    p = _promotion(backend, sub=False, sibling=False)
    m, r = p["nodes"]["M"], p["nodes"]["R"]
    x, old = p["x"], p["old"]
    c = Counters({"M": m, "R": r})
    attach(r, m)
    quiesce([m, r])
    ri = info(r)
    return {
        "delta": c.delta(),
        "replica_took_old_master_replid": ri["master_replid"] == replid(m),
        "master_replid_unchanged": replid(m) == old,
        "replica_replid2": ri["master_replid2"],
        "offsets_equal_x": offset(m) == int(ri["master_repl_offset"]) == x,
    }


# ============================================================================= #16


@expects(
    "16",
    {
        "killed": 2,
        "delta": {"M": delta(ok=2), "R1": delta(ok=1), "R2": NO_DELTA},
        "r2_master_is_r1": True,
        "offsets_delta": len(encode("set", "after", "1")),
        "digests_equal": True,
    },
)
def scenario_sibling_switch_is_partial(backend: Backend) -> Observations:
    """Replica links killed on the master: both replicas resync partially; then one
    replica repointed to its sibling resyncs partially too; no full sync anywhere."""
    m, (r1, r2) = topology(backend, 2)
    o0 = quiesce([m, r1, r2])
    c = Counters({"M": m, "R1": r1, "R2": r2})
    killed = ok(m, "CLIENT", "KILL", "TYPE", "replica")
    wait_for(
        lambda: (
            counters(m)["sync_partial_ok"] - c.before["M"]["sync_partial_ok"] == 2
            and link_up(r1)
            and link_up(r2)
        ),
        20,
        "both replicas to resync",
    )
    attach(r2, r1)
    ok(m, "set", "after", "1")
    o1 = quiesce([m, r1, r2])
    return {
        "killed": killed,
        "delta": c.delta(),
        "r2_master_is_r1": info(r2)["master_port"] == str(r1.port),
        "offsets_delta": o1 - o0,
        "digests_equal": all_equal(digest(n) for n in (m, r1, r2)),
    }


# ============================================================================= #17


@expects(
    "17",
    {
        "pings_passed_old_offset": True,
        "sync_full": {"M": 6, "R1": 2, "R2": 0, "R3": 0, "R4": 0},
        "sync_full_after_killing_links": {"M": 6, "R1": 2, "R2": 0, "R3": 0, "R4": 0},
        "offsets_equal": True,
        "digests_equal": True,
    },
)
def scenario_missing_ping_topology(backend: Backend) -> Observations:
    """§4.3: nodes whose offset passed the new master's second_repl_offset - 1 (PINGs
    they got after the promotion) full-sync; a node whose master went through a full
    sync is dropped and full-syncs; plain link kills afterwards stay partial."""
    m, r1, r2, r3, r4 = start(backend, 5)
    nodes = {"M": m, "R1": r1, "R2": r2, "R3": r3, "R4": r4}
    for r in (r1, r2, r3, r4):
        attach(r, m)
    warm(m)
    x = quiesce(list(nodes.values()))
    replicaof(r1, None)
    call(r2, "REPLICAOF", HOST, DEAD_PORT)
    ok(m, "CONFIG", "SET", "repl-ping-replica-period", "1")
    wait_for(lambda: offset(r3) > x and offset(r4) > x, 20, "PINGs to pass X on R3 and R4")
    obs: Observations = {"pings_passed_old_offset": (offset(m) - x) % len(PING) == 0}
    attach(r3, r1)
    attach(m, r1)
    wait_replid(r4, replid(r1))
    attach(r2, m)
    quiesce(list(nodes.values()))
    obs["sync_full"] = {k: counters(n)["sync_full"] for k, n in nodes.items()}
    for k in ("M", "R2", "R3", "R4"):
        before = counters(r1)["sync_partial_ok"] + counters(m)["sync_partial_ok"]
        if ok(nodes[k], "CLIENT", "KILL", "TYPE", "master") == 1:
            wait_for(
                lambda b=before: (
                    counters(r1)["sync_partial_ok"] + counters(m)["sync_partial_ok"] > b
                ),
                20,
                f"{k} to resync",
            )
    quiesce(list(nodes.values()))
    obs["sync_full_after_killing_links"] = {k: counters(n)["sync_full"] for k, n in nodes.items()}
    obs["offsets_equal"] = all_equal(offset(n) for n in nodes.values())
    obs["digests_equal"] = all_equal(digest(n) for n in nodes.values())
    return obs


# ============================================================================= #18


@expects(
    "18",
    {
        "backlog_size_info": "16384",
        "backlog_size_config": [b"repl-backlog-size", b"16384"],
        "histlen_exceeds_size": True,
        "first_consistent": True,
        "request_before_first": True,
        "delta": delta(full=1, err=1),
        "offsets_equal": True,
        "digests_equal": True,
    },
)
def scenario_backlog_too_small_forces_full_sync(backend: Backend) -> Observations:
    """§5: repl-backlog-size below 16384 is clamped; a replica away while ≫ 48 KB were
    written asks for an offset that is gone: full sync."""
    m, (r,) = topology(backend, 1)
    ok(m, "CONFIG", "SET", "repl-backlog-size", "100")
    obs: Observations = {
        "backlog_size_info": info(m)["repl_backlog_size"],
        "backlog_size_config": ok(m, "CONFIG", "GET", "repl-backlog-size"),
    }
    x = quiesce([m, r])
    call(r, "REPLICAOF", HOST, DEAD_PORT)  # away, keeping its cached master (offset X)
    wait_closed(m, 0)
    with RawConn.to(m) as c:
        c.send_many([("set", f"pad{i}", "x" * 10_000) for i in range(40)])  # ~400 KB
        for _ in range(40):
            c.read()
    _, first, histlen = backlog(m)
    obs.update(
        {
            "histlen_exceeds_size": histlen > 16384,
            "first_consistent": first == offset(m) - histlen + 1,
            "request_before_first": x + 1 < first,
        }
    )
    c = Counters({"M": m})
    attach(r, m)
    quiesce([m, r])
    obs["delta"] = c.delta()["M"]
    obs["offsets_equal"] = offset(m) == offset(r)
    obs["digests_equal"] = digest(m) == digest(r)
    obs["_backlog"] = (first, histlen)
    return obs


# ============================================================================= #19


@expects(
    "19",
    {
        "ttl_1": {
            "replid_changed": True,
            "replid2": ZERO_ID,
            "backlog": ("0", 0, 0),
            "offset_frozen": True,
            "offset_frozen_after_write": True,
            "delta": delta(full=1, err=1),
            "replid_changed_again_at_full_sync": True,
            "replica_offset_is_frozen_offset": True,
            "replica_has_late_write": b"1",
        },
        "ttl_3600": {
            "replid_unchanged": True,
            "backlog_active": "1",
            "offset_delta_after_write": len(encode("set", "late", "1")),
            "delta": delta(ok=1),
            "replica_has_late_write": b"1",
        },
    },
)
def scenario_backlog_ttl(backend: Backend) -> Observations:
    """§5: a master without replicas for more than repl-backlog-ttl frees its backlog
    (new replid, replid2 cleared, offset frozen); the returning replica full-syncs. With
    the default ttl the same absence ends in a partial resync."""
    m1, (r1,) = topology(backend, 1, master_config=cfg(repl_backlog_ttl="1"))
    m2, (r2,) = topology(backend, 1)
    x1, x2 = quiesce([m1, r1]), quiesce([m2, r2])
    id1, id2 = replid(m1), replid(m2)
    for r in (r1, r2):
        call(r, "REPLICAOF", HOST, DEAD_PORT)
    wait_for(lambda: info(m1)["repl_backlog_active"] == "0", 20, "backlog ttl to expire")
    i1 = info(m1)
    expired_id = i1["master_replid"]
    short: Observations = {
        "replid_changed": expired_id != id1 and is_hex40(expired_id),
        "replid2": i1["master_replid2"],
        "backlog": backlog(m1),
        "offset_frozen": int(i1["master_repl_offset"]) == x1,
    }
    ok(m1, "set", "late", "1")
    short["offset_frozen_after_write"] = offset(m1) == x1
    long: Observations = {
        "replid_unchanged": replid(m2) == id2,
        "backlog_active": info(m2)["repl_backlog_active"],
    }
    ok(m2, "set", "late", "1")
    long["offset_delta_after_write"] = offset(m2) - x2
    c = Counters({"M1": m1, "M2": m2})
    attach(r1, m1)
    attach(r2, m2)
    quiesce([m1, r1])
    quiesce([m2, r2])
    d = c.delta()
    short["delta"], long["delta"] = d["M1"], d["M2"]
    short["replid_changed_again_at_full_sync"] = replid(m1) not in (id1, expired_id)
    short["replica_offset_is_frozen_offset"] = offset(r1) == x1
    short["replica_has_late_write"] = call(r1, "GET", "late")
    long["replica_has_late_write"] = call(r2, "GET", "late")
    return {"ttl_1": short, "ttl_3600": long}


# ============================================================================= #20, #21, #22


@expects(
    "20",
    {
        "master": {
            "replid_new": True,
            "replid2_is_old": True,
            "offset": 0,
            "second_repl_offset": 1,
            "backlog": ("1", 1, 0),
        },
        "master_counters_since_restart": delta(ok=1),
        "delta": {"R": delta(ok=1), "S": NO_DELTA},
        "replica": {"replid_is_new": True, "replid2_is_old": True, "second_repl_offset": 1},
        "sub_replica": {"replid_is_new": True, "replid2_is_old": True, "second_repl_offset": 1},
    },
)
def scenario_master_restart_at_offset_zero(backend: Backend) -> Observations:
    """§4.4: a master restarted from its RDB keeps the old id as replid2 (second = 1 at
    offset 0) so its replica resyncs partially; the replica's id change makes its own
    sub-replica re-PSYNC (partially)."""
    m = backend.start_node({**BASE, **PERSISTENT})
    r, s = start(backend, 2)
    attach(r, m)
    attach(s, r)
    quiesce([m, r, s])
    old = replid(m)
    c = Counters({"R": r, "S": s})
    m.stop()
    m.start()
    mi = info(m)
    new = mi["master_replid"]
    obs: Observations = {
        "master": {
            "replid_new": new != old and is_hex40(new),
            "replid2_is_old": mi["master_replid2"] == old,
            "offset": int(mi["master_repl_offset"]),
            "second_repl_offset": int(mi["second_repl_offset"]),
            "backlog": backlog(m),
        }
    }
    wait_replid(r, new)
    wait_replid(s, new)
    quiesce([m, r, s])
    obs["master_counters_since_restart"] = counters(m)
    obs["delta"] = c.delta()

    def ids(node: Node) -> dict[str, Any]:
        i = info(node)
        return {
            "replid_is_new": i["master_replid"] == new,
            "replid2_is_old": i["master_replid2"] == old,
            "second_repl_offset": int(i["second_repl_offset"]),
        }

    obs["replica"], obs["sub_replica"] = ids(r), ids(s)
    return obs


def _expiring_dataset(master: Node, per_db: int) -> dict[int, list[str]]:
    """``per_db`` keys with PX 10 in each of the 16 DBs plus one persistent key per DB."""
    keys = {db: [f"k{db}:{i}" for i in range(per_db)] for db in range(16)}
    with RawConn.to(master) as c:
        cmds: list[tuple[str, ...]] = []
        for db, names in keys.items():
            cmds.append(("SELECT", str(db)))
            cmds += [("SET", k, "v", "PX", "10") for k in names]
            cmds.append(("SET", f"keep{db}", "v"))
        c.send_many(cmds)
        for _ in cmds:
            c.read()
    time.sleep(0.05)  # every PX 10 key is now logically expired
    return keys


def _del_commands(stream: bytes) -> dict[int, list[bytes]]:
    """DEL keys per DB as announced by SELECTs, plus the SELECT order under key -1."""
    out: dict[int, list[bytes]] = {-1: []}
    db = None
    for cmd in parse_stream(stream):
        if cmd[0] == b"SELECT":
            db = int(cmd[1])
            out[-1].append(cmd[1])
            out.setdefault(db, [])
        else:
            assert cmd[0] == b"DEL" and db is not None, cmd
            out[db].append(cmd[1])
    return {k: v if k == -1 else sorted(v) for k, v in out.items()}


KEYS_21 = {db: [f"k{db}:{i}" for i in range(64)] for db in range(16)}
DELS_21 = sum(
    len(select(db)) + sum(len(encode("DEL", k)) for k in names) for db, names in KEYS_21.items()
)


@expects(
    "21",
    {
        "keys_expired_at_load": "1024",
        "keys_loaded": "16",
        "histlen": DELS_21,
        "offset_is_o_plus_histlen": True,
        "first_is_o_plus_1": True,
        "second_is_o_plus_1": True,
        "replid2_is_old": True,
        "deletes": {
            -1: [str(db).encode() for db in range(16)],
            **{db: sorted(k.encode() for k in names) for db, names in KEYS_21.items()},
        },
        "master_counters_since_restart": delta(ok=1),
        "replica_delta": NO_DELTA,
        "digests_equal": True,
        "replica_keys": 16,
        "small_backlog": {
            "first_after_second": True,
            "histlen_exceeds_size": True,
            "master_counters_since_restart": delta(full=1, err=1),
            "replica_delta": delta(full=1, err=1),
            "digests_equal": True,
        },
    },
)
def scenario_master_restart_with_expired_keys(backend: Backend) -> Observations:
    """§4.4/§3.6: loading an RDB with expired keys on a master feeds one DEL per key (with
    SELECTs) into the new backlog, on top of the saved offset; the replica resyncs
    partially and receives them. With a 16 KB backlog the DELs push the saved offset out
    of the backlog: full syncs (R, then R's sub-replica S)."""
    m = backend.start_node({**BASE, **PERSISTENT})
    r = backend.start_node(BASE)
    attach(r, m)
    ok(m, "DEBUG", "SET-ACTIVE-EXPIRE", "0")
    _expiring_dataset(m, 64)
    o = quiesce([m, r])
    old = replid(m)
    c = Counters({"R": r})
    m.stop()
    m.start()
    mi, persistence = info(m), info(m, "persistence")
    histlen = int(mi["repl_backlog_histlen"])
    obs: Observations = {
        "keys_expired_at_load": persistence["rdb_last_load_keys_expired"],
        "keys_loaded": persistence["rdb_last_load_keys_loaded"],
        "histlen": histlen,
        "offset_is_o_plus_histlen": int(mi["master_repl_offset"]) == o + histlen,
        "first_is_o_plus_1": int(mi["repl_backlog_first_byte_offset"]) == o + 1,
        "second_is_o_plus_1": int(mi["second_repl_offset"]) == o + 1,
        "replid2_is_old": mi["master_replid2"] == old,
    }
    wait_replid(r, mi["master_replid"])
    quiesce([m, r])
    obs["master_counters_since_restart"] = counters(m)
    obs["deletes"] = _del_commands(capture(m, o))
    obs["replica_delta"] = c.delta()["R"]
    obs["digests_equal"] = digest(m) == digest(r)
    obs["replica_keys"] = sum(_dbsize(r, db) for db in range(16))

    # the same with 2048 keys and a 16 KB backlog, M -> R -> S
    m = backend.start_node({**BASE, **PERSISTENT, "repl-backlog-size": "16384"})
    r, s = start(backend, 2)
    attach(r, m)
    attach(s, r)
    ok(m, "DEBUG", "SET-ACTIVE-EXPIRE", "0")
    _expiring_dataset(m, 128)
    quiesce([m, r, s])
    c = Counters({"R": r})
    m.stop()
    m.start()
    mi = info(m)
    _, first, histlen = backlog(m)
    small: Observations = {
        "first_after_second": first > int(mi["second_repl_offset"]),
        "histlen_exceeds_size": histlen > 16384,
    }
    wait_replid(r, mi["master_replid"])
    wait_replid(s, mi["master_replid"])
    quiesce([m, r, s])
    small["master_counters_since_restart"] = counters(m)
    small["replica_delta"] = c.delta()["R"]
    small["digests_equal"] = all_equal(digest(n) for n in (m, r, s))
    obs["small_backlog"] = small
    return obs


def _dbsize(node: Node, db: int) -> int:
    with RawConn.to(node) as c:
        c.call("SELECT", str(db))
        return int(c.call("DBSIZE"))


@expects("22", {"delta": delta(ok=1), "replid_kept": True, "offset_kept": True, "data_flows": True})
def scenario_replica_restart_resyncs_partially(backend: Backend) -> Observations:
    """§4.4: a replica restarted from its RDB (with replication info) sends
    PSYNC <id> <offset+1> and resyncs partially."""
    m = backend.start_node(BASE)
    r = backend.start_node({**BASE, **PERSISTENT, "replicaof": f"{HOST} {m.port}"})
    wait_for(lambda: link_up(r), 20, "R link up")
    warm(m)
    ok(m, "set", "a", "1")
    o = quiesce([m, r])
    rid = replid(m)
    c = Counters({"M": m})
    r.stop()
    r.start()
    wait_for(lambda: link_up(r), 20, "R link up after restart")
    quiesce([m, r])
    obs: Observations = {
        "delta": c.delta()["M"],
        "replid_kept": replid(r) == rid == replid(m),
        "offset_kept": offset(r) == o,
    }
    ok(m, "set", "b", "1")
    quiesce([m, r])
    obs["data_flows"] = call(r, "GET", "b") == b"1" and digest(m) == digest(r)
    return obs


# ============================================================================= #23, #24


@expects(
    "23",
    {
        "one_of_three": {"reply": "OK", "good_replicas": "1"},
        "two_of_three": {"reply": NOREPLICAS, "good_replicas": "1"},
        "replica_frozen": {"reply": NOREPLICAS, "good_replicas": "0"},
        "replica_back": "OK",
        "on_a_replica": {"master_write_applied": b"1", "good_replicas_field": "0"},
    },
)
def scenario_min_replicas_to_write(backend: Backend) -> Observations:
    """§6.7: min-replicas-to-write/max-lag gate writes on a master (good = online and
    acked within max-lag); on a replica the setting does not gate the master's stream."""
    m, (r,) = topology(backend, 1)

    def attempt(*config: str) -> dict[str, Any]:
        ok(m, "CONFIG", "SET", *config)
        return {
            "reply": call(m, "SET", "k", "v"),
            "good_replicas": info(m)["min_slaves_good_slaves"],
        }

    obs: Observations = {
        "one_of_three": attempt("min-replicas-to-write", "1", "min-replicas-max-lag", "3"),
        "two_of_three": attempt("min-replicas-to-write", "2"),
    }
    ok(m, "CONFIG", "SET", "min-replicas-to-write", "1", "min-replicas-max-lag", "2")
    r.pause()
    try:
        wait_for(lambda: call(m, "SET", "k", "v") == NOREPLICAS, 20, "NOREPLICAS")
        obs["replica_frozen"] = {
            "reply": call(m, "SET", "k", "v"),
            "good_replicas": info(m)["min_slaves_good_slaves"],
        }
    finally:
        r.resume()
    obs["replica_back"] = wait_for(
        lambda: call(m, "SET", "k", "v") == "OK" and "OK", 20, "writes accepted again"
    )
    ok(r, "CONFIG", "SET", "min-replicas-to-write", "1", "min-replicas-max-lag", "2")
    ok(m, "set", "z", "1")
    quiesce([m, r])
    obs["on_a_replica"] = {
        "master_write_applied": call(r, "GET", "z"),
        "good_replicas_field": info(r).get("min_slaves_good_slaves"),
    }
    return obs


@expects(
    "24",
    {
        "link_up": {"set": READONLY, "get": b"1"},
        "link_down_serving_stale": {
            "set": READONLY,
            "get": b"1",
            "ping": "PONG",
            "psync": "-NOMASTERLINK Can't SYNC while not connected with my master",
        },
        "link_down_not_serving_stale": {
            "set": READONLY,
            "get": MASTERDOWN,
            "ping": MASTERDOWN,
            "info_role": "slave",
            "psync": str(MASTERDOWN),
        },
        "writable_link_down_not_serving_stale": {"set": MASTERDOWN},
        "writable_link_up": {"set": "OK", "get": b"mine"},
    },
)
def scenario_replica_write_and_stale_gating(backend: Backend) -> Observations:
    """§6.7 order: READONLY for writes on a read-only replica, then MASTERDOWN for
    non-STALE commands (PING, PSYNC included) when the link is down and stale data is not
    served; INFO still answers."""
    m, (r,) = topology(backend, 1)
    ok(m, "set", "k", "1")
    quiesce([m, r])

    def psync_reply() -> str:
        with PseudoReplica(r) as p:
            return p.psync("?", -1)

    obs: Observations = {"link_up": {"set": call(r, "SET", "k", "2"), "get": call(r, "GET", "k")}}
    call(r, "REPLICAOF", HOST, DEAD_PORT)
    obs["link_down_serving_stale"] = {
        "set": call(r, "SET", "k", "2"),
        "get": call(r, "GET", "k"),
        "ping": call(r, "PING"),
        "psync": psync_reply(),
    }
    ok(r, "CONFIG", "SET", "replica-serve-stale-data", "no")
    obs["link_down_not_serving_stale"] = {
        "set": call(r, "SET", "k", "2"),
        "get": call(r, "GET", "k"),
        "ping": call(r, "PING"),
        "info_role": info(r)["role"],
        "psync": psync_reply(),
    }
    ok(r, "CONFIG", "SET", "replica-read-only", "no")
    obs["writable_link_down_not_serving_stale"] = {"set": call(r, "SET", "k", "2")}
    attach(r, m)
    obs["writable_link_up"] = {"set": call(r, "SET", "mine", "mine"), "get": call(r, "GET", "mine")}
    return obs


# ============================================================================= #25


@expects(
    "25",
    {
        "wrong_arity": Err("ERR wrong number of arguments for 'replicaof' command"),
        "wrong_arity_slaveof": Err("ERR wrong number of arguments for 'slaveof' command"),
        "bad_ports": [Err("ERR Invalid master port")] * 3,
        "no_one_on_master": "OK",
        "no_one_on_master_changes_nothing": True,
        "new_master": "OK",
        "same_master_link_up": "OK Already connected to specified master",
        "to_dead_port": "OK",
        "same_master_link_down_other_case": "OK Already connected to specified master",
        "link_down": "down",
        "no_one_lower_case_on_replica": "OK",
        "role_after_no_one": "master",
        "from_replica_client": {"received_before_close": b"", "master_unchanged": True},
        "self": {"reply": "OK", "link": "down", "sync_full": 0},
    },
)
def scenario_replicaof_replies(backend: Backend) -> Observations:
    """§8: REPLICAOF/SLAVEOF replies and errors. A replica-flagged connection gets its
    reply dropped along with the connection (§6.3: a replica producing a reply is
    disconnected), and the command has no effect."""
    m, r = start(backend, 2)
    obs: Observations = {
        "wrong_arity": call(r, "REPLICAOF", "x"),
        "wrong_arity_slaveof": call(r, "SLAVEOF", "x"),
        "bad_ports": [call(r, "REPLICAOF", HOST, p) for p in ("abc", "-1", "70000")],
    }
    before = info(m)
    obs["no_one_on_master"] = call(m, "REPLICAOF", "NO", "ONE")
    after = info(m)
    obs["no_one_on_master_changes_nothing"] = (
        after["master_replid"] == before["master_replid"]
        and after["role"] == "master"
        and after["master_replid2"] == before["master_replid2"]
    )
    obs["new_master"] = call(r, "REPLICAOF", HOST, m.port)
    wait_for(lambda: link_up(r), 20, "link up")
    obs["same_master_link_up"] = call(r, "REPLICAOF", HOST, m.port)
    obs["to_dead_port"] = call(r, "REPLICAOF", "localhost", DEAD_PORT)
    obs["same_master_link_down_other_case"] = call(r, "REPLICAOF", "LOCALHOST", DEAD_PORT)
    obs["link_down"] = info(r)["master_link_status"]
    obs["no_one_lower_case_on_replica"] = call(r, "replicaof", "no", "one")
    obs["role_after_no_one"] = info(r)["role"]

    attach(r, m)
    warm(m)
    quiesce([m, r])
    m_before = info(m)
    with PseudoReplica(m) as p:
        p.psync(m_before["master_replid"], int(m_before["master_repl_offset"]) + 1)
        p.conn.send("REPLICAOF", HOST, r.port)
        data = p.conn.read_until_closed(5)  # None: still connected
    m_after = info(m)
    obs["from_replica_client"] = {
        "received_before_close": data,
        "master_unchanged": m_after["role"] == "master"
        and m_after["master_replid"] == m_before["master_replid"],
    }

    me = backend.start_node(BASE)
    reply = call(me, "REPLICAOF", HOST, me.port)
    time.sleep(1.5)  # spans at least one reconnection attempt (replicationCron, 1 s)
    obs["self"] = {
        "reply": reply,
        "link": info(me)["master_link_status"],
        "sync_full": counters(me)["sync_full"],
    }
    return obs


@expects("25 (cluster row)", {"reply": Err("ERR REPLICAOF not allowed in cluster mode.")})
def scenario_replicaof_refused_in_cluster_mode(backend: Backend) -> Observations:
    """§8: REPLICAOF is refused on a node with ``cluster-enabled yes``."""
    n = backend.start_node(cfg(cluster_enabled="yes"))
    return {"reply": call(n, "REPLICAOF", HOST, DEAD_PORT)}


# ============================================================================= #26


@expects(
    "26",
    {
        "replica_role": [b"slave", b"127.0.0.1", "<M>", b"handshake", -1],
        "master_role": [b"master", 0, []],
        "master_replica_line": {
            "ip": "127.0.0.1",
            "port": "<R>",
            "state": "wait_bgsave",
            "offset": "0",
            "lag": "0",
        },
        "sync_full_before_freeze": 1,
        "sync_full_after_freeze": 2,
        "replicas_after_freeze": "1",
        "replica_role_after_freeze": [b"slave", b"127.0.0.1", "<M>", b"handshake", -1],
    },
)
def scenario_handshake_state_and_timeout(backend: Backend) -> Observations:
    """§2.1/§6.6/§7: a replica waiting for a deferred fork is in ``handshake`` (ROLE
    offset -1; the master shows it as wait_bgsave, not in ROLE). Keep-alive newlines
    keep it there; when the master stops sending them for longer than repl-timeout the
    replica gives up and reconnects (observable: a second PSYNC on the master)."""
    m = backend.start_node(cfg(repl_diskless_sync_delay="1000"))
    r = backend.start_node(cfg(repl_timeout="3"))
    ports = names_of(M=m, R=r)
    replicaof(r, m)
    wait_for(
        lambda: (
            role(r)[3] == b"handshake"
            and replica_lines(info(m))
            and replica_lines(info(m))[0]["state"] == "wait_bgsave"
        ),
        20,
        "handshake",
    )
    line = replica_lines(info(m))[0]
    obs: Observations = {
        "replica_role": norm_ports(role(r), ports),
        "master_role": role(m),
        "master_replica_line": {
            k: f"<{ports[int(v)]}>" if k == "port" else v for k, v in line.items()
        },
        "sync_full_before_freeze": counters(m)["sync_full"],
    }
    m.pause()  # no keep-alives for 8 s > repl-timeout 3 (+1 s cron granularity)
    try:
        time.sleep(8)
    finally:
        m.resume()
    wait_for(
        lambda: counters(m)["sync_full"] >= 2 and info(m)["connected_slaves"] == "1",
        20,
        "the replica's second attempt",
    )
    obs["sync_full_after_freeze"] = counters(m)["sync_full"]
    obs["replicas_after_freeze"] = info(m)["connected_slaves"]
    obs["replica_role_after_freeze"] = norm_ports(role(r), ports)
    return obs


# ============================================================================= #27


def _batch(m: Node, attach_count: int) -> dict[str, Any]:
    """Pseudo-replicas (capa eof psync2) send ``PSYNC ? -1`` one after the other with a
    write in between; returns their FULLRESYNC lines and the counts."""
    forks0 = info_int(m, "total_forks", "stats")
    c = Counters({"M": m})
    reps = [PseudoReplica(m, capa=("eof", "psync2")) for _ in range(attach_count)]
    try:
        for i, p in enumerate(reps):
            p.conn.send("PSYNC", "?", "-1")
            wait_for(lambda n=i + 1: len(replica_lines(info(m))) == n, 10, "replica listed")
            if i < attach_count - 1:  # the last arrival may trigger the fork at once
                ok(m, "set", f"k{i}", "v")
        lines = [p.first_line(20) for p in reps]
        off_after_writes = offset(m)
        return {
            "lines": [psync_outcome(ln, {"<M>": replid(m)}, off_after_writes) for ln in lines],
            "forks": info_int(m, "total_forks", "stats") - forks0,
            "delta": c.delta()["M"],
        }
    finally:
        for p in reps:
            p.close()


@expects(
    "27",
    {
        "within_delay": {
            "lines": [("FULLRESYNC", "<M>", 0)] * 3,
            "forks": 1,
            "delta": delta(full=3),
        },
        "max_replicas_2": {
            "lines": [("FULLRESYNC", "<M>", 0)] * 2,
            "forks": 1,
            "delta": delta(full=2),
        },
    },
)
def scenario_diskless_sync_batching(backend: Backend) -> Observations:
    """§6.2: replicas arriving within repl-diskless-sync-delay share one fork and get
    the same FULLRESYNC offset (taken at fork, after all the writes made while they
    waited); with repl-diskless-sync-max-replicas 2 the fork starts once two wait."""
    m = backend.start_node(cfg(repl_diskless_sync_delay="3"))
    within = _batch(m, 3)
    m2 = backend.start_node(cfg(repl_diskless_sync_delay="60", repl_diskless_sync_max_replicas="2"))
    return {"within_delay": within, "max_replicas_2": _batch(m2, 2)}


# ============================================================================= #28


@expects(
    "28",
    {
        "blocked_before": "1",
        "replicaof": "OK",
        "blocked_client_reply": UNBLOCKED,
        "then_connection_closed": b"",
        "push_reaches_replica": [b"x"],
    },
)
def scenario_blocked_client_unblocked_on_demotion(backend: Backend) -> Observations:
    """§4.2: demoting a master unblocks its blocked clients with -UNBLOCKED; pushes on
    the new master then reach it."""
    m, b = start(backend, 2)
    with RawConn.to(b) as blocked:
        blocked.send("BLPOP", "foo", "0")
        wait_for(lambda: info(b, "clients")["blocked_clients"] == "1", 10, "BLPOP to block")
        obs: Observations = {
            "blocked_before": info(b, "clients")["blocked_clients"],
            "replicaof": replicaof(b, m),
        }
        obs["blocked_client_reply"] = blocked.read()
        # 7.0 flags the client CLOSE_AFTER_REPLY (disconnectAllBlockedClients)
        obs["then_connection_closed"] = blocked.read_until_closed(10)
    wait_for(lambda: link_up(b), 20, "link up")
    ok(m, "rpush", "foo", "x")
    quiesce([m, b])
    obs["push_reaches_replica"] = call(b, "LRANGE", "foo", "0", "-1")
    return obs


# ============================================================================= #29


@expects(
    "29",
    {
        "reply": "OK",
        "new_master_role": "master",
        "old_master_follows_new": True,
        "final_state": "no-failover",
        "delta": {"M": delta(ok=1), "R1": delta(ok=2), "R2": NO_DELTA},
        "acked_writes_on_new_master": True,
        "offsets_equal": True,
        "digests_equal": True,
        "replids_equal": True,
    },
)
def scenario_failover_under_load(backend: Backend) -> Observations:
    """§10 #29: FAILOVER TO R1 while a client writes: no acknowledged write is lost, the
    old master follows R1 (partial), the other replica, dropped by the id change,
    re-PSYNCs partially to the old master and then partially to R1."""
    m, (r1, r2) = topology(backend, 2)
    c = Counters({"M": m, "R1": r1, "R2": r2})
    acked: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        with RawConn.to(m, timeout=30) as w:
            i = 0
            while not stop.is_set():
                if w.call("SET", f"w{i}", str(i)) != "OK":
                    return
                acked.append(f"w{i}")
                i += 1

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    wait_for(lambda: len(acked) >= 50, 20, "load")
    reply = call(m, "FAILOVER", "TO", HOST, r1.port)
    states: list[str] = []

    def done() -> bool:
        i = info(m)
        if not states or states[-1] != i["master_failover_state"]:
            states.append(i["master_failover_state"])
        return (
            i["role"] == "slave" and i["master_link_status"] == "up" and states[-1] == "no-failover"
        )

    wait_for(done, 30, "failover to complete", interval=0.005)
    stop.set()
    t.join(30)
    wait_replid(r2, replid(r1))  # dropped by M's id change, back on M with the new id
    attach(r2, r1)
    quiesce([r1, m, r2])
    with RawConn.to(r1) as rc:
        present = sum(rc.call("EXISTS", *acked[i : i + 500]) for i in range(0, len(acked), 500))
    return {
        "reply": reply,
        "new_master_role": info(r1)["role"],
        "old_master_follows_new": info(m)["master_port"] == str(r1.port),
        "final_state": states[-1],
        "delta": c.delta(),
        "acked_writes_on_new_master": present == len(acked),
        "offsets_equal": all_equal(offset(n) for n in (m, r1, r2)),
        "digests_equal": all_equal(digest(n) for n in (m, r1, r2)),
        "replids_equal": all_equal(replid(n) for n in (m, r1, r2)),
        "_states_seen": states,
        "_acked": len(acked),
    }


@expects(
    "29 (states)",
    {
        "waiting": {
            "reply": "OK",
            "state": "waiting-for-sync",
            "role": "master",
            "write_pending": True,
            "replicaof": Err("ERR REPLICAOF not allowed while failing over."),
        },
        "abort": {
            "reply": "OK",
            "state": "no-failover",
            "pending_write_reply": "OK",
            "replid_unchanged": True,
            "abort_again": Err("ERR No failover in progress."),
        },
        "in_progress": {
            "reply": "OK",
            "state": "failover-in-progress",
            "role": [b"slave", b"127.0.0.1", "<R>", b"handshake", -1],
        },
        "completed": {
            "state": "no-failover",
            "old_master_link": "up",
            "new_master_role": "master",
            "delta": {"M": NO_DELTA, "R": delta(ok=1)},
            "replid_of_new_master": True,
            "new_master_replid2_is_old": True,
        },
    },
)
def scenario_failover_states(backend: Backend) -> Observations:
    """FAILOVER states: waiting-for-sync while the target has not acked the offset
    (writes paused, REPLICAOF refused, ABORT resumes), failover-in-progress while the
    PSYNC FAILOVER handshake with the target is pending, then no-failover."""
    m, (r,) = topology(backend, 1)
    ports = names_of(M=m, R=r)
    old = replid(m)
    r.pause()
    try:
        ok(m, "set", "unacked", "1")
        obs: Observations = {"waiting": {"reply": call(m, "FAILOVER", "TO", HOST, r.port)}}
        wait_for(lambda: info(m)["master_failover_state"] == "waiting-for-sync", 10, "waiting")
        with RawConn.to(m) as w:
            w.send("SET", "paused", "1")
            pending = w.reader.read_window(0.3) == b""
            obs["waiting"].update(
                {
                    "state": info(m)["master_failover_state"],
                    "role": info(m)["role"],
                    "write_pending": pending,
                    "replicaof": call(m, "REPLICAOF", HOST, DEAD_PORT),
                }
            )
            obs["abort"] = {
                "reply": call(m, "FAILOVER", "ABORT"),
                "state": info(m)["master_failover_state"],
                "pending_write_reply": w.read(),
                "replid_unchanged": replid(m) == old,
                "abort_again": call(m, "FAILOVER", "ABORT"),
            }
    finally:
        r.resume()
    quiesce([m, r])
    c = Counters({"M": m, "R": r})
    r.pause()
    try:
        reply = call(m, "FAILOVER", "TO", HOST, r.port)
        wait_for(
            lambda: info(m)["master_failover_state"] == "failover-in-progress", 10, "in progress"
        )
        obs["in_progress"] = {
            "reply": reply,
            "state": info(m)["master_failover_state"],
            "role": norm_ports(role(m), ports),
        }
    finally:
        r.resume()
    wait_for(lambda: info(m)["master_failover_state"] == "no-failover" and link_up(m), 20, "done")
    quiesce([r, m])
    obs["completed"] = {
        "state": info(m)["master_failover_state"],
        "old_master_link": info(m)["master_link_status"],
        "new_master_role": info(r)["role"],
        "delta": c.delta(),
        "replid_of_new_master": replid(m) == replid(r) != old,
        "new_master_replid2_is_old": info(r)["master_replid2"] == old,
    }
    return obs


@expects(
    "29 (errors)",
    {
        "no_replicas": Err("ERR FAILOVER requires connected replicas."),
        "abort_without_failover": Err("ERR No failover in progress."),
        "on_replica": Err("ERR FAILOVER is not valid when server is a replica."),
        "force_alone": Err(
            "ERR FAILOVER with force option requires both a timeout and target HOST and IP."
        ),
        "force_with_timeout_only": Err(
            "ERR FAILOVER with force option requires both a timeout and target HOST and IP."
        ),
        "force_with_target_only": Err(
            "ERR FAILOVER with force option requires both a timeout and target HOST and IP."
        ),
    },
)
def scenario_failover_errors(backend: Backend) -> Observations:
    """FAILOVER argument and state errors."""
    m, r = start(backend, 2)
    obs: Observations = {
        "no_replicas": call(m, "FAILOVER"),
        "abort_without_failover": call(m, "FAILOVER", "ABORT"),
    }
    attach(r, m)
    obs.update(
        {
            "on_replica": call(r, "FAILOVER"),
            "force_alone": call(m, "FAILOVER", "FORCE"),
            "force_with_timeout_only": call(m, "FAILOVER", "TIMEOUT", "100", "FORCE"),
            "force_with_target_only": call(m, "FAILOVER", "TO", HOST, r.port, "FORCE"),
        }
    )
    return obs


@expects(
    "§8 (clients)",
    {
        "setinfo": Err("ERR unknown subcommand 'SETINFO'. Try CLIENT HELP."),
        "no_touch": Err("ERR unknown subcommand 'NO-TOUCH'. Try CLIENT HELP."),
        "no_evict": "OK",
        "reply_on": "OK",
    },
)
def scenario_client_subcommands_of_7_0(backend: Backend) -> Observations:
    """CLIENT as Redis 7.0 has it: SETINFO and NO-TOUCH arrived in 7.2, so they are unknown
    subcommands (redis-py sends SETINFO on connect and ignores this error)."""
    (m,) = start(backend, 1)
    return {
        "setinfo": call(m, "CLIENT", "SETINFO", "lib-name", "redisops"),
        "no_touch": call(m, "CLIENT", "NO-TOUCH", "on"),
        "no_evict": call(m, "CLIENT", "NO-EVICT", "on"),
        "reply_on": call(m, "CLIENT", "REPLY", "ON"),
    }


@expects(
    "29 (timeout)",
    {
        "reply": "OK",
        "state": "no-failover",
        "role": "master",
        "replid_unchanged": True,
        "writes_accepted": "OK",
    },
)
def scenario_failover_timeout_aborts(backend: Backend) -> Observations:
    """FAILOVER TO <stalled target> TIMEOUT without FORCE aborts: same master, same id."""
    m, (r,) = topology(backend, 1)
    old = replid(m)
    r.pause()
    try:
        ok(m, "set", "unacked", "1")
        reply = call(m, "FAILOVER", "TO", HOST, r.port, "TIMEOUT", "500")
        wait_for(lambda: info(m)["master_failover_state"] == "no-failover", 20, "abort")
        obs = {
            "reply": reply,
            "state": info(m)["master_failover_state"],
            "role": info(m)["role"],
            "replid_unchanged": replid(m) == old,
            "writes_accepted": call(m, "SET", "after", "1"),
        }
    finally:
        r.resume()
    return obs


@expects(
    "29 (rejected psync)",
    {
        "reply": "OK",
        "role": "master",
        "state": "no-failover",
        "replid_new": True,
        "replid2_is_old": True,
        "delta": {"M": delta(ok=2), "R": NO_DELTA, "R2": NO_DELTA},
        "offsets_equal": True,
    },
)
def scenario_failover_rejected_psync_aborts(backend: Backend) -> Observations:
    """A target whose ACL denies PSYNC makes the failover abort after the master already
    became a replica: it is a master again with a new replid (replid2 = old) and both of
    its replicas, dropped, resync partially."""
    m, (r, r2) = topology(backend, 2)
    old = replid(m)
    ok(r, "ACL", "SETUSER", "default", "-psync")
    c = Counters({"M": m, "R": r, "R2": r2})
    reply = call(m, "FAILOVER", "TO", HOST, r.port)
    wait_for(
        lambda: info(m)["master_failover_state"] == "no-failover" and info(m)["role"] == "master",
        20,
        "abort",
    )
    new = replid(m)
    wait_replid(r, new)
    wait_replid(r2, new)
    quiesce([m, r, r2])
    mi = info(m)
    return {
        "reply": reply,
        "role": mi["role"],
        "state": mi["master_failover_state"],
        "replid_new": new != old and is_hex40(new),
        "replid2_is_old": mi["master_replid2"] == old,
        "delta": c.delta(),
        "offsets_equal": all_equal(offset(n) for n in (m, r, r2)),
    }


# ============================================================================= #30


SET_D, SET_E = encode("set", "d", "1"), encode("set", "e", "1")


@expects(
    "30",
    {
        "shutdown_waiting": {
            "offset_delta": len(SET_D) + len(GETACK),
            "countdown_positive": True,
            "role": "master",
        },
        "abort_reply": "OK",
        "waiter_reply": Err("ERR Errors trying to SHUTDOWN. Check logs."),
        "write_after_abort": "OK",
        "second_shutdown_offset_delta": len(SET_D) + len(GETACK) + len(SET_E) + len(GETACK),
        "alive_until_replica_resumes": True,
        "waiter_disconnected_without_reply": True,
        "master_gone": True,
        "replica_offset_delta": len(SET_D) + len(GETACK) + len(SET_E) + len(GETACK),
        "replica_has_writes": [b"1", b"1"],
        "short_timeout": {
            "waiter_disconnected_without_reply": True,
            "master_gone": True,
            "replica_offset_delta": len(SET_D) + len(GETACK),
        },
    },
)
def scenario_shutdown_waits_for_lagging_replicas(backend: Backend) -> Observations:
    """§4.4/§3.4: SHUTDOWN with a lagging replica feeds GETACK (+37), pauses writes and
    waits (up to shutdown-timeout) for the replica to ack everything; SHUTDOWN ABORT
    fails the waiter; with shutdown-timeout 1 the master exits anyway."""
    m, (r,) = topology(backend, 1)
    o0 = quiesce([m, r])
    r.pause()
    try:
        ok(m, "set", "d", "1")
        with RawConn.to(m, timeout=30) as waiter:
            waiter.send("SHUTDOWN")
            wait_for(lambda: "shutdown_in_milliseconds" in info(m, "server"), 10, "shutdown wait")
            srv = info(m, "server")
            obs: Observations = {
                "shutdown_waiting": {
                    "offset_delta": offset(m) - o0,
                    "countdown_positive": int(srv["shutdown_in_milliseconds"]) > 0,
                    "role": info(m)["role"],
                }
            }
            obs["abort_reply"] = call(m, "SHUTDOWN", "ABORT")
            obs["waiter_reply"] = waiter.read()
        obs["write_after_abort"] = call(m, "set", "e", "1")
        waiter = RawConn.to(m, timeout=30)
        waiter.send("SHUTDOWN")
        wait_for(lambda: "shutdown_in_milliseconds" in info(m, "server"), 10, "shutdown wait")
        obs["second_shutdown_offset_delta"] = offset(m) - o0
        obs["alive_until_replica_resumes"] = info(m)["role"] == "master"
    finally:
        r.resume()
    with waiter:
        obs["waiter_disconnected_without_reply"] = waiter.read_until_closed(20) == b""
    obs["master_gone"] = wait_for(lambda: refuses_connections(m), 20, "master to exit")
    obs["replica_offset_delta"] = offset(r) - o0
    obs["replica_has_writes"] = [call(r, "GET", "d"), call(r, "GET", "e")]

    m, (r,) = topology(backend, 1, master_config=cfg(shutdown_timeout="1"))
    o0 = quiesce([m, r])
    r.pause()
    try:
        ok(m, "set", "d", "1")
        with RawConn.to(m, timeout=30) as waiter:
            waiter.send("SHUTDOWN")
            short = {
                "waiter_disconnected_without_reply": waiter.read_until_closed(20) == b"",
                "master_gone": wait_for(lambda: refuses_connections(m), 20, "master to exit"),
            }
    finally:
        r.resume()
    wait_for(lambda: offset(r) >= o0 + len(SET_D) + len(GETACK), 10, "replica to drain its socket")
    short["replica_offset_delta"] = offset(r) - o0
    obs["short_timeout"] = short
    return obs


# ============================================================================= #31


def _random_tree(rng: random.Random, nodes: Sequence[Node], root: Node) -> dict[Node, Node | None]:
    others = [n for n in nodes if n is not root]
    rng.shuffle(others)
    order = [root, *others]
    parent: dict[Node, Node | None] = {root: None}
    for i, n in enumerate(order[1:], start=1):
        parent[n] = rng.choice(order[:i])
    return parent


def _apply_layout(new: dict[Node, Node | None], current: dict[Node, Node | None]) -> None:
    """Re-point nodes top-down (no transient cycles), waiting for each link."""
    root = next(n for n, p in new.items() if p is None)
    if current.get(root) is not None:
        replicaof(root, None)
    level = [root]
    while level:
        nxt = []
        for parent in level:
            for child in (n for n, p in new.items() if p is parent):
                if current.get(child) is not parent:
                    attach(child, parent)
                nxt.append(child)
        level = nxt
    rid = replid(root)
    for n in new:
        if n is not root:
            wait_replid(n, rid)


def _load(m: Node, rng_seed: int, rnd: int, stop: threading.Event) -> None:
    """Mixed writes on the master (no TTLs), including the pushes serving blocked clients."""
    rng = random.Random(rng_seed)
    with RawConn.to(m, timeout=30) as w:
        for i in range(400):
            if stop.is_set():
                return
            op = rng.randrange(7)
            batch: list[tuple[str, ...]] = [
                ("SET", f"k{i % 50}", str(i)),
                ("INCR", "counter"),
                ("RPUSH", f"q{rnd}", str(i)),
                ("ZADD", f"z{rnd}", str(i), f"m{i}"),
                ("SADD", "set", str(i % 30)),
                ("HSET", "hash", f"f{i % 10}", str(i)),
                ("LPUSH", f"src{rnd}", str(i)),
            ][op : op + 1]
            if i % 37 == 0:
                batch += [("MULTI",), ("INCR", "tx"), ("LPUSH", "txl", str(i)), ("EXEC",)]
            w.send_many(batch)
            for _ in batch:
                reply = w.read()
                if isinstance(reply, Err):
                    raise AssertionError(f"load: {batch} -> {reply}")
        w.send_many(
            [
                ("RPUSH", f"q{rnd}", "end"),
                ("ZADD", f"z{rnd}", "-1", "end"),
                ("LPUSH", f"src{rnd}", "end"),
            ]
        )
        for _ in range(3):
            w.read()


@expects(
    "31",
    {
        "total_sync_full": 4,
        "rounds": [
            {
                "blocked_served": 3,
                "offsets_equal": True,
                "digests_equal": True,
                "replids_equal": True,
            },
        ]
        * 4,
        "total_sync_full_after": 4,
        "partial_resyncs_seen": True,
    },
)
def scenario_chains_under_load(backend: Backend) -> Observations:
    """Five nodes in random trees (seeded), writes with blocking list/zset consumers,
    random ``CLIENT KILL TYPE master`` during the writes, layouts changed only at equal
    offsets: never another full sync, offsets and digests equal after each round."""
    rng = random.Random(31)
    nodes = start(backend, 5)
    current = _random_tree(rng, nodes, nodes[0])
    _apply_layout(current, {})
    obs: Observations = {"total_sync_full": sum(counters(n)["sync_full"] for n in nodes)}
    rounds = []
    for rnd in range(4):
        root = next(n for n, p in current.items() if p is None)
        blocked = [RawConn.to(root, timeout=30) for _ in range(3)]
        try:
            blocked[0].send("BLPOP", f"q{rnd}", "0")
            blocked[1].send("BZPOPMIN", f"z{rnd}", "0")
            blocked[2].send("BLMOVE", f"src{rnd}", f"dst{rnd}", "LEFT", "RIGHT", "0")
            wait_for(lambda r=root: info(r, "clients")["blocked_clients"] == "3", 10, "blocked")
            stop = threading.Event()
            t = threading.Thread(
                target=_load, args=(root, rng.randrange(1 << 30), rnd, stop), daemon=True
            )
            t.start()
            replicas = [n for n, p in current.items() if p is not None]
            for _ in range(3):
                time.sleep(rng.uniform(0.02, 0.15))
                call(rng.choice(replicas), "CLIENT", "KILL", "TYPE", "master")
            t.join(60)
            served = sum(1 for b in blocked if not isinstance(b.read(20), Err))
        finally:
            for b in blocked:
                b.close()
        quiesce(nodes, timeout=30)
        rounds.append(
            {
                "blocked_served": served,
                "offsets_equal": all_equal(offset(n) for n in nodes),
                "digests_equal": all_equal(digest(n) for n in nodes),
                "replids_equal": all_equal(replid(n) for n in nodes),
            }
        )
        new_root = rng.choice(nodes) if rnd % 2 == 0 else root
        layout = _random_tree(rng, nodes, new_root)
        _apply_layout(layout, current)
        current = layout
        quiesce(nodes, timeout=30)
    obs["rounds"] = rounds
    obs["total_sync_full_after"] = sum(counters(n)["sync_full"] for n in nodes)
    obs["partial_resyncs_seen"] = sum(counters(n)["sync_partial_ok"] for n in nodes) > 0
    return obs


# ============================================================================= §7


MASTER_FIELDS = [
    "role",
    "connected_slaves",
    "min_slaves_good_slaves",
    "slave0",
    "master_failover_state",
    "master_replid",
    "master_replid2",
    "master_repl_offset",
    "second_repl_offset",
    "repl_backlog_active",
    "repl_backlog_size",
    "repl_backlog_first_byte_offset",
    "repl_backlog_histlen",
]
REPLICA_FIELDS = [
    "role",
    "master_host",
    "master_port",
    "master_link_status",
    "master_last_io_seconds_ago",
    "master_sync_in_progress",
    "slave_read_repl_offset",
    "slave_repl_offset",
    "slave_priority",
    "slave_read_only",
    "replica_announced",
    "connected_slaves",
    "master_failover_state",
    "master_replid",
    "master_replid2",
    "master_repl_offset",
    "second_repl_offset",
    "repl_backlog_active",
    "repl_backlog_size",
    "repl_backlog_first_byte_offset",
    "repl_backlog_histlen",
]
DOWN_FIELDS = [*REPLICA_FIELDS[:8], "master_link_down_since_seconds", *REPLICA_FIELDS[8:]]


def _shape(fields: Mapping[str, str], ports: Mapping[int, str], o0: int) -> dict[str, str]:
    """INFO values reduced to their format: ids → <hex40>/<zeros>, ports → names, offsets
    relative to ``o0``, seconds → <int>."""
    out = {}
    for k, v in fields.items():
        if k in ("master_replid", "master_replid2"):
            out[k] = "<zeros>" if v == ZERO_ID else "<hex40>" if is_hex40(v) else v
        elif k == "master_port":
            out[k] = f"<{ports.get(int(v), v)}>"
        elif k in ("master_repl_offset", "slave_read_repl_offset", "slave_repl_offset"):
            out[k] = f"O+{int(v) - o0}"
        elif k in ("master_last_io_seconds_ago", "master_link_down_since_seconds"):
            out[k] = "<int>" if v.isdigit() else v  # "-1" stays: it has a meaning
        elif k.startswith("slave") and k[5:].isdigit():
            d = dict(item.split("=", 1) for item in v.split(","))
            d["port"] = f"<{ports.get(int(d['port']), d['port'])}>"
            d["offset"] = f"O+{int(d['offset']) - o0}"
            d["lag"] = "<int>" if d["lag"].isdigit() else d["lag"]
            out[k] = ",".join(f"{a}={b}" for a, b in d.items())
        else:
            out[k] = v
    return out


@expects(
    "§7 INFO",
    {
        "master_fields": MASTER_FIELDS,
        "replica_fields": REPLICA_FIELDS,
        "down_fields": DOWN_FIELDS,
        "master": {
            "role": "master",
            "connected_slaves": "1",
            "min_slaves_good_slaves": "1",
            "slave0": "ip=127.0.0.1,port=<R>,state=online,offset=O+0,lag=<int>",
            "master_failover_state": "no-failover",
            "master_replid": "<hex40>",
            "master_replid2": "<zeros>",
            "master_repl_offset": "O+0",
            "second_repl_offset": "-1",
            "repl_backlog_active": "1",
            "repl_backlog_size": "1048576",
            "repl_backlog_first_byte_offset": "1",
            "repl_backlog_histlen": "O+0",
        },
        "replica": {
            "role": "slave",
            "master_host": "127.0.0.1",
            "master_port": "<M>",
            "master_link_status": "up",
            "master_last_io_seconds_ago": "<int>",
            "master_sync_in_progress": "0",
            "slave_read_repl_offset": "O+0",
            "slave_repl_offset": "O+0",
            "slave_priority": "100",
            "slave_read_only": "1",
            "replica_announced": "1",
            "connected_slaves": "0",
            "master_failover_state": "no-failover",
            "master_replid": "<hex40>",
            "master_replid2": "<zeros>",
            "master_repl_offset": "O+0",
            "second_repl_offset": "-1",
            "repl_backlog_active": "1",
            "repl_backlog_size": "1048576",
            "repl_backlog_first_byte_offset": "1",
            "repl_backlog_histlen": "O+0",
        },
        "down": {
            "master_port": "<dead>",
            "master_link_status": "down",
            "master_last_io_seconds_ago": "-1",
            "master_sync_in_progress": "0",
            "slave_read_repl_offset": "O+0",
            "slave_repl_offset": "O+0",
            "master_link_down_since_seconds": "<int>",
        },
        "ids_equal": True,
    },
)
def scenario_info_replication_fields(backend: Backend) -> Observations:
    """§7: INFO replication field names, order and formats on a master (with
    min-replicas), a connected replica and a replica whose link is down (offsets fall
    back to the cached master's)."""
    m, (r,) = topology(backend, 1)
    ok(m, "CONFIG", "SET", "min-replicas-to-write", "1", "min-replicas-max-lag", "10")
    o0 = quiesce([m, r])
    ports = {**names_of(M=m, R=r), DEAD_PORT: "dead"}
    mi, ri = info(m), info(r)
    obs: Observations = {
        "master_fields": list(mi),
        "replica_fields": list(ri),
        "master": _shape(mi, ports, o0),
        "replica": _shape(ri, ports, o0),
        "ids_equal": mi["master_replid"] == ri["master_replid"],
    }
    # histlen is O since the backlog started at 1: shown relative like an offset
    obs["master"]["repl_backlog_histlen"] = f"O+{int(mi['repl_backlog_histlen']) - o0}"
    obs["replica"]["repl_backlog_histlen"] = f"O+{int(ri['repl_backlog_histlen']) - o0}"
    call(r, "REPLICAOF", HOST, DEAD_PORT)
    di = info(r)
    obs["down_fields"] = list(di)
    shaped = _shape(di, ports, o0)
    obs["down"] = {
        k: shaped[k]
        for k in (
            "master_port",
            "master_link_status",
            "master_last_io_seconds_ago",
            "master_sync_in_progress",
            "slave_read_repl_offset",
            "slave_repl_offset",
            "master_link_down_since_seconds",
        )
    }
    return obs


@expects(
    "§7 ROLE",
    {
        "master": [b"master", "O+0", [[b"127.0.0.1", b"<R>", b"O+0"]]],
        "master_replicas_listed_in_info": "2",
        "replica": [b"slave", b"127.0.0.1", "<M>", b"connected", "O+0"],
        "replica_link_down": [b"slave", b"127.0.0.1", 1, b"connect", -1],
    },
)
def scenario_role_reply_shapes(backend: Backend) -> Observations:
    """§7: ROLE of a master lists ONLINE replicas only, as bulk strings with an integer
    offset; a replica reports its state and reploff, -1 without a master client."""
    m, (r,) = topology(backend, 1)
    o0 = quiesce([m, r])
    ports = names_of(M=m, R=r)
    ok(m, "CONFIG", "SET", "repl-diskless-sync-delay", "60")
    with PseudoReplica(m, capa=("eof", "psync2")) as p:
        p.conn.send("PSYNC", "?", "-1")  # waits for a deferred fork: wait_bgsave, not in ROLE
        wait_for(lambda: len(replica_lines(info(m))) == 2, 10, "pseudo-replica listed")
        mrole = norm_ports(role(m), ports)
        listed = info(m)["connected_slaves"]

    def rel(v: Any) -> Any:
        return f"O+{v - o0}" if isinstance(v, int) else f"O+{int(v) - o0}".encode()

    mrole[1] = rel(mrole[1])
    mrole[2] = [[ip, port, rel(off)] for ip, port, off in mrole[2]]
    rrole = norm_ports(role(r), ports)
    rrole[4] = rel(rrole[4])
    call(r, "REPLICAOF", HOST, DEAD_PORT)
    # between connection attempts (a refused connect shows "connecting" only for an instant)
    down = wait_for(lambda: (x := role(r))[3] == b"connect" and x, 10, "state connect")
    return {
        "master": mrole,
        "master_replicas_listed_in_info": listed,
        "replica": rrole,
        "replica_link_down": down,
    }
