"""Safety regressions of issue 9, on real redis-server processes.

1. concurrent failovers: the lock is the replication group; plans are rebuilt under it
2. ``failover --auto`` never loses what a replica acknowledged without --accept-data-loss
3. SIGINT during the switchover's write pause rolls back at once
4. Sentinels, cluster-mode nodes and other services are refused as masters or replicas
5. a replica announcing another address is matched by identity, or the run exits 8
6. hardened nodes (``rename-command CONFIG``)

Commands run as real ``python -m redisops`` processes where the behaviour needs one (two
at once, a signal); the test hooks (``REDISOPS_TEST_HOLD``, see redisops/testhooks.py) hold
a process at a named point so the test can act there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.harness import (
    FAST_SYNC,
    RedisFactory,
    RedisProc,
    free_port,
    replicate,
    star,
    wait_in_sync,
    wait_link_up,
    wait_until,
)
from tests.integration.ops_helpers import (
    final_state,
    invoke,
    invoke_json,
    master_of,
    role_of,
    sync_counters,
)
from tests.integration.sentinel_harness import SentinelSet

pytestmark = pytest.mark.redis_server


class Cli:
    """``python -m redisops`` as a separate process, optionally held at a test hook."""

    def __init__(self, env: dict[str, str], holds: Path) -> None:
        self.env = {**os.environ, **env}
        self.holds = holds
        holds.mkdir(parents=True, exist_ok=True)

    def start(self, *args: str, hold: str | None = None, tag: str = "") -> subprocess.Popen[str]:
        env = dict(self.env)
        if hold:
            where = self.holds / (tag or hold)
            where.mkdir(parents=True, exist_ok=True)
            env.update({"REDISOPS_TEST_HOLD": hold, "REDISOPS_TEST_HOLD_DIR": str(where)})
        return subprocess.Popen(
            [sys.executable, "-m", "redisops", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def reached(self, hold: str, tag: str = "", timeout: float = 30.0) -> bool:
        marker = self.holds / (tag or hold) / f"{hold}.reached"
        try:
            wait_until(marker.exists, timeout, what=f"{hold} reached")
        except AssertionError:
            return False
        return True

    def release(self, hold: str, tag: str = "") -> None:
        (self.holds / (tag or hold) / f"{hold}.release").write_text("go")


def finish(proc: subprocess.Popen[str], timeout: float = 90.0) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


@pytest.fixture
def cli(env: dict[str, str], tmp_path: Path) -> Cli:
    return Cli(env, tmp_path / "holds")


def masters_among(*nodes: RedisProc) -> list[str]:
    return [n.address for n in nodes if n.alive and role_of(n) == "master"]


def dead_master_with_two_replicas(factory: RedisFactory) -> tuple[RedisProc, RedisProc, RedisProc]:
    m, a, b = star(factory, 2, FAST_SYNC)
    for i in range(20):
        m.client().set(f"k{i}", i)
    wait_in_sync(m, [a, b])
    m.kill()
    return m, a, b


# ----------------------------------------------------------------------------- 1. lock identity


def test_two_concurrent_failovers_seeded_with_different_replicas_leave_exactly_one_master(
    redis_factory: RedisFactory, cli: Cli
) -> None:
    """Seeded with different replicas, the two runs share only the dead master: the lock
    is the group, so the second one is refused while the first holds it."""
    m, a, b = dead_master_with_two_replicas(redis_factory)
    first = cli.start(
        "failover", "--master", m.address, a.address, "--to", a.address, "--yes", hold="locked"
    )
    try:
        cli.reached("locked")
        second = cli.start("failover", "--master", m.address, b.address, "--to", b.address, "--yes")
        code2, _, err2 = finish(second)
    finally:
        cli.release("locked")
    code1, _, err1 = finish(first)
    assert sorted([code1, code2]) == [0, 6], (err1, err2)
    assert "is locked by" in err2 and "failover" in err2
    assert masters_among(a, b) == [a.address]
    assert master_of(b) == m.address  # untouched by the refused run


def test_a_failover_approved_before_another_one_ran_is_rebuilt_under_the_lock_and_refused(
    redis_factory: RedisFactory, cli: Cli
) -> None:
    """The second run's plan was approved while the master was still to be failed over; by
    the time it holds the lock the first run promoted another replica. It reads the group
    again, finds a master, and changes nothing."""
    m, a, b = dead_master_with_two_replicas(redis_factory)
    late = cli.start(
        "failover",
        "--master",
        m.address,
        b.address,
        a.address,
        "--to",
        b.address,
        "--yes",
        hold="approved",
    )
    try:
        cli.reached("approved")
        early = cli.start(
            "failover", "--master", m.address, a.address, b.address, "--to", a.address, "--yes"
        )
        code_early, _, err_early = finish(early)
    finally:
        cli.release("approved")
    code_late, _, err_late = finish(late)
    assert code_early == 0, err_early
    assert code_late == 5, err_late
    assert "the cluster changed after the plan was made" in err_late
    assert f"{a.address} is already a master in this group" in err_late
    assert masters_among(a, b) == [a.address]
    assert master_of(b) == a.address
    # and a run started afterwards is refused before it plans anything
    again = invoke(
        cli.env, "failover", "--master", m.address, b.address, a.address, "--to", b.address, "--yes"
    )
    assert again.exit_code == 5
    assert "already failed over" in again.stderr


def test_a_dead_master_named_by_its_hostname_is_the_one_its_replicas_name(
    redis_factory: RedisFactory, env: dict[str, str], cli: Cli
) -> None:
    m, a, b = dead_master_with_two_replicas(redis_factory)
    host = f"localhost:{m.port}"
    code, doc, result = invoke_json(
        env, "failover", "--master", host, a.address, b.address, "--auto", "--dry-run"
    )
    assert code == 0, result.stderr
    assert {c["address"] for c in doc["prediction"]["candidates"]} == {a.address, b.address}
    # and it is the same lock: a run holding it under one spelling stops the other
    first = cli.start(
        "failover", "--master", m.address, a.address, "--to", a.address, "--yes", hold="locked"
    )
    try:
        cli.reached("locked")
        second = invoke(env, "failover", "--master", host, b.address, "--to", b.address, "--yes")
    finally:
        cli.release("locked")
    assert finish(first)[0] == 0
    assert second.exit_code == 6, second.stderr
    assert masters_among(a, b) == [a.address]


# ----------------------------------------------------------------------------- 2. no silent loss


def test_auto_failover_catches_the_preferred_replica_up_before_promoting_it(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    """The issue's scenario: B (replica-priority 10) is stopped while 30 x 1 MB keys are
    written; the master dies. Sentinel's rule picks B, which lacks 27+ MB: it catches up
    from A first, and every acknowledged key survives on every node."""
    m = redis_factory.start(FAST_SYNC)
    a = redis_factory.start(FAST_SYNC)
    b = redis_factory.start({**FAST_SYNC, "replica-priority": "10"})
    for r in (a, b):
        replicate(r, m)
    wait_in_sync(m, [a, b])
    b.pause()
    client = m.client()
    for i in range(30):
        client.set(f"big{i}", os.urandom(1024 * 1024))  # acknowledged by the master
    wait_in_sync(m, [a])
    m.kill()
    b.resume()
    wait_until(lambda: b.info()["master_link_status"] == "down", 10, what="b sees the loss")
    a_off, b_off = int(a.info()["slave_repl_offset"]), int(b.info()["slave_repl_offset"])
    assert a_off - b_off > 20 * 1024 * 1024

    code, doc, result = invoke_json(
        env, "failover", "--master", m.address, a.address, b.address, "--auto", "--dry-run"
    )
    assert code == 0, result.stderr
    cands = {c["address"]: c for c in doc["prediction"]["candidates"]}
    assert doc["prediction"]["chosen"] == b.address
    # the reason is true: the lowest priority, and how far behind A it is
    assert cands[b.address]["reason"] == (
        f"lowest priority 10, offset {b_off}: {a_off - b_off} bytes behind {a.address}, which "
        f"it catches up from before it is promoted"
    )
    assert "highest offset" not in cands[b.address]["reason"]
    assert doc["prediction"]["catch_up"] == {"from": a.address, "bytes": a_off - b_off}
    assert doc["prediction"]["writes_lost"] == []

    code, doc, result = invoke_json(
        env, "failover", "--master", m.address, a.address, b.address, "--auto", "--yes"
    )
    assert code == 0, result.stderr
    assert role_of(b) == "master" and master_of(a) == b.address
    wait_in_sync(b, [a])
    for node in (a, b):
        assert sorted(node.client().keys("big*")) == sorted(f"big{i}" for i in range(30))


def test_diverged_histories_need_accept_data_loss_and_the_headline_counts_the_loss(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    """The master restarted empty (no persistence) while B was stopped: A full-synced the
    empty dataset and got new writes, B kept the old history. Whichever is promoted, the
    other's data is gone: no loss-free path, so the plan refuses without the flag."""
    m, a, b = star(redis_factory, 2, FAST_SYNC)
    for i in range(40):
        m.client().set(f"old{i}", i)
    wait_in_sync(m, [a, b])
    b.pause()
    m.restart()  # save "": it comes back empty with a new replication id
    wait_in_sync(m, [a])
    for i in range(5):
        m.client().set(f"new{i}", i)
    wait_in_sync(m, [a])
    m.kill()
    b.resume()
    wait_until(lambda: b.info()["master_link_status"] == "down", 10, what="b sees the loss")
    seeds = (a.address, b.address)
    code, doc, result = invoke_json(
        env, "failover", "--master", m.address, *seeds, "--to", a.address, "--yes"
    )
    assert code == 5, result.stderr
    assert f"no loss-free path: promoting {a.address} discards" in result.stderr
    assert "--accept-data-loss" in result.stderr
    assert f"LOSES a diverged history (about 35 keys) on {b.address}" in doc["summary"]
    assert role_of(a) == role_of(b) == "slave"  # nothing touched

    code, doc, result = invoke_json(
        env,
        "failover",
        "--master",
        m.address,
        *seeds,
        "--to",
        a.address,
        "--yes",
        "--accept-data-loss",
    )
    assert code == 0, result.stderr
    wait_in_sync(a, [b])
    assert b.client().get("old0") is None and b.client().get("new0") == "0"


# ----------------------------------------------------------------------------- 3. interrupts


def test_sigint_during_the_write_pause_unpauses_at_once_and_restores_the_ping_period(
    redis_factory: RedisFactory, cli: Cli
) -> None:
    m, target, other = star(redis_factory, 2, FAST_SYNC)
    wait_in_sync(m, [target, other])
    run = cli.start(
        "switchover",
        "--to",
        target.address,
        "--master",
        m.address,
        "--timeout-ms",
        "60000",  # the pause would last a minute if nobody lifted it
        "--yes",
        hold="switch-paused",
    )
    try:
        assert cli.reached("switch-paused"), run.communicate(timeout=5)
        period = m.client().config_get("repl-ping-replica-period")["repl-ping-replica-period"]
        assert period == "2147483647"  # frozen for the switch
        run.send_signal(signal.SIGINT)
        code, out, err = finish(run, timeout=30)
    finally:
        cli.release("switch-paused")
    assert code == 7, err  # the failure path: rolled back, not a bare "interrupted"
    assert "interrupted by SIGINT" in err and "rolled back" in err
    # writes are accepted at once: a SET does not wait for the 60 s pause to run out
    with m.client(socket_timeout=10) as c:
        assert c.set("after-interrupt", "1")
    assert m.client().config_get("repl-ping-replica-period")["repl-ping-replica-period"] == "10"
    assert role_of(m) == "master" and master_of(target) == m.address
    assert "State now:" in out and f"{target.address}: replica of {m.address}" in out


def test_status_reports_a_frozen_ping_period_and_a_switchover_never_keeps_it(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    m, target = star(redis_factory, 1, FAST_SYNC)
    m.client().config_set("repl-ping-replica-period", "2147483647")  # left by an old run
    code, doc, _ = invoke_json(env, "status", m.address)
    assert code == 4
    assert "ping_period_frozen" in [p["kind"] for p in doc["problems"]]
    code, doc, result = invoke_json(env, "switchover", "--to", target.address, "--yes")
    assert code == 0, result.stderr
    assert any(f["code"] == "ping_period_frozen" for f in doc["findings"])
    period = m.client().config_get("repl-ping-replica-period")["repl-ping-replica-period"]
    assert period == "10"


# ----------------------------------------------------------------------------- 4. not Redis data


@pytest.fixture
def http_server() -> Iterator[str]:
    """A plain HTTP server on a loopback port: something that is not Redis."""
    import http.server

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_sentinel_is_refused_as_master_and_as_replica_and_labelled_by_status(
    redis_factory: RedisFactory, env: dict[str, str], tmp_path: Path
) -> None:
    m, r = star(redis_factory, 1, FAST_SYNC)
    sentinels = SentinelSet(tmp_path / "sentinels", m.port, count=1, quorum=1)
    try:
        sentinels.wait_ready(replicas=1)
        s = sentinels.addresses[0]
        as_master = invoke(env, "attach", r.address, "--to", s, "--yes", "--force")
        assert as_master.exit_code == 5, as_master.stderr
        assert f"master {s} is a Redis Sentinel, not a data node" in as_master.stderr
        assert master_of(r) == m.address and r.info()["master_link_status"] == "up"
        as_replica = invoke(env, "attach", s, "--to", m.address, "--dry-run", "--force")
        assert as_replica.exit_code == 5, as_replica.stderr
        assert "Traceback" not in as_replica.stderr and "AssertionError" not in as_replica.stderr
        assert f"replica {s} is a Redis Sentinel" in as_replica.stderr
        _, doc, _ = invoke_json(env, "status", s)
        assert [n["role"] for n in doc["nodes"]] == ["sentinel"]
        assert [p["kind"] for p in doc["problems"]] == ["sentinel_seed"]
    finally:
        sentinels.close()


def test_a_cluster_mode_node_and_a_non_redis_port_are_refused_with_exit_5(
    redis_factory: RedisFactory, env: dict[str, str], http_server: str, tmp_path: Path
) -> None:
    m, r = star(redis_factory, 1, FAST_SYNC)
    clustered = redis_factory.start(
        {"cluster-enabled": "yes", "cluster-config-file": str(tmp_path / "nodes.conf")}
    )
    run = invoke(env, "attach", r.address, "--to", clustered.address, "--yes")
    assert run.exit_code == 5, run.stderr
    assert "runs in cluster mode (cluster_enabled:1)" in run.stderr
    run = invoke(env, "attach", r.address, "--to", http_server, "--yes")
    assert run.exit_code == 5, run.stderr
    assert (
        f"master {http_server} is not a Redis server (an HTTP server answers there)" in run.stderr
    )
    run = invoke(env, "switchover", "--to", r.address, "--master", http_server, "--yes")
    assert run.exit_code == 5, run.stderr
    assert master_of(r) == m.address


def test_a_lock_key_the_operator_may_not_write_stops_the_operation(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    m = redis_factory.start(FAST_SYNC)
    fresh = redis_factory.start(FAST_SYNC)
    for node in (m, fresh):  # an operator account that may not write redisops:* keys
        node.client().acl_setuser(
            "ops", enabled=True, passwords=["+pw"], keys=["~app:*"], commands=["+@all"]
        )
        node.client().acl_setuser("default", enabled=False)
        node.password = None
    auth = {**env, "REDISCLI_AUTH": "pw"}
    run = invoke(
        auth, "attach", fresh.address, "--to", m.address, "--yes", "--user", "ops", "--sample", "0"
    )
    assert run.exit_code == 5, run.stderr
    assert "cannot take the cluster lock" in run.stderr and "no permissions" in run.stderr
    with redis.Redis(port=fresh.port, username="ops", password="pw", decode_responses=True) as c:
        assert c.info("replication")["role"] == "master"  # nothing was changed


# ----------------------------------------------------------------------------- 5. identity


def test_a_replica_announcing_another_port_is_moved_by_identity_or_the_run_exits_8(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    m, target = star(redis_factory, 1, FAST_SYNC)
    ghost = free_port()  # what it announces; nothing listens there
    nat = redis_factory.start({**FAST_SYNC, "replica-announce-port": str(ghost)})
    replicate(nat, m)
    wait_link_up(nat)
    wait_in_sync(m, [target, nat])
    listed = [v for k, v in m.info().items() if k.startswith("slave")]
    assert ghost in [v["port"] for v in listed]  # the master knows it only by that port

    # seeded with its real address: it is that replica, and it is moved
    code, doc, result = invoke_json(
        env, "switchover", "--to", target.address, "--master", m.address, nat.address, "--yes"
    )
    assert code == 0, result.stderr
    assert master_of(nat) == target.address
    assert final_state(doc["result"])[nat.address]["master"] == target.address
    assert not any(f["code"] == "replica_unreachable" for f in doc["findings"])

    # without it, it cannot be reached: not moved, so exit 8, and named in the final state
    code, doc, result = invoke_json(
        env, "switchover", "--to", m.address, "--master", target.address, "--yes"
    )
    assert code == 8, result.stderr
    state = final_state(doc["result"])
    assert state[f"127.0.0.1:{ghost}"]["reachable"] is False
    assert f"could not repoint 1 replica(s): 127.0.0.1:{ghost}" in result.stderr
    assert role_of(m) == "master" and master_of(target) == m.address


# ----------------------------------------------------------------------------- 6. hardened nodes


class HardenedProc(RedisProc):
    """A redis-server whose config file renames CONFIG (``rename-command`` has two
    arguments, which the command line cannot pass as one option)."""

    rename = '""'

    def argv(self) -> list[str]:
        args = super().argv()
        conf = self.dir / "redis.conf"
        conf.write_text(f"rename-command CONFIG {self.rename}\n")
        return [args[0], str(conf), *args[1:]]


def _hardened(factory: RedisFactory, rename: str) -> list[RedisProc]:
    nodes = []
    for _ in range(3):
        port = free_port()
        proc = HardenedProc(factory, port, FAST_SYNC, f"hardened{len(factory.procs)}-{port}")
        proc.rename = rename
        factory.procs.append(proc)
        nodes.append(proc.start())
    for r in nodes[1:]:
        replicate(r, nodes[0])
    wait_in_sync(nodes[0], nodes[1:])
    return nodes


def test_a_switchover_on_nodes_without_config_is_clean_and_says_what_cannot_run(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    m, target, other = _hardened(redis_factory, '""')
    code, doc, result = invoke_json(env, "switchover", "--to", target.address, "--dry-run")
    assert code == 0, result.stderr
    notes = [f["message"] for f in doc["findings"] if f["code"] == "config_unavailable"]
    assert notes and "PINGs cannot be frozen" in notes[0]
    assert not any((s["command"] or [""])[0] == "CONFIG" for s in doc["steps"])
    # CONFIG REWRITE cannot run, but each node's config file is on this machine: --persist
    # is planned anyway, and edits the files itself (the SSH layer's fallback, docs/ssh.md);
    # it is refused only where no file can be edited (tests/unit/test_ssh_settings.py)
    code, doc, result = invoke_json(
        env, "switchover", "--to", target.address, "--persist", "--dry-run"
    )
    assert code == 0, result.stderr
    assert not any(f["code"] == "persist_unavailable" for f in doc["findings"])
    full_before = [sync_counters(n)[0] for n in (m, target, other)]
    code, doc, result = invoke_json(env, "switchover", "--to", target.address, "--yes")
    assert code == 0, result.stderr  # nothing it never changed is "restored"
    assert role_of(target) == "master" and master_of(m) == target.address
    assert [sync_counters(n)[0] for n in (m, target, other)] == full_before
    attach = invoke(env, "attach", m.address, "--to", other.address, "--dry-run", "--sample", "0")
    flat = " ".join(attach.stdout.split())  # findings wrap to the terminal width
    assert "whether it persists its data (save, appendonly) cannot be checked" in flat


def test_a_renamed_config_is_used_under_its_new_name_everywhere(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    m, target, _ = _hardened(redis_factory, "SECRETCFG")
    m.client().execute_command("SECRETCFG", "SET", "repl-ping-replica-period", "7")
    opt = ("--rename-command", "CONFIG=SECRETCFG")
    code, doc, _ = invoke_json(env, "status", m.address, *opt)
    assert code == 0, doc["problems"]
    assert {n["replica_priority"] for n in doc["nodes"]} == {100}  # read through SECRETCFG
    code, doc, result = invoke_json(env, "switchover", "--to", target.address, "--yes", *opt)
    assert code == 0, result.stderr
    steps = {s["action"]: s for s in doc["result"]["steps"]}
    assert steps["freeze-pings"]["result"] == "ok"
    reply = m.client().execute_command("SECRETCFG", "GET", "repl-ping-replica-period")
    pairs = reply if isinstance(reply, dict) else dict(zip(reply[::2], reply[1::2], strict=True))
    assert pairs["repl-ping-replica-period"] == "7"  # frozen and restored under the new name
    # without the option, the plan says CONFIG is missing and how to name it
    code, doc, _ = invoke_json(env, "switchover", "--to", m.address, "--dry-run")
    assert any(
        "--rename-command CONFIG=NEWNAME" in f["message"]
        for f in doc["findings"]
        if f["code"] == "config_unavailable"
    )
