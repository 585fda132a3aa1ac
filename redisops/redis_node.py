"""Adapter over redis-py: the only module that imports ``redis``.

A :class:`RedisNode` is one connection to one node. It speaks through redis-py's
``Connection`` (raw replies, no response callbacks) so INFO arrives as text and several
commands can be pipelined in one round trip. Every call has a timeout; connecting is
retried on transport errors only (see :mod:`redisops.retry`); errors come out as
:class:`~redisops.errors.Unreachable` or :class:`~redisops.errors.CommandFailed` with
messages that never contain a secret.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from redisops.errors import CommandFailed, CommandUnavailable, NotRedis, RedisopsError, Unreachable
from redisops.info import parse_info, parse_role
from redisops.inventory import ConnectOptions
from redisops.model import Address, NodeInfo
from redisops.retry import CONNECT_RETRY, RetryPolicy

if TYPE_CHECKING:  # pragma: no cover
    import redis

#: INFO sections every probe reads, one ``INFO <section>`` each (see :func:`info_commands`).
PROBE_SECTIONS = ("server", "clients", "memory", "persistence", "stats", "replication", "keyspace")

#: CONFIG keys every probe reads. Never a secret (no requirepass, no masterauth).
PROBE_CONFIG = (
    "replica-priority",
    "replica-read-only",
    "replica-serve-stale-data",
    "repl-backlog-size",
    "repl-backlog-ttl",
    "repl-timeout",
    "repl-ping-replica-period",
    "repl-diskless-sync",
    "repl-diskless-sync-delay",
    "repl-diskless-sync-max-replicas",
    "repl-diskless-load",
    "client-output-buffer-limit",
    "min-replicas-to-write",
    "min-replicas-max-lag",
    "save",
    "appendonly",
    "maxmemory",
    "replica-announce-ip",
    "replica-announce-port",
    "masteruser",
    "disable-thp",  # the host.kernel check: THP [always] hurts only when Redis leaves it on
    "dual-channel-replication-enabled",  # Valkey 8+
    "rdb-version-check",  # Valkey 8.1+
)

#: Where to open the TCP connection instead of the node's address (a local SSH forward);
#: called on every connect, so a forward is opened only when the node is used.
Dial = Callable[[], tuple[str, int]]

#: Commands redisops sends that hardened nodes often rename or disable (``rename-command``):
#: every probe asks ``COMMAND INFO`` about them, under the names the session maps them to.
CHECKED_COMMANDS = ("CONFIG", "REPLICAOF", "CLIENT", "FAILOVER")

SENTINEL_HELLO = "__sentinel__:hello"
FENCE_KEY = "redisops:fence"  # see redisops.topology
DETACH_KEY = "redisops:detached"  # see redisops.topology


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [_text(v) for v in value]
    return value


def _pairs(reply: Sequence[Any]) -> dict[str, str]:
    items = [_text(x) for x in reply]
    return {str(items[i]): str(items[i + 1]) for i in range(0, len(items) - 1, 2)}


def _info_fields(reply: Any) -> dict[str, str]:
    return parse_info(str(reply))


def _merged(replies: Iterable[Any], fields: Callable[[Any], dict[str, str]]) -> dict[str, str]:
    """The fields of several replies (one per INFO section or CONFIG key) in one dict; an
    error reply (a section or key this server refuses) adds nothing.

    >>> _merged([["a", "1"], CommandFailed("x"), ["b", "2"]], _pairs)
    {'a': '1', 'b': '2'}
    """
    out: dict[str, str] = {}
    for reply in replies:
        if not isinstance(reply, CommandFailed):
            out.update(fields(reply))
    return out


def info_commands(sections: Sequence[str]) -> list[tuple[str, ...]]:
    """The commands that read ``sections``: one ``INFO <section>`` per section.

    ``INFO a b`` exists only since Redis 7.0 (6.2 answers "syntax error"), and which
    server a node runs is known only from its INFO reply. One command per section works on
    every server and, pipelined, costs the same single round trip.

    >>> info_commands(["replication", "stats"])
    [('INFO', 'replication'), ('INFO', 'stats')]
    """
    return [("INFO", s) for s in sections] or [("INFO",)]


def config_commands(keys: Sequence[str]) -> list[tuple[str, ...]]:
    """One ``CONFIG GET <key>`` per key, for the same reason (several keys: 7.0+)."""
    return [("CONFIG", "GET", k) for k in keys]


class RedisNode:
    """One connection to one Redis (or Sentinel, or embedded-engine) node.

    ``on_warning`` receives what is worth telling the operator but not worth failing for
    (e.g. a password given for a node that has none: like redis-cli, the connection goes
    on without it); ``on_no_password`` is told the address of such a node.
    """

    def __init__(
        self,
        address: Address,
        options: ConnectOptions | None = None,
        retry: RetryPolicy = CONNECT_RETRY,
        dial: Dial | None = None,
        *,
        on_warning: Callable[[str], None] | None = None,
        on_no_password: Callable[[Address], None] | None = None,
    ) -> None:
        self.address = address
        self.options = options or ConnectOptions()
        self.retry = retry
        self.dial = dial
        self._conn: redis.Connection | None = None
        self._on_warning = on_warning
        self._on_no_password = on_no_password
        self._skip_password = False

    # ------------------------------------------------------------------ connection
    def _new_connection(self) -> redis.Connection:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        creds = self.options.credentials
        use = creds.present and not self._skip_password
        kwargs: dict[str, Any] = {
            "host": self.address.host,
            "port": self.address.port,
            "username": creds.username if use else None,
            "password": creds.password.reveal() if use and creds.password is not None else None,
            "socket_timeout": self.options.socket_timeout,
            "socket_connect_timeout": self.options.connect_timeout,
            "protocol": 2,
            "retry": Retry(NoBackoff(), 0),
        }
        # no CLIENT SETINFO round trips on connect (redis-py >= 5.x sends them by default)
        try:
            import redis.driver_info

            kwargs["driver_info"] = None
        except ImportError:  # pragma: no cover - older redis-py
            kwargs["lib_name"] = None
            kwargs["lib_version"] = None
        tls = self.options.tls
        plain, secure = (
            _dialing_classes() if self.dial is not None else (redis.Connection, redis.SSLConnection)
        )
        conn: redis.Connection
        if tls is not None:
            conn = secure(
                ssl_ca_certs=tls.cacert,
                ssl_certfile=tls.cert,
                ssl_keyfile=tls.key,
                # always verify: the system CA store unless --cacert names one
                ssl_cert_reqs="required",
                ssl_check_hostname=tls.verify_hostname,
                **kwargs,
            )
        else:
            conn = plain(**kwargs)
        if self.dial is not None:
            conn.dial_to = self.dial()  # type: ignore[attr-defined]
        return conn

    def connect(self) -> None:
        if self._conn is not None:
            return
        try:
            self._conn = self._connect_once()
        except _NoPasswordSet:
            # like redis-cli: a password for a node that has none is a warning, not a failure
            self._skip_password = True
            if self._on_warning is not None:
                self._on_warning(
                    f"{self.address} has no password set: connected without the password "
                    f"from {self.options.credentials.source} (as redis-cli does)"
                )
            if self._on_no_password is not None:
                self._on_no_password(self.address)
            self._conn = self._connect_once()

    def _connect_once(self) -> redis.Connection:
        import redis

        def attempt() -> redis.Connection:
            conn = self._new_connection()  # dials the SSH forward (may raise Unreachable)
            try:
                conn.connect()
            except redis.AuthenticationError as exc:
                conn.disconnect()
                raise _AuthFailed(exc) from None  # never retried: the answer will not change
            except BaseException:
                conn.disconnect()
                raise
            return conn

        creds_hint = (
            "check --user and the password source (REDISCLI_AUTH, --password-file or the inventory)"
        )
        try:
            return self.retry.call(attempt, retry_on=(redis.ConnectionError, redis.TimeoutError))
        except _AuthFailed as failed:
            msg = _safe(failed.exc)
            if _NO_PASSWORD_SET in msg or "no password is set" in msg:
                raise _NoPasswordSet() from None
            raise Unreachable(
                f"{self.address}: authentication failed ({msg})", hint=creds_hint, kind="auth"
            ) from None
        except redis.ResponseError as exc:
            msg = _safe(exc)
            if "NOAUTH" in msg or "AUTH" in msg.upper():
                raise Unreachable(
                    f"{self.address}: authentication required or refused ({msg})",
                    hint=creds_hint,
                    kind="auth",
                ) from None
            raise Unreachable(f"{self.address}: {msg}") from None
        except redis.TimeoutError:
            raise Unreachable(
                f"{self.address}: connect timed out after {self.options.connect_timeout:g}s "
                f"(host down, or a firewall drops the packets)",
                kind="down",
            ) from None
        except (redis.ConnectionError, OSError, redis.InvalidResponse) as exc:
            raise self._transport_failure(exc) from None

    def _transport_failure(self, exc: BaseException) -> Unreachable:
        """The :class:`Unreachable` for a transport error, with its cause named: nothing
        listening, no route, or something other than Redis on the port (a connection
        merely closed is looked into by :meth:`_unreadable`)."""
        import redis

        text = _safe(exc)
        if isinstance(exc, redis.InvalidResponse):
            return NotRedis(f"{self.address}: not a Redis server ({text})", kind="not_redis")
        if text == "connection refused":
            return Unreachable(
                f"{self.address}: connection refused (nothing listens there: is the server running?)",
                kind="down",
            )
        if text in ("no route to host", "unknown host", "unknown host (DNS)"):
            return Unreachable(
                f"{self.address}: {text}", kind="down" if "route" in text else "unknown"
            )
        return Unreachable(f"{self.address}: {text}")

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.disconnect()
            finally:
                self._conn = None

    def __enter__(self) -> RedisNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ commands
    def command_name(self, name: str) -> str | None:
        """The name this node knows ``name`` by (``rename-command``), None when disabled."""
        new = self.options.renamed_commands.get(name.upper())
        if new is None:
            return name
        return new or None

    def _translate(self, cmd: Sequence[Any]) -> list[Any]:
        """The command as it goes on the wire: the one place renamed commands are applied."""
        words = list(cmd)
        name = str(_text(words[0]))
        wire = self.command_name(name)
        if wire is None:
            raise CommandUnavailable(
                f"{self.address}: {_describe(cmd)} cannot run: {name.upper()} is disabled on "
                f'this node (rename-command {name.upper()} "")'
            )
        if wire != name:
            words[0] = wire
        return words

    def execute(self, *args: Any, timeout: float | None = None) -> Any:
        """Send one command; return the raw reply (bytes decoded to str)."""
        return self.pipeline([args], timeout=timeout, raise_errors=True)[0]

    def pipeline(
        self,
        commands: Sequence[Sequence[Any]],
        *,
        timeout: float | None = None,
        raise_errors: bool = True,
        deadline: float | None = None,
        decode: bool = True,
    ) -> list[Any]:
        """Send several commands in one write and read every reply.

        ``timeout`` bounds each read; ``deadline`` (a ``time.monotonic()`` instant) bounds
        all of them together. With ``raise_errors=False`` an error reply (or a command
        disabled on this node) is returned in place as a :class:`CommandFailed` instance
        instead of raised. ``decode=False`` keeps bulk replies as bytes (binary payloads
        such as ``DUMP``).
        """
        import redis

        wire: list[list[Any]] = []
        skipped: list[CommandFailed | None] = []
        for cmd in commands:
            try:
                wire.append(self._translate(cmd))
                skipped.append(None)
            except CommandUnavailable as exc:
                if raise_errors:
                    raise
                skipped.append(exc)
        self.connect()
        conn = self._conn
        assert conn is not None
        waited = timeout if timeout is not None else self.options.socket_timeout
        if deadline is not None:  # the whole budget, for the message
            waited = min(waited, max(deadline - time.monotonic(), 0.001))
        try:
            if wire:
                conn.send_packed_command(conn.pack_commands(wire))
            out: list[Any] = []
            unread = len(wire)
            for cmd, unavailable in zip(commands, skipped, strict=True):
                if unavailable is not None:
                    out.append(unavailable)
                    continue
                unread -= 1
                try:
                    kwargs: dict[str, Any] = {}
                    if deadline is not None:
                        left = max(deadline - time.monotonic(), 0.001)
                        kwargs["timeout"] = left if timeout is None else min(timeout, left)
                    elif timeout is not None:
                        kwargs["timeout"] = timeout
                    reply = conn.read_response(**kwargs)
                    out.append(_text(reply) if decode else reply)
                except redis.ResponseError as exc:
                    err = self._command_error(cmd, exc)
                    if raise_errors:
                        # drain the remaining replies so the connection stays usable
                        for _ in range(unread):
                            try:
                                conn.read_response()
                            except redis.ResponseError:
                                pass
                        raise err from None
                    out.append(err)
            return out
        except RedisopsError:
            raise
        except redis.AuthenticationError as exc:  # NOAUTH: a reply, but redis-py raises
            self.close()
            given = self.options.credentials.present and not self._skip_password
            raise Unreachable(
                f"{self.address}: authentication required ({_safe(exc)})"
                if given
                else f"{self.address}: authentication required, and no password was given "
                f"(set REDISCLI_AUTH, --password-file or the inventory's auth)",
                kind="auth",
            ) from None
        except redis.TimeoutError:
            self.close()
            raise Unreachable(
                f"{self.address}: connected, but no reply within {round(waited, 2):g}s "
                f"(the process may be paused, overloaded or busy with a slow command)",
                kind="no_reply",
            ) from None
        except (redis.ConnectionError, OSError, redis.InvalidResponse) as exc:
            self.close()
            raise self._transport_failure(exc) from None
        except BaseException:
            # interrupted between a command and its reply (Ctrl-C): the reply may still
            # arrive, so this connection cannot be trusted with the next command
            self.close()
            raise

    def _command_error(self, cmd: Sequence[Any], exc: Exception) -> CommandFailed:
        reason = _safe(exc)
        text = f"{self.address}: {_describe(cmd)} failed: {reason}"
        if reason.lower().startswith("unknown command"):
            name = str(_text(cmd[0])).upper()
            return CommandUnavailable(
                text,
                hint=f"{name} may be renamed or disabled on this node (rename-command): "
                f"pass --rename-command {name}=NEWNAME, or renamed_commands in the inventory",
            )
        return CommandFailed(text)

    # ------------------------------------------------------------------ reads
    def probe(self, timeout: float | None = None) -> NodeInfo:
        """Read the node into a :class:`NodeInfo` in one round trip; never raises for I/O.

        ``timeout`` bounds the whole read (every reply): a frozen node costs at most that.
        A node that answers is never reported unreachable because of its version: every
        command here exists on each supported server (see :mod:`redisops.versions`), and a
        section or key a server lacks just comes back empty. Only a node that answers but
        refuses ``INFO replication`` (an ACL, say) cannot be read; its error says so.
        """
        n_info, n_config = len(PROBE_SECTIONS), len(PROBE_CONFIG)
        t0 = time.perf_counter()
        deadline = None if timeout is None else time.monotonic() + timeout
        checked = [c for c in CHECKED_COMMANDS if self.command_name(c)]
        try:
            replies = self.pipeline(
                [
                    *info_commands(PROBE_SECTIONS),
                    ("ROLE",),
                    *config_commands(PROBE_CONFIG),
                    ("PUBSUB", "NUMSUB", SENTINEL_HELLO),
                    ("GET", FENCE_KEY),
                    ("COMMAND", "INFO", *(self.command_name(c) for c in checked)),
                    ("GET", DETACH_KEY),
                ],
                raise_errors=False,
                deadline=deadline,
            )
        except Unreachable as exc:
            return self._unreadable(exc)
        rtt = (time.perf_counter() - t0) * 1000.0
        info_replies = dict(zip(PROBE_SECTIONS, replies[:n_info], strict=True))
        role_reply = replies[n_info]
        config_replies = replies[n_info + 1 : n_info + 1 + n_config]
        numsub, fence, command_info, detached = replies[n_info + 1 + n_config :]
        refused = info_replies["replication"]
        if isinstance(refused, CommandFailed):
            reason = refused.message.removeprefix(f"{self.address}: ")
            auth = "NOAUTH" in reason or "NOPERM" in reason
            return NodeInfo(
                address=self.address,
                reachable=False,
                error=f"it answers, but cannot be read: {reason}"
                + (" (the user lacks a permission redisops needs)" if "NOPERM" in reason else ""),
                read_at=time.time(),
                error_kind="auth" if auth else "unknown",
            )
        info = _merged(info_replies.values(), _info_fields)
        role = None
        if isinstance(role_reply, list):
            try:
                role = parse_role(role_reply)
            except (ValueError, IndexError, TypeError):
                role = None
        config = _merged(config_replies, _pairs)
        extra: dict[str, str] = {}
        if isinstance(numsub, list) and len(numsub) == 2:
            extra["redisops_sentinel_subscribers"] = str(numsub[1])
        if isinstance(fence, str) and fence:
            extra["redisops_fence"] = fence
        if isinstance(detached, str) and detached:
            extra["redisops_detached"] = detached
        if extra:
            info = {**info, **extra}
        return NodeInfo(
            address=self.address,
            reachable=True,
            info=info,
            config=config,
            role_reply=role,
            read_at=time.time(),
            rtt_ms=rtt,
            unavailable=_unavailable(checked, command_info, config_replies[0]),
        )

    def _unreadable(self, exc: Unreachable) -> NodeInfo:
        """The snapshot of a node that could not be read: unreachable, or not Redis at all."""
        reason = exc.message.removeprefix(f"{self.address}: ")
        service = "not-redis" if isinstance(exc, NotRedis) else "redis"
        kind = "not_redis" if service == "not-redis" else exc.kind
        closed = reason in ("connection closed by server", "connection reset")
        direct = not self.options.tls and self.dial is None  # a raw socket to the address
        if service == "redis" and closed and direct:
            other = identify_non_redis(self.address, self.options.connect_timeout)
            if other is not None:
                service, kind, reason = "not-redis", "not_redis", f"not a Redis server ({other})"
        return NodeInfo(
            address=self.address,
            reachable=False,
            error=reason,
            read_at=time.time(),
            service=service,
            error_kind=kind,
        )

    def info(self, *sections: str) -> dict[str, str]:
        """INFO fields of ``sections`` (all default sections when none), one round trip."""
        return _merged(self.pipeline(info_commands(sections)), _info_fields)

    def config_get(self, *keys: str) -> dict[str, str]:
        return _merged(self.pipeline(config_commands(keys)), _pairs)

    def config_set(self, key: str, value: str) -> None:
        self.execute("CONFIG", "SET", key, value)

    def ping(self) -> bool:
        return self.execute("PING") in ("PONG", b"PONG")


@lru_cache(maxsize=1)
def _dialing_classes() -> tuple[type[redis.Connection], type[redis.SSLConnection]]:
    """redis-py connections that open their TCP socket to ``dial_to`` (a local SSH forward)
    instead of host:port. Everything else stays the node's: TLS still verifies the real
    host name, and redis-py's messages name the real address. Overrides redis-py's
    ``_connect`` (the socket factory both connection classes share; 5.x to 8.x)."""
    import redis

    class DialingConnection(redis.Connection):
        dial_to: tuple[str, int]

        def _connect(self) -> socket.socket:
            sock = socket.create_connection(self.dial_to, timeout=self.socket_connect_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(self.socket_timeout)
            return sock

    class DialingSSLConnection(redis.SSLConnection, DialingConnection):
        """SSLConnection._connect wraps what super()._connect returns: the dialed socket."""

    return DialingConnection, DialingSSLConnection


def _unavailable(checked: Sequence[str], command_info: Any, config_reply: Any) -> frozenset[str]:
    """Which of ``checked`` the node does not know (``COMMAND INFO`` answers nil for a name
    that is renamed or disabled), plus those disabled in the session's rename map; when
    ``COMMAND`` itself is unavailable, the ``CONFIG GET`` reply still tells about CONFIG."""
    missing = {c for c in CHECKED_COMMANDS if c not in checked}
    if isinstance(command_info, list) and len(command_info) == len(checked):
        missing.update(c for c, entry in zip(checked, command_info, strict=True) if entry is None)
    elif isinstance(config_reply, CommandUnavailable):
        missing.add("CONFIG")
    return frozenset(missing)


_NO_PASSWORD_SET = "called without any password configured"


class _AuthFailed(Exception):
    """Carries an authentication error through the retry policy (which retries transport
    errors, and redis-py's AuthenticationError is one)."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(str(exc))
        self.exc = exc


class _NoPasswordSet(Exception):
    """The node has no password: AUTH was refused because there is nothing to check."""


def identify_non_redis(address: Address, timeout: float) -> str | None:
    """What answers at ``address`` when it is positively not Redis, else None.

    Sends an inline ``PING`` on a raw socket: every Redis reply starts with a RESP type byte
    (``+PONG``, ``-NOAUTH``...), so anything else is another service. Silence or a closed
    connection proves nothing (a stopped or dying Redis looks the same) and gives None.
    Hand-written because redis-py only reports such peers as a closed connection.
    """
    try:
        with socket.create_connection((address.host, address.port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(b"PING\r\n")
            head = sock.recv(64)
    except OSError:
        return None
    if not head or head[:1] in (b"+", b"-", b":", b"$", b"*", b"_", b"%", b"~", b">"):
        return None
    if head.startswith(b"HTTP/") or head.lstrip().startswith(b"<"):
        return "an HTTP server answers there"
    if head.startswith(b"SSH-"):
        return "an SSH server answers there"
    if head[:1] == b"\x15":
        return "a TLS endpoint answers there: use --tls or a rediss:// address"
    return f"it answered {head[:24]!r} to PING"


_KNOWN_TRANSPORT = (
    ("Connection refused", "connection refused"),
    ("Timeout connecting", "connect timed out"),
    ("Timeout reading", "read timed out"),
    ("timed out", "timed out"),
    ("Name or service not known", "unknown host"),
    ("Temporary failure in name resolution", "unknown host (DNS)"),
    ("No route to host", "no route to host"),
    ("Connection reset", "connection reset"),
    ("Connection closed by server", "connection closed by server"),
)


def _safe(exc: BaseException) -> str:
    """An exception's text, shortened to its first line; common transport errors named plainly.
    Redis quotes the arguments of an unknown command (a password, for ``CONFIG SET
    masterauth``): they are cut off.

    >>> _safe(OSError("Error 111 connecting to 127.0.0.1:1. Connection refused."))
    'connection refused'
    >>> _safe(Exception("unknown command 'CONFIG', with args beginning with: 'SET' 'masterauth' 'pw'"))
    "unknown command 'CONFIG'"
    """
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    for needle, plain in _KNOWN_TRANSPORT:
        if needle in first:
            return plain
    return first.split(", with args beginning with:", 1)[0]


_SECRET_ARGS = {"AUTH": "all", "MASTERAUTH": "all"}


def _describe(cmd: Sequence[Any]) -> str:
    """The command for a message, with any secret argument redacted.

    >>> _describe(["CONFIG", "SET", "masterauth", "pw"])
    'CONFIG SET masterauth ***'
    >>> _describe(["AUTH", "user", "pw"])
    'AUTH ***'
    """
    words = [str(_text(c)) for c in cmd]
    if not words:
        return ""
    head = words[0].upper()
    if head == "AUTH" or head == "HELLO":
        return f"{words[0]} ***"
    if head == "CONFIG" and len(words) >= 4 and words[2].lower() in ("masterauth", "requirepass"):
        return " ".join([*words[:3], "***"])
    return " ".join(words)
