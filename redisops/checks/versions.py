"""What each server version knows about its configuration: defaults, types, key classes.

The tables in ``data/`` are generated from the real binaries by ``tests/config_probe.py``
(``CONFIG GET *`` on a server started with no configuration, ``CONFIG SET`` of each key to
its own value for the immutable/protected classes, re-spellings for the value types, and
``CONFIG REWRITE`` for which alias name is canonical); a test compares them with every
binary installed here. Defaults are never read from a live node: a node's running value is
what is being checked.

Keys are indexed by the name redisops compares under (:func:`redisops.redisconf.canonical_name`:
Redis 7.0's names), so a 6.2 ``hash-max-ziplist-entries``, a 7.0
``hash-max-listpack-entries`` and a Valkey ``primaryauth`` line up with their peers;
:meth:`VersionTable.own_name` gives the spelling the server itself uses.

>>> t, exact = table_for("redis", "7.0.15")
>>> exact, t.spec("slave-read-only").cls, t.spec("databases").cls, t.spec("dir").cls
(True, 'mutable', 'immutable', 'protected')
>>> t.accepts("hash-max-ziplist-entries"), table_for("redis", "6.2.14")[0].accepts("hash-max-listpack-entries")
(True, False)
>>> table_for("valkey", "8.1.8")[0].own_name("masterauth")
'primaryauth'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

from redisops.redisconf import canonical_name

#: Directives that only exist in the file: CONFIG GET cannot show them.
FILE_ONLY = frozenset({"include", "rename-command", "user", "loadmodule"})

#: (server, major.minor) -> data file
TABLES: dict[tuple[str, tuple[int, int]], str] = {
    ("redis", (6, 2)): "redis-6.2.json",
    ("redis", (7, 0)): "redis-7.0.json",
    ("valkey", (8, 1)): "valkey-8.1.json",
}


@dataclass(frozen=True, slots=True)
class KeySpec:
    """One configuration key of one server version."""

    name: str  # the server's own spelling
    default: str
    type: str  # bool | int | memory | enum | string | save | obl | flags | list | special
    cls: str  # mutable | immutable | protected

    @property
    def restart_needed(self) -> bool:
        """True when CONFIG SET cannot change it (immutable, or protected by default)."""
        return self.cls != "mutable"


@dataclass(frozen=True)
class VersionTable:
    server: str
    version: str
    keys: Mapping[str, KeySpec]  # comparison name -> spec
    names: frozenset[str]  # every directive name the server reads from a file

    def spec(self, name: str) -> KeySpec | None:
        return self.keys.get(canonical_name(name))

    def accepts(self, written: str) -> bool:
        """Whether a file line starting with ``written`` is a directive this version reads."""
        return written.lower() in self.names

    def own_name(self, name: str) -> str:
        """The server's spelling of a key (for CONFIG SET on it)."""
        spec = self.spec(name)
        return spec.name if spec is not None else canonical_name(name)

    @property
    def label(self) -> str:
        return f"{self.server} {self.version}"


def _version_tuple(version: str) -> tuple[int, int] | None:
    try:
        major, minor = (int(p) for p in version.split(".")[:2])
    except ValueError:
        return None
    return major, minor


@cache
def load_table(filename: str) -> VersionTable:
    raw = json.loads(
        resources.files("redisops.checks").joinpath("data").joinpath(filename).read_text()
    )
    keys: dict[str, KeySpec] = {}
    for name, entry in raw["keys"].items():
        spec = KeySpec(name, str(entry["default"]), str(entry["type"]), str(entry["class"]))
        keys[canonical_name(name)] = spec
    names = set(raw["keys"]) | set(raw["aliases"]) | FILE_ONLY
    return VersionTable(str(raw["server"]), str(raw["version"]), keys, frozenset(names))


def table_for(server: str, version: str) -> tuple[VersionTable, bool]:
    """The table for a node's server and version, and whether it is for that very line.

    Without an exact line, the nearest older line of the same server is used (then any
    older one, then the oldest known): keys added since then are not known to it.

    >>> table_for("redis", "7.2.4")[0].version, table_for("redis", "7.2.4")[1]
    ('7.0.15', False)
    """
    server = (server or "redis").lower()
    want = _version_tuple(version) or (0, 0)
    same = sorted(v for s, v in TABLES if s == server)
    older = [v for v in same if v <= want]
    if (server, want) in TABLES:
        return load_table(TABLES[(server, want)]), True
    if older:
        return load_table(TABLES[(server, older[-1])]), False
    if same:
        return load_table(TABLES[(server, same[0])]), False
    return load_table(TABLES[("redis", (7, 0))]), False
