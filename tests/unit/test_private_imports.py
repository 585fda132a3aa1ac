"""No module imports another module's underscore names (make the piece public or move it).

Ruff's ``PLC2701`` (import-private-name) checks imports from other packages only, so this
test walks every module of ``redisops/`` itself: an ``import`` of a name starting with
``_`` from another module, or of a private module (``pkg._mod``) from outside its package,
is refused.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "redisops"


def _module_of(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def violations() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = _module_of(path)
        package = here if path.name == "__init__.py" else here.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                module = node.module
                names = [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                module, names = "", [a.name for a in node.names]
            else:
                continue
            rel = str(path.relative_to(ROOT))
            for name in names:
                full = f"{module}.{name}" if module else name
                if not full.startswith("redisops"):
                    continue
                parts = full.split(".")
                for i, part in enumerate(parts):
                    if not _private(part):
                        continue
                    owner = ".".join(parts[:i])  # the package or module that owns the name
                    if owner != here and not (package + ".").startswith(owner + "."):
                        out.append((rel, ".".join(parts[: i + 1])))
                    elif owner != here and i < len(parts) - 1:
                        continue  # a private module of our own package
                    break
    return out


def test_no_module_imports_another_modules_underscore_names() -> None:
    found = violations()
    assert not found, "import of another module's private name: " + ", ".join(
        f"{where} imports {what}" for where, what in found
    )


def test_the_walk_finds_a_private_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test itself can fail: a module importing another's ``_name`` is found."""
    pkg = tmp_path / "redisops"
    (pkg / "ops").mkdir(parents=True)
    (pkg / "ops" / "a.py").write_text("def _hidden() -> None: ...\n")
    (pkg / "ops" / "b.py").write_text("from redisops.ops.a import _hidden\n")
    (pkg / "ops" / "c.py").write_text("from redisops.ops.a import visible\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    assert violations() == [("redisops/ops/b.py", "redisops.ops.a._hidden")]
