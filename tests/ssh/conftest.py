"""Fixtures for the SSH tests: real sshd processes (skipped with a reason when missing)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ssh.sshd import HAVE_SSHD, SKIP_REASON, KeyPair, SSHWorld, make_keys


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HAVE_SSHD:
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if "sshd" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def ssh_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    """Host keys (ed25519, RSA) and a client key, generated once per test session."""
    if not HAVE_SSHD:
        pytest.skip(SKIP_REASON)
    return make_keys(tmp_path_factory.mktemp("ssh-keys"))


@pytest.fixture
def ssh_world(tmp_path: Path, ssh_keys: dict[str, KeyPair]) -> Iterator[SSHWorld]:
    """A private client HOME plus sshd servers started on demand; all stopped at teardown."""
    world = SSHWorld(tmp_path, ssh_keys)
    try:
        yield world
    finally:
        world.close()
