"""Nagios threshold ranges (``[@]start:end``) and the per-check thresholds of one run.

Hand-written on purpose: the grammar is the five rules of the Monitoring Plugins
development guidelines (checks-and-drift.md §1.1), about forty lines here. The maintained
``nagiosplugin`` package parses the same grammar, but importing it loads its whole plugin
runtime (its own ``Check``/``Runtime`` exit and output handling), which competes with the
one renderer and costs start-up time on a command cron runs every minute.

>>> Range.parse("10").alerts(11), Range.parse("10").alerts(10), Range.parse("10").alerts(-1)
(True, False, True)
>>> Range.parse("10:").alerts(9.5), Range.parse("~:10").alerts(-50)
(True, False)
>>> Range.parse("@10:20").alerts(15), Range.parse("@10:20").alerts(21)
(True, False)
>>> str(Range.parse("~:10")), str(Range.parse("5:")), str(Range.parse("@0.5:2"))
('~:10', '5:', '@0.5:2')
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from redisops.errors import BadInput


def _num(text: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadInput(
            f"threshold {spec!r}: {text!r} is not a number",
            hint="use the Nagios range syntax [@]start:end, e.g. 10, 10:, ~:10, 10:20, @10:20",
        ) from None
    if math.isnan(value):
        raise BadInput(f"threshold {spec!r}: NaN is not a threshold")
    return value


def _fmt(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


@dataclass(frozen=True)
class Range:
    """Alert when the value is outside ``[start, end]`` (inside, when ``inside`` is set)."""

    start: float = 0.0
    end: float = math.inf
    inside: bool = False

    @classmethod
    def parse(cls, spec: str) -> Range:
        text = spec.strip()
        if not text:
            raise BadInput("empty threshold range", hint="e.g. 10, 10:, ~:10, 10:20, @10:20")
        inside = text.startswith("@")
        if inside:
            text = text[1:]
        if ":" in text:
            lo, _, hi = text.partition(":")
            start = -math.inf if lo == "~" else (_num(lo, spec) if lo else 0.0)
            end = _num(hi, spec) if hi else math.inf
        else:
            start, end = 0.0, _num(text, spec)
        if start > end:
            raise BadInput(f"threshold {spec!r}: start {_fmt(start)} is above end {_fmt(end)}")
        return cls(start, end, inside)

    @classmethod
    def above(cls, limit: float) -> Range:
        """Alert when the value exceeds ``limit`` (``~:limit``; negatives allowed)."""
        return cls(-math.inf, limit)

    @classmethod
    def below(cls, limit: float) -> Range:
        """Alert when the value is under ``limit`` (``limit:``)."""
        return cls(limit, math.inf)

    def alerts(self, value: float) -> bool:
        within = self.start <= value <= self.end
        return within if self.inside else not within

    def __str__(self) -> str:
        hi = "" if self.end == math.inf else _fmt(self.end)
        if self.start == 0 and hi:
            body = hi
        else:
            lo = "~" if self.start == -math.inf else _fmt(self.start)
            body = f"{lo}:{hi}"
        return ("@" if self.inside else "") + body


@dataclass(frozen=True)
class Thresholds:
    """User overrides, ``{check id: Range}`` for warn and crit; checks fall back to their
    own defaults (from the doc, or derived from the node's configuration)."""

    warn: Mapping[str, Range]
    crit: Mapping[str, Range]

    @classmethod
    def parse(
        cls, warn: Iterable[str] = (), crit: Iterable[str] = (), known: Iterable[str] = ()
    ) -> Thresholds:
        """Parse ``ID=RANGE`` items; an unknown id is bad input (a typo must not pass silently).

        >>> t = Thresholds.parse(["repl.lag_bytes=1000"], [], known=["repl.lag_bytes"])
        >>> str(t.warn["repl.lag_bytes"])
        '1000'
        """
        ids = set(known)

        def one(items: Iterable[str], opt: str) -> dict[str, Range]:
            out: dict[str, Range] = {}
            for item in items:
                cid, sep, spec = item.partition("=")
                cid = cid.strip()
                if not sep or not cid:
                    raise BadInput(
                        f"{opt} {item!r}: expected ID=RANGE", hint=f"e.g. {opt} repl.lag_seconds=5"
                    )
                if ids and cid not in ids:
                    raise BadInput(
                        f"{opt} {item!r}: no check has the id {cid!r}",
                        hint="see 'redisops check --list' for the ids",
                    )
                try:
                    out[cid] = Range.parse(spec)
                except BadInput as exc:  # say which option and check the range belongs to
                    raise BadInput(f"{opt} {cid}={spec}: {exc.message}", hint=exc.hint) from None
            return out

        return cls(one(warn, "--warn"), one(crit, "--crit"))

    def pick(
        self, cid: str, warn: Range | None, crit: Range | None
    ) -> tuple[Range | None, Range | None]:
        """The effective (warn, crit) of ``cid``: an override, else the given default."""
        return self.warn.get(cid, warn), self.crit.get(cid, crit)


NO_THRESHOLDS = Thresholds({}, {})
