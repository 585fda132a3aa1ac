"""Test hooks: hold a running command at a named point so a test can act there (send
SIGINT during a switchover's write pause, start a second failover while the first holds
the lock).

Inert unless the environment names the point: ``REDISOPS_TEST_HOLD=<point>[,<point>...]``
and ``REDISOPS_TEST_HOLD_DIR=<dir>`` (an existing directory). At a named point the process
creates ``<dir>/<point>.reached`` and waits, at most :data:`MAX_HOLD_S` seconds, until
``<dir>/<point>.release`` exists. The wait is an ordinary sleep, so signals are handled as
anywhere else. Points:

* ``approved``: a mutating command's plan was approved (``--yes``), the lock not yet taken;
* ``locked``: a mutating command holds the cluster lock, before its fresh read;
* ``switch-paused``: a switchover paused writes on the master and has not yet waited
  for the target's offset;
* ``step:<action>``: the executor is about to run the first step of that action (e.g.
  ``step:drift-verify``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

MAX_HOLD_S = 60.0


def hold(point: str) -> None:
    """Wait at ``point`` when the environment asks for it; otherwise return at once."""
    wanted = os.environ.get("REDISOPS_TEST_HOLD")
    if not wanted or point not in wanted.split(","):
        return
    where = Path(os.environ.get("REDISOPS_TEST_HOLD_DIR", ""))
    if not where.is_dir():
        return
    (where / f"{point}.reached").write_text(str(os.getpid()))
    deadline = time.monotonic() + MAX_HOLD_S
    while time.monotonic() < deadline and not (where / f"{point}.release").exists():
        time.sleep(0.02)
