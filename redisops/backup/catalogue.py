"""The catalogue: one JSON file per replication group, beside the backups it describes.

``DEST/<group>/catalogue.json`` (the format is documented in ``docs/backup.md``)::

    {"format": "redisops-backup-catalogue", "version": 1, "group": "cache-prod",
     "backups": [{"id": "20261206T031700Z-10.0.0.2-6379", "status": "verified", ...}]}

A record is written only after its file verified (``status: verified``), or after the
file was moved aside into ``failed/`` (``status: failed`` with the reason); a file without
a record is an interrupted transfer and is never offered for a restore. Every destination
(the main one and each ``--copy-to``) has its own catalogue, so an off-host copy can be
listed, verified and restored from when the backup host is gone.

:func:`newest_verified_backup` is the plain function the health checks call.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from redisops.errors import BadInput

FORMAT = "redisops-backup-catalogue"
VERSION = 1
CATALOGUE = "catalogue.json"
FAILED_DIR = "failed"


def iso(t: float | None) -> str | None:
    """UTC ISO-8601 with a Z, as the catalogue writes times.

    >>> iso(0), iso(None)
    ('1970-01-01T00:00:00Z', None)
    """
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def parse_iso(text: str | None) -> float | None:
    """Seconds since the epoch from :func:`iso`'s text.

    >>> parse_iso("1970-01-02T00:00:00Z"), parse_iso(None)
    (86400.0, None)
    """
    if not text:
        return None
    import calendar

    return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))


def stamp(t: float) -> str:
    """The sortable label part of a backup id.

    >>> stamp(0)
    '19700101T000000Z'
    """
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t))


def safe_name(text: str) -> str:
    """A group or node name usable as a file name.

    >>> safe_name("127.0.0.1:6379"), safe_name("[::1]:7000"), safe_name("cache/prod")
    ('127.0.0.1-6379', '1-7000', 'cache-prod')
    """
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "x"


@dataclass
class CopyRecord:
    """Where a copy of a backup is, as recorded in the main catalogue."""

    dest: str  # the destination URL
    file: str  # path relative to the group directory there
    encrypted: bool
    size: int
    sha256: str  # of the stored bytes (the ciphertext when encrypted)
    verified_at: float
    offhost: bool

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["verified_at"] = iso(self.verified_at)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CopyRecord:
        return cls(
            dest=str(d["dest"]),
            file=str(d["file"]),
            encrypted=bool(d.get("encrypted", False)),
            size=int(d.get("size", 0)),
            sha256=str(d.get("sha256", "")),
            verified_at=parse_iso(d.get("verified_at")) or 0.0,
            offhost=bool(d.get("offhost", True)),
        )


_TIME_FIELDS = ("taken_at", "started_at", "finished_at", "verified_at")


@dataclass
class BackupRecord:
    """One backup file at one destination."""

    id: str
    group: str
    file: str  # relative to the group directory (``failed/...`` once moved aside)
    status: str  # verified | failed
    taken_at: float  # when the snapshot was made (the node's LASTSAVE)
    size: int  # of the RDB (plaintext)
    sha256: str  # of the RDB (plaintext), as computed on the source host
    node: str = ""
    role: str = ""
    master: str | None = None
    run_id: str = ""
    replid: str = ""
    repl_offset: int = 0
    master_lag_bytes: int | None = None  # how far the source was behind its master
    redis_version: str = ""
    rdb_version: int | None = None
    crc64: str | None = None  # the trailer, hex; "0000000000000000": rdbchecksum no
    keys: int | None = None
    keys_source: str = ""  # redis-check-rdb (exact) | info (at BGSAVE time, approximate)
    expires: int | None = None
    keyspace: dict[str, dict[str, int]] = field(default_factory=dict)
    used_memory: int | None = None
    used_memory_rss: int | None = None
    source_file: str = ""
    source_host: str = ""  # the machine the file was read from: local, or user@host:port
    snapshot: str = ""  # how it was made: "BGSAVE", "existing RDB (N s old)"
    started_at: float | None = None
    finished_at: float | None = None
    verified_at: float | None = None
    verified_by: list[str] = field(default_factory=list)
    failure: str | None = None
    encrypted: bool = False
    stored_size: int | None = None  # of the file as stored, when it differs (encrypted)
    stored_sha256: str | None = None
    key_id: str | None = None
    digest: str | None = None  # DEBUG DIGEST of the dataset, from a load test
    copy_of: str | None = None  # on a copy destination: the main destination's URL
    copies: list[CopyRecord] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # fields a newer version wrote

    @property
    def verified(self) -> bool:
        return self.status == "verified"

    @property
    def offhost_copy(self) -> bool:
        """True when a verified copy of this backup exists off this backup's host."""
        return any(c.offhost for c in self.copies)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("copies", "extra"):
                continue
            value = getattr(self, f.name)
            out[f.name] = iso(value) if f.name in _TIME_FIELDS else value
        out["copies"] = [c.to_dict() for c in self.copies]
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BackupRecord:
        known = {f.name for f in fields(cls)} - {"copies", "extra"}
        kwargs: dict[str, Any] = {}
        for name in known:
            if name in d:
                value = d[name]
                kwargs[name] = parse_iso(value) if name in _TIME_FIELDS else value
        try:
            rec = cls(**kwargs)
        except TypeError as exc:
            raise BadInput(f"catalogue record {d.get('id', '?')} is incomplete ({exc})") from None
        rec.copies = [CopyRecord.from_dict(c) for c in d.get("copies", [])]
        rec.extra = {k: v for k, v in d.items() if k not in known and k != "copies"}
        return rec


@dataclass
class Catalogue:
    group: str
    backups: list[BackupRecord] = field(default_factory=list)

    def to_json(self) -> str:
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "group": self.group,
            "backups": [b.to_dict() for b in sorted(self.backups, key=lambda b: b.id)],
        }
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> Catalogue:
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise BadInput(f"catalogue {where} is not valid JSON ({exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise BadInput(f"{where} is not a redisops backup catalogue")
        if int(doc.get("version", 0)) > VERSION:
            raise BadInput(
                f"catalogue {where} is version {doc.get('version')}, newer than this redisops "
                f"reads ({VERSION})",
                hint="upgrade redisops",
            )
        return cls(
            str(doc.get("group", "")),
            [BackupRecord.from_dict(b) for b in doc.get("backups", [])],
        )

    def get(self, backup_id: str) -> BackupRecord | None:
        return next((b for b in self.backups if b.id == backup_id), None)

    def put(self, record: BackupRecord) -> None:
        self.backups = [b for b in self.backups if b.id != record.id]
        self.backups.append(record)

    def remove(self, backup_id: str) -> None:
        self.backups = [b for b in self.backups if b.id != backup_id]

    def newest_verified(self) -> BackupRecord | None:
        good = [b for b in self.backups if b.verified]
        return max(good, key=lambda b: (b.taken_at, b.id)) if good else None


def newest_verified_backup(dest_or_catalogue: str | Path, group: str) -> BackupRecord | None:
    """The newest verified backup of ``group``, or None when there is none.

    ``dest_or_catalogue`` is a destination (a local directory, or ``sftp://…`` through the
    SSH layer) or the path of a ``catalogue.json``; ``group`` is the group's name as given to
    ``backup`` (``--group``, the inventory cluster, or the master's ``host:port``). The record's ``taken_at`` is when the
    snapshot was made (seconds since the epoch, UTC), ``verified_at`` when it last passed
    verification, and ``offhost_copy`` whether a verified copy exists off the backup host.
    A missing catalogue means no backup (None); a missing destination or an unreadable
    catalogue raises ``BadInput``.
    """
    group = safe_name(group)  # as the backup named its directory (e.g. a master address)
    text = str(dest_or_catalogue)
    if text.endswith(".json") and "://" not in text:
        path = Path(text)
        if not path.is_file():
            return None
        return Catalogue.from_json(path.read_text(), text).newest_verified()
    from redisops.backup.dest import open_destination, parse_dest

    dest = open_destination(parse_dest(text))
    try:
        dest.read_groups()  # a destination that is not there is a mistake, not "no backup"
        return dest.read_catalogue(group).newest_verified()
    finally:
        dest.close()
