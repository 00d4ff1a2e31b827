"""`deploydeck ...`: the command line; each subcommand lives in its own module in tui/commands.

Importing this module imports nearly nothing: `main` may fork a deployment's runner before the
command line is parsed (argparse included), so that the runner's imports overlap the command's.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

# each command's module in tui.commands, in the order `--help` lists them: a command line
# imports only its command's module (console_cmd always: `deploydeck` alone opens the console)
COMMANDS: dict[str, str] = {
    "console": "console_cmd",
    "init": "init_cmd",
    "local": "local_cmd",
    "validate": "validate_cmd",
    **dict.fromkeys(
        (
            "plan",
            "create-deployment",
            "get-deployment",
            "list-deployments",
            "stop-deployment",
            "continue-deployment",
            "resume-deployment",
            "rollback",
            "register-revision",
            "list-revisions",
            "register-task-definition",
            "journal",
            "hold-traffic-shift",
            "resume-traffic-shift",
            "skip-traffic-wait",
            "promote-traffic-shift",
        ),
        "deploy_cmds",
    ),
    **dict.fromkeys(("create-function", "publish-version", "invoke"), "function_cmds"),
    "service": "service_cmd",
    "trust": "trust_cmd",
    "balancer": "balancer_cmd",
    "reset-demo": "demo_cmd",
}

# the commands that start a deployment's runner: a runner slot is forked for them first thing
STARTS_RUNNER = frozenset({"create-deployment"})

DESCRIPTION = """\
deploydeck brings the AWS CodeDeploy model to machines you own.

Run `deploydeck` alone to open the console (on ./deploydeck.yml, else the built-in demo).

Start with:
  deploydeck local -l sample_revisions/web-v1     deploy a revision to this machine, as
                                                  codedeploy-local would
  deploydeck validate sample_revisions/web-v1     check a revision or appspec, run nothing
  deploydeck init                                 write a workspace of local instances
  deploydeck plan ...  /  create-deployment ...   deploy to a deployment group (see README)
"""


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for `argv`: with only its command's module imported when it names one,
    else (None, `--help`, an unknown command) every command's."""
    import argparse

    from tui.commands import console_cmd

    parser = argparse.ArgumentParser(
        prog="deploydeck",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    console_cmd.add_arguments(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    named = None if argv is None else command_named(argv)
    for module in [COMMANDS[named]] if named else dict.fromkeys(COMMANDS.values()):
        defining = importlib.import_module(f"tui.commands.{module}")
        (getattr(defining, "add_parsers", None) or defining.add_parser)(commands)
    for name in [name for name in COMMANDS if name not in commands.choices]:
        commands.add_parser(name)  # named in usage and errors; a line naming it builds it
    return parser


def command_named(argv: Sequence[str]) -> str | None:
    """The known command `argv` runs, or None (none, an unknown one, or help asked first)."""
    import argparse

    from tui.commands import console_cmd

    options = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    console_cmd.add_arguments(options)
    try:
        _, rest = options.parse_known_args(argv)
    except argparse.ArgumentError:
        return None
    for word in rest:
        if word in ("-h", "--help"):
            return None
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if any(word in STARTS_RUNNER for word in argv):
            # a guess, made before argparse is even imported: the slot is released below
            # unless the command line, once parsed, runs that command and takes it
            _fork_runner_slot()
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        if args.command is None:
            from tui.commands import console_cmd

            return console_cmd.run(args)
        return int(args.run(args))
    except KeyboardInterrupt:  # Ctrl-C: what the command started cleans up after itself
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        _release_runner_slot()  # one forked for a command that ended before taking it


def _fork_runner_slot() -> None:
    """Fork the runner slot before the command line is parsed, so that the runner's imports
    overlap the command's (engine/deployments/runner_slot.py)."""
    from engine.deployments.runner_slot import fork_at_start

    fork_at_start()


def _release_runner_slot() -> None:
    slots = sys.modules.get("engine.deployments.runner_slot")
    if slots is not None:
        slots.release_started()


def run() -> NoReturn:
    """The `deploydeck` program. A command other than the console leaves as soon as its output
    is written, skipping the interpreter's teardown (freeing every object one by one: 0.2 s
    after a small deployment on a loaded machine, over a second after a large one); its work,
    threads included, is finished by then."""
    from engine import dataclass_cache

    dataclass_cache.enable()  # before the engine's modules are imported
    code = main()
    dataclass_cache.save()
    if command_named(sys.argv[1:]) in (None, "console"):
        sys.exit(code)  # the console (or help): its teardown as Textual expects it
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (`| head`)
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
