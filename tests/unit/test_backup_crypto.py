"""Streaming authenticated encryption of backup copies (redisops.backup.crypto)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from redisops.backup import crypto
from redisops.errors import BadInput, ExitCode

KEY = os.urandom(32)
CHUNK = 1024


def seal(data: bytes, key: bytes = KEY) -> bytes:
    out = io.BytesIO()
    crypto.encrypt_stream(io.BytesIO(data), out, key, chunk_size=CHUNK)
    return out.getvalue()


def open_(sealed: bytes, key: bytes = KEY) -> bytes:
    return b"".join(crypto.iter_decrypt(io.BytesIO(sealed), key))


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 5 * CHUNK + 77])
def test_round_trip_of_any_size(size: int) -> None:
    data = os.urandom(size)
    out = io.BytesIO()
    facts = crypto.encrypt_stream(io.BytesIO(data), out, KEY, chunk_size=CHUNK)
    assert open_(out.getvalue()) == data
    assert facts.plain_size == size
    assert facts.cipher_size == len(out.getvalue())


def test_a_flipped_ciphertext_byte_does_not_authenticate() -> None:
    sealed = bytearray(seal(os.urandom(3 * CHUNK)))
    sealed[crypto.HEADER_SIZE + CHUNK + 50] ^= 0x80
    with pytest.raises(crypto.DecryptError, match="chunk 1") as exc:
        open_(bytes(sealed))
    assert exc.value.exit_code is ExitCode.VERIFY_FAILED


def test_truncation_at_a_chunk_boundary_is_detected() -> None:
    sealed = seal(os.urandom(3 * CHUNK + 10))
    cut = crypto.HEADER_SIZE + 2 * (CHUNK + crypto.TAG)  # two whole chunks, no final one
    with pytest.raises(crypto.DecryptError, match=r"altered or truncated"):
        open_(sealed[:cut])


def test_bytes_appended_after_the_final_chunk_are_refused() -> None:
    sealed = seal(os.urandom(2 * CHUNK))
    with pytest.raises(crypto.DecryptError):
        open_(sealed + b"extra")


def test_chunks_swapped_do_not_authenticate() -> None:
    sealed = seal(os.urandom(3 * CHUNK + 5))
    h, c = crypto.HEADER_SIZE, CHUNK + crypto.TAG
    swapped = sealed[:h] + sealed[h + c : h + 2 * c] + sealed[h : h + c] + sealed[h + 2 * c :]
    with pytest.raises(crypto.DecryptError):
        open_(swapped)


def test_the_wrong_key_does_not_decrypt() -> None:
    with pytest.raises(crypto.DecryptError, match="wrong key"):
        open_(seal(b"secret data"), os.urandom(32))


def test_a_changed_header_does_not_authenticate() -> None:
    sealed = bytearray(seal(os.urandom(100)))
    sealed[20] ^= 1  # inside the salt
    with pytest.raises(crypto.DecryptError):
        open_(bytes(sealed))


def test_key_file_formats_and_permissions(tmp_path: Path) -> None:
    key = os.urandom(32)
    for content in (key, key.hex().encode() + b"\n", __import__("base64").b64encode(key)):
        f = tmp_path / "k"
        f.write_bytes(content)
        f.chmod(0o600)
        assert crypto.load_key(f) == key
    f.chmod(0o644)
    with pytest.raises(BadInput, match="readable by other users"):
        crypto.load_key(f)
    f.write_bytes(b"too short")
    f.chmod(0o600)
    with pytest.raises(BadInput, match="32-byte key"):
        crypto.load_key(f)
