"""``redisops backup verify PATH|--all``: check stored backups again.

For each backup: size and SHA-256 against the catalogue, the RDB's CRC64 trailer and
``redis-check-rdb`` (when installed); for an encrypted copy, the ciphertext's size and
SHA-256 (computed on the host that holds it), and with ``--decrypt`` the plaintext too
(every chunk authenticated, then SHA-256 and CRC64 of the RDB inside). ``--load-test``
loads the file into a throwaway ``redis-server`` on a free loopback port and compares the
key count with the catalogue; the dataset's ``DEBUG DIGEST`` is then recorded, so a later
restore can compare against it.

A backup that passes gets ``verified_at`` updated; one that fails is moved into
``failed/`` and catalogued as failed, exactly as at backup time.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redisops.backup import crypto
from redisops.backup.catalogue import CATALOGUE, FAILED_DIR, BackupRecord, Catalogue
from redisops.backup.dest import Destination, DestSpec, open_destination
from redisops.backup.rdbfile import RdbDigest, RdbFacts, digest_stream, run_check_rdb
from redisops.backup.throwaway import dataset_facts, start_throwaway
from redisops.errors import BadInput
from redisops.host import CHUNK, LocalHost
from redisops.versions import can_load_rdb, rdb_format_of


@dataclass
class VerifyResult:
    id: str
    group: str
    path: str
    status: str = "ok"  # ok | failed | error (could not be checked: not the backup's fault)
    checks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    load: dict[str, Any] | None = None
    moved: bool = False  # moved into failed/ by this verification

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "group": self.group,
            "path": self.path,
            "status": self.status,
            "checks": self.checks,
            "problems": self.problems,
            "notes": self.notes,
            "load_test": self.load,
            "moved_to_failed": self.moved,
        }


@dataclass(frozen=True)
class VerifyOptions:
    key: bytes | None = None
    decrypt: bool = False
    load_test: bool = False


def _compare_plain(rec: BackupRecord, facts: RdbFacts, res: VerifyResult, what: str) -> None:
    if facts.size != rec.size:
        res.problems.append(f"{what} size is {facts.size}, the catalogue says {rec.size}")
    elif facts.sha256 != rec.sha256:
        res.problems.append(
            f"{what} SHA-256 is {facts.sha256[:16]}…, the catalogue says {rec.sha256[:16]}…"
        )
    else:
        res.checks += ["size", "sha256"]
    problems = facts.problems()
    res.problems += problems
    if not problems:
        res.checks.append("crc64" if facts.crc_status == "ok" else "crc64 absent (rdbchecksum no)")


def _check_tools(rec: BackupRecord, local: Path, res: VerifyResult, opts: VerifyOptions) -> None:
    """redis-check-rdb, then the load test, on a plaintext file on this machine."""
    if res.problems:
        return
    check = run_check_rdb(str(local), rec.rdb_version)
    if check.status == "ok":
        res.checks.append(check.tool)
    elif check.status == "failed":
        res.problems.append(f"{check.tool} rejects it: {check.detail}")
    else:
        res.notes.append(f"redis-check-rdb skipped: {check.detail}")
    if opts.load_test and not res.problems:
        load_test(rec, local, res)


def load_test(rec: BackupRecord, local: Path, res: VerifyResult) -> None:
    """Load ``local`` into a throwaway redis-server; compare keys with the catalogue."""
    from redisops.lab import free_base_port, redis_server_binary

    binary = redis_server_binary()
    out = LocalHost().run([binary, "--version"], timeout=10).text()
    version = next((w[2:] for w in out.split() if w.startswith("v=")), "")
    if rec.rdb_version is not None and can_load_rdb(version, rec.rdb_version) is False:
        res.status = "error"
        res.notes.append(
            f"load test not possible: redis-server {version} loads RDB formats up to "
            f"{rdb_format_of('redis', version)}, this backup is format {rec.rdb_version}"
        )
        return
    server = start_throwaway(LocalHost(), str(local), binary=binary, port=free_base_port(1, 21000))
    try:
        with server.node() as n:
            facts = dataset_facts(n)
    finally:
        server.stop()
    res.load = {"server": f"redis-server {version}", **facts}
    loaded = int(str(facts["keys"]))
    if rec.keys is None:
        res.notes.append(f"loaded {loaded} keys; the catalogue has no key count to compare")
    elif rec.keys_source != "redis-check-rdb":
        res.notes.append(
            f"loaded {loaded} keys; the catalogue's {rec.keys} came from INFO at backup time "
            f"(approximate): not compared"
        )
    else:
        low = rec.keys - (rec.expires or 0)
        if not low <= loaded <= rec.keys:
            res.problems.append(
                f"the load test loaded {loaded} keys, the catalogue says {rec.keys}"
            )
            return
        res.checks.append(f"load test ({loaded} keys)")
        if loaded != rec.keys:
            res.notes.append(f"{rec.keys - loaded} key(s) with a TTL expired since the backup")
    if facts["digest"]:
        rec.digest = str(facts["digest"])


def verify_record(dest: Destination, rec: BackupRecord, opts: VerifyOptions) -> VerifyResult:
    """Check one catalogued backup at ``dest`` (the caller holds the group's lock)."""
    group = rec.group
    res = VerifyResult(rec.id, group, dest.path(group, rec.file))
    if dest.size(group, rec.file) is None:
        res.problems.append("the file is missing")
        return res
    with tempfile.TemporaryDirectory(prefix="redisops-verify-") as spool:
        if rec.encrypted:
            _verify_encrypted(dest, rec, res, opts, Path(spool))
            return res
        local = dest.local_path(group, rec.file)
        if local is None:
            local = Path(spool) / "backup.rdb"
            with dest.open_read(group, rec.file) as src, open(local, "wb") as out:
                digest = RdbDigest()
                for block in iter(lambda: src.read(CHUNK), b""):
                    digest.update(block)
                    out.write(block)
            facts = digest.facts()
        else:
            with open(local, "rb") as fh:
                facts = digest_stream(fh)
        _compare_plain(rec, facts, res, "the file's")
        _check_tools(rec, local, res, opts)
    return res


def _verify_encrypted(
    dest: Destination, rec: BackupRecord, res: VerifyResult, opts: VerifyOptions, spool: Path
) -> None:
    group = rec.group
    size, sha = dest.size(group, rec.file), dest.sha256(group, rec.file)
    if size != rec.stored_size or sha != rec.stored_sha256:
        res.problems.append(
            f"the encrypted file is {size} bytes, SHA-256 {sha[:16]}…; the catalogue says "
            f"{rec.stored_size} bytes, {str(rec.stored_sha256)[:16]}…"
        )
        return
    res.checks += ["ciphertext size", "ciphertext sha256"]
    if not opts.decrypt:
        if opts.load_test:
            res.notes.append("load test needs --decrypt for an encrypted copy")
        return
    if opts.key is None:
        raise BadInput("--decrypt needs --key-file")
    if rec.key_id and crypto.key_id(opts.key) != rec.key_id:
        res.status = "error"
        res.notes.append(
            f"the key file is not the key this copy was encrypted with (key id {rec.key_id})"
        )
        return
    plain = spool / "backup.rdb"
    digest = RdbDigest()
    try:
        with dest.open_read(group, rec.file) as src, open(plain, "wb") as out:
            for block in crypto.iter_decrypt(src, opts.key):
                digest.update(block)
                out.write(block)
    except crypto.DecryptError as exc:
        res.problems.append(exc.message)
        return
    res.checks.append("decrypts (every chunk authenticated)")
    _compare_plain(rec, digest.facts(), res, "the decrypted")
    _check_tools(rec, plain, res, opts)


def settle(dest: Destination, cat: Catalogue, rec: BackupRecord, res: VerifyResult) -> None:
    """Record the result in the catalogue: ``verified_at`` on success; on failure the file
    goes into ``failed/`` and the record is marked failed (the caller holds the lock)."""
    if res.status == "error":
        return
    if res.problems:
        res.status = "failed"
        if rec.status == "verified" and dest.size(rec.group, rec.file) is not None:
            name = posixpath.basename(rec.file)
            dest.ensure_dir(rec.group, FAILED_DIR)
            dest.move(rec.group, rec.file, f"{FAILED_DIR}/{name}")
            rec.file = f"{FAILED_DIR}/{name}"
            res.path = dest.path(rec.group, rec.file)
            res.moved = True
        rec.status, rec.failure = "failed", "; ".join(res.problems)
        rec.verified_at = None
    elif rec.status == "verified":
        rec.verified_at = time.time()
        rec.verified_by = list(res.checks)
    cat.put(rec)
    dest.write_catalogue(cat)


def verify_all(spec: DestSpec, opts: VerifyOptions, group: str | None = None) -> list[VerifyResult]:
    """Every verified backup at a destination (or in one group)."""
    dest = open_destination(spec)
    results: list[VerifyResult] = []
    try:
        for g in dest.read_groups(group):
            with dest.lock(g):
                cat = dest.read_catalogue(g)
                for rec in sorted(cat.backups, key=lambda b: b.id):
                    if rec.status != "verified":
                        continue
                    res = verify_record(dest, rec, opts)
                    settle(dest, cat, rec, res)
                    results.append(res)
    finally:
        dest.close()
    return results


def locate(path: Path) -> tuple[DestSpec, str, BackupRecord] | None:
    """The destination, group and record of a backup file given by path, or None when the
    file is not in a catalogue (the group directory is its parent, or its parent's parent
    for a file in ``failed/``)."""
    from redisops.backup.dest import parse_dest

    full = path.resolve()
    group_dir = full.parent.parent if full.parent.name == FAILED_DIR else full.parent
    cat_path = group_dir / CATALOGUE
    if not cat_path.is_file():
        return None
    cat = Catalogue.from_json(cat_path.read_text(), str(cat_path))
    rel = os.path.relpath(full, group_dir)
    rec = next((b for b in cat.backups if b.file == rel), None)
    if rec is None:
        return None
    return parse_dest(str(group_dir.parent)), group_dir.name, rec


def verify_path(path: Path, opts: VerifyOptions) -> VerifyResult:
    """One backup file: through its catalogue when it has one, else as a bare RDB file."""
    if not path.is_file():
        raise BadInput(f"{path}: no such file", hint="give a backup file, or --all with --dest")
    found = locate(path)
    if found is None:
        return verify_bare(path, opts)
    spec, group, _ = found
    dest = open_destination(spec)
    try:
        with dest.lock(group):
            cat = dest.read_catalogue(group)
            rel = os.path.relpath(path.resolve(), Path(dest.path(group)))
            rec = next(b for b in cat.backups if b.file == rel)
            res = verify_record(dest, rec, opts)
            settle(dest, cat, rec, res)
            return res
    finally:
        dest.close()


def verify_bare(path: Path, opts: VerifyOptions) -> VerifyResult:
    """A file with no catalogue: the RDB's own checks (header, CRC64, redis-check-rdb)."""
    res = VerifyResult(path.name, "", str(path))
    res.notes.append("not in a catalogue: no size or SHA-256 to compare")
    head = path.open("rb").read(len(crypto.MAGIC))
    if head == crypto.MAGIC:
        if not (opts.decrypt and opts.key):
            res.status = "error"
            res.notes.append("an encrypted file: pass --decrypt --key-file")
            return res
        with tempfile.TemporaryDirectory(prefix="redisops-verify-") as spool:
            plain = Path(spool) / "backup.rdb"
            digest = RdbDigest()
            try:
                with path.open("rb") as src, open(plain, "wb") as out:
                    for block in crypto.iter_decrypt(src, opts.key):
                        digest.update(block)
                        out.write(block)
            except crypto.DecryptError as exc:
                res.problems.append(exc.message)
                res.status = "failed"
                return res
            _bare_checks(digest.facts(), plain, res, opts)
        return res
    with path.open("rb") as fh:
        facts = digest_stream(fh)
    _bare_checks(facts, path, res, opts)
    return res


def _bare_checks(facts: RdbFacts, local: Path, res: VerifyResult, opts: VerifyOptions) -> None:
    res.problems += facts.problems()
    if not res.problems:
        res.checks.append("crc64" if facts.crc_status == "ok" else "crc64 absent (rdbchecksum no)")
    rec = BackupRecord(res.id, "", res.path, "verified", 0.0, facts.size, facts.sha256)
    rec.rdb_version = facts.format_version
    _check_tools(rec, local, res, opts)
    if res.problems:
        res.status = "failed"
