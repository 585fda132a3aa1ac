"""``redisops drift`` against real redis-server nodes started from real config files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.harness import RedisFactory, replicate, wait_link_up, wait_until
from tests.integration.conf_nodes import ConfNode, start_from_file
from tests.integration.ops_helpers import invoke, invoke_json

pytestmark = pytest.mark.redis_server


def group(factory: RedisFactory, master_text: str, *replica_texts: str) -> list[ConfNode]:
    master = start_from_file(factory, master_text)
    replicas = [start_from_file(factory, text) for text in replica_texts]
    for r in replicas:
        replicate(r, master)
    for r in replicas:
        wait_link_up(r)
    return [master, *replicas]


def findings(doc: dict[str, Any], **match: str) -> list[dict[str, Any]]:
    report = doc.get("report", doc)
    return [f for f in report["findings"] if all(f.get(k) == v for k, v in match.items())]


def test_same_settings_in_alias_and_unit_spellings_are_no_drift(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    nodes = group(
        redis_factory,
        "maxmemory 1gb\nslave-read-only yes\nhash-max-ziplist-entries 256\n"
        "client-output-buffer-limit replica 512mb 128mb 60\nsave 900 1\nsave 300 10\n"
        "min-slaves-to-write 0\nnotify-keyspace-events KEA\nappendfsync EVERYSEC\n",
        "maxmemory 1073741824\nreplica-read-only YES\nhash-max-listpack-entries 256\n"
        "client-output-buffer-limit slave 536870912 134217728 60\nsave 300 10 900 1\n"
        "min-replicas-to-write 0\nnotify-keyspace-events AKE\nappendfsync everysec\n",
        "maxmemory 1024mb\nreplica-read-only yes\nhash-max-listpack-entries 256\n"
        "client-output-buffer-limit replica 524288kb 131072kb 60\nsave 900 1\nsave 300 10\n"
        "notify-keyspace-events EKA\n",
    )
    code, doc, _result = invoke_json(env, "drift", nodes[0].address)
    bad = [f for f in doc["findings"] if f["severity"] != "info"]
    assert code == 0, bad
    assert bad == []
    assert {n["role"] for n in doc["nodes"]} == {"master", "replica"}


def test_maxmemory_difference_across_nodes_is_drift_with_exit_11_and_json_finding(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    master, same, small = group(
        redis_factory, "maxmemory 1gb\n", "maxmemory 1gb\n", "maxmemory 512mb\n"
    )
    code, doc, _ = invoke_json(env, "drift", same.address)
    assert code == 11
    (f,) = findings(doc, parameter="maxmemory", **{"class": "peer-mismatch"})
    assert f["differs"] == [small.address]
    assert f["values"][master.address].startswith("1073741824")
    assert f["values"][small.address].startswith("536870912")
    assert doc["reference"] == master.address
    table = invoke(env, "drift", master.address)
    assert table.exit_code == 11
    assert "maxmemory" in table.stdout and "Drift found" in table.stdout


def test_config_set_without_rewrite_is_a_runtime_change_not_persisted(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    (node,) = group(redis_factory, "maxmemory 1gb\nmaxmemory-policy allkeys-lru\n")
    node.client().config_set("maxmemory", "2gb")
    node.client().config_set("timeout", "30")
    code, doc, _ = invoke_json(env, "drift", node.address)
    assert code == 11
    (f,) = findings(doc, parameter="maxmemory", node=node.address)
    assert f["class"] == "not-persisted" and f["severity"] == "critical"
    assert f["values"]["running"].startswith("2147483648") and f["values"]["file"].startswith(
        "1073741824"
    )
    (t,) = findings(doc, parameter="timeout", node=node.address)
    assert t["class"] == "not-persisted" and t["severity"] == "warning"


def test_immutable_key_changed_in_file_is_pending_restart_shown_running_to_file(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    (node,) = group(redis_factory, "databases 16\n")
    node.conf.write_text(node.conf.read_text().replace("databases 16", "databases 32"))
    code, doc, _ = invoke_json(env, "drift", node.address)
    assert code == 11
    (f,) = findings(doc, parameter="databases", node=node.address)
    assert f["class"] == "pending-restart"
    assert "databases: 16 -> 32" in f["message"]


def test_unknown_directive_in_file_is_critical_because_the_next_start_fails(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    (node,) = group(redis_factory, "")
    with node.conf.open("a") as fh:
        fh.write("maxmemroy 1gb\n")
    code, doc, _ = invoke_json(env, "drift", node.address)
    assert code == 11
    (f,) = findings(doc, **{"class": "unknown-directive"})
    assert f["parameter"] == "maxmemroy" and f["severity"] == "critical"
    assert "Bad directive" in f["message"]


def test_values_from_included_files_are_compared(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    node = start_from_file(
        redis_factory,
        "include {dir}/extra/*.conf\n",
        includes={"extra": ""},
    )
    # glob include: create the directory with two files, the later one wins
    node.stop()
    (node.dir / "extra").unlink()
    (node.dir / "extra").mkdir()
    (node.dir / "extra" / "a.conf").write_text("maxmemory 512mb\n")
    (node.dir / "extra" / "b.conf").write_text("maxmemory 1gb\n")
    node.start()
    code, doc, _ = invoke_json(env, "drift", node.address)
    assert code == 0, doc["findings"]
    (node.dir / "extra" / "b.conf").write_text("maxmemory 2gb\n")
    code, doc, _ = invoke_json(env, "drift", node.address)
    assert code == 11
    (f,) = findings(doc, parameter="maxmemory", node=node.address)
    assert f["class"] == "not-persisted"
    assert f["values"]["file"].startswith("2147483648")


def test_renamed_config_command_is_said_per_node_and_its_file_still_compared(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    master, renamed = group(
        redis_factory, "maxmemory 1gb\n", 'maxmemory 512mb\nrename-command CONFIG ""\n'
    )
    code, doc, result = invoke_json(env, "drift", master.address)
    assert code == 11, result.stderr
    (c,) = findings(doc, **{"class": "config-unavailable"})
    assert c["node"] == renamed.address and "renamed" in c["message"]
    (m,) = findings(doc, parameter="maxmemory", **{"class": "peer-mismatch"})
    assert m["differs"] == [renamed.address]
    (r,) = findings(doc, parameter="rename-command", **{"class": "peer-mismatch"})
    assert r["severity"] == "critical" and "CONFIG" not in str(r["values"]).replace(
        "config disabled", ""
    )
    assert "config disabled" in r["values"][renamed.address]


def test_fix_copies_the_reference_values_persists_them_and_drift_is_clean_after(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    master, r1, r2 = group(
        redis_factory,
        "maxmemory 1gb\nrepl-backlog-size 64mb\n",
        "maxmemory 512mb\nrepl-backlog-size 64mb\n",
        "maxmemory 1gb\n",
    )
    r1.client().config_set("maxmemory-policy", "allkeys-lru")
    code, doc, result = invoke_json(env, "drift", master.address, "--fix", "--yes")
    assert code == 0, result.stderr
    assert doc["result"]["outcome"] == "applied"
    assert r1.client().config_get("maxmemory")["maxmemory"] == str(1 << 30)
    assert r2.client().config_get("repl-backlog-size")["repl-backlog-size"] == str(64 << 20)
    assert "repl-backlog-size 64mb" in r2.conf.read_text()
    after = invoke(env, "drift", master.address)
    assert after.exit_code == 0, after.stdout


def test_a_rolled_back_fix_takes_its_values_back_out_of_the_config_file(
    redis_factory: RedisFactory, env: dict[str, str], tmp_path: Path
) -> None:
    """The fix set and persisted a value, then its verification failed (someone changed
    the value meanwhile): the rollback restores the running value and the file, so a
    restart does not bring back what the rollback took away."""
    master, r1 = group(redis_factory, "maxmemory 1gb\n", "maxmemory 512mb\n")
    holds = tmp_path / "holds"
    holds.mkdir()
    run_env = {
        **env,
        "REDISOPS_TEST_HOLD": "step:drift-verify",
        "REDISOPS_TEST_HOLD_DIR": str(holds),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "redisops", "drift", master.address, "--fix", "--yes", "-o", "json"],
        env=run_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until((holds / "step:drift-verify.reached").exists, 30, what="the fix persisted")
        assert "maxmemory 1gb" in r1.conf.read_text()  # the fix persisted the master's value
        r1.client().config_set("maxmemory-policy", "allkeys-lru")  # new drift: verify fails
        (holds / "step:drift-verify.release").touch()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 9, err
    doc = json.loads(out)
    assert doc["result"]["outcome"] == "verify-failed"
    assert r1.client().config_get("maxmemory")["maxmemory"] == str(512 << 20)
    text = r1.conf.read_text()
    assert "maxmemory 1gb" not in text and "1073741824" not in text, text


def test_fix_is_not_rolled_back_for_drift_on_a_node_whose_config_is_renamed_away(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    master, r1, _renamed = group(
        redis_factory,
        "maxmemory 1gb\n",
        "maxmemory 1gb\n",
        'maxmemory 512mb\nrename-command CONFIG ""\n',
    )
    r1.client().config_set("maxmemory-policy", "allkeys-lru")
    code, doc, result = invoke_json(env, "drift", master.address, "--fix", "--yes")
    assert code == 0, result.stderr  # the renamed node's maxmemory was left to its file
    assert doc["result"]["outcome"] == "applied"
    policy = r1.client().config_get("maxmemory-policy")["maxmemory-policy"]
    assert policy == "noeviction"  # the master's, kept: not rolled back
    _, dry, _ = invoke_json(env, "drift", master.address, "--fix", "--dry-run")
    notes = [f["message"] for f in dry["findings"]]
    assert any(m.startswith(f"{_renamed.address}: CONFIG GET is unavailable") for m in notes)


def test_fix_edits_the_file_when_config_rewrite_is_refused(
    redis_factory: RedisFactory, env: dict[str, str], tmp_path: Path
) -> None:
    acl = "user ops on >opspass ~* &* +@all -config|rewrite\n"
    master, replica = group(redis_factory, acl + "maxmemory 1gb\n", acl + "maxmemory 256mb\n")
    env = {**env, "REDISCLI_AUTH": "opspass"}
    args = ("drift", master.address, "--user", "ops")
    code, doc, result = invoke_json(env, *args, "--fix", "--yes")
    assert code == 0, result.stderr
    persist = [s for s in doc["result"]["steps"] if s["action"] == "persist-config"]
    assert "edited" in persist[0]["detail"]
    assert "maxmemory 1073741824" in replica.conf.read_text()
    backups = list(replica.dir.glob("redis.conf.redisops-*.bak"))
    assert backups and "maxmemory 256mb" in backups[0].read_text()
    assert invoke(env, *args).exit_code == 0


def test_fix_dry_run_changes_nothing_and_hides_secrets(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    auth = 'user repl on >s3cret-one ~* &* +@all\nmasteruser repl\nmasterauth "s3cret-one"\n'
    master, replica = group(redis_factory, auth, auth)
    replica.client().config_set("masterauth", "s3cret-two")  # the link stays up until it drops
    result = invoke(env, "drift", master.address, "--fix", "--dry-run", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert "s3cret" not in result.stdout
    assert replica.client().config_get("masterauth")["masterauth"] == "s3cret-two"
    table = invoke(env, "drift", master.address)
    assert "s3cret" not in table.stdout and "***" in table.stdout


def test_fix_with_only_restart_findings_changes_nothing_and_still_exits_11(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    (node,) = group(redis_factory, "databases 16\n")
    node.conf.write_text(node.conf.read_text().replace("databases 16", "databases 8"))
    code, doc, result = invoke_json(env, "drift", node.address, "--fix", "--yes")
    assert code == 11, result.stderr
    assert doc["nothing_to_do"] and doc["steps"] == []
    (note,) = [f for f in doc["findings"] if f["code"] == "restart"]
    assert "databases: 16 -> 8" in note["message"] and "switchover" in note["message"]


def test_bad_config_file_option_is_one_line_and_exit_2(env: dict[str, str]) -> None:
    result = invoke(env, "drift", "127.0.0.1:1", "--config-file", "/etc/redis.conf")
    assert result.exit_code == 2
    assert "--config-file '/etc/redis.conf' is not NODE=PATH" in result.stderr
    assert "Traceback" not in result.stderr


def test_reference_outside_the_group_is_bad_input(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    (node,) = group(redis_factory, "")
    result = invoke(env, "drift", node.address, "--reference", "127.0.0.1:1")
    assert result.exit_code == 2
    assert "is not a node of this group" in result.stderr
