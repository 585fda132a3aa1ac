"""Human output fits the terminal: status, plans and results at 80 and 120 columns."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from redisops.errors import ExitCode
from redisops.formats import Format
from redisops.inventory import ConnectOptions, Credentials
from redisops.model import Address
from redisops.ops.attach import plan_attach
from redisops.ops.common import Options
from redisops.ops.switchover import plan_switchover
from redisops.output import (
    render_plan,
    render_result,
    render_status,
    table,
    terminal_width,
    wrap,
)
from redisops.plan import PlanResult, StepOutcome
from redisops.session import Session, build_session
from tests.builders import master, replica, rid, topology, unreachable

M, R1, R2, R3 = (f"10.20.30.{i}:6379" for i in (1, 2, 3, 4))
FAR = "[2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff]:16379"
HIST = rid("history")
WIDTHS = (80, 120)


def cluster_topology():  # type: ignore[no-untyped-def]
    nodes = [
        master(M, offset=123456789, replicas=[R1, R2], replid=HIST, db0="keys=5,expires=0"),
        replica(R1, M, offset=123456789, replid=HIST, replicas=[R3]),
        replica(R2, M, offset=123400000, replid=HIST, link="down", down_since=42),
        replica(R3, R1, offset=123456789, replid=HIST),
        unreachable(
            FAR, "connection refused: nothing listens on the port (is redis-server running?)"
        ),
    ]
    return topology(*nodes, seeds=[M, FAR])


def assert_fits(text: str, width: int) -> None:
    long = [line for line in text.splitlines() if len(line) > width]
    assert not long, f"{len(long)} line(s) wider than {width}:\n" + "\n".join(long)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("fmt", [Format.table, Format.wide])
def test_status_fits_the_width_in_both_layouts(width: int, fmt: Format) -> None:
    text = render_status(cluster_topology(), fmt, width)
    assert_fits(text, width)
    assert M in text and FAR in text
    assert "[CRITICAL] unreachable" in text


def test_status_shows_the_compact_columns_by_default_and_every_column_when_wide() -> None:
    topo = cluster_topology()
    compact = render_status(topo, Format.table, 120)
    head = next(line for line in compact.splitlines() if line.startswith("ADDRESS"))
    assert head.split() == ["ADDRESS", "ROLE", "MASTER", "LINK", "LAG", "OFFSET"]
    wide = render_status(topo, Format.wide, 250)
    head = next(line for line in wide.splitlines() if line.startswith("ADDRESS"))
    assert "BACKLOG_RANGE" in head and "REPLID2" in head and "MEM" in head


def test_a_wide_status_too_wide_for_the_terminal_becomes_one_block_per_node() -> None:
    text = render_status(cluster_topology(), Format.wide, 80)
    assert "BACKLOG_RANGE: 1-123456789" in text
    assert_fits(text, 80)


def attach_plan():  # type: ignore[no-untyped-def]
    fresh = master(R3, offset=0, db0="keys=1204,expires=0")
    topo = topology(
        master(
            M,
            offset=5000,
            replicas=[R1],
            replid=HIST,
            config={
                "save": "",
                "appendonly": "no",
                "client-output-buffer-limit": "slave 4mb 2mb 10",
            },
            used_memory_dataset=str(300 * 1024 * 1024),
            total_system_memory=str(512 * 1024 * 1024),
        ),
        replica(R1, M, offset=5000, replid=HIST),
        fresh,
        seeds=[M, R3],
    )
    sess = Session(options=ConnectOptions())
    return plan_attach(
        topo, Address.parse(R3), Address.parse(M), Options(), Credentials(), sess, 2e6
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_an_attach_plan_fits_the_width(width: int) -> None:
    p = attach_plan()
    text = render_plan(p, width=width)
    assert_fits(text, width)
    # a numbered list: the step, then its exact command and its check, indented
    assert f"  4. {R3}: point {R3} at {M}" in text
    assert "command: REPLICAOF 10.20.30.1 6379" in text
    assert "verify:  ROLE on" in text


@pytest.mark.parametrize("width", WIDTHS)
def test_a_switchover_plan_fits_the_width(width: int) -> None:
    nodes = [
        master(M, offset=1000, replicas=[R1, R2], replid=HIST),
        replica(R1, M, offset=1000, replid=HIST, replicas=[R3]),
        replica(R2, M, offset=1000, replid=HIST),
        replica(R3, R1, offset=1000, replid=HIST),
    ]
    topo = topology(*nodes, seeds=[M])
    p = plan_switchover(topo, Address.parse(M), Address.parse(R1), build_session(seeds=[R1]))
    text = render_plan(p, width=width)
    assert_fits(text, width)
    assert "command: CLIENT PAUSE 5000 WRITE" in text


@pytest.mark.parametrize("width", WIDTHS)
def test_the_result_table_wraps_detail_on_word_boundaries(width: int) -> None:
    detail = (
        "prediction confirmed; offsets equal at 123456789; 300000 keys on both; "
        "the replica took 12.3s to load its dataset, longer than the estimate"
    )
    result = PlanResult(
        "applied",
        ExitCode.OK,
        "attach done",
        [StepOutcome(7, R3, "verify-sync", "ok", detail, 0.1)],
        [
            {
                "address": R3,
                "reachable": True,
                "role": "replica",
                "master": M,
                "link": "up",
                "offset": 1,
            }
        ],
    )
    text = render_result(result, width)
    assert_fits(text, width)
    words = set(detail.replace(";", " ").split())
    cells = set(" ".join(text.splitlines()).replace(";", " ").split())
    assert words <= cells  # every word whole: nothing cut mid-word


def test_columns_honours_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "97")
    assert terminal_width() == 97
    monkeypatch.delenv("COLUMNS")
    # not a terminal (pytest captures stdout): the fallback
    assert terminal_width() == 80


def test_wrap_breaks_between_words_and_cuts_only_a_word_longer_than_the_line() -> None:
    assert wrap("one two three", 9) == ["one two", "three"]
    assert all(len(line) <= 10 for line in wrap("x" * 25, 10))


def test_a_table_that_cannot_fit_even_narrowed_lists_each_row_as_a_block() -> None:
    text = table(["FIRST_HEADER", "SECOND_HEADER", "THIRD_HEADER"], [["a", "b", "c"]], 40)
    assert text.splitlines()[0].startswith("FIRST_HEADER:")
    assert_fits(text, 40)


def test_status_through_the_cli_fits_columns_from_the_environment() -> None:
    runner = CliRunner()
    from redisops.cli import app

    result = runner.invoke(
        app, ["status", "127.0.0.1:1", "--timeout", "0.5"], env={"COLUMNS": "60"}
    )
    assert result.exit_code == 3
    assert_fits(result.stdout, 60)


def test_progress_phase_lines_fit_the_width_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from redisops.output import LineProgress

    monkeypatch.setenv("COLUMNS", "60")
    LineProgress().phase(
        "step 4/8: pause writes on 127.0.0.1:17000, wait until 127.0.0.1:17001 has its "
        "offset, promote 127.0.0.1:17001, demote 127.0.0.1:17000 under it, unpause"
    )
    err = capsys.readouterr().err
    assert len(err.splitlines()) > 1
    assert_fits(err, 60)


def test_the_status_tree_names_each_server_when_the_members_run_different_ones() -> None:
    same = render_status(cluster_topology(), Format.table, 120)
    assert "redis 7.0.15" not in same  # one server everywhere: nothing to tell apart
    ports = ("127.0.0.1:59443", "127.0.0.1:59444")  # the longest IPv4 loopback addresses
    mixed = topology(
        master(ports[0], offset=100, replicas=[ports[1]], replid=HIST, redis_version="6.2.14"),
        replica(
            ports[1], ports[0], offset=100, replid=HIST, redis_version="7.2.4",
            server_name="valkey", valkey_version="8.1.8",
        ),
        seeds=[ports[0]],
    )  # fmt: skip
    for width in WIDTHS:
        text = render_status(mixed, Format.table, width)
        assert_fits(text, width)
        assert "redis 6.2.14, RDB 9" in text and "valkey 8.1.8, RDB 11" in text
        # and the compact table keeps every address whole
        assert all(p in text.split("ADDRESS", 1)[1] for p in ports)


def test_a_table_at_80_columns_wraps_its_prose_and_keeps_ids_and_addresses_whole() -> None:
    rows = [
        [
            "WARNING",
            "repl.backlog_coverage",
            "127.0.0.1:59443",
            "0.0945022s",
            "a replica disconnected longer than this resyncs in full: raise repl-backlog-size "
            "(and client-output-buffer-limit) to cover the longest outage you expect",
        ],
        ["CRITICAL", "topology.fenced_master", "127.0.0.1:59444", "1", "an old master is back"],
    ]
    text = table(["STATUS", "CHECK", "NODE", "VALUE", "MESSAGE"], rows, 80)
    assert_fits(text, 80)
    for word in ("repl.backlog_coverage", "topology.fenced_master", "127.0.0.1:59443"):
        assert word in text, text
