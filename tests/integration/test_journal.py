"""The journal key a switchover writes to prove every replica follows the new master is
gone once that was verified: nothing of redisops lingers in the operator's dataset."""

from __future__ import annotations

import pytest

from redisops.ops.switchover import JOURNAL_KEY
from tests.harness import FAST_SYNC, RedisFactory, star, wait_in_sync
from tests.integration.ops_helpers import invoke_json, settle

pytestmark = pytest.mark.redis_server


def test_a_verified_switchover_leaves_no_journal_key_anywhere(
    redis_factory: RedisFactory, env: dict[str, str]
) -> None:
    m, target, other = star(redis_factory, 2, FAST_SYNC)
    settle(m, [target, other])
    code, doc, result = invoke_json(env, "switchover", "--to", target.address, "--yes")
    assert code == 0, result.stderr
    assert "journal read back" in doc["result"]["steps"][-2]["detail"]
    wait_in_sync(target, [m, other])  # the DEL has replicated
    for node in (m, target, other):
        assert node.client().exists(JOURNAL_KEY) == 0, node.address
