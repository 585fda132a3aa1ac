"""The last-known topology: which group each node was in when redisops last changed it.

After every operation the nodes it touched and their master are written to
``$XDG_STATE_HOME/redisops/known.json`` on this host. ``status`` reads it to look beyond
the seeds it was given: an old master that came back after a failover, queried alone,
knows nothing of the failover (the fence record lives on the new master), but this file
remembers that its group's master is now another node, so ``status`` reads that one too
and finds the record that says the old master is stale.

Only this host's operations are remembered; the fence record on the new master is what
every host sees. The file is small (one entry per node ever operated on) and rewritten
atomically.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from redisops.errors import BadInput
from redisops.model import Address


def known_path() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "redisops" / "known.json"


def _load(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def remember(
    members: Iterable[str],
    states: Iterable[Mapping[str, Any]],
    operation: str,
    path: Path | None = None,
) -> None:
    """Record ``members`` (every node an operation named) as one group whose master is the
    node ``states`` (the result's final state) shows as master."""
    path = path or known_path()
    names = sorted(set(members))
    masters = [
        str(s["address"]) for s in states if s.get("reachable") and s.get("role") == "master"
    ]
    if not names or len(masters) != 1:
        return  # no single master to remember (a failed operation, a split): keep the old
    data = _load(path)
    entry = {"group": names, "master": masters[0], "at": time.time(), "operation": operation}
    for name in names:
        data[name] = entry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # remembering is a help for later, never a reason to fail an operation


def last_masters(addresses: Iterable[Address], path: Path | None = None) -> dict[Address, str]:
    """For each address the last-known master of its group, when that is another node:
    ``{master address: why}``."""
    data = _load(path or known_path())
    out: dict[Address, str] = {}
    for address in addresses:
        entry = data.get(str(address))
        if not isinstance(entry, dict) or entry.get("master") in (None, str(address)):
            continue
        try:
            master = Address.parse(str(entry["master"]))
        except BadInput:
            continue
        at = entry.get("at")
        when = (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
            if isinstance(at, (int, float))
            else "?"
        )
        out[master] = (
            f"{master} was the master of {address}'s group when redisops last changed it "
            f"({entry.get('operation', '?')}, {when}, on this host)"
        )
    return out
