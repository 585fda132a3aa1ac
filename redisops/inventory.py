"""Clusters, credentials and connection settings.

The inventory is a YAML file naming clusters -> nodes, where their password comes from
(an environment variable or a file: never a literal secret), TLS files, sentinels and SSH
settings::

    clusters:
      cache-prod:
        nodes: [10.0.0.1:6379, 10.0.0.2:6379, 10.0.0.3:6379]
        auth: {user: ops, password_env: CACHE_PROD_PASSWORD}   # or password_file: /etc/...
        tls: {cacert: /etc/redis/ca.pem, cert: /etc/redis/client.pem, key: /etc/redis/client.key}
        sentinels: [10.0.0.10:26379, 10.0.0.11:26379]
        sentinel_master: cache-prod
        ssh: {user: admin, identity_file: ~/.ssh/id_ed25519, sudo: true}
        renamed_commands: {CONFIG: SECRETCFG, FLUSHALL: ""}   # the nodes' rename-command lines

A node may also be a mapping with its own ``ssh:`` settings, which win over the cluster's
(``- {address: 10.0.0.3:6379, ssh: {proxy_jump: bastion, tunnel: true}}``). The SSH keys
are described in docs/ssh.md; the settings are used only by commands that need SSH.

Lookup: ``--inventory PATH``, else ``./redisops.yml``, else
``$XDG_CONFIG_HOME/redisops/redisops.yml``. The file is read only when a command names
``--cluster`` or ``--inventory`` (cron runs should not pay for YAML they do not use).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from redisops.errors import CredentialError, InventoryError
from redisops.model import Address, NodeSpec, parse_target

ENV_PASSWORD = "REDISCLI_AUTH"
_SECRET_KEYS = {
    "password",
    "pass",
    "passwd",
    "passphrase",
    "secret",
    "requirepass",
    "masterauth",
    "token",
}


class Secret:
    """A string that never shows itself in repr, str, logs or exceptions.

    >>> s = Secret("hunter2")
    >>> s, str(s), f"{s}"
    (Secret('***'), '***', '***')
    >>> s.reveal()
    'hunter2'
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


@dataclass(frozen=True, slots=True)
class Credentials:
    """Who we authenticate as. ``source`` says where the password came from (for messages)."""

    username: str | None = None
    password: Secret | None = None
    source: str = "none"

    @property
    def present(self) -> bool:
        return self.password is not None


@dataclass(frozen=True, slots=True)
class TLSOptions:
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None
    verify_hostname: bool = True


@dataclass(frozen=True, slots=True)
class SSHSettings:
    """The inventory's ``ssh:`` keys for a cluster or a node; ``None`` means "not set here".

    Per-node settings are laid over the cluster's with :meth:`over`; what is still unset
    comes from ``~/.ssh/config`` and OpenSSH's defaults (see :mod:`redisops.ssh.settings`).

    >>> node = SSHSettings(port=2222, tunnel=True)
    >>> merged = node.over(SSHSettings(user="admin", port=22))
    >>> merged.user, merged.port, merged.tunnel, merged.sudo
    ('admin', 2222, True, None)
    """

    user: str | None = None
    port: int | None = None
    identity_file: str | None = None
    known_hosts: str | None = None
    proxy_jump: str | None = None  # comma-separated hops, as OpenSSH's ProxyJump
    sudo: bool | None = None  # prefix host commands with ``sudo -n``
    tunnel: bool | None = None  # reach Redis through an SSH local forward
    config_file: str | None = None  # the node's redis.conf
    service: str | None = None  # service command template, ``{verb}`` replaced
    passphrase_env: str | None = None  # environment variable holding the key passphrase
    ssh_config: str | None = None  # OpenSSH client config file (default ~/.ssh/config)

    def over(self, base: SSHSettings | None) -> SSHSettings:
        """These settings, with anything unset taken from ``base``."""
        if base is None:
            return self
        values = {
            name: getattr(self, name) if getattr(self, name) is not None else getattr(base, name)
            for name in self.__slots__
        }
        return SSHSettings(**values)


SSH_KEYS = frozenset(SSHSettings.__slots__) | {"key_file"}
_SSH_BOOLS = ("sudo", "tunnel")


def parse_ssh_settings(raw: Any, where: str) -> SSHSettings:
    """Validate one ``ssh:`` mapping (``key_file`` is accepted as ``identity_file``)."""
    if not isinstance(raw, Mapping):
        raise InventoryError(f"{where}: 'ssh' must be a mapping")
    unknown = set(raw) - SSH_KEYS
    if unknown:
        raise InventoryError(
            f"{where}: unknown ssh keys {sorted(unknown)}",
            hint="see docs/ssh.md for the keys (user, port, identity_file, known_hosts, "
            "proxy_jump, sudo, tunnel, config_file, service, passphrase_env, ssh_config)",
        )
    port = raw.get("port")
    if port is not None and (
        isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535
    ):
        raise InventoryError(f"{where}: ssh.port must be a number from 1 to 65535")
    for name in _SSH_BOOLS:
        if raw.get(name) is not None and not isinstance(raw.get(name), bool):
            raise InventoryError(f"{where}: ssh.{name} must be true or false")
    service = _str_or_none(raw.get("service"), f"{where}.ssh.service")
    if service is not None and "{verb}" not in service:
        raise InventoryError(
            f"{where}: ssh.service must contain {{verb}}",
            hint="e.g. 'systemctl {verb} redis-server@6380'",
        )
    identity = raw.get("identity_file", raw.get("key_file"))
    strings = {
        name: _str_or_none(raw.get(name), f"{where}.ssh.{name}")
        for name in (
            "user",
            "known_hosts",
            "proxy_jump",
            "config_file",
            "passphrase_env",
            "ssh_config",
        )
    }
    return SSHSettings(
        port=port,
        identity_file=_str_or_none(identity, f"{where}.ssh.identity_file"),
        sudo=raw.get("sudo"),
        tunnel=raw.get("tunnel"),
        service=service,
        **strings,
    )


@dataclass(frozen=True)
class ConnectOptions:
    """Everything an adapter needs to open a connection, except the address.

    ``renamed_commands`` mirrors the nodes' ``rename-command`` lines: original name (upper
    case) -> the name the nodes know it by, ``""`` when the command is disabled.
    """

    credentials: Credentials = field(default_factory=Credentials)
    tls: TLSOptions | None = None
    connect_timeout: float = 1.5
    socket_timeout: float = 5.0
    renamed_commands: Mapping[str, str] = field(default_factory=dict)

    def for_spec(self, spec: NodeSpec) -> ConnectOptions:
        """Per-node variant: a ``rediss://`` URL turns TLS on, a URL user replaces the user."""
        creds = self.credentials
        if spec.username and spec.username != creds.username:
            creds = Credentials(spec.username, creds.password, creds.source)
        tls = self.tls if self.tls is not None else (TLSOptions() if spec.tls else None)
        if creds is self.credentials and tls is self.tls:
            return self
        return replace(self, credentials=creds, tls=tls)


_COMMAND_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_|-]*$")


def parse_renames(items: Iterable[tuple[object, object]], where: str) -> dict[str, str]:
    """Validate ``(original, new name)`` pairs into the ``renamed_commands`` map.

    The new name is what the node's ``rename-command ORIGINAL NEW`` line says; ``""``
    means the command is disabled there.

    >>> parse_renames([("config", "SECRETCFG"), ("FLUSHALL", "")], "--rename-command")
    {'CONFIG': 'SECRETCFG', 'FLUSHALL': ''}
    """
    out: dict[str, str] = {}
    for original, new in items:
        name = str(original).strip()
        target = "" if new is None else str(new).strip()
        if not _COMMAND_NAME.match(name):
            raise InventoryError(
                f"{where}: {name!r} is not a command name",
                hint="write ORIGINAL=NEWNAME, e.g. CONFIG=SECRETCFG (CONFIG= when disabled)",
            )
        if target and any(c.isspace() or not c.isprintable() for c in target):
            raise InventoryError(f"{where}: the new name for {name.upper()} contains spaces")
        out[name.upper()] = target
    return out


@dataclass(frozen=True)
class ClusterConfig:
    name: str
    nodes: tuple[NodeSpec, ...]
    user: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    tls: TLSOptions | None = None
    sentinels: tuple[Address, ...] = ()
    sentinel_master: str | None = None
    ssh: SSHSettings | None = None
    node_ssh: Mapping[Address, SSHSettings] = field(default_factory=dict)
    renamed_commands: Mapping[str, str] = field(default_factory=dict)
    checks: CheckSettings | None = None

    def ssh_for(self, address: Address) -> SSHSettings | None:
        """The SSH settings of one node: its own, laid over the cluster's."""
        own = self.node_ssh.get(address)
        return own.over(self.ssh) if own is not None else self.ssh


@dataclass(frozen=True)
class CheckSettings:
    """Per-cluster health-check settings: ``checks: {warn: {ID: RANGE}, crit: {...},
    expect_replicas: N}`` (ranges are validated by ``redisops check``)."""

    warn: Mapping[str, str] = field(default_factory=dict)
    crit: Mapping[str, str] = field(default_factory=dict)
    expect_replicas: int | None = None


def _parse_checks(raw: Any, where: str) -> CheckSettings | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise InventoryError(f"{where}: 'checks' must be a mapping")
    unknown = set(raw) - {"warn", "crit", "expect_replicas"}
    if unknown:
        raise InventoryError(
            f"{where}: unknown checks keys {sorted(unknown)}",
            hint="use warn, crit or expect_replicas",
        )
    ranges: dict[str, dict[str, str]] = {}
    for kind in ("warn", "crit"):
        value = raw.get(kind) or {}
        if not isinstance(value, Mapping):
            raise InventoryError(f"{where}: checks.{kind} must map check ids to ranges")
        ranges[kind] = {str(k): str(v) for k, v in value.items()}
    expect = raw.get("expect_replicas")
    if expect is not None and (not isinstance(expect, int) or expect < 0):
        raise InventoryError(f"{where}: checks.expect_replicas must be a number >= 0")
    return CheckSettings(ranges["warn"], ranges["crit"], expect)


@dataclass(frozen=True)
class Inventory:
    path: Path | None
    clusters: Mapping[str, ClusterConfig]

    def cluster(self, name: str) -> ClusterConfig:
        try:
            return self.clusters[name]
        except KeyError:
            if self.path is None:
                looked = ", ".join(str(p.absolute()) for p in default_inventory_paths())
                raise InventoryError(
                    f"--cluster {name}: no inventory file found (looked for {looked})",
                    hint="create one there or name it with --inventory PATH",
                ) from None
            known = ", ".join(sorted(self.clusters)) or "none"
            raise InventoryError(
                f"no cluster named {name!r} in {self.path}", hint=f"known clusters: {known}"
            ) from None


def default_inventory_paths() -> list[Path]:
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return [Path("redisops.yml"), Path(xdg) / "redisops" / "redisops.yml"]


def find_inventory(explicit: Path | None) -> Path | None:
    if explicit is not None:
        if not explicit.is_file():
            raise InventoryError(
                f"inventory file {explicit} not found", hint="check --inventory PATH"
            )
        return explicit
    for candidate in default_inventory_paths():
        if candidate.is_file():
            return candidate
    return None


def _reject_secrets(obj: Any, where: str) -> None:
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            if str(key).lower() in _SECRET_KEYS:
                raise InventoryError(
                    f"{where}: key {key!r} holds a literal secret, which the inventory must not contain",
                    hint="name an environment variable (password_env) or a file (password_file) instead",
                )
            _reject_secrets(value, f"{where}.{key}")
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            _reject_secrets(value, f"{where}[{i}]")


def _str_or_none(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, int)):
        raise InventoryError(f"{where} must be a string")
    return str(value)


def parse_inventory(data: Any, path: Path | None = None) -> Inventory:
    """Validate a loaded YAML document into an :class:`Inventory`.

    >>> inv = parse_inventory({"clusters": {"c": {"nodes": ["127.0.0.1:7000"],
    ...                        "auth": {"password_env": "C_PW"}}}})
    >>> inv.cluster("c").nodes[0].address.port, inv.cluster("c").password_env
    (7000, 'C_PW')
    """
    name = str(path) if path else "inventory"
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise InventoryError(f"{name}: top level must be a mapping with a 'clusters' key")
    _reject_secrets(data, name)
    raw_clusters = data.get("clusters", {})
    if not isinstance(raw_clusters, Mapping):
        raise InventoryError(f"{name}: 'clusters' must map cluster names to settings")
    clusters: dict[str, ClusterConfig] = {}
    for cname, raw in raw_clusters.items():
        where = f"{name}: cluster {cname!r}"
        if not isinstance(raw, Mapping):
            raise InventoryError(f"{where} must be a mapping")
        nodes_raw = raw.get("nodes")
        if not isinstance(nodes_raw, list) or not nodes_raw:
            raise InventoryError(f"{where} needs a non-empty 'nodes' list")
        nodes, node_ssh = _parse_nodes(nodes_raw, where)
        auth = raw.get("auth") or {}
        if not isinstance(auth, Mapping):
            raise InventoryError(f"{where}: 'auth' must be a mapping")
        unknown = set(auth) - {"user", "password_env", "password_file"}
        if unknown:
            raise InventoryError(
                f"{where}: unknown auth keys {sorted(unknown)}",
                hint="use user, password_env or password_file",
            )
        tls_raw = raw.get("tls")
        tls: TLSOptions | None = None
        if tls_raw:
            if tls_raw is True:
                tls = TLSOptions()
            elif isinstance(tls_raw, Mapping):
                tls = TLSOptions(
                    cacert=_str_or_none(tls_raw.get("cacert"), f"{where}.tls.cacert"),
                    cert=_str_or_none(tls_raw.get("cert"), f"{where}.tls.cert"),
                    key=_str_or_none(tls_raw.get("key"), f"{where}.tls.key"),
                    verify_hostname=bool(tls_raw.get("verify_hostname", True)),
                )
            else:
                raise InventoryError(f"{where}: 'tls' must be true or a mapping")
        sentinels_raw = raw.get("sentinels") or []
        if not isinstance(sentinels_raw, list):
            raise InventoryError(f"{where}: 'sentinels' must be a list")
        try:
            sentinels = tuple(parse_target(str(s)).address for s in sentinels_raw)
        except Exception as exc:
            raise InventoryError(f"{where}: sentinel: {exc}") from None
        ssh_raw = raw.get("ssh")
        ssh = parse_ssh_settings(ssh_raw, where) if ssh_raw is not None else None
        renames_raw = raw.get("renamed_commands") or {}
        if not isinstance(renames_raw, Mapping):
            raise InventoryError(
                f"{where}: 'renamed_commands' must map command names to their new names",
                hint='e.g. renamed_commands: {CONFIG: SECRETCFG, FLUSHALL: ""}',
            )
        renamed = parse_renames(renames_raw.items(), f"{where}.renamed_commands")
        clusters[str(cname)] = ClusterConfig(
            name=str(cname),
            nodes=nodes,
            user=_str_or_none(auth.get("user"), f"{where}.auth.user"),
            password_env=_str_or_none(auth.get("password_env"), f"{where}.auth.password_env"),
            password_file=_str_or_none(auth.get("password_file"), f"{where}.auth.password_file"),
            tls=tls,
            sentinels=sentinels,
            sentinel_master=_str_or_none(raw.get("sentinel_master"), f"{where}.sentinel_master"),
            ssh=ssh,
            node_ssh=node_ssh,
            renamed_commands=renamed,
            checks=_parse_checks(raw.get("checks"), where),
        )
    return Inventory(path=path, clusters=clusters)


def _parse_nodes(
    nodes_raw: list[Any], where: str
) -> tuple[tuple[NodeSpec, ...], dict[Address, SSHSettings]]:
    """A cluster's ``nodes``: each ``HOST:PORT`` or ``{address: HOST:PORT, ssh: {...}}``."""
    specs: list[NodeSpec] = []
    node_ssh: dict[Address, SSHSettings] = {}
    for i, item in enumerate(nodes_raw):
        here = f"{where}: nodes[{i}]"
        text = item
        if isinstance(item, Mapping):
            unknown = set(item) - {"address", "ssh"}
            if unknown or "address" not in item:
                raise InventoryError(
                    f"{here} must be HOST:PORT or a mapping with 'address' (and 'ssh')",
                    hint=f"unknown keys {sorted(unknown)}" if unknown else None,
                )
            text = item["address"]
        try:
            spec = parse_target(str(text))
        except Exception as exc:
            raise InventoryError(f"{here}: {exc}") from None
        specs.append(spec)
        if isinstance(item, Mapping) and item.get("ssh") is not None:
            node_ssh[spec.address] = parse_ssh_settings(item["ssh"], here)
    return tuple(specs), node_ssh


def load_inventory(explicit: Path | None) -> Inventory:
    path = find_inventory(explicit)
    if path is None:
        return Inventory(path=None, clusters={})
    import yaml  # only when an inventory is actually used

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InventoryError(f"cannot read inventory {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InventoryError(f"inventory {path} is not valid YAML{where}") from None
    return parse_inventory(data, path)


def read_password_file(path: str | Path) -> Secret:
    """Read a password from the first line of a file (trailing newline stripped)."""
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CredentialError(f"password file {p} not found") from None
    except OSError as exc:
        raise CredentialError(f"cannot read password file {p}: {exc.strerror}") from None
    value = text.splitlines()[0] if text else ""
    if not value:
        raise CredentialError(f"password file {p} is empty")
    return Secret(value)


def resolve_credentials(
    *,
    user: str | None,
    password_file: Path | None,
    cluster: ClusterConfig | None,
    environ: Mapping[str, str] | None = None,
) -> Credentials:
    """Pick the credentials: ``--password-file`` > ``REDISCLI_AUTH`` > the inventory.

    >>> resolve_credentials(user=None, password_file=None, cluster=None,
    ...                     environ={"REDISCLI_AUTH": "pw"}).source
    'env REDISCLI_AUTH'
    """
    env = os.environ if environ is None else environ
    username = user or (cluster.user if cluster else None)
    if password_file is not None:
        return Credentials(username, read_password_file(password_file), f"file {password_file}")
    if env.get(ENV_PASSWORD):
        return Credentials(username, Secret(env[ENV_PASSWORD]), f"env {ENV_PASSWORD}")
    if cluster is not None:
        if cluster.password_env:
            value = env.get(cluster.password_env)
            if not value:
                raise CredentialError(
                    f"cluster {cluster.name!r} takes its password from ${cluster.password_env}, which is not set",
                    hint=f"export {cluster.password_env}=... or use --password-file",
                )
            return Credentials(username, Secret(value), f"env {cluster.password_env}")
        if cluster.password_file:
            return Credentials(
                username, read_password_file(cluster.password_file), f"file {cluster.password_file}"
            )
    return Credentials(username, None, "none")
