"""Bad input: one line on stderr, exit 2, no traceback, nothing contacted."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from redisops.cli import app

runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), env=env)


def write(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


CASES = [
    (["status", "foo:bar"], "invalid port"),
    (["status", "host:99999"], "out of range"),
    (["status", "::1:6379"], "brackets"),
    (["status", "redis://u:pw@h:1"], "password in the address"),
    (["status", "ftp://h:1"], "unsupported scheme"),
    (["status", ""], "empty address"),
    (["status"], "no node given"),
    (["status", "h:1", "--format", "xml"], "xml"),
    (["status", "h:1", "--connect-timeout", "-1"], "connect-timeout"),
    (["status", "h:1", "--password-file", "/nonexistent/pw"], "/nonexistent/pw"),
    (["status", "h:1", "--cert", "/etc/hostname"], "--cert and --key go together"),
    (["status", "--inventory", "/nonexistent.yml", "--cluster", "x"], "not found"),
    (["status", "h:1", "--bogus"], "No such option"),
    (["nosuchcommand"], "No such command"),
]


@pytest.mark.parametrize(
    ("args", "fragment"), CASES, ids=[" ".join(c[0]) or "empty" for c in CASES]
)
def test_bad_input_gives_one_line_and_exit_2(args: list[str], fragment: str) -> None:
    result = run(*args)
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("redisops: error: ")
    assert fragment in err
    assert "Traceback" not in result.output + result.stderr
    assert result.stdout == ""


def test_inventory_with_a_literal_password_is_refused(tmp_path: Path) -> None:
    inv = write(
        tmp_path, "inv.yml", "clusters:\n  c:\n    nodes: [h:1]\n    auth: {password: hunter2}\n"
    )
    result = run("status", "--inventory", inv, "--cluster", "c")
    assert result.exit_code == 2
    assert "literal secret" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_unknown_cluster_names_the_known_ones(tmp_path: Path) -> None:
    inv = write(tmp_path, "inv.yml", "clusters:\n  cache:\n    nodes: [h:1]\n")
    result = run("status", "--inventory", inv, "--cluster", "nope")
    assert result.exit_code == 2
    assert "known clusters: cache" in result.stderr


def test_inventory_env_var_missing(tmp_path: Path) -> None:
    inv = write(
        tmp_path,
        "inv.yml",
        "clusters:\n  c:\n    nodes: [h:1]\n    auth: {password_env: NOPE_PW_X}\n",
    )
    result = run("status", "--inventory", inv, "--cluster", "c", env={"REDISCLI_AUTH": ""})
    assert result.exit_code == 2
    assert "NOPE_PW_X" in result.stderr


def test_invalid_yaml(tmp_path: Path) -> None:
    inv = write(tmp_path, "inv.yml", "clusters: [\n")
    result = run("status", "--inventory", inv, "--cluster", "c")
    assert result.exit_code == 2
    assert "not valid YAML" in result.stderr


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("redisops ")


def test_help_lists_exit_codes() -> None:
    result = run("--help")
    assert result.exit_code == 0
    assert "3 unreachable" in result.stdout


JSON_CASES = [
    (["status", "foo:bar", "-o", "json"], "invalid port"),
    (["attach", "h:1", "--to", "h:99999", "--format=json"], "out of range"),
    (["status", "h:1", "-o", "json", "--bogus"], "No such option"),
]


@pytest.mark.parametrize(("args", "fragment"), JSON_CASES, ids=[c[0][0] for c in JSON_CASES])
def test_bad_input_with_json_asked_for_is_a_json_document_on_stdout(
    args: list[str], fragment: str
) -> None:
    import json

    result = run(*args)
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert doc["exit_code"] == 2
    assert fragment in doc["error"]
    assert result.stderr.startswith("redisops: error: ")


def test_a_cluster_name_with_no_inventory_file_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("status", "--cluster", "prod", env={"XDG_CONFIG_HOME": str(tmp_path / "cfg")})
    assert result.exit_code == 2
    err = result.stderr
    assert "no inventory file found" in err
    assert str(tmp_path / "redisops.yml") in err
    assert str(tmp_path / "cfg" / "redisops" / "redisops.yml") in err
    assert "--inventory PATH" in err
