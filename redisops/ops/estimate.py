"""Calibrate the full-sync estimate from what the node itself says about its data.

The engine's default RDB estimate (half of ``used_memory_dataset``) is 2-8x off: small
keys cost far more in memory than in an RDB, and values the RDB compresses (LZF) cost
less. A ``DUMP`` of a key *is* the RDB serialisation of its value (same encodings, same
compression), so a few dozen random keys dumped give the RDB bytes per key directly.

Cost: three pipelined round trips (``RANDOMKEY`` x n; ``MEMORY USAGE``/``PTTL`` per key;
``DUMP`` of the keys under 256 KB in memory, so a sample never drags a huge key over the
network). A node that refuses any of these (ACLs, renamed commands) simply gets the
default estimate.
"""

from __future__ import annotations

from redisops.engine.predict import DatasetSample
from redisops.errors import RedisopsError
from redisops.model import NodeInfo
from redisops.redis_node import RedisNode

#: keys above this (MEMORY USAGE) are not dumped: their RDB size is scaled from memory
DUMP_LIMIT = 256 * 1024

#: DUMP payload bytes that are not in the RDB: 2-byte RDB version + 8-byte CRC64
DUMP_FOOTER = 10


def _rdb_len_bytes(n: int) -> int:
    """Bytes of an RDB length prefix.

    >>> _rdb_len_bytes(10), _rdb_len_bytes(100), _rdb_len_bytes(20000)
    (1, 2, 5)
    """
    if n < 1 << 6:
        return 1
    if n < 1 << 14:
        return 2
    return 5


def sample_dataset(node: RedisNode, info: NodeInfo, samples: int = 64) -> DatasetSample | None:
    """Sample ``samples`` random keys of ``node`` (spread over its dbs by size); None when
    the node is empty or refuses the commands."""
    from redisops.info import keyspace

    dbs = {db: v["keys"] for db, v in keyspace(info.info).items() if v["keys"] > 0}
    total = sum(dbs.values())
    if total == 0:
        return None
    rdb_bytes = 0.0
    sampled = 0
    try:
        for db, count in sorted(dbs.items()):
            sizes = _sample_db(node, db, max(4, round(samples * count / total)))
            if not sizes:
                return None
            rdb_bytes += sum(sizes) / len(sizes) * count
            sampled += len(sizes)
    except RedisopsError:
        return None
    finally:
        try:
            node.execute("SELECT", "0")
        except RedisopsError:
            pass
    return DatasetSample(total, sampled, rdb_bytes / total, "dumped")


def _sample_db(node: RedisNode, db: int, want: int) -> list[float]:
    """RDB bytes of ``want`` random keys of ``db`` (with replacement)."""
    replies = node.pipeline([("SELECT", str(db)), *[("RANDOMKEY",)] * want])
    keys = [k for k in replies[1:] if isinstance(k, str) and k]
    if not keys:
        return []
    meta = node.pipeline(
        [c for k in keys for c in (("MEMORY", "USAGE", k, "SAMPLES", "5"), ("PTTL", k))],
        raise_errors=False,
    )
    memory = [m if isinstance(m, int) else None for m in meta[0::2]]
    ttls = [t if isinstance(t, int) else -1 for t in meta[1::2]]
    small = [i for i, m in enumerate(memory) if m is not None and m <= DUMP_LIMIT]
    dumps = (
        node.pipeline([("DUMP", keys[i]) for i in small], raise_errors=False, decode=False)
        if small
        else []
    )
    sizes: dict[int, float] = {}
    for i, payload in zip(small, dumps, strict=True):
        if isinstance(payload, bytes) and payload:
            key = keys[i].encode()
            sizes[i] = (
                len(payload)
                - DUMP_FOOTER
                + _rdb_len_bytes(len(key))
                + len(key)
                + (9 if ttls[i] >= 0 else 0)
            )
    if not sizes:
        return []
    # keys too big to dump: their memory scaled by what the dumped keys show
    ratio = sum(sizes.values()) / max(sum(memory[i] or 0 for i in sizes), 1)
    out = []
    for i, m in enumerate(memory):
        if i in sizes:
            out.append(sizes[i])
        elif m is not None:
            out.append(m * ratio)
    return out
