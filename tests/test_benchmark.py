"""Benchmark: flat rows for .tflite and .keras side by side, specs, per-op delegation."""

import json

import pytest

from _tiny import make_folder, make_run
from mobilenets.benchmark import COLUMNS, benchmark, measure, parse_threads, per_op_rows
from mobilenets.cli import main
from mobilenets.errors import MobilenetsError
from mobilenets.export import export


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    run = make_run(root / "run", make_folder(root / "colours", per_class=3))
    export(run, quantize="none", parity=False)
    return run


def _check(row):
    assert list(row) == list(COLUMNS)
    assert row["init_ms"] > 0 and row["first_ms"] > 0 and row["throughput"] > 0
    assert 0 < row["latency_ms_p50"] <= row["latency_ms_p90"] <= row["latency_ms_p99"]
    assert row["file_mb"] > 0 and row["macs_m"] > 0 and row["gmacs_per_s"] > 0
    assert row["peak_rss_mb"] is not None and row["peak_rss_mb"] >= 0


def test_run_directory_keras_and_tflite_side_by_side(run):
    rows = benchmark([run], runs=5, warmup=1)["rows"]
    assert [row["format"] for row in rows] == ["keras", "tflite"]
    for row in rows:
        _check(row)
    assert rows[0]["macs_m"] == rows[1]["macs_m"]  # the same network, counted both ways


def test_thread_counts(run):
    rows = benchmark([run / "export" / "model_float32.tflite"], threads="2,1", runs=3)["rows"]
    assert [row["threads"] for row in rows] == [2, 1]


def test_spec_is_converted_on_the_fly(tmp_path):
    r = benchmark(["v1-0.25-32"], runs=3, warmup=0, per_op=True, workdir=tmp_path)
    (row,) = r["rows"]
    assert row["model"] == "v1-0.25-32 (random)" and row["format"] == "tflite"
    _check(row)
    ops = {o["op"]: o for o in r["ops"]}
    assert ops["CONV_2D"]["count"] == ops["CONV_2D"]["delegated"] == 15  # 14 + the 1x1 classifier
    assert abs(sum(o["macs_pct"] for o in r["ops"]) - 100) < 0.5
    assert any("no op profiler" in note for note in r["notes"])


def test_batch_and_in_process(run):
    row = measure(run / "export" / "model_float32.tflite", threads=1, runs=3, warmup=0, batch=4)
    assert row["batch"] == 4 and row["throughput"] > 0


def test_per_op_rows(run):
    rows = per_op_rows(run / "export" / "model_float32.tflite")
    assert {"model", "op", "count", "delegated", "not_delegated", "macs_m", "macs_pct"} <= set(rows[0])
    assert rows[0]["op"] == "CONV_2D"  # sorted by MACs


def test_parse_threads():
    assert parse_threads("1,2,2") == (1, 2) and parse_threads(None) == (1,)
    with pytest.raises(MobilenetsError, match="Received '0'"):
        parse_threads("0")


def test_cli_json_and_out_file(run, tmp_path, capsys):
    tflite = run / "export" / "model_float32.tflite"
    out = tmp_path / "bench.csv"
    assert main(["benchmark", str(tflite), "--runs", "3", "--format", "json", "--out", str(out)]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["model"] == str(tflite) and row["threads"] == 1
    assert out.read_text().splitlines()[0] == ",".join(COLUMNS)


@pytest.mark.parametrize("argv, fragment", [
    (["benchmark", "v9-1.0-224"], "not a model spec: 'v9-1.0-224'"),
    (["benchmark", "{tmp}/missing.tflite"], "no such model file"),
    (["benchmark", "{tmp}/bad.tflite"], "not a TFLite model"),
])
def test_cli_errors_are_one_line(argv, fragment, tmp_path, capsys):
    (tmp_path / "bad.tflite").write_text("hello")
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err
