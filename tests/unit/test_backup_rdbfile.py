"""RDB facts read while streaming: CRC64 trailer, header version, aux fields (redisops.backup.rdbfile)."""

from __future__ import annotations

import io
import os
import random

import pytest

from redisops.backup.rdbfile import (
    RdbDigest,
    RdbError,
    digest_stream,
    parse_aux,
    rdb_format_version,
)
from redisops.engine.rdb import crc64


def rdb_bytes(body_size: int = 5000, version: bytes = b"0010", checksum: bool = True) -> bytes:
    body = b"REDIS" + version + os.urandom(body_size) + b"\xff"
    trailer = crc64(body) if checksum else 0
    return body + trailer.to_bytes(8, "little")


def feed_in_random_pieces(data: bytes, seed: int) -> RdbDigest:
    rng = random.Random(seed)
    d = RdbDigest()
    i = 0
    while i < len(data):
        n = rng.choice([1, 3, 7, 8, 9, 100, 4096])
        d.update(data[i : i + n])
        i += n
    return d


@pytest.mark.parametrize("seed", range(5))
def test_crc64_streamed_in_any_piece_sizes_matches_redis_crc64(seed: int) -> None:
    data = rdb_bytes(3000 + seed * 17)
    facts = feed_in_random_pieces(data, seed).facts()
    assert facts.crc_computed == crc64(data[:-8])
    assert facts.crc_status == "ok"
    assert facts.problems() == []
    assert facts.size == len(data)


def test_a_flipped_byte_is_a_crc_mismatch() -> None:
    data = bytearray(rdb_bytes())
    data[1234] ^= 0x01
    facts = digest_stream(io.BytesIO(bytes(data)))
    assert facts.crc_status == "mismatch"
    assert "CRC64 mismatch" in facts.problems()[0]


def test_a_truncated_file_is_a_crc_mismatch() -> None:
    data = rdb_bytes()
    facts = digest_stream(io.BytesIO(data[:-100]))
    assert facts.crc_status == "mismatch"


def test_a_zero_trailer_means_written_without_a_checksum() -> None:
    facts = digest_stream(io.BytesIO(rdb_bytes(checksum=False)))
    assert facts.crc_status == "absent"
    assert facts.problems() == []


def test_a_file_that_is_not_an_rdb_is_said_so() -> None:
    facts = digest_stream(io.BytesIO(b"hello world, not redis at all"))
    assert any("not an RDB file" in p for p in facts.problems())
    with pytest.raises(RdbError):
        rdb_format_version(b"PK\x03\x04zip")


@pytest.mark.parametrize(
    ("head", "version"),
    [(b"REDIS0009", 9), (b"REDIS0010", 10), (b"REDIS0011", 11), (b"VALKEY080", 80)],
)
def test_format_version_is_read_from_the_header(head: bytes, version: int) -> None:
    assert rdb_format_version(head + b"\xfa") == version


def test_aux_fields_are_read_from_the_start_of_the_file() -> None:
    head = (
        b"REDIS0010"
        + b"\xfa\x09redis-ver\x067.0.15"
        + b"\xfa\x07repl-id\x28"
        + b"a" * 40
        + b"\xfa\x0brepl-offset\xc2"
        + (123456).to_bytes(4, "little")
        + b"\xfe\x00"
    )
    assert parse_aux(head) == {"redis-ver": "7.0.15", "repl-id": "a" * 40, "repl-offset": "123456"}
