"""``redisops restore BACKUP --to NODE``: a plan, run by the plan executor.

Redis loads an RDB only at start-up (redis/redis#10641), so there are two ways in:

* **online** (default): a throwaway ``redis-server`` is started on the backup file on the
  node's host (:mod:`redisops.backup.throwaway`), the node replicates from it (one full
  sync), then ``REPLICAOF NO ONE`` and the throwaway is stopped. No service manager and no
  access to the node's files are needed; the node's ``masterauth``/``masteruser`` are set
  for the throwaway's one-off password and put back afterwards.
* **file** (``--method file``): the node is stopped (through its service command when it
  has SSH settings, since a service manager would restart a node stopped behind its back;
  else ``SHUTDOWN NOSAVE``), its ``dump.rdb`` and AOF directory are kept aside under a
  timestamped name, the backup is put in place and the node is started again the same way.
  With ``appendonly yes`` it is started with AOF off, so the RDB is what gets loaded (AOF is
  loaded first when on, and a fresh AOF would be empty): ``--appendonly no`` on the command
  line, or, for a service that starts it from its file alone, ``appendonly no`` in the file
  until AOF is on again. Then ``CONFIG SET appendonly yes`` writes a new AOF from the
  restored data and the file says ``appendonly yes`` as before, so a restart keeps it.

Both verify: role master, the key count equals the catalogue's, and ``DEBUG DIGEST`` equals
the backup's (the throwaway's, or one recorded by ``backup verify --load-test``) when the
node allows DEBUG.

Preflight refuses a replica (detach it first), a master with replicas (they would full-sync
the restored data; ``--force``), a backup whose RDB format the node cannot load, and asks
for ``--yes`` when the node holds keys.
"""

from __future__ import annotations

import contextlib
import posixpath
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redisops.backup import crypto
from redisops.backup.catalogue import BackupRecord, stamp
from redisops.backup.dest import DestSpec
from redisops.backup.rdbfile import server_label, writer_version
from redisops.backup.throwaway import Throwaway, dataset_facts, start_throwaway
from redisops.errors import CommandFailed, RedisopsError, Unreachable, VerifyFailed, WaitTimeout
from redisops.host import Host, HostError, LocalHost, is_local_address
from redisops.inventory import Secret
from redisops.model import REDACTED, Address, Finding, NodeInfo, Plan, Step, Topology
from redisops.ops.common import lock_steps, reachable_or_finding, sentinel_finding, unlock_step
from redisops.plan import RunContext, action, remembered, undo
from redisops.session import Session
from redisops.versions import can_load

METHODS = ("online", "file")
THROWAWAY_PASSWORD = "throwaway:password"
#: the ``RunContext.remembered`` entry holding a config file's text while it says appendonly no
CONFIG_TEXT = "restore:config-text"
#: the ``RunContext.remembered`` entry holding an encrypted backup's key (hex), never shown
BACKUP_KEY = "backup:key"


@dataclass(frozen=True)
class RestoreSource:
    """The backup to restore: its record and the file on this machine."""

    record: BackupRecord
    path: Path

    @property
    def encrypted(self) -> bool:
        return self.record.encrypted


@dataclass(frozen=True)
class RestoreOptions:
    method: str = "online"
    force: bool = False
    timeout: float = 3600.0
    #: the plan is rebuilt with our lock key on the node (see ``plan.RunContext.replan``):
    #: that key is not data the restore replaces
    lock_key_held: bool = False


def _findings(
    topo: Topology, node: NodeInfo, src: RestoreSource, opts: RestoreOptions, session: Session
) -> list[Finding]:
    n = str(node.address)
    rec = src.record
    out: list[Finding] = []
    if node.is_replica:
        out.append(
            Finding(
                "refuse",
                "replica",
                f"{n} is a replica of {node.master_address}: its master would overwrite the "
                f"restore (detach it first: redisops detach {n})",
                n,
            )
        )
    replicas = topo.children(node)
    if node.is_master and replicas:
        out.append(
            Finding(
                "refuse",
                "has_replicas",
                f"{n} has {len(replicas)} replica(s) "
                f"({', '.join(str(r.address) for r in replicas)}): they would full-sync the "
                f"restored data (--force to accept)",
                n,
                forceable=True,
            )
        )
    server = node.server
    if (
        server is not None
        and rec.rdb_version is not None
        and can_load(server, rec.rdb_version) is False
    ):
        out.append(
            Finding(
                "refuse",
                "rdb_version",
                f"{n} runs {server}, which loads RDB formats up to {server.rdb_format}; this "
                f"backup is format {rec.rdb_version} "
                f"(written by {server_label(rec.redis_version) or 'a newer server'})",
                n,
            )
        )
    sentinel = sentinel_finding([node], session, opts.force)
    if sentinel is not None:
        out.append(sentinel)
    if opts.method == "file" and not node.info.get("config_file"):
        out.append(
            Finding(
                "refuse",
                "no_config_file",
                f"{n} runs without a config file: the file method restarts it from one "
                f"(use the online method)",
                n,
            )
        )
    keys = max(node.keys - (1 if opts.lock_key_held else 0), 0)
    if keys:
        out.append(
            Finding(
                "confirm",
                "replaces_data",
                f"{n} holds {keys} keys that the restore replaces with the backup's "
                f"{rec.keys if rec.keys is not None else '?'}",
                n,
            )
        )
    return out


def plan_restore(
    topo: Topology, address: Address, src: RestoreSource, opts: RestoreOptions, session: Session
) -> Plan:
    """Preflight and steps for restoring ``src`` onto the node at ``address``."""
    node, unreachable = reachable_or_finding(topo, address, "node")
    rec = src.record
    if node is None:
        assert unreachable is not None
        return Plan("restore", session.cluster_name, (), (unreachable,), summary="cannot plan")
    n = str(node.address)
    cluster = session.cluster_name if session.cluster is not None else n
    findings = _findings(topo, node, src, opts, session)
    common = {"backup_id": rec.id, "keys": rec.keys, "expires": rec.expires or 0}
    steps: list[Step] = [
        lock_steps(n, 1),
        Step(
            2,
            n,
            "restore-stage",
            f"put backup {rec.id} on {n}'s host"
            + (" (decrypted on the way)" if src.encrypted else ""),
            precondition=f"{src.path} verifies (SHA-256 {rec.sha256[:12]}…)",
            verify="SHA-256 computed on the node's host equals the catalogue's",
            args={
                "path": str(src.path),
                "sha256": rec.sha256,
                "size": rec.size,
                "encrypted": src.encrypted,
                "method": opts.method,
            },
        ),
    ]
    if opts.method == "online":
        steps += _online_steps(node, rec, opts, common)
        how = "online: the node full-syncs from a throwaway server on the backup"
    else:
        service = _service(session, node.address)
        steps += _file_steps(node, rec, opts, common, service)
        how = "file: the node is restarted on the backup file" + (
            f" (service: {' '.join(service['start'])})" if service else ""
        )
    steps.append(unlock_step(n, len(steps) + 1))
    summary = (
        f"restore {rec.id} ({rec.keys if rec.keys is not None else '?'} keys, RDB "
        f"v{rec.rdb_version}, taken from {rec.node} at offset {rec.repl_offset}) onto {n}; {how}"
    )
    return Plan(
        "restore",
        cluster,
        tuple(steps),
        tuple(findings),
        None,
        summary,
        touched=(n,),
    )


def _online_steps(
    node: NodeInfo, rec: BackupRecord, opts: RestoreOptions, common: dict[str, Any]
) -> list[Step]:
    n = str(node.address)
    k = 3
    steps = [
        Step(
            k,
            n,
            "throwaway-start",
            f"start a throwaway redis-server on the backup, on {n}'s host",
            verify="it answers with the dataset loaded",
            args={"timeout": opts.timeout},
        )
    ]
    k += 1
    old_user = node.config.get("masteruser", "")
    if old_user:
        steps.append(
            Step(
                k,
                n,
                "command",
                f"clear {n}'s masteruser (the throwaway has the default user only)",
                command=("CONFIG", "SET", "masteruser", ""),
                rollback=("CONFIG", "SET", "masteruser", old_user),
            )
        )
        k += 1
    steps.append(
        Step(
            k,
            n,
            "command",
            f"give {n} the throwaway's one-off password",
            command=("CONFIG", "SET", "masterauth", REDACTED),
            verify="CONFIG SET returns OK",
            rollback=("CONFIG", "SET", "masterauth", REDACTED),
            args={
                "secret": (3, THROWAWAY_PASSWORD),
                "remember_config": "masterauth",
                "rollback_secret": (3, remembered(n, "masterauth")),
                "runtime_only": True,
            },
        )
    )
    k += 1
    steps += [
        Step(
            k,
            n,
            "restore-replicaof",
            f"make {n} replicate from the throwaway (its data is replaced by a full sync)",
            command=("REPLICAOF", "<throwaway>", "<port>"),
            precondition=f"{n} is a master",
            verify="ROLE shows the throwaway as master",
            commit=True,
            idempotent=False,
        ),
        Step(
            k + 1,
            n,
            "wait-sync",
            "follow the full sync until the node is in sync",
            verify="link up, offset equal to the throwaway's",
            args={"master_fact": "throwaway", "timeout": opts.timeout},
        ),
        Step(
            k + 2,
            n,
            "restore-compare",
            "compare the node with the throwaway (keys, DEBUG DIGEST)",
            verify="same keys, same digest",
            args={"on_failure": "continue"},
        ),
        Step(
            k + 3,
            n,
            "command",
            f"promote {n} again",
            command=("REPLICAOF", "NO", "ONE"),
            verify="role master",
            args={"on_failure": "continue"},
        ),
        Step(
            k + 4,
            n,
            "command",
            f"put {n}'s masterauth back",
            command=("CONFIG", "SET", "masterauth", REDACTED),
            args={"secret": (3, remembered(n, "masterauth")), "on_failure": "continue"},
        ),
    ]
    k += 5
    if old_user:
        steps.append(
            Step(
                k,
                n,
                "command",
                f"put {n}'s masteruser back",
                command=("CONFIG", "SET", "masteruser", old_user),
                args={"on_failure": "continue"},
            )
        )
        k += 1
    steps += [
        Step(
            k,
            n,
            "throwaway-stop",
            "stop the throwaway server (SHUTDOWN NOSAVE) and remove its directory",
            args={"on_failure": "continue"},
        ),
        Step(
            k + 1,
            n,
            "verify-restore",
            "check the restored node",
            verify="role master; keys equal the catalogue's; DEBUG DIGEST equals the backup's",
            args={**common, "on_failure": "continue"},
        ),
    ]
    return steps


def _service(session: Session, address: Address) -> dict[str, list[str]] | None:
    """The node's service commands when it has SSH settings (a service manager starts and
    stops it); None for a node this machine runs without one."""
    if session.ssh_settings(address) is None:
        return None
    from redisops.ops.hostfacts import service_argv, service_template

    template = service_template(session, address)
    return {verb: service_argv(template, verb) for verb in ("start", "stop")}


def _file_steps(
    node: NodeInfo,
    rec: BackupRecord,
    opts: RestoreOptions,
    common: dict[str, Any],
    service: dict[str, list[str]] | None,
) -> list[Step]:
    n = str(node.address)
    aof = node.config.get("appendonly") == "yes"
    stop = " ".join(service["stop"]) if service else "SHUTDOWN NOSAVE"
    steps = [
        Step(
            3,
            n,
            "restore-files",
            f"stop {n} ({stop}), keep its dump.rdb"
            + (" and AOF directory" if aof else "")
            + " aside, put the backup in place, start it"
            + (" with AOF off (so the RDB is loaded)" if aof else ""),
            verify="the node answers, loaded, as a master",
            commit=True,
            idempotent=False,
            args={"aof": aof, "timeout": opts.timeout, "service": service},
        )
    ]
    k = 4
    if aof:
        steps.append(
            Step(
                k,
                n,
                "aof-enable",
                "turn AOF on at runtime: a new AOF is written from the restored data",
                command=("CONFIG", "SET", "appendonly", "yes"),
                verify="aof_enabled:1, rewrite finished with status ok",
                args={"timeout": opts.timeout, "on_failure": "continue"},
            )
        )
        k += 1
    digest_note = "; DEBUG DIGEST equals the load test's" if rec.digest else ""
    steps.append(
        Step(
            k,
            n,
            "verify-restore",
            "check the restored node",
            verify=f"role master; keys equal the catalogue's{digest_note}",
            args={**common, "digest": rec.digest, "on_failure": "continue"},
        )
    )
    return steps


# ----------------------------------------------------------------------------- routines


def _host(ctx: RunContext, name: str) -> Host:
    return ctx.session.host(Address.parse(name))


@action("restore-stage")
def run_stage(ctx: RunContext, step: Step) -> str:
    """The backup, plain, on the node's host; its SHA-256 computed there."""
    host = _host(ctx, step.node)
    path, sha, size = Path(str(step.args["path"])), str(step.args["sha256"]), int(step.args["size"])
    encrypted = bool(step.args.get("encrypted"))
    file_method = step.args.get("method") == "file"
    local = isinstance(host, LocalHost)
    if local and not encrypted and not file_method:
        if host.sha256(str(path)) != sha:
            raise VerifyFailed(f"{path} does not match its catalogue SHA-256 any more")
        ctx.facts["staged"] = str(path)
        ctx.facts["staged_copy"] = False
        return f"{path} checked (SHA-256 on the host)"
    if file_method:
        directory = ctx.node(step.node).config_get("dir")["dir"]
        target = posixpath.join(directory, f".redisops-restore-{stamp(time.time())}.rdb")
    else:
        made = host.run(["mktemp", "-d", "/tmp/redisops-restore-XXXXXX"], timeout=30)
        target = posixpath.join(made.check(host.name).text().strip(), "backup.rdb")
    try:
        _upload(ctx, host, path, target, encrypted)
        st = host.stat(target)
        if st is None or st.size != size or host.sha256(target) != sha:
            raise VerifyFailed(
                f"the staged copy on {host.name} does not match the backup's SHA-256"
            )
    except RedisopsError:
        cleanup = target if file_method else posixpath.dirname(target)
        host.run(["rm", "-rf", "--", cleanup], timeout=60)
        raise
    ctx.facts["staged"] = target
    ctx.facts["staged_copy"] = True
    return f"staged at {host.name}:{target} (SHA-256 checked there)"


def _upload(ctx: RunContext, host: Host, path: Path, target: str, encrypted: bool) -> None:
    """Put the backup at ``target`` on the host, decrypted (and authenticated) on the way."""
    if not encrypted:
        host.put(path, target)
        return
    key = ctx.remembered.get(BACKUP_KEY)
    if key is None:
        raise CommandFailed("the backup is encrypted and no key was given (--key-file)")
    with tempfile.TemporaryDirectory(prefix="redisops-restore-") as spool:
        plain = Path(spool) / "backup.rdb"
        with open(path, "rb") as src, open(plain, "wb") as out:
            for block in crypto.iter_decrypt(src, bytes.fromhex(key.reveal())):
                out.write(block)
        host.put(plain, target)


def _node_binary(ctx: RunContext, name: str, host: Host) -> str:
    """The redis-server to run on the node's host: the node's own executable when it exists
    there (same version), else the one on the host's PATH."""
    info = ctx.node(name).info("server")
    exe = info.get("executable", "")
    if exe and host.stat(exe) is not None:
        return exe
    found = host.run(["sh", "-c", "command -v redis-server"], timeout=10)
    if not found.ok:
        raise CommandFailed(f"{host.name}: no redis-server to run the throwaway server")
    return found.text().strip()


def _throwaway_port(host: Host, bind: str) -> int:
    if isinstance(host, LocalHost) and is_local_address(bind):
        from redisops.lab import free_base_port

        return free_base_port(1, 21000 + random.randrange(0, 3000, 100))
    return random.randrange(21000, 29000)


def _throwaway(ctx: RunContext) -> Throwaway | None:
    data = ctx.facts.get("throwaway")
    pw = ctx.remembered.get(THROWAWAY_PASSWORD)
    if not isinstance(data, dict) or pw is None:
        return None
    return Throwaway(
        LocalHost() if data["local"] else _host(ctx, str(data["node"])),
        Address.parse(str(data["address"])),
        pw,
        str(data["workdir"]),
        str(data["pidfile"]),
        str(data["logfile"]),
        str(data["binary"]),
    )


@action("throwaway-start")
def run_throwaway_start(ctx: RunContext, step: Step) -> str:
    host = _host(ctx, step.node)
    node_addr = Address.parse(step.node)
    binary = _node_binary(ctx, step.node, host)
    bind = "127.0.0.1" if is_local_address(node_addr.host) else node_addr.host
    for attempt in range(3):  # a port picked on another machine may be taken there
        try:
            server = start_throwaway(
                host,
                str(ctx.facts["staged"]),
                binary=binary,
                port=_throwaway_port(host, bind),
                bind=bind,
                timeout=float(step.args.get("timeout", 3600)),
            )
            break
        except RedisopsError:
            if attempt == 2:
                raise
    ctx.remembered[THROWAWAY_PASSWORD] = server.password
    ctx.session.set_options(server.address, server.options)
    with server.node() as n:
        facts = dataset_facts(n)
    ctx.facts["throwaway"] = {
        "node": step.node,
        "local": isinstance(host, LocalHost),
        "address": str(server.address),
        "workdir": server.workdir,
        "pidfile": server.pidfile,
        "logfile": server.logfile,
        "binary": server.binary,
    }
    ctx.facts["backup_dataset"] = facts
    return f"{server.address} loaded {facts['keys']} keys"


@undo("throwaway-start")
def undo_throwaway_start(ctx: RunContext, step: Step) -> str:
    return run_throwaway_stop(ctx, step)


@undo("restore-stage")
def undo_stage(ctx: RunContext, step: Step) -> str:
    """Remove a staged copy (never the backup itself, which is staged in place)."""
    if not ctx.facts.get("staged_copy"):
        return "nothing was copied"
    staged = str(ctx.facts["staged"])
    host = _host(ctx, step.node)
    if step.args.get("method") == "file":
        host.run(["rm", "-f", "--", staged], timeout=60).check(host.name)
    else:
        host.run(["rm", "-rf", "--", posixpath.dirname(staged)], timeout=60).check(host.name)
    return f"removed {staged}"


@action("restore-replicaof")
def run_replicaof(ctx: RunContext, step: Step) -> str:
    address = Address.parse(str(ctx.facts["throwaway"]["address"]))
    ctx.node(step.node).execute("REPLICAOF", address.host, str(address.port))
    return f"REPLICAOF {address.host} {address.port}"


@action("restore-compare", waits=True)
def run_compare(ctx: RunContext, step: Step) -> str:
    server = _throwaway(ctx)
    assert server is not None
    mine = dataset_facts(ctx.node(step.node))
    theirs = ctx.facts.get("backup_dataset", {})
    ctx.facts["restored_dataset"] = mine
    if mine["keys"] != theirs.get("keys"):
        raise VerifyFailed(
            f"{step.node} has {mine['keys']} keys, the throwaway server {theirs.get('keys')}"
        )
    if mine["digest"] and theirs.get("digest") and mine["digest"] != theirs["digest"]:
        raise VerifyFailed(f"{step.node}: DEBUG DIGEST differs from the throwaway server's")
    return f"{mine['keys']} keys on both" + (
        "; DEBUG DIGEST equal" if mine["digest"] else "; DEBUG not allowed on the node"
    )


@action("throwaway-stop")
def run_throwaway_stop(ctx: RunContext, step: Step) -> str:
    server = _throwaway(ctx)
    if server is None:
        return "no throwaway server was started"
    server.stop()
    if ctx.facts.get("staged_copy"):
        staged = str(ctx.facts["staged"])
        with contextlib.suppress(HostError):
            server.host.run(["rm", "-rf", "--", posixpath.dirname(staged)], timeout=60)
        ctx.facts["staged_copy"] = False
    return f"{server.address} stopped"


@action("restore-files")
def run_restore_files(ctx: RunContext, step: Step) -> str:
    """Stop, swap the files, start; if anything fails before the node is up on the backup,
    its own files are put back and it is started on them again."""
    node = ctx.node(step.node)
    host = _host(ctx, step.node)
    cfg = node.config_get("dir", "dbfilename", "appenddirname")
    info = node.info("server")
    exe, conf = info.get("executable", ""), info.get("config_file", "")
    if not exe or host.stat(exe) is None:
        exe = _node_binary(ctx, step.node, host)
    directory = cfg["dir"]
    rdb = posixpath.join(directory, cfg["dbfilename"])
    aof_dir = posixpath.join(directory, cfg.get("appenddirname") or "appendonlydir")
    suffix = f".redisops-{stamp(time.time())}.bak"
    aof = bool(step.args.get("aof"))
    timeout = float(step.args.get("timeout", 3600))
    service = step.args.get("service")
    starter = _Starter(ctx, step.node, host, exe, conf, service, timeout)
    kept: list[tuple[str, str]] = []
    starter.stop()
    try:
        for path in (rdb, aof_dir):
            if host.stat(path) is not None:
                host.run(["mv", "--", path, path + suffix], timeout=60).check(host.name)
                kept.append((path, path + suffix))
        host.run(["mv", "--", str(ctx.facts["staged"]), rdb], timeout=60).check(host.name)
        starter.start(aof_off=aof)
    except RedisopsError as exc:
        for path, aside in kept:
            host.run(["rm", "-rf", "--", path], timeout=60)
            host.run(["mv", "--", aside, path], timeout=60)
        try:
            starter.start(aof_off=False)
            state = "it was started again on its own files"
        except RedisopsError as again:
            state = f"it could not be started again ({again})"
        raise type(exc)(f"{exc.message}; {state}") from None
    ctx.facts["kept_aside"] = [aside for _, aside in kept]
    return (
        "files swapped (old ones kept as "
        + (", ".join(a for _, a in kept) or "nothing: there were none")
        + f"); started{' with AOF off' if aof else ''}"
    )


class _Starter:
    """Stops and starts the node: through its service command when it has one (a service
    manager would restart a node stopped behind its back), else ``SHUTDOWN NOSAVE`` and
    ``<executable> <config file> --daemonize yes``.

    Starting with AOF off: on the command line (``--appendonly no``) without a service
    manager; with one, the config file says ``appendonly no`` until ``aof-enable`` has
    turned AOF on at runtime, then its own text is put back (kept in memory meanwhile, since
    a config file may hold passwords)."""

    def __init__(
        self,
        ctx: RunContext,
        name: str,
        host: Host,
        exe: str,
        conf: str,
        service: Any,
        timeout: float,
    ) -> None:
        self.ctx, self.name, self.host = ctx, name, host
        self.exe, self.conf, self.service, self.timeout = exe, conf, service, timeout

    def stop(self) -> None:
        if self.service:
            self._service("stop")
        else:
            with contextlib.suppress(Unreachable):
                self.ctx.node(self.name).execute("SHUTDOWN", "NOSAVE")
        self.ctx.node(self.name).close()
        deadline = time.monotonic() + 60
        while self.ctx.session.probe(Address.parse(self.name)).reachable:
            if time.monotonic() > deadline:
                raise WaitTimeout(f"{self.name} did not stop")
            self.ctx.sleep(0.1)

    def start(self, *, aof_off: bool) -> None:
        if self.service:
            if aof_off:
                self._config_aof_off()
            self._service("start")
        else:
            argv = [self.exe, self.conf, "--daemonize", "yes"]
            if aof_off:
                argv += ["--appendonly", "no"]
            self.host.run(argv, timeout=60).check(self.host.name)
        self._wait_loaded()

    def _service(self, verb: str) -> None:
        from redisops.ops.service import run_service_command

        run_service_command(self.host, self.name, self.service[verb])

    def _config_aof_off(self) -> None:
        from redisops.redisconf import set_directive

        text = self.host.read_bytes(self.conf).decode("utf-8")
        self.ctx.remembered[CONFIG_TEXT] = Secret(text)
        self.ctx.facts["config_file"] = self.conf
        self.host.write_atomic(
            self.conf, set_directive(text, "appendonly", [["no"]]).encode(), backup=False
        )

    def _wait_loaded(self) -> None:
        deadline = time.monotonic() + self.timeout
        node = self.ctx.node(self.name)
        node.close()
        while True:
            try:
                if node.info("persistence").get("loading") == "0":
                    return
            except (Unreachable, CommandFailed):
                node.close()
            if time.monotonic() > deadline:
                raise WaitTimeout(f"{self.name} did not come up within {self.timeout:g}s")
            self.ctx.sleep(0.1)


def put_config_back(ctx: RunContext, name: str) -> str:
    """The config file's own text again, after a start with ``appendonly no`` in it."""
    text = ctx.remembered.pop(CONFIG_TEXT, None)
    if text is None:
        return ""
    path = str(ctx.facts["config_file"])
    _host(ctx, name).write_atomic(path, text.reveal().encode(), backup=False)
    return f"; {path} says appendonly yes again"


@action("aof-enable")
def run_aof_enable(ctx: RunContext, step: Step) -> str:
    try:
        return _aof_enable(ctx, step)
    except RedisopsError as exc:
        if CONFIG_TEXT in ctx.remembered:
            raise type(exc)(
                f"{exc.message}; {ctx.facts['config_file']} still says appendonly no, as the "
                f"node runs now (put its appendonly line back once AOF is on)"
            ) from None
        raise


def _aof_enable(ctx: RunContext, step: Step) -> str:
    node = ctx.node(step.node)
    node.execute("CONFIG", "SET", "appendonly", "yes")
    deadline = time.monotonic() + float(step.args.get("timeout", 3600))
    while True:
        p = node.info("persistence")
        done = (
            p.get("aof_enabled") == "1"
            and p.get("aof_rewrite_in_progress") == "0"
            and p.get("aof_rewrite_scheduled") == "0"
        )
        if done:
            if p.get("aof_last_bgrewrite_status") != "ok":
                raise CommandFailed(f"{step.node}: the AOF rewrite failed; see its log")
            return "AOF on, rewritten from the restored data" + put_config_back(ctx, step.node)
        if time.monotonic() > deadline:
            raise WaitTimeout(f"{step.node}: the AOF rewrite did not finish")
        ctx.sleep(0.1)


@action("verify-restore", waits=True)
def run_verify_restore(ctx: RunContext, step: Step) -> str:
    node = ctx.node(step.node)
    role = node.info("replication").get("role")
    if role != "master":
        raise VerifyFailed(f"{step.node} is {role}, not master")
    mine = dataset_facts(node)
    ctx.facts["restored_dataset"] = mine
    expected = step.args.get("keys")
    expires = int(step.args.get("expires") or 0)
    parts = ["role master"]
    if isinstance(expected, int):
        if not expected - expires <= int(str(mine["keys"])) <= expected:
            raise VerifyFailed(
                f"{step.node} has {mine['keys']} keys, the catalogue says {expected}"
            )
        parts.append(f"{mine['keys']} keys as catalogued")
    backup = ctx.facts.get("backup_dataset", {}).get("digest") or step.args.get("digest")
    if mine["digest"] and backup:
        if mine["digest"] != backup:
            raise VerifyFailed(f"{step.node}: DEBUG DIGEST differs from the backup's")
        parts.append("DEBUG DIGEST equal to the backup's")
    elif not mine["digest"]:
        parts.append("DEBUG not allowed on the node: digest not compared")
    else:
        parts.append("no recorded digest (run 'backup verify --load-test' to record one)")
    ctx.facts["next"] = f"attach replicas with: redisops attach REPLICA --to {step.node}"
    return "; ".join(parts)


# ----------------------------------------------------------------------------- the source


def restore_source(backup: str, spec: DestSpec | None, group: str | None) -> RestoreSource:
    """The backup named: a file (catalogued or not), or an id or ``latest`` at ``spec``."""
    from redisops.backup.dest import open_destination
    from redisops.backup.rdbfile import digest_file
    from redisops.backup.verify import locate
    from redisops.errors import BadInput

    path = Path(backup)
    if path.is_file():
        found = locate(path)
        if found is not None:
            return usable(RestoreSource(found[2], path.resolve()))
        facts = digest_file(str(path))
        if facts.problems():
            raise BadInput(f"{path} is not a usable RDB file: {facts.problems()[0]}")
        aux = facts.aux
        rec = BackupRecord(
            path.name, "", str(path), "verified", path.stat().st_mtime, facts.size, facts.sha256
        )
        rec.rdb_version, rec.redis_version = facts.format_version, writer_version(aux)
        return RestoreSource(rec, path.resolve())
    if spec is None:
        raise BadInput(f"{backup!r} is not a file", hint="give a backup file, or a destination")
    d = open_destination(spec)
    try:
        if not d.is_local:
            raise BadInput(
                "restore reads the backup file on this machine",
                hint="copy it here first, or give its path",
            )
        groups = d.read_groups(group)
        if backup == "latest" and len(groups) > 1:
            raise BadInput(
                f"several groups at {spec.url} ({', '.join(groups)}): which one's latest?",
                hint="name one with --group",
            )
        for g in groups:
            cat = d.read_catalogue(g)
            found_rec = cat.newest_verified() if backup == "latest" else cat.get(backup)
            if found_rec is not None:
                local = d.local_path(g, found_rec.file)
                assert local is not None
                return usable(RestoreSource(found_rec, local))
    finally:
        d.close()
    raise BadInput(f"no backup {backup!r} at {spec.url}", hint="see 'redisops backup list'")


def usable(source: RestoreSource) -> RestoreSource:
    from redisops.errors import BadInput

    if source.record.status != "verified":
        raise BadInput(
            f"backup {source.record.id} failed verification ({source.record.failure}); "
            f"it is not restored",
            hint="pick another: redisops backup list",
        )
    return source
