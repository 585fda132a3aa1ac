"""The ``redisops`` command line: thin Typer commands over the core.

Error handling lives in one place, :class:`RedisopsGroup.main`: a
:class:`~redisops.errors.RedisopsError` becomes one line on stderr and its exit code; a
usage error becomes one line and exit 2; anything unexpected becomes one line and exit 1,
with the traceback only under ``--debug`` (accepted anywhere on the command line, or
``REDISOPS_DEBUG=1``).

Command modules import their heavy dependencies (redis-py, tabulate, the engine) inside
the command functions, so ``redisops --help`` stays fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from redisops.errors import ExitCode, RedisopsError


def _debug_enabled() -> bool:
    return os.environ.get("REDISOPS_DEBUG", "") not in ("", "0")


class RedisopsGroup(TyperGroup):
    """The root command group; owns the mapping from failures to exit codes."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if "--debug" in argv:
            argv = [a for a in argv if a != "--debug"]
            os.environ["REDISOPS_DEBUG"] = "1"
        debug = _debug_enabled()
        from redisops.output import error_line

        code: int = 0
        try:
            rv = super().main(
                args=argv,
                prog_name=prog_name or "redisops",
                complete_var=complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
            if isinstance(rv, int):
                code = rv
                if code == int(ExitCode.INTERRUPTED):  # Typer turns Ctrl-C into Exit(130)
                    error_line("interrupted")
        except RedisopsError as exc:
            if debug:
                import traceback

                traceback.print_exc()
            error_line(str(exc))
            code = int(exc.exit_code)
            _json_error(argv, str(exc), code)
        except KeyboardInterrupt:
            error_line("interrupted")
            code = int(ExitCode.INTERRUPTED)
        except Exception as exc:
            if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
                # a usage error from the (vendored) Click parser: one line, exit 2
                ctx = getattr(exc, "ctx", None)
                cmd = ctx.command_path if ctx is not None else "redisops"
                error_line(f"{exc.format_message()} (see '{cmd} --help')")
                code = int(ExitCode.BAD_INPUT) if int(exc.exit_code) == 2 else int(exc.exit_code)
                _json_error(argv, exc.format_message(), code)
            elif type(exc).__name__ == "Abort":
                error_line("aborted")
                code = int(ExitCode.ERROR)
            else:
                if debug:
                    raise
                error_line(
                    f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)"
                )
                code = int(ExitCode.ERROR)
        if standalone_mode:
            sys.exit(code)
        return code


def wants_json(argv: Sequence[str]) -> bool:
    """Whether the command line asks for JSON (``-o json``, ``--format=json``, ``-ojson``).

    >>> wants_json(["status", "h:1", "-o", "json"]), wants_json(["status", "--format=JSON"])
    (True, True)
    >>> wants_json(["status", "-o", "wide"])
    False
    """
    for i, arg in enumerate(argv):
        if arg in ("-o", "--format"):
            value = argv[i + 1] if i + 1 < len(argv) else ""
        elif arg.startswith("--format="):
            value = arg.split("=", 1)[1]
        elif arg.startswith("-o") and len(arg) > 2:
            value = arg[2:]
        else:
            continue
        if value.lower() == "json":
            return True
    return False


def _json_error(argv: Sequence[str], message: str, code: int) -> None:
    """With JSON asked for, a failure before any output is a JSON document on stdout too,
    so a script parsing stdout always gets one (refusals already are)."""
    if wants_json(argv):
        import json

        sys.stdout.write(json.dumps({"error": message, "exit_code": code}, indent=2) + "\n")
        sys.stdout.flush()


def _show_version(value: bool) -> None:
    if value:
        from redisops import __version__

        typer.echo(f"redisops {__version__}")
        raise typer.Exit(0)


def _root(
    version: bool = typer.Option(
        False, "--version", help="Show the version and exit.", is_eager=True, callback=_show_version
    ),
) -> None:
    """Plan-first operations for Redis master/replica clusters.

    Every change can be planned with --dry-run; every command speaks --format json.
    Use --debug anywhere for tracebacks. Exit codes: 0 ok, 1 error, 2 bad input,
    3 unreachable, 4 problems found (check: Nagios 0/1/2/3), 5 refused, 6 locked, 7 rolled back,
    8 partially applied, 9 verification failed, 10 timed out, 11 drift found,
    12 SSH host key refused (backup exit codes: docs/backup.md).
    """


#: top-level command -> the module under redisops.cli that registers it
COMMAND_MODULES: dict[str, str] = {
    "status": "status",
    "check": "check",
    "attach": "replica",
    "detach": "replica",
    "switchover": "master",
    "failover": "master",
    "fence": "master",
    "lab": "lab",
    "playbook": "playbook",
    "backup": "backup",
    "restore": "backup",
    "drift": "drift",
    "advise": "advise",
    "host-facts": "host",
    "service": "host",
    "config-file": "host",
}


def build_app(only: str | None = None) -> typer.Typer:
    """The Typer application; with ``only``, just the commands of that one module.

    Typer converts every registered command's signature before it parses anything
    (tens of milliseconds for all of them), so :func:`main` registers only the module
    of the command being run. Help, ``--version`` and unknown commands get the full app.
    """
    import importlib

    app = _root_app()
    modules = sorted(set(COMMAND_MODULES.values())) if only is None else [only]
    for name in modules:
        importlib.import_module(f"redisops.cli.{name}").register(app)
    return app


def _root_app() -> typer.Typer:
    app = typer.Typer(
        cls=RedisopsGroup,
        name="redisops",
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    return app


def build_listing_app() -> typer.Typer:
    """The root for ``redisops``, ``--help``, ``--version`` and unknown commands: every command
    with its help text, but none of its options.

    Registering is cheap; Typer converts every option of every registered command before it
    parses anything (35-40 ms for all of them, and every command has the shared connection
    and SSH options), while the root help shows only names and help lines. A command's own
    ``--help`` goes through :func:`build_app` with its module, as any use of it does.
    """
    import inspect

    from typer.models import DefaultPlaceholder

    def listed_only() -> None:  # pragma: no cover - a named command runs its own module
        raise AssertionError("main() routes every known command to its module")

    full = build_app()
    app = _root_app()
    for info in full.registered_commands:
        app.command(
            info.name,
            help=info.help if info.help is not None else inspect.getdoc(info.callback),
            short_help=info.short_help,
            hidden=info.hidden,
            deprecated=info.deprecated,
        )(listed_only)
    for group in full.registered_groups:  # sub-apps (lab): listed like a command
        sub = group.typer_instance.info if group.typer_instance is not None else None
        text = sub.help if sub is not None else None
        app.command(
            group.name if isinstance(group.name, str) else None,
            help=None if isinstance(text, DefaultPlaceholder) else text,
        )(listed_only)
    return app


def command_module(argv: Sequence[str]) -> str | None:
    """The module for the command named in ``argv``, or None when the full app is needed.

    The root takes no option with a value, so the first word that is not an option is the
    command.
    """
    for arg in argv:
        if arg.startswith("-"):
            if arg in ("-h", "--help", "--version"):
                return None
            continue
        return COMMAND_MODULES.get(arg)
    return None


_full_app: typer.Typer | None = None


def __getattr__(name: str) -> Any:
    # ``from redisops.cli import app``: the full application, built on first use
    global _full_app
    if name == "app":
        if _full_app is None:
            _full_app = build_app()
        return _full_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Console-script entry point."""
    module = command_module(sys.argv[1:])
    (build_app(module) if module is not None else build_listing_app())()
