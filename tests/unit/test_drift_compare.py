"""The pure drift comparison, on hand-built node snapshots."""

from __future__ import annotations

import json

from redisops.checks.drift import NodeConfig, compare
from redisops.checks.versions import table_for
from redisops.redisconf import parse_config


def defaults(server: str, version: str, **changes: str) -> dict[str, str]:
    """CONFIG GET * of a node of that version at its defaults, plus ``changes``."""
    table, _ = table_for(server, version)
    out = {spec.name: spec.default for spec in table.keys.values()}
    out.update({k.replace("_", "-"): v for k, v in changes.items()})
    return out


def node(
    name: str,
    role: str,
    version: str = "7.0.15",
    server: str = "redis",
    file: str = "",
    **running: str,
) -> NodeConfig:
    return NodeConfig(
        name,
        role=role,
        server=server,
        version=version,
        running=defaults(server, version, **running),
        file=parse_config(file, f"/etc/{name}.conf"),
        file_path=f"/etc/{name}.conf",
    )


def test_redis_62_ziplist_and_70_listpack_names_compare_as_one_setting() -> None:
    old = node(
        "a:1",
        "replica",
        "6.2.14",
        hash_max_ziplist_entries="256",
        file="hash-max-ziplist-entries 256\n",
    )
    new = node(
        "b:1", "master", file="hash-max-listpack-entries 256\n", hash_max_listpack_entries="256"
    )
    report = compare([new, old])
    assert [f for f in report.findings if f.parameter.startswith("hash-")] == []


def test_listpack_name_in_a_62_file_is_an_unknown_directive() -> None:
    old = node("a:1", "replica", "6.2.14", file="hash-max-listpack-entries 256\n")
    report = compare([old])
    (f,) = [f for f in report.findings if f.cls == "unknown-directive"]
    assert f.parameter == "hash-max-listpack-entries" and f.severity == "critical"


def test_replica_older_than_its_master_is_a_critical_version_finding() -> None:
    report = compare([node("m:1", "master"), node("r:1", "replica", "6.2.14")])
    (f,) = [f for f in report.findings if f.cls == "version-mismatch"]
    assert f.severity == "critical" and f.differs == ("r:1",)
    assert "cannot load the RDB" in f.message


def test_valkey_primaryauth_is_compared_with_redis_masterauth_and_never_shown() -> None:
    r = node("m:1", "master", masterauth="pw-one")
    v = node("v:1", "replica", "8.1.8", "valkey", primaryauth="pw-two")
    report = compare([r, v])
    (f,) = [f for f in report.findings if f.parameter == "masterauth" and f.node is None]
    assert f.severity == "critical" and f.differs == ("v:1",)
    text = json.dumps(report.to_dict())
    assert "pw-one" not in text and "pw-two" not in text


def test_only_the_replica_class_of_output_buffer_limits_must_match() -> None:
    a = node(
        "m:1",
        "master",
        client_output_buffer_limit="normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
    )
    b = node(
        "r:1",
        "replica",
        client_output_buffer_limit="normal 1 1 1 slave 268435456 67108864 60 pubsub 1 1 1",
    )
    c = node(
        "s:1",
        "replica",
        client_output_buffer_limit="normal 0 0 0 slave 1073741824 67108864 60 pubsub 33554432 8388608 60",
    )
    report = compare([a, b, c])
    (f,) = [
        f for f in report.findings if f.parameter == "client-output-buffer-limit" and f.node is None
    ]
    assert f.differs == ("s:1",)
    assert f.values["s:1"] == "replica 1gb 64mb 60"


def test_per_node_keys_are_never_compared_across_nodes() -> None:
    a = node("m:1", "master", port="6379", dir="/a", file="port 6379\ndir /a\n")
    b = node("r:1", "replica", port="6380", dir="/b", file="port 6380\ndir /b\n")
    report = compare([a, b])
    assert report.findings == ()
    assert not report.drift


def test_relative_dir_in_the_file_matches_the_absolute_running_dir() -> None:
    a = node("m:1", "master", dir="/var/lib/redis/6379", file="dir ./6379\n")
    assert compare([a]).findings == ()
