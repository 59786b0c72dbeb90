"""The commands that help choose a MobileNet: zoo (the registry) and compare (measured candidates).

    mobilenets zoo --version v1 --format md
    mobilenets compare --grid "v1:1.0,0.5:224,160" --budget-ms 5
"""

from __future__ import annotations

import sys

from mobilenets.cli.common import command
from mobilenets.cli.flags import folder, non_negative_int, positive, positive_int, thread_counts
from mobilenets.cli.recipe import recipe
from mobilenets.env import progress_bar
from mobilenets.errors import MobilenetsError


# ------------------------------------------------------------------ zoo


def add_zoo(sub):
    p = command(sub, "zoo", "List the canonical MobileNets with params, MACs and ImageNet top-1.",
                "mobilenets zoo --version v1 --format md")
    p.add_argument("--version", choices=["v1", "v2", "v3", "v4"], help="only this generation (default: all)")
    p.add_argument("--filter", metavar="GLOB", help="only specs matching, e.g. 'v2-*-224' (default: all)")
    p.add_argument("--format", choices=["table", "md", "csv", "json"], default="table",
                   help="how the rows are printed")
    p.set_defaults(func=cmd_zoo)


def cmd_zoo(args):
    from mobilenets.results import write_rows
    from mobilenets.zoo import list_variants, zoo_rows

    variants = list_variants(args.version, args.filter)
    if not variants:
        raise MobilenetsError(f"no registry variant matches {args.filter!r}")
    rows = []
    with progress_bar("profiling", total=len(variants), min_total=4) as bar:
        for variant in variants:
            rows += zoo_rows([variant])
            bar.advance()
    write_rows(rows, args.format, title="MobileNet zoo", headers={
        "macs_m": "MACs (M)", "weights_mb": "weights (MB)", "imagenet_weights": "ImageNet weights",
        "top1": "top-1 %", "top1_source": "source"})


# -------------------------------------------------------------- compare


def add_compare(sub):
    p = command(sub, "compare", "Which MobileNet: params, MACs, .tflite size, measured float32/int8 latency "
                "and accuracy of many candidates, a budget pick, plots and an HTML report.",
                'mobilenets compare v1-1.00-224 v2-1.00-224 --threads 1,2\n'
                'mobilenets compare --grid "v1:1.0,0.75,0.5,0.25:224,192,160,128" --budget-ms 5 --max-size-mb 2\n'
                'mobilenets compare --grid "v2:0.35,0.5:224,160" --data photos/ --epochs 10')
    p.add_argument("specs", nargs="*", metavar="SPEC", help="candidate specs, e.g. v2-1.00-224")
    p.add_argument("--grid", action="append", default=[], metavar="FAMILY:ALPHAS:RESOLUTIONS",
                   help="a grid of candidates, e.g. 'v1:1.0,0.5:224,160' (family v1, v2, v3-large, "
                        "v3-small, v3-large-min, v3-small-min, v4-conv-s, v4-conv-m, v4-conv-l); "
                        "repeatable (default: only the SPECs given)")
    p.add_argument("--threads", type=thread_counts, default="1", metavar="N[,N...]",
                   help="comma-separated thread counts")
    p.add_argument("--runs", type=positive_int, default=50, help="timed calls per latency")
    p.add_argument("--warmup", type=non_negative_int, default=5, help="untimed calls first")
    p.add_argument("--repeats", type=positive_int, default=1, metavar="N",
                   help="time each file in N fresh processes spread over the run and keep the lowest "
                        "p50: steadier on a busy machine")
    p.add_argument("--data", metavar="DATA",
                   help="retrain every candidate on this data (same recipe) and measure accuracy "
                        "(default: none, published ImageNet top-1 only)")
    p.add_argument("--epochs", type=positive_int, help=f"retrain epochs (default: the retrain recipe's, {recipe('retrain').epochs})")
    p.add_argument("--weights", default="imagenet",
                   help="imagenet, none, or a weights file; the same for every candidate")
    p.add_argument("--cache-dir", type=folder,
                   help="bottleneck cache for retraining (default: $MOBILENETS_CACHE, else ~/.cache/mobilenets)")
    p.add_argument("--budget-ms", type=positive, metavar="MS",
                   help="pick the most accurate model within MS (default: no budget)")
    p.add_argument("--max-size-mb", type=positive, metavar="MB",
                   help="... and within MB of .tflite file (default: no limit)")
    p.add_argument("--budget-format", choices=["int8", "float"], default="int8",
                   help="the file the budget applies to")
    p.add_argument("--budget-threads", type=positive_int, metavar="N",
                   help="the thread count the budget applies to (default: the largest of --threads)")
    p.add_argument("--out", type=folder, default="compare", metavar="DIR",
                   help="results, files and report.html; also the cache a re-run reuses")
    p.add_argument("--format", choices=["table", "md", "csv", "json"], default="table",
                   help="how the rows are printed")
    p.add_argument("--no-report", action="store_true", help="skip the plots and report.html")
    p.set_defaults(func=cmd_compare)


_COMPARE_DEFAULTS = {"threads": (1,), "runs": 50, "warmup": 5, "repeats": 1,
                     "weights": "imagenet", "budget_format": "int8", "out": "compare"}


def _compare_command(args) -> str:
    """The command line as given (flags at their defaults left out), for the report."""
    import shlex

    parts = ["mobilenets", "compare", *args.specs]
    for g in args.grid:
        parts += ["--grid", g]
    for name in ("threads", "runs", "warmup", "repeats", "data", "epochs", "weights", "budget_ms",
                 "max_size_mb", "budget_format", "budget_threads", "out"):
        value = getattr(args, name)
        if value is not None and value != _COMPARE_DEFAULTS.get(name):
            text = ",".join(map(str, value)) if name == "threads" else str(value)
            parts += ["--" + name.replace("_", "-"), text]
    return " ".join(shlex.quote(p) for p in parts)


def cmd_compare(args):
    from mobilenets.compare.grid import candidates
    from mobilenets.compare.run import compare
    from mobilenets.results import write_rows

    specs = candidates(args.specs, args.grid)
    if not specs:
        raise MobilenetsError("give candidates: specs such as v1-0.50-160 and/or --grid v1:1.0,0.5:224,160")
    r = compare(specs, out_dir=args.out, threads=args.threads, runs=args.runs, warmup=args.warmup,
                repeats=args.repeats, data=args.data, epochs=args.epochs, weights=args.weights,
                cache_dir=args.cache_dir,
                budget_ms=args.budget_ms, max_size_mb=args.max_size_mb, budget_format=args.budget_format,
                budget_threads=args.budget_threads, report=not args.no_report,
                command=_compare_command(args))
    tabular = args.format in ("table", "md")
    write_rows(r.rows, args.format, columns=r.columns if tabular else None,
               headers=r.headers if tabular else None, title="compare")
    if r.choice:
        # after the table on stdout; on stderr for csv/json so stdout stays machine-readable
        print(r.choice.sentence, file=sys.stdout if tabular else sys.stderr)
    reused = sum(1 for row in r.rows if row.get("reused"))
    where = f"report: {r.report_path}" if r.report_path else f"rows: {r.out_dir / 'rows'}"
    print(f"{len(r.rows)} candidates ({reused} reused from {r.out_dir}); {where}", file=sys.stderr)
