"""Time for the engine: a virtual clock for simulation, the wall clock for the lab.

Both are driven through one :class:`Scheduler` (a timer heap). In a simulation the
scheduler *is* the event loop: ``run_for(ms)`` pops timers in order and moves the virtual
clock to each one, so a minute of replication runs in milliseconds and always the same
way. In the lab, the RESP server's select loop asks ``next_deadline()`` for its timeout
and calls ``run_due()`` after each wake-up; time is real.

>>> s = Scheduler(VirtualClock(1_000))
>>> seen = []
>>> _ = s.call_later(50, lambda: seen.append(s.clock.now_ms()))
>>> _ = s.call_later(10, lambda: seen.append(s.clock.now_ms()))
>>> _ = s.run_for(100)
>>> seen, s.clock.now_ms()
([1010, 1050], 1100)
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable


class Clock:
    """Milliseconds since the Unix epoch (Redis's ``mstime()``)."""

    def now_ms(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def now_us(self) -> int:
        return self.now_ms() * 1000


class WallClock(Clock):
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def now_us(self) -> int:
        return time.time_ns() // 1000


class VirtualClock(Clock):
    """A clock that moves only when told to (by the scheduler)."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def set(self, ms: int) -> None:
        self._now = max(self._now, ms)


class Timer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: int, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Scheduler:
    """A timer heap over a clock, plus a queue of "soon" callbacks (run before timers)."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or VirtualClock()
        self._heap: list[tuple[int, int, Timer]] = []
        self._seq = itertools.count()
        self._soon: list[Callable[[], None]] = []

    @property
    def virtual(self) -> bool:
        return isinstance(self.clock, VirtualClock)

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def call_at(self, when_ms: int, callback: Callable[[], None]) -> Timer:
        timer = Timer(when_ms, callback)
        heapq.heappush(self._heap, (when_ms, next(self._seq), timer))
        return timer

    def call_later(self, delay_ms: float, callback: Callable[[], None]) -> Timer:
        return self.call_at(self.clock.now_ms() + max(int(delay_ms), 0), callback)

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run after the current event, before any timer (Redis's ``beforeSleep``)."""
        self._soon.append(callback)

    def next_deadline(self) -> int | None:
        if self._soon:
            return self.clock.now_ms()
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def run_soon(self) -> None:
        while self._soon:
            batch, self._soon = self._soon, []
            for cb in batch:
                cb()

    def run_due(self) -> int:
        """Run every callback due now (wall-clock mode). Returns how many ran."""
        ran = 0
        self.run_soon()
        now = self.clock.now_ms()
        while self._heap and self._heap[0][0] <= now:
            _, _, timer = heapq.heappop(self._heap)
            if timer.cancelled:
                continue
            timer.callback()
            ran += 1
            self.run_soon()
        return ran

    def run_until(self, deadline_ms: int, stop: Callable[[], bool] | None = None) -> bool:
        """Virtual mode: advance time event by event up to ``deadline_ms``.

        Stops early (returning True) as soon as ``stop()`` is true after an event.
        """
        clock = self.clock
        assert isinstance(clock, VirtualClock), "run_until needs a VirtualClock"
        self.run_soon()
        if stop is not None and stop():
            return True
        while self._heap:
            when, _, timer = self._heap[0]
            if when > deadline_ms:
                break
            heapq.heappop(self._heap)
            if timer.cancelled:
                continue
            clock.set(when)
            timer.callback()
            self.run_soon()
            if stop is not None and stop():
                return True
        clock.set(deadline_ms)
        return False

    def run_for(self, ms: int, stop: Callable[[], bool] | None = None) -> bool:
        return self.run_until(self.clock.now_ms() + ms, stop)
