"""The audit trail: one JSON line per step of every mutating operation.

Lines are appended (never rewritten) to ``$XDG_STATE_HOME/redisops/audit.log`` or
``--audit-log PATH``, with the time, the operator (OS user), the host, the command line,
the operation id, the node, the action, the exact command (secrets redacted) and the
result. Nothing secret is ever written: commands come from plan steps, whose secret
arguments are ``***`` by construction, and the command line is scrubbed of URL passwords.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import socket
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_URL_PASSWORD = re.compile(r"(rediss?://[^:/@\s]*):[^@\s]*@")


def default_path() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "redisops" / "audit.log"


def scrub(argv: Sequence[str]) -> list[str]:
    """The command line with anything that looks like a secret removed.

    >>> scrub(["redisops", "attach", "redis://u:pw@h:1", "--to", "h:2"])
    ['redisops', 'attach', 'redis://u:***@h:1', '--to', 'h:2']
    """
    return [_URL_PASSWORD.sub(r"\1:***@", a) for a in argv]


def operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no passwd entry
        return str(os.getuid())


class AuditLog:
    """Appends audit records for one operation."""

    def __init__(self, path: Path | None, operation: str, cluster: str) -> None:
        self.path = path or default_path()
        self.operation = operation
        self.cluster = cluster
        self.op_id = uuid.uuid4().hex[:12]
        self.operator = operator()
        self.host = socket.gethostname()
        self.command_line = scrub(sys.argv)

    def record(self, **fields: Any) -> None:
        now = time.time()  # once: seconds and milliseconds from the same instant
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
            + f".{int(now * 1000) % 1000:03d}Z",
            "op_id": self.op_id,
            "operation": self.operation,
            "cluster": self.cluster,
            "operator": self.operator,
            "host": self.host,
            "command_line": self.command_line,
            **fields,
        }
        line = json.dumps(entry, default=str, sort_keys=False)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)
        except OSError as exc:
            from redisops.errors import RedisopsError

            raise RedisopsError(
                f"cannot write the audit log {self.path}: {exc.strerror}",
                hint="fix its permissions or pass --audit-log PATH",
            ) from None
