"""Health checks: pure functions over snapshots (no network, CLI or rendering library).

``health.run_checks(CheckInput) -> (Report, state)`` evaluates the catalogue of
checks-and-drift.md §2; ``ranges`` parses Nagios thresholds; ``counters`` computes the
deltas between runs that the state file keeps.
"""
