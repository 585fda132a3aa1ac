"""Address parsing: every accepted form, and malformed input refused with a clear BadInput."""

from __future__ import annotations

import pytest

from redisops.errors import BadInput, ExitCode
from redisops.model import Address, NodeSpec, parse_target


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.1:6379", NodeSpec(Address("10.0.0.1", 6379))),
        ("cache-1", NodeSpec(Address("cache-1", 6379))),
        ("cache-1.example.com:7000", NodeSpec(Address("cache-1.example.com", 7000))),
        ("[::1]:7000", NodeSpec(Address("::1", 7000))),
        ("[::1]", NodeSpec(Address("::1", 6379))),
        ("[0:0:0:0:0:0:0:1]:1", NodeSpec(Address("::1", 1))),
        ("redis://h:6380", NodeSpec(Address("h", 6380))),
        ("redis://ops@h:6380", NodeSpec(Address("h", 6380), username="ops")),
        ("rediss://h", NodeSpec(Address("h", 6379), tls=True)),
        ("REDIS://h:1/0", NodeSpec(Address("h", 1))),
        ("rediss://ops@[::1]:7001", NodeSpec(Address("::1", 7001), username="ops", tls=True)),
    ],
)
def test_accepted_forms(text: str, expected: NodeSpec) -> None:
    assert parse_target(text) == expected


MALFORMED = [
    ("", "empty address"),
    ("host:", "missing port"),
    (":6379", "missing host"),
    ("host:abc", "invalid port"),
    ("host:0", "out of range"),
    ("host:70000", "out of range"),
    ("::1:6379", "ambiguous"),
    ("[::1:6379", "unclosed"),
    ("[::1]x", "unexpected"),
    ("[zz::1]:1", "invalid IPv6"),
    ("redis://user:secret@h:1", "password in the address"),
    ("http://h:1", "unsupported scheme"),
    ("redis://h:1/3", "database path"),
    ("redis://", "missing host"),
    ("ho st:1", "white space"),
    ("bad_host!:1", "invalid host"),
    ("a@b:1", "invalid address"),
    ("h:1:2", "ambiguous"),
]


@pytest.mark.parametrize(("text", "fragment"), MALFORMED)
def test_malformed_addresses_are_refused_clearly(text: str, fragment: str) -> None:
    with pytest.raises(BadInput) as exc:
        parse_target(text)
    assert exc.value.exit_code is ExitCode.BAD_INPUT
    assert fragment in str(exc.value)
    assert "\n" not in str(exc.value)


def test_password_never_echoed_back() -> None:
    with pytest.raises(BadInput) as exc:
        parse_target("redis://user:hunter2@h:1")
    assert "hunter2" not in str(exc.value)


def test_ipv6_address_prints_bracketed() -> None:
    assert str(Address("::1", 7000)) == "[::1]:7000"
    assert str(Address("10.0.0.1", 7000)) == "10.0.0.1:7000"
