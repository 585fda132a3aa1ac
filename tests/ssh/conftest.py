"""Fixtures for the SSH tests: real sshd processes (skipped with a reason when missing;
a failure under ``CI=true``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import missing
from tests.ssh.sshd import HAVE_SSHD, SKIP_REASON, KeyPair, SSHWorld, make_keys


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked ``sshd`` need sshd and ssh-keygen: skipped with the reason, or failed
    under ``CI=true`` (see tests/harness.py ``missing``)."""
    if not HAVE_SSHD and item.get_closest_marker("sshd") is not None:
        missing(SKIP_REASON)


@pytest.fixture(scope="session")
def ssh_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    """Host keys (ed25519, RSA) and a client key, generated once per test session."""
    if not HAVE_SSHD:
        missing(SKIP_REASON)
    return make_keys(tmp_path_factory.mktemp("ssh-keys"))


@pytest.fixture
def ssh_world(tmp_path: Path, ssh_keys: dict[str, KeyPair]) -> Iterator[SSHWorld]:
    """A private client HOME plus sshd servers started on demand; all stopped at teardown."""
    world = SSHWorld(tmp_path, ssh_keys)
    try:
        yield world
    finally:
        world.close()
