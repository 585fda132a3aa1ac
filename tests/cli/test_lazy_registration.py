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


@pytest.mark.parametrize("argv", [["--help"], [], ["statsu"], ["--version"]])
def test_the_listing_app_prints_what_the_full_app_prints(argv: list[str]) -> None:
    """``redisops --help`` (and the other root-level runs) skip converting every command's
    options; what they print must not change."""
    from typer.testing import CliRunner

    from redisops.cli import build_listing_app

    runner = CliRunner()
    full = runner.invoke(build_app(), argv)
    listing = runner.invoke(build_listing_app(), argv)
    assert (listing.exit_code, listing.stdout, listing.stderr) == (
        full.exit_code,
        full.stdout,
        full.stderr,
    )
    assert listing.stdout or listing.stderr
