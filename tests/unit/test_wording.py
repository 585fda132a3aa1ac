"""Messages that say the true thing: refused plans, diverged histories, conflicting
options, predictions without a reason, risks shared by several replicas."""

from __future__ import annotations

from typer.testing import CliRunner

from redisops.cli import app
from redisops.inventory import ConnectOptions, Credentials
from redisops.model import Address
from redisops.ops.attach import plan_attach
from redisops.ops.common import Options
from redisops.ops.fence import plan_fence
from redisops.output import render_prediction
from redisops.session import Session
from tests.builders import master, replica, rid, topology

M, R, S, N = (f"10.0.0.{i}:6379" for i in range(1, 5))


def session() -> Session:
    return Session(options=ConnectOptions())


def test_a_refused_attach_does_not_announce_a_resync_in_its_header() -> None:
    topo = topology(
        master(M, offset=100, replicas=[R]),
        replica(R, M, offset=100, replicas=[S]),
        replica(S, R, offset=100),
        seeds=[M, S],
    )
    p = plan_attach(topo, Address.parse(M), Address.parse(S), Options(), Credentials(), session())
    assert p.summary == f"attach {M} to {S}: refused (cycle); nothing will change"
    assert "resync predicted" not in p.summary


def test_a_history_both_nodes_continue_is_diverged_not_unrelated() -> None:
    """Two replicas of one master, each promoted on its own: same replid2, different ids."""
    old_history = rid("shared")
    old = master(
        M, offset=900, replid=rid("a"), master_replid2=old_history, second_repl_offset="501"
    )
    new = master(
        N, offset=700, replid=rid("b"), master_replid2=old_history, second_repl_offset="601"
    )
    p = plan_fence(topology(old, new, seeds=[M, N]), Address.parse(M), Address.parse(N), session())
    codes = [f.code for f in p.findings]
    assert "diverged_history" in codes and "unrelated_history" not in codes
    text = next(f.message for f in p.findings if f.code == "diverged_history")
    assert f"share an earlier history ({old_history[:8]}) but diverged after it" in text


def test_a_history_with_nothing_in_common_is_still_called_unrelated() -> None:
    old = master(M, offset=900, replid=rid("a"))
    new = master(N, offset=700, replid=rid("b"))
    p = plan_fence(topology(old, new, seeds=[M, N]), Address.parse(M), Address.parse(N), session())
    assert "unrelated_history" in [f.code for f in p.findings]


def test_failover_with_both_to_and_auto_says_not_both() -> None:
    result = CliRunner().invoke(
        app, ["failover", "--master", "h:1", "--auto", "--to", "h:2", "h:3"]
    )
    assert result.exit_code == 2
    assert "--to and --auto: not both" in result.stderr


def test_a_prediction_without_a_reason_has_no_empty_why_line() -> None:
    text = render_prediction({"candidates": [], "risks": []}, 80)
    assert "why:" not in text


def test_a_risk_shared_by_several_replicas_is_shown_once() -> None:
    risk = "repl-backlog-size 1024 KB covers only 0.5s of writes"
    text = render_prediction({"reason": "x", "risks": [risk, risk, risk]}, 200)
    assert text.count(risk) == 1
