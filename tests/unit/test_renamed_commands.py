"""Renamed and disabled commands (``rename-command``): the map, and the one place that
applies it (:class:`redisops.redis_node.RedisNode`)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from redisops.cli import app
from redisops.errors import BadInput, CommandUnavailable
from redisops.inventory import ConnectOptions, parse_inventory
from redisops.model import Address
from redisops.redis_node import RedisNode
from redisops.session import build_session


def node(renames: dict[str, str]) -> RedisNode:
    # nothing listens on port 1: a command that got as far as the wire would fail otherwise
    return RedisNode(Address("127.0.0.1", 1), ConnectOptions(renamed_commands=renames))


def test_a_renamed_command_goes_out_under_its_new_name() -> None:
    n = node({"CONFIG": "SECRETCFG", "FLUSHALL": ""})
    assert n.command_name("config") == "SECRETCFG"
    assert n.command_name("PING") == "PING"
    assert n.command_name("FLUSHALL") is None


def test_a_disabled_command_is_never_sent_and_says_why() -> None:
    n = node({"CONFIG": ""})
    with pytest.raises(CommandUnavailable, match=r"CONFIG is disabled on this node"):
        n.execute("CONFIG", "SET", "masterauth", "s3cret")
    try:
        n.execute("CONFIG", "SET", "masterauth", "s3cret")
    except CommandUnavailable as exc:
        assert "s3cret" not in str(exc)  # the message redacts like every other one


def test_the_inventory_and_the_option_build_one_map() -> None:
    inv = parse_inventory(
        {
            "clusters": {
                "c": {"nodes": ["h:1"], "renamed_commands": {"config": "X1", "FLUSHALL": ""}}
            }
        }
    )
    assert dict(inv.cluster("c").renamed_commands) == {"CONFIG": "X1", "FLUSHALL": ""}
    session = build_session(seeds=["h:1"], renamed_commands=["CONFIG=OTHER", "KEYS="])
    assert dict(session.options.renamed_commands) == {"CONFIG": "OTHER", "KEYS": ""}
    with pytest.raises(BadInput, match="expected ORIGINAL=NEWNAME"):
        build_session(seeds=["h:1"], renamed_commands=["CONFIG"])
    with pytest.raises(BadInput, match="is not a command name"):
        build_session(seeds=["h:1"], renamed_commands=["CON FIG=X"])


def test_a_malformed_rename_option_is_bad_input_with_exit_2() -> None:
    result = CliRunner().invoke(app, ["status", "h:1", "--rename-command", "CONFIG"])
    assert result.exit_code == 2
    assert "--rename-command 'CONFIG': expected ORIGINAL=NEWNAME" in result.stderr
