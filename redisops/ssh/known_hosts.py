"""Host-key verification with OpenSSH's rules: known_hosts files, strict by default.

Hand-written rather than paramiko's ``HostKeys`` because that class cannot be trusted
with the decision: it silently drops ``@cert-authority`` and ``@revoked`` lines (so a
revoked key could pass and a CA-signed host would look merely "unknown"), matches host
names only exactly (no ``*``/``?``/``!`` patterns), checks every entry against every other
while loading (the 20-second loads Ansible saw with hashed files), and cannot say which
file and line a key came from. Keys are compared as their wire blobs, so this module needs
no cryptography at all; paramiko only hands over the server's key.

Rules (``sshd(8)`` "SSH_KNOWN_HOSTS FILE FORMAT", ``ssh(1)`` ``StrictHostKeyChecking``):

* a host on a port other than 22 is listed as ``[host]:port``; names may be hashed
  (``|1|salt|hmac``) or patterns (``*``, ``?``, ``!negated``);
* a key listed for the host with the server's key type: the key must be identical, else
  the host key has **changed** and the connection is refused, whatever the options;
* no key for the host: **unknown**; refused, unless ``accept-new`` was asked for, which
  records it in the first user file and continues;
* ``@revoked`` keys are refused; ``@cert-authority`` (host certificates) is not supported:
  a host known only through a CA is refused with a message saying so, never accepted.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import hmac
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from redisops.errors import HostKeyError

#: key types we can verify, and the host-key algorithms that prove each
ALGORITHMS = {
    "ssh-ed25519": ("ssh-ed25519",),
    "ecdsa-sha2-nistp256": ("ecdsa-sha2-nistp256",),
    "ecdsa-sha2-nistp384": ("ecdsa-sha2-nistp384",),
    "ecdsa-sha2-nistp521": ("ecdsa-sha2-nistp521",),
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256"),
}


@dataclass(frozen=True, slots=True)
class Entry:
    """One known_hosts line."""

    path: str
    lineno: int
    marker: str | None  # None, "cert-authority" or "revoked"
    hosts: str  # the comma-separated host field as written
    key_type: str
    blob: bytes

    def matches(self, name: str) -> bool:
        return host_matches(name, self.hosts)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.lineno}"


def fingerprint(blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob.

    >>> fingerprint(b"key")
    'SHA256:LHDhK3oGRvkiefQnx7OOczTY5Tic/xZ6HcMOc/gmtoM'
    """
    digest = hashlib.sha256(blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


_wildcard_cache: dict[str, re.Pattern[str]] = {}


def _wildcard(pattern: str) -> re.Pattern[str]:
    rx = _wildcard_cache.get(pattern)
    if rx is None:
        body = "".join(
            ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.lower()
        )
        rx = _wildcard_cache[pattern] = re.compile(body + r"\Z", re.DOTALL)
    return rx


def _hashed_matches(name: str, field_: str) -> bool:
    parts = field_.split("|")
    if len(parts) != 4 or parts[1] != "1":
        return False
    try:
        salt = base64.b64decode(parts[2])
        want = base64.b64decode(parts[3])
    except (binascii.Error, ValueError):
        return False
    got = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return hmac.compare_digest(got, want)


def host_matches(name: str, hosts: str) -> bool:
    """Whether ``name`` (``host`` or ``[host]:port``) matches a known_hosts host field.

    >>> host_matches("[10.0.0.1]:2222", "10.0.0.1,[10.0.0.1]:2222")
    True
    >>> host_matches("db1.example", "*.example,!db1.example")
    False
    >>> host_matches("db2.example", "*.example,!db1.example")
    True
    >>> host_matches("10.0.0.1", "[10.0.0.1]:2222")
    False
    """
    if hosts.startswith("|1|"):
        return _hashed_matches(name, hosts)
    matched = False
    for pattern in hosts.split(","):
        negated = pattern.startswith("!")
        pat = pattern[1:] if negated else pattern
        hit = _wildcard(pat).match(name.lower()) is not None if pat else False
        if hit and negated:
            return False
        matched = matched or hit
    return matched


def parse_line(line: str, path: str, lineno: int) -> Entry | None:
    """One known_hosts line as an :class:`Entry` (None for blank, comment or unreadable)."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    fields = text.split()
    marker = None
    if fields[0].startswith("@"):
        marker = fields[0][1:]
        fields = fields[1:]
    if len(fields) < 3:
        return None
    hosts, key_type, b64 = fields[0], fields[1], fields[2]
    try:
        blob = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        return None
    return Entry(path, lineno, marker, hosts, key_type, blob)


@dataclass(frozen=True, slots=True)
class _FileSnapshot:
    mtime_ns: int
    size: int
    entries: tuple[Entry, ...]


_cache_lock = threading.Lock()
_file_cache: dict[str, _FileSnapshot] = {}


def load_file(path: str) -> tuple[Entry, ...]:
    """The entries of one file, parsed once per run (again only if the file changed)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return ()
    except OSError as exc:
        raise HostKeyError(f"cannot read known_hosts file {path}: {exc.strerror}") from None
    with _cache_lock:
        cached = _file_cache.get(path)
        if cached is not None and (cached.mtime_ns, cached.size) == (st.st_mtime_ns, st.st_size):
            return cached.entries
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            entries = tuple(
                e for n, line in enumerate(fh, 1) if (e := parse_line(line, path, n)) is not None
            )
    except OSError as exc:
        raise HostKeyError(f"cannot read known_hosts file {path}: {exc.strerror}") from None
    with _cache_lock:
        _file_cache[path] = _FileSnapshot(st.st_mtime_ns, st.st_size, entries)
    return entries


@dataclass
class Known:
    """What the known_hosts files say about one host name."""

    name: str
    files: tuple[str, ...]
    keys: list[Entry] = field(default_factory=list)
    authorities: list[Entry] = field(default_factory=list)
    revoked: list[Entry] = field(default_factory=list)

    @property
    def key_types(self) -> list[str]:
        return list(dict.fromkeys(e.key_type for e in self.keys))

    def algorithms(self) -> list[str]:
        """Host-key algorithms to offer the server: only those of the keys known for it, so
        a host known by its ed25519 key is not asked for RSA (paramiko#350/#2411)."""
        out: list[str] = []
        for key_type in self.key_types:
            out.extend(ALGORITHMS.get(key_type, ()))
        return list(dict.fromkeys(out))


def lookup(name: str, files: Sequence[str]) -> Known:
    """Every entry of ``files`` that names ``name``, sorted by kind."""
    known = Known(name, tuple(files))
    for path in files:
        for entry in load_file(path):
            if not entry.matches(name):
                continue
            if entry.marker is None:
                known.keys.append(entry)
            elif entry.marker == "cert-authority":
                known.authorities.append(entry)
            elif entry.marker == "revoked":
                known.revoked.append(entry)
    return known


def _searched(files: Sequence[str]) -> str:
    return ", ".join(files) if files else "no known_hosts file"


def check(known: Known, key_type: str, blob: bytes, *, accept_new: bool, host: str) -> str:
    """Decide on the key a server showed: return "known" or "new" (to be recorded by the
    caller), or raise :class:`HostKeyError` (exit 12) with one actionable line.

    ``host`` names the server for messages (``user@host:port``).
    """
    fp = fingerprint(blob)
    name = known.name
    for entry in known.revoked:
        if entry.blob == blob:
            raise HostKeyError(
                f"host key for {name} ({key_type} {fp}) is marked @revoked in {entry.where}; "
                f"refusing to connect to {host}",
                hint="the host's keys must be replaced; ask its owner",
            )
    same_type = [e for e in known.keys if _family(e.key_type) == _family(key_type)]
    if any(e.blob == blob for e in same_type):
        return "known"
    if same_type:
        listed = same_type[0]
        raise HostKeyError(
            f"HOST KEY CHANGED for {name}: the server shows {key_type} {fp}, but "
            f"{listed.where} lists {fingerprint(listed.blob)}; refusing to connect to {host} "
            "(it may be an impersonation; --ssh-accept-new never replaces a key)",
            hint=f"if the change is expected, remove the old entry "
            f"(ssh-keygen -R '{name}' -f {listed.path}) and verify the new fingerprint",
        )
    if known.keys:
        # the server chose a type we did not offer: cannot happen when the offer is restricted
        raise HostKeyError(
            f"host key for {name}: the server shows {key_type} {fp}, but only "
            f"{', '.join(known.key_types)} is known for it ({known.keys[0].where}); refusing",
            hint="add the host's key of that type after checking it with the host's owner",
        )
    if known.authorities:
        raise HostKeyError(
            f"host key for {name} is trusted through @cert-authority ({known.authorities[0].where}), "
            f"which redisops does not support; refusing {key_type} {fp}",
            hint=f"add the host's own key for {name} to a known_hosts file "
            "(after checking its fingerprint)",
        )
    if accept_new:
        return "new"
    raise HostKeyError(
        f"host key for {name} is unknown: {key_type} {fp} (searched {_searched(known.files)})",
        hint="check the fingerprint with the host's owner (ssh-keygen -lf "
        "/etc/ssh/ssh_host_*_key.pub on it), then rerun with --ssh-accept-new to record it",
    )


def _family(key_type: str) -> str:
    """RSA keys are listed as ``ssh-rsa`` whatever the signature algorithm.

    >>> _family("rsa-sha2-512"), _family("ssh-ed25519")
    ('ssh-rsa', 'ssh-ed25519')
    """
    return "ssh-rsa" if key_type.startswith("rsa-sha2-") else key_type


_write_lock = threading.Lock()


def record(path: str, name: str, key_type: str, blob: bytes, *, hashed: bool = False) -> Entry:
    """Append ``name key_type key`` to ``path`` (created 0600 in a 0700 directory), under a
    file lock so parallel runs never interleave lines; return the new entry."""
    host_field = hash_name(name) if hashed else name
    line = f"{host_field} {_family(key_type)} {base64.b64encode(blob).decode()}\n"
    target = Path(path)
    with _write_lock:
        try:
            if not target.parent.exists():
                target.parent.mkdir(mode=0o700, parents=True)
            fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                with contextlib.suppress(OSError):
                    size = os.fstat(fd).st_size
                    if size and _last_byte(fd, size) != b"\n":
                        os.write(fd, b"\n")
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise HostKeyError(
                f"cannot record the host key of {name} in {path}: {exc.strerror}",
                hint="pass --ssh-known-hosts FILE to record it in a writable file",
            ) from None
    return Entry(path, 0, None, host_field, _family(key_type), blob)


def _last_byte(fd: int, size: int) -> bytes:
    return os.pread(fd, 1, size - 1)


def hash_name(name: str, salt: bytes | None = None) -> str:
    """OpenSSH's hashed host field (``HashKnownHosts yes``).

    >>> h = hash_name("[db1]:2222", b"0" * 20)
    >>> h.startswith("|1|MDAwMDAwMDAwMDAwMDAwMDAwMDA=|"), host_matches("[db1]:2222", h)
    (True, True)
    """
    salt = os.urandom(20) if salt is None else salt
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"
