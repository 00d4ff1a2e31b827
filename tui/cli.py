"""`deploydeck ...`: the command line; each subcommand lives in its own module in tui/commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tui.commands import (
    console_cmd,
    demo_cmd,
    deploy_cmds,
    function_cmds,
    init_cmd,
    local_cmd,
    trust_cmd,
    validate_cmd,
)

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deploydeck",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    console_cmd.add_arguments(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    console_cmd.add_parser(commands)
    init_cmd.add_parser(commands)
    local_cmd.add_parser(commands)
    validate_cmd.add_parser(commands)
    deploy_cmds.add_parsers(commands)
    function_cmds.add_parsers(commands)
    trust_cmd.add_parser(commands)
    demo_cmd.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        return console_cmd.run(args)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
