"""Backups: take, verify, catalogue, retention, off-host copies, restore.

``rdbfile`` reads what an RDB file says about itself (header, CRC64 trailer) while it is
streamed; ``crypto`` is the streaming encryption of copies; ``retention`` is the pure
keep/prune decision; ``catalogue`` and ``dest`` are where backups live and how they are
described; ``take`` runs a backup; ``verify`` checks one again; ``restore`` builds the plan
that puts one back on a node (run by :mod:`redisops.plan`, like the operations in ``ops``).
"""
