"""Retry policies, built in one place.

Only transport errors are retried (connection refused, reset, timeout while connecting);
Redis error replies never are, and neither is a non-idempotent step. The happy path does
not even import tenacity: the first attempt runs bare, and only when it fails with a
transport error is a tenacity ``Retrying`` built for the remaining attempts. Waits and
sleeps are injectable so tests never sleep.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` total tries; exponential wait from ``wait_initial`` capped at ``wait_max``."""

    attempts: int = 3
    wait_initial: float = 0.1
    wait_max: float = 1.0
    sleep: Callable[[float], None] | None = None  # None: time.sleep

    def call(self, fn: Callable[[], T], retry_on: tuple[type[BaseException], ...]) -> T:
        """Run ``fn``; on an exception in ``retry_on`` try again per the policy.

        >>> calls = []
        >>> def flaky():
        ...     calls.append(1)
        ...     if len(calls) < 3:
        ...         raise ConnectionError("refused")
        ...     return "ok"
        >>> RetryPolicy(attempts=3, sleep=lambda s: None).call(flaky, (ConnectionError,))
        'ok'
        >>> len(calls)
        3
        """
        if self.attempts <= 1:
            return fn()
        try:
            return fn()
        except retry_on:
            pass
        from tenacity import (
            Retrying,
            retry_if_exception_type,
            stop_after_attempt,
            wait_exponential,
        )

        kwargs: dict[str, object] = {}
        if self.sleep is not None:
            kwargs["sleep"] = self.sleep
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts - 1),
            wait=wait_exponential(multiplier=self.wait_initial, max=self.wait_max),
            retry=retry_if_exception_type(retry_on),
            reraise=True,
            **kwargs,  # type: ignore[arg-type]
        )
        return retrying(fn)


NO_RETRY = RetryPolicy(attempts=1)
CONNECT_RETRY = RetryPolicy(attempts=3, wait_initial=0.1, wait_max=0.5)
