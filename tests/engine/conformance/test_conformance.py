"""Replication conformance: every §10 scenario, on every backend.

Each test runs one scenario of :mod:`tests.engine.conformance.scenarios` and compares its
observations with the values the specification predicts. To run the suite against
another backend, add one line to ``BACKENDS``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.engine.conformance import scenarios as sc
from tests.engine.conformance.backend import Backend, RealRedisBackend
from tests.engine.conformance.engine_backend import EngineBackend
from tests.harness import require
from tests.servers import DEFAULT

# (name, factory taking a scratch directory); the engine lab goes on the commented line.
BACKENDS = [
    pytest.param(("real", RealRedisBackend), id="real", marks=pytest.mark.redis_server),
    pytest.param(("engine", EngineBackend), id="engine"),
]

# Scenarios a backend cannot host, with the reason (scenario function name -> reason).
# Example: a lab whose nodes replicate only over an in-process network cannot connect to
# the test's FakeMaster socket:
#   "engine": {"scenario_replica_handshake_bytes": "no outbound TCP to foreign masters"},
UNSUPPORTED: dict[str, dict[str, str]] = {
    "real": {},
    "engine": {
        "scenario_replica_handshake_bytes": "engine nodes replicate over the engine's in-process network: "
        "they do not connect out to a foreign TCP master (the handshake itself is covered in tests/engine)",
    },
}


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    name, factory = request.param
    if name == "real":
        require(DEFAULT)
    b = factory(tmp_path / "nodes")
    try:
        yield b
    finally:
        b.close()


def check(scenario: Callable[[Backend], sc.Observations], backend: Backend) -> None:
    reason = UNSUPPORTED.get(backend.name, {}).get(scenario.__name__)
    if reason:
        pytest.skip(reason)
    observed = scenario(backend)
    expected = scenario.expected  # type: ignore[attr-defined]
    diagnostics = {k: v for k, v in observed.items() if k.startswith("_")}
    assert sc.public(observed) == expected, f"scenario #{scenario.number}: {diagnostics}"  # type: ignore[attr-defined]


def test_every_registered_scenario_has_a_test() -> None:
    used = set(re.findall(r"check\(sc\.(scenario_\w+), backend\)", Path(__file__).read_text()))
    assert used == set(sc.REGISTRY)


# --------------------------------------------------------------------------- handshake, offsets


def test_replica_handshake_sends_own_replid_at_offset_1(backend: Backend) -> None:
    check(sc.scenario_replica_handshake_bytes, backend)


def test_master_without_replica_does_not_count_writes(backend: Backend) -> None:
    check(sc.scenario_no_replica, backend)


def test_first_replica_full_syncs_at_0_and_renews_master_replid(backend: Backend) -> None:
    check(sc.scenario_first_replica, backend)


def test_worked_stream_is_select_then_set_54_bytes(backend: Backend) -> None:
    check(sc.scenario_worked_stream, backend)


def test_psync_accepts_offsets_from_first_to_offset_plus_1(backend: Backend) -> None:
    check(sc.scenario_psync_boundaries, backend)


def test_forced_psync_is_full_and_non_integer_offset_is_refused(backend: Backend) -> None:
    check(sc.scenario_forced_and_invalid_psync, backend)


@pytest.mark.slow
def test_pings_advance_offsets_by_14_bytes(backend: Backend) -> None:
    check(sc.scenario_pings_advance_offsets, backend)


def test_transactions_and_scripts_wrap_only_multiple_writes(backend: Backend) -> None:
    check(sc.scenario_transactions, backend)


def test_commands_are_propagated_rewritten(backend: Backend) -> None:
    check(sc.scenario_propagation_rewrites, backend)


def test_expired_keys_are_deleted_by_the_master_stream(backend: Backend) -> None:
    check(sc.scenario_expiry_propagation, backend)


def test_wait_feeds_getack_and_replica_answer_excludes_it(backend: Backend) -> None:
    check(sc.scenario_wait_feeds_getack, backend)


# --------------------------------------------------------------------------- resync decisions


def test_replica_reconnect_inside_backlog_is_partial(backend: Backend) -> None:
    check(sc.scenario_replica_reconnect_inside_backlog, backend)


def test_promotion_shifts_replid_and_siblings_resync_partially(backend: Backend) -> None:
    check(sc.scenario_promotion_and_sibling_repoint, backend)


def test_old_master_rejoins_promoted_replica_partially(backend: Backend) -> None:
    check(sc.scenario_old_master_rejoins_promoted_replica_partially, backend)


def test_old_master_ahead_of_promotion_needs_full_sync(backend: Backend) -> None:
    check(sc.scenario_old_master_ahead_needs_full_sync, backend)


def test_promoted_replica_back_under_old_master_is_full(backend: Backend) -> None:
    check(sc.scenario_promoted_replica_back_under_old_master_is_full, backend)


def test_sibling_switch_is_partial(backend: Backend) -> None:
    check(sc.scenario_sibling_switch_is_partial, backend)


@pytest.mark.slow
def test_nodes_that_missed_pings_full_sync_others_stay_partial(backend: Backend) -> None:
    check(sc.scenario_missing_ping_topology, backend)


def test_backlog_too_small_forces_full_sync(backend: Backend) -> None:
    check(sc.scenario_backlog_too_small_forces_full_sync, backend)


@pytest.mark.slow
def test_backlog_freed_after_ttl_forces_full_sync(backend: Backend) -> None:
    check(sc.scenario_backlog_ttl, backend)


def test_master_restart_at_offset_0_resyncs_partially(backend: Backend) -> None:
    check(sc.scenario_master_restart_at_offset_zero, backend)


def test_master_restart_feeds_dels_for_expired_keys(backend: Backend) -> None:
    check(sc.scenario_master_restart_with_expired_keys, backend)


def test_replica_restart_resyncs_partially(backend: Backend) -> None:
    check(sc.scenario_replica_restart_resyncs_partially, backend)


# --------------------------------------------------------------------------- gating, commands


@pytest.mark.slow
def test_min_replicas_gate_writes_on_master_only(backend: Backend) -> None:
    check(sc.scenario_min_replicas_to_write, backend)


def test_replica_refuses_writes_and_stale_reads(backend: Backend) -> None:
    check(sc.scenario_replica_write_and_stale_gating, backend)


def test_replicaof_replies_and_errors(backend: Backend) -> None:
    check(sc.scenario_replicaof_replies, backend)


def test_replicaof_refused_in_cluster_mode(backend: Backend) -> None:
    check(sc.scenario_replicaof_refused_in_cluster_mode, backend)


@pytest.mark.slow
def test_replica_in_handshake_times_out_without_keepalives(backend: Backend) -> None:
    check(sc.scenario_handshake_state_and_timeout, backend)


@pytest.mark.slow
def test_diskless_sync_batches_replicas_into_one_fork(backend: Backend) -> None:
    check(sc.scenario_diskless_sync_batching, backend)


def test_blocked_client_unblocked_when_master_demoted(backend: Backend) -> None:
    check(sc.scenario_blocked_client_unblocked_on_demotion, backend)


# --------------------------------------------------------------------------- failover, shutdown


def test_failover_under_load_loses_no_write_and_stays_partial(backend: Backend) -> None:
    check(sc.scenario_failover_under_load, backend)


def test_failover_states_waiting_in_progress_done(backend: Backend) -> None:
    check(sc.scenario_failover_states, backend)


def test_failover_errors(backend: Backend) -> None:
    check(sc.scenario_failover_errors, backend)


def test_client_subcommands_are_those_of_redis_7_0(backend: Backend) -> None:
    check(sc.scenario_client_subcommands_of_7_0, backend)


def test_failover_timeout_without_force_aborts(backend: Backend) -> None:
    check(sc.scenario_failover_timeout_aborts, backend)


def test_failover_rejected_psync_aborts_with_new_replid(backend: Backend) -> None:
    check(sc.scenario_failover_rejected_psync_aborts, backend)


@pytest.mark.slow
def test_shutdown_waits_for_lagging_replica(backend: Backend) -> None:
    check(sc.scenario_shutdown_waits_for_lagging_replicas, backend)


@pytest.mark.slow
def test_chains_under_load_never_full_sync_again(backend: Backend) -> None:
    check(sc.scenario_chains_under_load, backend)


# --------------------------------------------------------------------------- INFO, ROLE


def test_info_replication_field_names_and_formats(backend: Backend) -> None:
    check(sc.scenario_info_replication_fields, backend)


def test_role_reply_shapes(backend: Backend) -> None:
    check(sc.scenario_role_reply_shapes, backend)
