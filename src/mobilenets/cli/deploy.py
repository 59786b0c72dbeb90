"""The commands about model files: profile, export, predict, benchmark.

    mobilenets export runs/pets --quantize int8 --io int8
    mobilenets predict runs/pets/export/model_int8.tflite photos/ --top-k 3
"""

from __future__ import annotations

import json
import os
import sys

from mobilenets.cli.common import EXIT_PARITY, EXIT_USAGE, command
from mobilenets.cli.flags import (drop, file, folder, fraction, input_range, non_negative_int,
                                  positive_int, thread_counts)
from mobilenets.errors import MobilenetsError


# -------------------------------------------------------------- profile


def add_profile(sub):
    p = command(sub, "profile", "Params, multiply-accumulates and memory of a spec or model file.",
                "mobilenets profile v1-0.50-160 --per-layer\n"
                "mobilenets profile runs/pets/model.keras --json\n"
                "mobilenets profile ../shared/models/mobilenet_v1_0.25_128_quant.tflite")
    p.add_argument("target", metavar="SPEC_OR_FILE",
                   help="a spec (v1-0.50-160) or a .keras/.h5/.tflite file")
    p.add_argument("--classes", type=positive_int, default=1000,
                   help="classifier size for a spec")
    p.add_argument("--per-layer", action="store_true", help="also list every layer")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_profile)


def cmd_profile(args):
    from mobilenets.profile import metadata_summary, profile
    from mobilenets.results import write_rows

    p = profile(args.target, classes=args.classes)
    if args.json:
        print(json.dumps(p.to_dict(per_layer=args.per_layer), indent=2))
        return
    if args.per_layer:
        write_rows(p.layers, "table", title=p.name)
        print()
    summary = p.to_dict()
    summary.pop("metadata", None)
    summary["macs_m"] = round(p.macs / 1e6, 2)
    write_rows([{k: v for k, v in summary.items() if v is not None}], "table", title=p.name)
    if p.metadata is not None:
        print()
        write_rows([{"field": k, "value": v} for k, v in metadata_summary(p.metadata).items()],
                   "table", title=f"{p.name}: what the file says")


# --------------------------------------------------------------- export


def add_export(sub):
    p = command(sub, "export", "Export a run to .tflite (float32/float16/dynamic/int8), SavedModel or ONNX, "
                "labels inside, with a parity report against Keras.",
                "mobilenets export runs/pets\n"
                "mobilenets export runs/pets --quantize int8 --io int8 --calibration photos/\n"
                "mobilenets export runs/pets/model.keras --format tflite,onnx --data photos/\n"
                "mobilenets export runs/pets --min-agreement 0.99 --max-drop 0.005")
    p.epilog += ("\n\nThe parity report runs every file on up to --parity-images images that int8 "
                 "calibration did not use\n(the run's test and val splits, then the rest of its "
                 "training split) and prints accuracy,\nagreement with Keras and accuracy drop as "
                 "fractions (0.01 = 1 percentage point) with 95%\nconfidence intervals. Exit status: "
                 f"0 when every file passes, {EXIT_PARITY} when one has agreement below\n--min-agreement "
                 "or an accuracy drop above --max-drop (each gets a warning line; the files\nand "
                 "export_report.json are written all the same; --allow-drop exits 0), "
                 f"{EXIT_USAGE} on errors.")
    p.add_argument("target", metavar="RUN_OR_MODEL", help="run directory, .keras or full-model .h5")
    p.add_argument("--quantize", metavar="MODES",
                   help="comma-separated .tflite modes: none (float32), float16, dynamic, int8 "
                        "(default: none,int8)")
    p.add_argument("--io", choices=["float32", "uint8", "int8"],
                   help="input/output type of the int8 model; float modes are float32 (default: uint8, "
                        "as Coral and Teachable Machine ship)")
    p.add_argument("--calibration", metavar="DATA",
                   help="int8 calibration images (default: the run's training split)")
    p.add_argument("--calibration-size", type=positive_int, default=200, metavar="N",
                   help="int8 calibration images used")
    p.add_argument("--int8-method", choices=["reconstruct", "plain"], default="reconstruct",
                   help="reconstruct: refit each kernel on the int8 grid so the int8 file keeps the "
                        "Keras model's answers (about a minute for a small MobileNet); plain: the "
                        "TFLite converter's rounding alone")
    p.add_argument("--format", default="tflite", metavar="FORMATS",
                   help="tflite, saved_model, onnx, or a comma-separated list")
    p.add_argument("--out", type=folder, metavar="DIR",
                   help="output folder (default: <run>/export); a re-export replaces it whole")
    gate = p.add_argument_group("parity report and gate")
    gate.add_argument("--data", help="data for the parity report (default: the run's own)")
    gate.add_argument("--parity-images", type=positive_int, default=1000, metavar="N",
                      help="at most N parity images")
    gate.add_argument("--min-agreement", type=fraction, default=0.98, metavar="F",
                      help="fail a file whose top-1 agreement with Keras is below F, from 0 to 1")
    gate.add_argument("--max-drop", type=drop, default=0.01, metavar="F",
                      help="fail a file whose top-1 accuracy is more than F below Keras's, as a "
                           "fraction (0.01 = 1 percentage point)")
    gate.add_argument("--allow-drop", action="store_true",
                      help=f"warn about failing files but exit 0, not {EXIT_PARITY}")
    gate.add_argument("--no-parity", action="store_true", help="skip the parity report (and the gate)")
    p.add_argument("--input-range", type=input_range, metavar="LOW,HIGH",
                   help="what a model without our preprocess layer expects; write negative values "
                        "as --input-range=-1,1 (default: -1,1)")
    p.set_defaults(func=cmd_export)


def cmd_export(args):
    from mobilenets.export import export, parity_table
    from mobilenets.results import write_rows

    r = export(args.target, out_dir=args.out, quantize=args.quantize, io=args.io, formats=args.format,
               calibration=args.calibration, calibration_size=args.calibration_size, data=args.data,
               parity=not args.no_parity, parity_images=args.parity_images, input_range=args.input_range,
               min_agreement=args.min_agreement, max_drop=args.max_drop, int8_method=args.int8_method)
    if r.rows:
        write_rows(parity_table(r.rows), "table", title="export parity")
    for note in r.notes:
        print(note, file=sys.stderr)
    print(f"exported {', '.join(r.files)} -> {r.out_dir}")
    for failure in r.failed:
        print(f"mobilenets export: warning: {failure['message']}", file=sys.stderr)
    if r.failed and not args.allow_drop:
        print(f"mobilenets export: {len(r.failed)} file(s) failed the parity gate (--min-agreement "
              f"{args.min_agreement:g}, --max-drop {args.max_drop:g}); exit {EXIT_PARITY} "
              f"(--allow-drop accepts them)", file=sys.stderr)
        return EXIT_PARITY
    return 0


# -------------------------------------------------------------- predict


def add_predict(sub):
    p = command(sub, "predict", "Classify images and folders with a run, .keras/.h5 or any .tflite.",
                "mobilenets predict runs/pets/export/model_int8.tflite photos/ --top-k 3\n"
                "mobilenets predict ../shared/models/mobilenet_v1_0.25_128_quant.tflite cat.jpg "
                "--labels ../shared/models/imagenet_labels.txt --json")
    p.epilog += ("\n\nAn unreadable file gets its own line (with --json: {\"path\": ..., \"error\": ...}) "
                 "and the others go on;\nexit status 0 when at least one image was classified, "
                 "2 when none was.")
    p.add_argument("model", metavar="MODEL", help="run directory, .keras, .h5 or .tflite")
    p.add_argument("images", nargs="+", metavar="IMAGES_OR_DIRS", help="image files and folders (recursive)")
    p.add_argument("--labels", metavar="FILE", help="labels, one per line, for models without their own (default: the model's own)")
    p.add_argument("--top-k", type=positive_int, default=5, help="classes shown per image")
    p.add_argument("--json", action="store_true",
                   help="JSON lines: first {\"model\": {...}} (what the file says: metadata, labels, "
                        "normalization, input type, float ops), then one object per image")
    p.add_argument("--threads", type=positive_int, help="inference threads (default: LiteRT's, 1)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="images per call")
    p.add_argument("--input-range", type=input_range, metavar="LOW,HIGH",
                   help="float input range of a model without our metadata: -1,1, 0,1 or 0,255; write "
                        "negative values as --input-range=-1,1 (default: -1,1)")
    p.add_argument("--faces", action="store_true",
                   help="classify each image's largest face (OpenCV Haar cascade; whole image if none)")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args):
    import time

    from mobilenets.predict import list_images, load_classifier, predict_files, write_predictions

    clf = load_classifier(args.model, labels=args.labels, input_range=args.input_range,
                          threads=args.threads)
    paths = list_images(args.images)
    if args.json:
        print(json.dumps({"model": clf.info()}), flush=True)
    faces = None
    if args.faces:
        from mobilenets.faces import FaceCropper

        faces = FaceCropper()
    start = time.perf_counter()
    counts = write_predictions(predict_files(clf, paths, k=args.top_k, batch_size=args.batch_size,
                                             faces=faces), json_lines=args.json)
    if faces is not None:
        r = faces.report()
        print(f"faces: {r['found']} found, {r['fallback']} images without a face classified whole, "
              f"{r['already_cropped']} already face crops", file=sys.stderr)
    seconds = time.perf_counter() - start
    if not counts["predicted"]:
        raise MobilenetsError(f"none of the {counts['images']} files could be read as images")
    if counts["images"] > 1:
        unreadable = f", {counts['errors']} unreadable" if counts["errors"] else ""
        print(f"{counts['predicted']} of {counts['images']} images classified{unreadable} "
              f"in {seconds:.1f} s ({counts['predicted'] / seconds:.0f} img/s)", file=sys.stderr)


# ------------------------------------------------------------ benchmark


def add_benchmark(sub):
    p = command(sub, "benchmark", "Latency percentiles, throughput, memory and GMAC/s; LiteRT and Keras "
                "side by side.",
                "mobilenets benchmark runs/pets --threads 1,2\n"
                "mobilenets benchmark v2-1.00-224 model_int8.tflite --runs 100 --per-op\n"
                "mobilenets benchmark runs/pets --format csv --out bench.csv")
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help=".tflite/.keras/.h5 file, run directory, or spec (random weights, float32 .tflite)")
    p.add_argument("--threads", type=thread_counts, default="1", metavar="N[,N...]",
                   help="comma-separated thread counts")
    p.add_argument("--runs", type=positive_int, default=50, help="timed calls")
    p.add_argument("--warmup", type=non_negative_int, default=5, help="untimed calls first")
    p.add_argument("--batch", type=positive_int, default=1, help="images per call")
    p.add_argument("--per-op", action="store_true", help="ops by type, with XNNPACK delegation")
    p.add_argument("--format", choices=["table", "md", "csv", "json"], default="table",
                   help="how the rows are printed")
    p.add_argument("--out", type=file, metavar="FILE",
                   help="also write the rows here, .csv/.json/.md by suffix (default: printed only)")
    p.set_defaults(func=cmd_benchmark)


def cmd_benchmark(args):
    from mobilenets.artifacts import write_text
    from mobilenets.benchmark import benchmark
    from mobilenets.results import render, write_rows

    r = benchmark(args.models, threads=args.threads, runs=args.runs, warmup=args.warmup,
                  batch=args.batch, per_op=args.per_op)
    write_rows(r["rows"], args.format, title="benchmark")
    if r["ops"]:
        print()
        write_rows(r["ops"], args.format, title="ops by type")
    for note in r["notes"]:
        print(note, file=sys.stderr)
    if args.out:
        fmt = {".csv": "csv", ".json": "json", ".md": "md"}.get(os.path.splitext(args.out)[1].lower(),
                                                                  args.format)
        write_text(args.out, render(r["rows"], fmt))
