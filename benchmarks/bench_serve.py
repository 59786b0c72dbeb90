"""Does `mobilenets serve` keep up with `mobilenets predict` on the same files?

    .venv/bin/python benchmarks/bench_serve.py runs/pokemon/export/model_int8.tflite \
        ../shared/data/pokemon-types --rounds 3

Both run as a user runs them, as console scripts in their own processes, on
the same model and the same image files:

* predict: `mobilenets predict MODEL FILES...`; its own images/s (the line it
  prints on stderr: the classification pass, without Python's and
  TensorFlow's start-up), which decodes in a thread pool while the model runs;
* serve: `mobilenets serve MODEL --port 0`, then a client posting one image
  per request (multipart, as the page does) over HTTP/1.1 keep-alive
  connections and reading every answer: images/s over the whole pass. With
  `--connections 1` the requests go one after another; with 2 two at a time,
  as the page sends them. The files are read into memory first, so the client
  does no disk work.

Each round runs predict, then serve with each connection count; figures are
medians over rounds and each ratio is the median of per-round ratios
(serve / predict). Target: serve >= 0.8x predict. Without a model, a
v1-0.25-224 with random weights is converted to int8 (`mobilenets.benchmark
.spec_tflite`); without images, `--images` photo-like JPEGs are generated.
"""

from __future__ import annotations

import argparse
import http.client
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import MOBILENETS, SHARED, log, median, print_rows, verdict

TARGET = 0.80
BOUNDARY = "----bench-serve"


def multipart(name: str, data: bytes) -> bytes:
    return (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def predict_img_s(model: str, files: list[Path], threads: str | None) -> float:
    """`mobilenets predict`'s own images/s, from the summary line it prints."""
    cmd = [str(MOBILENETS), "predict", model, *map(str, files)] + (["--threads", threads] if threads else [])
    r = subprocess.run(cmd, capture_output=True, text=True)
    m = re.search(r"(\d+) of (\d+) images classified.* in ([\d.]+) s", r.stderr)
    if r.returncode or not m:
        raise SystemExit(f"mobilenets predict failed ({r.returncode}): {r.stderr[-500:]}")
    return int(m.group(1)) / float(m.group(3))


def serve_img_s(url: str, bodies: list[bytes], connections: int) -> float:
    """Every body posted once, single-image requests over `connections` keep-alive connections."""
    host, port = url.split("//")[1].rstrip("/").split(":")
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    errors, lock, todo = [], threading.Lock(), iter(range(len(bodies)))

    def client():
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        conn.request("GET", "/api/models")  # open and warm the connection before the clock
        conn.getresponse().read()
        ready.wait()
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                break
            conn.request("POST", "/api/predict", body=bodies[i], headers=headers)
            r = conn.getresponse()
            answer = r.read()
            if r.status != 200:
                errors.append(answer[:200])
        conn.close()

    ready = threading.Event()
    threads = [threading.Thread(target=client) for _ in range(connections)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    start = time.perf_counter()
    ready.set()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    if errors:
        raise SystemExit(f"{len(errors)} requests failed, e.g. {errors[0]!r}")
    return len(bodies) / seconds


def start_server(model: str, threads: str | None) -> tuple[subprocess.Popen, str]:
    cmd = [str(MOBILENETS), "serve", model, "--port", "0", "--queue", "64"] + (
        ["--threads", threads] if threads else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    m = re.match(r"open (\S+)", line)
    if not m:
        proc.kill()
        raise SystemExit(f"mobilenets serve did not start: {line!r}")
    return proc, m.group(1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", help="run folder or model file (default: v1-0.25-224 int8, random weights)")
    p.add_argument("images", nargs="?", help="folder of images (default: ../shared/data/pokemon-types, "
                                             "else generated photos)")
    p.add_argument("--images", dest="count", type=int, default=400, help="images used (the first N, sorted)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", default="1,2", help="keep-alive connections, comma-separated")
    p.add_argument("--threads", help="inference threads for both (default: LiteRT's)")
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)

    from mobilenets.predict import list_images

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        tmp = Path(tmp)
        model = args.model
        if model is None:
            from mobilenets.benchmark import spec_tflite
            from mobilenets.export import quiet_native_stderr

            log("converting v1-0.25-224 (int8, random weights)")
            with quiet_native_stderr():
                model = str(spec_tflite("v1-0.25-224", tmp, "int8"))
        folder = args.images or (SHARED / "data" / "pokemon-types")
        if not Path(folder).is_dir():
            from bench_predict_throughput import make_photos

            log(f"writing {args.count} JPEGs")
            folder = make_photos(tmp / "photos", args.count)[0].parent
        files = list_images([folder])[:args.count]
        bodies = [multipart(f.name, f.read_bytes()) for f in files]
        connections = [int(c) for c in args.connections.split(",")]
        log(f"{model}: {len(files)} images from {folder}, {args.rounds} rounds")
        predicted, served, ratios = [], {c: [] for c in connections}, {c: [] for c in connections}
        for r in range(args.rounds):
            ours = predict_img_s(model, files, args.threads)
            predicted.append(ours)
            proc, url = start_server(model, args.threads)
            try:
                serve_img_s(url, bodies[:20], 1)  # warm-up: every code path once
                for c in connections:
                    s = serve_img_s(url, bodies, c)
                    served[c].append(s)
                    ratios[c].append(s / ours)
                    log(f"  round {r + 1}: predict {ours:.0f} img/s, serve over {c} connection(s) {s:.0f} img/s")
            finally:
                proc.send_signal(2)
                proc.wait(timeout=30)
    shown = f"{Path(model).name}/ (run: model.keras)" if Path(model).is_dir() else Path(model).name
    rows = [{"model": shown, "images": len(files), "connections": c,
             "predict_img_s": round(median(predicted), 1), "serve_img_s": round(median(served[c]), 1),
             "ratio": round(median(ratios[c]), 3), "meets_target": median(ratios[c]) >= TARGET}
            for c in connections]
    print_rows([dict(r, ratio=f"{r['ratio']:.3f}") for r in rows],
               f"mobilenets serve (HTTP keep-alive, one image per request) vs mobilenets predict, same files "
               f"({args.rounds} rounds, medians; target ratio >= {TARGET})")
    return verdict(rows, "meets_target", f"at >= {TARGET:.0%} of predict's images/s", args)


if __name__ == "__main__":
    sys.exit(main())
