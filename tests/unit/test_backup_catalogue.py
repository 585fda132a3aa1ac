"""The catalogue format and the function the health checks read (redisops.backup.catalogue)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from redisops.backup.catalogue import (
    BackupRecord,
    Catalogue,
    CopyRecord,
    newest_verified_backup,
)
from redisops.backup.dest import parse_dest
from redisops.errors import BadInput


def record(backup_id: str, taken_at: float, status: str = "verified", **kw: object) -> BackupRecord:
    return BackupRecord(backup_id, "g", f"{backup_id}.rdb", status, taken_at, 10, "ab" * 32, **kw)  # type: ignore[arg-type]


def test_records_round_trip_through_json_with_unknown_fields_kept() -> None:
    cat = Catalogue("g", [record("b1", 86400.0, keys=3, verified_at=90000.0)])
    cat.backups[0].copies.append(
        CopyRecord("sftp://h/p", "b1.rdb.enc", True, 50, "cd" * 32, 90001.0, True)
    )
    doc = json.loads(cat.to_json())
    assert doc["format"] == "redisops-backup-catalogue" and doc["version"] == 1
    assert doc["backups"][0]["taken_at"] == "1970-01-02T00:00:00Z"
    doc["backups"][0]["from_the_future"] = {"x": 1}
    again = Catalogue.from_json(json.dumps(doc), "test")
    assert again.backups[0].keys == 3
    assert again.backups[0].copies[0].encrypted
    assert json.loads(again.to_json())["backups"][0]["from_the_future"] == {"x": 1}


def test_a_newer_catalogue_version_is_refused_with_a_hint() -> None:
    with pytest.raises(BadInput, match="upgrade redisops"):
        Catalogue.from_json(json.dumps({"format": "redisops-backup-catalogue", "version": 99}), "x")


def test_newest_verified_backup_skips_failed_ones_and_says_if_a_copy_left_the_host(
    tmp_path: Path,
) -> None:
    group = tmp_path / "cache"
    group.mkdir()
    older = record("b1", 1000.0)
    older.copies.append(CopyRecord("sftp://vault/srv", "b1.rdb.enc", True, 1, "x", 1001.0, True))
    newer = record("b2", 2000.0)
    failed = record("b3", 3000.0, status="failed")
    (group / "catalogue.json").write_text(Catalogue("cache", [older, newer, failed]).to_json())
    found = newest_verified_backup(tmp_path, "cache")
    assert found is not None and found.id == "b2" and not found.offhost_copy
    via_file = newest_verified_backup(group / "catalogue.json", "cache")
    assert via_file is not None and via_file.id == "b2"
    assert newest_verified_backup(tmp_path, "other-group") is None


@pytest.mark.parametrize(
    "text",
    ["ftp://h/x", "sftp://h", "sftp://u:pw@h/x", "sftp://h:99999/x", ""],
)
def test_malformed_destinations_are_bad_input(text: str) -> None:
    with pytest.raises(BadInput):
        parse_dest(text)
