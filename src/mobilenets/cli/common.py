"""What every command shares: the one-line-error parser, the help format, and errors as exit codes.

    p = command(sub, "zoo", "List the canonical MobileNets.", "mobilenets zoo --version v1")
    sys.exit(run(parser.parse_args(argv)))

A `MobilenetsError` becomes one line on stderr and exit code 2; a command may
return another status (export's parity gate: 3).
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap

from mobilenets.errors import MobilenetsError

EXIT_USAGE = 2
# mobilenets export: a file failed the parity gate (its files are written all the same).
EXIT_PARITY = 3


class Parser(argparse.ArgumentParser):
    """argparse that reports errors in one line, like every other error here."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with "(default: ...)": the parser's default, unless the help says it.

    A flag whose default is None (not given: a recipe, the run or the model decides) says its
    default in words; switches (off unless given) and empty lists show none, so no "default: None".
    """

    def _get_help_string(self, action):
        help = action.help or ""
        if (not action.option_strings or "(default: " in help
                or action.default in (None, False, [], argparse.SUPPRESS)):
            return help
        return f"{help} (default: %(default)s)".lstrip()

    def _split_lines(self, text, width):
        # Not after a hyphen: "--input-range=-1,1" stays whole.
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def command(sub, name: str, help: str, example: str):
    """A subcommand whose help ends with an example command line."""
    return sub.add_parser(
        name, help=help, description=help,
        epilog="example:\n" + textwrap.indent(example.strip(), "  "),
        formatter_class=HelpFormatter,
    )


def quiet_tensorflow() -> bool:
    """Set TensorFlow's environment (quiet, oneDNN on) and import it with its start-up chatter muted.

    Returns False when TensorFlow is not installed: reading and timing .tflite files needs only
    LiteRT. A TensorFlow that is installed but does not import is a `MobilenetsError`, since
    every later failure would hide the reason (its native messages went to the muted stderr).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    # TensorFlow's oneDNN kernels: on by default only on AVX-512-class CPUs, yet faster for
    # training on AVX2 too (`mobilenets.train.onednn_enabled`).
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"] is not None
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    except ImportError as e:
        if _is_tensorflow_missing(e):
            return False
        from mobilenets.env import first_line

        raise MobilenetsError(f"TensorFlow is installed but does not import: {first_line(e)} "
                              f"(reinstall it: {_TENSORFLOW_PIP})") from None
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)
    return True


_TENSORFLOW_PIP = "pip install 'tensorflow-cpu==2.21.*'"


def _is_tensorflow_missing(e: BaseException) -> bool:
    """True when `e` is the import of TensorFlow itself failing: it is not installed."""
    return isinstance(e, ModuleNotFoundError) and (e.name or "").split(".")[0] == "tensorflow"


def run(args) -> int:
    """Call the command `args` was parsed for: its status, or the exit code of what stopped it."""
    tensorflow = None
    try:
        tensorflow = quiet_tensorflow()
        status = args.func(args)
    except ModuleNotFoundError as e:
        if tensorflow is not False or not _is_tensorflow_missing(e):
            raise
        print(f"mobilenets {args.command}: error: this needs TensorFlow, which is not installed "
              f"(only .tflite files can be used without it; {_TENSORFLOW_PIP})", file=sys.stderr)
        return EXIT_USAGE
    except MobilenetsError as e:
        print(f"mobilenets {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"mobilenets {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return status or 0
