"""LocalHost: the Host protocol for nodes on this machine (redisops.host)."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from redisops.errors import ExitCode
from redisops.host import HostError, HostTimeout, HostUnavailable, LocalHost, local_host_for


def test_run_captures_status_and_streams_and_passes_arguments_unquoted(tmp_path: Path) -> None:
    odd = tmp_path / "a dir; rm -rf x $(id)"
    odd.mkdir()
    r = LocalHost().run(["ls", "-d", str(odd)])
    assert r.ok
    assert r.text().strip() == str(odd)
    bad = LocalHost().run(["ls", str(tmp_path / "missing")])
    assert bad.exit_status != 0 and b"missing" in bad.stderr
    with pytest.raises(HostError, match="exited"):
        bad.check("local")


def test_run_times_out_with_a_clear_error() -> None:
    with pytest.raises(HostTimeout) as exc:
        LocalHost().run(["sleep", "5"], timeout=0.2)
    assert exc.value.exit_code is ExitCode.TIMEOUT


def test_fetch_hashes_while_copying(tmp_path: Path) -> None:
    src = tmp_path / "dump.rdb"
    data = os.urandom(3 * 1024 * 1024 + 17)
    src.write_bytes(data)
    seen: list[int] = []
    size, digest = LocalHost().fetch(str(src), tmp_path / "out" / "copy.rdb", progress=seen.append)
    assert size == len(data)
    assert digest == hashlib.sha256(data).hexdigest() == LocalHost().sha256(str(src))
    assert (tmp_path / "out" / "copy.rdb").read_bytes() == data
    assert seen[-1] == len(data)


def test_write_atomic_keeps_mode_and_a_backup(tmp_path: Path) -> None:
    conf = tmp_path / "redis.conf"
    conf.write_text("port 6379\n")
    conf.chmod(0o640)
    backup = LocalHost().write_atomic(str(conf), b"port 6380\n")
    assert conf.read_text() == "port 6380\n"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640
    assert backup is not None and Path(backup).read_text() == "port 6379\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_stat_of_a_missing_file_is_none(tmp_path: Path) -> None:
    assert LocalHost().stat(str(tmp_path / "nope")) is None


def test_a_node_elsewhere_needs_ssh() -> None:
    with pytest.raises(HostUnavailable, match="no SSH access") as exc:
        local_host_for("192.0.2.7", "192.0.2.7:6379")
    assert exc.value.exit_code is ExitCode.UNREACHABLE
    assert isinstance(local_host_for("127.0.0.1", "127.0.0.1:6379"), LocalHost)
