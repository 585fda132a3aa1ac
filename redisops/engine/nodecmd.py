"""The registry of commands a node implements itself (server, replication, transactions).

Data commands register in :data:`redisops.engine.command.COMMANDS`; node commands here,
with handlers taking the node and the client as well. The node looks both up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from redisops.engine.command import CommandError, CommandSpec, ExecContext
from redisops.engine.resp import Reply

if TYPE_CHECKING:  # pragma: no cover
    from redisops.engine.client import Client
    from redisops.engine.node import Node

NodeHandler = Callable[["Node", "Client", list[bytes], ExecContext], Reply]
NODE_HANDLERS: dict[str, NodeHandler] = {}
NODE_COMMANDS: dict[str, CommandSpec] = {}


class _NoReply:
    """Returned by a handler that replies later (blocked client) or never (REPLCONF ACK)."""

    def __repr__(self) -> str:
        return "NO_REPLY"


NO_REPLY: Reply = cast(Reply, _NoReply())


def node_command(name: str, arity: int, flags: str = "") -> Callable[[NodeHandler], NodeHandler]:
    """Register a command implemented by the node."""

    def register(fn: NodeHandler) -> NodeHandler:
        NODE_HANDLERS[name] = fn
        NODE_COMMANDS[name] = CommandSpec(
            name, arity, frozenset(flags.split()), _dispatched_by_node
        )
        return fn

    return register


def _dispatched_by_node(ctx: ExecContext, argv: list[bytes]) -> Reply:  # pragma: no cover
    raise AssertionError("node commands are dispatched by Node.call")


def int_arg(raw: bytes, error: str = "ERR value is not an integer or out of range") -> int:
    """Parse an integer argument the way Redis's ``string2ll`` does (no spaces, no '+')."""
    try:
        if raw[:1] in (b"+", b" ") or raw[-1:] == b" ":
            raise ValueError
        return int(raw)
    except (ValueError, IndexError):
        raise CommandError(error) from None
