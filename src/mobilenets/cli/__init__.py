"""The `mobilenets` command line: parse, call the library, print.

    mobilenets zoo --version v1
    mobilenets profile v1-1.00-224 --per-layer

Each command is a pair: `add_<command>(subparsers)` declares its flags and
`cmd_<command>(args)` calls one library function and prints. No logic lives
here; the library loads when a command runs, so `--help` stays instant.
A `MobilenetsError` becomes one line on stderr and exit code 2; a command may
return another status (export's parity gate: 3).

The package, one module per group of commands, each importing only those above it here:

    common    the one-line-error parser, help format, errors as exit codes
    flags     flag values checked when parsed (numbers, folders, files, ranges)
    recipe    the TrainConfig the training flags make
    training  retrain, train, evaluate, demo
    deploy    profile, export, predict, benchmark
    choose    zoo, compare
    serve     serve (the web page)
"""

from __future__ import annotations

import argparse
import sys

from mobilenets.cli.choose import add_compare, add_zoo
from mobilenets.cli.common import EXIT_PARITY, EXIT_USAGE, Parser, run  # noqa: F401
from mobilenets.cli.deploy import add_benchmark, add_export, add_predict, add_profile
from mobilenets.cli.serve import add_serve
from mobilenets.cli.training import add_demo, add_evaluate, add_retrain, add_train

# The order `mobilenets --help` lists them in.
COMMANDS = [add_demo, add_zoo, add_profile, add_retrain, add_train, add_evaluate, add_export, add_predict,
            add_benchmark, add_serve, add_compare]

__all__ = ["COMMANDS", "EXIT_PARITY", "EXIT_USAGE", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="mobilenets",
        description="Retrain, profile, export and compare MobileNets for on-device image classification.",
        epilog="Run 'mobilenets COMMAND --help' for a command's flags and an example.",
    )
    from mobilenets import __version__

    parser.add_argument("--version", action="version", version=f"mobilenets {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `mobilenets ARGV`; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
