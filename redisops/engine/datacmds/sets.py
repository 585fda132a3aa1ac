"""Set commands (Redis 7.0 ``src/t_set.c``).

Sets holding only canonical integers start as :class:`IntSet` (replies in numeric order,
like Redis's intset) and become plain ``set`` (hashtable) when a non-integer is added or
they exceed ``set-max-intset-entries``. Random picks (SPOP, SRANDMEMBER) use ``random``.
"""

from __future__ import annotations

import random
from itertools import islice

from redisops.engine.command import SYNTAX, WRONGTYPE, CommandError, ExecContext, spec
from redisops.engine.datacmds._common import (
    ScanOptions,
    get_positive_long,
    get_range_long,
    parse_cursor,
    scan_reply,
)
from redisops.engine.datacmds._num import LLONG_MAX, string2ll
from redisops.engine.keyspace import IntSet, Keyspace
from redisops.engine.resp import Reply, SetReply


def _members(s: set[bytes]) -> list[bytes]:
    """Iteration order: numeric for an intset, the table's order otherwise."""
    if type(s) is IntSet:
        return sorted(s, key=int)
    return list(s)


def _new_set(first: bytes) -> set[bytes]:
    """``setTypeCreate()``: an intset if the first member is an integer."""
    return IntSet() if string2ll(first) is not None else set()


def _add(ks: Keyspace, s: set[bytes], member: bytes) -> tuple[set[bytes], bool]:
    """``setTypeAdd()``: returns the set (converted to a hashtable if needed) and added."""
    if member in s:
        return s, False
    # a non-integer, or one member too many, turns an intset into a hashtable
    if type(s) is IntSet and (
        string2ll(member) is None or len(s) + 1 > min(ks.set_max_intset_entries, 1 << 30)
    ):
        s = set(s)
    s.add(member)
    return s, True


def _read_set(ctx: ExecContext, key: bytes) -> set[bytes] | None:
    value = ctx.keyspace.lookup_read(ctx, key)
    if value is None or isinstance(value, set):
        return value
    raise CommandError(WRONGTYPE)


def _write_set(ctx: ExecContext, key: bytes) -> set[bytes] | None:
    value = ctx.keyspace.lookup_write(ctx, key)
    if value is None or isinstance(value, set):
        return value
    raise CommandError(WRONGTYPE)


def _random_member(s: set[bytes]) -> bytes:
    return next(islice(iter(s), random.randrange(len(s)), None))


def _store(ctx: ExecContext, dst: bytes, result: set[bytes]) -> int:
    """Store a computed set at ``dst`` (replacing anything there), or delete ``dst``."""
    ks = ctx.keyspace
    if result:
        ks.set_key(ctx, dst, result)
        ctx.dirty += 1
        return len(result)
    if ks.delete(ctx.db, dst):
        ctx.dirty += 1
        ctx.touch(dst)
    return 0


@spec("sadd", -3, "write denyoom fast", 1, 1, 1)
def sadd_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    ks = ctx.keyspace
    key = argv[1]
    s = _write_set(ctx, key)
    if s is None:
        s = _new_set(argv[2])
        ks.db_add(ctx, key, s)
    original = s
    added = 0
    for member in argv[2:]:
        s, was_added = _add(ks, s, member)
        added += was_added
    if s is not original:
        ks.dbs[ctx.db][key] = s
    if added:
        ctx.touch(key)
    ctx.dirty += added
    return added


@spec("srem", -3, "write fast", 1, 1, 1)
def srem_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    key = argv[1]
    s = _write_set(ctx, key)
    if s is None:
        return 0
    deleted = 0
    for member in argv[2:]:
        if member in s:
            s.remove(member)
            deleted += 1
            if not s:
                ctx.keyspace.delete(ctx.db, key)
                break
    if deleted:
        ctx.touch(key)
        ctx.dirty += deleted
    return deleted


@spec("smembers", 2, "readonly", 1, 1, 1)
def smembers_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    s = _read_set(ctx, argv[1])
    return SetReply() if s is None else SetReply(_members(s))


@spec("sismember", 3, "readonly fast", 1, 1, 1)
def sismember_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    s = _read_set(ctx, argv[1])
    return int(s is not None and argv[2] in s)


@spec("smismember", -3, "readonly fast", 1, 1, 1)
def smismember_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    s = _read_set(ctx, argv[1])
    out: list[Reply] = [int(s is not None and m in s) for m in argv[2:]]
    return out


@spec("scard", 2, "readonly fast", 1, 1, 1)
def scard_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    s = _read_set(ctx, argv[1])
    return 0 if s is None else len(s)


@spec("spop", -2, "write fast", 1, 1, 1)
def spop_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    """Propagated as ``SREM k member`` (one SREM per member with a count, or ``DEL k``)."""
    if len(argv) == 3:
        return _spop_count(ctx, argv[1], get_positive_long(argv[2]))
    if len(argv) > 3:
        raise CommandError(SYNTAX)
    key = argv[1]
    s = _write_set(ctx, key)
    if s is None:
        return None
    member = _random_member(s)
    s.remove(member)
    ctx.rewrite([b"SREM", key, member])
    if not s:
        ctx.keyspace.delete(ctx.db, key)
    ctx.touch(key)
    ctx.dirty += 1
    return member


def _spop_count(ctx: ExecContext, key: bytes, count: int) -> Reply:
    ks = ctx.keyspace
    s = _write_set(ctx, key)
    if s is None or count == 0:
        return SetReply()
    size = len(s)
    ctx.dirty += min(count, size)
    if count >= size:  # the whole set, replied by SUNION's code (one more read lookup)
        out = SetReply(_members(_union(ks, _lookup_sets(ctx, [key]))))
        ks.delete(ctx.db, key)
        ctx.rewrite([b"DEL", key])
        ctx.touch(key)
        return out
    remaining = size - count
    if remaining * 5 > count:  # few to pop: pick them
        popped = random.sample(list(s), count)
        for member in popped:
            s.remove(member)
    else:  # most of the set: pick the survivors, they form a new set (maybe an intset)
        keep = random.sample(list(s), remaining)
        survivors = _new_set(keep[0])
        for member in keep:
            survivors, _ = _add(ks, survivors, member)
            s.remove(member)
        popped = _members(s)
        ks.dbs[ctx.db][key] = survivors
    for member in popped:
        ctx.also_propagate([b"SREM", key, member])
    ctx.prevent_propagation()
    ctx.touch(key)
    return SetReply(popped)


@spec("srandmember", -2, "readonly", 1, 1, 1)
def srandmember_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    if len(argv) > 3:
        raise CommandError(SYNTAX)
    if len(argv) == 2:
        s = _read_set(ctx, argv[1])
        return None if s is None else _random_member(s)
    wanted = get_range_long(argv[2], -LLONG_MAX, LLONG_MAX)
    s = _read_set(ctx, argv[1])
    if s is None or wanted == 0:
        return []
    out: list[Reply]
    if wanted < 0 or wanted == 1:  # repetitions allowed
        out = [_random_member(s) for _ in range(abs(wanted))]
    elif wanted >= len(s):
        out = list(_members(s))
    else:
        out = list(random.sample(list(s), wanted))
    return out


@spec("smove", 4, "write fast", 1, 2, 1)
def smove_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    ks = ctx.keyspace
    src_key, dst_key, member = argv[1], argv[2], argv[3]
    src = ks.lookup_write(ctx, src_key)
    dst = ks.lookup_write(ctx, dst_key)
    if src is None:
        return 0
    if not isinstance(src, set) or (dst is not None and not isinstance(dst, set)):
        raise CommandError(WRONGTYPE)
    if src is dst:
        return int(member in src)
    if member not in src:
        return 0
    src.remove(member)
    if not src:
        ks.delete(ctx.db, src_key)
    if dst is None:
        dst = _new_set(member)
        ks.db_add(ctx, dst_key, dst)
    ctx.touch(src_key)
    ctx.dirty += 1
    grown, added = _add(ks, dst, member)
    if grown is not dst:
        ks.dbs[ctx.db][dst_key] = grown
    if added:
        ctx.dirty += 1
        ctx.touch(dst_key)
    return 1


# ----------------------------------------------------------------------------- algebra


def _lookup_sets(ctx: ExecContext, keys: list[bytes]) -> list[set[bytes] | None]:
    """Every key looked up (missing = None) before the first WRONGTYPE is reported."""
    sets: list[set[bytes] | None] = []
    for key in keys:
        sets.append(_read_set(ctx, key))
    return sets


def _union(ks: Keyspace, sets: list[set[bytes] | None]) -> set[bytes]:
    """Members added to a fresh intset, as ``sunionDiffGenericCommand()`` builds results."""
    result: set[bytes] = IntSet()
    for s in sets:
        if s is not None:
            for member in _members(s):
                result, _ = _add(ks, result, member)
    return result


def _inter(ctx: ExecContext, keys: list[bytes], dst: bytes | None) -> Reply:
    ks = ctx.keyspace
    sets = _lookup_sets(ctx, keys)
    if any(s is None for s in sets):
        if dst is not None:
            return _store(ctx, dst, set())
        return SetReply()
    present = sorted((s for s in sets if s is not None), key=len)  # stable, like qsort here
    first = present[0]
    others = [s for s in present[1:] if s is not first]
    members = [m for m in _members(first) if all(m in other for other in others)]
    if dst is None:
        return SetReply(members)
    result: set[bytes] = IntSet()
    for member in members:
        result, _ = _add(ks, result, member)
    return _store(ctx, dst, result)


def _diff(ctx: ExecContext, keys: list[bytes], dst: bytes | None) -> Reply:
    ks = ctx.keyspace
    sets = _lookup_sets(ctx, keys)
    first = sets[0]
    same = first is not None and any(s is first for s in sets[1:])
    result: set[bytes] = IntSet()
    if first is not None and not same:
        others = [s for s in sets[1:] if s is not None]
        for member in _members(first):
            if not any(member in other for other in others):
                result, _ = _add(ks, result, member)
    if dst is None:
        return SetReply(_members(result))
    return _store(ctx, dst, result)


def _sunion(ctx: ExecContext, keys: list[bytes], dst: bytes | None) -> Reply:
    result = _union(ctx.keyspace, _lookup_sets(ctx, keys))
    if dst is None:
        return SetReply(_members(result))
    return _store(ctx, dst, result)


@spec("sinter", -2, "readonly", 1, -1, 1)
def sinter_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _inter(ctx, argv[1:], None)


@spec("sinterstore", -3, "write denyoom", 1, -1, 1)
def sinterstore_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _inter(ctx, argv[2:], argv[1])


@spec("sunion", -2, "readonly", 1, -1, 1)
def sunion_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _sunion(ctx, argv[1:], None)


@spec("sunionstore", -3, "write denyoom", 1, -1, 1)
def sunionstore_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _sunion(ctx, argv[2:], argv[1])


@spec("sdiff", -2, "readonly", 1, -1, 1)
def sdiff_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _diff(ctx, argv[1:], None)


@spec("sdiffstore", -3, "write denyoom", 1, -1, 1)
def sdiffstore_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _diff(ctx, argv[2:], argv[1])


@spec("sscan", -3, "readonly", 1, 1, 1)
def sscan_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    cursor = parse_cursor(argv[2])
    s = _read_set(ctx, argv[1])
    if s is None:
        return scan_reply(0, [])
    options = ScanOptions(argv, 3, keyspace_scan=False)
    if type(s) is IntSet:
        cursor, members = 0, _members(s)
    else:
        cursor, members = ctx.keyspace.scan_members(s, cursor, options.count)
    return scan_reply(cursor, [m for m in members if options.keep(m)])
