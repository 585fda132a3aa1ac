"""Output formats, in a module of their own: the CLI declares ``--format`` at import time
and ``redisops --help`` should not pay for the renderer and the data model."""

from __future__ import annotations

from enum import Enum


class Format(str, Enum):
    """``table`` for people (fitted to the terminal), ``wide`` the same with every column
    (kubectl's ``-o wide``), ``json`` for scripts."""

    table = "table"
    wide = "wide"
    json = "json"


class CheckFormat(str, Enum):
    """``check`` speaks to monitoring systems too."""

    table = "table"
    json = "json"
    nagios = "nagios"
    prometheus = "prometheus"
