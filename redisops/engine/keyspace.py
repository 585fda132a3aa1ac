"""The keyspace: per-database data, expiry, lookups with Redis 7.0's expiry policy, digests.

Values are plain Python containers, the container's *class* recording the encoding
Redis would use, because replies depend on it (an intset replies in numeric order,
a listpack hash in insertion order, a small collection is scanned in one call):

=================  ==========================================  ============
Redis type          Python value                                 encoding
=================  ==========================================  ============
string              ``bytes``                                    (any)
list                ``collections.deque[bytes]``                 quicklist
hash                :class:`ListpackHash` (``dict`` subclass)    listpack
hash                ``dict[bytes, bytes]``                       hashtable
set                 :class:`IntSet` (``set`` subclass)           intset
set                 ``set[bytes]``                               hashtable
sorted set          :class:`ZSet` (``listpack`` attribute)       listpack/skiplist
=================  ==========================================  ============

Conversions are one-way, as in Redis 7.0 (a hash that outgrew its listpack stays a
hashtable when it shrinks). Expire times are absolute Unix milliseconds; a key is
logically expired when ``now_ms > expire`` (``keyIsExpired()``).

>>> from redisops.engine.command import ExecContext
>>> ks = Keyspace()
>>> ks.digest()
'0000000000000000000000000000000000000000'
>>> ctx = ExecContext(ks, 0, now_ms=1000)
>>> ks.set_key(ctx, b"k", b"v", found=False)
>>> ks.set_expire(0, b"k", 1500)
>>> ks.lookup_read(ctx, b"k")
b'v'
>>> ctx.now_ms = 1501
>>> ks.lookup_read(ctx, b"k") is None, ctx.extra_ops, ctx.stats.expired_keys
(True, [(0, [b'DEL', b'k'])], 1)
"""

from __future__ import annotations

import heapq
import zlib
from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Collection, Iterable, Iterator
from hashlib import sha1
from operator import itemgetter
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:  # pragma: no cover
    from redisops.engine.command import ExecContext

_DEL = b"DEL"
_UNLINK = b"UNLINK"


class ListpackHash(dict[bytes, bytes]):
    """A hash still in listpack encoding: field order is insertion order, as in Redis."""

    __slots__ = ()


class IntSet(set[bytes]):
    """A set still in intset encoding: every member is a canonical int64, replies sorted."""

    __slots__ = ()


_score_of = itemgetter(0)


class ZSet:
    """A sorted set: ``member -> score`` plus a list of ``(score, member)`` kept sorted.

    The order is Redis's: by score, then by member bytes (``memcmp``). ``listpack`` is
    the encoding flag (True while small); it changes how ZSCAN returns scores.

    >>> z = ZSet()
    >>> z.add(b"b", 2.0); z.add(b"a", 2.0); z.add(b"c", 1.0)
    >>> [m for _, m in z.order], z.rank(b"a")
    ([b'c', b'a', b'b'], 1)
    """

    __slots__ = ("listpack", "order", "scores")

    def __init__(self, listpack: bool = True) -> None:
        self.scores: dict[bytes, float] = {}
        self.order: list[tuple[float, bytes]] = []
        self.listpack = listpack

    def __len__(self) -> int:
        return len(self.scores)

    def add(self, member: bytes, score: float) -> None:
        """Insert a member that is not present."""
        self.scores[member] = score
        insort(self.order, (score, member))

    def update(self, member: bytes, old: float, new: float) -> None:
        del self.order[bisect_left(self.order, (old, member))]
        self.scores[member] = new
        insort(self.order, (new, member))

    def remove(self, member: bytes) -> bool:
        score = self.scores.pop(member, None)
        if score is None:
            return False
        del self.order[bisect_left(self.order, (score, member))]
        return True

    def rank(self, member: bytes) -> int | None:
        score = self.scores.get(member)
        if score is None:
            return None
        return bisect_left(self.order, (score, member))

    def first_in_score_range(self, low: float, exclusive: bool) -> int:
        """Index of the first element whose score is ``>= low`` (``> low`` if exclusive)."""
        if exclusive:
            return bisect_right(self.order, low, key=_score_of)
        return bisect_left(self.order, low, key=_score_of)

    def end_of_score_range(self, high: float, exclusive: bool) -> int:
        """Index just past the last element whose score is ``<= high`` (``< high``)."""
        if exclusive:
            return bisect_left(self.order, high, key=_score_of)
        return bisect_right(self.order, high, key=_score_of)

    def copy(self) -> ZSet:
        z = ZSet(self.listpack)
        z.scores = self.scores.copy()
        z.order = self.order.copy()
        return z


Value = Union[bytes, "deque[bytes]", dict[bytes, bytes], set[bytes], ZSet]

#: Redis type name of every value class (TYPE, SCAN TYPE).
TYPE_NAMES: dict[type, str] = {
    bytes: "string",
    deque: "list",
    ListpackHash: "hash",
    dict: "hash",
    IntSet: "set",
    set: "set",
    ZSet: "zset",
}

# OBJ_STRING, OBJ_LIST, OBJ_SET, OBJ_ZSET, OBJ_HASH as the 4 big-endian bytes debug.c mixes.
_TYPE_CODE: dict[type, bytes] = {
    bytes: b"\0\0\0\0",
    deque: b"\0\0\0\1",
    IntSet: b"\0\0\0\2",
    set: b"\0\0\0\2",
    ZSet: b"\0\0\0\3",
    ListpackHash: b"\0\0\0\4",
    dict: b"\0\0\0\4",
}


def copy_value(value: Value) -> Value:
    """An independent copy (strings are immutable and shared)."""
    if type(value) is bytes:
        return value
    if isinstance(value, ZSet):
        return value.copy()
    if isinstance(value, deque):
        return deque(value)
    if isinstance(value, dict):
        return type(value)(value)
    if isinstance(value, set):
        return type(value)(value)
    raise TypeError(f"not a keyspace value: {type(value).__name__}")  # pragma: no cover


# ----------------------------------------------------------------------------- digests


def _sha1_int(data: bytes) -> int:
    return int.from_bytes(sha1(data).digest(), "big")


def _mix(digest: int, data: bytes) -> int:
    """``mixDigest()``: ``SHA1(digest xor SHA1(data))`` (order-sensitive)."""
    return _sha1_int((digest ^ _sha1_int(data)).to_bytes(20, "big"))


def _xor_term(digest: int) -> int:
    """What ``xorDigest(acc, digest, 20)`` xors into ``acc``: the SHA1 of the digest."""
    return _sha1_int(digest.to_bytes(20, "big"))


_EXPIRE_MARK = _sha1_int(b"!!expire!!")
_TYPE_MARK = {cls: _sha1_int(code) for cls, code in _TYPE_CODE.items()}


def _value_digest(digest: int, value: Value, has_expire: bool) -> int:
    """``xorObjectDigest()``: mix the type, the content, and whether a TTL exists."""
    digest = _sha1_int((digest ^ _TYPE_MARK[type(value)]).to_bytes(20, "big"))
    if type(value) is bytes:
        digest = _mix(digest, value)
    elif isinstance(value, deque):
        for item in value:
            digest = _mix(digest, item)
    elif isinstance(value, set):
        for member in value:
            digest ^= _sha1_int(member)
    elif isinstance(value, ZSet):
        for member, score in value.scores.items():
            digest ^= _xor_term(_mix(_key_digest(member), b"%.17g" % score))
    elif isinstance(value, dict):
        for field, val in value.items():
            digest ^= _xor_term(_mix(_key_digest(field), val))
    if has_expire:
        digest ^= _EXPIRE_MARK
    return digest


def _key_digest(data: bytes) -> int:
    """``mixDigest()`` of a zeroed digest: ``SHA1(SHA1(data))``."""
    return _sha1_int(sha1(data).digest())


# ----------------------------------------------------------------------------- RDB size

_QUICKLIST_NODE_BYTES = 8192  # list-max-listpack-size -2


def _rdb_len(n: int) -> int:
    """Bytes of an RDB length prefix."""
    if n < 64:
        return 1
    if n < 16384:
        return 2
    return 5 if n <= 0xFFFFFFFF else 9


def _int_value(s: bytes) -> int | None:
    """The int64 a string denotes if it is canonical (``string2ll()`` rules), else None."""
    digits = s[1:] if s[:1] == b"-" else s
    if not digits.isdigit() or len(s) > 20 or (digits[0] == 0x30 and len(s) > 1):
        return None
    v = int(s)
    return v if -(1 << 63) <= v < (1 << 63) else None


def _rdb_string(s: bytes) -> int:
    """An RDB string: int-encoded when it is a small canonical integer, else len + bytes."""
    n = len(s)
    if n <= 11 and n and s[0] in _NUMBER_START:
        v = _int_value(s)
        if v is not None:
            if -128 <= v <= 127:
                return 2
            if -32768 <= v <= 32767:
                return 3
            if -(1 << 31) <= v < (1 << 31):
                return 5
    if n < 64:
        return n + 1
    return _rdb_len(n) + n


_NUMBER_START = frozenset(b"-0123456789")


def _lp_entry(s: bytes) -> int:
    """Bytes of one listpack entry (encoding + data + backlen)."""
    v = _int_value(s)
    if v is not None:
        if 0 <= v <= 127:
            size = 1
        elif -4096 <= v <= 4095:
            size = 2
        elif -(1 << 15) <= v < (1 << 15):
            size = 3
        elif -(1 << 23) <= v < (1 << 23):
            size = 4
        elif -(1 << 31) <= v < (1 << 31):
            size = 5
        else:
            size = 9
    else:
        n = len(s)
        size = n + (1 if n < 64 else 2 if n < 4096 else 5)
    if size <= 127:
        return size + 1
    if size < 16383:
        return size + 2
    return size + (3 if size < 2097151 else 4 if size < 268435455 else 5)


def _listpack(entries: Iterable[bytes]) -> int:
    """Bytes of a listpack blob stored as an RDB string (6-byte header, 0xFF end)."""
    body = 7 + sum(_lp_entry(e) for e in entries)
    return _rdb_len(body) + body


def _rdb_value(value: Value) -> int:
    if isinstance(value, bytes):
        return _rdb_string(value)
    if isinstance(value, deque):
        # Quicklist nodes filled from head to tail as RPUSH would: an element joins the
        # current node while listpack bytes + its length + 8 stay within 8 KB
        # (_quicklistNodeAllowInsert). Each node: container byte + listpack blob.
        nodes = total = node = 0
        for item in value:
            if node and node + len(item) + 8 > _QUICKLIST_NODE_BYTES:
                total += 1 + _rdb_len(node) + node
                nodes += 1
                node = 0
            node = (node or 7) + _lp_entry(item)
        if node:
            total += 1 + _rdb_len(node) + node
            nodes += 1
        return _rdb_len(nodes) + total
    if isinstance(value, IntSet):
        width = 2
        for member in value:
            v = int(member)
            if not -(1 << 15) <= v < (1 << 15):
                width = max(width, 4 if -(1 << 31) <= v < (1 << 31) else 8)
        body = 8 + width * len(value)
        return _rdb_len(body) + body
    if isinstance(value, set):
        return _rdb_len(len(value)) + sum(_rdb_string(m) for m in value)
    if isinstance(value, ListpackHash):
        return _listpack(x for pair in value.items() for x in pair)
    if isinstance(value, dict):
        return _rdb_len(len(value)) + sum(_rdb_string(f) + _rdb_string(v) for f, v in value.items())
    if value.listpack:
        from redisops.engine.datacmds import d2string

        return _listpack(x for s, m in value.order for x in (m, d2string(s)))
    return _rdb_len(len(value)) + sum(_rdb_string(m) for m in value.scores) + 8 * len(value)


# ----------------------------------------------------------------------------- SCAN


def scan_snapshot(members: Iterable[bytes]) -> list[tuple[int, bytes]]:
    """Elements in SCAN order: by CRC32 + 1 (never 0, which is the "done" cursor)."""
    return sorted((zlib.crc32(m) + 1, m) for m in members)


def scan_slice(
    snapshot: list[tuple[int, bytes]], cursor: int, count: int
) -> tuple[int, list[bytes]]:
    """Elements from ``cursor`` on, about ``count`` of them, and the next cursor (0: done).

    The cursor is a position in a fixed hash order, so every element present for the whole
    iteration is returned exactly once even if others come and go (SCAN's guarantee).

    >>> snap = scan_snapshot([b"a", b"b", b"c"])
    >>> c, first = scan_slice(snap, 0, 2)
    >>> c2, rest = scan_slice(snap, c, 2)
    >>> sorted(first + rest), c2
    ([b'a', b'b', b'c'], 0)
    """
    start = bisect_left(snapshot, (cursor,)) if cursor else 0
    end = min(start + count, len(snapshot))
    while start < end < len(snapshot) and snapshot[end][0] == snapshot[end - 1][0]:
        end += 1  # never split elements sharing a position
    nxt = snapshot[end][0] if end < len(snapshot) else 0
    return nxt, [m for _, m in snapshot[start:end]]


# ----------------------------------------------------------------------------- keyspace


class Keyspace:
    """Databases of keys, their expire times, and the lookups commands go through."""

    def __init__(self, databases: int = 16) -> None:
        self.dbs: list[dict[bytes, Value]] = [{} for _ in range(databases)]
        self.expires: list[dict[bytes, int]] = [{} for _ in range(databases)]
        # (expire_ms, key) min-heaps for active expiry; entries go stale when the key's
        # expire changes or it is deleted, and are dropped lazily.
        self._expiry_heaps: list[list[tuple[int, bytes]]] = [[] for _ in range(databases)]
        self._key_snapshots: dict[int, list[tuple[int, bytes]]] = {}
        self._member_snapshots: dict[int, tuple[object, list[tuple[int, bytes]]]] = {}
        # Encoding thresholds: Redis 7.0's built-in defaults (the sample redis.conf says
        # 128 hash entries; the binary's default is 512). The node applies CONFIG SET.
        self.hash_max_listpack_entries = 512
        self.hash_max_listpack_value = 64
        self.set_max_intset_entries = 512
        self.zset_max_listpack_entries = 128
        self.zset_max_listpack_value = 64

    @property
    def databases(self) -> int:
        return len(self.dbs)

    # ------------------------------------------------------------------ lookups

    def lookup_read(self, ctx: ExecContext, key: bytes) -> Value | None:
        """``lookupKeyRead()``: expiry per ``ctx.mode`` and keyspace hits/misses."""
        db = ctx.db
        value = self.dbs[db].get(key)
        if value is not None:
            expires = self.expires[db]
            if expires:
                when = expires.get(key)
                if when is not None and ctx.now_ms > when and self._expire(ctx, key, False):
                    value = None
        if value is None:
            ctx.stats.keyspace_misses += 1
        else:
            ctx.stats.keyspace_hits += 1
        return value

    def lookup_read_nostats(self, ctx: ExecContext, key: bytes) -> Value | None:
        """A read lookup that does not count hits/misses (``LOOKUP_NOSTATS``)."""
        db = ctx.db
        value = self.dbs[db].get(key)
        if value is not None:
            when = self.expires[db].get(key)
            if when is not None and ctx.now_ms > when and self._expire(ctx, key, False):
                return None
        return value

    def lookup_write(self, ctx: ExecContext, key: bytes) -> Value | None:
        """``lookupKeyWrite()``: expires even on a (writable) replica; no hit/miss stats."""
        db = ctx.db
        value = self.dbs[db].get(key)
        if value is not None:
            expires = self.expires[db]
            if expires:
                when = expires.get(key)
                if when is not None and ctx.now_ms > when and self._expire(ctx, key, True):
                    value = None
        return value

    def expire_if_needed(self, ctx: ExecContext, key: bytes, write: bool = False) -> bool:
        """``expireIfNeeded()``: True if ``key`` is logically expired (maybe deleted now)."""
        when = self.expires[ctx.db].get(key)
        if when is None or ctx.now_ms <= when:
            return False
        return self._expire(ctx, key, write)

    def _expire(self, ctx: ExecContext, key: bytes, write: bool) -> bool:
        mode = ctx.mode
        if mode == "replica_apply":
            return False  # the master's stream: never expire, its DEL will come
        if mode == "replica_client":
            if write:  # a write on a writable replica deletes locally, propagates nothing
                self.delete(ctx.db, key)
                ctx.stats.expired_keys += 1
                ctx.touch(key)
            return True
        self.expire_now(ctx, key)
        return True

    def expire_now(self, ctx: ExecContext, key: bytes) -> None:
        """``deleteExpiredKeyAndPropagate()``: delete, count, and propagate DEL/UNLINK.

        Also what the node calls for each key its active-expiry cycle removes.
        """
        self.delete(ctx.db, key)
        ctx.touch(key)
        ctx.also_propagate([_UNLINK if ctx.lazyfree_lazy_expire else _DEL, key])
        ctx.stats.expired_keys += 1

    # ------------------------------------------------------------------ writes

    def db_add(self, ctx: ExecContext, key: bytes, value: Value) -> None:
        """``dbAdd()``: a new key; lists and sorted sets wake clients blocked on it."""
        self.dbs[ctx.db][key] = value
        if isinstance(value, (deque, ZSet)):
            ctx.signal_key_ready(key)

    def set_key(
        self,
        ctx: ExecContext,
        key: bytes,
        value: Value,
        *,
        keepttl: bool = False,
        found: bool | None = None,
    ) -> None:
        """``setKey()``: store ``value`` (dropping the TTL unless ``keepttl``) and touch.

        ``found`` is what the caller's own lookup saw; None means look up now (which may
        expire the old key first, as Redis does).
        """
        if found is None:
            found = self.lookup_write(ctx, key) is not None
        if found:
            self.dbs[ctx.db][key] = value
        else:
            self.db_add(ctx, key, value)
        if not keepttl:
            self.expires[ctx.db].pop(key, None)
        ctx.touch(key)

    def delete(self, db: int, key: bytes) -> bool:
        """``dbDelete()``: remove the key and its expire; True if it existed."""
        self.expires[db].pop(key, None)
        return self.dbs[db].pop(key, None) is not None

    def get_expire(self, db: int, key: bytes) -> int | None:
        return self.expires[db].get(key)

    def set_expire(self, db: int, key: bytes, when_ms: int) -> None:
        expires = self.expires[db]
        expires[key] = when_ms
        heap = self._expiry_heaps[db]
        heapq.heappush(heap, (when_ms, key))
        if len(heap) > 2 * len(expires) + 64:  # too many stale entries: rebuild
            heap[:] = [(w, k) for k, w in expires.items()]
            heapq.heapify(heap)

    def remove_expire(self, db: int, key: bytes) -> bool:
        return self.expires[db].pop(key, None) is not None

    def set_raw(self, db: int, key: bytes, value: Value, expire_ms: int | None) -> None:
        """Store a loaded key as is (snapshot/RDB load): no lookups, no signals."""
        self.dbs[db][key] = value
        if expire_ms is None:
            self.expires[db].pop(key, None)
        else:
            self.set_expire(db, key, expire_ms)

    def flushdb(self, db: int) -> int:
        """Empty one database; returns how many keys it held."""
        removed = len(self.dbs[db])
        self.dbs[db].clear()
        self.expires[db].clear()
        self._expiry_heaps[db].clear()
        self._key_snapshots.pop(db, None)
        return removed

    def flushall(self) -> int:
        return sum(self.flushdb(db) for db in range(len(self.dbs)))

    # ------------------------------------------------------------------ inspection

    def dbsize(self, db: int) -> int:
        return len(self.dbs[db])

    def expires_count(self, db: int) -> int:
        return len(self.expires[db])

    def items(self, db: int) -> Iterator[tuple[bytes, Value, int | None]]:
        expires = self.expires[db]
        for key, value in self.dbs[db].items():
            yield key, value, expires.get(key)

    def info_keyspace(self, now_ms: int | None = None) -> dict[int, tuple[int, int, int]]:
        """INFO keyspace lines ``db<n>:keys=..,expires=..,avg_ttl=..`` for non-empty dbs.

        Redis's ``avg_ttl`` is a running estimate sampled by the active-expiry cycle; this
        gives the value it converges to, the mean remaining TTL in ms of keys whose expire
        is still in the future at ``now_ms`` (0 without ``now_ms`` or such keys).
        """
        out: dict[int, tuple[int, int, int]] = {}
        for db, data in enumerate(self.dbs):
            if not data:
                continue
            expires = self.expires[db]
            avg = 0
            if now_ms is not None:
                ttls = [when - now_ms for when in expires.values() if when > now_ms]
                if ttls:
                    avg = sum(ttls) // len(ttls)
            out[db] = (len(data), len(expires), avg)
        return out

    def expired_candidates(self, db: int, now_ms: int, limit: int) -> list[bytes]:
        """Up to ``limit`` keys already expired at ``now_ms``, earliest first.

        "Expired" is Redis's ``now_ms > expire``. Nothing is removed: the node deletes
        each one (see :meth:`expire_now`) or leaves it (a replica never expires).
        """
        heap = self._expiry_heaps[db]
        expires = self.expires[db]
        out: list[bytes] = []
        keep: list[tuple[int, bytes]] = []
        seen: set[bytes] = set()
        while heap and len(out) < limit:
            when, key = heap[0]
            if expires.get(key) != when or key in seen:
                heapq.heappop(heap)  # stale (changed, deleted or duplicate)
                continue
            if when >= now_ms:
                break
            keep.append(heapq.heappop(heap))
            seen.add(key)
            out.append(key)
        for entry in keep:
            heapq.heappush(heap, entry)
        return out

    def copy(self) -> Keyspace:
        """A deep copy (the full-sync snapshot); strings are shared, being immutable."""
        new = Keyspace(len(self.dbs))
        for db, data in enumerate(self.dbs):
            copied = data.copy()
            for key, value in data.items():
                if type(value) is not bytes:
                    copied[key] = copy_value(value)
            new.dbs[db] = copied
            new.expires[db] = self.expires[db].copy()
            new._expiry_heaps[db] = self._expiry_heaps[db].copy()
        new.hash_max_listpack_entries = self.hash_max_listpack_entries
        new.hash_max_listpack_value = self.hash_max_listpack_value
        new.set_max_intset_entries = self.set_max_intset_entries
        new.zset_max_listpack_entries = self.zset_max_listpack_entries
        new.zset_max_listpack_value = self.zset_max_listpack_value
        return new

    def digest(self) -> str:
        """``DEBUG DIGEST``: 40 hex chars, all zeros for an empty dataset.

        Port of ``computeDatasetDigest()`` (Redis 7.0 ``src/debug.c``): per db with keys,
        mix in the db number; per key, ``mix(key)`` then the value digest; xor the SHA1s
        of the keys' digests together (key order does not matter, list order does).
        Logically expired keys still present count, as in Redis. Costs about six SHA1s
        per string key (~10 µs in CPython).
        """
        final = 0
        for db, data in enumerate(self.dbs):
            if not data:
                continue
            final = _mix(final, db.to_bytes(4, "big"))
            expires = self.expires[db]
            for key, value in data.items():
                final ^= _xor_term(_value_digest(_key_digest(key), value, key in expires))
        return f"{final:040x}"

    def digest_value(self, db: int, key: bytes) -> str:
        """``DEBUG DIGEST-VALUE key``: the value digest alone (zeros for a missing key)."""
        value = self.dbs[db].get(key)
        if value is None:
            return "0" * 40
        return f"{_value_digest(0, value, key in self.expires[db]):040x}"

    def rdb_size_estimate(self) -> int:
        """RDB bytes of the dataset: the data section of a 7.0 RDB.

        The magic, aux fields, EOF opcode and checksum around it are not included.
        Formula: per non-empty db the ``SELECTDB`` and ``RESIZEDB`` opcodes with their
        lengths; per key 9 bytes when it has an expire, 1 type byte, the key as an RDB
        string, and the value in the encoding Redis uses: strings int-encoded when they
        are small canonical integers, else length prefix + bytes; lists as quicklist nodes
        (container byte + listpack blob, a node taking elements while its bytes + the
        element + 8 stay within 8 KB); intsets as an 8-byte header + width × n; listpack
        hashes and sorted sets as one listpack blob (6-byte header, per entry encoding +
        data + backlen, end byte); hashtable sets/hashes as a count + strings; skiplist
        sorted sets as a count + member strings + 8-byte binary scores.

        Byte-exact against ``rdbcompression no`` (lists assumed packed as by RPUSH).
        Redis's default LZF compression of strings longer than 20 bytes (listpack blobs
        included) is not modelled, so compressible data is over-estimated.
        """
        total = 0
        for db, data in enumerate(self.dbs):
            if not data:
                continue
            expires = self.expires[db]
            total += 2 + _rdb_len(db) + _rdb_len(len(data)) + _rdb_len(len(expires))
            total += 9 * len(expires)
            total += len(data)  # the type byte of each key
            rdb_string = _rdb_string
            for key, value in data.items():
                total += rdb_string(key) + (
                    rdb_string(value) if type(value) is bytes else _rdb_value(value)
                )
        return total

    # ------------------------------------------------------------------ SCAN support

    def scan_keys(self, db: int, cursor: int, count: int) -> tuple[int, list[bytes]]:
        """One SCAN step over the key names of ``db`` (expired keys not filtered here).

        A fresh iteration (cursor 0) takes a sorted snapshot of the key names; later steps
        reuse it and skip keys deleted since, which keeps each step O(count).
        """
        snapshot = self._key_snapshots.get(db)
        if cursor == 0 or snapshot is None:
            snapshot = scan_snapshot(self.dbs[db])
            self._key_snapshots[db] = snapshot
        data = self.dbs[db]
        nxt, keys = scan_slice(snapshot, cursor, count)
        return nxt, [k for k in keys if k in data]

    def scan_members(
        self, container: Collection[bytes], cursor: int, count: int
    ) -> tuple[int, list[bytes]]:
        """One HSCAN/SSCAN/ZSCAN step over a hashtable-encoded collection's members.

        Snapshots are cached per container object (a few dozen at most), like
        :meth:`scan_keys`; members removed since the snapshot are skipped.
        """
        cached = self._member_snapshots.get(id(container))
        if cursor == 0 or cached is None or cached[0] is not container:
            snapshot = scan_snapshot(container)
            if len(self._member_snapshots) >= 64:
                self._member_snapshots.pop(next(iter(self._member_snapshots)))
            self._member_snapshots[id(container)] = (container, snapshot)
        else:
            snapshot = cached[1]
        nxt, members = scan_slice(snapshot, cursor, count)
        return nxt, [m for m in members if m in container]
