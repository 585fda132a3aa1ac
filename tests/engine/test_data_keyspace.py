"""The keyspace API the node uses: digests, snapshots, expiry candidates, INFO, RDB size.

Digest constants were produced by redis-server 7.0.15 (``DEBUG DIGEST``) for the same
datasets; ``test_data_vs_redis.py`` checks many more live.
"""

from __future__ import annotations

from collections import deque

import pytest

from redisops.engine.command import ExecContext
from redisops.engine.keyspace import IntSet, Keyspace, ListpackHash, ZSet, scan_slice, scan_snapshot
from tests.engine.test_datacmds import Runner


def load(*commands: str) -> Runner:
    r = Runner()
    for line in commands:
        r(*line.split())
    return r


def test_digest_of_empty_dataset_is_zeros() -> None:
    assert Keyspace().digest() == "0" * 40
    assert Keyspace().digest_value(0, b"missing") == "0" * 40


def test_digest_matches_values_redis_printed() -> None:
    r = load("set a 1")
    assert r.keyspace.digest() == "943d800368fb9c0e951138f1bc0e313ac769d91f"
    assert r.keyspace.digest_value(0, b"a") == "b4fc66738120fba0b5aa500ab5c2bf89cea1c5da"
    r = load(
        "set a 1",
        "sadd s a b 1",
        "hset h f v g w",
        "zadd z 1 a 2.5 b -inf c",
        "rpush l a b c",
        "set e v ex 100",
        "select 3",
        "set a 1",
    )
    assert r.keyspace.digest() == "bc2db88db3e054a45f99a34b48b8f21602f352de"


def test_digest_sees_ttl_presence_db_and_list_order_but_not_set_order() -> None:
    base = load("rpush l a b", "sadd s x y").keyspace.digest()
    assert load("sadd s y x", "rpush l a b").keyspace.digest() == base
    assert load("rpush l b a", "sadd s x y").keyspace.digest() != base
    assert load("rpush l a b", "sadd s x y", "expire s 100").keyspace.digest() != base
    assert (
        load("rpush l a b", "sadd s x y", "expire s 5").keyspace.digest()
        == load("rpush l a b", "sadd s x y", "expire s 100").keyspace.digest()
    )
    assert load("select 1", "rpush l a b", "sadd s x y").keyspace.digest() != base


def test_copy_is_deep_and_equal() -> None:
    r = load(
        "set s v",
        "rpush l a b",
        "hset h f v",
        "sadd i 1 2",
        "sadd t a",
        "zadd z 1 m",
        "expire s 100",
    )
    ks = r.keyspace
    snap = ks.copy()
    assert snap.digest() == ks.digest()
    assert snap.expires_count(0) == 1
    for cmd in ("rpush l c", "hset h g w", "sadd i 3", "sadd t b", "zadd z 2 n", "persist s"):
        r(*cmd.split())
    assert snap.digest() != ks.digest()
    assert list(snap.dbs[0][b"l"]) == [b"a", b"b"]  # type: ignore[arg-type]
    assert type(snap.dbs[0][b"h"]) is ListpackHash
    assert type(snap.dbs[0][b"i"]) is IntSet


def test_items_and_set_raw_round_trip() -> None:
    src = load("set a 1 px 5000", "rpush l x y", "zadd z 3 q", "select 2", "hset h f v").keyspace
    dst = Keyspace()
    for db in range(src.databases):
        for key, value, expire in src.items(db):
            dst.set_raw(db, key, value, expire)
    assert dst.digest() == src.digest()
    assert dst.get_expire(0, b"a") == src.get_expire(0, b"a")
    assert dst.dbsize(2) == 1


def test_expired_candidates_are_strictly_past_earliest_first_and_not_removed() -> None:
    ks = Keyspace()
    for i, when in enumerate([500, 100, 300, 100, 900]):
        ks.set_raw(0, b"k%d" % i, b"v", when)
    ks.set_raw(0, b"forever", b"v", None)
    assert ks.expired_candidates(0, 100, 10) == []  # now > expire is required
    assert ks.expired_candidates(0, 301, 10) == [b"k1", b"k3", b"k2"]
    assert ks.expired_candidates(0, 301, 2) == [b"k1", b"k3"]
    assert ks.expired_candidates(0, 301, 10) == [b"k1", b"k3", b"k2"]  # still there
    ks.set_expire(0, b"k1", 10_000)  # the old heap entry goes stale
    ks.delete(0, b"k3")
    ks.remove_expire(0, b"k2")
    assert ks.expired_candidates(0, 1000, 10) == [b"k0", b"k4"]
    for _ in range(300):  # rewriting one TTL many times keeps the heap bounded
        ks.set_expire(0, b"k0", 50)
    assert ks.expired_candidates(0, 1000, 10) == [b"k0", b"k4"]
    assert len(ks._expiry_heaps[0]) < 100


def test_expire_now_propagates_del_or_unlink() -> None:
    ks = Keyspace()
    ks.set_raw(0, b"k", b"v", 1)
    ctx = ExecContext(ks, 0, now_ms=10, lazyfree_lazy_expire=True)
    ks.expire_now(ctx, b"k")
    assert ctx.extra_ops == [(0, [b"UNLINK", b"k"])]
    assert ctx.touched == [(0, b"k")]
    assert ctx.stats.expired_keys == 1
    assert ks.dbsize(0) == 0


def test_info_keyspace() -> None:
    ks = Keyspace()
    ks.set_raw(0, b"a", b"v", None)
    ks.set_raw(0, b"b", b"v", 2000)
    ks.set_raw(0, b"c", b"v", 4000)
    ks.set_raw(3, b"d", b"v", 500)
    assert ks.info_keyspace() == {0: (3, 2, 0), 3: (1, 1, 0)}
    assert ks.info_keyspace(now_ms=1000) == {0: (3, 2, 2000), 3: (1, 1, 0)}


def test_rdb_size_estimate_formula() -> None:
    assert Keyspace().rdb_size_estimate() == 0
    # SELECTDB 0 + RESIZEDB 1 0: 5 bytes; type 1 + key "a" 2 + value 1 (int-encoded) 2
    assert load("set a 1").keyspace.rdb_size_estimate() == 10
    # an expire adds 9 bytes; a 100-byte string takes 2 length bytes
    assert load("set a 1 ex 100").keyspace.rdb_size_estimate() == 19
    assert load(f"set a {'x' * 100}").keyspace.rdb_size_estimate() == 5 + 1 + 2 + 102


def test_lookup_modes_and_stats() -> None:
    ks = Keyspace()
    ks.set_raw(0, b"k", b"v", 100)
    apply = ExecContext(ks, 0, now_ms=200, mode="replica_apply")
    assert ks.lookup_read(apply, b"k") == b"v"
    client = ExecContext(ks, 0, now_ms=200, mode="replica_client")
    assert ks.lookup_read(client, b"k") is None
    assert ks.lookup_read_nostats(client, b"k") is None
    assert (client.stats.keyspace_hits, client.stats.keyspace_misses) == (0, 1)
    assert ks.dbsize(0) == 1 and client.extra_ops == []
    assert ks.lookup_write(client, b"k") is None
    assert ks.dbsize(0) == 0 and client.extra_ops == [] and client.stats.expired_keys == 1


def test_encodings_convert_one_way() -> None:
    r = load("hset h f v", "sadd s 1 2", "zadd z 1 a")
    ks = r.keyspace
    r("hset", "h", "long", "x" * 65)
    assert type(ks.dbs[0][b"h"]) is dict
    r("hdel", "h", "long")
    assert type(ks.dbs[0][b"h"]) is dict
    r("hset", "h2", *[x for i in range(512) for x in (f"f{i}", "v")])
    assert type(ks.dbs[0][b"h2"]) is ListpackHash
    r("hset", "h2", "one-more", "v")
    assert type(ks.dbs[0][b"h2"]) is dict
    r("sadd", "s", "x")
    assert type(ks.dbs[0][b"s"]) is set
    r("sadd", "big", *range(513))
    assert type(ks.dbs[0][b"big"]) is set
    r("zadd", "z", 2, "m" * 65)
    z = ks.dbs[0][b"z"]
    assert isinstance(z, ZSet) and not z.listpack
    r("zadd", "z2", *[x for i in range(129) for x in (i, f"m{i}")])
    z2 = ks.dbs[0][b"z2"]
    assert isinstance(z2, ZSet) and not z2.listpack
    assert isinstance(ks.dbs[0][b"h"], dict) and not isinstance(ks.dbs[0][b"h"], deque)


def test_scan_cursor_survives_changes_during_iteration() -> None:
    ks = Keyspace()
    for i in range(1000):
        ks.set_raw(0, b"k%d" % i, b"v", None)
    seen: list[bytes] = []
    cursor = 0
    step = 0
    while True:
        cursor, keys = ks.scan_keys(0, cursor, 10)
        seen += keys
        step += 1
        if step == 5:  # changes mid-iteration
            ks.delete(0, b"k999")
            ks.set_raw(0, b"new", b"v", None)
        if cursor == 0:
            break
    stable = {b"k%d" % i for i in range(999)}
    assert stable <= set(seen)
    assert len(seen) == len(set(seen))
    assert b"k999" not in seen or seen.index(b"k999") < 50


@pytest.mark.parametrize("count", [1, 3, 1000])
def test_scan_slice_never_splits_equal_positions(count: int) -> None:
    snapshot = [(5, b"a"), (5, b"b"), (7, b"c")]
    out: list[bytes] = []
    cursor = 0
    while True:
        cursor, part = scan_slice(snapshot, cursor, count)
        out += part
        if cursor == 0:
            break
    assert out == [b"a", b"b", b"c"]
    assert scan_snapshot([b"x"])[0][0] > 0


def test_zset_order_and_ranges() -> None:
    z = ZSet()
    for member, score in [(b"b", 1.0), (b"a", 1.0), (b"c", -2.0), (b"d", float("inf"))]:
        z.add(member, score)
    assert [m for _, m in z.order] == [b"c", b"a", b"b", b"d"]
    z.update(b"c", -2.0, 5.0)
    assert z.rank(b"c") == 2 and z.rank(b"zz") is None
    assert z.first_in_score_range(1.0, False) == 0
    assert z.first_in_score_range(1.0, True) == 2
    assert z.end_of_score_range(5.0, True) == 2
    assert z.end_of_score_range(5.0, False) == 3
    assert z.remove(b"a") and not z.remove(b"a")
    assert len(z.copy()) == 3
