"""TLS: ``rediss://`` and ``--tls --cacert/--cert/--key`` against redis-server with TLS,
certificates generated for the test. Verification is on by default."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from redisops.cli import app
from tests.harness import REDIS_SERVER, free_port, wait_until

pytestmark = [pytest.mark.redis_server, pytest.mark.tool("openssl")]
runner = CliRunner()


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tls")
    openssl(
        "req",
        "-x509",
        "-new",
        "-nodes",
        "-newkey",
        "rsa:2048",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=redisops test CA",
        cwd=d,
    )
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name in ("server", "client"):
        openssl(
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "rsa:2048",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={'localhost' if name == 'server' else 'ops'}",
            cwd=d,
        )
        openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            cwd=d,
        )
    return d


@pytest.fixture
def tls_pair(certs: Path, tmp_path: Path) -> Iterator[tuple[int, int]]:
    """A TLS-only master and a replica replicating over TLS; clients must present a cert."""
    ports = [free_port(), free_port()]
    procs = []
    for i, port in enumerate(ports):
        args = [
            REDIS_SERVER,
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(tmp_path),
            "--dbfilename",
            f"{port}.rdb",
            "--tls-cert-file",
            str(certs / "server.pem"),
            "--tls-key-file",
            str(certs / "server.key"),
            "--tls-ca-cert-file",
            str(certs / "ca.pem"),
            "--tls-auth-clients",
            "yes",
            "--tls-replication",
            "yes",
            "--repl-diskless-sync-delay",
            "0",
            "--logfile",
            str(tmp_path / f"{port}.log"),
        ]
        if i:
            args += ["--replicaof", "127.0.0.1", str(ports[0])]
        procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL))
    try:
        yield ports[0], ports[1]
    finally:
        for p in procs:
            p.kill()
            p.wait()


def status(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["status", *args], env={"REDISCLI_AUTH": ""})
    return result.exit_code, result.stdout, result.stderr


def test_status_over_tls_with_client_certificates(certs: Path, tls_pair: tuple[int, int]) -> None:
    master, replica = tls_pair
    opts = [
        "--cacert",
        str(certs / "ca.pem"),
        "--cert",
        str(certs / "client.pem"),
        "--key",
        str(certs / "client.key"),
    ]

    def linked() -> bool:
        code, out, _ = status(f"rediss://127.0.0.1:{master}", *opts, "-o", "json")
        return code == 0 and [n.get("link") for n in json.loads(out)["nodes"]] == [None, "up"]

    wait_until(linked, 15, what="TLS replica link")
    code, out, _ = status(f"127.0.0.1:{replica}", "--tls", *opts, "-o", "json")
    nodes = json.loads(out)["nodes"]
    assert code == 0 and [n["role"] for n in nodes] == ["master", "replica"]


def test_tls_verifies_the_server_certificate_by_default(
    certs: Path, tls_pair: tuple[int, int]
) -> None:
    master, _ = tls_pair
    # no --cacert: the system store does not know this CA, so the connection is refused
    code, out, _ = status(
        f"rediss://127.0.0.1:{master}",
        "--cert",
        str(certs / "client.pem"),
        "--key",
        str(certs / "client.key"),
    )
    assert code == 3
    assert "certificate verify failed" in out.lower() or "certificate" in out.lower()


def test_plain_connection_to_a_tls_port_is_reported_not_crashed(tls_pair: tuple[int, int]) -> None:
    master, _ = tls_pair
    code, out, err = status(f"127.0.0.1:{master}", "--connect-timeout", "1")
    assert code == 3
    assert "Traceback" not in out + err
