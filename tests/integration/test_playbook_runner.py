"""The runner's rules, on the embedded lab: when, register, on_failure, precondition,
verify, loops, and the dry run's predicted values seen by later conditions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.integration.lab_fixture import (
    LabBackend,
    Run,
    cli,
    lab_fixture,  # noqa: F401 - fixture
    poll,
    star,
    state_home_fixture,  # noqa: F401 - fixture (audit and locks in a temp dir)
)


def run(tmp_path: Path, text: str, *args: str) -> Run:
    path = tmp_path / "pb.yml"
    path.write_text(text)
    return cli("playbook", "run", str(path), *args, "--format", "json")


def steps(res: Run) -> dict[str, dict[str, Any]]:
    return {f"{s['id']}{'@' + s['item'] if s.get('item') else ''}": s for s in res.json["steps"]}


HEAD = """\
name: t
vars:
  master: address
  a: address
  b: address
steps:
"""


def test_on_failure_continue_registers_the_failure_for_later_steps(
    lab: LabBackend, tmp_path: Path
) -> None:
    m, a, b = star(lab, 2)
    text = (
        HEAD
        + """\
  - name: a step that fails
    action: confirm
    with: {node: "{{ a }}", state: master, probes: 1}
    on_failure: continue
    register: probe
  - name: branch on it
    action: assert
    when: probe.failed
    with: {that: "probe.exit_code == 5 and probe.state == 'replica'"}
"""
    )
    res = run(tmp_path, text, *_vars(m, a, b), "--yes")
    assert res.code == 0, res
    by_id = steps(res)
    assert by_id["1"]["status"] == "continued" and by_id["2"]["status"] == "ok"


def test_a_false_precondition_refuses_the_step_before_it_acts(
    lab: LabBackend, tmp_path: Path
) -> None:
    m, a, b = star(lab, 2)
    text = (
        HEAD
        + """\
  - name: detach a, only if the cluster has three replicas
    action: detach
    with: {replica: "{{ a }}"}
    precondition: len(now.replicas) >= 3
"""
    )
    res = run(tmp_path, text, *_vars(m, a, b), "--yes")
    assert res.code == 5, res
    assert "precondition is false: len(now.replicas) >= 3" in res.json["message"]
    assert a.info()["role"] == "slave"


def test_a_false_verify_fails_the_run_after_the_step(lab: LabBackend, tmp_path: Path) -> None:
    m, a, b = star(lab, 2)
    text = (
        HEAD
        + """\
  - name: detach a, and insist it is still a replica (it will not be)
    action: detach
    with: {replica: "{{ a }}"}
    verify: now.nodes[a].role == 'replica'
"""
    )
    res = run(tmp_path, text, *_vars(m, a, b), "--yes")
    assert res.code == 9, res
    assert a.info()["role"] == "master"
    assert res.json["final_state"]["nodes"][a.address]["role"] == "master"


def test_for_each_runs_its_steps_once_per_item(lab: LabBackend, tmp_path: Path) -> None:
    m, a, b = star(lab, 2)
    text = (
        HEAD
        + """\
  - name: read
    action: status
    with: {seeds: ["{{ master }}"]}
    register: st
  - name: every replica
    for_each: "{{ st.replicas }}"
    as: replica
    steps:
      - name: wait for it
        action: wait_sync
        with: {replica: "{{ replica }}", timeout: 10s}
        register: synced
      - name: it is in sync
        action: assert
        with: {that: "synced.in_sync and synced.master == master"}
"""
    )
    res = run(tmp_path, text, *_vars(m, a, b), "--yes")
    assert res.code == 0, res
    by_id = steps(res)
    assert {f"2.1@{a.address}", f"2.1@{b.address}", f"2.2@{a.address}", f"2.2@{b.address}"} <= set(
        by_id
    )


def test_a_dry_run_lets_later_conditions_see_predicted_values(
    lab: LabBackend, tmp_path: Path
) -> None:
    m, a, b = star(lab, 2)
    text = (
        HEAD
        + """\
  - name: detach a
    action: detach
    with: {replica: "{{ a }}"}
    register: det
  - name: read
    action: status
    with: {seeds: ["{{ master }}", "{{ a }}"]}
    register: st
  - name: attach a back, since it is now a master
    action: attach
    when: st.nodes[a].role == 'master'
    with: {replica: "{{ a }}", master: "{{ master }}", sample: 0}
    register: att
  - name: the plan knows it will be a full sync
    action: assert
    with: {that: "att.sync == 'full' and det.outcome == 'predicted'"}
"""
    )
    res = run(tmp_path, text, *_vars(m, a, b), "--dry-run")
    assert res.code == 0, res
    by_id = steps(res)
    assert by_id["2"]["registered"]["nodes"][a.address]["predicted"]
    assert by_id["3"]["status"] == "ok" and by_id["3"]["predicted"]
    poll(lambda: a.info()["role"] == "slave", what="a untouched")


def _vars(m: Any, a: Any, b: Any) -> list[str]:
    return ["--var", f"master={m.address}", "--var", f"a={a.address}", "--var", f"b={b.address}"]


def test_each_mutating_step_is_confirmed_and_a_no_changes_nothing(
    lab: LabBackend, tmp_path: Path
) -> None:
    from redisops.playbook.actions import ActionContext, Connector
    from redisops.playbook.runner import Reporter, Runner, RunOptions
    from redisops.playbook.schema import bind_vars, load
    from redisops.session import build_session

    m, a, b = star(lab, 2)
    path = tmp_path / "pb.yml"
    path.write_text(
        HEAD
        + """\
  - name: ask the operator
    action: confirm
    with: {prompt: "Detach a now?"}
  - name: detach a
    action: detach
    with: {replica: "{{ a }}"}
"""
    )
    book = load(path)
    questions: list[str] = []
    shown: list[str] = []

    class Collect(Reporter):
        def detail(self, text: str) -> None:
            shown.append(text)

    def ask(question: str) -> bool:
        questions.append(question)
        return len(questions) == 1  # yes to the prompt, no to the detach

    ctx = ActionContext(
        Connector(lambda seeds, cluster: build_session(seeds=seeds), None, None), ask=ask
    )
    variables = bind_vars(book, {"master": m.address, "a": a.address, "b": b.address})
    report = Runner(
        book, variables, ctx, RunOptions(journal_dir=tmp_path / "runs"), Collect()
    ).run()
    assert questions == ["Detach a now?", "Proceed with detach?"]
    assert report.exit_code == 5 and report.failed_step == "2"
    assert any("REPLICAOF NO ONE" in text for text in shown)  # the plan, before the question
    assert a.info()["role"] == "slave"
