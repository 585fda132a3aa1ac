"""``redisops advise`` against a real master with replicas."""

from __future__ import annotations

import pytest

from tests.harness import RedisFactory, star
from tests.integration.ops_helpers import invoke, invoke_json

pytestmark = pytest.mark.redis_server


def test_advise_sizes_the_backlog_from_the_given_rate_and_shows_its_inputs(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    nodes = star(redis_factory, 2)
    code, doc, result = invoke_json(
        env, "advise", nodes[0].address, "--write-rate", "4MiB", "--tolerate", "2m"
    )
    assert code == 0, result.stderr
    (backlog,) = [r for r in doc["advice"] if r["parameter"] == "repl-backlog-size"]
    assert backlog["recommended"] == "960mb" and backlog["status"] == "raise"
    assert backlog["inputs"]["T_disconnect (--tolerate)"] == "120s"
    assert doc["storm"]["replicas"] == 2
    assert doc["inputs"]["host_memory"] > 0
    # wide enough that the FORMULA cells are not wrapped (tables fit the terminal width)
    table = invoke({**env, "COLUMNS": "250"}, "advise", nodes[0].address, "--sample", "1s")
    assert table.exit_code == 0, table.stderr
    assert "2 x W x T_disconnect" in table.stdout and "Replication storm" in table.stdout


def test_advise_rejects_a_duration_it_cannot_read(env: dict[str, str]) -> None:
    result = invoke(env, "advise", "127.0.0.1:1", "--sample", "soon")
    assert result.exit_code == 2
    assert "--sample 'soon' is not a duration" in result.stderr
    assert "Traceback" not in result.stderr
