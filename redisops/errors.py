"""Exit codes and the error tree.

Every failure a user can cause or meet is a :class:`RedisopsError` subclass that carries
its exit code and a one-line message saying what is wrong and what to do. The CLI prints
that line (``redisops: error: ...``) and exits with the code; a traceback is shown only
with ``--debug``.

>>> int(ExitCode.BAD_INPUT)
2
>>> BadInput("port 99999 is out of range").exit_code is ExitCode.BAD_INPUT
True
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, stable and documented in the README.

    ``check`` uses the Nagios codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN) instead.
    """

    OK = 0
    ERROR = 1  # an unexpected failure, or a command Redis rejected
    BAD_INPUT = 2  # malformed address, option or inventory; nothing was touched
    UNREACHABLE = 3  # a node needed for the command could not be reached or authenticated
    PROBLEMS = 4  # status/topology: the cluster was read, and it has problems
    REFUSED = 5  # preflight refused the change; nothing was touched
    LOCKED = 6  # another operation holds the cluster lock
    ROLLED_BACK = 7  # a step failed; what was done was undone
    PARTIAL = 8  # a step failed after the point of no return; manual action needed
    VERIFY_FAILED = 9  # every step ran, but the verification found a different state
    TIMEOUT = 10  # waiting for the cluster to converge ran out of time
    DRIFT = 11  # drift: configuration differs between nodes or from the config file
    HOST_KEY = 12  # an SSH host key is unknown or has changed; nothing was touched
    INTERRUPTED = 130  # Ctrl-C


class RedisopsError(Exception):
    """Root of every error redisops raises on purpose."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}; {self.hint}"
        return self.message


class BadInput(RedisopsError):
    """The user gave something malformed: address, option, file."""

    exit_code = ExitCode.BAD_INPUT


class InventoryError(BadInput):
    """The inventory file is missing, unreadable or malformed."""


class CredentialError(BadInput):
    """A credential source (env var, file) is missing or unreadable."""


class Unreachable(RedisopsError):
    """A node could not be reached, or refused our credentials.

    ``kind`` says which: ``down`` (nothing listens, or no route), ``auth`` (credentials
    refused or missing), ``not_redis`` (something else answers on the port), ``no_reply``
    (connected, but no answer in time: paused, overloaded) or ``unknown``.
    """

    exit_code = ExitCode.UNREACHABLE

    def __init__(self, message: str, *, hint: str | None = None, kind: str = "unknown") -> None:
        super().__init__(message, hint=hint)
        self.kind = kind


class NotRedis(Unreachable):
    """Something answers at the address, but it does not speak the Redis protocol."""

    exit_code = ExitCode.REFUSED


class CommandFailed(RedisopsError):
    """Redis answered a command with an error."""

    exit_code = ExitCode.ERROR


class CommandUnavailable(CommandFailed):
    """The node does not know the command: renamed or disabled (``rename-command``)."""


class Refused(RedisopsError):
    """Preflight found a reason not to act. Nothing was changed."""

    exit_code = ExitCode.REFUSED


class Locked(RedisopsError):
    """The cluster lock is held by another operation."""

    exit_code = ExitCode.LOCKED


class RolledBack(RedisopsError):
    """A step failed; what had been done was undone."""

    exit_code = ExitCode.ROLLED_BACK


class PartiallyApplied(RedisopsError):
    """A step failed after the point of no return; manual action is needed."""

    exit_code = ExitCode.PARTIAL


class ResyncLoop(PartiallyApplied):
    """The replica was pointed at its master, but the master keeps restarting the full sync
    (output-buffer limit, timeout): waiting longer would not help."""


class VerifyFailed(RedisopsError):
    """Every step ran, but the cluster is not in the state the plan promised."""

    exit_code = ExitCode.VERIFY_FAILED


class Interrupted(RedisopsError):
    """SIGINT or SIGTERM arrived while a plan was running (the failure path handles it)."""

    exit_code = ExitCode.INTERRUPTED


class WaitTimeout(RedisopsError):
    """The cluster did not reach the expected state in time."""

    exit_code = ExitCode.TIMEOUT


class HostKeyError(RedisopsError):
    """An SSH host key is unknown, changed or unverifiable: nothing was touched (exit 12)."""

    exit_code = ExitCode.HOST_KEY
