"""Which MobileNet: exact cost, measured speed and accuracy of many candidates, side by side.

    mobilenets compare --grid "v1:1.0,0.75,0.5,0.25:224,192,160,128" v2-1.00-224 --threads 1,2 --budget-ms 5

For every candidate spec: params and MACs (`mobilenets.profile`), the size of
its float32 and int8 `.tflite` files, their LiteRT latency at each thread
count (p50 over `runs` calls, each (file, threads) in a fresh process, by
`mobilenets.benchmark`), and the published ImageNet top-1 from the registry.
With `data`, every candidate is also retrained with one recipe (same epochs,
same weights, same seed), exported (`mobilenets.export`), and the files that
are measured are the exported ones: the model you would ship.

Everything lands under the output folder (default `compare/`):

    rows/<spec>.json     what is known about one candidate, written atomically
                         after every step, so Ctrl-C loses at most one step
    models/<spec>/       float32.tflite, int8.tflite (random weights, 1000 classes)
    runs/<spec>-<key>/   retrain runs (with data), their export/ folder
    plots/*.png, report.html, results.json

A re-run reads `rows/` and only does what is missing: a new thread count
measures that thread count only; a candidate with everything is `reused`.
Files are reused only when made by the same TensorFlow and mobilenets
versions, latencies only when measured on the same CPU model with the same
LiteRT; delete `rows/` and `models/` to start over.

`choose` picks the most accurate candidate within a latency and/or size
budget (accuracy after retraining if known, else published ImageNet top-1,
else the largest MACs) and says why in one sentence.

The package, one module per concern, each importing only those above it here:

    choice    the Pareto front and the pick within a budget (pure)
    grid      spec strings and grids as one list of candidates
    records   the stored record of a candidate, and what makes its parts reusable
    retrain   retrain and export a candidate with the shared recipe
    measure   convert, profile and time one candidate, saving after every step
    plots     the latency-accuracy and MACs-latency PNGs
    report    the self-contained HTML page
    run       `compare` and `summarize`: all candidates, then plots and report
"""

from mobilenets.compare.choice import (FORMATS, METRIC_TEXT, METRICS, Choice, choose, latency_key,
                                       measured_threads, pareto_front, pick_metric)
from mobilenets.compare.grid import GRID_FAMILIES, GRID_FORM, candidates, parse_grid
from mobilenets.compare.records import (EXPORT_NAMES, FILE_NAMES, RECORD_VERSION, cpu_model,
                                        load_record, package_version, tool_versions)
from mobilenets.compare.run import Comparison, columns_for, compare, summarize

__all__ = ["FORMATS", "METRICS", "METRIC_TEXT", "Choice", "choose", "latency_key", "measured_threads",
           "pareto_front", "pick_metric", "GRID_FAMILIES", "GRID_FORM", "candidates", "parse_grid",
           "EXPORT_NAMES", "FILE_NAMES", "RECORD_VERSION", "cpu_model", "load_record",
           "package_version", "tool_versions", "Comparison", "columns_for", "compare", "summarize"]
