"""A client that writes ``SET k<i> i`` in a loop while an operation changes the master.

It records every acknowledged write, follows the master (on an error it asks every known
node for ``ROLE`` and moves to the one that says ``master``), and afterwards tells which
acknowledged keys are missing on the final master and the longest gap between two
acknowledgements (the write-unavailability window a client saw).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.harness import wait_until


def _client(port: int, timeout: float) -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=1.0,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )


def master_port(ports: Sequence[int], timeout: float = 1.0) -> int | None:
    """The one node of ``ports`` whose ROLE is master (None if none or several)."""
    masters = []
    for port in ports:
        try:
            if _client(port, timeout).execute_command("ROLE")[0] == "master":
                masters.append(port)
        except (redis.RedisError, OSError, IndexError):
            continue
    return masters[0] if len(masters) == 1 else None


class Writer:
    """Background ``SET k<i> i`` loop; use as a context manager around the operation."""

    def __init__(self, ports: Sequence[int], *, socket_timeout: float = 10.0) -> None:
        self.ports = list(ports)
        self.socket_timeout = socket_timeout
        self.acked: list[tuple[float, int]] = []
        self.errors: list[tuple[float, str]] = []
        self.ports_written: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="writer")

    def _run(self) -> None:
        i = 0
        port = master_port(self.ports) or self.ports[0]
        self.ports_written.append(port)
        client = _client(port, self.socket_timeout)
        while not self._stop.is_set():
            try:
                client.set(f"k{i}", i)
            except (redis.RedisError, OSError) as exc:
                self.errors.append((time.perf_counter(), type(exc).__name__))
                found = master_port(self.ports)
                if found is not None and found != port:
                    port = found
                    self.ports_written.append(port)
                    client = _client(port, self.socket_timeout)
                else:
                    time.sleep(0.005)
                i += 1  # a write that was not acknowledged is never retried under its key
                continue
            self.acked.append((time.perf_counter(), i))
            i += 1

    def start(self, min_acks: int = 50) -> Writer:
        self._thread.start()
        wait_until(lambda: len(self.acked) >= min_acks, 10, what="the writer to get going")
        return self

    def stop(self, more_acks: int = 20) -> None:
        """Let a few more writes through (on the new master), then stop."""
        if self._thread.is_alive():
            target = len(self.acked) + more_acks
            try:
                wait_until(lambda: len(self.acked) >= target, 15, what="writes to resume")
            finally:
                self._stop.set()
                self._thread.join(20)

    def __enter__(self) -> Writer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.stop()
        else:
            self._stop.set()
            self._thread.join(20)

    @property
    def window_ms(self) -> float:
        """The longest gap between two consecutive acknowledged writes."""
        times = [t for t, _ in self.acked]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        return max(gaps, default=0.0) * 1000.0

    def lost_on(self, port: int) -> list[int]:
        """Acknowledged writes whose key is missing on the node at ``port``."""
        client = _client(port, 10.0)
        pipe = client.pipeline(transaction=False)
        for _, i in self.acked:
            pipe.exists(f"k{i}")
        return [i for (_, i), there in zip(self.acked, pipe.execute(), strict=True) if not there]
