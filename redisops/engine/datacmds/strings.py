"""String commands (Redis 7.0 ``src/t_string.c``).

``SET k v`` and ``GET k`` are the hot path of every benchmark and replication test, so
they have inlined fast paths; everything else follows the C code step by step, including
the order in which errors are detected.
"""

from __future__ import annotations

from fractions import Fraction

from redisops.engine.command import (
    INVALID_EXPIRE,
    NOT_FLOAT,
    OVERFLOW,
    SYNTAX,
    WRONGTYPE,
    CommandError,
    ExecContext,
    spec,
    wrong_arity,
)
from redisops.engine.datacmds._common import check_string_length, get_ll, opt
from redisops.engine.datacmds._num import (
    LLONG_MAX,
    LLONG_MIN,
    ld_add,
    ld_format_human,
    ld_parse,
)
from redisops.engine.resp import OK, Reply

_SET = b"SET"
_PXAT = b"PXAT"
_KEEPTTL = b"KEEPTTL"

# Flags of parseExtendedStringArgumentsOrReply().
_NX, _XX, _GET, _KEEPTTL_F, _PERSIST = 1, 2, 4, 8, 16
_EX, _PX, _EXAT, _PXAT_F = 32, 64, 128, 256
_ANY_EXPIRE = _EX | _PX | _EXAT | _PXAT_F

# Option token -> (flag, flags that must not already be set, needs a following argument).
_SET_OPTIONS: dict[bytes, tuple[int, int, bool]] = {
    b"nx": (_NX, _XX, False),
    b"xx": (_XX, _NX, False),
    b"get": (_GET, 0, False),
    b"keepttl": (_KEEPTTL_F, _PERSIST | _ANY_EXPIRE, False),
    b"ex": (_EX, _KEEPTTL_F | _PERSIST | _EXAT | _PX | _PXAT_F, True),
    b"px": (_PX, _KEEPTTL_F | _PERSIST | _EX | _EXAT | _PXAT_F, True),
    b"exat": (_EXAT, _KEEPTTL_F | _PERSIST | _EX | _PX | _PXAT_F, True),
    b"pxat": (_PXAT_F, _KEEPTTL_F | _PERSIST | _EX | _EXAT | _PX, True),
}
_GETEX_OPTIONS: dict[bytes, tuple[int, int, bool]] = {
    b"persist": (_PERSIST, _ANY_EXPIRE | _KEEPTTL_F, False),
    b"ex": _SET_OPTIONS[b"ex"],
    b"px": _SET_OPTIONS[b"px"],
    b"exat": _SET_OPTIONS[b"exat"],
    b"pxat": _SET_OPTIONS[b"pxat"],
}


def _parse_extended(
    argv: list[bytes], start: int, table: dict[bytes, tuple[int, int, bool]]
) -> tuple[int, bytes | None]:
    """``parseExtendedStringArgumentsOrReply()``: (flags, expire argument or None)."""
    flags = 0
    expire: bytes | None = None
    j = start
    argc = len(argv)
    while j < argc:
        entry = table.get(opt(argv[j]))
        if entry is None or flags & entry[1] or (entry[2] and j == argc - 1):
            raise CommandError(SYNTAX)
        flags |= entry[0]
        if entry[2]:
            j += 1
            expire = argv[j]
        j += 1
    return flags, expire


def _expire_ms(ctx: ExecContext, arg: bytes, flags: int, cmd: str) -> int:
    """``getExpireMillisecondsOrReply()``: the absolute expire time in ms."""
    ms = get_ll(arg)
    seconds = bool(flags & (_EX | _EXAT))
    if ms <= 0 or (seconds and ms > LLONG_MAX // 1000):
        raise CommandError(INVALID_EXPIRE.format(cmd=cmd))
    if seconds:
        ms *= 1000
    if flags & (_EX | _PX):
        ms += ctx.now_ms
    if ms > LLONG_MAX:  # the C addition overflows to a negative value
        raise CommandError(INVALID_EXPIRE.format(cmd=cmd))
    return ms


def _get_string(ctx: ExecContext, key: bytes) -> bytes | None:
    """``getGenericCommand()``: the string at ``key`` (None if missing) or WRONGTYPE."""
    value = ctx.keyspace.lookup_read(ctx, key)
    if value is None or type(value) is bytes:
        return value
    raise CommandError(WRONGTYPE)


def _set_generic(
    ctx: ExecContext,
    argv: list[bytes],
    flags: int,
    key: bytes,
    value: bytes,
    expire: bytes | None,
    cmd: str,
    ok_reply: Reply = OK,
    abort_reply: Reply = None,
) -> Reply:
    """``setGenericCommand()`` for SET, SETNX, SETEX and PSETEX."""
    ks = ctx.keyspace
    when = _expire_ms(ctx, expire, flags, cmd) if expire is not None else 0
    old: Reply = None
    if flags & _GET:
        old = _get_string(ctx, key)
    found = ks.lookup_write(ctx, key) is not None
    if (flags & _NX and found) or (flags & _XX and not found):
        return old if flags & _GET else abort_reply
    ks.set_key(ctx, key, value, keepttl=bool(flags & _KEEPTTL_F), found=found)
    ctx.dirty += 1
    if expire is not None:
        ks.set_expire(ctx.db, key, when)
        ctx.rewrite([_SET, key, value, _PXAT, b"%d" % when])
    elif flags & _GET:
        # Propagate without GET (it may be repeated); the value at index 2 is kept.
        ctx.rewrite(argv[:3] + [a for a in argv[3:] if opt(a) != b"get"])
    return old if flags & _GET else ok_reply


@spec("set", -3, "write denyoom", 1, 1, 1)
def set_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    if len(argv) == 3:  # plain SET k v: the benchmark path
        key = argv[1]
        ks = ctx.keyspace
        db = ctx.db
        expires = ks.expires[db]
        if expires and key in expires:
            if ctx.now_ms > expires[key]:
                ks.expire_if_needed(ctx, key, True)
            expires.pop(key, None)
        ks.dbs[db][key] = argv[2]
        ctx.touch(key)
        ctx.dirty += 1
        return OK
    flags, expire = _parse_extended(argv, 3, _SET_OPTIONS)
    return _set_generic(ctx, argv, flags, argv[1], argv[2], expire, "set")


@spec("setnx", 3, "write denyoom fast", 1, 1, 1)
def setnx_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _set_generic(ctx, argv, _NX, argv[1], argv[2], None, "setnx", 1, 0)


@spec("setex", 4, "write denyoom", 1, 1, 1)
def setex_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _set_generic(ctx, argv, _EX, argv[1], argv[3], argv[2], "setex")


@spec("psetex", 4, "write denyoom", 1, 1, 1)
def psetex_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _set_generic(ctx, argv, _PX, argv[1], argv[3], argv[2], "psetex")


@spec("get", 2, "readonly fast", 1, 1, 1)
def get_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    value = ctx.keyspace.lookup_read(ctx, argv[1])
    if value is None or type(value) is bytes:
        return value
    raise CommandError(WRONGTYPE)


@spec("getset", 3, "write denyoom fast", 1, 1, 1)
def getset_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    old = _get_string(ctx, argv[1])
    ctx.keyspace.set_key(ctx, argv[1], argv[2])
    ctx.dirty += 1
    ctx.rewrite([_SET, *argv[1:]])
    return old


@spec("getdel", 2, "write fast", 1, 1, 1)
def getdel_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    key = argv[1]
    old = _get_string(ctx, key)
    if ctx.keyspace.delete(ctx.db, key):
        ctx.rewrite([b"UNLINK" if ctx.lazyfree_lazy_user_del else b"DEL", key])
        ctx.touch(key)
        ctx.dirty += 1
    return old


@spec("getex", -2, "write fast", 1, 1, 1)
def getex_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    flags, expire = _parse_extended(argv, 2, _GETEX_OPTIONS)
    ks = ctx.keyspace
    key = argv[1]
    value = ks.lookup_read(ctx, key)
    if value is None:
        return None
    if type(value) is not bytes:
        raise CommandError(WRONGTYPE)
    when = _expire_ms(ctx, expire, flags, "getex") if expire is not None else 0
    if flags & (_EXAT | _PXAT_F) and when <= ctx.now_ms and ctx.mode == "master":
        ks.delete(ctx.db, key)  # an absolute time already past deletes the key
        ctx.rewrite([b"UNLINK" if ctx.lazyfree_lazy_expire else b"DEL", key])
        ctx.touch(key)
        ctx.dirty += 1
    elif expire is not None:
        ks.set_expire(ctx.db, key, when)
        ctx.rewrite([b"PEXPIREAT", key, b"%d" % when])
        ctx.touch(key)
        ctx.dirty += 1
    elif flags & _PERSIST and ks.remove_expire(ctx.db, key):
        ctx.touch(key)
        ctx.rewrite([b"PERSIST", key])
        ctx.dirty += 1
    return value


@spec("mget", -2, "readonly fast", 1, -1, 1)
def mget_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    lookup = ctx.keyspace.lookup_read
    out: list[Reply] = []
    for key in argv[1:]:
        value = lookup(ctx, key)
        out.append(value if type(value) is bytes else None)
    return out


def _mset(ctx: ExecContext, argv: list[bytes]) -> None:
    ks = ctx.keyspace
    for j in range(1, len(argv), 2):
        ks.set_key(ctx, argv[j], argv[j + 1])
    ctx.dirty += (len(argv) - 1) // 2


@spec("mset", -3, "write denyoom", 1, -1, 2)
def mset_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    if len(argv) % 2 == 0:
        raise wrong_arity("mset")
    _mset(ctx, argv)
    return OK


@spec("msetnx", -3, "write denyoom", 1, -1, 2)
def msetnx_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    if len(argv) % 2 == 0:
        raise wrong_arity("msetnx")
    ks = ctx.keyspace
    for j in range(1, len(argv), 2):
        if ks.lookup_write(ctx, argv[j]) is not None:
            return 0
    _mset(ctx, argv)
    return 1


@spec("append", 3, "write denyoom fast", 1, 1, 1)
def append_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    ks = ctx.keyspace
    key, extra = argv[1], argv[2]
    old = ks.lookup_write(ctx, key)
    if old is None:
        ks.db_add(ctx, key, extra)
        new = extra
    else:
        if type(old) is not bytes:
            raise CommandError(WRONGTYPE)
        check_string_length(ctx, len(old) + len(extra))
        new = old + extra
        ks.dbs[ctx.db][key] = new
    ctx.touch(key)
    ctx.dirty += 1
    return len(new)


@spec("strlen", 2, "readonly fast", 1, 1, 1)
def strlen_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    value = ctx.keyspace.lookup_read(ctx, argv[1])
    if value is None:
        return 0
    if type(value) is not bytes:
        raise CommandError(WRONGTYPE)
    return len(value)


def _incr_by(ctx: ExecContext, key: bytes, incr: int) -> Reply:
    """``incrDecrCommand()``: the TTL survives (the value is overwritten in place)."""
    ks = ctx.keyspace
    old = ks.lookup_write(ctx, key)
    if old is None:
        value = 0
    elif type(old) is not bytes:
        raise CommandError(WRONGTYPE)
    else:
        value = get_ll(old)
    new = value + incr
    if new > LLONG_MAX or new < LLONG_MIN:
        raise CommandError(OVERFLOW)
    text = b"%d" % new
    if old is None:
        ks.db_add(ctx, key, text)
    else:
        ks.dbs[ctx.db][key] = text
    ctx.touch(key)
    ctx.dirty += 1
    return new


@spec("incr", 2, "write denyoom fast", 1, 1, 1)
def incr_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _incr_by(ctx, argv[1], 1)


@spec("decr", 2, "write denyoom fast", 1, 1, 1)
def decr_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _incr_by(ctx, argv[1], -1)


@spec("incrby", 3, "write denyoom fast", 1, 1, 1)
def incrby_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _incr_by(ctx, argv[1], get_ll(argv[2]))


@spec("decrby", 3, "write denyoom fast", 1, 1, 1)
def decrby_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    incr = get_ll(argv[2])
    if incr == LLONG_MIN:
        raise CommandError("ERR decrement would overflow")
    return _incr_by(ctx, argv[1], -incr)


@spec("incrbyfloat", 3, "write denyoom fast", 1, 1, 1)
def incrbyfloat_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    """Long-double arithmetic; propagated as ``SET k <new> KEEPTTL``."""
    ks = ctx.keyspace
    key = argv[1]
    old = ks.lookup_write(ctx, key)
    if old is not None and type(old) is not bytes:
        raise CommandError(WRONGTYPE)
    kind_v, value = ("finite", Fraction(0)) if old is None else ld_parse(old)
    if kind_v == "error":
        raise CommandError(NOT_FLOAT)
    kind_i, incr = ld_parse(argv[2])
    if kind_i == "error":
        raise CommandError(NOT_FLOAT)
    total = ld_add(value, incr)
    if total is None:  # an infinite operand, or the sum overflowed
        raise CommandError("ERR increment would produce NaN or Infinity")
    new = ld_format_human(total)
    if old is None:
        ks.db_add(ctx, key, new)
    else:
        ks.dbs[ctx.db][key] = new
    ctx.touch(key)
    ctx.dirty += 1
    ctx.rewrite([_SET, key, new, _KEEPTTL])
    return new


@spec("getrange", 4, "readonly", 1, 1, 1)
def getrange_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    start = get_ll(argv[2])
    end = get_ll(argv[3])
    value = ctx.keyspace.lookup_read(ctx, argv[1])
    if value is None:
        return b""
    if type(value) is not bytes:
        raise CommandError(WRONGTYPE)
    size = len(value)
    if start < 0 and end < 0 and start > end:
        return b""
    if start < 0:
        start += size
    if end < 0:
        end += size
    start = max(start, 0)
    end = max(end, 0)
    end = min(end, size - 1)
    if start > end or size == 0:
        return b""
    return value[start : end + 1]


@spec("setrange", 4, "write denyoom", 1, 1, 1)
def setrange_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    ks = ctx.keyspace
    key, patch = argv[1], argv[3]
    offset = get_ll(argv[2])
    if offset < 0:
        raise CommandError("ERR offset is out of range")
    old = ks.lookup_write(ctx, key)
    if old is None:
        if not patch:
            return 0
        check_string_length(ctx, offset + len(patch))
        new = bytes(offset) + patch
        ks.db_add(ctx, key, new)
    else:
        if type(old) is not bytes:
            raise CommandError(WRONGTYPE)
        if not patch:
            return len(old)
        check_string_length(ctx, offset + len(patch))
        grown = old.ljust(offset + len(patch), b"\0") if len(old) < offset + len(patch) else old
        new = grown[:offset] + patch + grown[offset + len(patch) :]
        ks.dbs[ctx.db][key] = new
    ctx.touch(key)
    ctx.dirty += 1
    return len(new)
