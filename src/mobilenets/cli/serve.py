"""The `serve` command: a local web page to try a run or model file.

    mobilenets serve runs/pets
    mobilenets serve model_int8.tflite --port 0 --host 127.0.0.1
"""

from __future__ import annotations

import sys

from mobilenets.cli.common import command
from mobilenets.cli.flags import input_range, port, positive, positive_int


def add_serve(sub):
    p = command(sub, "serve", "A local web page to try a model: drop, paste or snap images and see the top "
                "classes; a run's Keras model and exported files side by side, and its evaluation.",
                "mobilenets serve runs/pets\n"
                "mobilenets serve runs/pets/export/model_int8.tflite --port 8080\n"
                "mobilenets serve ../shared/models/mobilenet_v1_0.25_128_quant.tflite "
                "--labels ../shared/models/imagenet_labels.txt")
    p.epilog += ("\n\nThe page's API: POST /api/predict (multipart field 'image', optional 'model' and "
                 "'top_k') answers\n{\"predictions\": [{\"label\", \"score\"}, ...], \"model\", \"ms\"}; "
                 "GET /api/models lists the models. Errors are a\n4xx with {\"error\": \"...\"}. "
                 "Ctrl-C stops the server.")
    p.add_argument("target", metavar="RUN_OR_MODEL", help="run directory, .keras, .h5 or .tflite")
    p.add_argument("--port", type=port, default=8000, help="TCP port; 0 takes any free one")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 lets other machines in (the page has no login)")
    p.add_argument("--labels", metavar="FILE",
                   help="labels, one per line, for models without their own (default: the model's own)")
    p.add_argument("--input-range", type=input_range, metavar="LOW,HIGH",
                   help="float input range of a model without our metadata: -1,1, 0,1 or 0,255 "
                        "(default: -1,1)")
    p.add_argument("--threads", type=positive_int, help="inference threads (default: LiteRT's, 1)")
    p.add_argument("--max-upload-mb", type=positive, default=20, help="largest image file accepted, in MB")
    p.add_argument("--queue", type=positive_int, default=16,
                   help="predictions in progress or waiting at most; more are answered 503 (busy)")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args):
    from mobilenets.serve import Server

    server = Server(args.target, host=args.host, port=args.port, labels=args.labels,
                    input_range=args.input_range, threads=args.threads,
                    max_upload_bytes=int(args.max_upload_mb * 2**20), queue=args.queue)
    names = server.registry.names
    print(f"serving {args.target} ({len(names)} model{'s' * (len(names) != 1)}: {', '.join(names)})",
          file=sys.stderr)
    print(f"open {server.url}  (Ctrl-C stops)", flush=True)
    server.run()
    print("stopped", file=sys.stderr)
