"""List commands, blocking ones included (Redis 7.0 ``src/t_list.c`` and ``src/blocked.c``).

A blocking pop that finds data is propagated as the plain command (``LPOP k``,
``LMOVE s d left right``). One that finds none returns a :class:`Block`; when the node
calls it again with ``ctx.unblocking`` it is served like ``serveClientBlockedOnList()``:
the pop is propagated with ``also_propagate`` (``LPOP k``, or ``LMOVE s d left right``
with Redis's own lower-case direction words) and the blocked command itself is not.
"""

from __future__ import annotations

from collections import deque
from itertools import islice

from redisops.engine.command import (
    INDEX_OUT_OF_RANGE,
    NO_SUCH_KEY,
    SYNTAX,
    WRONGTYPE,
    Block,
    CommandError,
    ExecContext,
    spec,
    wrong_arity,
)
from redisops.engine.datacmds._common import block_deadline, get_ll, get_positive_long, opt
from redisops.engine.datacmds._num import LLONG_MIN
from redisops.engine.resp import NIL_ARRAY, OK, Reply

_LPOP = b"LPOP"
_RPOP = b"RPOP"
_LEFT = b"left"  # shared.left / shared.right are lower-case in Redis 7.0
_RIGHT = b"right"


def _read_list(ctx: ExecContext, key: bytes) -> deque[bytes] | None:
    value = ctx.keyspace.lookup_read(ctx, key)
    if value is None or type(value) is deque:
        return value
    raise CommandError(WRONGTYPE)


def _write_list(ctx: ExecContext, key: bytes) -> deque[bytes] | None:
    value = ctx.keyspace.lookup_write(ctx, key)
    if value is None or type(value) is deque:
        return value
    raise CommandError(WRONGTYPE)


def _removed(ctx: ExecContext, key: bytes, lst: deque[bytes], count: int) -> None:
    """``listElementsRemoved()``: delete the key once empty, touch, count the pops."""
    if not lst:
        ctx.keyspace.delete(ctx.db, key)
    ctx.touch(key)
    ctx.dirty += count


def _where(arg: bytes) -> bool:
    """LEFT -> True, RIGHT -> False (``getListPositionFromObjectOrReply()``)."""
    name = opt(arg)
    if name == b"left":
        return True
    if name == b"right":
        return False
    raise CommandError(SYNTAX)


# ----------------------------------------------------------------------------- push / pop


def _push(ctx: ExecContext, argv: list[bytes], left: bool, only_existing: bool) -> Reply:
    ks = ctx.keyspace
    key = argv[1]
    lst = _write_list(ctx, key)
    if lst is None:
        if only_existing:
            return 0
        lst = deque()
        ks.db_add(ctx, key, lst)
    if left:
        lst.extendleft(argv[2:])
    else:
        lst.extend(argv[2:])
    ctx.dirty += len(argv) - 2
    ctx.touch(key)
    return len(lst)


@spec("lpush", -3, "write denyoom fast", 1, 1, 1)
def lpush_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _push(ctx, argv, True, False)


@spec("rpush", -3, "write denyoom fast", 1, 1, 1)
def rpush_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _push(ctx, argv, False, False)


@spec("lpushx", -3, "write denyoom fast", 1, 1, 1)
def lpushx_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _push(ctx, argv, True, True)


@spec("rpushx", -3, "write denyoom fast", 1, 1, 1)
def rpushx_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _push(ctx, argv, False, True)


def _pop(ctx: ExecContext, argv: list[bytes], left: bool, name: str) -> Reply:
    """``popGenericCommand()``: one element as a bulk, or COUNT elements as an array."""
    if len(argv) > 3:
        raise wrong_arity(name)
    has_count = len(argv) == 3
    count = get_positive_long(argv[2]) if has_count else 0
    key = argv[1]
    lst = _write_list(ctx, key)
    if lst is None:
        return NIL_ARRAY if has_count else None
    if has_count and count == 0:
        return []
    take = lst.popleft if left else lst.pop
    if not has_count:
        value = take()
        _removed(ctx, key, lst, 1)
        return value
    n = min(count, len(lst))
    out: list[Reply] = [take() for _ in range(n)]
    _removed(ctx, key, lst, n)
    return out


@spec("lpop", -2, "write fast", 1, 1, 1)
def lpop_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _pop(ctx, argv, True, "lpop")


@spec("rpop", -2, "write fast", 1, 1, 1)
def rpop_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _pop(ctx, argv, False, "rpop")


# ----------------------------------------------------------------------------- access


@spec("llen", 2, "readonly fast", 1, 1, 1)
def llen_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    lst = _read_list(ctx, argv[1])
    return 0 if lst is None else len(lst)


def _range(size: int, start: int, end: int) -> tuple[int, int] | None:
    """Normalised inclusive [start, end] of LRANGE-style indexes, or None when empty."""
    if start < 0:
        start += size
    if end < 0:
        end += size
    start = max(start, 0)
    if start > end or start >= size:
        return None
    return start, min(end, size - 1)


@spec("lrange", 4, "readonly", 1, 1, 1)
def lrange_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    start = get_ll(argv[2])
    end = get_ll(argv[3])
    lst = _read_list(ctx, argv[1])
    if lst is None:
        return []
    span = _range(len(lst), start, end)
    if span is None:
        return []
    out: list[Reply] = list(islice(lst, span[0], span[1] + 1))
    return out


def _index(lst: deque[bytes], index: int) -> int | None:
    if index < 0:
        index += len(lst)
    return index if 0 <= index < len(lst) else None


@spec("lindex", 3, "readonly", 1, 1, 1)
def lindex_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    lst = _read_list(ctx, argv[1])
    if lst is None:
        return None
    index = _index(lst, get_ll(argv[2]))
    return None if index is None else lst[index]


@spec("lset", 4, "write denyoom", 1, 1, 1)
def lset_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    key = argv[1]
    lst = _write_list(ctx, key)
    if lst is None:
        raise CommandError(NO_SUCH_KEY)
    index = _index(lst, get_ll(argv[2]))
    if index is None:
        raise CommandError(INDEX_OUT_OF_RANGE)
    lst[index] = argv[3]
    ctx.touch(key)
    ctx.dirty += 1
    return OK


@spec("lrem", 4, "write", 1, 1, 1)
def lrem_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    to_remove = get_ll(argv[2])
    key, element = argv[1], argv[3]
    lst = _write_list(ctx, key)
    if lst is None:
        return 0
    items = list(lst) if to_remove >= 0 else list(reversed(lst))
    limit = abs(to_remove)
    kept: list[bytes] = []
    removed = 0
    for item in items:
        if item == element and (limit == 0 or removed < limit):
            removed += 1
        else:
            kept.append(item)
    if removed:
        lst.clear()
        lst.extend(kept if to_remove >= 0 else reversed(kept))
        ctx.touch(key)
        ctx.dirty += removed
    if not lst:
        ctx.keyspace.delete(ctx.db, key)
    return removed


@spec("ltrim", 4, "write", 1, 1, 1)
def ltrim_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    """Touches the key even when nothing is trimmed; propagated only if something was."""
    start = get_ll(argv[2])
    end = get_ll(argv[3])
    key = argv[1]
    lst = _write_list(ctx, key)
    if lst is None:
        return OK
    size = len(lst)
    span = _range(size, start, end)
    ltrim, rtrim = (size, 0) if span is None else (span[0], size - span[1] - 1)
    for _ in range(ltrim):
        lst.popleft()
    for _ in range(rtrim):
        lst.pop()
    if not lst:
        ctx.keyspace.delete(ctx.db, key)
    ctx.touch(key)
    ctx.dirty += ltrim + rtrim
    return OK


@spec("linsert", 5, "write denyoom", 1, 1, 1)
def linsert_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    where = opt(argv[2])
    if where not in (b"before", b"after"):
        raise CommandError(SYNTAX)
    key, pivot = argv[1], argv[3]
    lst = _write_list(ctx, key)
    if lst is None:
        return 0
    try:
        index = lst.index(pivot)
    except ValueError:
        return -1
    lst.insert(index if where == b"before" else index + 1, argv[4])
    ctx.touch(key)
    ctx.dirty += 1
    return len(lst)


@spec("lpos", -3, "readonly", 1, 1, 1)
def lpos_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    element = argv[2]
    rank, count, maxlen = 1, -1, 0
    j = 3
    while j < len(argv):
        name = opt(argv[j])
        more = j < len(argv) - 1
        if name == b"rank" and more:
            j += 1
            rank = get_ll(argv[j])
            if rank == 0:
                raise CommandError(
                    "ERR RANK can't be zero: use 1 to start from the first match, "
                    "2 from the second ... or use negative to start from the end of the list"
                )
        elif name == b"count" and more:
            j += 1
            count = get_positive_long(argv[j], "ERR COUNT can't be negative")
        elif name == b"maxlen" and more:
            j += 1
            maxlen = get_positive_long(argv[j], "ERR MAXLEN can't be negative")
        else:
            raise CommandError(SYNTAX)
        j += 1
    from_tail = rank < 0
    if from_tail and rank != LLONG_MIN:  # -LLONG_MIN overflows back to itself in C
        rank = -rank
    lst = _read_list(ctx, argv[1])
    if lst is None:
        return [] if count != -1 else None
    size = len(lst)
    found: list[Reply] = []
    matches = 0
    scan = reversed(lst) if from_tail else iter(lst)
    for index, item in enumerate(scan):
        if maxlen and index >= maxlen:
            break
        if item == element:
            matches += 1
            if matches >= rank:
                found.append(size - index - 1 if from_tail else index)
                if count == -1 or (count and matches - rank + 1 >= count):
                    break
    if count != -1:
        return found
    return found[0] if found else None


# ----------------------------------------------------------------------------- moves


def _move(ctx: ExecContext, src: bytes, dst: bytes, from_left: bool, to_left: bool) -> Reply:
    """``lmoveGenericCommand()``: pushes before deleting an emptied source."""
    ks = ctx.keyspace
    source = _write_list(ctx, src)
    if source is None:
        return None
    target = _write_list(ctx, dst)
    value = source.popleft() if from_left else source.pop()
    _push_moved(ctx, dst, target, value, to_left)
    if not source:
        ks.delete(ctx.db, src)
    ctx.touch(src)
    ctx.dirty += 1
    return value


def _push_moved(
    ctx: ExecContext, dst: bytes, target: deque[bytes] | None, value: bytes, to_left: bool
) -> None:
    """``lmoveHandlePush()``: create the destination list if needed, touch it, push."""
    if target is None:
        target = deque()
        ctx.keyspace.db_add(ctx, dst, target)
    ctx.touch(dst)
    if to_left:
        target.appendleft(value)
    else:
        target.append(value)


@spec("lmove", 5, "write denyoom", 1, 2, 1)
def lmove_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    from_left = _where(argv[3])
    to_left = _where(argv[4])
    return _move(ctx, argv[1], argv[2], from_left, to_left)


@spec("rpoplpush", 3, "write denyoom", 1, 2, 1)
def rpoplpush_command(ctx: ExecContext, argv: list[bytes]) -> Reply:
    return _move(ctx, argv[1], argv[2], False, True)


# ----------------------------------------------------------------------------- blocking


def _ready_list(ctx: ExecContext, keys: list[bytes]) -> tuple[bytes, deque[bytes]] | None:
    """The list a blocked client is served from: the signalled key, else the first ready."""
    lookup = ctx.keyspace.lookup_read_nostats
    for key in keys if ctx.unblock_key is None else [ctx.unblock_key]:
        value = lookup(ctx, key)
        if type(value) is deque and value:
            return key, value
    return None


def _blocking_pop(ctx: ExecContext, argv: list[bytes], left: bool) -> Reply | Block:
    keys = argv[1:-1]
    deadline = block_deadline(ctx, argv[-1])
    pop_name = _LPOP if left else _RPOP
    if ctx.unblocking:
        ready = _ready_list(ctx, keys)
        if ready is None:
            return Block(keys, deadline, NIL_ARRAY)
        key, lst = ready
        ctx.also_propagate([pop_name, key])
        ctx.prevent_propagation()
        value = lst.popleft() if left else lst.pop()
        if not lst:
            ctx.keyspace.delete(ctx.db, key)
        return [key, value]
    for key in keys:
        found = _write_list(ctx, key)
        if not found:
            continue
        value = found.popleft() if left else found.pop()
        _removed(ctx, key, found, 1)
        ctx.rewrite([pop_name, key])
        return [key, value]
    if ctx.in_multi:
        return NIL_ARRAY
    return Block(keys, deadline, NIL_ARRAY)


@spec("blpop", -3, "write noscript blocking", 1, -2, 1)
def blpop_command(ctx: ExecContext, argv: list[bytes]) -> Reply | Block:
    return _blocking_pop(ctx, argv, True)


@spec("brpop", -3, "write noscript blocking", 1, -2, 1)
def brpop_command(ctx: ExecContext, argv: list[bytes]) -> Reply | Block:
    return _blocking_pop(ctx, argv, False)


def _blocking_move(
    ctx: ExecContext, argv: list[bytes], from_left: bool, to_left: bool, deadline: int
) -> Reply | Block:
    src, dst = argv[1], argv[2]
    is_blmove = len(argv) == 6
    if ctx.unblocking:
        ready = _ready_list(ctx, [src])
        if ready is None:
            return Block([src], deadline, NIL_ARRAY)
        source = ready[1]
        target = _write_list(ctx, dst)
        value = source.popleft() if from_left else source.pop()
        _push_moved(ctx, dst, target, value, to_left)
        if is_blmove:
            ctx.also_propagate(
                [b"LMOVE", src, dst, _LEFT if from_left else _RIGHT, _LEFT if to_left else _RIGHT]
            )
        else:
            ctx.also_propagate([b"RPOPLPUSH", src, dst])
        ctx.prevent_propagation()
        if not source:
            ctx.keyspace.delete(ctx.db, src)
        return value
    if _write_list(ctx, src) is None:
        if ctx.in_multi:
            return None
        return Block([src], deadline, NIL_ARRAY)
    moved = _move(ctx, src, dst, from_left, to_left)
    if is_blmove:
        ctx.rewrite([b"LMOVE", *argv[1:5]])
    else:
        ctx.rewrite([b"RPOPLPUSH", src, dst])
    return moved


@spec("blmove", 6, "write denyoom noscript blocking", 1, 2, 1)
def blmove_command(ctx: ExecContext, argv: list[bytes]) -> Reply | Block:
    from_left = _where(argv[3])
    to_left = _where(argv[4])
    deadline = block_deadline(ctx, argv[5])
    return _blocking_move(ctx, argv, from_left, to_left, deadline)


@spec("brpoplpush", 4, "write denyoom noscript blocking", 1, 2, 1)
def brpoplpush_command(ctx: ExecContext, argv: list[bytes]) -> Reply | Block:
    deadline = block_deadline(ctx, argv[3])
    return _blocking_move(ctx, argv, False, True, deadline)
