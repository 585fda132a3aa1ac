"""``redisops status --watch`` under a pseudo-terminal (redraw in place, changes marked,
clean exit on Ctrl-C) and without one (one frame per interval)."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.harness import RedisFactory, star, wait_until

pytestmark = pytest.mark.redis_server


def _spawn(args: list[str], tmp_path: Path, *, tty: bool) -> tuple[subprocess.Popen[bytes], int]:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "COLUMNS": "200"}
    if tty:
        master_fd, slave_fd = pty.openpty()
        proc = subprocess.Popen(
            [sys.executable, "-m", "redisops", *args],
            stdin=slave_fd,
            stdout=slave_fd,
            stderr=slave_fd,
            env=env,
            close_fds=True,
        )
        os.close(slave_fd)
        return proc, master_fd
    proc = subprocess.Popen(
        [sys.executable, "-m", "redisops", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.fileno()


def _read_until(fd: int, buf: bytearray, pred: object, timeout: float = 20.0) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred(bytes(buf)):  # type: ignore[operator]
            return bytes(buf)
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the pty closes when the child exits
                break
            if not chunk:
                break
            buf.extend(chunk)
    raise AssertionError(
        f"output never matched; got:\n{bytes(buf).decode(errors='replace')[-3000:]}"
    )


def test_watch_redraws_in_place_marks_changes_and_exits_cleanly_on_ctrl_c(
    redis_factory: RedisFactory, tmp_path: Path
) -> None:
    m, _r1, r2 = star(redis_factory, 2)
    proc, fd = _spawn(["status", m.address, "--watch", "0.3"], tmp_path, tty=True)
    buf = bytearray()
    try:
        _read_until(fd, buf, lambda b: b.count(b"\x1b[H\x1b[2J") >= 2)
        assert b"Every 0.3s: redisops status" in buf
        r2.kill()  # the master drops it; the watch still shows it (last seen), as changed
        wait_until(lambda: m.info()["connected_slaves"] == 1, what="the master to drop r2")
        start = len(buf)
        out = _read_until(fd, buf, lambda b: b"\x1b[7m" + r2.address.encode() in b[start:])
        assert f"changed: {r2.address}".encode() in out[start:]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(fd)
    assert b"Traceback" not in buf and b"interrupted" not in buf


def test_watch_without_a_terminal_prints_one_frame_per_interval(
    redis_factory: RedisFactory, tmp_path: Path
) -> None:
    m, _r = star(redis_factory, 1)
    proc, fd = _spawn(["status", m.address, "--watch=0.2"], tmp_path, tty=False)
    buf = bytearray()
    try:
        out = _read_until(fd, buf, lambda b: b.count(b"Every 0.2s: redisops status") >= 3)
        assert b"\x1b[" not in out  # no terminal codes in a pipe or a log
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
