"""Where playbooks are found: shipped with redisops, and the operator's own.

Local playbooks come first (they may replace a shipped one of the same name):
``$REDISOPS_PLAYBOOKS`` (directories separated by ``:``), ``./playbooks`` in the current
directory, ``$XDG_CONFIG_HOME/redisops/playbooks``. Shipped ones are the ``playbooks/``
directory beside the ``redisops`` package. A playbook is named by its file name without
``.yml``; ``redisops playbook run master-down`` and ``... run ./my/master-down.yml`` both work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from redisops.errors import BadInput

SUFFIXES = (".yml", ".yaml")


def shipped_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "playbooks"


def local_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("REDISOPS_PLAYBOOKS", "").split(":") if p]
    dirs.append(Path("playbooks"))
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    dirs.append(Path(xdg) / "redisops" / "playbooks")
    shipped = shipped_dir()
    out: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() != shipped and d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


@dataclass(frozen=True)
class Entry:
    name: str
    source: str  # local | shipped
    path: Path


def entries() -> list[Entry]:
    """Every playbook found, local ones first; a name appears once (the first found)."""
    found: dict[str, Entry] = {}
    places = [(d, "local") for d in local_dirs()] + [(shipped_dir(), "shipped")]
    for directory, source in places:
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if path.suffix in SUFFIXES and path.is_file():
                found.setdefault(path.stem, Entry(path.stem, source, path))
    return list(found.values())


def resolve(name: str) -> Path:
    """The file for ``name``: a path to a file, or the name of a local or shipped playbook."""
    path = Path(name)
    if path.is_file():
        return path
    if path.suffix not in SUFFIXES and os.sep not in name:
        for entry in entries():
            if entry.name == name:
                return entry.path
    elif path.suffix in SUFFIXES and os.sep not in name:
        for entry in entries():
            if entry.path.name == name:
                return entry.path
    known = ", ".join(e.name for e in entries()) or "none"
    raise BadInput(f"no playbook {name!r}", hint=f"give a file path, or one of: {known}")
