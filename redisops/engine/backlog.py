"""The replication backlog as Redis 7.0 stores it: a list of shared buffer blocks.

Redis 7.0 keeps one list of blocks shared by the backlog and every replica's output
buffer (``src/replication.c: feedReplicationBuffer()``, ``incrementalTrimReplicationBacklog()``).
Block sizes and trimming decide ``repl_backlog_histlen`` once more than
``repl-backlog-size`` bytes have been written, so this module reproduces them: a new block
gets ``min(max(len, 16 KB), max(size / 16, 16 KB))`` bytes rounded up to jemalloc's size
class (the "allocator slack" Redis takes over), and trimming drops whole head blocks only,
only when no replica still references the head, and only while what remains stays above
``repl-backlog-size``.

>>> b = Backlog(size=1_048_576, start_offset=0)
>>> b.feed(b"x" * 54)
True
>>> b.first, b.histlen, b.end
(1, 54, 54)
>>> b.read_from(53)
b'xx'
>>> b.covers(55), b.covers(56)
(True, False)
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter

PROTO_REPLY_CHUNK_BYTES = 16 * 1024
MIN_BACKLOG_SIZE = 16 * 1024
BLOCK_HEADER = 40  # sizeof(replBufBlock) on 64-bit
LIST_NODE = 24  # sizeof(listNode)


def jemalloc_usable(size: int) -> int:
    """jemalloc's size class for an allocation of ``size`` bytes (64-bit, default config).

    >>> jemalloc_usable(16384 + 40), jemalloc_usable(65536 + 40), jemalloc_usable(100)
    (20480, 81920, 112)
    """
    if size <= 8:
        return 8
    if size <= 128:
        return (size + 15) // 16 * 16
    # four classes per power of two
    p = 1 << (size - 1).bit_length()  # next power of two >= size
    step = p // 8  # classes in (p/2, p] are spaced p/8
    return (size + step - 1) // step * step


@dataclass
class Block:
    """One replication buffer block: the stream bytes from offset ``start`` on."""

    id: int
    start: int  # offset of buf[0]
    size: int  # usable capacity (after allocator slack)
    buf: bytearray

    @property
    def used(self) -> int:
        return len(self.buf)


_block_start = attrgetter("start")


class Backlog:
    """Replication backlog over shared blocks.

    Offsets are Redis's: the first byte ever produced is offset 1. A backlog created when
    ``master_repl_offset`` is ``O`` is empty with ``first = O + 1``.
    """

    def __init__(self, size: int, start_offset: int) -> None:
        self.size = max(size, MIN_BACKLOG_SIZE)
        self.blocks: list[Block] = []
        self._head = 0  # index of the first live block in self.blocks
        self.histlen = 0
        self.end = start_offset  # offset of the last byte fed (== master_repl_offset)
        self._next_id = 0
        # the tail block's buffer and free capacity: most feeds only append there
        self._tail_buf = bytearray()
        self._tail_free = 0

    # ------------------------------------------------------------------ geometry
    @property
    def first(self) -> int:
        """Offset of the oldest byte held (``repl_backlog_first_byte_offset``)."""
        return self.end - self.histlen + 1

    def covers(self, offset: int) -> bool:
        """Whether a replica asking for ``offset`` (its next wanted byte) can continue here."""
        return self.first <= offset <= self.end + 1

    def rebase(self, delta: int) -> None:
        """Shift every offset by ``delta``: a master restarting from an RDB with replication
        info continues the numbering (``master_repl_offset += repl-offset``, §4.4)."""
        self.end += delta
        for block in self.blocks:
            block.start += delta

    def resize(self, size: int) -> None:
        self.size = max(size, MIN_BACKLOG_SIZE)

    # ------------------------------------------------------------------ writing
    def feed(self, data: bytes, pins: Callable[[], list[int]] | None = None) -> bool:
        """Append stream bytes; returns True when a new block was allocated.

        ``pins()`` gives the offsets replicas still need (their output buffers reference
        the blocks holding them); trimming never drops those blocks. It is called only when
        a trim is due.
        """
        n = len(data)
        free = self._tail_free
        if n <= free:  # fits in the tail block (the usual case)
            self._tail_free = free - n
            self._tail_buf += data
            self.end += n
            self.histlen += n
            return False
        return self.feed_pieces(data, [n], pins)

    def feed_pieces(
        self, data: bytes, lens: list[int], pins: Callable[[], list[int]] | None = None
    ) -> bool:
        """Append several writes at once (``data`` is their concatenation, ``lens`` their
        lengths), with exactly the blocks and trims feeding them one by one would give:
        a write that overflows the tail fills it, gets new blocks sized for that write,
        and triggers a trim that sees the history up to its end. Returns True when a new
        block was allocated."""
        n = len(data)
        free = self._tail_free
        if n <= free:  # all of them fit in the tail (the usual case)
            self._tail_free = free - n
            self._tail_buf += data
            self.end += n
            self.histlen += n
            return False
        blocks = self.blocks
        limit = max(self.size // 16, PROTO_REPLY_CHUNK_BYTES)
        copied = 0  # bytes of data already in blocks
        at = 0  # where the current write starts in data
        allocated = False
        for ln in lens:
            piece_end = at + ln
            if ln <= free:
                free -= ln
                at = piece_end
                continue
            fill = at + free  # the tail takes what fits, earlier writes included
            if fill > copied:
                self._tail_buf += data[copied:fill]
                self.end += fill - copied
                self.histlen += fill - copied
                copied = fill
            start = self.end + 1  # offset of data[copied]
            self.end += piece_end - copied
            self.histlen += piece_end - copied
            while copied < piece_end:
                remaining = piece_end - copied
                want = min(max(remaining, PROTO_REPLY_CHUNK_BYTES), limit)
                capacity = jemalloc_usable(want + BLOCK_HEADER) - BLOCK_HEADER
                take = min(capacity, remaining)
                blocks.append(
                    Block(self._next_id, start, capacity, bytearray(data[copied : copied + take]))
                )
                self._next_id += 1
                start += take
                copied += take
            tail = blocks[-1]
            self._tail_buf = tail.buf
            free = tail.size - len(tail.buf)
            allocated = True
            self.trim(pins)
            at = piece_end
        if copied < n:  # the writes after the last new block sit in the tail
            self._tail_buf += data[copied:]
            self.end += n - copied
            self.histlen += n - copied
        self._tail_free = free
        return allocated

    def trim(self, pins: Callable[[], list[int]] | None = None, max_blocks: int = 10) -> None:
        """``incrementalTrimReplicationBacklog()``: drop whole head blocks while safe."""
        if self.histlen <= self.size:
            return
        blocks = self.blocks
        trimmed = 0
        pinned = pins() if pins is not None else None
        lowest_pin = min(pinned) if pinned else None
        while self.histlen > self.size and trimmed < max_blocks:
            if len(blocks) - self._head <= 1:
                break
            head = blocks[self._head]
            if lowest_pin is not None and lowest_pin <= head.start + head.size - 1:
                break  # a replica still references the head block
            if self.histlen - head.size <= self.size:
                break
            self.histlen -= head.size
            self._head += 1
            trimmed += 1
        if self._head > 64:
            del blocks[: self._head]
            self._head = 0

    # ------------------------------------------------------------------ reading
    def read_from(self, offset: int) -> bytes:
        """Every byte from ``offset`` to the end (``addReplyReplicationBacklog()``)."""
        if offset > self.end:
            return b""
        if offset < self.first:
            raise ValueError(f"offset {offset} is before the backlog start {self.first}")
        parts: list[bytes] = []
        for block in self.blocks[self._head :]:
            block_end = block.start + len(block.buf) - 1
            if block_end < offset:
                continue
            skip = max(offset - block.start, 0)
            parts.append(bytes(block.buf[skip:]))
        return b"".join(parts)

    def live_blocks(self) -> list[Block]:
        return self.blocks[self._head :]

    def buffer_usage_from(self, offset: int) -> int:
        """Output-buffer memory a replica needing ``offset`` onwards holds, as Redis counts it
        (``getClientOutputBufferMemoryUsage()`` for replicas): bytes from the start of the
        block holding ``offset`` to the end of the tail block's capacity, plus per-block
        overhead. Zero when the replica needs nothing."""
        blocks = self.blocks
        if len(blocks) <= self._head or offset > self.end:
            return 0
        i = bisect_right(blocks, offset, lo=self._head, key=_block_start) - 1
        cur = blocks[max(i, self._head)]
        last = blocks[-1]
        size = last.start + last.size - cur.start
        nodes = last.id - cur.id + 1
        return size + nodes * (LIST_NODE + BLOCK_HEADER)

    @property
    def memory(self) -> int:
        """``mem_total_replication_buffers``-style figure for the live blocks."""
        return sum(b.size + LIST_NODE + BLOCK_HEADER for b in self.live_blocks())
