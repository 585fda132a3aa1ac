"""A session: resolved credentials and settings, plus cached connections to nodes.

It is what the CLI builds from its options and hands to ``ops``: "how do I reach node X,
and what does the cluster look like now". It owns the adapters' lifetimes (``close()``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from redisops.errors import BadInput
from redisops.inventory import (
    ClusterConfig,
    ConnectOptions,
    Credentials,
    SSHSettings,
    TLSOptions,
    load_inventory,
    parse_renames,
    resolve_credentials,
)
from redisops.model import Address, NodeInfo, NodeSpec, Problem, Topology, parse_target
from redisops.redis_node import Dial, RedisNode
from redisops.resolve import resolve_host
from redisops.retry import CONNECT_RETRY, RetryPolicy
from redisops.topology import discover

if TYPE_CHECKING:  # pragma: no cover
    from redisops.host import Host
    from redisops.ssh.pool import SSHPool
    from redisops.ssh.settings import NodeSSH, Resolver, SSHOptions


@dataclass
class Session:
    options: ConnectOptions
    seeds: tuple[NodeSpec, ...] = ()
    cluster: ClusterConfig | None = None
    retry: RetryPolicy = CONNECT_RETRY
    sentinels: tuple[Address, ...] = ()
    sentinel_master: str | None = None
    #: seconds one node's probe may take in all (connect and every read): a frozen node
    #: costs at most this
    probe_timeout: float = 3.0
    #: things to tell the operator that did not stop the command (printed on stderr)
    warnings: list[str] = field(default_factory=list)
    #: nodes that turned out to have no password (the credentials were not needed there)
    passwordless: set[Address] = field(default_factory=set)
    #: the --ssh-* options; with none given and no ssh: in the inventory, SSH is not used
    ssh: SSHOptions | None = None
    #: where the SSH layer reports what it did on its own (a host key it recorded)
    notify: Callable[[str], None] | None = None
    #: what the last-known topology records as its source (None: record nothing)
    purpose: str | None = "operation"
    #: seconds one wave of discovery probes may take (None: the socket timeouts bound it)
    probe_deadline: float | None = None
    _specs: dict[Address, NodeSpec] = field(default_factory=dict)
    _nodes: dict[Address, RedisNode] = field(default_factory=dict)
    _ssh_lock: threading.Lock = field(default_factory=threading.Lock)
    _ssh_pool: SSHPool | None = None
    _ssh_resolver: Resolver | None = None
    _ssh_nodes: dict[tuple[str, SSHSettings | None], NodeSSH] = field(default_factory=dict)
    _options: dict[Address, ConnectOptions] = field(default_factory=dict)
    _discovered_name: str | None = None

    def __post_init__(self) -> None:
        for spec in self.seeds:
            self._specs.setdefault(spec.address, spec)

    @property
    def cluster_name(self) -> str:
        """A stable name for locks and audit records: the inventory name or the seeds."""
        if self.cluster is not None:
            return self.cluster.name
        if self._discovered_name is not None:
            return self._discovered_name
        return ",".join(sorted(str(s.address) for s in self.seeds)) or "adhoc"

    def set_options(self, address: Address, options: ConnectOptions) -> None:
        """Connect to ``address`` with ``options`` instead of the session's (a server the
        operation itself started, e.g. the throwaway server of an online restore)."""
        self._options[address] = options
        old = self._nodes.pop(address, None)
        if old is not None:
            old.close()

    def options_for(self, address: Address) -> ConnectOptions:
        if address in self._options:
            return self._options[address]
        spec = self._specs.get(address)
        if spec is not None:
            return self.options.for_spec(spec)
        if self.options.tls is None and any(s.tls for s in self.seeds):
            return self.options.for_spec(NodeSpec(address, None, True))
        return self.options

    def node(self, address: Address) -> RedisNode:
        """A connected-on-demand adapter for ``address``, cached for the session."""
        node = self._nodes.get(address)
        if node is None:
            node = self.fresh_node(address)
            self._nodes[address] = node
        return node

    def fresh_node(
        self,
        address: Address,
        retry: RetryPolicy | None = None,
        options: ConnectOptions | None = None,
    ) -> RedisNode:
        """A new, uncached adapter (for a second connection, e.g. a writer or a lock holder)."""
        return RedisNode(
            address,
            options or self.options_for(address),
            retry or self.retry,
            self._dial(address),
            on_warning=self.warn,
            on_no_password=self.passwordless.add,
        )

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def credentials_for(self, address: Address) -> Credentials:
        """The credentials that work on ``address``: none for a node found to have no
        password (e.g. what a replica must be given as masterauth for it)."""
        if address in self.passwordless:
            return Credentials()
        return self.options_for(address).credentials

    def host(self, address: Address) -> Host:
        """Shell and file access to the machine that runs ``address`` (see :mod:`redisops.host`).

        A node with SSH settings (the inventory's ``ssh:``, or any ``--ssh-*`` option) gets
        the SSH adapter's host, over the run's one connection to that machine; other nodes on
        this machine get a :class:`~redisops.host.LocalHost`.
        """
        node_ssh = self.ssh_for(address)
        if node_ssh is None:
            from redisops.host import local_host_for

            return local_host_for(address.host, str(address))
        return self.ssh_pool().host(node_ssh)

    # ------------------------------------------------------------------ SSH
    def ssh_settings(self, address: Address) -> SSHSettings | None:
        """The inventory's SSH settings for a node; None when SSH is not to be used for it."""
        settings = self.cluster.ssh_for(address) if self.cluster is not None else None
        if settings is None and (self.ssh is None or not self.ssh.given):
            return None
        return settings or SSHSettings()

    def ssh_for(self, address: Address) -> NodeSSH | None:
        """How to reach a node's machine over SSH, resolved (None: SSH is not used for it)."""
        settings = self.ssh_settings(address)
        if settings is None:
            return None
        key = (address.host, settings)
        resolver = self._resolver()
        with self._ssh_lock:
            found = self._ssh_nodes.get(key)
            if found is None:
                found = self._ssh_nodes[key] = resolver.node(address.host, settings)
            return found

    def _resolver(self) -> Resolver:
        with self._ssh_lock:
            if self._ssh_resolver is None:
                from redisops.ssh.settings import Resolver, SSHOptions

                self._ssh_resolver = Resolver(self.ssh or SSHOptions())
            return self._ssh_resolver

    def machine_host(self, hostname: str, user: str | None = None, port: int | None = None) -> Host:
        """Shell and file access over SSH to a machine that is not a node (a backup
        destination), over the run's connections: see
        :meth:`~redisops.ssh.settings.Resolver.machine` for which settings apply."""
        return self.ssh_pool().host(self._resolver().machine(hostname, user, port))

    def open_host(self, address: Address) -> None:
        """Connect to the node's machine now (SSH handshake, host key, login), so that the
        connection is ready when :meth:`host` is used; nothing to do for local nodes."""
        node_ssh = self.ssh_for(address)
        if node_ssh is not None:
            self.ssh_pool().connection(node_ssh.target)

    def ssh_pool(self) -> SSHPool:
        """The run's SSH connections (one per host), created on first use."""
        with self._ssh_lock:
            if self._ssh_pool is None:
                from redisops.ssh.pool import SSHPool

                self._ssh_pool = SSHPool(notify=self.notify)
            return self._ssh_pool

    def _dial(self, address: Address) -> Dial | None:
        """For a tunnelled node (``tunnel: true`` or ``--via-ssh``): open (once per run) the
        local forward to it and hand out its address at each connect."""
        settings = self.ssh_settings(address)
        if settings is None or not (settings.tunnel or (self.ssh is not None and self.ssh.via_ssh)):
            return None

        def dial() -> tuple[str, int]:
            node_ssh = self.ssh_for(address)
            assert node_ssh is not None
            forward = self.ssh_pool().forwarder(node_ssh.target, address.host, address.port)
            return forward.prepare()

        return dial

    def probe(self, address: Address) -> NodeInfo:
        """Read one node, bounded by ``probe_timeout`` in all (connect and reads).

        Each probe gets its own connection: discovery probes in parallel threads.
        """
        base = self.options_for(address)
        bounded = replace(
            base,
            connect_timeout=min(base.connect_timeout, self.probe_timeout),
            socket_timeout=min(base.socket_timeout, self.probe_timeout),
        )
        with self.fresh_node(address, options=bounded) as n:
            return n.probe(self.probe_timeout)

    def probe_all(self, addresses: Iterable[Address]) -> list[NodeInfo]:
        """Probe several nodes at once (each bounded by ``probe_timeout``)."""
        from redisops.topology import probe_all

        return probe_all(list(addresses), self.probe, True, self.probe_deadline)

    def discover(self, extra: Iterable[Address] = ()) -> Topology:
        seeds = [s.address for s in self.seeds]
        seeds.extend(extra)
        if not seeds:
            raise BadInput("no node to start from", hint="give a SEED address or --cluster NAME")
        topo = discover(seeds, self.probe, deadline=self.probe_deadline, resolve=resolve_host)
        if self._discovered_name is None:
            # name the cluster after its master, so every command on it shares one lock
            masters = topo.masters
            if masters:
                self._discovered_name = str(masters[0].address)
        if self.purpose is not None:
            from redisops.state import record_topology

            record_topology(topo, self.cluster.name if self.cluster else None, self.purpose)
        return topo

    def with_last_known(self, topo: Topology, extra: Iterable[Address] = ()) -> Topology:
        """Complete ``topo`` from the last-known topology (see :mod:`redisops.state`).

        A node that does not answer (a dead master) cannot name its replicas, and a master
        does not list a replica that is gone: probe the nodes last seen in the group too.
        One that answers from outside the group (moved, or made a master) has left it and is
        not added; one that does not answer, or still replicates inside the group, is. A
        note says how old the knowledge is for each silent node.
        """
        import time

        from redisops.model import Problem
        from redisops.state import KNOWN_MAX_AGE, group_index
        from redisops.topology import fence_records, fences_one_of, probe_all

        now = time.time()
        index = group_index()
        notes: list[Problem] = []
        candidates: list[Address] = []
        groups_seen: set[str] = set()
        for node in topo.nodes:
            known = index.get(str(node.address))
            if known is None:
                continue
            if known.group not in groups_seen:
                groups_seen.add(known.group)
                candidates += [Address.parse(a) for a in known.members()]
            if node.reachable:
                continue
            seen = known.seen_at(str(node.address))
            was = known.node(str(node.address))
            role = was.role if was is not None else "?"
            reps = ", ".join(known.replicas_of(str(node.address))) or "none"
            last = (
                f"last seen {now - seen:.0f}s ago as {role} with replicas {reps}"
                if seen is not None
                else "never seen answering (named by an operation)"
            )
            notes.append(
                Problem(
                    str(node.address),
                    "last_known",
                    f"{node.address} {'does not answer' if node.error_kind != 'auth' else 'refuses the credentials'}; {last} (last-known topology of "
                    f"{known.group}, recorded {now - known.recorded_at:.0f}s ago by "
                    f"{known.source}; its members were probed)",
                    severity="warning",
                )
            )
        fenced = set()
        for record in fence_records(topo):
            with contextlib.suppress(BadInput):
                fenced.add(Address.parse(str(record.get("address"))))
        recent = {
            Address.parse(a)
            for g in index.values()
            for a, e in g.nodes.items()
            if now - float(e.get("seen_at", 0)) <= KNOWN_MAX_AGE
        }
        missing = [
            a
            for a in dict.fromkeys([*candidates, *fenced])
            if topo.get(a) is None and (a in recent or a in fenced)
        ]
        if not missing:
            return topo if not notes else _noted(topo, notes)
        members = {n.address for n in topo.nodes}
        # an old master a failover fenced is expected to be down: added only when it
        # answers (then topology.fenced_master / status report it); and the new master
        # that holds the fence record naming one of ours is added too: an old master that
        # came back, queried alone, knows nothing of the failover, the record does
        back = [
            n.address
            for n in probe_all(missing, self.probe, True, self.probe_deadline)
            if (n.address in fenced and n.reachable)
            or (n.address not in fenced and not n.reachable)
            or (
                n.is_replica
                and n.master_address is not None
                and topo.canonical(n.master_address) in members
            )
            or fences_one_of(n, members)
        ]
        if back:
            topo = self.discover([*extra, *back])
        return _noted(topo, notes)

    def close(self) -> None:
        for node in self._nodes.values():
            node.close()
        self._nodes.clear()
        if self._ssh_pool is not None:
            self._ssh_pool.close()
            self._ssh_pool = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _noted(topo: Topology, notes: list[Problem]) -> Topology:
    if not notes:
        return topo
    return Topology(topo.nodes, (*topo.problems, *notes), topo.aliases, topo.sentinel)


def build_session(
    *,
    seeds: Sequence[str] = (),
    cluster: str | None = None,
    inventory: Path | None = None,
    user: str | None = None,
    password_file: Path | None = None,
    tls: bool = False,
    cacert: Path | None = None,
    cert: Path | None = None,
    key: Path | None = None,
    sentinels: Sequence[str] = (),
    sentinel_master: str | None = None,
    connect_timeout: float = 1.5,
    socket_timeout: float = 5.0,
    probe_timeout: float | None = None,
    retry: RetryPolicy = CONNECT_RETRY,
    require_seeds: bool = True,
    ssh: SSHOptions | None = None,
    notify: Callable[[str], None] | None = None,
    renamed_commands: Sequence[str] = (),
    purpose: str | None = "operation",
    probe_deadline: float | None = None,
) -> Session:
    """Resolve options into a :class:`Session`. Raises :class:`BadInput` on bad options.

    Credentials belong to the cluster: a user named in one seed's ``redis://user@`` URL is
    the user for every node, the discovered ones included (with ``--user`` as well, that
    seed keeps its URL's user and every other node gets ``--user``).
    """
    specs = [parse_target(s) for s in seeds]
    cluster_cfg: ClusterConfig | None = None
    if cluster is not None or inventory is not None:
        inv = load_inventory(inventory)
        if cluster is not None:
            cluster_cfg = inv.cluster(cluster)
            if not specs:
                specs = list(cluster_cfg.nodes)
    if require_seeds and not specs:
        raise BadInput(
            "no node given", hint="name at least one SEED address (HOST:PORT) or use --cluster NAME"
        )
    for path, opt in (
        (password_file, "--password-file"),
        (cacert, "--cacert"),
        (cert, "--cert"),
        (key, "--key"),
    ):
        if path is not None and not path.is_file():
            raise BadInput(f"{opt} {path}: file not found")
    if ssh is not None and ssh.key is not None and not Path(ssh.key).expanduser().is_file():
        raise BadInput(f"--ssh-key {ssh.key}: file not found")
    if (cert is None) != (key is None):
        raise BadInput(
            "--cert and --key go together", hint="give both the client certificate and its key"
        )
    url_users = sorted({s.username for s in specs if s.username})
    if len(url_users) > 1 and user is None:
        raise BadInput(
            f"the seeds name different users ({', '.join(url_users)}); the credentials "
            f"belong to the cluster",
            hint="name one user (in the URLs or with --user)",
        )
    creds = resolve_credentials(
        user=user or (url_users[0] if url_users else None),
        password_file=password_file,
        cluster=cluster_cfg,
    )
    tls_opts: TLSOptions | None = None
    if tls or cacert or cert:
        tls_opts = TLSOptions(
            cacert=str(cacert) if cacert else None,
            cert=str(cert) if cert else None,
            key=str(key) if key else None,
        )
    elif cluster_cfg is not None and cluster_cfg.tls is not None:
        tls_opts = cluster_cfg.tls
    if connect_timeout <= 0 or socket_timeout <= 0 or (probe_timeout or 1) <= 0:
        raise BadInput("timeouts must be positive numbers of seconds")
    sentinel_addrs = [parse_target(s).address for s in sentinels]
    if not sentinel_addrs and cluster_cfg is not None:
        sentinel_addrs = list(cluster_cfg.sentinels)
    master_name = sentinel_master or (cluster_cfg.sentinel_master if cluster_cfg else None)
    renames = dict(cluster_cfg.renamed_commands) if cluster_cfg is not None else {}
    for item in renamed_commands:
        if "=" not in item:
            raise BadInput(
                f"--rename-command {item!r}: expected ORIGINAL=NEWNAME",
                hint="e.g. --rename-command CONFIG=SECRETCFG (CONFIG= when it is disabled)",
            )
    renames.update(
        parse_renames((item.partition("=")[::2] for item in renamed_commands), "--rename-command")
    )
    return Session(
        options=ConnectOptions(creds, tls_opts, connect_timeout, socket_timeout, renames),
        seeds=tuple(specs),
        cluster=cluster_cfg,
        retry=retry,
        sentinels=tuple(sentinel_addrs),
        sentinel_master=master_name,
        probe_timeout=probe_timeout or max(3.0, 2 * connect_timeout),
        ssh=ssh,
        notify=notify,
        purpose=purpose,
        probe_deadline=probe_deadline,
    )
