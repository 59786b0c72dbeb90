"""mobilenets serve: the real server on a free port, a real tiny run, real HTTP, a real browser."""

import http.client
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _chromium import DevToolsPage, looks_drawn
from _tiny import make_folder, make_run

PIKACHU = Path("data/pokemon-types/Electric/025.jpg")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny run with its Keras model, an exported float32 file and a test-split evaluation."""
    from mobilenets.evaluate import evaluate
    from mobilenets.export import export

    tmp = tmp_path_factory.mktemp("serve")
    run = make_run(tmp / "run", make_folder(tmp / "data", per_class=6))
    export(run, quantize="none", parity=False)
    evaluate(run)
    return run


@pytest.fixture(scope="module")
def server(run):
    from mobilenets.serve import Server

    with Server(run, port=0, max_upload_bytes=2**20, max_pixels=4_000_000) as s:
        yield s


def _request(server, method, path, body=b"", headers=None):
    """(status, parsed JSON or raw bytes) over http.client, which sends the path as it is."""
    host, port = server.url.split("//")[1].rstrip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
    finally:
        conn.close()
    if r.getheader("content-type", "").startswith("application/json"):
        return r.status, json.loads(data)
    return r.status, data


def _multipart(fields: dict) -> tuple[bytes, dict]:
    """A multipart/form-data body: bytes values are files, str values plain fields."""
    boundary = "----mobilenets-test-boundary"
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f"--{boundary}\r\n".encode())
        if isinstance(value, bytes):
            out.write(f'Content-Disposition: form-data; name="{name}"; filename="{name}.bin"\r\n'
                      f"Content-Type: application/octet-stream\r\n\r\n".encode() + value + b"\r\n")
        else:
            out.write(f'Content-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def _predict(server, image: bytes, **fields):
    body, headers = _multipart({"image": image, **fields})
    return _request(server, "POST", "/api/predict", body, headers)


def test_models_lists_the_run_keras_model_then_its_exported_file(server):
    status, body = _request(server, "GET", "/api/models")
    assert status == 200
    assert [m["name"] for m in body["models"]] == ["model.keras", "export/model_float32.tflite"]
    assert body["default"] == "model.keras" and body["models"][0]["loaded"]
    assert body["models"][0]["input_size"] == [32, 32] and body["models"][0]["labels"] == 3


def test_predict_answers_as_mobilenets_predict_does(server, run):
    """Same decoding, resizing, labels and scores as `predict_files`, for each model of the run."""
    from mobilenets.predict import load_classifier, predict_files

    image = sorted((run.parent / "data" / "red").glob("*.jpg"))[0]
    for name, path in (("model.keras", run), ("export/model_float32.tflite", run / "export" / "model_float32.tflite")):
        status, body = _predict(server, image.read_bytes(), model=name, top_k="2")
        assert status == 200, body
        assert body["model"] == name and body["ms"] > 0
        want = next(predict_files(load_classifier(path), [image], k=2, progress=False))["top_k"]
        assert [p["label"] for p in body["predictions"]] == [w["label"] for w in want]
        assert np.allclose([p["score"] for p in body["predictions"]], [w["score"] for w in want], atol=1e-4)


def _bomb() -> bytes:
    """A 20,000 x 20,000 PNG of one colour: a few kilobytes that would decode to 1.2 GB."""
    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("case, status, fragment", [
    ("text", 415, "not an image"),
    ("empty", 400, "empty upload"),
    ("truncated", 415, ""),
    ("bomb", 413, "too large to decode safely"),
    ("huge", 413, "upload too large"),
    ("no field", 400, "no image"),
    ("top_k", 400, "top_k must be a whole number"),
    ("model", 404, "no model 'nope.tflite'"),
])
def test_bad_uploads_get_a_4xx_with_a_one_line_json_error(server, run, case, status, fragment):
    jpeg = sorted((run.parent / "data" / "blue").glob("*.jpg"))[0].read_bytes()
    body, headers = {
        "text": lambda: _multipart({"image": b"just some text\n"}),
        "empty": lambda: _multipart({"image": b""}),
        "truncated": lambda: _multipart({"image": jpeg[: len(jpeg) // 3]}),
        "bomb": lambda: _multipart({"image": _bomb()}),
        "huge": lambda: _multipart({"image": os.urandom(3 * 2**20)}),
        "no field": lambda: _multipart({"picture": jpeg}),
        "top_k": lambda: _multipart({"image": jpeg, "top_k": "lots"}),
        "model": lambda: _multipart({"image": jpeg, "model": "nope.tflite"}),
    }[case]()
    got, answer = _request(server, "POST", "/api/predict", body, headers)
    assert got == status, answer
    assert set(answer) == {"error"} and "\n" not in answer["error"] and fragment in answer["error"]
    assert _predict(server, jpeg)[0] == 200  # and the server goes on


@pytest.mark.parametrize("path", ["/static/../registry.py", "/static/%2e%2e/registry.py",
                                  "/static/..%2fregistry.py", "/static//etc/passwd",
                                  "/static/../../../../../../etc/passwd", "/nowhere"])
def test_static_routes_serve_nothing_outside_the_assets(server, path):
    status, body = _request(server, "GET", path)
    assert status == 404 and "error" in body, (path, body)


def test_the_page_and_its_assets_come_from_the_package(server):
    status, page = _request(server, "GET", "/")
    assert status == 200 and b'<script src="/static/app.js">' in page
    elsewhere = re.compile(rb"(https?:)?//(?!127\.0\.0\.1|localhost)[\w-]+\.[\w.-]+/")
    assert not elsewhere.search(page)  # nothing from the network: works offline
    for asset in ("app.js", "style.css"):
        status, text = _request(server, "GET", f"/static/{asset}")
        assert status == 200 and not elsewhere.search(text), asset


def test_evaluations_give_metrics_confusion_matrix_and_gallery(server):
    status, body = _request(server, "GET", "/api/evaluations")
    assert status == 200
    (ev,) = body["evaluations"]
    assert ev["name"] == "evaluation-test" and ev["classes"] == ["blue", "green", "red"]
    assert ev["confusion_png"].startswith("data:image/png;base64,")
    assert ev["misclassified"] == len(ev["gallery"]) and all(m["thumb"].startswith("data:image/jpeg")
                                                               for m in ev["gallery"])


def test_concurrent_requests_are_queued_with_a_bound_and_never_crash(run):
    from mobilenets.serve import Server

    jpeg = sorted((run.parent / "data" / "green").glob("*.jpg"))[0].read_bytes()
    with Server(run / "export" / "model_float32.tflite", port=0, queue=2) as s:
        answers = []

        def client():
            answers.append(_predict(s, jpeg))

        threads = [threading.Thread(target=client) for _ in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        statuses = sorted(status for status, _ in answers)
        assert len(answers) == 24 and set(statuses) <= {200, 503} and 200 in statuses, statuses
        assert all("busy" in body["error"] for status, body in answers if status == 503)
        assert _predict(s, jpeg)[0] == 200


def test_a_third_party_tflite_with_a_labels_file_names_the_shared_photos(shared):
    from mobilenets.serve import Registry

    models = shared / "models"
    registry = Registry(models / "mobilenet_v1_0.25_128_quant.tflite", labels=models / "imagenet_labels.txt")
    assert registry.names == ["mobilenet_v1_0.25_128_quant.tflite"] and registry.evaluations() == []
    cat = registry.predict((models / "cat.bmp").read_bytes(), k=3)["predictions"]
    assert any("cat" in p["label"] for p in cat)
    assert registry.predict((models / "parrot.jpg").read_bytes(), k=1)["predictions"][0]["label"] == "macaw"


def test_a_port_in_use_is_one_line(server, run):
    from mobilenets.errors import MobilenetsError
    from mobilenets.serve import Server

    port = int(server.url.rstrip("/").rsplit(":", 1)[1])
    with pytest.raises(MobilenetsError, match=f"cannot listen on 127.0.0.1:{port}: Address already in use; "
                                              "choose another with --port"):
        Server(run / "export" / "model_float32.tflite", port=port)


def test_cli_says_the_url_and_ctrl_c_stops_it_cleanly(run, tmp_path):
    model = run / "export" / "model_float32.tflite"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-m", "mobilenets", "serve", str(model), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        line = proc.stdout.readline()
        m = re.match(r"open (http://127\.0\.0\.1:(\d+)/)  \(Ctrl-C stops\)$", line.strip())
        assert m, line
        with urllib.request.urlopen(m.group(1) + "api/models", timeout=30) as r:
            assert json.load(r)["default"] == "model_float32.tflite"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
    err = proc.stderr.read()
    assert "Traceback" not in err and err.rstrip().endswith("stopped"), err


def test_the_page_classifies_a_real_image_chosen_in_its_file_input(server, shared, tmp_path):
    """Headless Chromium: Pikachu through the file input, the label read from the page; a
    non-image shows its error; every model of the run answers side by side."""
    image = shared / PIKACHU
    _, api = _predict(server, image.read_bytes())
    not_image = tmp_path / "notes.txt"
    not_image.write_text("not an image\n")
    with DevToolsPage(server.url, tmp_path) as page:
        page.wait_for("document.body.dataset.ready == '1'")
        assert page.evaluate("document.querySelector('#compare').checked")  # two models: side by side
        page.set_files("#file", [image])
        page.wait_for("!!document.querySelector('#results .card[data-top1]')")
        shown = page.evaluate("[...document.querySelectorAll('#results .card .pred')].map(p => "
                              "[p.dataset.model, p.querySelector('.label').textContent, "
                              "p.querySelectorAll('li').length, p.querySelector('.ms').textContent])")
        assert [s[0] for s in shown] == ["model.keras", "export/model_float32.tflite"]
        assert all(s[1] == api["predictions"][0]["label"] and s[2] == 3 and s[3].endswith(" ms") for s in shown)
        assert page.evaluate("document.querySelector('#results .card .name').textContent") == "025.jpg"

        page.set_files("#file", [not_image])
        error = page.wait_for("(document.querySelector('#results .card .error') || {}).textContent")
        assert "notes.txt: not an image" in error
        shot = page.screenshot(tmp_path / "serve.png")
    assert looks_drawn(np.asarray(Image.open(shot).convert("RGB")))
