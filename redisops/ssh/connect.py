"""Verified, authenticated SSH connections over paramiko's ``Transport``.

Built from paramiko's building blocks rather than ``SSHClient`` (whose ``connect`` offers
the server the first known key type only and raises "not found in known_hosts" for a host
that is known by another type; paramiko#350, #2411) so that each step is ours:

1. TCP (or a ``direct-tcpip`` channel through the previous hop) and the SSH handshake,
   offering the server only the host-key algorithms of the keys known for it, without
   certificate variants; retried on transport errors only (:mod:`redisops.retry`);
2. the server's key checked by :mod:`redisops.ssh.known_hosts` (refused unless known;
   ``accept-new`` records an unknown one; a changed one always refused);
3. public-key authentication: the SSH agent's keys, then the identity files, whose
   passphrase comes from the environment variable the inventory names (never from the
   command line); no agent forwarding, no password prompts.

Every step has a timeout. Messages name the server and the files involved, never a secret.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from redisops.errors import HostKeyError, Unreachable
from redisops.retry import RetryPolicy
from redisops.ssh import known_hosts
from redisops.ssh.settings import SSHTarget

if TYPE_CHECKING:  # pragma: no cover
    import paramiko

CONNECT_RETRY = RetryPolicy(attempts=3, wait_initial=0.2, wait_max=1.0)
KEEPALIVE_S = 30
#: Rekey after 2**32 cipher blocks (64 GiB) or 2**31 packets, RFC 4344's bounds for
#: 128-bit block ciphers, instead of paramiko's 512 MiB: a rekey that paramiko starts in the
#: middle of a long exec-channel stream can deadlock its transport thread (paramiko#822,
#: open), which would cut off a multi-GB copy.
REKEY_BYTES = 2**36
REKEY_PACKETS = 2**31
CHANNEL_TIMEOUT_S = 10.0

Notify = Callable[[str], None]


class SSHConnection:
    """One authenticated SSH connection; ``via`` is the hop it goes through, if any."""

    def __init__(
        self, target: SSHTarget, transport: paramiko.Transport, via: SSHConnection | None
    ) -> None:
        self.target = target
        self.transport = transport
        self.via = via
        self._sftp: paramiko.SFTPClient | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return str(self.target)

    @property
    def alive(self) -> bool:
        return bool(self.transport.is_active())

    def open_session(self, timeout: float = CHANNEL_TIMEOUT_S) -> paramiko.Channel:
        import paramiko

        try:
            return self.transport.open_session(timeout=timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise Unreachable(f"ssh {self.name}: cannot open a session: {_reason(exc)}") from None

    def direct_tcpip(
        self, host: str, port: int, timeout: float = CHANNEL_TIMEOUT_S
    ) -> paramiko.Channel:
        """A channel to ``host:port`` as seen from this server (OpenSSH's ``-L``/``-J``)."""
        import paramiko

        try:
            return self.transport.open_channel(
                "direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=timeout
            )
        except paramiko.ChannelException as exc:
            raise Unreachable(
                f"ssh {self.name} cannot reach {host}:{port}: {exc.text or 'refused'}",
                hint="is the port open on that side, and AllowTcpForwarding on in its sshd?",
            ) from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise Unreachable(
                f"ssh {self.name}: forwarding to {host}:{port} failed: {_reason(exc)}"
            ) from None

    def sftp(self) -> paramiko.SFTPClient:
        """The connection's SFTP session, opened once."""
        import paramiko

        with self._lock:
            if self._sftp is None:
                try:
                    self._sftp = paramiko.SFTPClient.from_transport(
                        self.transport, window_size=_SFTP_WINDOW, max_packet_size=_SFTP_PACKET
                    )
                except (paramiko.SSHException, OSError, EOFError) as exc:
                    raise Unreachable(
                        f"ssh {self.name}: cannot start SFTP: {_reason(exc)}",
                        hint="is the sftp Subsystem enabled in the server's sshd_config?",
                    ) from None
                if self._sftp is None:  # pragma: no cover - paramiko returns None on failure
                    raise Unreachable(f"ssh {self.name}: cannot start SFTP")
            return self._sftp

    def close(self) -> None:
        with self._lock:
            if self._sftp is not None:
                try:
                    self._sftp.close()
                except Exception:  # pragma: no cover - closing a dead session
                    pass
                self._sftp = None
        self.transport.close()


# Bigger than paramiko's defaults (2 MiB window, 32 KiB packets): fewer window adjustments
# on bulk copies. 32768 is the largest packet every SFTP server accepts.
_SFTP_WINDOW = 16 * 1024 * 1024
_SFTP_PACKET = 32768


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    lowered = first.lower()
    if isinstance(exc, ConnectionRefusedError) or "refused" in lowered:
        return "connection refused"
    if isinstance(exc, (socket.timeout, TimeoutError)) or "timed out" in lowered:
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, EOFError) or not first:
        return "connection closed by the server"
    return first


def _transport_class() -> type[paramiko.Transport]:
    import paramiko

    class Transport(paramiko.Transport):
        """A Transport that offers no host-certificate algorithms: certificates cannot be
        verified here (no CA checks), so the server must show its plain key."""

        @property
        def preferred_keys(self) -> tuple[str, ...]:
            return tuple(k for k in super().preferred_keys if "-cert-v01@" not in k)

        # AES-GCM first: an AEAD cipher needs no separate HMAC, which in paramiko is a new
        # Python HMAC object per packet (bench/backup.py, bench/README.md). The client's
        # order decides; a server without GCM still gets the other ciphers.
        _known: tuple[str, ...] = paramiko.Transport._preferred_ciphers  # type: ignore[attr-defined]
        _preferred_ciphers = tuple(dict.fromkeys([*(c for c in _known if "-gcm@" in c), *_known]))

    return Transport


def _handshake(
    target: SSHTarget, via: SSHConnection | None, offer: list[str]
) -> paramiko.Transport:
    """TCP (or a channel through ``via``) and the SSH key exchange; no verification yet."""
    from paramiko.ssh_exception import IncompatiblePeer

    if via is not None:
        sock: Any = via.direct_tcpip(target.hostname, target.port, timeout=target.connect_timeout)
    else:
        sock = socket.create_connection(
            (target.hostname, target.port), timeout=target.connect_timeout
        )
    transport = _transport_class()(sock)
    try:
        transport.banner_timeout = target.connect_timeout
        transport.handshake_timeout = target.connect_timeout
        transport.auth_timeout = target.connect_timeout
        if offer:
            transport.get_security_options().key_types = offer
        try:
            transport.start_client(timeout=target.connect_timeout)
        except IncompatiblePeer as exc:
            if offer:
                raise HostKeyError(
                    f"ssh {target}: the server offers none of the host key types known for "
                    f"{target.known_hosts_name} ({', '.join(offer)}); its keys may have been "
                    "replaced; refusing",
                    hint="check the host's keys with its owner and update known_hosts",
                ) from None
            raise Unreachable(f"ssh {target}: incompatible server: {_reason(exc)}") from None
    except BaseException:
        transport.close()
        raise
    return transport


def connect(
    target: SSHTarget,
    *,
    via: SSHConnection | None = None,
    retry: RetryPolicy = CONNECT_RETRY,
    notify: Notify | None = None,
) -> SSHConnection:
    """Connect to ``target`` (through ``via``), verify its host key, authenticate."""
    import paramiko

    known = known_hosts.lookup(target.known_hosts_name, target.known_hosts_files)
    offer = known.algorithms()
    if known.keys and not offer:
        raise HostKeyError(
            f"ssh {target}: only key types redisops cannot verify are known for "
            f"{target.known_hosts_name} ({', '.join(known.key_types)}); refusing",
            hint="add its ed25519, ecdsa or RSA host key to known_hosts",
        )
    transient = (OSError, EOFError, paramiko.SSHException)
    try:
        transport = retry.call(lambda: _handshake(target, via, offer), retry_on=transient)
    except Unreachable as exc:
        raise Unreachable(exc.message, hint=exc.hint) from None
    except transient as exc:
        where = f" via {via.name}" if via is not None else ""
        raise Unreachable(
            f"ssh {target}{where}: {_reason(exc)}",
            hint="check the host, --ssh-port and that sshd runs there",
        ) from None
    try:
        _verify(target, known, transport, notify)
        _authenticate(target, transport)
        transport.set_keepalive(KEEPALIVE_S)
        transport.packetizer.REKEY_BYTES = REKEY_BYTES
        transport.packetizer.REKEY_PACKETS = REKEY_PACKETS
    except BaseException:
        transport.close()
        raise
    return SSHConnection(target, transport, via)


def _verify(
    target: SSHTarget,
    known: known_hosts.Known,
    transport: paramiko.Transport,
    notify: Notify | None,
) -> None:
    key = transport.get_remote_server_key()
    key_type, blob = key.get_name(), key.asbytes()
    verdict = known_hosts.check(
        known, key_type, blob, accept_new=target.accept_new, host=str(target)
    )
    if verdict == "new":
        if not target.user_known_hosts:
            raise HostKeyError(
                f"ssh {target}: --ssh-accept-new has no known_hosts file to record "
                f"{target.known_hosts_name} in",
                hint="pass --ssh-known-hosts FILE",
            )
        path = target.user_known_hosts[0]
        known_hosts.record(
            path, target.known_hosts_name, key_type, blob, hashed=target.hash_known_hosts
        )
        if notify is not None:
            notify(
                f"recorded the host key of {target.known_hosts_name} "
                f"({key_type} {known_hosts.fingerprint(blob)}) in {path}"
            )


def _authenticate(target: SSHTarget, transport: paramiko.Transport) -> None:
    """Public keys only: the agent's, then the identity files (OpenSSH's order)."""
    import paramiko

    tried: list[str] = []
    notes: list[str] = []
    agent = paramiko.Agent() if os.environ.get("SSH_AUTH_SOCK") else None
    try:
        for key, label in _candidate_keys(target, agent, notes):
            try:
                transport.auth_publickey(target.user, key)
            except paramiko.AuthenticationException:
                tried.append(label)
                continue
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise Unreachable(
                    f"ssh {target}: authentication broke off: {_reason(exc)}"
                ) from None
            if transport.is_authenticated():
                return
            tried.append(f"{label} (needs a second factor, not supported)")
    finally:
        if agent is not None:
            agent.close()
    detail = "; ".join([*(f"tried {t}" for t in tried), *notes]) or "no key to offer"
    raise Unreachable(
        f"ssh {target}: authentication failed for user {target.user} ({detail})",
        hint="check --ssh-user and --ssh-key (or identity_file in the inventory); "
        "an encrypted key needs passphrase_env or the SSH agent",
    )


def _candidate_keys(target: SSHTarget, agent: Any, notes: list[str]) -> list[tuple[Any, str]]:
    keys: list[tuple[Any, str]] = []
    if agent is not None:
        agent_keys = tuple(agent.get_keys())
        if not agent_keys:
            notes.append("the SSH agent has no key")
        for key in agent_keys:
            keys.append((key, f"agent key {known_hosts.fingerprint(key.asbytes())}"))
    for path in target.identity_files:
        if not os.path.isfile(path):
            if target.explicit_identities:
                notes.append(f"identity file {path} not found")
            continue
        key = _load_key(path, target.passphrase_env, notes)
        if key is not None:
            keys.append((key, f"{path} ({known_hosts.fingerprint(key.asbytes())})"))
    return keys


def _load_key(path: str, passphrase_env: str | None, notes: list[str]) -> Any | None:
    """A private key from ``path``; an encrypted one with the passphrase from the
    environment variable the inventory names. Failures become notes, never exceptions
    whose text could carry key material."""
    import paramiko

    try:
        return paramiko.PKey.from_path(path)
    except (TypeError, paramiko.PasswordRequiredException):
        pass  # encrypted (cryptography raises TypeError when no password is given)
    except Exception as exc:
        notes.append(f"cannot load {path} ({type(exc).__name__})")
        return None
    passphrase = os.environ.get(passphrase_env) if passphrase_env else None
    if not passphrase:
        where = f"${passphrase_env} is not set" if passphrase_env else "no passphrase_env is set"
        notes.append(f"{path} is encrypted and {where}")
        return None
    try:
        # positional (``passphrase`` in paramiko 3/4, ``password`` in 5), as bytes (cryptography)
        return paramiko.PKey.from_path(path, passphrase.encode())  # type: ignore[arg-type]
    except Exception:
        notes.append(f"cannot decrypt {path} with ${passphrase_env} (wrong passphrase?)")
        return None
