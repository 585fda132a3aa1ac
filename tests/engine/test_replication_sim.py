"""The replication engine on a virtual clock: deterministic scenarios from the spec's
catalogue (shared/docs/redis-replication.md §10), observed through INFO/ROLE exactly as a
client would, with no sleeping."""

from __future__ import annotations

from typing import Any

import pytest

from redisops.engine.cluster import Cluster
from redisops.engine.node import Node
from redisops.engine.resp import ErrorReply
from redisops.info import parse_info

FAST = {"repl-diskless-sync-delay": "0"}
QUIET = {"repl-diskless-sync-delay": "0", "repl-ping-replica-period": "3600"}


def info(c: Cluster, port: int, section: str = "replication") -> dict[str, str]:
    return parse_info(c.call(port, "INFO", section, "stats"))


def stats(c: Cluster, port: int) -> tuple[int, int, int]:
    i = info(c, port)
    return int(i["sync_full"]), int(i["sync_partial_ok"]), int(i["sync_partial_err"])


def connected(node: Node) -> bool:
    return node.repl_state.role_name == "connected"


def settle(c: Cluster, *ports: int, ms: int = 5000) -> int:
    """Run until every node has the same offset; returns it."""
    assert c.run_until(lambda: len({c.node(p).master_repl_offset for p in ports}) == 1, ms)
    return c.node(ports[0]).master_repl_offset


def star(c: Cluster, master: int, *replicas: int, config: dict[str, str] | None = None) -> None:
    c.add_node(master, dict(config or QUIET))
    for r in replicas:
        c.add_node(r, dict(config or QUIET))
    c.run(1100)  # up for a while: the start-up cron tick (which PINGs at loop 0) is behind us
    for r in replicas:
        c.replicate(r, master)


def test_fresh_master_without_replicas_does_not_advance_its_offset() -> None:
    c = Cluster()
    c.add_node(7000, QUIET)
    assert c.call(7000, "SET", "foo", "bar") == "OK"
    i = info(c, 7000)
    assert i["master_repl_offset"] == "0" and i["repl_backlog_active"] == "0"


def test_first_replica_changes_the_master_replid_and_starts_at_zero() -> None:
    c = Cluster()
    m = c.add_node(7000, QUIET)
    before = m.replid
    c.add_node(7001, QUIET)
    own = c.node(7001).replid
    c.replicate(7001, 7000)
    assert m.replid != before
    assert c.node(7001).replid == m.replid
    assert stats(c, 7000) == (1, 0, 1)  # PSYNC <own id> 1 failed (partial_err) then full
    assert own != m.replid
    i = info(c, 7001)
    assert i["master_repl_offset"] == "0" and i["repl_backlog_first_byte_offset"] == "1"
    assert i["repl_backlog_histlen"] == "0"


def test_worked_stream_is_54_bytes_select_plus_set() -> None:
    c = Cluster()
    star(c, 7000, 7001)
    c.call(7000, "SET", "foo", "bar")
    assert settle(c, 7000, 7001) == 54
    i = info(c, 7000)
    assert (i["repl_backlog_first_byte_offset"], i["repl_backlog_histlen"]) == ("1", "54")
    assert c.node(7000).backlog is not None
    assert c.node(7000).backlog.read_from(1) == (
        b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$3\r\nfoo\r\n$3\r\nbar\r\n"
    )


@pytest.mark.parametrize(
    ("commands", "delta"),
    [
        ([["MULTI"], ["SET", "foo", "bar"], ["EXEC"]], 31),
        ([["MULTI"], ["SET", "foo", "bar"], ["SET", "foo", "baz"], ["EXEC"]], 15 + 31 + 31 + 14),
        ([["MULTI"], ["GET", "foo"], ["EXEC"]], 0),
        ([["DEL", "missing"]], 0),
    ],
)
def test_transactions_wrap_only_more_than_one_write(commands: list[list[str]], delta: int) -> None:
    c = Cluster()
    star(c, 7000, 7001)
    c.call(7000, "SET", "warm", "x")  # SELECT already emitted
    base = settle(c, 7000, 7001)
    cl = c.client(7000)
    for cmd in commands:
        cl.call(*cmd)
    assert settle(c, 7000, 7001) - base == delta


def test_pings_every_period_move_offsets_by_14_bytes() -> None:
    c = Cluster()
    star(c, 7000, 7001, config={"repl-diskless-sync-delay": "0", "repl-ping-replica-period": "1"})
    base = settle(c, 7000, 7001)
    c.run(3000)
    moved = settle(c, 7000, 7001) - base
    assert moved > 0 and moved % 14 == 0


def test_psync_boundaries_follow_the_acceptance_rule() -> None:
    c = Cluster()
    star(c, 7000, 7001)
    c.call(7000, "SET", "k", "x" * 480)  # 23 + 4+9+7+... : make the master reach a known offset
    end = settle(c, 7000, 7001)
    replid = c.node(7000).replid
    results: dict[int, str] = {}
    for off in (0, 1, 2, end + 1, end + 2):
        cl = c.client(7000)
        cl.send("REPLCONF", "capa", "psync2")
        cl.send("PSYNC", replid, off)
        assert c.run_until(lambda cl=cl: cl.raw.count(b"\r\n") >= 2, 2000)
        results[off] = bytes(cl.raw).split(b"\r\n")[1].split()[0].decode().lstrip("+")
        cl.close()
        c.run(10)
    assert results[0] == "FULLRESYNC"
    assert results[1] == results[2] == results[end + 1] == "CONTINUE"
    assert results[end + 2] == "FULLRESYNC"


def test_psync_upper_case_replid_is_accepted_and_garbage_offset_is_an_error() -> None:
    c = Cluster()
    star(c, 7000, 7001)
    cl = c.client(7000)
    assert cl.call("PSYNC", c.node(7000).replid, "1.1") == ErrorReply(
        "ERR value is not an integer or out of range"
    )
    cl2 = c.client(7000)
    cl2.send("PSYNC", c.node(7000).replid.upper(), 1)
    assert c.run_until(lambda: len(cl2.replies) >= 1, 2000)
    assert str(cl2.replies[0]).startswith("CONTINUE")


def test_reconnect_inside_the_backlog_is_partial_and_counted_on_the_master() -> None:
    c = Cluster()
    star(c, 7000, 7001)
    c.call(7000, "SET", "a", "1")
    settle(c, 7000, 7001)
    before = stats(c, 7000)
    c.disconnect(7000, 7001)
    c.call(7000, "SET", "b", "2")
    assert c.run_until(lambda: connected(c.node(7001)) and c.in_sync(7000, 7001), 5000)
    after = stats(c, 7000)
    assert after[1] - before[1] == 1 and after[0] == before[0]
    assert c.call(7001, "GET", "b") == "2"


def test_backlog_overrun_forces_a_full_resync() -> None:
    c = Cluster()
    star(
        c,
        7000,
        7001,
        config={
            "repl-diskless-sync-delay": "0",
            "repl-ping-replica-period": "3600",
            "repl-backlog-size": "16384",
        },
    )
    settle(c, 7000, 7001)
    c.pause(7001)  # frozen: it cannot reconnect while the master writes
    c.disconnect(7000, 7001)  # the master drops it: nothing pins the backlog any more
    for i in range(400):
        c.call(7000, "SET", f"k{i}", "v" * 200)  # ~90 KB through a 16 KB backlog
    before = stats(c, 7000)
    c.resume(7001)
    assert c.run_until(lambda: connected(c.node(7001)) and c.in_sync(7000, 7001), 20_000)
    after = stats(c, 7000)
    assert after[0] - before[0] == 1  # full
    assert after[2] - before[2] == 1  # partial refused: offset before the backlog


def test_promotion_shifts_ids_and_siblings_continue_partially() -> None:
    c = Cluster()
    star(c, 7000, 7001, 7002)
    c.call(7000, "SET", "a", "1")
    x = settle(c, 7000, 7001, 7002)
    old = c.node(7001).replid
    assert c.call(7001, "REPLICAOF", "NO", "ONE") == "OK"
    r1 = info(c, 7001)
    assert (
        r1["role"] == "master"
        and r1["master_replid2"] == old
        and r1["second_repl_offset"] == str(x + 1)
    )
    assert r1["master_replid"] != old
    before = stats(c, 7001)
    c.call(7002, "REPLICAOF", "127.0.0.1", 7001)
    c.call(7000, "REPLICAOF", "127.0.0.1", 7001)
    assert c.run_until(lambda: connected(c.node(7002)) and connected(c.node(7000)), 5000)
    after = stats(c, 7001)
    assert after[1] - before[1] == 2 and after[0] == before[0]
    # the old master adopted the new history; its old id is now its replid2
    m = info(c, 7000)
    assert m["master_replid"] == r1["master_replid"] and m["master_replid2"] == old


def test_promoted_node_put_back_under_the_old_master_needs_a_full_sync() -> None:
    c = Cluster()
    star(c, 7000, 7001)
    c.call(7000, "SET", "a", "1")
    settle(c, 7000, 7001)
    c.call(7001, "REPLICAOF", "NO", "ONE")
    before = stats(c, 7000)
    c.replicate(7001, 7000)
    assert stats(c, 7000)[0] - before[0] == 1


def test_old_master_ahead_of_the_promotion_point_needs_a_full_sync() -> None:
    """The "missing PING" hazard: the master PINGs after the replica stopped hearing it."""
    c = Cluster()
    star(c, 7000, 7001, config={"repl-diskless-sync-delay": "0", "repl-ping-replica-period": "1"})
    settle(c, 7000, 7001)
    c.partition(7000, 7001)
    c.run(3000)  # the master keeps PINGing into the void: it moves ahead
    c.call(7001, "REPLICAOF", "NO", "ONE")
    c.partition(7000, 7001, on=False)
    assert c.node(7000).master_repl_offset + 1 > c.node(7001).second_repl_offset
    before = stats(c, 7001)
    c.replicate(7000, 7001)
    assert stats(c, 7001)[0] - before[0] == 1
    assert settle(c, 7000, 7001) == c.node(7001).master_repl_offset


def test_chained_replicas_forward_the_stream_verbatim() -> None:
    c = Cluster()
    c.add_node(7000, QUIET)
    c.add_node(7001, QUIET)
    c.add_node(7002, QUIET)
    c.replicate(7001, 7000)
    c.replicate(7002, 7001)
    for _ in range(50):
        c.call(7000, "INCR", "n")
    off = settle(c, 7000, 7001, 7002)
    assert off > 0
    assert c.node(7002).backlog is not None and c.node(7000).backlog is not None
    assert c.node(7002).backlog.read_from(c.node(7002).backlog.first) == c.node(
        7000
    ).backlog.read_from(c.node(7002).backlog.first)
    assert c.call(7002, "GET", "n") == "50"
    assert stats(c, 7001)[0] == 1  # the sub-replica full-synced from the chained replica


def test_master_restart_with_persisted_replication_info_is_partial() -> None:
    c = Cluster()
    star(c, 7000, 7001)
    c.call(7000, "SET", "a", "1")
    x = settle(c, 7000, 7001)
    old = c.node(7000).replid
    c.restart(7000, save=True)
    m = info(c, 7000)
    assert (
        m["master_replid2"] == old
        and m["master_repl_offset"] == str(x)
        and m["second_repl_offset"] == str(x + 1)
    )
    assert c.run_until(lambda: connected(c.node(7001)), 10_000)
    full, partial, _ = stats(c, 7000)
    assert (full, partial) == (0, 1)
    assert c.call(7001, "GET", "a") == "1"


def test_replica_restart_from_its_rdb_is_partial() -> None:
    c = Cluster()
    star(c, 7000, 7001)
    c.call(7000, "SET", "a", "1")
    settle(c, 7000, 7001)
    before = stats(c, 7000)
    c.configs[7001]["replicaof"] = "127.0.0.1 7000"  # its config file says so (CONFIG REWRITE)
    c.restart(7001, save=True)
    assert c.run_until(lambda: connected(c.node(7001)), 10_000)
    after = stats(c, 7000)
    assert after[1] - before[1] == 1 and after[0] == before[0]


def test_backlog_ttl_frees_the_backlog_and_changes_the_replid() -> None:
    c = Cluster()
    star(
        c,
        7000,
        7001,
        config={
            "repl-diskless-sync-delay": "0",
            "repl-ping-replica-period": "3600",
            "repl-backlog-ttl": "1",
        },
    )
    settle(c, 7000, 7001)
    old = c.node(7000).replid
    c.kill(7001)
    c.run(4000)
    m = info(c, 7000)
    assert m["repl_backlog_active"] == "0" and m["master_replid"] != old
    assert m["master_replid2"] == "0" * 40


def test_min_replicas_refuse_writes_without_enough_good_replicas() -> None:
    c = Cluster()
    star(c, 7000, 7001)
    c.run(1500)  # an ACK arrives
    c.call(7000, "CONFIG", "SET", "min-replicas-to-write", "1")
    assert c.call(7000, "SET", "a", "1") == "OK"
    c.call(7000, "CONFIG", "SET", "min-replicas-to-write", "2")
    assert c.call(7000, "SET", "a", "1") == ErrorReply(
        "NOREPLICAS Not enough good replicas to write."
    )
    assert "min_slaves_good_slaves:1" in c.call(7000, "INFO", "replication")


def test_replica_refuses_writes_and_serves_stale_reads_per_config() -> None:
    c = Cluster()
    star(c, 7000, 7001)
    assert c.call(7001, "SET", "a", "1") == ErrorReply(
        "READONLY You can't write against a read only replica."
    )
    c.kill(7000)
    c.run(100)
    c.call(7001, "CONFIG", "SET", "replica-serve-stale-data", "no")
    assert c.call(7001, "GET", "a") == ErrorReply(
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
    )
    assert c.call(7001, "SET", "a", "1") == ErrorReply(
        "READONLY You can't write against a read only replica."
    )
    assert "role:slave" in c.call(7001, "INFO", "replication")


@pytest.mark.parametrize(
    ("args", "reply"),
    [
        (["REPLICAOF", "127.0.0.1"], "ERR wrong number of arguments for 'replicaof' command"),
        (["REPLICAOF", "127.0.0.1", "abc"], "ERR Invalid master port"),
        (["REPLICAOF", "127.0.0.1", "70000"], "ERR Invalid master port"),
        (["REPLICAOF", "no", "one"], "OK"),
        (["REPLICAOF", "127.0.0.1", "7000"], "OK Already connected to specified master"),
    ],
)
def test_replicaof_replies(args: list[str], reply: str) -> None:
    c = Cluster()
    star(c, 7000, 7001)
    c.kill(7000) if args[-1] == "7000" and False else None
    assert str(c.call(7001, *args)) == reply


def test_role_reply_shapes() -> None:
    c = Cluster()
    star(c, 7000, 7001)
    c.call(7000, "SET", "a", "1")
    settle(c, 7000, 7001)
    c.run(1100)  # ACKs
    role_m = c.call(7000, "ROLE")
    assert role_m[0] == "master" and isinstance(role_m[1], int)
    assert role_m[2] == [["127.0.0.1", "7001", str(role_m[1])]]
    role_r = c.call(7001, "ROLE")
    assert role_r == ["slave", "127.0.0.1", 7000, "connected", role_m[1]]


def test_diskless_delay_batches_replicas_into_one_fork() -> None:
    c = Cluster()
    c.add_node(7000, {"repl-diskless-sync-delay": "2", "repl-ping-replica-period": "3600"})
    for p in (7001, 7002, 7003):
        c.add_node(p, QUIET)
        c.call(p, "REPLICAOF", "127.0.0.1", 7000)
    c.run(500)
    assert c.call(7001, "ROLE")[3] == "handshake"
    forks = c.node(7000).stats["total_forks"]
    assert c.run_until(lambda: all(connected(c.node(p)) for p in (7001, 7002, 7003)), 10_000)
    assert c.node(7000).stats["total_forks"] - forks == 1
    assert stats(c, 7000)[0] == 3


def test_output_buffer_limit_drops_a_slow_replica_during_full_sync() -> None:
    c = Cluster()
    c.add_node(
        7000,
        {
            "repl-diskless-sync-delay": "0",
            "repl-ping-replica-period": "3600",
            "client-output-buffer-limit": "replica 1mb 256kb 2",
        },
    )
    c.add_node(7001, QUIET)
    c.call(7000, "DEBUG", "POPULATE", "1") if False else None
    for i in range(2000):
        c.call(7000, "SET", f"k{i}", "v" * 500)  # ~1 MB dataset: transfer takes ~10 s at 100 kB/s
    c.set_bandwidth(7000, 7001, 100_000)
    c.call(7001, "REPLICAOF", "127.0.0.1", 7000)
    c.run(200)
    cl = c.client(7000)
    for i in range(3000):  # ~1.5 MB of writes while the RDB is in flight
        cl.send("SET", f"w{i}", "x" * 500)
    c.run(5000)
    assert c.node(7000).stats["client_output_buffer_limit_disconnections"] >= 1


def test_replica_times_out_a_silent_master_and_resumes_partially() -> None:
    c = Cluster()
    star(
        c,
        7000,
        7001,
        config={
            "repl-diskless-sync-delay": "0",
            "repl-ping-replica-period": "1",
            "repl-timeout": "3",
        },
    )
    c.call(7000, "SET", "a", "1")
    settle(c, 7000, 7001)
    before = stats(c, 7000)
    c.partition(7000, 7001)
    c.run(5000)
    assert c.node(7001).repl_state.role_name != "connected"
    c.partition(7000, 7001, on=False)
    assert c.run_until(lambda: connected(c.node(7001)) and c.in_sync(7000, 7001), 10_000)
    after = stats(c, 7000)
    assert after[0] == before[0] and after[1] - before[1] >= 1


def test_blocked_client_is_unblocked_when_its_node_becomes_a_replica() -> None:
    c = Cluster()
    c.add_node(7000, QUIET)
    c.add_node(7001, QUIET)
    blocked = c.client(7001)
    blocked.send("BLPOP", "foo", "0")
    c.run(10)
    c.call(7001, "REPLICAOF", "127.0.0.1", 7000)
    assert c.run_until(lambda: bool(blocked.replies), 1000)
    assert str(blocked.replies[0]).startswith("UNBLOCKED force unblock from blocking operation")


def test_wait_requests_an_ack_and_counts_replicas() -> None:
    c = Cluster()
    star(c, 7000, 7001)
    cl = c.client(7000)
    cl.call("SET", "a", "1")
    before = c.node(7000).master_repl_offset
    assert cl.call("WAIT", 1, 1000) == 1
    assert c.node(7000).master_repl_offset - before == 37  # REPLCONF GETACK *


def test_failover_command_promotes_the_target_and_demotes_itself() -> None:
    c = Cluster()
    star(c, 7000, 7001, 7002)
    c.call(7000, "SET", "a", "1")
    settle(c, 7000, 7001, 7002)
    c.run(1100)
    assert c.call(7000, "FAILOVER", "TO", "127.0.0.1", 7001, "TIMEOUT", 5000) == "OK"
    assert c.run_until(
        lambda: (
            c.node(7000).failover.info_name == "no-failover"
            and c.node(7000).master_host is not None
        ),
        10_000,
    )
    assert c.node(7001).master_host is None
    assert c.node(7000).master_port == 7001
    c.call(7002, "REPLICAOF", "127.0.0.1", 7001)
    assert c.run_until(lambda: connected(c.node(7002)) and connected(c.node(7000)), 5000)
    full, partial, _ = stats(c, 7001)
    assert full == 0 and partial == 2


@pytest.mark.parametrize(
    ("setup", "args", "error"),
    [
        ("none", ["FAILOVER"], "ERR FAILOVER requires connected replicas."),
        ("replica", ["FAILOVER"], "ERR FAILOVER is not valid when server is a replica."),
        (
            "star",
            ["FAILOVER", "FORCE"],
            "ERR FAILOVER with force option requires both a timeout and target HOST and IP.",
        ),
        ("star", ["FAILOVER", "ABORT"], "ERR No failover in progress."),
        (
            "star",
            ["FAILOVER", "TO", "127.0.0.1", "9"],
            "ERR FAILOVER target HOST and PORT is not a replica.",
        ),
    ],
)
def test_failover_command_errors(setup: str, args: list[Any], error: str) -> None:
    c = Cluster()
    if setup == "none":
        c.add_node(7000, QUIET)
        port = 7000
    else:
        star(c, 7000, 7001)
        port = 7001 if setup == "replica" else 7000
    assert c.call(port, *args) == ErrorReply(error)


def test_failover_without_force_aborts_on_timeout_and_keeps_the_master() -> None:
    c = Cluster()
    star(c, 7000, 7001)
    c.run(1100)
    replid = c.node(7000).replid
    c.pause(7001)
    c.call(7000, "SET", "a", "1")
    assert c.call(7000, "FAILOVER", "TO", "127.0.0.1", 7001, "TIMEOUT", 500) == "OK"
    c.run(1000)
    assert c.node(7000).master_host is None and c.node(7000).failover.info_name == "no-failover"
    assert c.node(7000).replid == replid
    assert c.call(7000, "SET", "b", "2") == "OK"  # writes are unpaused


def test_a_replica_dropped_by_its_master_reconnects_at_once_not_on_the_next_cron() -> None:
    """Redis 7.0 calls connectWithMaster() as soon as the master link is lost ("Reconnecting
    to MASTER" right after "Connection with master lost"; measured: 3 ms on redis-server
    7.0.15). So the sub-replica that REPLICAOF NO ONE drops is back, partially, before any
    virtual time passes."""
    c = Cluster()
    star(c, 7000, 7001)
    c.add_node(7002, dict(QUIET))
    c.replicate(7002, 7001)
    assert c.call(7000, "SET", "k", "v") == "OK"
    settle(c, 7000, 7001, 7002)
    t0 = c.sched.now_ms()
    assert c.call(7001, "REPLICAOF", "NO", "ONE") == "OK"
    sub = c.node(7002)
    assert c.run_until(lambda: connected(sub) and sub.replid == c.node(7001).replid, 0)
    assert c.sched.now_ms() == t0  # no cron tick needed
    assert stats(c, 7001)[1] >= 1  # it continued partially
