"""``./dev demo``, the README's first command, end to end (embedded engine, no Redis)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_the_demo_runs_the_whole_story_and_every_step_verifies(tmp_path: Path) -> None:
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"), TMPDIR=str(tmp_path))
    env.pop("REDISCLI_AUTH", None)
    proc = subprocess.run(
        [sys.executable, "-m", "redisops.demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    assert "demo finished in" in out and "every step verified" in out
    # the story, in order
    markers = [
        "$ redisops lab up",
        "$ redisops check",
        "OK - ",
        "$ redisops playbook run add-replica",
        "prediction confirmed",
        "$ redisops drift",
        "$ redisops playbook run drift-remediation",
        "$ redisops playbook run backup-rdb",
        "backup file:",
        "$ redisops playbook run planned-switchover",
        "REHEARSAL (on a copy of the cluster)",
        "missing on the new one: 0",
        "writes paused",
        "$ redisops lab kill",
        "$ redisops playbook run master-down",
        "fenced_master_returned",
        "$ redisops fence",
        "$ redisops check",
        "OK - ",
        "$ redisops lab down",
    ]
    at = 0
    for marker in markers:
        found = out.find(marker, at)
        assert found >= 0, f"{marker!r} missing after position {at}"
        at = found
    assert "Traceback" not in out + proc.stderr
