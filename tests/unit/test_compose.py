"""docker-compose.yml is shipped for users; no Docker engine runs here, so check its
structure: what it starts, how the nodes point at each other, what it exposes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from redisops.inventory import parse_inventory

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_services_are_a_master_two_replicas_three_sentinels_and_redisops() -> None:
    services = compose()["services"]
    assert set(services) == {
        "redis-master",
        "redis-replica-1",
        "redis-replica-2",
        "sentinel-1",
        "sentinel-2",
        "sentinel-3",
        "redisops",
    }
    for name, svc in services.items():
        if name != "redisops":
            assert svc["image"] == "redis:7.0", name


def test_replicas_follow_the_master_and_announce_resolvable_names() -> None:
    services = compose()["services"]
    for name in ("redis-replica-1", "redis-replica-2"):
        cmd = services[name]["command"]
        i = cmd.index("--replicaof")
        assert cmd[i + 1 : i + 3] == ["redis-master", "6379"]
        assert cmd[cmd.index("--replica-announce-ip") + 1] == name
        assert services[name]["depends_on"]["redis-master"]["condition"] == "service_healthy"


def test_persistence_is_on_so_a_restarted_master_does_not_wipe_its_replicas() -> None:
    for name, svc in compose()["services"].items():
        if name.startswith("redis-"):
            cmd = svc["command"]
            assert cmd[cmd.index("--appendonly") + 1] == "yes", name
            assert svc["volumes"], name


def test_sentinels_monitor_the_master_with_a_majority_quorum() -> None:
    services = compose()["services"]
    for name in ("sentinel-1", "sentinel-2", "sentinel-3"):
        script = services[name]["command"][0]
        assert "sentinel monitor cache redis-master 6379 2" in script
        assert "--sentinel" in script


def test_ports_are_published_on_loopback_only() -> None:
    for name, svc in compose()["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_redisops_service_builds_this_package_and_reads_a_valid_inventory() -> None:
    svc = compose()["services"]["redisops"]
    assert svc["build"] == "."
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install" in dockerfile and 'ENTRYPOINT ["redisops"]' in dockerfile
    host_path = svc["volumes"][0].split(":")[0]
    inv = parse_inventory(yaml.safe_load((ROOT / host_path).read_text()))
    cluster = inv.cluster("cache")
    assert [str(n.address) for n in cluster.nodes] == [
        "redis-master:6379",
        "redis-replica-1:6379",
        "redis-replica-2:6379",
    ]
    assert cluster.sentinel_master == "cache" and len(cluster.sentinels) == 3
