"""Who to connect as, and how: the SSH settings of one host, resolved.

Most specific wins: the ``--ssh-*`` options, then the node's ``ssh:`` in the inventory,
then the cluster's, then the OpenSSH client config (``ssh_config`` from the inventory, else
``~/.ssh/config`` followed by ``/etc/ssh/ssh_config``: ``HostName``, ``User``, ``Port``,
``IdentityFile``, ``ProxyJump``, ``UserKnownHostsFile``, ``GlobalKnownHostsFile``,
``HostKeyAlias``, ``HashKnownHosts``), then OpenSSH's defaults.

Nothing here opens a connection, and paramiko is imported only to parse an ssh_config file
that exists (its parser implements the ``Host``/``Match`` rules and ``%`` tokens).
"""

from __future__ import annotations

import getpass
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from redisops.errors import BadInput
from redisops.inventory import SSHSettings

DEFAULT_SERVICE = "systemctl {verb} redis-server"
DEFAULT_IDENTITIES = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")
DEFAULT_USER_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
DEFAULT_GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
SYSTEM_SSH_CONFIG = "/etc/ssh/ssh_config"
MAX_HOPS = 8


@dataclass(frozen=True, slots=True)
class SSHOptions:
    """What the ``--ssh-*`` command-line options said (they win over every other source)."""

    user: str | None = None
    port: int | None = None
    key: str | None = None
    known_hosts: str | None = None
    accept_new: bool = False
    via_ssh: bool = False

    @property
    def given(self) -> bool:
        """True when any option asks for SSH (so local nodes are reached over it too)."""
        return any(
            (self.user, self.port, self.key, self.known_hosts, self.accept_new, self.via_ssh)
        )


@dataclass(frozen=True, slots=True)
class SSHTarget:
    """One SSH server to connect to, fully resolved; ``via`` is the jump host before it."""

    alias: str  # the name as written (node host or jump spec), for messages
    hostname: str  # where the TCP connection goes
    port: int
    user: str
    identity_files: tuple[str, ...] = ()
    explicit_identities: bool = False  # given by option/inventory/IdentityFile
    passphrase_env: str | None = None
    user_known_hosts: tuple[str, ...] = ()
    global_known_hosts: tuple[str, ...] = ()
    hostkey_alias: str | None = None
    hash_known_hosts: bool = False
    accept_new: bool = False
    via: SSHTarget | None = None
    connect_timeout: float = 10.0

    @property
    def known_hosts_name(self) -> str:
        """The name known_hosts files list this server under (``[host]:port`` off port 22)."""
        name = self.hostkey_alias or self.hostname
        return name if self.port == 22 else f"[{name}]:{self.port}"

    @property
    def known_hosts_files(self) -> tuple[str, ...]:
        return (*self.user_known_hosts, *self.global_known_hosts)

    @property
    def key(self) -> tuple[Any, ...]:
        """Identity for pooling: one connection per (user, host, port, route) per run."""
        return (self.user, self.hostname, self.port, self.via.key if self.via else None)

    def __str__(self) -> str:
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return f"{self.user}@{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class NodeSSH:
    """A node's SSH access: the server to reach, and what to do there."""

    target: SSHTarget
    sudo: bool = False
    tunnel: bool = False
    config_file: str | None = None
    service: str = DEFAULT_SERVICE


# ----------------------------------------------------------------------------- ssh_config

_config_lock = threading.Lock()
_config_cache: dict[tuple[str, ...], Any] = {}


def _ssh_config(paths: tuple[str, ...]) -> Any | None:
    """The parsed OpenSSH client config of these files (first value wins), once per run."""
    existing = tuple(p for p in paths if Path(p).is_file())
    if not existing:
        return None
    with _config_lock:
        if existing in _config_cache:
            return _config_cache[existing]
        import paramiko

        config = paramiko.SSHConfig()
        for path in existing:
            try:
                with open(path, encoding="utf-8") as fh:
                    config.parse(fh)
            except (OSError, UnicodeDecodeError) as exc:
                raise BadInput(f"cannot read ssh config {path}: {exc}") from None
            except Exception as exc:  # paramiko.ConfigParseError and friends
                raise BadInput(
                    f"ssh config {path} cannot be parsed: {exc}",
                    hint="fix the file or name another with ssh_config: in the inventory",
                ) from None
        _config_cache[existing] = config
        return config


def _lookup(config: Any | None, host: str) -> Mapping[str, Any]:
    if config is None:
        return {}
    try:
        return dict(config.lookup(host))
    except Exception as exc:  # Match exec needs invoke; a bad Match line
        raise BadInput(f"ssh config: cannot look up {host!r}: {exc}") from None


def config_paths(explicit: str | None) -> tuple[str, ...]:
    """The ssh_config files to read: the inventory's, else the user's and the system's."""
    if explicit:
        path = os.path.expanduser(explicit)
        if not Path(path).is_file():
            raise BadInput(f"ssh config file {explicit} not found", hint="check ssh_config:")
        return (path,)
    return (os.path.expanduser("~/.ssh/config"), SYSTEM_SSH_CONFIG)


# ----------------------------------------------------------------------------- resolution


def split_jump(spec: str) -> tuple[str | None, str, int | None]:
    """``[user@]host[:port]`` (or ``ssh://...``, ``[v6]:port``) as (user, host, port).

    >>> split_jump("ops@bastion:2222"), split_jump("[::1]:22"), split_jump("gw")
    (('ops', 'bastion', 2222), (None, '::1', 22), (None, 'gw', None))
    """
    text = spec.strip().removeprefix("ssh://").rstrip("/")
    user: str | None = None
    if "@" in text:
        user, _, text = text.rpartition("@")
    port: int | None = None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = _port(rest[1:], spec)
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        port = _port(p, spec)
    else:
        host = text
    if not host or any(c.isspace() for c in host):
        raise BadInput(f"invalid jump host {spec!r}", hint="write it as [user@]host[:port]")
    return user or None, host, port


def _port(text: str, where: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise BadInput(f"invalid port in {where!r}", hint="a port is a number from 1 to 65535")
    return int(text)


def _files(value: Any) -> list[str]:
    """An ssh_config file list (``UserKnownHostsFile a b``, or repeated ``IdentityFile``)."""
    if value is None:
        return []
    items = value if isinstance(value, list) else str(value).split()
    out = []
    for item in items:
        for path in str(item).split():
            if path.lower() != "none":
                out.append(os.path.expanduser(path))
    return out


@dataclass
class Resolver:
    """Turns (host, inventory settings, options) into :class:`NodeSSH`/:class:`SSHTarget`."""

    options: SSHOptions = field(default_factory=SSHOptions)
    connect_timeout: float = 10.0

    def node(self, host: str, settings: SSHSettings | None) -> NodeSSH:
        """The SSH access for a node whose Redis address host is ``host``."""
        s = settings or SSHSettings()
        target = self.target(host, s, final=True)
        return NodeSSH(
            target=target,
            sudo=bool(s.sudo),
            tunnel=bool(self.options.via_ssh or s.tunnel),
            config_file=s.config_file,
            service=s.service or DEFAULT_SERVICE,
        )

    def machine(self, host: str, user: str | None = None, port: int | None = None) -> NodeSSH:
        """The SSH access for a machine that is not a node (a backup destination): the user
        and port given here (an ``sftp://user@host:port`` URL), else ``ssh_config``, else
        OpenSSH's defaults; the ``--ssh-key``/``--ssh-known-hosts``/``--ssh-accept-new``
        options apply, the node-only ``--ssh-user``/``--ssh-port`` do not."""
        return NodeSSH(target=self.target(host, SSHSettings(), final=False, user=user, port=port))

    def target(
        self,
        host: str,
        s: SSHSettings,
        *,
        final: bool,
        user: str | None = None,
        port: int | None = None,
        depth: int = 0,
        no_jump: bool = False,
    ) -> SSHTarget:
        opts = self.options
        paths = config_paths(s.ssh_config)
        cfg = _lookup(_ssh_config(paths), host)
        if final:
            user = opts.user or s.user or user
            port = opts.port or s.port or port
        user = user or cfg.get("user") or _local_user()
        port = port or _port(str(cfg.get("port", 22)), f"Port of {host}")
        identities, explicit = _identities(opts, s, cfg)
        user_kh, global_kh = _known_hosts_files(opts, s, cfg)
        jump_spec = (s.proxy_jump if final else None) or cfg.get("proxyjump")
        via: SSHTarget | None = None
        if jump_spec and str(jump_spec).lower() != "none" and not no_jump:
            if depth >= MAX_HOPS:
                raise BadInput(f"ProxyJump for {host} nests more than {MAX_HOPS} hops")
            via = self._jumps(str(jump_spec), s, depth)
        return SSHTarget(
            alias=host,
            hostname=str(cfg.get("hostname") or host),
            port=port,
            user=user,
            identity_files=tuple(dict.fromkeys(identities)),
            explicit_identities=explicit,
            passphrase_env=s.passphrase_env,
            user_known_hosts=tuple(dict.fromkeys(user_kh)),
            global_known_hosts=tuple(dict.fromkeys(global_kh)),
            hostkey_alias=cfg.get("hostkeyalias"),
            hash_known_hosts=str(cfg.get("hashknownhosts", "no")).lower() == "yes",
            accept_new=opts.accept_new,
            via=via,
            connect_timeout=self.connect_timeout,
        )

    def _jumps(self, spec: str, s: SSHSettings, depth: int) -> SSHTarget:
        """OpenSSH's ProxyJump ``a,b``: connect to ``a`` (through its own ProxyJump, if its
        ssh_config has one), then to ``b`` through ``a``; the target goes through the last.
        Each hop's ssh_config applies, and so do the inventory's identity file, known_hosts
        and passphrase: one host-key policy at every hop."""
        hop_settings = SSHSettings(
            identity_file=s.identity_file,
            known_hosts=s.known_hosts,
            passphrase_env=s.passphrase_env,
            ssh_config=s.ssh_config,
        )
        last: SSHTarget | None = None
        for part in spec.split(","):
            user, host, port = split_jump(part)
            hop = self.target(
                host,
                hop_settings,
                final=False,
                user=user,
                port=port,
                depth=depth + 1,
                no_jump=last is not None,
            )
            last = hop if last is None else replace(hop, via=last)
        assert last is not None
        return last


def _identities(opts: SSHOptions, s: SSHSettings, cfg: Mapping[str, Any]) -> tuple[list[str], bool]:
    """Key files to try, most specific first, and whether any was named (OpenSSH tries its
    default files only when no IdentityFile is given)."""
    named = [os.path.expanduser(k) for k in (opts.key, s.identity_file) if k]
    named += _files(cfg.get("identityfile"))
    if named:
        return named, True
    return [os.path.expanduser(p) for p in DEFAULT_IDENTITIES], False


def _known_hosts_files(
    opts: SSHOptions, s: SSHSettings, cfg: Mapping[str, Any]
) -> tuple[list[str], list[str]]:
    """(user files, system files): the first user file is where accept-new records."""
    if opts.known_hosts or s.known_hosts:
        user = [os.path.expanduser(str(opts.known_hosts or s.known_hosts))]
    elif "userknownhostsfile" in cfg:
        user = _files(cfg.get("userknownhostsfile"))
    else:
        user = [os.path.expanduser(p) for p in DEFAULT_USER_KNOWN_HOSTS]
    if "globalknownhostsfile" in cfg:
        return user, _files(cfg.get("globalknownhostsfile"))
    return user, list(DEFAULT_GLOBAL_KNOWN_HOSTS)


def route(target: SSHTarget) -> list[SSHTarget]:
    """The servers to connect to in order, the target last.

    >>> a = SSHTarget("a", "a", 22, "u")
    >>> b = SSHTarget("b", "b", 22, "u", via=a)
    >>> [t.alias for t in route(SSHTarget("c", "c", 22, "u", via=b))]
    ['a', 'b', 'c']
    """
    hops: list[SSHTarget] = []
    t: SSHTarget | None = target
    while t is not None:
        hops.append(t)
        t = t.via
    return hops[::-1]


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no passwd entry
        return str(os.getuid())
