"""Playbook validation: every problem found before anything runs, named by file, step and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from redisops.cli import app
from redisops.errors import BadInput
from redisops.playbook import library
from redisops.playbook.schema import PlaybookInvalid, bind_vars, load

GOOD = """\
name: move
description: move the master
vars:
  master: address
  target: {type: address, description: the replica}
  pause: {type: duration, default: 2s}
steps:
  - name: read
    action: status
    with: {seeds: ["{{ master }}"]}
    register: before
  - name: check
    action: assert
    with: {that: "target in before.replicas"}
  - name: switch
    action: switchover
    with: {master: "{{ master }}", to: "{{ target }}", pause_timeout: "{{ pause }}"}
    verify: now.master == target
"""


def write(tmp_path: Path, text: str, name: str = "pb.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def errors_of(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(PlaybookInvalid) as err:
        load(path)
    return err.value.errors


def test_a_well_formed_playbook_loads_with_typed_defaults(tmp_path: Path) -> None:
    book = load(write(tmp_path, GOOD))
    assert [s.id for s in book.steps] == ["1", "2", "3"]
    assert book.vars[2].default == 2.0


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("action: switchover", "action: switchovre"),
            "step 3 'switch': action: unknown action 'switchovre'",
        ),
        (
            ('to: "{{ target }}"', 'target: "{{ target }}"'),
            "step 3 'switch': with.target: switchover takes no argument 'target'",
        ),
        (('to: "{{ target }}", ', ""), "step 3 'switch': with.to: switchover needs to"),
        (
            ("verify: now.master == target", "verify: now.master == tagret"),
            "step 3 'switch': verify: 'tagret' is not defined here",
        ),
        (
            ("register: before", "register: earlier"),
            "step 2 'check': with.that: 'before' is not defined here",
        ),
        (
            ("    action: status\n", "    action: status\n    retries: 3\n"),
            "step 1 'read': unknown field 'retries'",
        ),
        (("default: 2s", "default: soon"), "vars.pause.default: 'soon' is not a duration"),
        (("master: address", "master: adress"), "vars.master.type: unknown type 'adress'"),
        (
            ("description: move the master", "descripton: move the master"),
            "unknown top-level field 'descripton'",
        ),
        (
            (
                'with: {that: "target in before.replicas"}',
                'with: {that: "target in before.replicas("}',
            ),
            "step 2 'check': with.that: cannot parse",
        ),
        (
            ("  - name: check\n", "  - name: read\n"),
            "step 2 'read': name: another step is already called 'read'",
        ),
        (
            ("action: status\n    with:", "action: status\n    on_failure: retry\n    with:"),
            "step 1 'read': on_failure: 'retry' is not abort or continue",
        ),
        (
            ('{seeds: ["{{ master }}"]}', '{seeds: ["{{ master }"]}'),
            "step 1 'read': with.seeds: unbalanced",
        ),
    ],
)
def test_a_malformed_playbook_is_refused_naming_file_step_and_field(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    old, new = change
    assert old in GOOD
    errors = errors_of(tmp_path, GOOD.replace(old, new, 1))
    assert any(expected in e for e in errors), errors
    assert all(e.startswith(str(tmp_path / "pb.yml")) for e in errors)


def test_errors_carry_the_line_of_the_step(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, GOOD.replace("action: switchover", "action: nope"))
    assert errors[0].startswith(f"{tmp_path / 'pb.yml'}:15: step 3 'switch'")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("action: switchover", "action: nope").replace(
        "register: before", "register: 1x"
    )
    errors = errors_of(tmp_path, text)
    assert len(errors) >= 2


def test_a_literal_of_the_wrong_type_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace('pause_timeout: "{{ pause }}"', "pause_timeout: forever")
    errors = errors_of(tmp_path, text)
    assert any("with.pause_timeout: 'forever' is not a duration" in e for e in errors)


def test_precondition_and_verify_belong_to_mutating_steps(tmp_path: Path) -> None:
    text = GOOD.replace("    register: before\n", "    register: before\n    verify: now.master\n")
    errors = errors_of(tmp_path, text)
    assert any("step 1 'read': precondition/verify: only mutating steps" in e for e in errors)


def test_yaml_syntax_errors_name_the_line(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, "name: x\nsteps: [\n")
    assert errors[0].startswith(f"{tmp_path / 'pb.yml'}:") and "not valid YAML" in errors[0]


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    errors = errors_of(
        tmp_path,
        GOOD.replace("    register: before\n", "    register: before\n    register: again\n"),
    )
    assert any("duplicate key 'register'" in e for e in errors)


def test_for_each_groups_define_their_loop_variable(tmp_path: Path) -> None:
    text = GOOD + (
        "  - name: each replica\n"
        '    for_each: "{{ before.replicas }}"\n'
        "    as: replica\n"
        "    steps:\n"
        "      - name: wait for it\n"
        "        action: wait_sync\n"
        '        with: {replica: "{{ replica }}"}\n'
        "      - name: and again\n"
        "        action: wait_sync\n"
        '        with: {replica: "{{ replcia }}"}\n'
    )
    errors = errors_of(tmp_path, text)
    assert errors == [
        f"{tmp_path / 'pb.yml'}:26: step 4.2 'and again': with.replica: 'replcia' is not defined here "
        "(not a var, nor registered by an earlier step)"
    ]


def test_vars_are_bound_typed_and_checked(tmp_path: Path) -> None:
    book = load(write(tmp_path, GOOD))
    assert bind_vars(book, {"master": "10.0.0.1", "target": "10.0.0.2:7000"}) == {
        "master": "10.0.0.1:6379",
        "target": "10.0.0.2:7000",
        "pause": 2.0,
    }
    with pytest.raises(BadInput, match="missing var"):
        bind_vars(book, {"master": "10.0.0.1"})
    with pytest.raises(BadInput, match="no var 'mastre'"):
        bind_vars(book, {"mastre": "10.0.0.1", "master": "h", "target": "h"})
    with pytest.raises(BadInput, match="is not HOST:PORT"):
        bind_vars(book, {"master": "10.0.0.1:0", "target": "h"})


def test_every_shipped_playbook_is_valid() -> None:
    names = {e.name for e in library.entries() if e.source == "shipped"}
    assert names >= {
        "add-replica",
        "planned-switchover",
        "master-down",
        "rebuild-replica",
        "rolling-restart",
        "backup-rdb",
        "drift-remediation",
        "migrate-to-valkey",
    }
    for entry in library.entries():
        if entry.source == "shipped":
            load(entry.path)


def test_shipped_playbooks_keep_their_var_names() -> None:
    want = {
        "add-replica": {"replica", "master"},
        "planned-switchover": {"master", "target"},
        "master-down": {"master"},
        "rebuild-replica": {"replica", "master"},
        "rolling-restart": {"cluster", "master"},
        "backup-rdb": {"node", "dest"},
        "drift-remediation": {"master"},
        "migrate-to-valkey": {"master", "valkey"},
    }
    for name, required in want.items():
        book = load(library.resolve(name))
        assert required <= {v.name for v in book.vars}, name


runner = CliRunner()


def test_validate_exits_2_and_lists_every_problem(tmp_path: Path) -> None:
    path = write(
        tmp_path, GOOD.replace("action: switchover", "action: nope").replace("tagret", "x")
    )
    result = runner.invoke(app, ["playbook", "validate", str(path)])
    assert result.exit_code == 2
    assert "step 3 'switch': action: unknown action 'nope'" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_accepts_a_good_playbook(tmp_path: Path) -> None:
    result = runner.invoke(app, ["playbook", "validate", str(write(tmp_path, GOOD))])
    assert result.exit_code == 0, result.stderr
    assert "valid (3 var(s), 3 step(s))" in result.stdout


def test_run_refuses_bad_vars_before_touching_anything(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    result = runner.invoke(app, ["playbook", "run", str(path), "--var", "master=10.0.0.1:6379"])
    assert result.exit_code == 2
    assert "missing var(s) target (HOST:PORT)" in result.stderr
    result = runner.invoke(app, ["playbook", "run", str(path), "--var", "master"])
    assert result.exit_code == 2
    assert "--var 'master' is not NAME=VALUE" in result.stderr


def test_list_shows_shipped_and_local_playbooks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = tmp_path / "mine"
    local.mkdir()
    write(local, GOOD, "my-move.yml")
    monkeypatch.setenv("REDISOPS_PLAYBOOKS", str(local))
    result = runner.invoke(app, ["playbook", "list", "-o", "json"])
    assert result.exit_code == 0
    import json

    rows = {r["name"]: r for r in json.loads(result.stdout)["playbooks"]}
    assert (
        rows["my-move"]["source"] == "local" and rows["my-move"]["description"] == "move the master"
    )
    assert rows["master-down"]["source"] == "shipped" and rows["master-down"]["valid"]
    assert rows["rolling-restart"]["valid"]


def test_list_in_80_columns_gives_the_width_to_descriptions_not_shipped_paths(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    result = runner.invoke(app, ["playbook", "list"])
    assert result.exit_code == 0
    assert all(len(line) <= 80 for line in result.stdout.splitlines())
    assert "Take a verified RDB backup of a node" in result.stdout  # on one line
    assert "/playbooks/" not in result.stdout
