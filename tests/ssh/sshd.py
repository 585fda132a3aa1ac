"""Real OpenSSH servers for tests, on free loopback ports.

``SSHWorld`` generates keys with ``ssh-keygen`` (host keys ed25519 and RSA, a client key),
writes an ``sshd_config`` that listens only on 127.0.0.1, and runs
``/usr/sbin/sshd -D -e -f CONFIG`` as the test user (root needs ``/run/sshd`` for privilege
separation; it is created when missing). It also makes a private ``HOME`` for the client
side, so ``~/.ssh/config`` and ``~/.ssh/known_hosts`` are the test's own, and an
environment without ``SSH_AUTH_SOCK`` (no agent). Everything is killed and removed at close.

Used by tests/ssh and by bench/ssh_fanout.py.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.harness import free_port

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
HAVE_SSHD = os.access(SSHD, os.X_OK) and os.access(SSH_KEYGEN, os.X_OK)
SKIP_REASON = (
    "sshd not installed (apt-get install -y openssh-server); "
    "run the README test command as root to install it"
)


@dataclass(frozen=True)
class KeyPair:
    path: Path  # the private key; the public one is path + ".pub"
    key_type: str  # ssh-ed25519, ssh-rsa
    b64: str

    @property
    def blob(self) -> bytes:
        return base64.b64decode(self.b64)

    @property
    def public_line(self) -> str:
        return f"{self.key_type} {self.b64}"

    def fingerprint(self) -> str:
        out = subprocess.run(
            [SSH_KEYGEN, "-l", "-E", "sha256", "-f", f"{self.path}.pub"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return out.split()[1]


def keygen(path: Path, kind: str = "ed25519", passphrase: str = "") -> KeyPair:
    path.parent.mkdir(parents=True, exist_ok=True)
    bits = ["-b", "2048"] if kind == "rsa" else []
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", kind, *bits, "-N", passphrase, "-C", "", "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    key_type, b64 = Path(f"{path}.pub").read_text().split()[:2]
    os.chmod(path, 0o600)
    return KeyPair(path, key_type, b64)


class SSHServer:
    """One sshd process on 127.0.0.1:<free port>."""

    def __init__(
        self,
        base: Path,
        host_keys: list[KeyPair],
        authorized: list[KeyPair],
        log_level: str = "INFO",
        session_env: dict[str, str] | None = None,
    ) -> None:
        self.base = base
        self.host_keys = host_keys
        self.authorized = authorized
        self.log_level = log_level
        self.session_env = session_env or {}
        self.host = "127.0.0.1"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = base / "sshd.log"

    def _write_config(self) -> Path:
        self.base.mkdir(parents=True, exist_ok=True)
        auth = self.base / "authorized_keys"
        auth.write_text("".join(f"{k.public_line}\n" for k in self.authorized))
        lines = [
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            *(f"HostKey {k.path}" for k in self.host_keys),
            f"AuthorizedKeysFile {auth}",
            "PidFile none",
            "StrictModes no",
            "UsePAM no",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "PermitRootLogin prohibit-password",
            "AllowTcpForwarding yes",
            "AllowAgentForwarding no",
            "X11Forwarding no",
            "PrintMotd no",
            "PrintLastLog no",
            "MaxStartups 100",
            "MaxSessions 100",
            "Subsystem sftp internal-sftp",
            f"LogLevel {self.log_level}",
            *(f"SetEnv {k}={v}" for k, v in self.session_env.items()),
        ]
        cfg = self.base / "sshd_config"
        cfg.write_text("\n".join(lines) + "\n")
        return cfg

    def start(self) -> SSHServer:
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        last = ""
        for _ in range(5):
            self.port = free_port()
            cfg = self._write_config()
            log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process
            self.proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(cfg)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
            log.close()
            if self._wait_banner():
                return self
            last = self.log()[-2000:]
            self.stop()
        raise AssertionError(f"sshd did not start: {last}")

    def _wait_banner(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, self.port), timeout=1.0) as s:
                    if s.recv(64).startswith(b"SSH-2.0"):
                        return True
            except OSError:
                pass
            time.sleep(0.02)
        return False

    @property
    def known_hosts_name(self) -> str:
        return f"[{self.host}]:{self.port}"

    def known_hosts_line(self, key: KeyPair | None = None, name: str | None = None) -> str:
        key = key or self.host_keys[0]
        return f"{name or self.known_hosts_name} {key.public_line}\n"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None


class SSHWorld:
    """Keys, servers and a private client HOME for one test."""

    def __init__(self, base: Path, keys: dict[str, KeyPair]) -> None:
        self.base = base
        self.keys = keys  # host_ed25519, host_rsa, client
        self.home = base / "home"
        (self.home / ".ssh").mkdir(parents=True, exist_ok=True, mode=0o700)
        self.servers: list[SSHServer] = []

    @property
    def client_key(self) -> KeyPair:
        return self.keys["client"]

    @property
    def known_hosts(self) -> Path:
        """The client's ``~/.ssh/known_hosts`` (OpenSSH's default user file)."""
        return self.home / ".ssh" / "known_hosts"

    def server(
        self,
        host_keys: list[KeyPair] | None = None,
        authorized: list[KeyPair] | None = None,
        log_level: str = "INFO",
        session_env: dict[str, str] | None = None,
    ) -> SSHServer:
        """Start an sshd. ``log_level="DEBUG1"`` logs every direct-tcpip channel (the tunnel
        tests read that), but also sends debug lines into sessions' stderr."""
        n = len(self.servers)
        srv = SSHServer(
            self.base / f"sshd{n}",
            host_keys
            if host_keys is not None
            else [self.keys["host_ed25519"], self.keys["host_rsa"]],
            authorized if authorized is not None else [self.client_key],
            log_level,
            session_env,
        )
        self.servers.append(srv)
        return srv.start()

    def trust(self, server: SSHServer, key: KeyPair | None = None) -> None:
        """Add the server's (ed25519 by default) host key to ``~/.ssh/known_hosts``."""
        with open(self.known_hosts, "a") as fh:
            fh.write(server.known_hosts_line(key))

    def cli_env(self, **extra: str) -> dict[str, str | None]:
        """Overrides for an in-process run (CliRunner): this HOME, no SSH agent, the audit
        log and locks kept here, no password unless given."""
        return {
            "HOME": str(self.home),
            "XDG_STATE_HOME": str(self.base / "state"),
            "REDISCLI_AUTH": "",
            "SSH_AUTH_SOCK": None,
            # named so CliRunner restores it: --debug sets it in os.environ
            "REDISOPS_DEBUG": None,
            **extra,
        }

    def env(self, **extra: str) -> dict[str, str]:
        """The whole environment for a redisops subprocess (same overrides)."""
        env = dict(os.environ)
        for key, value in self.cli_env(**extra).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def close(self) -> None:
        for srv in self.servers:
            srv.stop()


def make_keys(base: Path) -> dict[str, KeyPair]:
    return {
        "host_ed25519": keygen(base / "ssh_host_ed25519_key", "ed25519"),
        "host_rsa": keygen(base / "ssh_host_rsa_key", "rsa"),
        "client": keygen(base / "id_ed25519", "ed25519"),
    }
