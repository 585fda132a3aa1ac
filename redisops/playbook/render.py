"""How playbooks and their runs look on a terminal (JSON is the objects' ``to_dict``).

Everything goes out through :mod:`redisops.output` (``write`` for results on stdout,
``note`` for progress on stderr), like every other command.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from redisops.playbook.actions import ACTIONS
from redisops.playbook.runner import Reporter, RunReport, StepRecord
from redisops.playbook.schema import Playbook, StepSpec


def _compact(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render_show(book: Playbook) -> str:
    from redisops.output import table

    lines = [
        f"{book.name}: {book.description}" if book.description else book.name,
        f"file: {book.path}",
    ]
    if book.vars:
        lines += ["", "Vars:"]
        rows = [
            [
                v.name,
                v.type,
                "(required)" if v.required and v.default is None else _compact(v.default, 20),
                v.description
                + (f" (one of {', '.join(map(str, v.choices))})" if v.choices else ""),
            ]
            for v in book.vars
        ]
        lines.append(table(["VAR", "TYPE", "DEFAULT", "DESCRIPTION"], rows))
    lines += ["", "Steps:"]
    rows = []
    for spec in book.all_steps():
        rows.append(
            [
                spec.id,
                spec.name,
                spec.action or f"for_each {_compact(spec.for_each, 30)} as {spec.as_name}",
                _compact(dict(spec.args)) if spec.args else "",
                _step_notes(spec),
            ]
        )
    lines.append(table(["#", "STEP", "ACTION", "WITH", "WHEN / CHECKS"], rows))
    return "\n".join(lines)


def _step_notes(spec: StepSpec) -> str:
    notes = []
    if spec.when:
        notes.append(f"when {spec.when}")
    if spec.register:
        notes.append(f"register {spec.register}")
    if spec.on_failure != "abort":
        notes.append(f"on_failure {spec.on_failure}")
    action = ACTIONS.get(spec.action or "")
    if action is not None and action.changes(spec.args):
        notes.append(f"pre: {spec.precondition or action.precondition}")
        notes.append(f"verify: {spec.verify or action.verify}")
    return "; ".join(notes)


def _headline(text: str, limit: int = 80) -> str:
    """The description's first clause (up to ':' or '.'), for one table row.

    >>> _headline("Move the master role to a replica: check, switch, check.")
    'Move the master role to a replica'
    """
    cut = min((i for i in (text.find(": "), text.find(". ")) if i > 0), default=len(text))
    head = text[:cut].rstrip(".")
    return head if len(head) <= limit else head[: limit - 3] + "..."


def render_list(rows: list[dict[str, Any]]) -> str:
    from redisops.output import table

    if not rows:
        return "no playbooks found"
    return table(
        ["NAME", "SOURCE", "DESCRIPTION", "PATH"],
        [
            [
                r["name"],
                r["source"],
                _headline(r["description"]) or r.get("error") or "",
                # a shipped playbook's path says nothing (JSON has it): the width goes to
                # the description
                "-" if r["source"] == "shipped" else r["path"],
            ]
            for r in rows
        ],
    )


_MARK = {
    "ok": "ok",
    "skipped": "skipped",
    "failed": "FAILED",
    "continued": "failed (on_failure: continue)",
    "done-before": "done before",
}


class TextReporter(Reporter):
    """One line per step as it runs, plans indented under their step, state on failure.

    ``translate`` rewrites every line before it is shown (a rehearsal names the real
    addresses its lab copies stand for)."""

    def __init__(self, translate: Callable[[str], str] | None = None) -> None:
        self.translate = translate or (lambda text: text)

    def out(self, text: str) -> None:
        from redisops.output import write

        write(self.translate(text))

    def started(self, report: RunReport, total: int) -> None:
        book = report.playbook
        if report.dry_run:
            head = "DRY RUN of"
        elif report.rehearsal:
            head = "REHEARSAL (on a copy of the cluster) of"
        else:
            head = "playbook"
        lines = [f"{head} {book.name}: {book.description}".rstrip(": ")]
        if report.dry_run:
            lines.append(
                "  read-only steps read the real cluster; mutating steps are planned and predicted, "
                "and later steps see the predicted state. Nothing is changed."
            )
        elif report.rehearsal:
            lines.append(
                "  every step runs for real on embedded-engine copies of the nodes listed above; "
                "the real cluster is only read."
            )
        else:
            lines.append(f"  run {report.run_id}; journal {report.journal}")
        self.out("\n".join(lines))

    def step_started(self, spec: StepSpec, total: int, item: Any) -> None:
        from redisops.output import note

        what = f" [{item}]" if item is not None else ""
        note(self.translate(f"[{spec.id}/{total}] {spec.name}{what} ({spec.action}) ..."))

    def step_finished(self, spec: StepSpec, record: StepRecord, total: int) -> None:
        mark = _MARK.get(record.status, record.status)
        if record.predicted and record.status == "ok":
            mark = "predicted"
        item = f" [{record.item}]" if record.item is not None else ""
        code = f" (exit {record.exit_code})" if record.status in ("failed", "continued") else ""
        took = f" {record.seconds:.2f}s" if record.seconds >= 0.01 else ""
        head = f"[{spec.id}/{total}] {spec.name}{item} ({record.action})"
        self.out(f"{head}: {mark}{code}{took}: {record.summary}")
        if record.details:
            self.out(record.details)

    def detail(self, text: str) -> None:
        self.out(text)

    def finished(self, report: RunReport) -> None:
        from redisops.formats import Format
        from redisops.output import render_status

        counts: dict[str, int] = {}
        for r in report.records:
            key = "predicted" if r.predicted and r.status == "ok" else r.status
            counts[key] = counts.get(key, 0) + 1
        tally = ", ".join(f"{n} {k}" for k, n in counts.items())
        lines = ["", f"{report.message} ({tally})"]
        if not report.ok and report.final_state is not None:
            head = (
                "State of every node (as predicted)"
                if report.dry_run
                else "State of every node now"
            )
            lines += ["", f"{head}:", render_status(report.final_state, Format.table)]
        if not report.ok and not report.dry_run and not report.rehearsal and report.journal:
            lines += [
                "",
                f"Fix the cause, then resume: redisops playbook run {report.playbook.path} "
                f"--resume --run-id {report.run_id}",
            ]
        self.out("\n".join(lines))
