"""``redisops backup`` input handling that needs no server: one line and a documented exit."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from redisops.cli import app
from redisops.errors import ExitCode

runner = CliRunner()


def test_an_unreachable_sftp_destination_is_one_line_and_exit_3(tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path), "HOME": str(tmp_path)}
    result = runner.invoke(app, ["backup", "list", "--dest", "sftp://127.0.0.1:1/srv/x"], env=env)
    assert result.exit_code == ExitCode.UNREACHABLE
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_verify_needs_a_path_or_all_and_decrypt_needs_a_key(tmp_path: Path) -> None:
    none = runner.invoke(app, ["backup", "verify"])
    assert none.exit_code == ExitCode.BAD_INPUT and "give a backup PATH or --all" in none.stderr
    f = tmp_path / "x.rdb"
    f.write_bytes(b"REDIS0010")
    nokey = runner.invoke(app, ["backup", "verify", str(f), "--decrypt"])
    assert nokey.exit_code == ExitCode.BAD_INPUT and "--key-file" in nokey.stderr


def test_an_unknown_restore_method_is_bad_input() -> None:
    result = runner.invoke(app, ["restore", "x.rdb", "--to", "127.0.0.1:1", "--method", "scp"])
    assert result.exit_code == ExitCode.BAD_INPUT and "use online or file" in result.stderr
