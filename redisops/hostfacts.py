"""Facts about the machine a Redis node runs on: the settings that break forks and restarts.

A :class:`HostFacts` is an immutable snapshot (like :class:`~redisops.model.NodeInfo`) that
health checks read without any I/O. It is gathered by :func:`redisops.ops.hostfacts.host_facts`
with one shell command per host (:data:`FACTS_SCRIPT`, POSIX ``sh`` reading ``/proc`` and
``/sys``) plus what the node itself says over the Redis protocol (its ``dir``,
``tcp-backlog`` and process id). :func:`parse_facts` turns that command's output into facts;
a fact that could not be read is ``None`` and the reason is in ``errors``.

>>> out = '''@meminfo
... MemTotal:       16384000 kB
... MemAvailable:    8192000 kB
... SwapTotal:             0 kB
... SwapFree:              0 kB
... @overcommit
... 0
... @thp
... always madvise [never]
... @somaxconn
... 4096
... @nproc
... 8
... @kernel
... 6.1.0-18-amd64
... @df
... /dev/sda1 103081248 51540624 51540624 50% /var/lib/redis
... @limits
... Max open files            10032                10032                files
... @version
... Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=1
... @service
... exit=0
... '''
>>> f = parse_facts(out, node="10.0.0.1:6379", host="admin@10.0.0.1:22")
>>> f.mem_total_bytes, f.overcommit_memory, f.thp_enabled, f.swap_total_bytes
(16777216000, 0, 'never', 0)
>>> f.disk_free_bytes, f.max_open_files, f.somaxconn, f.cpu_count, f.redis_version
(52777598976, 10032, 4096, 8, '7.0.15')
>>> f.service_state, f.errors
('running', ())
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from typing import Any

#: ``sh -c FACTS_SCRIPT sh PID DIR BINARY SERVICE-ARGV...``: one section per fact, each
#: ``@name`` then the raw text; a failing read leaves its section empty or with the error.
FACTS_SCRIPT = r"""pid=$1 dir=$2 bin=$3
shift 3
echo @meminfo; grep -E '^(MemTotal|MemAvailable|SwapTotal|SwapFree):' /proc/meminfo 2>&1
echo @overcommit; cat /proc/sys/vm/overcommit_memory 2>&1
echo @thp; cat /sys/kernel/mm/transparent_hugepage/enabled 2>&1
echo @somaxconn; cat /proc/sys/net/core/somaxconn 2>&1
echo @nproc; getconf _NPROCESSORS_ONLN 2>/dev/null || nproc 2>&1
echo @kernel; uname -r 2>&1
if [ -n "$dir" ]; then echo @df; df -Pk -- "$dir" 2>&1 | tail -n 1; fi
if [ -n "$pid" ]; then echo @limits; grep 'Max open files' "/proc/$pid/limits" 2>&1; fi
echo @version; "${bin:-redis-server}" --version 2>&1
if [ $# -gt 0 ]; then echo @service; "$@" >/dev/null 2>&1; echo "exit=$?"; fi
"""


@dataclass(frozen=True, slots=True)
class HostFacts:
    """What the health checks need to know about a node's machine (None: not known)."""

    node: str  # the Redis node, host:port
    host: str  # how it was reached: "local" or user@host:port
    mem_total_bytes: int | None = None
    mem_available_bytes: int | None = None
    swap_total_bytes: int | None = None
    swap_free_bytes: int | None = None
    overcommit_memory: int | None = None  # vm.overcommit_memory: Redis wants 1
    thp_enabled: str | None = None  # transparent huge pages: Redis wants never (or madvise)
    somaxconn: int | None = None  # net.core.somaxconn: caps tcp-backlog
    tcp_backlog: int | None = None  # the node's tcp-backlog
    redis_dir: str | None = None  # the node's dir (RDB, AOF)
    disk_free_bytes: int | None = None  # available in redis_dir, for unprivileged writers
    disk_total_bytes: int | None = None
    max_open_files: int | None = None  # soft RLIMIT_NOFILE of the redis-server process
    cpu_count: int | None = None
    kernel: str | None = None
    redis_version: str | None = None  # of the redis-server binary on disk
    service_state: str | None = None  # running, stopped, unknown (exit N)
    errors: tuple[str, ...] = ()

    @property
    def backlog_capped(self) -> bool | None:
        """True when the kernel silently caps Redis's ``tcp-backlog``.

        >>> HostFacts("n", "h", somaxconn=128, tcp_backlog=511).backlog_capped
        True
        """
        if self.somaxconn is None or self.tcp_backlog is None:
            return None
        return self.somaxconn < self.tcp_backlog

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["errors"] = list(self.errors)
        data["backlog_capped"] = self.backlog_capped
        return data


def sections(output: str) -> dict[str, str]:
    """The script's output split into its ``@name`` sections.

    >>> sections("@a\\n1\\n@b\\nx y\\n")
    {'a': '1', 'b': 'x y'}
    """
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if line.startswith("@") and re.fullmatch(r"@[a-z]+", line.strip()):
            current = found.setdefault(line.strip()[1:], [])
        elif current is not None:
            current.append(line)
    return {k: "\n".join(v).strip() for k, v in found.items()}


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.strip().isdigit() else None


def parse_facts(output: str, *, node: str, host: str) -> HostFacts:
    """The facts in :data:`FACTS_SCRIPT`'s output (see the module docstring)."""
    s = sections(output)
    errors: list[str] = []
    mem = {
        m.group(1): int(m.group(2)) * 1024
        for m in re.finditer(r"^(\w+):\s+(\d+) kB", s.get("meminfo", ""), re.M)
    }
    thp = re.search(r"\[(\w+)\]", s.get("thp", ""))
    facts = HostFacts(
        node=node,
        host=host,
        mem_total_bytes=mem.get("MemTotal"),
        mem_available_bytes=mem.get("MemAvailable"),
        swap_total_bytes=mem.get("SwapTotal"),
        swap_free_bytes=mem.get("SwapFree"),
        overcommit_memory=_int(s.get("overcommit")),
        thp_enabled=thp.group(1) if thp else None,
        somaxconn=_int(s.get("somaxconn")),
        cpu_count=_int(s.get("nproc")),
        kernel=s.get("kernel") or None,
    )
    if "df" in s:
        fields = s["df"].split()
        if len(fields) >= 6 and fields[1].isdigit() and fields[3].isdigit():
            facts = replace(
                facts, disk_total_bytes=int(fields[1]) * 1024, disk_free_bytes=int(fields[3]) * 1024
            )
        else:
            errors.append(f"free disk: {s['df'] or 'no output'}")
    if "limits" in s:
        words = s["limits"].split()
        if len(words) >= 5 and words[3].isdigit():
            facts = replace(facts, max_open_files=int(words[3]))
        elif len(words) >= 5 and words[3] == "unlimited":
            facts = replace(facts, max_open_files=-1)
        else:
            errors.append(f"open-files limit: {s['limits'] or 'no output'}")
    version = re.search(r"\bv=(\S+)", s.get("version", ""))
    if version:
        facts = replace(facts, redis_version=version.group(1))
    elif "version" in s:
        errors.append(f"redis-server --version: {_first_line(s['version'])}")
    if "service" in s:
        facts = replace(facts, service_state=service_state(s["service"]))
    for name, value in (
        ("memory", facts.mem_total_bytes),
        ("vm.overcommit_memory", facts.overcommit_memory),
        ("transparent huge pages", facts.thp_enabled),
        ("net.core.somaxconn", facts.somaxconn),
    ):
        if value is None:
            errors.append(f"{name}: cannot be read")
    return replace(facts, errors=tuple(errors))


def service_state(text: str) -> str:
    """The state a service *status* command's exit code means (LSB init scripts and
    ``systemctl status``: 0 running, 3 stopped, 1/2 dead, 4 unknown service).

    >>> service_state("exit=0"), service_state("exit=3"), service_state("exit=1")
    ('running', 'stopped', 'not running (exit 1)')
    >>> service_state("exit=4"), service_state("exit=127")
    ('unknown service (exit 4)', 'unknown (command not found)')
    """
    m = re.search(r"exit=(\d+)", text)
    code = int(m.group(1)) if m else -1
    if code == 0:
        return "running"
    if code == 3:
        return "stopped"
    if code in (1, 2):
        return f"not running (exit {code})"
    if code == 4:
        return "unknown service (exit 4)"
    if code == 127:
        return "unknown (command not found)"
    return f"unknown (exit {code})"


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else "no output"
