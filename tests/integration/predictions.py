"""Predicted vs observed resyncs, per server.

Every scenario that checks the engine's prediction (partial or full resync) against what
a real node's counters say happened calls :func:`record`; at the end of the run
``tests/conftest.py`` prints one table: per server, how many predictions were checked and
how many held, with the scenarios that did not. The records go to the file named by
``REDISOPS_PREDICTION_LOG`` (set once per run, inherited by pytest-xdist workers); one
short ``O_APPEND`` write per record, so workers never interleave lines.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

LOG_ENV = "REDISOPS_PREDICTION_LOG"


def _scenario() -> str:
    current = os.environ.get("PYTEST_CURRENT_TEST", "?")
    return current.split("::")[-1].split(" ")[0].split("[")[0]


def record(server: str, predicted: str, observed: str, what: str = "") -> None:
    """One prediction checked on ``server`` (``redis-7.0``, ..., ``lab``)."""
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    line = json.dumps(
        {
            "server": server,
            "scenario": _scenario() + (f" ({what})" if what else ""),
            "predicted": predicted,
            "observed": observed,
        }
    )
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def record_switchover(server: str, doc: Mapping[str, Any]) -> None:
    """A switchover or failover: how many nodes the plan predicted to full-sync, against
    the full resyncs its verification counted (``0`` in both is "partial")."""
    replicas = (doc.get("prediction") or {}).get("replicas") or []
    predicted = sum(1 for r in replicas if r.get("sync") == "full")
    observed = ((doc.get("result") or {}).get("observed") or {}).get("full_resyncs")
    if observed is None:
        return

    def word(n: int) -> str:
        return "partial" if n == 0 else f"{n} full"

    record(server, word(predicted), word(int(observed)), f"{doc.get('operation')}")


def summary(path: Path) -> list[str]:
    """The table lines for the run's summary (empty when nothing was recorded)."""
    if not path.exists():
        return []
    rows: dict[str, list[dict[str, str]]] = defaultdict(list)
    for line in path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            rows[rec["server"]].append(rec)
    if not rows:
        return []
    width = max(len(s) for s in rows)
    out = [f"{'server':<{width}} {'checked':>7} {'held':>5}  mismatches"]
    for server in sorted(rows):
        recs = rows[server]
        bad = [r for r in recs if r["predicted"] != r["observed"]]
        listed = "; ".join(
            f"{r['scenario']}: predicted {r['predicted']}, observed {r['observed']}" for r in bad
        )
        out.append(f"{server:<{width}} {len(recs):>7} {len(recs) - len(bad):>5}  {listed or '-'}")
    return out
