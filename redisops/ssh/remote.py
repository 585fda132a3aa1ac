"""The :class:`~redisops.host.Host` of a node behind SSH.

Commands run on the run's shared connection (:class:`~redisops.ssh.pool.SSHPool`): the
argument list is quoted word by word with :func:`shlex.quote` (never pasted into a shell
string), stdout and stderr are captured separately with the exit status, and every command
has a deadline. Files travel over SFTP with pipelined writes and prefetched reads (many
requests in flight, as ``scp`` streams), hashing while they copy.

With ``sudo: true`` in the inventory, privileged work goes through ``sudo -n`` (never a
password prompt): ``run(..., sudo=True)``, and every file operation (``cat``/``stat``
under sudo instead of SFTP, and the replace script). Replacing a file is one POSIX ``sh``
script on the host (GNU coreutils for ``--reference``): a temporary file in the same
directory, mode and owner copied from the old file, a timestamped backup (``cp -p``),
``sync``, ``mv`` over the old file, ``sync`` of the directory.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import io
import os
import selectors
import shlex
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from redisops.errors import Unreachable
from redisops.host import (
    CHUNK,
    ExecResult,
    FileStat,
    HostError,
    HostTimeout,
    ProgressFn,
    backup_name,
    copy_stream,
    fetch_file,
)
from redisops.ssh.settings import SSHTarget

if TYPE_CHECKING:  # pragma: no cover
    import paramiko

    from redisops.ssh.connect import SSHConnection
    from redisops.ssh.pool import SSHPool

#: Bytes asked for by each SFTP read request while streaming a file, and how many requests
#: are kept in flight. 261120 is the most OpenSSH's sftp-server serves in one reply
#: (256 KiB less 1 KiB); fewer, larger replies mean fewer Python-level round trips per
#: byte. Measured on the loopback sshd (OpenSSH 9.2, bench/backup.py and bench/README.md):
#: 64 KiB requests 0.5 of scp, 128 KiB 0.66-0.77, 255 KiB 0.9-1.2; 16 or 32 in flight
#: alike, 128 x 128 KiB far worse.
READ_REQUEST = 261120
READ_DEPTH = 32  # x 255 KiB = 8 MiB in flight, under the 16 MiB SFTP channel window
_RECV = 65536

#: The SHA-256 of the file ``$1``, read on stdin (no option or name escaping to get wrong):
#: OpenSSL's when installed (SHA extensions: 0.8 s for 1 GB on the bench machine), else
#: coreutils' ``sha256sum`` (4.4 s there: it uses no SHA instructions). Both print the
#: digest as the first word.
SHA256_SCRIPT = """{ command -v openssl >/dev/null 2>&1 && openssl dgst -sha256 -r < "$1"; } \\
  || sha256sum < "$1"
"""

#: Replace ``$1`` with stdin (``$2`` = ``-``) or with the file ``$2``; back the old one up
#: as ``$3`` (when not empty). Prints ``backup`` when it made one.
REPLACE_SCRIPT = r"""set -eu
target=$1 src=$2 backup=$3
dir=$(dirname -- "$target") base=$(basename -- "$target")
tmp=$(mktemp "$dir/.$base.redisops.XXXXXX")
trap 'rm -f -- "$tmp"' EXIT HUP INT TERM
if [ "$src" = - ]; then cat > "$tmp"; else mv -f -- "$src" "$tmp"; fi
if [ -e "$target" ]; then
  chmod --reference="$target" -- "$tmp"
  chown --reference="$target" -- "$tmp" 2>/dev/null || :
  if [ -n "$backup" ]; then cp -p -- "$target" "$backup"; echo backup; fi
else
  chmod "$(printf '%o' $((0666 & ~$(umask))))" -- "$tmp"
fi
sync -- "$tmp" 2>/dev/null || sync
mv -f -- "$tmp" "$target"
trap - EXIT HUP INT TERM
sync -- "$dir" 2>/dev/null || :
"""


def command_line(argv: Sequence[str], *, sudo: bool = False) -> str:
    """The remote command line for ``argv``: every word quoted, ``sudo -n`` when asked.

    >>> command_line(["cat", "/etc/redis/my redis.conf"])
    "cat '/etc/redis/my redis.conf'"
    >>> command_line(["sh", "-c", "echo $HOME; rm -rf /"], sudo=True)
    "sudo -n -- sh -c 'echo $HOME; rm -rf /'"
    """
    words = [shlex.quote(str(a)) for a in argv]
    return " ".join(["sudo", "-n", "--", *words] if sudo else words)


class SSHHost:
    """Shell and file access to one machine over the run's SSH connection to it."""

    def __init__(
        self, pool: SSHPool, target: SSHTarget, *, sudo: bool = False, owns_pool: bool = False
    ) -> None:
        self.pool = pool
        self.target = target
        self.sudo = sudo
        self.owns_pool = owns_pool  # a host on its own connection: close() closes it

    @property
    def name(self) -> str:
        return str(self.target)

    def __repr__(self) -> str:
        return f"SSHHost({self.name!r}, sudo={self.sudo})"

    @property
    def conn(self) -> SSHConnection:
        return self.pool.connection(self.target)

    # ------------------------------------------------------------------ commands
    def run(
        self,
        argv: Sequence[str],
        *,
        sudo: bool = False,
        timeout: float = 30.0,
        input: bytes | None = None,
    ) -> ExecResult:
        """Run ``argv``; ``sudo=True`` means "privileged": ``sudo -n`` when the inventory says
        this account needs it. Raises only when the command cannot run or times out."""
        args = tuple(str(a) for a in argv)
        if not args:
            raise HostError(f"{self.name}: no command given")
        cmd = command_line(args, sudo=sudo and self.sudo)
        deadline = time.monotonic() + timeout
        chan = self.conn.open_session(timeout=min(timeout, 30.0))
        try:
            chan.settimeout(timeout)
            chan.exec_command(cmd)
            if input:
                chan.sendall(input)
            chan.shutdown_write()
            out, err = _collect(chan, deadline)
            if out is None:
                raise HostTimeout(
                    f"{self.name}: `{_show(args)}` did not finish in {timeout:g}s",
                    hint="the command may still be running there",
                )
            if not chan.status_event.wait(max(deadline - time.monotonic(), 0.0)):
                raise HostTimeout(f"{self.name}: `{_show(args)}` did not finish in {timeout:g}s")
            status = chan.recv_exit_status()
        except (OSError, EOFError) as exc:
            raise Unreachable(f"{self.name}: `{_show(args)}` was cut off: {exc}") from None
        finally:
            chan.close()
        return ExecResult(args, status, out, err)

    # ------------------------------------------------------------------ files
    def stat(self, path: str) -> FileStat | None:
        if self.sudo:
            r = self.run(["stat", "-L", "-c", "%s %Y %a %u %g", "--", path], sudo=True)
            if not r.ok:
                if b"No such file" in r.stderr:
                    return None
                r.check(self.name)
            size, mtime, mode, uid, gid = r.text().split()
            return FileStat(int(size), float(mtime), int(mode, 8), int(uid), int(gid))
        try:
            st = self.conn.sftp().stat(path)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise HostError(f"{self.name}: cannot stat {path}: {_oserror(exc)}") from None
        return FileStat(
            int(st.st_size or 0),
            float(st.st_mtime or 0),
            int(st.st_mode or 0) & 0o7777,
            int(st.st_uid or 0),
            int(st.st_gid or 0),
        )

    def read_bytes(self, path: str) -> bytes:
        with self.open_read(path) as fh:
            return fh.read()

    @contextlib.contextmanager
    def open_read(self, path: str) -> Iterator[BinaryIO]:
        """A streaming reader: SFTP with read-ahead, or ``sudo -n cat`` with ``sudo: true``."""
        if self.sudo:
            with self._sudo_cat(path) as piped:
                yield piped
            return
        sftp = self.conn.sftp()
        try:
            fh = sftp.open(path, "rb")
        except OSError as exc:
            raise HostError(f"{self.name}: cannot open {path}: {_oserror(exc)}") from None
        with fh:
            reader = _ReadAhead(sftp, fh, fh.stat().st_size or 0)
            try:
                yield cast(BinaryIO, reader)
            finally:
                reader.close()

    @contextlib.contextmanager
    def _sudo_cat(self, path: str) -> Iterator[BinaryIO]:
        chan = self.conn.open_session()
        try:
            chan.exec_command(command_line(["cat", "--", path], sudo=True))
            chan.shutdown_write()
            yield cast(BinaryIO, chan.makefile("rb", CHUNK))
            status = chan.recv_exit_status()
            if status != 0:
                err = chan.makefile_stderr("rb").read().decode("utf-8", "replace").strip()
                raise HostError(f"{self.name}: cannot read {path}: {err or f'exit {status}'}")
        finally:
            chan.close()

    def fetch(
        self, remote: str, local: Path, *, progress: ProgressFn | None = None
    ) -> tuple[int, str]:
        return fetch_file(self, remote, local, progress)

    def put(
        self, local: Path, remote: str, *, progress: ProgressFn | None = None
    ) -> tuple[int, str]:
        """Upload to a temporary file over SFTP (pipelined), then replace ``remote`` with it
        in one step (no backup: callers that replace data keep their own copies)."""
        staging = self._staging_path(remote)
        sftp = self.conn.sftp()
        try:
            with open(local, "rb") as src, sftp.open(staging, "wb") as dst:
                dst.set_pipelined(True)
                result = copy_stream(src, cast(BinaryIO, dst), progress, chunk=CHUNK)
        except OSError as exc:
            with contextlib.suppress(OSError):
                sftp.remove(staging)
            raise HostError(f"{self.name}: cannot upload to {staging}: {_oserror(exc)}") from None
        self._replace(remote, staging, None, None)
        return result

    def _staging_path(self, remote: str) -> str:
        """Where an upload lands first: beside the target, or (sudo) in the user's home."""
        name = f".{os.path.basename(remote)}.redisops-{uuid.uuid4().hex[:12]}.part"
        return name if self.sudo else os.path.join(os.path.dirname(remote) or ".", name)

    def sha256(self, path: str) -> str:
        """The file's SHA-256 computed on the host (:data:`SHA256_SCRIPT`)."""
        r = self.run(["sh", "-c", SHA256_SCRIPT, "sh", path], sudo=True, timeout=3600)
        digest = r.check(self.name).text().split(" ", 1)[0].strip()
        if len(digest) != 64:
            raise HostError(f"{self.name}: no SHA-256 digest for {path}")
        return digest

    def write_atomic(self, path: str, data: bytes, *, backup: bool = True) -> str | None:
        kept = backup_name(path) if backup else None
        made = self._replace(path, "-", kept, data)
        return kept if made else None

    def _replace(self, path: str, src: str, backup: str | None, data: bytes | None) -> bool:
        r = self.run(
            ["sh", "-c", REPLACE_SCRIPT, "sh", path, src, backup or ""],
            sudo=True,
            input=data,
            timeout=600,
        )
        if not r.ok:
            err = r.stderr.decode("utf-8", "replace").strip().splitlines()
            raise HostError(
                f"{self.name}: cannot replace {path}: {err[-1] if err else f'exit {r.exit_status}'}",
                hint="the file was left as it was"
                + ("" if self.sudo else "; if it needs root, set sudo: true for the node"),
            )
        return b"backup" in r.stdout

    def close(self) -> None:
        """Close the connection when this host owns it; otherwise nothing to do (the run's
        :class:`~redisops.ssh.pool.SSHPool` owns the connection)."""
        if self.owns_pool:
            self.pool.close()


class _ReadAhead(io.RawIOBase):
    """A file on the host read with many SFTP requests in flight, as ``scp`` streams.

    paramiko has no public pipelined read, and its ``prefetch`` issues requests from a
    helper thread: when the reader catches up with that thread, paramiko sees no request
    outstanding, decides the prefetch is over and reads the rest one synchronous request
    at a time (measured: 30 MB/s instead of 200, in about one run in three). Here the
    reading thread itself keeps ``depth`` requests of ``request`` bytes outstanding and
    takes the replies in order, through the two calls paramiko's own prefetch is built
    on (``SFTPClient._async_request`` / ``_read_response``, whose replies come back to
    ``_async_response`` below). A reply shorter than asked for (a server that serves less)
    is completed with a synchronous read, and later requests are made that size.
    """

    def __init__(self, sftp: paramiko.SFTPClient, fh: paramiko.SFTPFile, size: int) -> None:
        super().__init__()
        self._sftp: Any = sftp  # its request calls are not in paramiko's type stubs
        self._fh, self._size = fh, size
        self._request = READ_REQUEST
        self._next = 0  # offset of the next request to issue
        self._pending: collections.deque[tuple[int, int, int]] = collections.deque()
        self._replies: dict[int, bytes | BaseException] = {}
        self._left = memoryview(b"")

    def readable(self) -> bool:
        return True

    def _issue(self) -> None:
        from paramiko.sftp import CMD_READ, int64

        while len(self._pending) < READ_DEPTH and self._next < self._size:
            length = min(self._request, self._size - self._next)
            num = self._sftp._async_request(
                self, CMD_READ, self._fh.handle, int64(self._next), length
            )
            self._pending.append((num, self._next, length))
            self._next += length

    def _async_response(self, t: int, msg: paramiko.Message, num: int) -> None:
        from paramiko.sftp import CMD_DATA, CMD_STATUS

        if t == CMD_DATA:
            self._replies[num] = msg.get_binary()
        elif t == CMD_STATUS:
            try:
                self._sftp._convert_status(msg)
                self._replies[num] = b""
            except (OSError, EOFError) as exc:
                self._replies[num] = exc
        else:
            self._replies[num] = OSError(f"unexpected SFTP reply type {t}")

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (one request's worth at most; fewer only at the end)."""
        if not self._left:
            self._left = memoryview(self._next_reply())
        if size < 0 or size >= len(self._left):
            out, self._left = bytes(self._left), memoryview(b"")
            return out
        out, self._left = bytes(self._left[:size]), self._left[size:]
        return out

    def _next_reply(self) -> bytes:
        self._issue()
        if not self._pending:
            return b""
        num, offset, length = self._pending[0]
        while num not in self._replies:
            self._sftp._read_response()
        self._pending.popleft()
        data = self._replies.pop(num)
        if isinstance(data, BaseException):
            raise data
        if len(data) < length:
            if data:
                self._request = min(self._request, len(data))
            self._fh.seek(offset + len(data))
            rest = self._fh.read(length - len(data))
            if len(data) + len(rest) < length:
                raise OSError(f"the file shrank while it was read (at {offset + len(data)})")
            data += rest
        return data

    def close(self) -> None:
        try:
            while self._pending:  # collect what is still in flight: the channel stays clean
                num, _, _ = self._pending.popleft()
                while num not in self._replies:
                    self._sftp._read_response()
                self._replies.pop(num, None)
        finally:
            super().close()


def _collect(chan: paramiko.Channel, deadline: float) -> tuple[bytes | None, bytes]:
    """Read stdout to EOF and stderr alongside; (None, stderr) when the deadline passes.

    The channel's selectable pipe wakes for data on either stream (and for EOF), so each
    wake drains whatever is there without ever blocking on one stream while the other
    one fills up."""
    out, err = bytearray(), bytearray()
    with selectors.DefaultSelector() as sel:
        sel.register(chan, selectors.EVENT_READ)
        while True:
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(_RECV)
            while chan.recv_ready():
                out += chan.recv(_RECV)
            if chan.eof_received or chan.closed:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None, bytes(err)
            sel.select(timeout=min(remaining, 1.0))
    while chan.recv_ready():
        out += chan.recv(_RECV)
    while chan.recv_stderr_ready():
        err += chan.recv_stderr(_RECV)
    return bytes(out), bytes(err)


def _show(args: Sequence[str]) -> str:
    """A command for a message: the long inline scripts shortened."""
    shown = [a if len(a) <= 60 else a[:57] + "..." for a in args]
    return " ".join(shlex.quote(a) for a in shown)


def _oserror(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__
