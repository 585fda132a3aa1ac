"""Dataset shapes for estimate tests and ``bench/estimates.py``: each fills an empty
redis-server (through a redis-py client) with one kind of data, quickly (pipelines,
``DEBUG POPULATE``)."""

from __future__ import annotations

import random
from collections.abc import Callable

import redis

Filler = Callable[[redis.Redis], None]


def _pipe(client: redis.Redis, count: int, add: Callable[[object, int], None]) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        add(pipe, i)
        if i % 2000 == 1999:
            pipe.execute()
    pipe.execute()


def small_strings(n: int) -> Filler:
    """``DEBUG POPULATE n``: ``key:N`` -> ``value:N`` (what the issue measured)."""

    def fill(c: redis.Redis) -> None:
        c.execute_command("DEBUG", "POPULATE", n)

    return fill


def random_strings(n: int, size: int) -> Filler:
    """Incompressible values: LZF cannot shrink them."""
    rng = random.Random(7)

    def fill(c: redis.Redis) -> None:
        _pipe(c, n, lambda p, i: p.set(f"blob:{i}", rng.randbytes(size)))  # type: ignore[attr-defined]

    return fill


def repetitive_strings(n: int, size: int) -> Filler:
    """Highly compressible values (LZF shrinks them a lot in the RDB)."""

    def fill(c: redis.Redis) -> None:
        _pipe(c, n, lambda p, i: p.set(f"page:{i}", f"{i}:" + "x" * size))  # type: ignore[attr-defined]

    return fill


def hashes(n: int, fields: int) -> Filler:
    """Small hashes stay listpacks; past 128 fields they become hash tables."""

    def fill(c: redis.Redis) -> None:
        def add(p: object, i: int) -> None:
            p.hset(f"user:{i}", mapping={f"f{j}": f"value-{i}-{j}" for j in range(fields)})  # type: ignore[attr-defined]

        _pipe(c, n, add)

    return fill


def mixed(n: int) -> Filler:
    """Strings with and without TTLs, lists, sets of integers, sorted sets."""

    def fill(c: redis.Redis) -> None:
        def add(p: object, i: int) -> None:
            kind = i % 5
            if kind == 0:
                p.set(f"s:{i}", f"session-{i}-" + "ab" * 20, ex=3600)  # type: ignore[attr-defined]
            elif kind == 1:
                p.rpush(f"l:{i}", *[f"item-{j}" for j in range(30)])  # type: ignore[attr-defined]
            elif kind == 2:
                p.sadd(f"i:{i}", *range(40))  # type: ignore[attr-defined]
            elif kind == 3:
                p.zadd(f"z:{i}", {f"m{j}": j * 1.5 for j in range(25)})  # type: ignore[attr-defined]
            else:
                p.set(f"c:{i}", i)  # type: ignore[attr-defined]

        _pipe(c, n, add)

    return fill


#: name -> filler: the shapes the estimate test and the benchmark go through
SHAPES: dict[str, Filler] = {
    "300k small strings (DEBUG POPULATE)": small_strings(300_000),
    "1k small strings": small_strings(1_000),
    "20k random 1 KB strings": random_strings(20_000, 1024),
    "20k repetitive 1 KB strings": repetitive_strings(20_000, 1024),
    "5k hashes x 20 fields (listpack)": hashes(5_000, 20),
    "200 hashes x 500 fields (hashtable)": hashes(200, 500),
    "50k mixed types, TTLs": mixed(50_000),
}
