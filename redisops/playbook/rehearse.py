"""``playbook run FILE --rehearse``: run the procedure for real on a copy first.

1. Read the real cluster (the nodes the playbook's address vars name, and the inventory
   cluster that lists them) and copy it into an embedded-engine lab
   (:func:`redisops.lab.up_from_cluster`): same topology, replication ids, offsets and
   backlogs, replication config, a synthetic dataset of the same size class; a node that
   is down is down in the copy too.
2. Run the playbook there, for real, with every address var pointed at its copy: every
   operation plans, acts and verifies against engine nodes that answer as the real ones
   would. Output names the real addresses.
3. Report; only if every step passed is the real run offered (``--yes`` takes it).

The copy lives in a temporary directory with its own journal and audit log (and the
backups a ``backup`` step takes: never in the real destination), and is stopped and
removed afterwards, whatever happened.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from redisops.playbook.actions import ActionContext, Connector, peers
from redisops.playbook.runner import Reporter, Runner, RunOptions, RunReport
from redisops.playbook.schema import Playbook

_LAB_ADDRESS = re.compile(r"\b127\.0\.0\.1:(\d+)\b")


class Translator:
    """Lab addresses back to the real ones they copy, in text and in data."""

    def __init__(self, real_to_lab: Mapping[str, str]) -> None:
        self.to_lab = dict(real_to_lab)
        self.to_real = {lab: real for real, lab in real_to_lab.items()}

    def text(self, value: str) -> str:
        return _LAB_ADDRESS.sub(lambda m: self.to_real.get(m.group(0), m.group(0)), value)

    def data(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        return value

    def lab(self, address: str) -> str:
        return self.to_lab.get(address, address)


@contextmanager
def _state_in(directory: Path) -> Iterator[None]:
    """Locks, check baselines, markers and last-known topologies of the rehearsal go to
    ``directory``: the copy must leave no trace in the real state (nor wait on its locks)."""
    saved = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(directory)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("XDG_STATE_HOME", None)
        else:
            os.environ["XDG_STATE_HOME"] = saved


def address_vars(book: Playbook, variables: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for spec in book.vars:
        value = variables.get(spec.name)
        if spec.type == "address" and isinstance(value, str):
            out.append(value)
        elif spec.type == "addresses" and isinstance(value, list):
            out.extend(str(v) for v in value)
    return list(dict.fromkeys(out))


def lab_vars(book: Playbook, variables: Mapping[str, Any], tr: Translator) -> dict[str, Any]:
    out = dict(variables)
    for spec in book.vars:
        value = out.get(spec.name)
        if spec.type == "address" and isinstance(value, str):
            out[spec.name] = tr.lab(value)
        elif spec.type == "addresses" and isinstance(value, list):
            out[spec.name] = [tr.lab(str(v)) for v in value]
    return out


def rehearse(
    book: Playbook,
    variables: Mapping[str, Any],
    connector: Connector,
    reporter: Callable[[Translator], Reporter],
    *,
    max_bytes: int | None = None,
    announce: Callable[[str], None] = lambda text: None,
) -> tuple[RunReport, Translator]:
    """Copy the cluster, run ``book`` on the copy, tear the copy down; the report."""
    from redisops import lab
    from redisops.inventory import ConnectOptions, load_inventory
    from redisops.model import parse_target
    from redisops.session import Session

    seeds = address_vars(book, variables)
    cluster = connector.cluster
    probe_ctx = ActionContext(connector)
    extra: list[str] = []
    for address in seeds:
        found, name = peers(probe_ctx, address)
        extra += found
        cluster = cluster or name
    work = Path(tempfile.mkdtemp(prefix="redisops-rehearsal-"))
    try:
        with connector.session(list(dict.fromkeys([*seeds, *extra])), cluster) as session:
            state = lab.up_from_cluster(work / "lab", session, max_bytes=max_bytes)
        tr = Translator(state.clone_of)
        from redisops.clone import describe

        spec = json.loads((work / "lab" / "clone.json").read_text())
        announce("\n".join(["Copy of the cluster for the rehearsal:", *describe(spec), ""]))
        inventory = work / "redisops.yml"
        nodes = ", ".join(f"127.0.0.1:{p}" for p in state.ports)
        inventory.write_text(f"clusters:\n  rehearsal:\n    nodes: [{nodes}]\n")

        copy = load_inventory(inventory).cluster("rehearsal")

        def make(seeds: Sequence[str], cluster: str | None) -> Any:
            # the copy has no auth: no credential (not even REDISCLI_AUTH) is sent to it
            specs = [parse_target(tr.lab(s)) for s in seeds] or list(copy.nodes)
            return Session(options=ConnectOptions(), seeds=tuple(specs), cluster=copy)

        ctx = ActionContext(
            Connector(make, inventory, "rehearsal"), audit_path=work / "audit.log", scratch=work
        )
        opts = RunOptions(yes=True, journal_dir=work / "runs", rehearsal=True)
        with _state_in(work / "state"):
            report = Runner(book, lab_vars(book, variables, tr), ctx, opts, reporter(tr)).run()
        return report, tr
    finally:
        try:
            lab.down(work / "lab")
        finally:
            shutil.rmtree(work, ignore_errors=True)
