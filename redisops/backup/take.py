"""``redisops backup NODE --dest DEST``: snapshot, fetch, verify, catalogue, copy, prune.

The order is the safety argument:

1. the snapshot is made on the chosen node (:mod:`redisops.backup.snapshot`);
2. the file is copied to a temporary name at the destination while its SHA-256 and CRC64
   are computed (one pass), and the source host computes its own SHA-256 at the same time;
3. the copy is verified: size and SHA-256 equal the source's, the CRC64 trailer matches,
   ``redis-check-rdb`` accepts it (when installed and able to read the format); if the
   source file was replaced during the copy (a save point, a replica's full sync), the copy
   is taken again;
4. only then is it renamed into place and catalogued as ``verified``; a copy that failed is
   moved into ``failed/`` and catalogued as ``failed`` with the reason, never as good;
5. each ``--copy-to`` copy is sent (encrypted with ``--encrypt-key-file``) and verified on
   the far side (size, and SHA-256 computed there), then catalogued there too;
6. retention runs last, and only because a new backup verified.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

from redisops.backup import crypto
from redisops.backup.catalogue import (
    FAILED_DIR,
    BackupRecord,
    Catalogue,
    CopyRecord,
    safe_name,
    stamp,
)
from redisops.backup.dest import Destination, DestSpec, open_destination
from redisops.backup.rdbfile import CheckRdb, RdbDigest, RdbFacts, run_check_rdb, writer_version
from redisops.backup.retention import Decision, Item, Policy, decide
from redisops.backup.snapshot import (
    Snapshot,
    choose_source,
    existing_snapshot,
    rdb_path,
    take_snapshot,
)
from redisops.errors import CommandFailed, RedisopsError, Unreachable, VerifyFailed
from redisops.host import CHUNK, Host
from redisops.info import as_int, keyspace
from redisops.model import Address, NodeInfo, Topology
from redisops.plan import NullProgress, Progress
from redisops.redis_node import RedisNode
from redisops.session import Session


@dataclass(frozen=True)
class BackupRequest:
    node: Address | None  # None: the master of the session's cluster
    dest: DestSpec
    copy_to: tuple[DestSpec, ...] = ()
    group: str | None = None
    from_master: bool = False
    no_bgsave: bool = False
    policy: Policy = field(default_factory=Policy)
    dry_run: bool = False
    timeout: float = 3600.0


@dataclass
class BackupOutcome:
    """What a backup run did (or, dry, would do), for the renderer."""

    dry_run: bool
    group: str
    source: str
    reason: str
    rdb_file: str
    dest: str
    record: BackupRecord | None = None
    path: str = ""
    would_take: dict[str, Any] = field(default_factory=dict)
    retention: dict[str, list[Decision]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "group": self.group,
            "source": self.source,
            "reason": self.reason,
            "rdb_file": self.rdb_file,
            "dest": self.dest,
            "backup": self.record.to_dict() if self.record else None,
            "path": self.path,
            "would_take": self.would_take,
            "retention": {
                url: [d.to_dict() for d in decisions] for url, decisions in self.retention.items()
            },
            "pruned": {
                url: [d.id for d in decisions if not d.keep]
                for url, decisions in self.retention.items()
            },
            "notes": self.notes,
        }


Connector = Callable[[DestSpec], Host]


# ----------------------------------------------------------------------------- fetch + verify


@dataclass
class Fetched:
    """A copy of the source RDB on this machine, with what verification found."""

    local: Path
    facts: RdbFacts
    source_sha256: str
    source_size: int
    check: CheckRdb
    problems: list[str]


def copy_once(
    host: Host, path: str, target: Path, progress: Progress
) -> tuple[RdbFacts, str, int, bool]:
    """One pass: stream ``path`` to ``target`` through an :class:`RdbDigest` while the source
    host hashes its own file. Returns (facts, source sha256, source size, file changed).

    Reading, and hashing plus writing, run in two threads joined by a small queue: the
    hashes release the GIL, so on a transfer that is CPU-bound (SFTP) they overlap with
    the reads instead of adding to them.
    """
    before = host.stat(path)
    if before is None:
        raise CommandFailed(f"{host.name}: there is no RDB file at {path}")
    digest = RdbDigest()
    with ThreadPoolExecutor(2) as pool:
        remote_sha = pool.submit(host.sha256, path)
        with host.open_read(path) as src, open(target, "wb") as dst:
            blocks: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
            sink = pool.submit(_hash_and_write, blocks, digest, dst)
            try:
                while True:
                    block = src.read(CHUNK)
                    if sink.done():  # the writer failed: stop reading, raise its error
                        break
                    blocks.put(block or None)
                    if not block:
                        break
                    progress.update("fetch", digest.size, before.size)
            finally:
                if not sink.done():
                    blocks.put(None)
                sink.result()
            dst.flush()
            os.fsync(dst.fileno())
        source_sha = remote_sha.result()
    after = host.stat(path)
    changed = after is None or (after.size, after.mtime) != (before.size, before.mtime)
    return digest.facts(), source_sha, before.size, changed


def _hash_and_write(blocks: queue.Queue[bytes | None], digest: RdbDigest, dst: BinaryIO) -> None:
    while True:
        block = blocks.get()
        if block is None:
            return
        digest.update(block)
        dst.write(block)


def fetch_verified(
    host: Host, path: str, target: Path, progress: Progress, *, attempts: int = 3
) -> Fetched:
    """Copy the node's RDB to ``target`` and verify it (see the module docstring)."""
    for _ in range(attempts):
        facts, source_sha, source_size, changed = copy_once(host, path, target, progress)
        if not changed:
            break
    else:
        raise CommandFailed(
            f"{host.name}: {path} was replaced during each of {attempts} copies "
            f"(save points or full syncs run too often)",
            hint="retry, or back up from a replica without save points",
        )
    progress.finish()
    problems: list[str] = []
    if facts.size != source_size:
        problems.append(f"size mismatch: the copy has {facts.size} bytes, the source {source_size}")
    if facts.sha256 != source_sha:
        problems.append(
            f"SHA-256 mismatch: the copy is {facts.sha256[:16]}…, the source host computed "
            f"{source_sha[:16]}…"
        )
    problems += facts.problems()
    check = CheckRdb("skipped", "not run: the file already failed")
    if not problems:
        progress.phase("redis-check-rdb")
        check = run_check_rdb(str(target), facts.format_version)
        if check.status == "failed":
            problems.append(f"{check.tool} rejects it: {check.detail}")
    return Fetched(target, facts, source_sha, source_size, check, problems)


# ----------------------------------------------------------------------------- the record


def build_record(
    *,
    backup_id: str,
    group: str,
    src: NodeInfo,
    topo: Topology,
    info: dict[str, str],
    snap: Snapshot,
    fetched: Fetched,
    source_file: str,
    source_host: str,
    started: float,
    now: float,
) -> BackupRecord:
    aux = fetched.facts.aux
    ks = keyspace(info)
    check = fetched.check
    if check.status == "ok" and check.keys is not None:
        keys: int | None = check.keys - (check.already_expired or 0)
        source = "redis-check-rdb"
    else:
        keys, source = sum(v["keys"] for v in ks.values()), "info"
    master = src.master_address if src.is_replica else None
    verified_by = ["size", "sha256 (source host)"]
    if fetched.facts.crc_status == "ok":
        verified_by.append("crc64")
    if check.status == "ok":
        verified_by.append(check.tool)
    return BackupRecord(
        id=backup_id,
        group=group,
        file=f"{backup_id}.rdb",
        status="verified" if not fetched.problems else "failed",
        taken_at=float(as_int(aux.get("ctime")) or snap.lastsave or started),
        size=fetched.facts.size,
        sha256=fetched.source_sha256,
        node=str(src.address),
        role="replica" if info.get("role") == "slave" else info.get("role", src.role),
        master=str(master) if master else None,
        run_id=info.get("run_id", src.run_id or ""),
        replid=aux.get("repl-id") or info.get("master_replid", ""),
        repl_offset=as_int(aux.get("repl-offset"))
        or as_int(info.get("master_repl_offset"), 0)
        or 0,
        master_lag_bytes=topo.lag_bytes(src) if src.is_replica else None,
        redis_version=writer_version(aux)
        or writer_version(
            {
                "redis-ver": info.get("redis_version", ""),
                "valkey-ver": info.get("valkey_version", ""),
            }
        ),
        rdb_version=fetched.facts.format_version,
        crc64=None if fetched.facts.crc_stored is None else f"{fetched.facts.crc_stored:016x}",
        keys=keys,
        keys_source=source,
        expires=check.expires if check.status == "ok" else None,
        keyspace={f"db{db}": v for db, v in ks.items()},
        used_memory=as_int(info.get("used_memory")),
        used_memory_rss=as_int(info.get("used_memory_rss")),
        source_file=source_file,
        source_host=source_host,
        snapshot=snap.how,
        started_at=started,
        finished_at=now,
        verified_at=now if not fetched.problems else None,
        verified_by=verified_by if not fetched.problems else [],
        failure="; ".join(fetched.problems) or None,
    )


# ----------------------------------------------------------------------------- storing


@contextlib.contextmanager
def _spool() -> Iterator[Path]:
    """A private temporary directory on this machine, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="redisops-backup-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def store_file(
    plain: Path,
    record: BackupRecord,
    dest: Destination,
    key: bytes | None,
    progress: Progress,
) -> BackupRecord:
    """Put a verified plaintext file at ``dest`` (encrypted when ``key``), verify it there
    (size and SHA-256 computed by the destination's host), and return its record there.
    The caller holds the destination's lock for the group. A copy that does not verify is moved into ``failed/`` and :class:`VerifyFailed` raised."""
    group = record.group
    dest.ensure_dir(group)
    name = f"{record.id}.rdb" + (crypto.SUFFIX if key else "")
    with _spool() as spool:
        upload, expect_size, expect_sha = plain, record.size, record.sha256
        if key is not None:
            upload = spool / name
            with open(plain, "rb") as src, open(upload, "wb") as dst:
                sealed = crypto.encrypt_stream(src, dst, key)
            if sealed.plain_sha256 != record.sha256:
                raise VerifyFailed(
                    f"{plain} changed while it was being encrypted", hint="run the backup again"
                )
            expect_size, expect_sha = sealed.cipher_size, sealed.cipher_sha256
        progress.phase(f"copy to {dest.url}")
        sent_size, sent_sha = dest.put(
            upload, group, name, progress=lambda n: progress.update("copy", n, expect_size)
        )
        progress.finish()
    far_size, far_sha = dest.size(group, name), dest.sha256(group, name)
    problems = []
    if (sent_size, sent_sha) != (expect_size, expect_sha):
        problems.append("the bytes sent differ from the verified file")
    if far_size != expect_size:
        problems.append(f"size at the destination is {far_size}, expected {expect_size}")
    if far_sha != expect_sha:
        problems.append(
            f"SHA-256 at the destination is {far_sha[:16]}…, expected {expect_sha[:16]}…"
        )
    now = time.time()
    stored = replace(
        record,
        file=name,
        encrypted=key is not None,
        stored_size=expect_size if key else None,
        stored_sha256=expect_sha if key else None,
        key_id=crypto.key_id(key) if key else None,
        copies=[],
        verified_at=now,
    )
    if problems:
        dest.ensure_dir(group, FAILED_DIR)
        dest.move(group, name, f"{FAILED_DIR}/{name}")
        failed = replace(
            stored,
            file=f"{FAILED_DIR}/{name}",
            status="failed",
            failure="; ".join(problems),
            verified_at=None,
            verified_by=[],
        )
        cat = dest.read_catalogue(group)  # the caller holds the group's lock
        cat.put(failed)
        dest.write_catalogue(cat)
        raise VerifyFailed(
            f"the copy of {record.id} at {dest.url} failed verification: {problems[0]}; "
            f"kept aside in {dest.path(group, FAILED_DIR)}"
        )
    return stored


def prune(
    dest: Destination, catalogue: Catalogue, policy: Policy, now: float, *, dry_run: bool
) -> list[Decision]:
    """Apply retention to one destination's catalogue (the caller holds its lock). The
    records go first, then the files: a crash in between leaves only an uncatalogued file."""
    items = [Item(b.id, b.taken_at, b.verified) for b in catalogue.backups]
    decisions = decide(items, now, policy)
    doomed = [catalogue.get(d.id) for d in decisions if not d.keep]
    if dry_run or not doomed:
        return decisions
    for rec in doomed:
        if rec is not None:
            catalogue.remove(rec.id)
    dest.write_catalogue(catalogue)
    for rec in doomed:
        if rec is not None:
            dest.remove(catalogue.group, rec.file)
    return decisions


# ----------------------------------------------------------------------------- the run


def _group_name(session: Session, req: BackupRequest, topo: Topology, src: NodeInfo) -> str:
    if req.group:
        return safe_name(req.group)
    if session.cluster is not None:
        return safe_name(session.cluster.name)
    top = topo.root(src) or src
    return safe_name(str(top.address))


def _unique_id(base: str, catalogues: list[Catalogue]) -> str:
    taken = {b.id for c in catalogues for b in c.backups}
    backup_id, n = base, 1
    while backup_id in taken:
        n += 1
        backup_id = f"{base}-{n}"
    return backup_id


def run_backup(
    session: Session,
    req: BackupRequest,
    *,
    key: bytes | None = None,
    connect: Connector | None = None,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.time,
    note: Callable[[str], None] = lambda _text: None,
) -> BackupOutcome:
    """Take one backup as :class:`BackupRequest` says; raises on failure (one-line errors)."""
    prog = progress or NullProgress()
    topo = session.discover()
    if req.node is None:
        masters = topo.masters
        if not masters:
            raise Unreachable(f"cluster {session.cluster_name}: no reachable master")
        named: NodeInfo | None = masters[0]
    else:
        named = topo.get(req.node)
    if named is None or not named.reachable:
        why = named.error if named is not None else "not found"
        raise Unreachable(f"{req.node}: {why}")
    src, reason = choose_source(topo, named, req.from_master)
    group = _group_name(session, req, topo, src)
    node = session.node(src.address)
    host = session.host(src.address)
    source_file = rdb_path(node, host, src.info)
    dest = open_destination(req.dest, connect)
    copies = [open_destination(c, connect) for c in req.copy_to]
    outcome = BackupOutcome(req.dry_run, group, str(src.address), reason, source_file, dest.url)
    try:
        if req.dry_run:
            return _dry_run(outcome, req, src, host, dest, copies, clock(), key is not None)
        return _take(outcome, req, topo, src, node, host, dest, copies, key, prog, clock, note)
    finally:
        for d in (dest, *copies):
            d.close()


def _dry_run(
    outcome: BackupOutcome,
    req: BackupRequest,
    src: NodeInfo,
    host: Host,
    dest: Destination,
    copies: list[Destination],
    now: float,
    encrypt: bool,
) -> BackupOutcome:
    st = host.stat(outcome.rdb_file)
    cats = [d.read_catalogue(outcome.group) for d in (dest, *copies)]
    backup_id = _unique_id(f"{stamp(now)}-{safe_name(str(src.address))}", cats)
    outcome.would_take = {
        "id": backup_id,
        "snapshot": "existing RDB (--no-bgsave)" if req.no_bgsave else "BGSAVE",
        "current_rdb_size": st.size if st else None,
        "current_rdb_age_s": round(now - st.mtime) if st else None,
        "copies": [c.url for c in copies],
        "encrypted": [
            d.url for d in (dest, *copies) if encrypt and (d is not dest or d.spec.offhost)
        ],
    }
    for d, cat in zip((dest, *copies), cats, strict=True):
        cat.backups.append(
            BackupRecord(
                backup_id, outcome.group, "", "verified", now, 0, "", node=str(src.address)
            )
        )
        outcome.retention[d.url] = prune(d, cat, req.policy, now, dry_run=True)
    return outcome


def _take(
    outcome: BackupOutcome,
    req: BackupRequest,
    topo: Topology,
    src: NodeInfo,
    node: RedisNode,
    host: Host,
    dest: Destination,
    copies: list[Destination],
    key: bytes | None,
    prog: Progress,
    clock: Callable[[], float],
    note: Callable[[str], None],
) -> BackupOutcome:
    group = outcome.group
    started = clock()
    with dest.lock(group), _spool() as spool:
        catalogue = dest.read_catalogue(group)
        backup_id = _unique_id(f"{stamp(started)}-{safe_name(str(src.address))}", [catalogue])
        name = f"{backup_id}.rdb"
        if req.no_bgsave:
            st = host.stat(outcome.rdb_file)
            snap = existing_snapshot(node, started, st.mtime if st else None)
            note(f"{src.address}: using the existing RDB: {snap.how}")
        else:
            prog.phase(f"BGSAVE on {src.address}")
            snap = take_snapshot(node, req.timeout, on_wait=note)
        info = node.info("server", "replication", "keyspace", "memory")
        local = dest.local_path(group)
        if local is not None:
            dest.ensure_dir(group)
            target = local / f".{name}.partial"
        else:
            target = spool / name
        prog.phase(f"fetch {outcome.rdb_file} from {host.name}")
        try:
            fetched = fetch_verified(host, outcome.rdb_file, target, prog)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        record = build_record(
            backup_id=backup_id,
            group=group,
            src=src,
            topo=topo,
            info=info,
            snap=snap,
            fetched=fetched,
            source_file=outcome.rdb_file,
            source_host=host.name,
            started=started,
            now=clock(),
        )
        if fetched.problems:
            _set_aside(dest, catalogue, record, target, local)
            raise VerifyFailed(
                f"backup {backup_id} of {src.address} failed verification: "
                f"{fetched.problems[0]}; kept aside in {dest.path(group, FAILED_DIR)}"
            )
        if local is not None:
            os.replace(target, local / name)
            stored = record
        else:
            stored = store_file(target, record, dest, key if dest.spec.offhost else None, prog)
        catalogue.put(stored)
        dest.write_catalogue(catalogue)
        outcome.record, outcome.path = stored, dest.path(group, stored.file)
        if fetched.check.status == "skipped":
            outcome.notes.append(f"redis-check-rdb skipped: {fetched.check.detail}")
        failures = _copy_out(
            outcome,
            req,
            record,
            target if local is None else local / name,
            copies,
            key,
            prog,
            clock,
        )
        stored.copies = list(record.copies)
        catalogue.put(stored)
        dest.write_catalogue(catalogue)
        outcome.retention[dest.url] = prune(dest, catalogue, req.policy, clock(), dry_run=False)
    if failures:
        first = failures[0]
        raise type(first)(
            f"backup {backup_id} verified and catalogued, but "
            + "; ".join(str(f) for f in failures),
            hint=None,
        )
    return outcome


def _set_aside(
    dest: Destination, catalogue: Catalogue, record: BackupRecord, target: Path, local: Path | None
) -> None:
    """A backup that failed verification: kept in ``failed/`` and catalogued as failed."""
    failed_name = f"{FAILED_DIR}/{record.file}"
    if local is not None:
        (local / FAILED_DIR).mkdir(parents=True, exist_ok=True)
        os.replace(target, local / failed_name)
    else:
        dest.ensure_dir(record.group, FAILED_DIR)
        dest.put(target, record.group, failed_name)
    record.file = failed_name
    catalogue.put(record)
    dest.write_catalogue(catalogue)


def _copy_out(
    outcome: BackupOutcome,
    req: BackupRequest,
    record: BackupRecord,
    plain: Path,
    copies: list[Destination],
    key: bytes | None,
    prog: Progress,
    clock: Callable[[], float],
) -> list[RedisopsError]:
    """Every ``--copy-to``: store, verify, catalogue there, prune there."""
    failures: list[RedisopsError] = []
    for copy in copies:
        try:
            with copy.lock(record.group):
                stored = store_file(plain, replace(record, copy_of=outcome.dest), copy, key, prog)
                cat = copy.read_catalogue(record.group)
                cat.put(stored)
                copy.write_catalogue(cat)
                record.copies.append(
                    CopyRecord(
                        copy.url,
                        stored.file,
                        stored.encrypted,
                        stored.stored_size or stored.size,
                        stored.stored_sha256 or stored.sha256,
                        stored.verified_at or clock(),
                        copy.spec.offhost,
                    )
                )
                outcome.retention[copy.url] = prune(copy, cat, req.policy, clock(), dry_run=False)
        except RedisopsError as exc:
            failures.append(exc)
    return failures
