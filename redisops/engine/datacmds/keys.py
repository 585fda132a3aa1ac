"""Generic keyspace commands (Redis 7.0 ``src/db.c`` and ``src/expire.c``)."""

from __future__ import annotations

import random
from itertools import islice

from redisops.engine.command import (
    INVALID_EXPIRE,
    NO_SUCH_KEY,
    SYNTAX,
    CommandError,
    ExecContext,
    spec,
)
from redisops.engine.datacmds._common import (
    ScanOptions,
    get_ll,
    opt,
    parse_cursor,
    scan_reply,
    stringmatch,
    type_name,
)
from redisops.engine.datacmds._num import LLONG_MAX, LLONG_MIN
from redisops.engine.resp import OK, Reply, SimpleString

_DEL = b"DEL"
_UNLINK = b"UNLINK"
_PEXPIREAT = b"PEXPIREAT"


def _delete_keys(ctx: ExecContext, argv: list[bytes]) -> Reply:
    """``delGenericCommand()``: an expired key is expired first (its own DEL), not counted."""
    ks = ctx.keyspace
    deleted = 0
    for key in argv[1:]:
        ks.expire_if_needed(ctx, key)
        if ks.delete(ctx.db, key):
            ctx.touch(key)
            ctx.dirty += 1
            deleted += 1
    return deleted


@spec("del", -2, "write", 1, -1, 1)
def del_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _delete_keys(ctx, argv)


@spec("unlink", -2, "write fast", 1, -1, 1)
def unlink_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _delete_keys(ctx, argv)


@spec("exists", -2, "readonly fast", 1, -1, 1)
def exists_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    lookup = ctx.keyspace.lookup_read
    return sum(1 for key in argv[1:] if lookup(ctx, key) is not None)


@spec("type", 2, "readonly fast", 1, 1, 1)
def type_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return SimpleString(type_name(ctx.keyspace.lookup_read(ctx, argv[1])))


# ----------------------------------------------------------------------------- expire

_EXPIRE_NX, _EXPIRE_XX, _EXPIRE_GT, _EXPIRE_LT = 1, 2, 4, 8
_EXPIRE_FLAGS = {b"nx": _EXPIRE_NX, b"xx": _EXPIRE_XX, b"gt": _EXPIRE_GT, b"lt": _EXPIRE_LT}


def _expire_generic(
    ctx: ExecContext, argv: list[bytes], cmd: str, relative: bool, unit_s: bool
) -> Reply:
    """``expireGenericCommand()``; propagated as ``PEXPIREAT k <abs-ms> [flags]``."""
    flags = 0
    for arg in argv[3:]:
        flag = _EXPIRE_FLAGS.get(opt(arg))
        if flag is None:
            text = arg.split(b"\0", 1)[0].decode("utf-8", "replace")
            raise CommandError(f"ERR Unsupported option {text}")
        flags |= flag
    if flags & _EXPIRE_NX and flags & (_EXPIRE_XX | _EXPIRE_GT | _EXPIRE_LT):
        raise CommandError("ERR NX and XX, GT or LT options at the same time are not compatible")
    if flags & _EXPIRE_GT and flags & _EXPIRE_LT:
        raise CommandError("ERR GT and LT options at the same time are not compatible")
    when = get_ll(argv[2])
    if unit_s:
        if when > LLONG_MAX // 1000 or when < -(-LLONG_MIN // 1000):  # C truncates
            raise CommandError(INVALID_EXPIRE.format(cmd=cmd))
        when *= 1000
    basetime = ctx.now_ms if relative else 0
    if when > LLONG_MAX - basetime:
        raise CommandError(INVALID_EXPIRE.format(cmd=cmd))
    when += basetime
    ks = ctx.keyspace
    key = argv[1]
    if ks.lookup_write(ctx, key) is None:
        return 0
    if flags:
        current = ks.get_expire(ctx.db, key)
        if flags & _EXPIRE_NX and current is not None:
            return 0
        if flags & _EXPIRE_XX and current is None:
            return 0
        if flags & _EXPIRE_GT and (current is None or when <= current):
            return 0
        if flags & _EXPIRE_LT and current is not None and when >= current:
            return 0
    if when <= ctx.now_ms and ctx.mode == "master":  # checkAlreadyExpired()
        ks.delete(ctx.db, key)
        ctx.dirty += 1
        ctx.rewrite([_UNLINK if ctx.lazyfree_lazy_expire else _DEL, key])
        ctx.touch(key)
        return 1
    ks.set_expire(ctx.db, key, when)
    if cmd != "pexpireat" or relative or unit_s:
        new = list(argv)
        if cmd != "pexpireat":
            new[0] = _PEXPIREAT
        if relative or unit_s:
            new[2] = b"%d" % when
        ctx.rewrite(new)
    ctx.touch(key)
    ctx.dirty += 1
    return 1


@spec("expire", -3, "write fast", 1, 1, 1)
def expire_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _expire_generic(ctx, argv, "expire", True, True)


@spec("pexpire", -3, "write fast", 1, 1, 1)
def pexpire_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _expire_generic(ctx, argv, "pexpire", True, False)


@spec("expireat", -3, "write fast", 1, 1, 1)
def expireat_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _expire_generic(ctx, argv, "expireat", False, True)


@spec("pexpireat", -3, "write fast", 1, 1, 1)
def pexpireat_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _expire_generic(ctx, argv, "pexpireat", False, False)


def _ttl_generic(ctx: ExecContext, key: bytes, output_ms: bool, absolute: bool) -> Reply:
    ks = ctx.keyspace
    if ks.lookup_read(ctx, key) is None:
        return -2
    when = ks.get_expire(ctx.db, key)
    if when is None:
        return -1
    ttl = max(when if absolute else when - ctx.now_ms, 0)
    return ttl if output_ms else (ttl + 500) // 1000


@spec("ttl", 2, "readonly fast", 1, 1, 1)
def ttl_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _ttl_generic(ctx, argv[1], False, False)


@spec("pttl", 2, "readonly fast", 1, 1, 1)
def pttl_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _ttl_generic(ctx, argv[1], True, False)


@spec("expiretime", 2, "readonly fast", 1, 1, 1)
def expiretime_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _ttl_generic(ctx, argv[1], False, True)


@spec("pexpiretime", 2, "readonly fast", 1, 1, 1)
def pexpiretime_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _ttl_generic(ctx, argv[1], True, True)


@spec("persist", 2, "write fast", 1, 1, 1)
def persist_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    ks = ctx.keyspace
    key = argv[1]
    if ks.lookup_write(ctx, key) is None or not ks.remove_expire(ctx.db, key):
        return 0
    ctx.touch(key)
    ctx.dirty += 1
    return 1


# ----------------------------------------------------------------------------- iteration


@spec("keys", 2, "readonly", 0, 0, 0)
def keys_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    """Logically expired keys are hidden but not deleted (``keyIsExpired()`` only)."""
    pattern = argv[1]
    everything = pattern == b"*"
    expires = ctx.keyspace.expires[ctx.db]
    now = ctx.now_ms
    out: list[Reply] = []
    for key in ctx.keyspace.dbs[ctx.db]:
        if everything or stringmatch(pattern, key):
            when = expires.get(key)
            if when is None or now <= when:
                out.append(key)
    return out


@spec("scan", -2, "readonly touches_arbitrary_keys", 0, 0, 0)
def scan_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    """SCAN: expired keys met are expired (propagating DEL on a master) and skipped."""
    cursor = parse_cursor(argv[1])
    options = ScanOptions(argv, 2, keyspace_scan=True)
    ks = ctx.keyspace
    cursor, keys = ks.scan_keys(ctx.db, cursor, options.count)
    out: list[bytes] = []
    wanted = options.type_name
    for key in keys:
        if not options.keep(key):
            continue
        if wanted is not None and opt(wanted) != type_name(ks.lookup_read(ctx, key)).encode():
            continue
        if ks.expire_if_needed(ctx, key):
            continue
        out.append(key)
    return scan_reply(cursor, out)


@spec("randomkey", 1, "readonly touches_arbitrary_keys", 0, 0, 0)
def randomkey_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    """``dbRandomKey()``: retry while the pick is expired (a replica gives up after 100)."""
    ks = ctx.keyspace
    data = ks.dbs[ctx.db]
    expires = ks.expires[ctx.db]
    all_volatile = len(data) == len(expires)
    tries = 100
    while data:
        key = next(islice(iter(data), random.randrange(len(data)), None))
        if key in expires:
            if all_volatile and ctx.mode != "master":
                tries -= 1
                if tries == 0:
                    return key
            if ks.expire_if_needed(ctx, key):
                continue
        return key
    return None


@spec("rename", 3, "write", 1, 2, 1)
def rename_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _rename(ctx, argv, nx=False)


@spec("renamenx", 3, "write fast", 1, 2, 1)
def renamenx_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _rename(ctx, argv, nx=True)


def _rename(ctx: ExecContext, argv: list[bytes], nx: bool) -> Reply:
    """``renameGenericCommand()``: the value keeps its TTL under the new name."""
    ks = ctx.keyspace
    src, dst = argv[1], argv[2]
    value = ks.lookup_write(ctx, src)
    if value is None:
        raise CommandError(NO_SUCH_KEY)
    if src == dst:
        return 0 if nx else OK
    when = ks.get_expire(ctx.db, src)
    if ks.lookup_write(ctx, dst) is not None:
        if nx:
            return 0
        ks.delete(ctx.db, dst)
    ks.db_add(ctx, dst, value)
    if when is not None:
        ks.set_expire(ctx.db, dst, when)
    ks.delete(ctx.db, src)
    ctx.touch(src)
    ctx.touch(dst)
    ctx.dirty += 1
    return 1 if nx else OK


@spec("touch", -2, "readonly fast", 1, -1, 1)
def touch_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    lookup = ctx.keyspace.lookup_read
    return sum(1 for key in argv[1:] if lookup(ctx, key) is not None)


@spec("dbsize", 1, "readonly fast", 0, 0, 0)
def dbsize_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return ctx.keyspace.dbsize(ctx.db)


def _check_flush_args(argv: list[bytes]) -> None:
    """``getFlushCommandFlags()``: optional SYNC or ASYNC (both flush at once here)."""
    if len(argv) == 2 and opt(argv[1]) in (b"sync", b"async"):
        return
    if len(argv) != 1:
        raise CommandError(SYNTAX)


def _flush(ctx: ExecContext, db: int) -> int:
    ks = ctx.keyspace
    for key in ks.dbs[db]:
        ctx.touch(key, db)
    return ks.flushdb(db)


@spec("flushdb", -1, "write", 0, 0, 0)
def flushdb_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    """Always propagated, even when the db was already empty."""
    _check_flush_args(argv)
    ctx.dirty += _flush(ctx, ctx.db)
    ctx.force_propagate()
    return OK


@spec("flushall", -1, "write", 0, 0, 0)
def flushall_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    _check_flush_args(argv)
    ctx.dirty += sum(_flush(ctx, db) for db in range(ctx.keyspace.databases))
    ctx.force_propagate()
    return OK
