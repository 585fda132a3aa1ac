"""The data plane: keyspace commands of Redis 7.0, registered in ``COMMANDS`` on import.

Importing this package registers every string, key, hash, list, set and sorted-set
command handler; the node adds the server and replication commands.
"""

from redisops.engine.datacmds import hashes, keys, lists, sets, strings, zsets
from redisops.engine.datacmds._num import d2string, string2ll

__all__ = ["d2string", "hashes", "keys", "lists", "sets", "string2ll", "strings", "zsets"]
