"""What a check run produces: one result per (check, node), folded into one status.

Pure data shared by the catalogue (``health``) and the renderer (``output_checks``).

>>> worst([Status.OK, Status.UNKNOWN])
<Status.UNKNOWN: 3>
>>> worst([Status.UNKNOWN, Status.WARNING, Status.OK])
<Status.WARNING: 1>
>>> worst([Status.WARNING, Status.CRITICAL]), worst([])
(<Status.CRITICAL: 2>, <Status.OK: 0>)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from redisops.checks.ranges import Range


class Status(IntEnum):
    """Nagios states; the value is the plugin exit code."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


#: CRITICAL > WARNING > UNKNOWN > OK, as monitoring-plugins' ``max_state_alt()``: plain
#: ``max()`` over the codes would let UNKNOWN (3) mask CRITICAL (2).
SEVERITY = {Status.OK: 0, Status.UNKNOWN: 1, Status.WARNING: 2, Status.CRITICAL: 3}


def worst(states: Iterable[Status]) -> Status:
    return max(states, key=SEVERITY.__getitem__, default=Status.OK)


@dataclass(frozen=True)
class CheckResult:
    """One check on one node (``node=None``: about the whole replication group)."""

    id: str
    node: str | None
    status: Status
    message: str
    value: float | None = None
    uom: str = ""  # Nagios UOM: "", "s", "B", "%", "c"
    warn: Range | None = None
    crit: Range | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "node": self.node,
            "status": self.status.name,
            "value": self.value,
            "uom": self.uom,
            "warn": str(self.warn) if self.warn is not None else None,
            "crit": str(self.crit) if self.crit is not None else None,
            "message": self.message,
            "fields": dict(self.fields),
        }


def judge(value: float, warn: Range | None, crit: Range | None) -> Status:
    """Crit is evaluated before warn (checks-and-drift.md §1.1)."""
    if crit is not None and crit.alerts(value):
        return Status.CRITICAL
    if warn is not None and warn.alerts(value):
        return Status.WARNING
    return Status.OK


@dataclass(frozen=True)
class Sample:
    """One Prometheus sample: ``name{labels} value`` (labels bounded: cluster, address, role...)."""

    name: str
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class Report:
    """A whole run: results, metrics, and the status they fold into."""

    cluster: str
    results: tuple[CheckResult, ...]
    samples: tuple[Sample, ...] = ()
    generated_at: float = 0.0
    nodes: int = 0

    @property
    def status(self) -> Status:
        return worst(r.status for r in self.results)

    def problems(self) -> list[CheckResult]:
        """Non-OK results, worst first (stable within one state)."""
        bad = [r for r in self.results if r.status is not Status.OK]
        return sorted(bad, key=lambda r: -SEVERITY[r.status])
