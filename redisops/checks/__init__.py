"""Pure checks over snapshots: health, config drift, sizing advice (no I/O, no network library).

``health.run_checks(CheckInput) -> (Report, state)`` evaluates the health catalogue of
checks-and-drift.md §2; ``ranges`` parses Nagios thresholds; ``counters`` computes the
deltas between runs that the check's state file keeps.
"""
