"""The data plane: keyspace commands of Redis 7.0, registered in ``COMMANDS`` on import.

Importing this package registers every string, key, hash, list, set and sorted-set
command handler; the node adds the server and replication commands.
"""

from redisops.engine.datacmds import hashes, keys, lists, sets, strings, zsets

__all__ = ["hashes", "keys", "lists", "sets", "strings", "zsets"]
