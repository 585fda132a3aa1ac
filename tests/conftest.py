"""Shared fixtures: real redis-server processes (skipped with a reason when not installed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import HAVE_REDIS, SKIP_REASON, RedisFactory


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HAVE_REDIS:
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if "redis_server" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[RedisFactory]:
    """Start real redis-server processes; all are killed at teardown."""
    if not HAVE_REDIS:
        pytest.skip(SKIP_REASON)
    factory = RedisFactory(tmp_path / "redis")
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(autouse=True)
def _private_state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command records the last-known topology under ``$XDG_STATE_HOME``: keep each
    test's state in its own temporary directory, never in the real home."""
    if "XDG_STATE_HOME" not in str(tmp_path):
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
