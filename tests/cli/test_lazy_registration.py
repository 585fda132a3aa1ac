"""The console script registers only the invoked command's module; it must match the full app."""

from __future__ import annotations

import pytest
import typer

from redisops.cli import COMMAND_MODULES, build_app, command_module


def _names(app: typer.Typer) -> set[str]:
    group = typer.main.get_command(app)
    return set(group.commands)  # type: ignore[attr-defined]


def test_every_command_of_the_full_app_is_mapped_to_its_module() -> None:
    assert _names(build_app()) == set(COMMAND_MODULES)


@pytest.mark.parametrize("module", sorted(set(COMMAND_MODULES.values())))
def test_each_module_registers_exactly_the_commands_mapped_to_it(module: str) -> None:
    expected = {cmd for cmd, mod in COMMAND_MODULES.items() if mod == module}
    assert _names(build_app(module)) == expected


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["status", "127.0.0.1:6379"], "status"),
        (["--debug", "attach", "a:1", "--to", "b:2"], "replica"),
        (["lab", "up"], "lab"),
        (["--help"], None),
        (["--version"], None),
        (["-h", "status"], None),
        (["statsu"], None),  # unknown: the full app suggests the right name
        ([], None),
    ],
)
def test_command_module_picks_the_module_or_the_full_app(
    argv: list[str], expected: str | None
) -> None:
    assert command_module(argv) == expected
