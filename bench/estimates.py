"""Full-sync estimates against what redis-server really does, per dataset shape.

For each shape of ``tests/datasets.py``: fill an empty redis-server, estimate the RDB size
the way ``attach`` does (keys sampled with ``DUMP``) and the old way (half of
``used_memory_dataset``), then ``SAVE`` and read the real file's size; time ``DEBUG
RELOAD NOSAVE`` (the load a replica does, best of three) against the predicted load time. Prints one
row per shape with the error factor (estimate / real: 1.00 is exact).

Usage: python bench/estimates.py [--samples 64]
Target (issue 10): the sampled RDB estimate within 1.5x of the real file for every shape.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.datasets

from redisops import lab
from redisops.engine.predict import RateParams, full_sync_phases, rdb_estimate
from redisops.model import Address
from redisops.ops.estimate import sample_dataset
from redisops.redis_node import RedisNode
from tests.datasets import SHAPES


def measure(node: RedisNode, fill: object, samples: int, data_dir: Path) -> dict[str, float]:
    import redis

    client = redis.Redis(host=node.address.host, port=node.address.port)
    client.flushall()
    fill(client)  # type: ignore[operator]
    info = node.probe()
    old, _ = rdb_estimate(info, RateParams())
    t0 = time.perf_counter()
    sample = sample_dataset(node, info, samples)
    sample_ms = (time.perf_counter() - t0) * 1000
    new, _ = rdb_estimate(info, RateParams(dataset=sample))
    predicted_load = dict(full_sync_phases(info, new, RateParams(dataset=sample)))["load"]
    client.save()
    real = (data_dir / "dump.rdb").stat().st_size
    loads = []
    for _ in range(3):  # the best of three: the first reload often pays for page faults
        t0 = time.perf_counter()
        client.execute_command("DEBUG", "RELOAD", "NOSAVE")
        loads.append(time.perf_counter() - t0)
    load = min(loads)
    client.close()
    return {
        "keys": float(info.keys),
        "real": float(real),
        "new": float(new),
        "old": float(old),
        "sample_ms": sample_ms,
        "load": load,
        "predicted_load": predicted_load,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=64)
    ns = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = lab.free_base_port(1)
        state = lab.up(Path(tmp) / "lab", engine="redis-server", nodes=1, base_port=base)
        data_dir = Path(state.dir) / f"node-{base}"
        rows = []
        try:
            with RedisNode(Address("127.0.0.1", base)) as node:
                for name, fill in SHAPES.items():
                    rows.append((name, measure(node, fill, ns.samples, data_dir)))
        finally:
            lab.down(Path(tmp) / "lab")
    print(
        f"RDB size and load time: estimate vs redis-server {os.uname().release}, --samples {ns.samples}"
    )
    print(
        f"{'shape':<38} {'keys':>8} {'real RDB':>11} {'sampled':>11} {'err':>5} "
        f"{'old est.':>11} {'err':>5} {'sample':>7} {'load':>8} {'pred.':>8} {'err':>5}"
    )
    worst = 1.0
    for name, r in rows:
        err_new = r["new"] / r["real"]
        err_old = r["old"] / r["real"]
        err_load = r["predicted_load"] / max(r["load"], 1e-6)
        worst = max(worst, err_new, 1 / err_new)
        print(
            f"{name:<38} {r['keys']:>8,.0f} {r['real']:>11,.0f} {r['new']:>11,.0f} {err_new:>5.2f} "
            f"{r['old']:>11,.0f} {err_old:>5.2f} {r['sample_ms']:>5.0f}ms "
            f"{r['load'] * 1000:>6.0f}ms {r['predicted_load'] * 1000:>6.0f}ms {err_load:>5.2f}"
        )
    print(f"worst sampled RDB error: {worst:.2f}x (target <= 1.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
