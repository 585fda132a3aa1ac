"""redis.conf parsing and editing with Redis's own rules (redisops.redisconf)."""

from __future__ import annotations

import pytest

from redisops.redisconf import (
    REWRITE_SIGNATURE,
    ConfigSyntaxError,
    parse_config,
    quote_arg,
    set_directive,
    split_args,
)


@pytest.mark.parametrize(
    ("line", "args"),
    [
        ("port 6379", ["port", "6379"]),
        ("  save   900   1  ", ["save", "900", "1"]),
        ('save ""', ["save", ""]),
        ('dir "/var/lib/my redis"', ["dir", "/var/lib/my redis"]),
        ("requirepass 'a b'", ["requirepass", "a b"]),
        (r"requirepass 'it\'s'", ["requirepass", "it's"]),
        (r'masterauth "q\"uote"', ["masterauth", 'q"uote']),
        (r'x "\x41\x42\n"', ["x", "AB\n"]),
        (r'x "\xZZ"', ["x", "xZZ"]),
        ('x ab"cd ef"', ["x", "abcd ef"]),
        ("x\ty", ["x", "y"]),
    ],
)
def test_split_args_follows_sdssplitargs(line: str, args: list[str]) -> None:
    assert split_args(line) == args


@pytest.mark.parametrize("line", ['x "open', "x 'open", 'x "a"b', "x 'a'b"])
def test_split_args_refuses_what_redis_refuses(line: str) -> None:
    with pytest.raises(ConfigSyntaxError):
        split_args(line)


@pytest.mark.parametrize(
    "value", ["", "plain", "with space", 'q"uote', "back\\slash", "it's", "new\nline", "\x01", "é"]
)
def test_quote_arg_round_trips(value: str) -> None:
    assert split_args(f"k {quote_arg(value)}") == ["k", value]


def test_parse_keeps_order_aliases_and_repeated_lines() -> None:
    text = (
        "# comment\n"
        "SLAVEOF 10.0.0.1 6379\n"
        "slave-read-only no\n"
        "save 900 1\n"
        "save 300 10\n"
        "maxmemory 1gb\n"
        "maxmemory 2gb\n"
        "client-output-buffer-limit slave 256mb 64mb 60\n"
    )
    cfg = parse_config(text, "/etc/redis/redis.conf")
    assert cfg.last("replicaof") == ("10.0.0.1", "6379")
    assert cfg.last("replica-read-only") == ("no",)
    assert cfg.all("save") == [("900", "1"), ("300", "10")]
    assert cfg.last("maxmemory") == ("2gb",)
    assert [d.lineno for d in cfg.where("maxmemory")] == [6, 7]
    assert cfg.where("replicaof")[0].written == "SLAVEOF"
    assert cfg.names()[:2] == ["replicaof", "replica-read-only"]


def test_parse_reports_the_line_of_bad_quoting() -> None:
    with pytest.raises(ConfigSyntaxError, match=r"redis.conf:2: unbalanced quotes"):
        parse_config('port 1\ndir "/x\n', "/etc/redis.conf")


def test_include_is_read_in_place_and_later_lines_win() -> None:
    files = {
        "/etc/redis/base.conf": "maxmemory 1gb\nport 1111\n",
        "/etc/redis/conf.d/a.conf": "maxmemory 3gb\n",
        "/etc/redis/conf.d/b.conf": "appendonly yes\n",
    }

    def glob(pattern: str) -> list[str]:
        return [p for p in files if p.startswith("/etc/redis/conf.d/")]

    cfg = parse_config(
        "include /etc/redis/base.conf\nmaxmemory 2gb\ninclude conf.d/*.conf\n",
        "/etc/redis/redis.conf",
        reader=files.__getitem__,
        globber=glob,
    )
    assert cfg.last("maxmemory") == ("3gb",)
    assert cfg.last("port") == ("1111",)
    assert cfg.files == (
        "/etc/redis/redis.conf",
        "/etc/redis/base.conf",
        "/etc/redis/conf.d/a.conf",
        "/etc/redis/conf.d/b.conf",
    )


def test_include_without_a_reader_is_an_error_not_a_skip() -> None:
    with pytest.raises(ConfigSyntaxError, match="cannot be read"):
        parse_config("include /etc/other.conf\n", "/etc/redis.conf")


def test_include_loop_is_refused() -> None:
    with pytest.raises(ConfigSyntaxError, match="too deep"):
        parse_config("include /a.conf\n", "/a.conf", reader=lambda p: "include /a.conf\n")


def test_set_directive_replaces_in_place_removes_extras_and_appends_like_rewrite() -> None:
    text = "port 6379\nsave 900 1\nsave 300 10\nsave 60 10000\ndir /data\n"
    out = set_directive(text, "save", [["3600", "1"]])
    assert out == "port 6379\nsave 3600 1\ndir /data\n"
    out = set_directive(out, "replicaof", [["10.0.0.9", "6379"]])
    assert out.endswith(f"{REWRITE_SIGNATURE}\nreplicaof 10.0.0.9 6379\n")
    out2 = set_directive(out, "masteruser", [["ops"]])
    assert out2.count(REWRITE_SIGNATURE) == 1
    assert parse_config(out2).last("replicaof") == ("10.0.0.9", "6379")


def test_set_directive_replaces_an_alias_and_quotes_values() -> None:
    out = set_directive("slaveof a 1\n# keep\n", "replicaof", [["b c", "2"]])
    assert out == 'replicaof "b c" 2\n# keep\n'
    assert parse_config(out).last("replicaof") == ("b c", "2")
