"""Backups against real redis-server: take, verify, copy, encrypt, prune, dry run.

Each test starts its own servers on free loopback ports; backups go to the test's temp dir.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from redisops.backup.catalogue import BackupRecord, Catalogue, newest_verified_backup
from redisops.backup.dest import parse_dest
from redisops.backup.retention import Policy
from redisops.backup.take import BackupRequest, run_backup
from redisops.errors import ExitCode, VerifyFailed
from redisops.host import LocalHost
from redisops.model import Address
from redisops.session import build_session
from tests.harness import FAST_SYNC, RedisFactory, RedisProc, star_of, wait_in_sync
from tests.integration.ops_helpers import invoke

pytestmark = pytest.mark.redis_server

KEYS = 2000


def populate(proc: RedisProc, n: int = KEYS) -> None:
    proc.client().execute_command("DEBUG", "POPULATE", n)


def rdb_saves(proc: RedisProc) -> int:
    return int(proc.info("persistence")["rdb_saves"])


def catalogue(dest: Path) -> Catalogue:
    (path,) = list(dest.glob("*/catalogue.json"))
    return Catalogue.from_json(path.read_text(), str(path))


def backup_json(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any], str]:
    result = invoke(env, "backup", *args, "--format", "json")
    doc = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.exit_code, doc, result.stderr


@pytest.fixture
def pair(redis_factory: RedisFactory) -> list[RedisProc]:
    master = redis_factory.start(FAST_SYNC)
    populate(master)  # DEBUG POPULATE is not replicated: fill the master first
    nodes = star_of([master, redis_factory.start(FAST_SYNC)])
    wait_in_sync(master, nodes[1:])
    return nodes


def test_a_backup_of_a_master_is_taken_from_its_replica_and_verified(
    pair: list[RedisProc], tmp_path: Path, env: dict[str, str]
) -> None:
    master, replica = pair
    saves = (rdb_saves(master), rdb_saves(replica))
    dest = tmp_path / "backups"
    code, doc, err = backup_json(env, master.address, "--dest", str(dest))
    assert code == 0, err
    rec = doc["backup"]
    assert rec["node"] == replica.address and rec["role"] == "replica"
    assert rec["source_host"] == "local"
    assert rec["status"] == "verified" and rec["keys"] == KEYS
    assert rec["rdb_version"] == 10 and rec["redis_version"].startswith("7.0")
    assert "crc64" in rec["verified_by"] and any("redis-check-rdb" in v for v in rec["verified_by"])
    stored = Path(doc["path"])
    import hashlib

    assert hashlib.sha256(stored.read_bytes()).hexdigest() == rec["sha256"]
    assert (rdb_saves(master), rdb_saves(replica)) == (
        saves[0],
        saves[1] + 1,
    )  # no fork on the master
    found = newest_verified_backup(dest, doc["group"])
    assert found is not None and found.id == rec["id"] and not found.offhost_copy


def test_a_bgsave_already_running_is_waited_for_and_a_new_one_is_taken(
    redis_factory: RedisFactory, tmp_path: Path, env: dict[str, str]
) -> None:
    node = redis_factory.start({"rdb-key-save-delay": "500"})  # 2000 keys: about a second
    populate(node)
    before = rdb_saves(node)
    node.client().bgsave()
    assert node.info("persistence")["rdb_bgsave_in_progress"] == 1
    code, doc, err = backup_json(env, node.address, "--dest", str(tmp_path / "d"))
    assert code == 0, err
    assert "after waiting" in doc["backup"]["snapshot"]
    assert rdb_saves(node) == before + 2


def test_a_dry_run_writes_nothing_and_takes_no_snapshot(
    pair: list[RedisProc], tmp_path: Path, env: dict[str, str]
) -> None:
    master, replica = pair
    saves = rdb_saves(replica)
    dest = tmp_path / "never"
    result = invoke(env, "backup", master.address, "--dest", str(dest), "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "would BGSAVE on " + replica.address in result.stdout
    assert "nothing was written" in result.stdout
    assert not dest.exists()
    assert rdb_saves(replica) == saves


class CorruptingHost(LocalHost):
    """Flips one byte of every file read through it: a damaged transfer (the host's own
    checksum, computed where the file is, sees the good file)."""

    def sha256(self, path: str) -> str:
        return LocalHost().sha256(path)

    @contextlib.contextmanager
    def open_read(self, path: str) -> Iterator[BinaryIO]:
        with LocalHost().open_read(path) as fh:
            data = bytearray(fh.read())
        data[len(data) // 2] ^= 0xFF
        yield io.BytesIO(bytes(data))


def test_a_damaged_transfer_fails_the_source_checksum_and_is_kept_aside(
    pair: list[RedisProc], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    master, _ = pair
    dest = tmp_path / "d"
    session = build_session(seeds=[master.address])
    monkeypatch.setattr(session, "host", lambda _address: CorruptingHost())
    req = BackupRequest(Address.parse(master.address), parse_dest(str(dest)), group="g")
    with pytest.raises(VerifyFailed, match="SHA-256 mismatch") as exc:
        run_backup(session, req)
    assert exc.value.exit_code is ExitCode.VERIFY_FAILED
    cat = catalogue(dest)
    (rec,) = cat.backups
    assert rec.status == "failed" and rec.file.startswith("failed/")
    assert (dest / "g" / rec.file).is_file()
    assert not list((dest / "g").glob("*.rdb"))  # nothing left under a good name
    assert newest_verified_backup(dest, "g") is None


def test_a_damaged_rdb_on_the_node_fails_its_crc64_with_one_line(
    redis_factory: RedisFactory, tmp_path: Path, env: dict[str, str]
) -> None:
    node = redis_factory.start()
    populate(node)
    node.client().bgsave()
    from tests.harness import wait_until

    wait_until(lambda: node.info("persistence")["rdb_bgsave_in_progress"] == 0)
    rdb = node.dir / "dump.rdb"
    data = bytearray(rdb.read_bytes())
    data[len(data) // 2] ^= 0x01
    rdb.write_bytes(bytes(data))
    result = invoke(env, "backup", node.address, "--dest", str(tmp_path / "d"), "--no-bgsave")
    assert result.exit_code == ExitCode.VERIFY_FAILED
    errors = [line for line in result.stderr.splitlines() if line.startswith("redisops: error:")]
    assert len(errors) == 1 and "CRC64 mismatch" in errors[0] and "kept aside" in errors[0]
    assert "Traceback" not in result.stderr


def test_verify_finds_a_flipped_byte_in_a_stored_backup_and_moves_it_aside(
    pair: list[RedisProc], tmp_path: Path, env: dict[str, str]
) -> None:
    dest = tmp_path / "d"
    code, doc, err = backup_json(env, pair[0].address, "--dest", str(dest))
    assert code == 0, err
    stored = Path(doc["path"])
    assert invoke(env, "backup", "verify", str(stored)).exit_code == 0
    data = bytearray(stored.read_bytes())
    data[100] ^= 0x10
    stored.write_bytes(bytes(data))
    result = invoke(env, "backup", "verify", str(stored))
    assert result.exit_code == ExitCode.VERIFY_FAILED
    assert len(result.stderr.strip().splitlines()) == 1
    assert "SHA-256" in result.stderr and "Traceback" not in result.stderr
    (rec,) = catalogue(dest).backups
    assert rec.status == "failed" and (dest / doc["group"] / "failed" / stored.name).is_file()
    assert not stored.exists()


def test_copy_to_is_verified_and_catalogued_at_both_ends(
    pair: list[RedisProc], tmp_path: Path, env: dict[str, str]
) -> None:
    dest, far = tmp_path / "d", tmp_path / "far"
    code, doc, err = backup_json(env, pair[0].address, "--dest", str(dest), "--copy-to", str(far))
    assert code == 0, err
    (copy,) = doc["backup"]["copies"]
    assert copy["dest"] == str(far) and copy["sha256"] == doc["backup"]["sha256"]
    far_rec = catalogue(far).backups[0]
    assert far_rec.copy_of == str(dest) and far_rec.status == "verified"
    assert (far / doc["group"] / far_rec.file).read_bytes() == Path(doc["path"]).read_bytes()
    assert catalogue(dest).backups[0].copies[0].dest == str(far)


def test_encrypted_copies_round_trip_and_tampering_is_detected(
    pair: list[RedisProc], tmp_path: Path, env: dict[str, str]
) -> None:
    key = tmp_path / "backup.key"
    key.write_text(os.urandom(32).hex())
    key.chmod(0o600)
    dest, far = tmp_path / "d", tmp_path / "far"
    code, doc, err = backup_json(
        env,
        pair[0].address,
        "--dest",
        str(dest),
        "--copy-to",
        str(far),
        "--encrypt-key-file",
        str(key),
    )
    assert code == 0, err
    rec = catalogue(far).backups[0]
    sealed = far / doc["group"] / rec.file
    assert rec.encrypted and sealed.name.endswith(".rdb.enc")
    assert not sealed.read_bytes().startswith(b"REDIS")
    ok = invoke(
        env,
        "backup",
        "verify",
        "--all",
        "--dest",
        str(far),
        "--decrypt",
        "--key-file",
        str(key),
        "-o",
        "json",
    )
    assert ok.exit_code == 0, ok.stderr
    checks = json.loads(ok.stdout)["results"][0]["checks"]
    assert "decrypts (every chunk authenticated)" in checks and "crc64" in checks
    data = bytearray(sealed.read_bytes())
    data[len(data) // 2] ^= 0x01
    sealed.write_bytes(bytes(data))
    bad = invoke(env, "backup", "verify", str(sealed), "--decrypt", "--key-file", str(key))
    assert bad.exit_code == ExitCode.VERIFY_FAILED
    assert "SHA-256" in bad.stderr or "authenticate" in bad.stderr


def fabricate(dest: Path, group: str, ages_days: list[float], now: float) -> list[str]:
    """Old backups, as if taken by earlier runs: files and catalogue records."""
    (dest / group).mkdir(parents=True, exist_ok=True)
    cat = Catalogue(group)
    ids = []
    for i, age in enumerate(ages_days):
        bid = f"old{i}"
        (dest / group / f"{bid}.rdb").write_bytes(b"REDIS0010old")
        cat.put(BackupRecord(bid, group, f"{bid}.rdb", "verified", now - age * 86400, 12, "x"))
        ids.append(bid)
    (dest / group / "catalogue.json").write_text(cat.to_json())
    return ids


def test_retention_prunes_only_after_a_new_backup_verified(
    pair: list[RedisProc], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    master, _ = pair
    dest = tmp_path / "d"
    now = time.time()
    fabricate(dest, "g", [3, 10, 40, 41], now)
    req = BackupRequest(
        Address.parse(master.address), parse_dest(str(dest)), group="g", policy=Policy(48, 30, 1)
    )
    session = build_session(seeds=[master.address])
    monkeypatch.setattr(session, "host", lambda _address: CorruptingHost())
    with pytest.raises(VerifyFailed):
        run_backup(session, req)
    assert {b.id for b in catalogue(dest).backups} >= {"old0", "old1", "old2", "old3"}
    outcome = run_backup(build_session(seeds=[master.address]), req)
    left = {b.id for b in catalogue(dest).backups if b.status == "verified"}
    assert outcome.record is not None
    assert left == {"old0", "old1", outcome.record.id}  # 40 and 41 days: outside 30 d
    assert not (dest / "g" / "old2.rdb").exists() and (dest / "g" / "old0.rdb").exists()


def test_a_load_test_compares_key_counts_and_records_the_digest(
    pair: list[RedisProc], tmp_path: Path, env: dict[str, str]
) -> None:
    master, _ = pair
    dest = tmp_path / "d"
    assert backup_json(env, master.address, "--dest", str(dest))[0] == 0
    result = invoke(env, "backup", "verify", "--all", "--dest", str(dest), "--load-test")
    assert result.exit_code == 0, result.stderr
    assert f"load test ({KEYS} keys)" in result.stdout
    rec = catalogue(dest).backups[0]
    assert rec.digest == master.client().execute_command("DEBUG", "DIGEST")


def test_backup_without_a_destination_is_bad_input_in_one_line(env: dict[str, str]) -> None:
    result = invoke({**env, "REDISOPS_BACKUP_DEST": ""}, "backup", "127.0.0.1:1")
    assert result.exit_code == ExitCode.BAD_INPUT
    assert result.stderr.strip().splitlines() == [
        "redisops: error: no backup destination; pass --dest DIR (or sftp://host/path) or set "
        "REDISOPS_BACKUP_DEST"
    ]


def test_with_cluster_the_group_is_the_inventory_name_and_no_node_is_needed(
    pair: list[RedisProc], tmp_path: Path, env: dict[str, str]
) -> None:
    master, replica = pair
    inventory = tmp_path / "redisops.yml"
    inventory.write_text(f"clusters:\n  cache-prod:\n    nodes: [{master.address}]\n")
    code, doc, err = backup_json(
        env, "--cluster", "cache-prod", "--inventory", str(inventory), "--dest", str(tmp_path / "d")
    )
    assert code == 0, err
    assert doc["group"] == "cache-prod" and doc["backup"]["node"] == replica.address
    assert (tmp_path / "d" / "cache-prod" / "catalogue.json").is_file()


def test_verify_of_a_corrupt_file_outside_any_catalogue_is_one_line_and_exit_9(
    tmp_path: Path, env: dict[str, str]
) -> None:
    from redisops.engine.rdb import crc64

    body = b"REDIS0010\xfa\x09redis-ver\x067.0.15\xfe\x00\xfb\x01\x00\x00\x01a\x01b\xff"
    good = tmp_path / "good.rdb"
    good.write_bytes(body + crc64(body).to_bytes(8, "little"))
    ok = invoke(env, "backup", "verify", str(good))
    assert ok.exit_code == 0, ok.stderr
    assert "crc64" in ok.stdout and "not in a catalogue" in ok.stdout
    bad = tmp_path / "bad.rdb"
    bad.write_bytes(body.replace(b"\x01b", b"\x01c") + crc64(body).to_bytes(8, "little"))
    result = invoke(env, "backup", "verify", str(bad))
    assert result.exit_code == ExitCode.VERIFY_FAILED
    assert result.stderr.count("\n") == 1 and "CRC64 mismatch" in result.stderr


def test_a_dry_run_shows_what_retention_would_prune_and_deletes_nothing(
    pair: list[RedisProc], tmp_path: Path, env: dict[str, str]
) -> None:
    import time

    dest = tmp_path / "d"
    fabricate(dest, "g", [1, 40, 41], time.time())
    before = (dest / "g" / "catalogue.json").read_text()
    result = invoke(
        env, "backup", pair[0].address, "--dest", str(dest), "--group", "g", "--dry-run"
    )
    assert result.exit_code == 0, result.stderr
    assert "would prune 2: old1" in result.stdout and "old2" in result.stdout
    assert (dest / "g" / "catalogue.json").read_text() == before
    assert sorted(p.name for p in (dest / "g").glob("*.rdb")) == [
        "old0.rdb",
        "old1.rdb",
        "old2.rdb",
    ]


def test_during_an_aof_rewrite_the_backup_schedules_its_bgsave_after_it(
    redis_factory: RedisFactory, tmp_path: Path, env: dict[str, str]
) -> None:
    node = redis_factory.start({"appendonly": "yes", "rdb-key-save-delay": "500"})
    populate(node)
    from tests.harness import wait_until

    wait_until(lambda: node.info("persistence")["aof_rewrite_in_progress"] == 0, what="first AOF")
    before = rdb_saves(node)
    node.client().bgrewriteaof()
    assert node.info("persistence")["aof_rewrite_in_progress"] == 1
    code, doc, err = backup_json(env, node.address, "--dest", str(tmp_path / "d"))
    assert code == 0, err
    assert doc["backup"]["keys"] == KEYS
    assert "scheduled after the AOF rewrite" in doc["backup"]["snapshot"]
    assert rdb_saves(node) == before + 1
    assert node.info("persistence")["aof_last_bgrewrite_status"] == "ok"


def test_redisops_check_reads_the_backup_age_from_the_catalogue(
    pair: list[RedisProc], tmp_path: Path, env: dict[str, str]
) -> None:
    master, _ = pair
    dest = tmp_path / "d"
    assert backup_json(env, master.address, "--dest", str(dest))[0] == 0
    run = invoke({**env, "REDISOPS_BACKUP_DEST": str(dest)}, "check", master.address, "-o", "json")
    doc = json.loads(run.stdout)
    (age,) = [r for r in doc["results"] if r["id"] == "persist.backup_age"]
    assert "newest verified backup" in age["message"], age
    assert "off-host" in age["message"]  # the catalogue says no copy left the machine
    assert age["value"] is not None and age["value"] < 600


def test_list_and_verify_of_a_missing_destination_or_group_are_bad_input_not_empty(
    pair: list[RedisProc], tmp_path: Path, env: dict[str, str]
) -> None:
    typo = tmp_path / "no-such-dir"
    for args in (("list",), ("verify", "--all")):
        result = invoke(env, "backup", *args, "--dest", str(typo))
        assert result.exit_code == ExitCode.BAD_INPUT, result.stdout
        assert "does not exist" in result.stderr and len(result.stderr.splitlines()) == 1
    dest = tmp_path / "backups"
    code, _, err = backup_json(env, pair[0].address, "--dest", str(dest))
    assert code == 0, err
    for args in (("list",), ("verify", "--all")):
        result = invoke(env, "backup", *args, "--dest", str(dest), "--group", "nope")
        assert result.exit_code == ExitCode.BAD_INPUT, result.stdout
        assert "no group 'nope'" in result.stderr
    assert not (dest / "nope").exists()


def test_a_bad_encrypt_key_file_is_reported_under_the_option_the_user_typed(
    tmp_path: Path, env: dict[str, str]
) -> None:
    key = tmp_path / "backup.key"
    key.write_text("ab" * 32)
    key.chmod(0o644)
    result = invoke(
        env, "backup", "127.0.0.1:1", "--dest", str(tmp_path), "--encrypt-key-file", str(key)
    )
    assert result.exit_code == ExitCode.BAD_INPUT
    assert f"--encrypt-key-file {key} is readable by other users" in result.stderr


def test_check_with_a_backup_dest_but_no_verified_backup_is_critical_and_a_missing_dest_unknown(
    pair: list[RedisProc], tmp_path: Path, env: dict[str, str]
) -> None:
    master, _ = pair
    empty = tmp_path / "empty"
    empty.mkdir()
    run = invoke({**env, "REDISOPS_BACKUP_DEST": str(empty)}, "check", master.address, "-o", "json")
    doc = json.loads(run.stdout)
    (age,) = [r for r in doc["results"] if r["id"] == "persist.backup_age"]
    assert age["status"] == "CRITICAL" and "no verified backup" in age["message"], age
    assert run.exit_code == 2
    typo = {**env, "REDISOPS_BACKUP_DEST": str(tmp_path / "typo")}
    missing = invoke(typo, "check", master.address, "--format", "nagios")
    assert missing.exit_code == 3
    assert missing.stdout.startswith("REDISOPS UNKNOWN - backup destination")
    assert "does not exist" in missing.stdout
