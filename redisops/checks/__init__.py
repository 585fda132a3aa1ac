"""Pure checks over snapshots: health, config drift, sizing advice (no I/O, no network library)."""
