"""The `mobilenets` command line: parse, call the library, print.

    mobilenets zoo --version v1
    mobilenets profile v1-1.00-224 --per-layer

Each command is a pair: `_add_<command>(subparsers)` declares its flags and
`cmd_<command>(args)` calls one library function and prints. No logic lives
here. A `MobilenetsError` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap

from mobilenets.errors import MobilenetsError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors in one line, like every other error here."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _command(sub, name: str, help: str, example: str):
    return sub.add_parser(
        name, help=help, description=help,
        epilog="example:\n" + textwrap.indent(example.strip(), "  "),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


# ------------------------------------------------------------------ zoo


def _add_zoo(sub):
    p = _command(sub, "zoo", "List the canonical MobileNets with params, MACs and ImageNet top-1.",
                 "mobilenets zoo --version v1 --format md")
    p.add_argument("--version", choices=["v1", "v2", "v3"], help="only this generation")
    p.add_argument("--filter", metavar="GLOB", help="only specs matching, e.g. 'v2-*-224'")
    p.add_argument("--format", choices=["table", "md", "csv", "json"], default="table")
    p.set_defaults(func=cmd_zoo)


def cmd_zoo(args):
    from mobilenets.results import write_rows
    from mobilenets.zoo import list_variants, zoo_rows

    variants = list_variants(args.version, args.filter)
    if not variants:
        raise MobilenetsError(f"no registry variant matches {args.filter!r}")
    rows = _with_progress(zoo_rows, variants, "profiling")
    write_rows(rows, args.format, title="MobileNet zoo", headers={
        "macs_m": "MACs (M)", "weights_mb": "weights (MB)", "imagenet_weights": "ImageNet weights",
        "top1": "top-1 %", "top1_source": "source"})


def _with_progress(fn, items, what: str):
    """Run fn(items) one item at a time behind a progress bar on a terminal."""
    if not sys.stderr.isatty() or len(items) < 4:
        return fn(items)
    from rich.progress import Progress

    out = []
    with Progress(transient=True) as bar:
        task = bar.add_task(what, total=len(items))
        for item in items:
            out += fn([item])
            bar.advance(task)
    return out


# -------------------------------------------------------------- profile


def _add_profile(sub):
    p = _command(sub, "profile", "Params, multiply-accumulates and memory of a spec or model file.",
                 "mobilenets profile v1-0.50-160 --per-layer\n"
                 "mobilenets profile runs/pets/model.keras --json\n"
                 "mobilenets profile ../shared/models/mobilenet_v1_0.25_128_quant.tflite")
    p.add_argument("target", metavar="SPEC_OR_FILE",
                   help="a spec (v1-0.50-160) or a .keras/.h5/.tflite file")
    p.add_argument("--classes", type=int, default=1000, help="classifier size for a spec (default 1000)")
    p.add_argument("--per-layer", action="store_true", help="also list every layer")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_profile)


def cmd_profile(args):
    from mobilenets.profile import profile
    from mobilenets.results import write_rows

    p = profile(args.target, classes=args.classes)
    if args.json:
        print(json.dumps(p.to_dict(per_layer=args.per_layer), indent=2))
        return
    if args.per_layer:
        write_rows(p.layers, "table", title=p.name)
        print()
    summary = p.to_dict()
    summary["macs_m"] = round(p.macs / 1e6, 2)
    write_rows([{k: v for k, v in summary.items() if v is not None}], "table", title=p.name)


# ----------------------------------------------------------------- main

COMMANDS = [_add_zoo, _add_profile]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mobilenets",
        description="Retrain, profile, export and compare MobileNets for on-device image classification.",
        epilog="Run 'mobilenets COMMAND --help' for a command's flags and an example.",
    )
    from mobilenets import __version__

    parser.add_argument("--version", action="version", version=f"mobilenets {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    return parser


def _quiet_tensorflow() -> None:
    """Keep TensorFlow's C++ start-up chatter off the user's terminal."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if "tensorflow" in sys.modules:
        return
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    except ImportError:
        pass
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    _quiet_tensorflow()
    try:
        args.func(args)
    except MobilenetsError as e:
        print(f"mobilenets {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"mobilenets {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
