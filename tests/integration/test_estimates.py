"""The full-sync estimate against the RDB file redis-server really writes, per dataset
shape (``tests/datasets.py``; ``bench/estimates.py`` prints the same comparison)."""

from __future__ import annotations

import pytest

from redisops.engine.predict import RateParams, predict_sync, rdb_estimate
from redisops.model import Address
from redisops.ops.estimate import sample_dataset
from redisops.redis_node import RedisNode
from tests.datasets import SHAPES
from tests.harness import RedisFactory

pytestmark = pytest.mark.redis_server


@pytest.mark.parametrize("shape", list(SHAPES))
def test_the_sampled_rdb_estimate_is_within_1_5x_of_the_real_file(
    redis_factory: RedisFactory, shape: str
) -> None:
    proc = redis_factory.start()
    with proc.client() as c:
        SHAPES[shape](c)
    with RedisNode(Address("127.0.0.1", proc.port)) as node:
        info = node.probe()
        sample = sample_dataset(node, info)
        assert sample is not None and sample.sampled >= 32
        assert sample.keys == info.keys
        estimate, how = rdb_estimate(info, RateParams(dataset=sample))
        # the sample leaves the connection on db 0
        assert node.execute("CLIENT", "INFO").count("db=0") == 1
    with proc.client() as c:
        c.save()
    real = (proc.dir / "dump.rdb").stat().st_size
    assert 1 / 1.5 <= estimate / real <= 1.5, f"{shape}: estimated {estimate}, real {real} ({how})"


def test_the_prediction_names_how_the_rdb_size_was_estimated(redis_factory: RedisFactory) -> None:
    master, fresh = redis_factory.start(), redis_factory.start()
    with master.client() as c:
        c.execute_command("DEBUG", "POPULATE", "5000")
    with (
        RedisNode(Address("127.0.0.1", master.port)) as m,
        RedisNode(Address("127.0.0.1", fresh.port)) as r,
    ):
        minfo, rinfo = m.probe(), r.probe()
        pred = predict_sync(minfo, rinfo, RateParams(dataset=sample_dataset(m, minfo)))
    assert pred.sync == "full"
    assert any("5000 keys x" in risk and "dumped keys" in risk for risk in pred.risks), pred.risks


def test_an_empty_node_or_one_that_refuses_dump_gets_no_sample(redis_factory: RedisFactory) -> None:
    proc = redis_factory.start()
    with RedisNode(Address("127.0.0.1", proc.port)) as node:
        assert sample_dataset(node, node.probe()) is None
    with proc.client() as c:
        c.execute_command("DEBUG", "POPULATE", "100")
        c.execute_command("ACL", "SETUSER", "default", "-dump")
    with RedisNode(Address("127.0.0.1", proc.port)) as node:
        assert sample_dataset(node, node.probe()) is None
