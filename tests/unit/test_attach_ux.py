"""What attach tells the operator: resync loops, the phase a wait reached, predictions
that may go stale, a replica leaving another group, nodes written two ways, progress."""

from __future__ import annotations

from redisops.inventory import ConnectOptions, Credentials
from redisops.model import Address, NodeInfo, Plan
from redisops.ops.attach import SyncWatch, diagnose, plan_attach
from redisops.ops.common import Options
from redisops.output import LineProgress, progress_text
from redisops.session import Session
from tests.builders import master, replica, rid, topology

A, B, C, X, Y = (f"10.0.0.{i}:6379" for i in range(1, 6))
HIST = rid("history")


def plan(*nodes: NodeInfo, rep: str, to: str, written: tuple[str, str] | None = None) -> Plan:
    topo = topology(*nodes, seeds=[rep, to])
    return plan_attach(
        topo,
        Address.parse(rep),
        Address.parse(to),
        Options(),
        Credentials(),
        Session(options=ConnectOptions()),
        as_written=written,
    )


def finding(p: Plan, code: str) -> str:
    return next(f.message for f in p.findings if f.code == code)


# ----------------------------------------------------------------------------- resync loop


def test_a_full_sync_the_master_keeps_restarting_is_a_resync_loop() -> None:
    """The sequence redis-server 7.0 showed with a 1mb replica output-buffer limit under
    writes: sync_full +1 every half second, the replica's transfer starting over."""
    w = SyncWatch(0.0, sync_full0=0)
    seen = [
        ("waiting for the RDB", 0, 1),
        ("handshake", 0, 2),
        ("transfer", 81911, 2),
        ("transfer", 49137, 3),
        ("transfer", 65523, 4),
    ]
    for t, (phase, read, full) in enumerate(seen[:3]):
        w.observe(t * 0.5, phase, read, 0, full)
        assert not w.looping()  # one restart of a full sync can be a transient failure
    phase, read, full = seen[3]
    w.observe(1.5, phase, read, 0, full)
    assert w.looping()  # the master started three, the replica's transfer started over
    assert w.fulls == 3 and w.restarts == 1


def test_a_sync_that_completes_in_one_go_is_not_a_loop() -> None:
    w = SyncWatch(0.0, sync_full0=10)
    for t, (phase, read) in enumerate(
        [("handshake", 0), ("waiting for the RDB", 0), ("transfer", 1000), ("transfer", 9000)]
    ):
        w.observe(float(t), phase, read, 9000 if phase == "transfer" else 0, 11)
    w.observe(5.0, "loading")
    w.observe(6.0, "catching up", sync_full=11)
    assert not w.looping()
    m = w.measured(7.0)
    assert [p["phase"] for p in m["phases"]] == [
        "handshake",
        "waiting for the RDB",
        "transfer",
        "loading",
        "catching up",
    ]
    assert m["seconds"] == 7.0 and m["rdb_bytes"] == 9000 and m["full_syncs_started"] == 1


def test_the_master_counting_output_buffer_drops_is_a_loop_sooner() -> None:
    w = SyncWatch(0.0, sync_full0=0, obuf0=3)
    w.observe(0.0, "transfer", 100, 0, 1, 3)
    w.observe(1.0, "transfer", 50, 0, 2, 4)
    assert w.looping()


def test_a_timeout_names_the_phase_reached_with_the_bytes_of_a_diskless_transfer() -> None:
    w = SyncWatch(0.0, sync_full0=0)
    w.observe(0.0, "handshake")
    w.observe(1.0, "transfer", 2 * 1024 * 1024, 0, 1)
    w.observe(2.0, "transfer", 3 * 1024 * 1024, 0, 1)
    text = w.reached()
    assert text.startswith("the transfer (3.0M received")
    assert "diskless" in text


def test_the_diagnosis_of_a_diskless_transfer_under_way_does_not_say_it_never_started() -> None:
    rinfo = {
        "master_link_status": "down",
        "master_sync_total_bytes": "-1",
        "master_sync_read_bytes": "2097152",
    }
    text = diagnose(rinfo, "sync", {}, "127.0.0.1:7001")
    assert "has not started" not in text
    assert "receiving a diskless RDB: 2097152 bytes so far" in text


# ----------------------------------------------------------------------------- preflight


def test_a_partial_that_holds_only_until_the_old_master_pings_again_is_flagged() -> None:
    """C replicates from A; B (A's other replica) was promoted at offset 1000: C at 1000
    can continue through B's replid2, but A is alive and C's offset moves on."""
    promoted = master(
        B,
        offset=1000,
        replid=rid("new"),
        master_replid2=HIST,
        second_repl_offset="1001",
    )
    a = master(A, offset=1000, replicas=[C], replid=HIST)
    c = replica(C, A, offset=1000, replid=HIST)
    p = plan(a, promoted, c, rep=C, to=B)
    assert p.prediction is not None and p.prediction["sync"] == "partial"
    text = finding(p, "prediction_may_go_stale")
    assert "split point 1000 (it is at 1000, 0 byte(s) before it)" in text
    assert f"still replicates from {A}, which is alive" in text
    assert "checked again right before REPLICAOF" in text
    recheck = next(s for s in p.steps if s.action == "recheck")
    replicaof = next(s for s in p.steps if s.command and s.command[0] == "REPLICAOF")
    assert recheck.n == replicaof.n - 1 and recheck.args["predicted"] == "partial"


def test_an_ordinary_partial_under_the_same_master_history_is_not_flagged() -> None:
    a = master(A, offset=1000, replicas=[B, C], replid=HIST)
    b = replica(B, A, offset=1000, replid=HIST)
    c = replica(C, A, offset=1000, replid=HIST)
    p = plan(a, b, c, rep=C, to=B)
    assert "prediction_may_go_stale" not in [f.code for f in p.findings]


def test_a_replica_of_another_group_says_which_master_it_is_leaving() -> None:
    other = master(X, offset=500, replicas=[Y], replid=rid("other"))
    y = replica(Y, X, offset=500, replid=rid("other"), db0="keys=40,expires=0")
    a = master(A, offset=1000, replid=HIST)
    p = plan(other, y, a, rep=Y, to=A)
    assert f"is leaving {X}, of which it is a replica now" in finding(p, "leaves_group")
    assert f"is leaving {X}" in finding(p, "replica_has_data")


def test_the_same_node_written_two_ways_is_named_as_written() -> None:
    a = master(A, offset=10)
    p = plan(a, rep=A, to=A, written=("10.0.0.1:6379", "redis://10.0.0.1:6379"))
    assert finding(p, "same_node") == (
        "10.0.0.1:6379 and redis://10.0.0.1:6379 are the same node (10.0.0.1:6379)"
    )


# ----------------------------------------------------------------------------- progress


def test_progress_shows_bytes_rate_and_eta_when_the_total_is_known() -> None:
    text = progress_text("transfer", 30 * 2**20, 40 * 2**20, 10 * 2**20, 3.0, width=100)
    assert "75.0%" in text and "30.0M/40.0M" in text and "10.0M/s" in text
    assert "ETA 1.0s" in text


def test_progress_of_a_diskless_transfer_never_claims_a_total() -> None:
    text = progress_text("transfer", 5 * 2**20, None, 2**20, 5.0, tick=2)
    assert "5.0M received" in text and "1.0M/s" in text
    assert "%" not in text and "ETA" not in text and "/-1" not in text


def test_progress_lines_on_a_pipe_repeat_with_the_bytes_while_a_phase_lasts(
    capsys: object,
) -> None:
    clock = iter([0.0, 0.5, 5.0, 12.0, 25.0])
    prog = LineProgress(every=10.0)
    prog._meter._clock = lambda: next(clock)  # a fake clock: no sleeping
    prog._meter.started = 0.0
    for done in (0, 1 * 2**20, 5 * 2**20, 9 * 2**20, 20 * 2**20):
        prog.update("transfer", done, None)
    err = capsys.readouterr().err.splitlines()  # type: ignore[attr-defined]
    assert len(err) == 3  # the phase start, then every 10 s
    assert "9.0M received" in err[1] and "/s" in err[1]
