"""The run journal: one JSON line per event of a playbook run, so it can be resumed.

``$XDG_STATE_HOME/redisops/runs/<run id>.jsonl`` (or ``--journal-dir``) holds:

- ``start``: the playbook (name, path, SHA-256), its vars, who and where;
- ``step``: per step (and per loop item) its id, name, action, the digest of its
  definition, the rendered inputs and their hash, the outcome (``ok``, ``skipped``,
  ``failed``, ``continued`` — failed but ``on_failure: continue``), the exit code, the
  message, the registered value and how long it took;
- ``resume``: where a resumed run picked up, and what the re-check found;
- ``end``: the outcome and exit code (absent when the process died).

Resuming reads it back: vars and registered values come from the journal, steps that
finished are not run again, and the failed step runs only after its precondition has been
re-checked against the live cluster. Vars are never secrets (secrets never enter a
playbook: they come from the environment, a file or the inventory).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redisops.errors import BadInput


def runs_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "redisops" / "runs"


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def inputs_hash(args: Mapping[str, Any]) -> str:
    text = json.dumps(args, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Journal:
    """Appends the events of one run (an append-only file, 0600)."""

    def __init__(self, directory: Path | None, run_id: str) -> None:
        self.dir = directory or runs_dir()
        self.run_id = run_id
        self.path = self.dir / f"{run_id}.jsonl"

    def write(self, kind: str, **fields: Any) -> None:
        now = time.time()
        entry = {"type": kind, "run_id": self.run_id, "time": round(now, 3), **fields}
        line = json.dumps(entry, default=str) + "\n"
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            raise BadInput(
                f"cannot write the run journal {self.path}: {exc.strerror}",
                hint="fix its permissions or pass --journal-dir DIR",
            ) from None

    def start(
        self, *, playbook: str, path: Path, sha256: str, vars: Mapping[str, Any], **extra: Any
    ) -> None:
        from redisops.audit import operator

        self.write(
            "start",
            playbook=playbook,
            path=str(path),
            sha256=sha256,
            vars=dict(vars),
            operator=operator(),
            host=socket.gethostname(),
            **extra,
        )


@dataclass
class PastRun:
    """A run read back from its journal."""

    run_id: str
    path: Path
    start: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)
    end: dict[str, Any] | None = None

    @property
    def finished_ok(self) -> bool:
        return self.end is not None and self.end.get("exit_code") == 0

    def last(self, step_id: str, item: Any = None) -> dict[str, Any] | None:
        """The latest record of ``step_id`` (for loop steps: of that item)."""
        found = None
        for rec in self.steps:
            if rec.get("id") == step_id and (item is None or rec.get("item") == item):
                found = rec
        return found

    def registered(self) -> dict[str, Any]:
        """Every value registered by a step that finished (ok, skipped or continued)."""
        out: dict[str, Any] = {}
        for rec in self.steps:
            if rec.get("register") and rec.get("status") in ("ok", "skipped", "continued"):
                out[str(rec["register"])] = rec.get("registered")
        return out

    def failed_step(self) -> str | None:
        if self.end is not None and self.end.get("failed_step"):
            return str(self.end["failed_step"])
        for rec in reversed(self.steps):
            if rec.get("status") == "failed":
                return str(rec["id"])
        return None


def read_run(path: Path) -> PastRun:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise BadInput(f"cannot read the run journal {path}: {exc.strerror}") from None
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a crash
    starts = [r for r in records if r.get("type") == "start"]
    if not starts:
        raise BadInput(f"{path} is not a run journal (no start record)")
    run = PastRun(str(starts[0].get("run_id")), path, starts[0])
    for rec in records:
        if rec.get("type") == "step":
            run.steps.append(rec)
        elif rec.get("type") == "end":
            run.end = rec
        elif rec.get("type") == "resume":
            run.end = None  # a resumed run is open again until its next end record
    return run


def find_run(directory: Path | None, playbook_path: Path, run_id: str | None) -> PastRun:
    """The run to resume: ``run_id``, or the latest run of this playbook that did not finish."""
    base = directory or runs_dir()
    if run_id is not None:
        path = base / f"{run_id}.jsonl"
        if not path.is_file():
            raise BadInput(
                f"no run {run_id!r} in {base}", hint="see the run id printed by the failed run"
            )
        return read_run(path)
    want = str(playbook_path.resolve())
    candidates = (
        sorted(base.glob("*.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True)
        if base.is_dir()
        else []
    )
    for path in candidates:
        try:
            run = read_run(path)
        except BadInput:
            continue
        if str(Path(str(run.start.get("path"))).resolve()) != want or run.start.get("dry_run"):
            continue
        if run.finished_ok:
            break  # the latest run of this playbook succeeded: nothing to resume
        return run
    raise BadInput(
        f"no unfinished run of {playbook_path} to resume in {base}",
        hint="run it without --resume, or name a run with --run-id",
    )
