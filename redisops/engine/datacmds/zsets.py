"""Sorted-set commands (Redis 7.0 ``src/t_zset.c``).

Scores are doubles; replies print them with ``%.17g``. Lexicographic ranges follow the
listpack walk (first member ``>= min`` from the head, stop at the first ``> max``), which
is also the skiplist's answer whenever members share one score, the only case where
BYLEX is meaningful.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from redisops.engine.command import (
    NOT_FLOAT,
    SYNTAX,
    WRONGTYPE,
    Block,
    CommandError,
    ExecContext,
    spec,
)
from redisops.engine.datacmds._common import (
    ScanOptions,
    block_deadline,
    get_ll,
    get_positive_long,
    opt,
    parse_cursor,
    scan_reply,
)
from redisops.engine.datacmds._num import d2string, string2d, strtod_full
from redisops.engine.keyspace import ZSet
from redisops.engine.resp import NIL_ARRAY, PairsReply, Reply


def _read_zset(ctx: ExecContext, key: bytes) -> ZSet | None:
    value = ctx.keyspace.lookup_read(ctx, key)
    if value is None or type(value) is ZSet:
        return value
    raise CommandError(WRONGTYPE)


def _write_zset(ctx: ExecContext, key: bytes) -> ZSet | None:
    value = ctx.keyspace.lookup_write(ctx, key)
    if value is None or type(value) is ZSet:
        return value
    raise CommandError(WRONGTYPE)


# ----------------------------------------------------------------------------- ZADD

_NX, _XX, _GT, _LT, _INCR = 1, 2, 4, 8, 16
_ZADD_FLAGS = {b"nx": _NX, b"xx": _XX, b"gt": _GT, b"lt": _LT, b"incr": _INCR}


def _zadd_generic(ctx: ExecContext, argv: list[bytes], flags: int) -> Reply:
    """``zaddGenericCommand()`` (ZADD, and ZINCRBY with ``_INCR``)."""
    ch = False
    idx = 2
    while idx < len(argv):
        name = opt(argv[idx])
        if name == b"ch":
            ch = True
        elif name in _ZADD_FLAGS:
            flags |= _ZADD_FLAGS[name]
        else:
            break
        idx += 1
    elements = len(argv) - idx
    if elements % 2 or not elements:
        raise CommandError(SYNTAX)
    if flags & _NX and flags & _XX:
        raise CommandError("ERR XX and NX options at the same time are not compatible")
    if (flags & (_GT | _LT) and flags & _NX) or (flags & _GT and flags & _LT):
        raise CommandError("ERR GT, LT, and/or NX options at the same time are not compatible")
    if flags & _INCR and elements > 2:
        raise CommandError("ERR INCR option supports a single increment-element pair")
    scores: list[float] = []
    for j in range(idx, len(argv), 2):
        score = string2d(argv[j])
        if score is None:
            raise CommandError(NOT_FLOAT)
        scores.append(score)
    ks = ctx.keyspace
    key = argv[1]
    z = _write_zset(ctx, key)
    added = updated = processed = 0
    score = 0.0
    try:
        if z is None:
            if flags & _XX:
                return _zadd_reply(flags, ch, 0, 0, 0, score)
            first = argv[idx + 1]
            z = ZSet(
                listpack=ks.zset_max_listpack_entries != 0
                and len(first) <= ks.zset_max_listpack_value
            )
            ks.db_add(ctx, key, z)
        for n, j in enumerate(range(idx + 1, len(argv), 2)):
            outcome, score = _zset_add(ctx, z, scores[n], argv[j], flags)
            if outcome == "added":
                added += 1
            elif outcome == "updated":
                updated += 1
            if outcome != "nop":
                processed += 1
        ctx.dirty += added + updated
        return _zadd_reply(flags, ch, added, updated, processed, score)
    finally:
        if added or updated:
            ctx.touch(key)


def _zadd_reply(
    flags: int, ch: bool, added: int, updated: int, processed: int, score: float
) -> Reply:
    if flags & _INCR:
        return score if processed else None
    return added + updated if ch else added


def _zset_add(
    ctx: ExecContext, z: ZSet, score: float, member: bytes, flags: int
) -> tuple[str, float]:
    """``zsetAdd()``: ("added" | "updated" | "same" | "nop", resulting score)."""
    current = z.scores.get(member)
    if current is not None:
        if flags & _NX:
            return "nop", score
        if flags & _INCR:
            score += current
            if math.isnan(score):
                raise CommandError("ERR resulting score is not a number (NaN)")
        if (flags & _LT and score >= current) or (flags & _GT and score <= current):
            return "nop", score
        if score != current:
            z.update(member, current, score)
            return "updated", score
        return "same", score
    if flags & _XX:
        return "nop", score
    ks = ctx.keyspace
    if z.listpack and (
        len(z) + 1 > ks.zset_max_listpack_entries or len(member) > ks.zset_max_listpack_value
    ):
        z.listpack = False
    z.add(member, score)
    return "added", score


@spec("zadd", -4, "write denyoom fast", 1, 1, 1)
def zadd_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _zadd_generic(ctx, argv, 0)


@spec("zincrby", 4, "write denyoom fast", 1, 1, 1)
def zincrby_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _zadd_generic(ctx, argv, _INCR)


@spec("zrem", -3, "write fast", 1, 1, 1)
def zrem_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    key = argv[1]
    z = _write_zset(ctx, key)
    if z is None:
        return 0
    deleted = 0
    for member in argv[2:]:
        deleted += z.remove(member)
        if not z:
            ctx.keyspace.delete(ctx.db, key)
            break
    if deleted:
        ctx.touch(key)
        ctx.dirty += deleted
    return deleted


# ----------------------------------------------------------------------------- reads


@spec("zscore", 3, "readonly fast", 1, 1, 1)
def zscore_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    z = _read_zset(ctx, argv[1])
    return None if z is None else z.scores.get(argv[2])  # a float: a double reply


@spec("zmscore", -3, "readonly fast", 1, 1, 1)
def zmscore_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    z = _read_zset(ctx, argv[1])
    out: list[Reply] = []
    for member in argv[2:]:
        score = None if z is None else z.scores.get(member)
        out.append(score)
    return out


@spec("zcard", 2, "readonly fast", 1, 1, 1)
def zcard_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    z = _read_zset(ctx, argv[1])
    return 0 if z is None else len(z)


class _ScoreRange:
    """``zrangespec``: ``(`` prefix = exclusive; parsed with ``strtod()`` like Redis."""

    __slots__ = ("max", "maxex", "min", "minex")

    def __init__(self, low: bytes, high: bytes) -> None:
        self.min, self.minex = self._parse(low)
        self.max, self.maxex = self._parse(high)

    @staticmethod
    def _parse(arg: bytes) -> tuple[float, bool]:
        exclusive = arg[:1] == b"("
        value = strtod_full(arg[1:] if exclusive else arg)
        if value is None:
            raise CommandError("ERR min or max is not a float")
        return value, exclusive

    def bounds(self, z: ZSet) -> tuple[int, int]:
        """[start, end) indexes of ``z.order`` in range."""
        return (
            z.first_in_score_range(self.min, self.minex),
            z.end_of_score_range(self.max, self.maxex),
        )


@spec("zcount", 4, "readonly fast", 1, 1, 1)
def zcount_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    spec_range = _ScoreRange(argv[2], argv[3])
    z = _read_zset(ctx, argv[1])
    if z is None:
        return 0
    start, end = spec_range.bounds(z)
    return max(end - start, 0)


class _LexRange:
    """``zlexrangespec``: ``[x`` / ``(x`` bounds, ``-`` and ``+`` the extremes."""

    __slots__ = ("max", "maxex", "min", "minex")

    def __init__(self, low: bytes, high: bytes) -> None:
        self.min, self.minex = self._parse(low)
        self.max, self.maxex = self._parse(high)

    @staticmethod
    def _parse(arg: bytes) -> tuple[bytes | int, bool]:
        """A bound: bytes, or -1 / +1 for ``-`` / ``+``."""
        head = arg[:1]
        if head in (b"+", b"-") and (len(arg) == 1 or arg[1] == 0):
            return (1 if head == b"+" else -1), True
        if head == b"(":
            return arg[1:], True
        if head == b"[":
            return arg[1:], False
        raise CommandError("ERR min or max not valid string range item")

    @staticmethod
    def _cmp(a: bytes | int, b: bytes | int) -> int:
        """``sdscmplex()``: -1 is below everything, +1 above."""
        if a is b or (isinstance(a, int) and a == b):
            return 0
        if a == -1 or b == 1:
            return -1
        if a == 1 or b == -1:
            return 1
        assert isinstance(a, bytes) and isinstance(b, bytes)
        return (a > b) - (a < b)

    def gte_min(self, member: bytes) -> bool:
        c = self._cmp(member, self.min)
        return c > 0 if self.minex else c >= 0

    def lte_max(self, member: bytes) -> bool:
        c = self._cmp(member, self.max)
        return c < 0 if self.maxex else c <= 0

    def in_range(self, z: ZSet) -> bool:
        """``zzlIsInLexRange()``: a quick "nothing can match" test."""
        c = self._cmp(self.min, self.max)
        if c > 0 or (c == 0 and (self.minex or self.maxex)):
            return False
        return bool(z.order) and self.gte_min(z.order[-1][1]) and self.lte_max(z.order[0][1])


def _lex_first(z: ZSet, lex: _LexRange, reverse: bool) -> int | None:
    """``zzlFirstInLexRange()`` / ``zzlLastInLexRange()``: a walk from the head (tail)."""
    if not lex.in_range(z):
        return None
    order = z.order
    indexes = range(len(order) - 1, -1, -1) if reverse else range(len(order))
    for i in indexes:
        member = order[i][1]
        if reverse and lex.lte_max(member):
            return i if lex.gte_min(member) else None
        if not reverse and lex.gte_min(member):
            return i if lex.lte_max(member) else None
    return None


def _walk(
    size: int,
    first: int | None,
    reverse: bool,
    offset: int,
    limit: int,
    in_range: Callable[[int], bool],
) -> list[int]:
    """The C loops of Z[REV]RANGEBYSCORE/BYLEX: from the first element in range skip
    ``offset`` elements unchecked, then take up to ``limit`` (negative: all) while the
    far bound holds. A negative offset walks off the end (nothing is returned)."""
    if first is None or offset < 0:
        return []
    step = -1 if reverse else 1
    i = first + step * offset
    out: list[int] = []
    while 0 <= i < size and limit != 0 and in_range(i):
        out.append(i)
        i += step
        limit -= 1
    return out


_RANK, _SCORE, _LEX = "rank", "score", "lex"


def _zrange_generic(
    ctx: ExecContext, argv: list[bytes], rangetype: str | None, reverse: bool | None
) -> Reply:
    """``zrangeGenericCommand()`` for ZRANGE, ZREVRANGE, Z[REV]RANGEBYSCORE."""
    withscores = False
    offset, limit = 0, -1
    j = 4
    while j < len(argv):
        name = opt(argv[j])
        left = len(argv) - j - 1
        if name == b"withscores":
            withscores = True
        elif name == b"limit" and left >= 2:
            offset = get_ll(argv[j + 1])
            limit = get_ll(argv[j + 2])
            j += 2
        elif reverse is None and name == b"rev":
            reverse = True
        elif rangetype is None and name == b"bylex":
            rangetype = _LEX
        elif rangetype is None and name == b"byscore":
            rangetype = _SCORE
        else:
            raise CommandError(SYNTAX)
        j += 1
    reverse = bool(reverse)
    rangetype = rangetype or _RANK
    if limit != -1 and rangetype == _RANK:
        raise CommandError(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
        )
    if withscores and rangetype == _LEX:
        raise CommandError("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
    low, high = (argv[3], argv[2]) if reverse and rangetype != _RANK else (argv[2], argv[3])
    start = end = 0
    score_range: _ScoreRange | None = None
    lex_range: _LexRange | None = None
    if rangetype == _RANK:
        start = get_ll(low)
        end = get_ll(high)
    elif rangetype == _SCORE:
        score_range = _ScoreRange(low, high)
    else:
        lex_range = _LexRange(low, high)
    z = _read_zset(ctx, argv[1])
    if z is None:
        return []
    order = z.order
    if score_range is not None:
        low_i, stop = score_range.bounds(z)
        first = None if low_i >= stop else (stop - 1 if reverse else low_i)
        indexes = _walk(
            len(order),
            first,
            reverse,
            offset,
            limit,
            (lambda i: i >= low_i) if reverse else (lambda i: i < stop),
        )
    elif lex_range is not None:
        lex = lex_range
        indexes = _walk(
            len(order),
            _lex_first(z, lex, reverse),
            reverse,
            offset,
            limit,
            (lambda i: lex.gte_min(order[i][1]))
            if reverse
            else (lambda i: lex.lte_max(order[i][1])),
        )
    else:
        size = len(order)
        if start < 0:
            start += size
        if end < 0:
            end += size
        start = max(start, 0)
        if start > end or start >= size:
            return []
        end = min(end, size - 1)
        if reverse:
            indexes = list(range(size - 1 - start, size - 2 - end, -1))
        else:
            indexes = list(range(start, end + 1))
    if not withscores:
        members: list[Reply] = [order[i][1] for i in indexes]
        return members
    out = PairsReply()  # RESP3: [member, score] pairs
    for i in indexes:
        score, member = order[i]
        out.append(member)
        out.append(score)
    return out


@spec("zrange", -4, "readonly", 1, 1, 1)
def zrange_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _zrange_generic(ctx, argv, None, None)


@spec("zrevrange", -4, "readonly", 1, 1, 1)
def zrevrange_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _zrange_generic(ctx, argv, _RANK, True)


@spec("zrangebyscore", -4, "readonly", 1, 1, 1)
def zrangebyscore_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _zrange_generic(ctx, argv, _SCORE, False)


@spec("zrevrangebyscore", -4, "readonly", 1, 1, 1)
def zrevrangebyscore_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _zrange_generic(ctx, argv, _SCORE, True)


def _rank(ctx: ExecContext, argv: list[bytes], reverse: bool) -> Reply:
    z = _read_zset(ctx, argv[1])
    if z is None:
        return None
    rank = z.rank(argv[2])
    if rank is None:
        return None
    return len(z) - 1 - rank if reverse else rank


@spec("zrank", 3, "readonly fast", 1, 1, 1)
def zrank_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _rank(ctx, argv, False)


@spec("zrevrank", 3, "readonly fast", 1, 1, 1)
def zrevrank_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _rank(ctx, argv, True)


# ----------------------------------------------------------------------------- pops


def _pop(ctx: ExecContext, key: bytes, z: ZSet, count: int, maximum: bool) -> PairsReply:
    """``genericZpopCommand()`` core: member/score pairs; deletes an emptied key."""
    out = PairsReply()
    for n in range(min(count, len(z))):
        score, member = z.order[-1] if maximum else z.order[0]
        z.remove(member)
        ctx.dirty += 1
        if n == 0:
            ctx.touch(key)
        out.append(member)
        out.append(score)
    if not z:
        ctx.keyspace.delete(ctx.db, key)
    return out


def _zpop(ctx: ExecContext, argv: list[bytes], maximum: bool) -> Reply:
    """With a count, RESP3 gets [member, score] pairs; without, one flat pair."""
    if len(argv) > 3:
        raise CommandError(SYNTAX)
    count = get_positive_long(argv[2]) if len(argv) == 3 else 1
    key = argv[1]
    z = _write_zset(ctx, key)
    if z is None or count == 0:
        return []
    popped = _pop(ctx, key, z, count, maximum)
    return popped if len(argv) == 3 else list(popped)


@spec("zpopmin", -2, "write fast", 1, 1, 1)
def zpopmin_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _zpop(ctx, argv, False)


@spec("zpopmax", -2, "write fast", 1, 1, 1)
def zpopmax_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _zpop(ctx, argv, True)


def _blocking_zpop(ctx: ExecContext, argv: list[bytes], maximum: bool) -> Reply | Block:
    """BZPOPMIN/BZPOPMAX: propagated as ``ZPOPMIN k`` / ``ZPOPMAX k``."""
    keys = argv[1:-1]
    deadline = block_deadline(ctx, argv[-1])
    pop_name = b"ZPOPMAX" if maximum else b"ZPOPMIN"
    if ctx.unblocking:
        lookup = ctx.keyspace.lookup_read_nostats
        for key in keys if ctx.unblock_key is None else [ctx.unblock_key]:
            if type(lookup(ctx, key)) is not ZSet:
                continue
            z = _write_zset(ctx, key)  # genericZpopCommand() looks it up again
            if not z:
                continue
            reply = [key, *_pop(ctx, key, z, 1, maximum)]
            ctx.also_propagate([pop_name, key])
            ctx.prevent_propagation()
            return reply
        return Block(keys, deadline, NIL_ARRAY)
    for key in keys:
        z = _write_zset(ctx, key)
        if not z:
            continue
        reply = [key, *_pop(ctx, key, z, 1, maximum)]
        ctx.rewrite([pop_name, key])
        return reply
    if ctx.in_multi:
        return NIL_ARRAY
    return Block(keys, deadline, NIL_ARRAY)


@spec("bzpopmin", -3, "write noscript blocking fast", 1, -2, 1)
def bzpopmin_command(ctx: ExecContext, argv: list[bytes]) -> Reply | Block:
    return _blocking_zpop(ctx, argv, False)


@spec("bzpopmax", -3, "write noscript blocking fast", 1, -2, 1)
def bzpopmax_command(ctx: ExecContext, argv: list[bytes]) -> Reply | Block:
    return _blocking_zpop(ctx, argv, True)


# ----------------------------------------------------------------------------- removal


def _remove_indexes(ctx: ExecContext, key: bytes, z: ZSet, start: int, stop: int) -> int:
    """Remove ``z.order[start:stop]``; touch and count, delete the key once empty."""
    doomed = z.order[start:stop]
    if not doomed:
        return 0
    del z.order[start:stop]
    for _, member in doomed:
        del z.scores[member]
    if not z:
        ctx.keyspace.delete(ctx.db, key)
    ctx.touch(key)
    ctx.dirty += len(doomed)
    return len(doomed)


@spec("zremrangebyscore", 4, "write", 1, 1, 1)
def zremrangebyscore_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    score_range = _ScoreRange(argv[2], argv[3])
    key = argv[1]
    z = _write_zset(ctx, key)
    if z is None:
        return 0
    start, stop = score_range.bounds(z)
    return _remove_indexes(ctx, key, z, start, stop)


@spec("zremrangebyrank", 4, "write", 1, 1, 1)
def zremrangebyrank_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    start = get_ll(argv[2])
    end = get_ll(argv[3])
    key = argv[1]
    z = _write_zset(ctx, key)
    if z is None:
        return 0
    size = len(z)
    if start < 0:
        start += size
    if end < 0:
        end += size
    start = max(start, 0)
    if start > end or start >= size:
        return 0
    return _remove_indexes(ctx, key, z, start, min(end, size - 1) + 1)


@spec("zscan", -3, "readonly", 1, 1, 1)
def zscan_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    """Listpack sorted sets return everything at once with scores as stored (``d2string``)."""
    cursor = parse_cursor(argv[2])
    z = _read_zset(ctx, argv[1])
    if z is None:
        return scan_reply(0, [])
    options = ScanOptions(argv, 3, keyspace_scan=False)
    out: list[bytes] = []
    if z.listpack:
        for score, member in z.order:
            if options.keep(member):
                out.append(member)
                out.append(d2string(score))
        return scan_reply(0, out)
    cursor, members = ctx.keyspace.scan_members(z.scores, cursor, options.count)
    for member in members:
        if options.keep(member):
            out.append(member)
            out.append(b"%.17g" % z.scores[member])
    return scan_reply(cursor, out)
