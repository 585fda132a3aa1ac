"""The SSH adapter: the only package that imports paramiko.

Some of an operator's work cannot be done over the Redis protocol: reading and editing
``redis.conf``, starting and stopping the service, checking kernel settings, reaching a
Redis port only a bastion can see. This package does it over SSH:

* :mod:`~redisops.ssh.settings` resolves who to connect as and how (inventory, then
  ``~/.ssh/config``, then OpenSSH's defaults; the ``--ssh-*`` options win over all);
* :mod:`~redisops.ssh.known_hosts` verifies host keys the way OpenSSH does (strict by
  default, ``accept-new`` only on request, a changed key always refused);
* :mod:`~redisops.ssh.connect` opens verified, authenticated connections, through jump
  hosts when asked;
* :mod:`~redisops.ssh.tunnel` forwards a local port to Redis over ``direct-tcpip``;
* :mod:`~redisops.ssh.remote` is the :class:`~redisops.host.Host` of a node behind SSH;
* :mod:`~redisops.ssh.pool` keeps one connection per host per run and runs work on many
  hosts in parallel.

Importing this package (or ``settings``/``known_hosts``) does not import paramiko: the
commands that never use SSH must not pay for it at start-up.
"""
