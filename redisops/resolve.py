"""Host names to addresses: one node written two ways (``localhost:7000``, ``127.0.0.1:7000``)
must be recognised as one, by the lock and by discovery, even when it does not answer."""

from __future__ import annotations

import functools
import socket


@functools.lru_cache(maxsize=512)
def resolve_host(host: str) -> frozenset[str]:
    """Every address ``host`` resolves to (itself, lower-cased, when it does not resolve).

    >>> sorted(resolve_host("127.0.0.1"))
    ['127.0.0.1']
    """
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return frozenset({host.lower()})
    return frozenset(str(info[4][0]) for info in infos) or frozenset({host.lower()})
