"""Shared fixtures: real server processes, and the server matrix.

A test runs on Redis 7.0 (the Debian package) unless it is marked ``every_server``: then
it runs once per server of the matrix (Redis 7.0, Redis 6.2, Valkey 8.1; see
``tests/servers.py``), through the ``server`` fixture (``redis_factory`` starts that
server) or, for the attach scenarios, the ``backend`` fixture (each server plus the
embedded lab).

A test whose server, ``sshd`` or other tool (``@pytest.mark.tool("openssl")``) is missing
is skipped with the reason on a developer's machine, and fails under ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import RedisFactory, missing, require
from tests.integration.predictions import LOG_ENV, summary
from tests.servers import BY_NAME, DEFAULT, ServerSpec, matrix

SSHD = "/usr/sbin/sshd"
_OWN_LOG = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """One prediction log per run (pytest-xdist workers inherit the variable)."""
    if LOG_ENV not in os.environ:
        fd, path = tempfile.mkstemp(prefix="redisops-predictions-", suffix=".jsonl")
        os.close(fd)
        os.environ[LOG_ENV] = path
        config.stash[_OWN_LOG] = path


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    path = terminalreporter.config.stash.get(_OWN_LOG, None)
    if path is None:
        return
    lines = summary(Path(path))
    if lines:
        terminalreporter.write_sep("-", "engine predictions vs real resyncs, per server")
        for line in lines:
            terminalreporter.write_line(line)
    Path(path).unlink(missing_ok=True)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    every = metafunc.definition.get_closest_marker("every_server") is not None
    names = [s.name for s in matrix()] if every else [DEFAULT.name]
    if "backend" in metafunc.fixturenames and metafunc.module.__name__.startswith(
        "tests.integration"
    ):
        metafunc.parametrize(
            "backend",
            [pytest.param(n, marks=pytest.mark.redis_server) for n in names] + ["lab"],
            indirect=True,
        )
    elif every and "server" in metafunc.fixturenames:
        metafunc.parametrize("server", names, indirect=True)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any fixture runs: the servers and tools the test needs are here, or it is
    skipped (failed under CI)."""
    if item.get_closest_marker("redis_server") is not None:
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        name = params.get("backend") or params.get("server") or DEFAULT.name
        if name in BY_NAME:
            require(BY_NAME[name])
    if item.get_closest_marker("sshd") is not None and not Path(SSHD).exists():
        missing(f"{SSHD} not installed (apt-get install -y openssh-server)")
    for mark in item.iter_markers("tool"):
        name = str(mark.args[0])
        if shutil.which(name) is None:
            package = mark.kwargs.get("apt", name)
            missing(f"{name} not installed (apt-get install -y {package})")


@pytest.fixture
def server(request: pytest.FixtureRequest) -> ServerSpec:
    """The server this test runs on (Redis 7.0 unless the test is ``every_server``)."""
    return require(BY_NAME[getattr(request, "param", DEFAULT.name)])


@pytest.fixture
def redis_factory(tmp_path: Path, server: ServerSpec) -> Iterator[RedisFactory]:
    """Start real server processes; all are killed at teardown."""
    factory = RedisFactory(tmp_path / "redis", server)
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
