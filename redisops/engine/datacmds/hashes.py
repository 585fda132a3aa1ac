"""Hash commands (Redis 7.0 ``src/t_hash.c``).

A hash starts as a :class:`ListpackHash` (insertion-ordered, scanned in one call) and
becomes a plain ``dict`` (hashtable encoding) once it holds more than
``hash-max-listpack-entries`` fields or a field/value longer than
``hash-max-listpack-value`` bytes; it never converts back.
"""

from __future__ import annotations

from fractions import Fraction

from redisops.engine.command import (
    NOT_FLOAT,
    OVERFLOW,
    WRONGTYPE,
    CommandError,
    ExecContext,
    spec,
    wrong_arity,
)
from redisops.engine.datacmds._common import ScanOptions, get_ll, parse_cursor, scan_reply
from redisops.engine.datacmds._num import (
    LLONG_MAX,
    LLONG_MIN,
    ld_add,
    ld_format_human,
    ld_parse,
    string2ll,
)
from redisops.engine.keyspace import Keyspace, ListpackHash
from redisops.engine.resp import OK, MapReply, Reply


def _read_hash(ctx: ExecContext, key: bytes) -> dict[bytes, bytes] | None:
    value = ctx.keyspace.lookup_read(ctx, key)
    if value is None or isinstance(value, dict):
        return value
    raise CommandError(WRONGTYPE)


def _write_or_create(ctx: ExecContext, key: bytes) -> dict[bytes, bytes]:
    """``hashTypeLookupWriteOrCreate()``: the hash at ``key``, created empty if missing."""
    ks = ctx.keyspace
    value = ks.lookup_write(ctx, key)
    if value is None:
        new = ListpackHash()
        ks.db_add(ctx, key, new)
        return new
    if isinstance(value, dict):
        return value
    raise CommandError(WRONGTYPE)


def _to_hashtable(ctx: ExecContext, key: bytes, h: dict[bytes, bytes]) -> dict[bytes, bytes]:
    converted = dict(h)
    ctx.keyspace.dbs[ctx.db][key] = converted
    return converted


def _too_long(ks: Keyspace, *items: bytes) -> bool:
    limit = ks.hash_max_listpack_value
    return any(len(item) > limit for item in items)


def _hash_set(
    ctx: ExecContext, key: bytes, h: dict[bytes, bytes], field: bytes, value: bytes
) -> tuple[dict[bytes, bytes], bool]:
    """``hashTypeSet()``: returns the (possibly converted) hash and whether it was an update."""
    ks = ctx.keyspace
    if type(h) is ListpackHash and _too_long(ks, field, value):
        h = _to_hashtable(ctx, key, h)
    update = field in h
    h[field] = value
    if type(h) is ListpackHash and len(h) > ks.hash_max_listpack_entries:
        h = _to_hashtable(ctx, key, h)
    return h, update


def _hset(ctx: ExecContext, argv: list[bytes], name: str) -> int:
    if len(argv) % 2 == 1:
        raise wrong_arity(name)
    key = argv[1]
    h = _write_or_create(ctx, key)
    if type(h) is ListpackHash and _too_long(ctx.keyspace, *argv[2:]):
        h = _to_hashtable(ctx, key, h)
    created = 0
    for j in range(2, len(argv), 2):
        h, update = _hash_set(ctx, key, h, argv[j], argv[j + 1])
        created += not update
    ctx.touch(key)
    ctx.dirty += (len(argv) - 2) // 2  # even when nothing changed
    return created


@spec("hset", -4, "write denyoom fast", 1, 1, 1)
def hset_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _hset(ctx, argv, "hset")


@spec("hmset", -4, "write denyoom fast", 1, 1, 1)
def hmset_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    _hset(ctx, argv, "hmset")
    return OK


@spec("hsetnx", 4, "write denyoom fast", 1, 1, 1)
def hsetnx_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    key, field, value = argv[1], argv[2], argv[3]
    h = _write_or_create(ctx, key)
    if field in h:
        return 0
    if type(h) is ListpackHash and _too_long(ctx.keyspace, field, value):
        h = _to_hashtable(ctx, key, h)
    _hash_set(ctx, key, h, field, value)
    ctx.touch(key)
    ctx.dirty += 1
    return 1


@spec("hget", 3, "readonly fast", 1, 1, 1)
def hget_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    h = _read_hash(ctx, argv[1])
    return None if h is None else h.get(argv[2])


@spec("hmget", -3, "readonly fast", 1, 1, 1)
def hmget_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    h = _read_hash(ctx, argv[1])
    if h is None:
        return [None for _ in argv[2:]]
    out: list[Reply] = [h.get(field) for field in argv[2:]]
    return out


@spec("hdel", -3, "write fast", 1, 1, 1)
def hdel_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    ks = ctx.keyspace
    key = argv[1]
    h = ks.lookup_write(ctx, key)
    if h is None:
        return 0
    if not isinstance(h, dict):
        raise CommandError(WRONGTYPE)
    deleted = 0
    for field in argv[2:]:
        if h.pop(field, None) is not None:
            deleted += 1
            if not h:
                ks.delete(ctx.db, key)
                break
    if deleted:
        ctx.touch(key)
        ctx.dirty += deleted
    return deleted


@spec("hlen", 2, "readonly fast", 1, 1, 1)
def hlen_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    h = _read_hash(ctx, argv[1])
    return 0 if h is None else len(h)


@spec("hstrlen", 3, "readonly fast", 1, 1, 1)
def hstrlen_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    h = _read_hash(ctx, argv[1])
    return 0 if h is None else len(h.get(argv[2], b""))


@spec("hexists", 3, "readonly fast", 1, 1, 1)
def hexists_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    h = _read_hash(ctx, argv[1])
    return int(h is not None and argv[2] in h)


@spec("hgetall", 2, "readonly", 1, 1, 1)
def hgetall_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    h = _read_hash(ctx, argv[1])
    out = MapReply()  # RESP3: a map (%)
    if h is not None:
        for field, value in h.items():
            out.append(field)
            out.append(value)
    return out


@spec("hkeys", 2, "readonly", 1, 1, 1)
def hkeys_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    h = _read_hash(ctx, argv[1])
    out: list[Reply] = [] if h is None else list(h)
    return out


@spec("hvals", 2, "readonly", 1, 1, 1)
def hvals_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    h = _read_hash(ctx, argv[1])
    out: list[Reply] = [] if h is None else list(h.values())
    return out


@spec("hincrby", 4, "write denyoom fast", 1, 1, 1)
def hincrby_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    key, field = argv[1], argv[2]
    incr = get_ll(argv[3])
    h = _write_or_create(ctx, key)
    current = h.get(field)
    value = 0
    if current is not None:
        parsed = string2ll(current)
        if parsed is None:
            raise CommandError("ERR hash value is not an integer")
        value = parsed
    new = value + incr
    if new > LLONG_MAX or new < LLONG_MIN:
        raise CommandError(OVERFLOW)
    _hash_set(ctx, key, h, field, b"%d" % new)
    ctx.touch(key)
    ctx.dirty += 1
    return new


@spec("hincrbyfloat", 4, "write denyoom fast", 1, 1, 1)
def hincrbyfloat_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    """Long-double arithmetic; propagated as ``HSET k field <new>``."""
    key, field = argv[1], argv[2]
    kind, incr = ld_parse(argv[3])
    if kind == "error":
        raise CommandError(NOT_FLOAT)
    if kind == "inf":
        raise CommandError("ERR value is NaN or Infinity")
    h = _write_or_create(ctx, key)
    current = h.get(field)
    value: Fraction | None = Fraction(0)
    if current is not None:
        kind, value = ld_parse(current)
        if kind == "error":
            raise CommandError("ERR hash value is not a float")
    total = ld_add(value, incr)
    if total is None:
        raise CommandError("ERR increment would produce NaN or Infinity")
    new = ld_format_human(total)
    _hash_set(ctx, key, h, field, new)
    ctx.touch(key)
    ctx.dirty += 1
    ctx.rewrite([b"HSET", key, field, new])
    return new


@spec("hscan", -3, "readonly", 1, 1, 1)
def hscan_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    cursor = parse_cursor(argv[2])
    h = _read_hash(ctx, argv[1])
    if h is None:
        return scan_reply(0, [])
    options = ScanOptions(argv, 3, keyspace_scan=False)
    if type(h) is ListpackHash:
        fields = list(h)
        cursor = 0
    else:
        cursor, fields = ctx.keyspace.scan_members(h, cursor, options.count)
    out: list[bytes] = []
    for field in fields:
        if options.keep(field):
            out.append(field)
            out.append(h[field])
    return scan_reply(cursor, out)
