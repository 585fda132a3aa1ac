"""Fixtures shared by the integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.ops_helpers import state_env


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Environment for a redisops subprocess/CliRunner whose audit log and lock files
    stay inside the test's temporary directory."""
    return state_env(tmp_path)
