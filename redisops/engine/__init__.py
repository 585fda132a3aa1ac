"""The reference replication engine: a pure-Python model of Redis 7.0 replication.

No network library is imported anywhere under this package except ``server.py`` (the
offline lab's RESP front-end, which uses only the standard library). The core runs on an
injectable clock, so simulations are deterministic and faster than real time.
"""
