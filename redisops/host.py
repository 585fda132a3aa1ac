"""Shell and file access to the machine a node runs on: the :class:`Host` protocol.

Some work cannot be done over the Redis protocol: reading and editing ``redis.conf``,
copying RDB files, checking kernel settings, starting and stopping the service. Code that
needs it asks the session for the node's :class:`Host` and calls the methods below; it never
cares whether the node is on this machine (:class:`LocalHost`, plain files and
``subprocess``) or behind SSH (the SSH adapter's host, over paramiko). Both keep the same
promises:

* ``run`` takes an argument list, never a shell string (the SSH side quotes each argument
  with ``shlex.quote``); it returns the exit status and both streams and raises only when
  the command could not be run at all or ran out of time;
* files are streamed: ``fetch``/``put`` hash while copying (no second pass), ``sha256``
  computes the digest *on the host* that has the file;
* ``write_atomic`` writes a temporary file in the same directory, fsyncs it, keeps the
  old file's mode and owner, keeps a timestamped backup of the old file, renames over it
  and fsyncs the directory: a reader never sees half a file, a crash never loses both.

>>> r = LocalHost().run(["sh", "-c", "echo out; echo err >&2; exit 3"])
>>> (r.exit_status, r.stdout, r.stderr, r.ok)
(3, b'out\\n', b'err\\n', False)
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, Protocol

from redisops.errors import ExitCode, RedisopsError

#: Progress callback: called with the number of bytes copied so far.
ProgressFn = Callable[[int], None]

#: Chunk size for local streaming copies (measured: larger chunks gain nothing on local disks).
CHUNK = 1 << 20


class HostError(RedisopsError):
    """A command or file operation on a node's host failed."""

    exit_code = ExitCode.ERROR


class HostTimeout(HostError):
    """A command on a node's host did not finish in time."""

    exit_code = ExitCode.TIMEOUT


class HostUnavailable(HostError):
    """The node's host cannot be reached for shell or file access (no SSH configured)."""

    exit_code = ExitCode.UNREACHABLE


@dataclass(frozen=True, slots=True)
class ExecResult:
    """What a command did: its arguments, exit status and output (bytes, as produced)."""

    argv: tuple[str, ...]
    exit_status: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def text(self) -> str:
        """stdout decoded (UTF-8, errors replaced)."""
        return self.stdout.decode("utf-8", "replace")

    def check(self, host: str) -> ExecResult:
        """Raise :class:`HostError` unless the command exited 0; return self otherwise."""
        if not self.ok:
            err = self.stderr.decode("utf-8", "replace").strip().splitlines()
            detail = err[-1] if err else "no error output"
            raise HostError(f"{host}: `{' '.join(self.argv)}` exited {self.exit_status}: {detail}")
        return self


@dataclass(frozen=True, slots=True)
class FileStat:
    size: int
    mtime: float
    mode: int  # permission bits only
    uid: int
    gid: int


class Host(Protocol):
    """Shell and file access to one machine. See the module docstring for the promises."""

    @property
    def name(self) -> str:
        """How messages name this host (``local`` or ``user@host:port``)."""
        ...

    def run(
        self,
        argv: Sequence[str],
        *,
        sudo: bool = False,
        timeout: float = 30.0,
        input: bytes | None = None,
    ) -> ExecResult: ...

    def stat(self, path: str) -> FileStat | None: ...

    def read_bytes(self, path: str) -> bytes: ...

    def open_read(self, path: str) -> contextlib.AbstractContextManager[BinaryIO]: ...

    def fetch(
        self, remote: str, local: Path, *, progress: ProgressFn | None = None
    ) -> tuple[int, str]:
        """Copy ``remote`` on the host to ``local`` here; return (size, sha256 hex)."""
        ...

    def put(
        self, local: Path, remote: str, *, progress: ProgressFn | None = None
    ) -> tuple[int, str]:
        """Copy ``local`` here to ``remote`` on the host (atomically); return (size, sha256)."""
        ...

    def sha256(self, path: str) -> str:
        """The SHA-256 of ``path``, computed on the host."""
        ...

    def write_atomic(self, path: str, data: bytes, *, backup: bool = True) -> str | None:
        """Replace ``path`` atomically; return the backup's path (None if none was made)."""
        ...

    def close(self) -> None: ...


def backup_name(path: str, now: float | None = None) -> str:
    """The timestamped name a replaced file is kept under.

    >>> backup_name("/etc/redis/redis.conf", 0)
    '/etc/redis/redis.conf.redisops-19700101T000000Z.bak'
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    return f"{path}.redisops-{stamp}.bak"


def copy_stream(
    src: BinaryIO, dst: BinaryIO, progress: ProgressFn | None = None, chunk: int = CHUNK
) -> tuple[int, str]:
    """Copy ``src`` to ``dst`` while hashing; return (bytes, sha256 hex).

    >>> import io
    >>> copy_stream(io.BytesIO(b"abc"), io.BytesIO())[0]
    3
    """
    digest = hashlib.sha256()
    total = 0
    while True:
        block = src.read(chunk)
        if not block:
            break
        digest.update(block)
        dst.write(block)
        total += len(block)
        if progress is not None:
            progress(total)
    return total, digest.hexdigest()


def fetch_file(
    host: Host, remote: str, local: Path, progress: ProgressFn | None = None
) -> tuple[int, str]:
    """``Host.fetch`` on any host: stream ``remote`` through its ``open_read`` to ``local``
    (fsynced), hashing on the way; (size, sha256 hex)."""
    local.parent.mkdir(parents=True, exist_ok=True)
    with host.open_read(remote) as src, open(local, "wb") as dst:
        result = copy_stream(src, dst, progress)
        dst.flush()
        os.fsync(dst.fileno())
    return result


class LocalHost:
    """This machine: plain files and ``subprocess``. Used for nodes on this machine."""

    name = "local"

    def run(
        self,
        argv: Sequence[str],
        *,
        sudo: bool = False,
        timeout: float = 30.0,
        input: bytes | None = None,
    ) -> ExecResult:
        args = [str(a) for a in argv]
        if not args:
            raise HostError("local: no command given")
        if sudo and os.geteuid() != 0:
            args = ["sudo", "-n", "--", *args]
        try:
            proc = subprocess.run(
                args,
                input=input,
                capture_output=True,
                timeout=timeout,
                check=False,
                stdin=None if input is not None else subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise HostTimeout(f"local: `{' '.join(args)}` did not finish in {timeout:g}s") from None
        except OSError as exc:
            raise HostError(f"local: cannot run `{args[0]}`: {exc.strerror or exc}") from None
        return ExecResult(tuple(args), proc.returncode, proc.stdout, proc.stderr)

    def stat(self, path: str) -> FileStat | None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise HostError(f"local: cannot stat {path}: {exc.strerror}") from None
        return FileStat(st.st_size, st.st_mtime, st.st_mode & 0o7777, st.st_uid, st.st_gid)

    def read_bytes(self, path: str) -> bytes:
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise HostError(f"local: cannot read {path}: {exc.strerror}") from None

    @contextlib.contextmanager
    def open_read(self, path: str) -> Iterator[BinaryIO]:
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed below, errors mapped
        except OSError as exc:
            raise HostError(f"local: cannot open {path}: {exc.strerror}") from None
        with fh:
            yield fh

    def fetch(
        self, remote: str, local: Path, *, progress: ProgressFn | None = None
    ) -> tuple[int, str]:
        return fetch_file(self, remote, local, progress)

    def put(
        self, local: Path, remote: str, *, progress: ProgressFn | None = None
    ) -> tuple[int, str]:
        target = Path(remote)
        try:
            with open(local, "rb") as src, _atomic_file(target) as dst:
                return copy_stream(src, dst, progress)
        except OSError as exc:
            raise HostError(f"local: cannot copy {local} to {remote}: {exc.strerror}") from None

    def sha256(self, path: str) -> str:
        with self.open_read(path) as src:
            digest = hashlib.sha256()
            for block in iter(lambda: src.read(CHUNK), b""):
                digest.update(block)
        return digest.hexdigest()

    def write_atomic(self, path: str, data: bytes, *, backup: bool = True) -> str | None:
        target = Path(path)
        old = self.stat(path)
        kept: str | None = None
        try:
            if old is not None and backup:
                kept = backup_name(path)
                shutil.copy2(path, kept)
            with _atomic_file(target, like=old) as dst:
                dst.write(data)
        except OSError as exc:
            raise HostError(f"local: cannot write {path}: {exc.strerror}") from None
        return kept

    def close(self) -> None:
        return None


@contextlib.contextmanager
def _atomic_file(target: Path, like: FileStat | None = None) -> Iterator[BinaryIO]:
    """A temp file beside ``target`` that replaces it on success (fsynced, mode/owner kept)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if like is not None:
            os.chmod(tmp, like.mode)
            with contextlib.suppress(PermissionError):
                os.chown(tmp, like.uid, like.gid)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@lru_cache(maxsize=1)
def _own_addresses() -> frozenset[str]:
    names = {"localhost", socket.gethostname()}
    addrs: set[str] = set()
    for name in names:
        with contextlib.suppress(OSError):
            for info in socket.getaddrinfo(name, None):
                addrs.add(str(info[4][0]))
    return frozenset(names | addrs)


def is_local_address(host: str) -> bool:
    """True when ``host`` names this machine (loopback, its hostname or one of its addresses).

    >>> is_local_address("127.0.0.5"), is_local_address("::1"), is_local_address("localhost")
    (True, True, True)
    >>> is_local_address("192.0.2.10")
    False
    """
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None and ip.is_loopback:
        return True
    return host in _own_addresses()


def local_host_for(address_host: str, node: str) -> Host:
    """The :class:`LocalHost` for a node on this machine; otherwise say what is missing."""
    if is_local_address(address_host):
        return LocalHost()
    raise HostUnavailable(
        f"{node} is not on this machine and no SSH access is configured for it",
        hint="set ssh: in the inventory or pass --ssh-user (see docs/ssh.md)",
    )
