"""The dependency direction (DESIGN.md): checks/ and engine/ import no network, SSH, CLI or
table library, and checks/ reaches no adapter, session or renderer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "redisops"
BANNED_LIBS = {"redis", "paramiko", "typer", "click", "tabulate", "socket"}
BANNED_FOR_CHECKS = {
    "redisops.redis_node",
    "redisops.session",
    "redisops.cli",
    "redisops.output",
    "redisops.output_checks",
    "redisops.ssh",
    "redisops.state",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", _files("checks"), ids=lambda p: p.name)
def test_checks_import_no_network_cli_or_rendering_library(path: Path) -> None:
    mods = _imports(path)
    assert not {m for m in mods if m.split(".")[0] in BANNED_LIBS}
    assert not {m for m in mods if any(m == b or m.startswith(b + ".") for b in BANNED_FOR_CHECKS)}


@pytest.mark.parametrize(
    "path", [p for p in _files("engine") if p.name != "server.py"], ids=lambda p: p.name
)
def test_engine_core_imports_no_network_or_cli_library(path: Path) -> None:
    assert not {m for m in _imports(path) if m.split(".")[0] in BANNED_LIBS}
