"""SSHHost against a real sshd: commands, quoting, timeouts, files."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from redisops.host import HostTimeout
from redisops.inventory import SSHSettings
from redisops.retry import NO_RETRY
from redisops.ssh.pool import SSHPool
from redisops.ssh.remote import READ_DEPTH, READ_REQUEST, SSHHost
from redisops.ssh.settings import Resolver, SSHOptions
from tests.ssh.sshd import SSHWorld

pytestmark = pytest.mark.sshd

AWKWARD = [
    "a b",
    "$HOME",
    "'single'",
    '"double"',
    "`id`",
    "; rm -rf /",
    "*",
    "back\\slash",
    "é",
    "",
]


@pytest.fixture
def remote(ssh_world: SSHWorld, monkeypatch: pytest.MonkeyPatch) -> Iterator[SSHHost]:
    monkeypatch.setenv("HOME", str(ssh_world.home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    srv = ssh_world.server()
    ssh_world.trust(srv)
    settings = SSHSettings(port=srv.port, identity_file=str(ssh_world.client_key.path))
    node = Resolver(SSHOptions()).node("127.0.0.1", settings)
    pool = SSHPool(retry=NO_RETRY)
    try:
        yield pool.host(node)
    finally:
        pool.close()


def test_exec_returns_exit_status_stdout_and_stderr_separately(remote: SSHHost) -> None:
    r = remote.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (r.exit_status, r.stdout, r.stderr) == (3, b"out\n", b"err\n")
    assert r.argv == ("sh", "-c", "echo out; echo err >&2; exit 3")


def test_awkward_arguments_arrive_as_one_word_each(remote: SSHHost) -> None:
    r = remote.run(["printf", "%s\\0", *AWKWARD]).check(remote.name)
    assert r.stdout.split(b"\0")[:-1] == [a.encode() for a in AWKWARD]


def test_stdin_is_passed_and_large_outputs_on_both_streams_do_not_block(remote: SSHHost) -> None:
    r = remote.run(["cat"], input=b"fed through stdin\n")
    assert r.stdout == b"fed through stdin\n"
    big = remote.run(
        ["sh", "-c", "head -c 3000000 /dev/zero; head -c 3000000 /dev/zero >&2"], timeout=60
    )
    assert (len(big.stdout), len(big.stderr), big.exit_status) == (3000000, 3000000, 0)


def test_a_command_past_its_timeout_raises_host_timeout(remote: SSHHost) -> None:
    with pytest.raises(HostTimeout, match=r"did not finish in 0\.5s"):
        remote.run(["sleep", "5"], timeout=0.5)
    # the connection is still usable afterwards
    assert remote.run(["true"]).ok


def test_files_with_awkward_names_are_written_atomically_with_backup(
    remote: SSHHost, tmp_path: Path
) -> None:
    folder = tmp_path / "dir with 'quotes' and $dollar"
    folder.mkdir()
    target = folder / "redis conf;`x`.conf"
    target.write_text("port 6379\n")
    os.chmod(target, 0o640)
    before = os.stat(target)
    backup = remote.write_atomic(str(target), b"port 6380\n")
    assert target.read_text() == "port 6380\n"
    after = os.stat(target)
    assert (after.st_mode & 0o7777, after.st_uid, after.st_gid) == (
        0o640,
        before.st_uid,
        before.st_gid,
    )
    assert after.st_ino != before.st_ino  # replaced by rename, not rewritten in place
    assert backup is not None and Path(backup).read_text() == "port 6379\n"
    assert Path(backup).parent == folder and ".redisops-" in Path(backup).name
    # nothing else left behind (no temporary file)
    assert sorted(p.name for p in folder.iterdir()) == sorted([target.name, Path(backup).name])
    st = remote.stat(str(target))
    assert st is not None and (st.size, st.mode) == (10, 0o640)
    assert remote.stat(str(folder / "missing")) is None
    assert remote.read_bytes(str(target)) == b"port 6380\n"
    assert remote.write_atomic(str(folder / "new file"), b"x", backup=True) is None


def test_put_and_fetch_stream_and_hash_and_agree_with_the_remote_sha256(
    remote: SSHHost, tmp_path: Path
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    src = tmp_path / "local src.rdb"
    src.write_bytes(data)
    remote_dir = tmp_path / "remote side"
    remote_dir.mkdir()
    dest = remote_dir / "dump $1.rdb"
    seen: list[int] = []
    size, digest = remote.put(src, str(dest), progress=seen.append)
    assert (size, digest) == (len(data), hashlib.sha256(data).hexdigest())
    assert dest.read_bytes() == data and seen[-1] == len(data)
    assert remote.sha256(str(dest)) == digest
    back = tmp_path / "fetched" / "copy.rdb"
    assert remote.fetch(str(dest), back) == (len(data), digest)
    assert back.read_bytes() == data
    assert [p.name for p in remote_dir.iterdir()] == [dest.name]


@pytest.mark.parametrize("size", [0, 1, READ_REQUEST - 1, READ_REQUEST, 3 * READ_REQUEST + 5])
def test_streaming_read_returns_every_byte_in_order_at_request_boundaries(
    remote: SSHHost, tmp_path: Path, size: int
) -> None:
    data = os.urandom(size)
    path = tmp_path / f"file {size}"
    path.write_bytes(data)
    got = bytearray()
    with remote.open_read(str(path)) as src:
        while block := src.read(100_000):
            got += block
    assert bytes(got) == data


def test_replies_shorter_than_asked_for_are_completed_and_later_requests_shrink(
    remote: SSHHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redisops.ssh.remote as module

    # OpenSSH's sftp-server serves at most 261120 bytes a reply: ask for more
    monkeypatch.setattr(module, "READ_REQUEST", 400_000)
    data = os.urandom(5 * 400_000 + 3)
    path = tmp_path / "short replies"
    path.write_bytes(data)
    got = bytearray()
    with remote.open_read(str(path)) as src:
        while block := src.read(1 << 20):
            got += block
    assert bytes(got) == data


def test_a_read_stopped_early_leaves_the_sftp_session_usable(
    remote: SSHHost, tmp_path: Path
) -> None:
    path = tmp_path / "big"
    path.write_bytes(os.urandom(READ_DEPTH * READ_REQUEST + 1))
    with remote.open_read(str(path)) as src:
        assert len(src.read(10)) == 10  # many requests still in flight at close
    st = remote.stat(str(path))  # their replies were collected, not read as this one's
    assert st is not None and st.size == READ_DEPTH * READ_REQUEST + 1
    with remote.open_read(str(path)) as src:
        assert src.read(5) == path.read_bytes()[:5]


FAKE_SUDO = """#!/bin/sh
# records how it is called; like sudo -n for a user allowed everything, refuses without -n
echo "$1 $2 $3" >> {log}
[ "$1" = -n ] || {{ echo "sudo: a password is required" >&2; exit 1; }}
shift
[ "$1" = -- ] && shift
exec "$@"
"""


def test_sudo_true_runs_privileged_work_and_file_access_through_sudo_n(
    ssh_world: SSHWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(ssh_world.home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "sudo.log"
    (bindir / "sudo").write_text(FAKE_SUDO.format(log=log))
    (bindir / "sudo").chmod(0o755)
    srv = ssh_world.server(session_env={"PATH": f"{bindir}:/usr/sbin:/usr/bin:/sbin:/bin"})
    ssh_world.trust(srv)
    settings = SSHSettings(port=srv.port, identity_file=str(ssh_world.client_key.path), sudo=True)
    pool = SSHPool(retry=NO_RETRY)
    try:
        host = pool.host(Resolver(SSHOptions()).node("127.0.0.1", settings))
        assert host.run(["id", "-u"]).stdout.strip() == b"0"
        assert not log.exists()  # not privileged: no sudo
        assert host.run(["printf", "%s", "a b"], sudo=True).stdout == b"a b"
        target = tmp_path / "conf dir" / "redis.conf"
        target.parent.mkdir()
        target.write_text("port 1\n")
        st = host.stat(str(target))
        assert st is not None and st.size == 7
        assert host.read_bytes(str(target)) == b"port 1\n"
        backup = host.write_atomic(str(target), b"port 2\n")
        assert target.read_text() == "port 2\n" and backup is not None
        assert host.stat(str(target.parent / "missing")) is None
        calls = log.read_text().splitlines()
        assert calls == ["-n -- printf", "-n -- stat", "-n -- cat", "-n -- sh", "-n -- stat"]
    finally:
        pool.close()
