"""SSH settings resolution and known_hosts rules, without a server."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from redisops.errors import BadInput, HostKeyError, InventoryError
from redisops.inventory import ConnectOptions, SSHSettings, parse_inventory
from redisops.model import Address, NodeInfo
from redisops.ssh import known_hosts
from redisops.ssh.settings import Resolver, SSHOptions, route


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    return home


def ssh_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "ssh_config"
    path.write_text(text)
    return str(path)


def test_most_specific_setting_wins_options_then_node_then_cluster_then_ssh_config(
    tmp_path: Path,
) -> None:
    cfg = ssh_config(
        tmp_path,
        "Host db1\n  HostName 10.0.0.1\n  User fromconfig\n  Port 2200\n"
        "  IdentityFile ~/.ssh/config_key\n  UserKnownHostsFile ~/kh1 ~/kh2\n",
    )
    cluster = SSHSettings(user="fromcluster", port=2201, ssh_config=cfg)
    node = SSHSettings(port=2202).over(cluster)
    t = Resolver(SSHOptions()).node("db1", node).target
    assert (t.hostname, t.user, t.port) == ("10.0.0.1", "fromcluster", 2202)
    assert t.identity_files[-1].endswith("/.ssh/config_key")
    assert t.user_known_hosts[0].endswith("/kh1") and t.user_known_hosts[1].endswith("/kh2")
    assert t.known_hosts_name == "[10.0.0.1]:2202"
    t = Resolver(SSHOptions(user="cli", port=22, key="/k")).node("db1", node).target
    assert (t.user, t.port, t.identity_files[0], t.known_hosts_name) == (
        "cli",
        22,
        "/k",
        "10.0.0.1",
    )
    t = Resolver(SSHOptions()).node("db1", SSHSettings(ssh_config=cfg)).target
    assert (t.user, t.port) == ("fromconfig", 2200)


def test_defaults_without_any_setting(_home: Path) -> None:
    t = Resolver(SSHOptions()).node("cache-7", SSHSettings(ssh_config=None)).target
    assert t.port == 22 and t.known_hosts_name == "cache-7"
    assert t.user_known_hosts[0] == str(_home / ".ssh" / "known_hosts")
    assert "/etc/ssh/ssh_known_hosts" in t.global_known_hosts
    assert not t.explicit_identities and t.identity_files[0].endswith("id_ed25519")


def test_proxy_jump_hops_chain_in_order_and_keep_the_policy_settings(tmp_path: Path) -> None:
    cfg = ssh_config(tmp_path, "Host gw2\n  HostName 192.0.2.2\n  User gwuser\n")
    settings = SSHSettings(
        proxy_jump="ops@gw1:2222,gw2", known_hosts="/kh", identity_file="/id", ssh_config=cfg
    )
    t = Resolver(SSHOptions(accept_new=True)).node("10.0.0.9", settings).target
    hops = route(t)
    assert [(h.user, h.hostname, h.port) for h in hops[:2]] == [
        ("ops", "gw1", 2222),
        ("gwuser", "192.0.2.2", 22),
    ]
    assert hops[-1] is t
    for hop in hops:
        assert hop.user_known_hosts == ("/kh",) and hop.accept_new
        assert "/id" in hop.identity_files


def test_ssh_config_proxy_jump_that_loops_is_refused(tmp_path: Path) -> None:
    cfg = ssh_config(tmp_path, "Host *\n  ProxyJump gw\n")
    with pytest.raises(BadInput, match="nests more than"):
        Resolver(SSHOptions()).node("db", SSHSettings(ssh_config=cfg))


def test_inventory_ssh_keys_per_cluster_and_node() -> None:
    inv = parse_inventory(
        {
            "clusters": {
                "c": {
                    "nodes": [
                        "10.0.0.1:6379",
                        {"address": "10.0.0.2:6379", "ssh": {"port": 2222, "tunnel": True}},
                    ],
                    "ssh": {"user": "admin", "key_file": "~/.ssh/k", "sudo": True},
                }
            }
        }
    )
    c = inv.cluster("c")
    one, two = c.ssh_for(Address("10.0.0.1", 6379)), c.ssh_for(Address("10.0.0.2", 6379))
    assert one is not None and two is not None
    assert (one.user, one.port, one.identity_file, one.sudo, one.tunnel) == (
        "admin",
        None,
        "~/.ssh/k",
        True,
        None,
    )
    assert (two.user, two.port, two.tunnel) == ("admin", 2222, True)


@pytest.mark.parametrize(
    ("ssh", "message"),
    [
        ({"passphrase": "x"}, "literal secret"),
        ({"prot": 22}, "unknown ssh keys"),
        ({"port": "22"}, "ssh.port"),
        ({"tunnel": "yes"}, "ssh.tunnel must be true or false"),
        ({"service": "systemctl restart redis"}, "must contain {verb}"),
    ],
)
def test_bad_ssh_settings_are_refused_with_the_reason(ssh: dict[str, object], message: str) -> None:
    with pytest.raises(InventoryError, match=message):
        parse_inventory({"clusters": {"c": {"nodes": ["h:1"], "ssh": ssh}}})


# ----------------------------------------------------------------------------- known_hosts

ED = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519" + b"K" * 36).decode()
OTHER = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519" + b"Z" * 36).decode()


def lookup(tmp_path: Path, text: str, name: str = "[db1]:2222") -> known_hosts.Known:
    path = tmp_path / "known_hosts"
    path.write_text(text)
    return known_hosts.lookup(name, [str(path)])


def test_patterns_negation_and_ports_follow_openssh(tmp_path: Path) -> None:
    text = f"[db*]:2222,!db9 ssh-ed25519 {ED}\n"
    assert lookup(tmp_path, text).key_types == ["ssh-ed25519"]
    assert lookup(tmp_path, text, "db1").keys == []  # port 22 is a different name
    assert lookup(tmp_path, f"*,!db1 ssh-ed25519 {ED}\n", "db1").keys == []


def test_only_known_key_types_are_offered(tmp_path: Path) -> None:
    rsa = base64.b64encode(b"\x00\x00\x00\x07ssh-rsa" + b"R" * 40).decode()
    known = lookup(tmp_path, f"[db1]:2222 ssh-rsa {rsa}\n")
    assert known.algorithms() == ["rsa-sha2-512", "rsa-sha2-256"]


def test_changed_unknown_and_new_decisions(tmp_path: Path) -> None:
    known = lookup(tmp_path, f"[db1]:2222 ssh-ed25519 {ED}\n")
    blob = base64.b64decode(ED)
    assert known_hosts.check(known, "ssh-ed25519", blob, accept_new=False, host="h") == "known"
    with pytest.raises(HostKeyError, match="CHANGED"):
        known_hosts.check(known, "ssh-ed25519", base64.b64decode(OTHER), accept_new=True, host="h")
    empty = lookup(tmp_path, "# nothing\n")
    with pytest.raises(HostKeyError, match="unknown"):
        known_hosts.check(empty, "ssh-ed25519", blob, accept_new=False, host="h")
    assert known_hosts.check(empty, "ssh-ed25519", blob, accept_new=True, host="h") == "new"


def test_recorded_lines_are_appended_under_a_lock_with_0600(tmp_path: Path) -> None:
    path = tmp_path / "new dir" / "known_hosts"
    blob = base64.b64decode(ED)
    known_hosts.record(str(path), "[db1]:2222", "ssh-ed25519", blob)
    known_hosts.record(str(path), "db2", "ssh-ed25519", blob, hashed=True)
    lines = path.read_text().splitlines()
    assert lines[0] == f"[db1]:2222 ssh-ed25519 {ED}"
    assert lines[1].startswith("|1|") and known_hosts.host_matches("db2", lines[1].split()[0])
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700


# ----------------------------------------------------------------------------- --persist


def test_persist_is_refused_only_where_no_config_file_can_be_edited(tmp_path: Path) -> None:
    """CONFIG renamed away: --persist still works when redisops can edit the node's file
    itself (on this machine, or over SSH with config_file); otherwise preflight refuses."""
    import dataclasses

    from redisops.inventory import ClusterConfig
    from redisops.ops.common import persist_refusal
    from redisops.session import Session
    from tests.builders import master

    def hardened(address: str, config_file: str = "") -> NodeInfo:
        node = master(address)
        info = {**node.info, "config_file": config_file}
        return dataclasses.replace(node, info=info, unavailable=frozenset({"CONFIG"}))

    remote = Address("192.0.2.7", 6379)
    cluster = ClusterConfig(
        "c",
        (),
        ssh=SSHSettings(user="ops"),
        node_ssh={remote: SSHSettings(config_file="/etc/redis/redis.conf")},
    )
    with_file = Session(ConnectOptions(), cluster=cluster)
    bare = Session(ConnectOptions())
    local = hardened("127.0.0.1:7000", "/etc/redis/7000.conf")
    far = hardened("192.0.2.7:6379")
    assert persist_refusal([local], bare) is None
    assert persist_refusal([far], with_file) is None
    refusal = persist_refusal([far, hardened("127.0.0.1:7001")], bare)
    assert refusal is not None and refusal.code == "persist_unavailable"
    assert "192.0.2.7:6379, 127.0.0.1:7001" in refusal.message
    assert "config_file" in refusal.message
