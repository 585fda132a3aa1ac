"""Host-key verification and authentication against a real sshd."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from redisops.errors import ExitCode, HostKeyError, Unreachable
from redisops.inventory import SSHSettings
from redisops.retry import NO_RETRY
from redisops.ssh.known_hosts import hash_name, parse_line
from redisops.ssh.pool import SSHPool
from redisops.ssh.settings import Resolver, SSHOptions, SSHTarget
from tests.ssh.sshd import SSHServer, SSHWorld, keygen

pytestmark = pytest.mark.sshd


@pytest.fixture(autouse=True)
def _client_home(ssh_world: SSHWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(ssh_world.home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


def target(
    world: SSHWorld, srv: SSHServer, *, accept_new: bool = False, **settings: object
) -> SSHTarget:
    base = SSHSettings(port=srv.port, identity_file=str(world.client_key.path))
    s = dataclasses.replace(base, **settings)  # type: ignore[arg-type]
    return Resolver(SSHOptions(accept_new=accept_new)).node(srv.host, s).target


def connect(t: SSHTarget, notes: list[str] | None = None) -> str:
    """Connect, run ``true`` over the session, return the negotiated host key type."""
    pool = SSHPool(retry=NO_RETRY, notify=(notes.append if notes is not None else None))
    try:
        conn = pool.connection(t)
        chan = conn.open_session()
        chan.exec_command("true")
        assert chan.recv_exit_status() == 0
        chan.close()
        return conn.transport.get_remote_server_key().get_name()
    finally:
        pool.close()


def test_unknown_host_key_is_refused_naming_type_fingerprint_and_files(ssh_world: SSHWorld) -> None:
    srv = ssh_world.server()
    with pytest.raises(HostKeyError) as err:
        connect(target(ssh_world, srv))
    text = str(err.value)
    assert err.value.exit_code is ExitCode.HOST_KEY
    assert "unknown" in text and srv.known_hosts_name in text
    assert "ssh-ed25519" in text
    assert ssh_world.keys["host_ed25519"].fingerprint() in text
    assert str(ssh_world.known_hosts) in text and "/etc/ssh/ssh_known_hosts" in text
    assert "--ssh-accept-new" in text
    assert "\n" not in text
    assert not ssh_world.known_hosts.exists()


def test_accept_new_records_the_key_and_the_next_run_verifies_it(ssh_world: SSHWorld) -> None:
    srv = ssh_world.server()
    notes: list[str] = []
    assert connect(target(ssh_world, srv, accept_new=True), notes) == "ssh-ed25519"
    recorded = ssh_world.known_hosts.read_text()
    entry = parse_line(recorded, "known_hosts", 1)
    assert entry is not None and recorded.count("\n") == 1
    # hashed or not as /etc/ssh/ssh_config's HashKnownHosts says (Debian: yes)
    assert entry.matches(srv.known_hosts_name)
    assert (entry.key_type, entry.blob) == ("ssh-ed25519", ssh_world.keys["host_ed25519"].blob)
    assert notes and ssh_world.keys["host_ed25519"].fingerprint() in notes[0]
    # without the flag, the recorded key is now what is checked
    assert connect(target(ssh_world, srv)) == "ssh-ed25519"
    assert ssh_world.known_hosts.read_text() == recorded


def test_changed_host_key_is_refused_even_with_accept_new(
    ssh_world: SSHWorld, tmp_path: Path
) -> None:
    srv = ssh_world.server()
    impostor = keygen(tmp_path / "other_ed25519", "ed25519")
    ssh_world.known_hosts.write_text(srv.known_hosts_line(impostor))
    before = ssh_world.known_hosts.read_text()
    for accept_new in (False, True):
        with pytest.raises(HostKeyError) as err:
            connect(target(ssh_world, srv, accept_new=accept_new))
        text = str(err.value)
        assert "CHANGED" in text
        assert ssh_world.keys["host_ed25519"].fingerprint() in text
        assert impostor.fingerprint() in text
        assert f"{ssh_world.known_hosts}:1" in text
    assert ssh_world.known_hosts.read_text() == before


@pytest.mark.parametrize("known", ["host_ed25519", "host_rsa"])
def test_a_host_known_by_one_key_type_is_verified_while_it_also_offers_the_other(
    ssh_world: SSHWorld, known: str
) -> None:
    """The server has ed25519 and RSA keys; only one is in known_hosts. Only that type is
    offered, so the handshake uses it (paramiko's SSHClient prefers its own first type)."""
    srv = ssh_world.server()
    ssh_world.trust(srv, ssh_world.keys[known])
    assert connect(target(ssh_world, srv)) == ssh_world.keys[known].key_type


def test_hashed_known_hosts_entry_is_matched(ssh_world: SSHWorld) -> None:
    srv = ssh_world.server()
    ssh_world.known_hosts.write_text(srv.known_hosts_line(name=hash_name(srv.known_hosts_name)))
    assert connect(target(ssh_world, srv)) == "ssh-ed25519"


def test_a_host_known_only_through_a_cert_authority_is_refused_as_not_supported(
    ssh_world: SSHWorld, tmp_path: Path
) -> None:
    srv = ssh_world.server()
    ca = keygen(tmp_path / "ca", "ed25519")
    ssh_world.known_hosts.write_text(f"@cert-authority [127.0.0.1]:* {ca.public_line}\n")
    for accept_new in (False, True):
        with pytest.raises(HostKeyError, match=r"@cert-authority.*does not support"):
            connect(target(ssh_world, srv, accept_new=accept_new))
    assert ssh_world.known_hosts.read_text().startswith("@cert-authority")


def test_a_revoked_host_key_is_refused_even_when_also_listed(ssh_world: SSHWorld) -> None:
    srv = ssh_world.server()
    key = ssh_world.keys["host_ed25519"]
    ssh_world.known_hosts.write_text(srv.known_hosts_line(key) + f"@revoked * {key.public_line}\n")
    with pytest.raises(HostKeyError, match="@revoked"):
        connect(target(ssh_world, srv))


def test_the_known_hosts_file_from_the_inventory_is_used(
    ssh_world: SSHWorld, tmp_path: Path
) -> None:
    srv = ssh_world.server()
    own = tmp_path / "redisops_known_hosts"
    own.write_text(srv.known_hosts_line())
    assert connect(target(ssh_world, srv, known_hosts=str(own))) == "ssh-ed25519"
    with pytest.raises(HostKeyError) as err:
        connect(target(ssh_world, srv))  # ~/.ssh/known_hosts does not have it
    assert str(ssh_world.known_hosts) in str(err.value)


def test_wrong_client_key_is_refused_with_the_keys_tried(
    ssh_world: SSHWorld, tmp_path: Path
) -> None:
    srv = ssh_world.server()
    ssh_world.trust(srv)
    stranger = keygen(tmp_path / "stranger", "ed25519")
    with pytest.raises(Unreachable) as err:
        connect(target(ssh_world, srv, identity_file=str(stranger.path)))
    text = str(err.value)
    assert err.value.exit_code is ExitCode.UNREACHABLE
    assert "authentication failed" in text and str(stranger.path) in text
    assert stranger.fingerprint() in text


def test_encrypted_key_uses_the_passphrase_from_the_named_variable_and_never_shows_it(
    ssh_world: SSHWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "correct horse battery staple"
    locked = keygen(tmp_path / "locked", "ed25519", passphrase=secret)
    srv = ssh_world.server(authorized=[locked])
    ssh_world.trust(srv)
    t = target(ssh_world, srv, identity_file=str(locked.path), passphrase_env="TEST_SSH_PASS")
    with pytest.raises(Unreachable) as err:
        connect(t)
    assert "TEST_SSH_PASS is not set" in str(err.value)
    monkeypatch.setenv("TEST_SSH_PASS", "wrong " + secret)
    with pytest.raises(Unreachable) as err:
        connect(t)
    assert "wrong passphrase" in str(err.value) and secret not in str(err.value)
    monkeypatch.setenv("TEST_SSH_PASS", secret)
    assert connect(t) == "ssh-ed25519"
