"""Streaming authenticated encryption of backup copies (AES-256-GCM in chunks).

``cryptography`` offers AES-GCM but no streaming construction for large files (Fernet
holds the whole message in memory), so the file is cut into chunks and each chunk is
sealed separately, following the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár,
"Online authenticated-encryption and its nonce-reuse misuse-resistance", 2015):

* a 32-byte header: magic ``RDBOPSE1``, format version 1, 3 reserved bytes, the chunk
  size (big endian), and a random 16-byte salt;
* a per-file key, HKDF-SHA256(key from the key file, salt): a nonce is never reused
  across files even though chunk nonces are counters;
* each chunk: AES-256-GCM of up to ``chunk size`` plaintext bytes, nonce = the chunk
  counter (11 bytes, big endian) + a final flag byte (1 on the last chunk only), the
  header as associated data; 16-byte tag appended.

So a reordered, dropped, duplicated or altered chunk fails its tag; a file cut at a chunk
boundary has no chunk marked final; bytes after the final chunk are refused; a changed
header changes every tag. Every chunk but the last is full, so a reader knows which
chunk must be the last one (the one followed by end of file).

The key file holds 32 random bytes: raw, as 64 hex digits, or base64 (``openssl rand
-hex 32 > backup.key``). It is never on the command line; the catalogue records only a
key id (a hash of the key), so ``verify --decrypt`` can say "wrong key" rather than
"damaged file".

>>> import io
>>> key = bytes(range(32))
>>> sealed = io.BytesIO()
>>> facts = encrypt_stream(io.BytesIO(b"x" * 100), sealed, key, chunk_size=64)
>>> facts.plain_size, facts.cipher_size == 32 + 100 + 2 * 16
(100, True)
>>> b"".join(iter_decrypt(io.BytesIO(sealed.getvalue()), key)) == b"x" * 100
True
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

from redisops.errors import BadInput, ExitCode, RedisopsError

MAGIC = b"RDBOPSE1"
VERSION = 1
HEADER_SIZE = 32
TAG = 16
DEFAULT_CHUNK = 1 << 20
MAX_CHUNK = 64 << 20
KEY_BYTES = 32
_INFO = b"redisops-backup v1 aes-256-gcm"
SUFFIX = ".enc"


class DecryptError(RedisopsError):
    """An encrypted copy does not decrypt: wrong key, damaged, truncated or extended."""

    exit_code = ExitCode.VERIFY_FAILED


def load_key(path: Path, option: str = "--key-file") -> bytes:
    """The 32-byte key in ``path``; refuses a file others can read. ``option`` names the
    option the path came from, in the messages."""
    try:
        st = path.stat()
        raw = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"{option} {path}: {exc.strerror}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise BadInput(
            f"{option} {path} is readable by other users (mode {stat.S_IMODE(st.st_mode):o})",
            hint=f"chmod 600 {path}",
        )
    key = parse_key(raw)
    if key is None:
        raise BadInput(
            f"{option} {path} does not hold a 32-byte key",
            hint="it holds 32 random bytes, raw, as 64 hex digits or base64: "
            "openssl rand -hex 32 > FILE",
        )
    return key


def parse_key(raw: bytes) -> bytes | None:
    """32 raw bytes, 64 hex digits or base64 of 32 bytes (surrounding whitespace ignored).

    >>> parse_key(b"00" * 32) == bytes(32), parse_key(b"short")
    (True, None)
    """
    import base64
    import binascii

    if len(raw) == KEY_BYTES:
        return raw
    text = raw.strip()
    if len(text) == 2 * KEY_BYTES:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            pass
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded if len(decoded) == KEY_BYTES else None


def key_id(key: bytes) -> str:
    """A public name for a key (hash of it), recorded in the catalogue.

    >>> key_id(bytes(32))
    '7487303eb09a2c51'
    """
    return hashlib.sha256(b"redisops-backup key id\0" + key).hexdigest()[:16]


def _file_key(key: bytes, salt: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=_INFO).derive(key)


def _nonce(counter: int, final: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if final else b"\x00")


def make_header(chunk_size: int, salt: bytes) -> bytes:
    return MAGIC + bytes([VERSION, 0, 0, 0]) + chunk_size.to_bytes(4, "big") + salt


def parse_header(header: bytes) -> tuple[int, bytes]:
    """``(chunk size, salt)`` from a header; :class:`DecryptError` if it is not one."""
    if len(header) < HEADER_SIZE or not header.startswith(MAGIC):
        raise DecryptError("not a redisops encrypted backup (bad header)")
    if header[8] != VERSION:
        raise DecryptError(f"encrypted backup format {header[8]} is not supported (only 1)")
    chunk = int.from_bytes(header[12:16], "big")
    if not 0 < chunk <= MAX_CHUNK:
        raise DecryptError("encrypted backup header is damaged (chunk size)")
    return chunk, header[16:32]


@dataclass(frozen=True)
class SealFacts:
    """Sizes and SHA-256 of the plaintext read and the ciphertext written."""

    plain_size: int
    plain_sha256: str
    cipher_size: int
    cipher_sha256: str


def encrypt_stream(
    src: BinaryIO,
    dst: BinaryIO,
    key: bytes,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Callable[[int], None] | None = None,
) -> SealFacts:
    """Encrypt ``src`` into ``dst``, hashing both sides on the way."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    salt = os.urandom(16)
    header = make_header(chunk_size, salt)
    aead = AESGCM(_file_key(key, salt))
    plain_sha, cipher_sha = hashlib.sha256(), hashlib.sha256()
    plain_n, cipher_n = 0, 0

    def emit(data: bytes) -> None:
        nonlocal cipher_n
        cipher_sha.update(data)
        dst.write(data)
        cipher_n += len(data)

    emit(header)
    counter = 0
    block = _read_full(src, chunk_size)
    while True:
        following = _read_full(src, chunk_size) if len(block) == chunk_size else b""
        final = not following
        plain_sha.update(block)
        plain_n += len(block)
        emit(aead.encrypt(_nonce(counter, final), block, header))
        if progress is not None:
            progress(plain_n)
        if final:
            break
        counter += 1
        block = following
    return SealFacts(plain_n, plain_sha.hexdigest(), cipher_n, cipher_sha.hexdigest())


def iter_decrypt(src: IO[bytes], key: bytes) -> Iterator[bytes]:
    """The plaintext of ``src``, chunk by chunk; raises :class:`DecryptError` at the first
    chunk that does not authenticate (so nothing unauthenticated is ever returned)."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    header = _read_full(src, HEADER_SIZE)
    chunk_size, salt = parse_header(header)
    aead = AESGCM(_file_key(key, salt))
    sealed = chunk_size + TAG
    counter = 0
    block = _read_full(src, sealed)
    while True:
        if len(block) < TAG:
            raise DecryptError(
                f"encrypted backup is truncated (chunk {counter} is incomplete or missing)"
            )
        following = _read_full(src, sealed) if len(block) == sealed else b""
        final = not following
        try:
            yield aead.decrypt(_nonce(counter, final), block, header)
        except InvalidTag:
            if final:
                raise DecryptError(
                    f"encrypted backup does not authenticate at chunk {counter}: wrong key, "
                    f"or the file was altered or truncated"
                ) from None
            raise DecryptError(
                f"encrypted backup does not authenticate at chunk {counter}: wrong key, "
                f"or the file was altered"
            ) from None
        if final:
            return
        counter += 1
        block = following


def _read_full(src: IO[bytes], n: int) -> bytes:
    """Exactly ``n`` bytes unless the stream ends first (SFTP reads may return less)."""
    parts: list[bytes] = []
    got = 0
    while got < n:
        piece = src.read(n - got)
        if not piece:
            break
        parts.append(piece)
        got += len(piece)
    return parts[0] if len(parts) == 1 else b"".join(parts)
