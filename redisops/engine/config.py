"""Server configuration with Redis 7.0 defaults, CONFIG GET/SET semantics and error texts.

Only what replication, persistence and the lab need is modelled, but each modelled key
behaves like Redis: the same defaults, the same parsing (``1mb``, ``yes``/``no``), the same
bounds and the same error messages, e.g.

>>> c = Config()
>>> _ = c.set_many([(b"repl-backlog-size", b"100")])
>>> c.get_int("repl-backlog-size")
16384
>>> c.set_many([(b"repl-timeout", b"-1")])
Traceback (most recent call last):
...
redisops.engine.command.CommandError: ERR CONFIG SET failed (possibly related to argument 'repl-timeout') - argument must be between 1 and 2147483647 inclusive
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from redisops.engine.command import CommandError

INT_MAX = 2147483647
LLONG_MAX = 9223372036854775807


def memtoll(text: str) -> int | None:
    """Redis's memory parser: ``1k`` = 1000, ``1kb`` = 1024, ``1gb`` = 1024**3...

    >>> memtoll("1mb"), memtoll("1m"), memtoll("42"), memtoll("x")
    (1048576, 1000000, 42, None)
    """
    t = text.strip().lower()
    units = {
        "": 1,
        "b": 1,
        "k": 1000,
        "kb": 1024,
        "m": 1000**2,
        "mb": 1024**2,
        "g": 1000**3,
        "gb": 1024**3,
    }
    i = len(t)
    while i > 0 and t[i - 1].isalpha():
        i -= 1
    num, unit = t[:i], t[i:]
    if unit not in units or not num:
        return None
    try:
        value = int(num)
    except ValueError:
        return None
    return value * units[unit]


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # bool | int | memory | enum | string | save | obl | special
    default: str
    lo: int = 0
    hi: int = INT_MAX
    choices: tuple[str, ...] = ()
    immutable: bool = False
    secret: bool = False
    aliases: tuple[str, ...] = ()


def _p(name: str, kind: str, default: str, **kw: object) -> Param:
    return Param(name, kind, default, **kw)  # type: ignore[arg-type]


PARAMS: dict[str, Param] = {
    p.name: p
    for p in [
        _p("port", "int", "6379", lo=0, hi=65535),
        _p("bind", "string", "* -::*"),
        _p("databases", "int", "16", lo=1, immutable=True),
        _p("requirepass", "string", "", secret=True),
        _p("masterauth", "string", "", secret=True),
        _p("masteruser", "string", ""),
        _p("replicaof", "special", "", aliases=("slaveof",)),
        _p("repl-backlog-size", "memory", "1048576", lo=1, hi=LLONG_MAX),
        _p("repl-backlog-ttl", "int", "3600", lo=0, hi=LLONG_MAX),
        _p("repl-timeout", "int", "60", lo=1),
        _p("repl-ping-replica-period", "int", "10", lo=1, aliases=("repl-ping-slave-period",)),
        _p("repl-diskless-sync", "bool", "yes"),
        _p("repl-diskless-sync-delay", "int", "5"),
        _p("repl-diskless-sync-max-replicas", "int", "0"),
        _p("repl-diskless-load", "enum", "disabled", choices=("disabled", "on-empty-db", "swapdb")),
        _p("repl-disable-tcp-nodelay", "bool", "no"),
        _p("replica-serve-stale-data", "bool", "yes", aliases=("slave-serve-stale-data",)),
        _p("replica-read-only", "bool", "yes", aliases=("slave-read-only",)),
        _p("replica-priority", "int", "100", aliases=("slave-priority",)),
        _p("replica-announce-ip", "string", "", aliases=("slave-announce-ip",)),
        _p("replica-announce-port", "int", "0", hi=65535, aliases=("slave-announce-port",)),
        _p("replica-announced", "bool", "yes"),
        _p("replica-lazy-flush", "bool", "no", aliases=("slave-lazy-flush",)),
        _p("replica-ignore-maxmemory", "bool", "yes", aliases=("slave-ignore-maxmemory",)),
        _p("min-replicas-to-write", "int", "0", aliases=("min-slaves-to-write",)),
        _p("min-replicas-max-lag", "int", "10", aliases=("min-slaves-max-lag",)),
        _p(
            "client-output-buffer-limit",
            "obl",
            "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        ),
        _p("save", "save", ""),
        _p("appendonly", "bool", "no"),
        _p("appendfsync", "enum", "everysec", choices=("always", "everysec", "no")),
        _p("appendfilename", "string", "appendonly.aof", immutable=True),
        _p("dbfilename", "string", "dump.rdb"),
        _p("dir", "string", "/var/lib/redis"),
        _p("rdbcompression", "bool", "yes"),
        _p("rdbchecksum", "bool", "yes"),
        _p("stop-writes-on-bgsave-error", "bool", "yes"),
        _p("maxmemory", "memory", "0", hi=LLONG_MAX),
        _p(
            "maxmemory-policy",
            "enum",
            "noeviction",
            choices=(
                "volatile-lru",
                "allkeys-lru",
                "volatile-lfu",
                "allkeys-lfu",
                "volatile-random",
                "allkeys-random",
                "volatile-ttl",
                "noeviction",
            ),
        ),
        _p("lazyfree-lazy-expire", "bool", "no"),
        _p("lazyfree-lazy-user-del", "bool", "no"),
        _p("lazyfree-lazy-eviction", "bool", "no"),
        _p("lazyfree-lazy-server-del", "bool", "no"),
        _p("hz", "int", "10", lo=0),
        _p("shutdown-timeout", "int", "10"),
        _p("timeout", "int", "0"),
        _p("tcp-keepalive", "int", "300"),
        _p(
            "loglevel",
            "enum",
            "notice",
            choices=("debug", "verbose", "notice", "warning", "nothing"),
        ),
        _p("logfile", "string", "", immutable=True),
        _p("protected-mode", "bool", "yes"),
        _p("enable-debug-command", "enum", "no", choices=("yes", "no", "local"), immutable=True),
        _p("daemonize", "bool", "no", immutable=True),
        _p("maxclients", "int", "10000", lo=1),
        _p("tls-port", "int", "0", hi=65535),
        _p("tls-replication", "bool", "no"),
        _p("rdb-key-save-delay", "int", "0", lo=-INT_MAX),
        _p("key-load-delay", "int", "0", lo=-INT_MAX),
        _p("disable-thp", "bool", "yes"),
        _p("io-threads", "int", "1", lo=1, hi=128, immutable=True),
        _p("cluster-enabled", "bool", "no", immutable=True),
    ]
}
ALIASES: dict[str, str] = {a: p.name for p in PARAMS.values() for a in p.aliases}

_MEMORY_HUMAN = ("gb", "mb", "kb")


def _fail(name: str, why: str) -> CommandError:
    return CommandError(f"ERR CONFIG SET failed (possibly related to argument '{name}') - {why}")


def parse_obl(value: str) -> dict[str, tuple[int, int, int]]:
    """Parse ``client-output-buffer-limit`` (class hard soft seconds ...).

    >>> parse_obl("replica 1mb 512kb 10")["slave"]
    (1048576, 524288, 10)
    """
    words = value.split()
    if len(words) % 4 != 0 or not words:
        raise ValueError("Wrong number of arguments in buffer limit configuration.")
    out: dict[str, tuple[int, int, int]] = {}
    for i in range(0, len(words), 4):
        cls = words[i].lower()
        if cls == "replica":
            cls = "slave"
        if cls not in ("normal", "slave", "pubsub"):
            raise ValueError("Invalid client class specified in buffer limit configuration.")
        hard, soft = memtoll(words[i + 1]), memtoll(words[i + 2])
        try:
            secs = int(words[i + 3])
        except ValueError:
            secs = -1
        if hard is None or soft is None or secs < 0:
            raise ValueError(
                "Error in hard, soft or soft_seconds setting in buffer limit configuration."
            )
        out[cls] = (hard, soft, secs)
    return out


def parse_save(value: str) -> list[tuple[int, int]]:
    words = value.split()
    if len(words) % 2:
        raise ValueError("Invalid save parameters")
    out = []
    for i in range(0, len(words), 2):
        try:
            secs, changes = int(words[i]), int(words[i + 1])
        except ValueError:
            raise ValueError("Invalid save parameters") from None
        if secs < 1 or changes < 0:
            raise ValueError("Invalid save parameters")
        out.append((secs, changes))
    return out


class Config:
    """Current values (as strings, canonical form) and typed accessors."""

    def __init__(self, overrides: Iterable[tuple[str, str]] = ()) -> None:
        self.values: dict[str, str] = {name: p.default for name, p in PARAMS.items()}
        self.observers: list[Callable[[str, str], None]] = []
        for key, value in overrides:
            self.set_many([(key.encode(), value.encode())], startup=True)

    # ------------------------------------------------------------------ typed reads
    def get(self, name: str) -> str:
        return self.values[ALIASES.get(name, name)]

    def get_int(self, name: str) -> int:
        return int(self.get(name))

    def get_bool(self, name: str) -> bool:
        return self.get(name) == "yes"

    def obl(self, cls: str = "slave") -> tuple[int, int, int]:
        return parse_obl(self.get("client-output-buffer-limit"))[cls]

    def save_points(self) -> list[tuple[int, int]]:
        return parse_save(self.get("save"))

    # ------------------------------------------------------------------ CONFIG GET
    def get_matching(self, patterns: Iterable[bytes]) -> list[bytes]:
        out: list[bytes] = []
        seen: set[str] = set()
        for raw in patterns:
            pat = raw.decode(errors="replace").lower()
            names = list(PARAMS) + list(ALIASES)
            for name in names:
                if name in seen:
                    continue
                if name == pat or (any(c in pat for c in "*?[") and fnmatch.fnmatchcase(name, pat)):
                    seen.add(name)
                    out += [name.encode(), self.get(name).encode()]
        return out

    # ------------------------------------------------------------------ CONFIG SET
    def _normalise(self, param: Param, name: str, value: str, startup: bool = False) -> str:
        kind = param.kind
        if kind == "bool":
            v = value.lower()
            if v not in ("yes", "no"):
                raise _fail(name, "argument must be 'yes' or 'no'")
            return v
        if kind == "int":
            try:
                n = int(value)
            except ValueError:
                raise _fail(name, "argument couldn't be parsed into an integer") from None
            if not param.lo <= n <= param.hi:
                raise _fail(name, f"argument must be between {param.lo} and {param.hi} inclusive")
            return str(n)
        if kind == "memory":
            n2 = memtoll(value)
            if n2 is None:
                raise _fail(name, "argument must be a memory value")
            if not param.lo - 1 <= n2 <= param.hi:
                raise _fail(name, f"argument must be between {param.lo} and {param.hi} inclusive")
            if name == "repl-backlog-size" and n2 < 16384:
                n2 = 16384
            return str(n2)
        if kind == "enum":
            v = value.lower()
            if v not in param.choices:
                raise _fail(
                    name, "argument(s) must be one of the following: " + ", ".join(param.choices)
                )
            return v
        if kind == "save":
            try:
                points = parse_save(value)
            except ValueError as exc:
                raise _fail(name, str(exc)) from None
            return " ".join(f"{s} {c}" for s, c in points)
        if kind == "obl":
            try:
                new = parse_obl(value)
            except ValueError as exc:
                raise _fail(name, str(exc)) from None
            cur = parse_obl(self.values["client-output-buffer-limit"])
            cur.update(new)
            return " ".join(
                f"{c} {h} {s} {t}"
                for c, (h, s, t) in ((k, cur[k]) for k in ("normal", "slave", "pubsub"))
            )
        if kind == "special":
            words = value.split()
            if not startup:
                raise _fail(name, "can't set immutable config")
            if value and (len(words) != 2 or not words[1].isdigit()):
                raise _fail(name, "argument must be '<host> <port>'")
            return " ".join(words)
        return value

    def set_many(self, pairs: list[tuple[bytes, bytes]], *, startup: bool = False) -> list[str]:
        """CONFIG SET semantics: all or nothing; returns the canonical names changed."""
        staged: dict[str, str] = {}
        for raw_name, raw_value in pairs:
            given = raw_name.decode(errors="replace").lower()
            name = ALIASES.get(given, given)
            param = PARAMS.get(name)
            if param is None:
                raise CommandError(
                    f"ERR Unknown option or number of arguments for CONFIG SET - '{given}'"
                )
            if name in staged:
                raise _fail(given, "duplicate parameter")
            if param.immutable and not startup:
                raise _fail(given, "can't set immutable config")
            staged[name] = self._normalise(
                param, given, raw_value.decode(errors="replace"), startup
            )
        for name, value in staged.items():
            self.values[name] = value
            for observer in self.observers:
                observer(name, value)
        return list(staged)

    def rewrite_lines(self) -> list[str]:
        """What ``CONFIG REWRITE`` would persist: every non-default value, and ``save``
        always (Redis forces it: ``save ""`` when there are no save points, so the file
        does not fall back to the built-in defaults; one line per pair)."""
        out = []
        for name, p in PARAMS.items():
            value = self.values[name]
            if p.kind == "save":
                pairs = value.split()
                out += [f"save {a} {b}" for a, b in zip(pairs[::2], pairs[1::2], strict=True)]
                out += [] if pairs else ['save ""']
            elif value != p.default and p.kind != "special":
                shown = f'"{value}"' if (" " in value or not value) else value
                out.append(f"{name} {shown}")
        return out
