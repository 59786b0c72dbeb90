"""Compare: grids, Pareto fronts, budget choices, and a real comparison that re-runs from its cache."""

import contextlib
import io
import json

import pytest
from ai_edge_litert.interpreter import Interpreter

from _chromium import looks_drawn, render
from _tiny import make_folder
from mobilenets.cli import main
from mobilenets.compare import candidates, choose, compare, parse_grid, pareto_front
from mobilenets.errors import MobilenetsError
from mobilenets.specs import ModelSpec

# ------------------------------------------------------------------ grids


def test_parse_grid_alphas_outer_resolutions_inner():
    names = [s.name for s in parse_grid("v1:1.0,0.5:224,160")]
    assert names == ["v1-1.00-224", "v1-1.00-160", "v1-0.50-224", "v1-0.50-160"]
    assert parse_grid("v3-small-min:1.0:224") == [ModelSpec("v3-small", 1.0, 224, 224, True)]
    assert parse_grid(" V2 : 0.35 : 96x128 ")[0].name == "v2-0.35-96x128"
    assert len(parse_grid("v1:1.0,0.75,0.5,0.25:224,192,160,128")) == 16


@pytest.mark.parametrize("text", ["v1:1.0", "v4:1.0:224", "v1:abc:224", "v1:1.0:big", "v1::224",
                                  "v1:1.0:16", "v1:9:224", "v1-min:1.0:224", "v1:1.0:224:extra"])
def test_parse_grid_errors_quote_the_input_in_one_line(text):
    with pytest.raises(MobilenetsError) as e:
        parse_grid(text)
    assert repr(text) in str(e.value) and "\n" not in str(e.value)
    assert "family:alphas:resolutions" in str(e.value)


def test_candidates_drop_duplicates_and_keep_order():
    specs = candidates(["v2-1.00-224", "mobilenet_v1_1.0_224"], ["v1:1.0,0.5:224", "v2:1.0:224"])
    assert [s.name for s in specs] == ["v2-1.00-224", "v1-1.00-224", "v1-0.50-224"]


def test_cli_rejects_a_bad_grid_in_one_line(capsys):
    assert main(["compare", "--grid", "v9:1.0:224"]) == 2
    err = capsys.readouterr().err.strip()
    assert "'v9:1.0:224'" in err and len(err.splitlines()) == 1
    assert main(["compare"]) == 2


# ------------------------------------------------------------------ Pareto and budget


def _row(spec, ms, top1, mb=1.0, threads=2, accuracy=None, macs=100.0):
    return {"spec": spec, f"int8_ms_t{threads}": ms, f"float_ms_t{threads}": ms and ms * 2, "top1": top1,
            "int8_mb": mb, "float_mb": mb * 4, "accuracy": accuracy, "macs_m": macs}


ROWS = [_row("v1-1.00-224", 10.0, 70.9, 4.2), _row("v1-0.75-160", 5.8, 65.3, 2.5),
        _row("v1-0.50-160", 3.1, 59.1, 1.4), _row("v1-0.50-128", 3.3, 56.3, 1.4),
        _row("v1-0.25-128", 1.0, 41.5, 0.5), _row("v2-1.00-224", 8.0, 71.8, 3.6),
        _row("odd-one", None, 80.0)]


def test_pareto_front_minimises_x_and_maximises_y():
    front = [r["spec"] for r in pareto_front(ROWS, "int8_ms_t2", "top1")]
    # v1-0.50-128 is slower and worse than v1-0.50-160; v1-1.00-224 slower and worse than v2;
    # a row without a latency cannot be placed.
    assert front == ["v1-0.25-128", "v1-0.50-160", "v1-0.75-160", "v2-1.00-224"]
    assert pareto_front([], "x", "y") == []
    tie = [{"spec": "a", "x": 1, "y": 5}, {"spec": "b", "x": 1, "y": 6}, {"spec": "c", "x": 2, "y": 6}]
    assert [r["spec"] for r in pareto_front(tie, "x", "y")] == ["b"]


def test_choose_most_accurate_within_latency_and_size():
    c = choose(ROWS, budget_ms=5.0, max_size_mb=2)
    assert c.row["spec"] == "v1-0.50-160" and c.alternative["spec"] == "v1-0.75-160"
    assert c.sentence == ("v1-0.50-160 is the most accurate model within 5 ms and 2 MB "
                          "(3.1 ms int8, 2 threads; 1.4 MB int8 file): 59.1% published ImageNet top-1; "
                          "v1-0.75-160 would be 6.2 points better but takes 5.8 ms and is 2.5 MB.")


def test_choose_size_only_latency_only_float_and_none_fits():
    assert choose(ROWS[:-1], max_size_mb=4).row["spec"] == "v2-1.00-224"
    assert choose(ROWS, max_size_mb=4).row["spec"] == "odd-one"  # no latency budget: unmeasured is fine
    assert choose(ROWS, budget_ms=9).row["spec"] == "v2-1.00-224"
    best = choose(ROWS, budget_ms=9)
    assert best.alternative is None and best.sentence.endswith("no candidate is more accurate.")
    # float32 takes twice as long here: 9 ms fits only up to v1-0.75-160 (11.6 ms does not)
    assert choose(ROWS, budget_ms=9, fmt="float").row["spec"] == "v1-0.50-160"
    none = choose(ROWS, budget_ms=0.5)
    assert none.row is None and "the fastest, v1-0.25-128, takes 1.0 ms" in none.sentence


def test_choose_prefers_measured_accuracy_then_top1_then_macs():
    rows = [_row("a", 1.0, 70.0, accuracy=80.0, macs=10), _row("b", 1.0, 75.0, accuracy=70.0, macs=20),
            _row("c", 1.0, None, accuracy=None, macs=30)]
    assert choose(rows, budget_ms=2).row["spec"] == "a"
    for r in rows:
        r["accuracy"] = None
    assert choose(rows, budget_ms=2).row["spec"] == "b"
    for r in rows:
        r["top1"] = None
    c = choose(rows, budget_ms=2)
    assert c.row["spec"] == "c" and c.metric == "macs_m" and "no accuracy known" in c.sentence


def test_choose_uses_the_largest_thread_count_unless_told():
    rows = [dict(_row("a", 4.0, 60.0), int8_ms_t1=6.0), dict(_row("b", 2.0, 50.0), int8_ms_t1=3.0)]
    assert choose(rows, budget_ms=5).row["spec"] == "a"  # 2 threads: a takes 4 ms
    assert choose(rows, budget_ms=5, threads=1).row["spec"] == "b"
    with pytest.raises(MobilenetsError):
        choose(rows, budget_ms=-1)


# ------------------------------------------------------------------ rows without retraining


@pytest.fixture
def fake_tools(monkeypatch):
    """Fast stand-ins for the converter and the profiler: compare's own logic runs for real."""
    import importlib
    from types import SimpleNamespace

    def spec_tflite(spec, workdir, quantize="none", **kwargs):
        path = workdir / f"{spec.name}-{quantize}.tflite"
        path.write_bytes(b"tflite" * (4 if quantize == "none" else 1))
        return path

    monkeypatch.setattr("mobilenets.benchmark.spec_tflite", spec_tflite)
    profiler = importlib.import_module("mobilenets.profile")  # the package's `profile` is a function
    monkeypatch.setattr(profiler, "profile", lambda target, classes=1000: SimpleNamespace(
        params=1000, macs=2_000_000, weight_bytes=4000, peak_activation_bytes=100))


def _file_of(model: str) -> str:
    """`.../models/v1-0.25-128/int8.tflite` -> `v1-0.25-128/int8.tflite`"""
    return "/".join(model.replace("\\", "/").split("/")[-2:])


def test_missing_imagenet_weights_is_said_in_the_row_and_the_rest_goes_on(tmp_path, monkeypatch,
                                                                          fake_tools):
    """No silent fallback to random weights: the row says why it has no accuracy."""
    monkeypatch.setattr("mobilenets.benchmark.benchmark",
                        lambda models, threads, runs, warmup: {"rows": [{"latency_ms_p50": 2.0}]})
    data = make_folder(tmp_path / "colours", per_class=4)
    r = compare(["v3-small-0.75-224-min"], out_dir=tmp_path / "out", data=str(data), report=False,
                progress=False)
    row = r.rows[0]
    assert row["accuracy"] is None and row["weights"] == "- (not retrained)"
    assert "no official ImageNet weights exist for v3-small-0.75-224-min" in row["note"]
    assert "--weights none" in row["note"]
    assert not (tmp_path / "out" / "runs").exists()
    assert row["int8_ms_t1"] == 2.0 and row["macs_m"] == 2.0  # the rest went on


def test_repeats_go_round_the_list_keep_the_lowest_p50_and_only_add_missing(tmp_path, monkeypatch,
                                                                            fake_tools):
    calls = []

    def fake_benchmark(models, threads, runs, warmup):
        calls.append(_file_of(models[0]))
        nth = calls.count(calls[-1])
        return {"rows": [{"latency_ms_p50": {1: 5.0, 2: 3.0, 3: 4.0}.get(nth, 9.0)}]}

    monkeypatch.setattr("mobilenets.benchmark.benchmark", fake_benchmark)
    specs = ["v1-0.25-128", "v1-0.50-128"]
    rows = compare(specs, out_dir=tmp_path, repeats=3, report=False, progress=False).rows
    assert calls[:4] == ["v1-0.25-128/float32.tflite", "v1-0.25-128/int8.tflite",
                         "v1-0.50-128/float32.tflite", "v1-0.50-128/int8.tflite"]  # every file once first
    assert len(calls) == 12 and [r["int8_ms_t1"] for r in rows] == [3.0, 3.0]
    calls.clear()
    rows = compare(specs, out_dir=tmp_path, repeats=4, report=False, progress=False).rows
    assert len(calls) == 4 and not any(r["reused"] for r in rows) and rows[0]["float_ms_t1"] == 3.0
    calls.clear()
    rows = compare(specs, out_dir=tmp_path, repeats=2, report=False, progress=False).rows
    assert calls == [] and all(r["reused"] for r in rows)


def test_round_n_gives_every_file_its_nth_sample_and_the_settings_stay_fixed(tmp_path, monkeypatch,
                                                                            fake_tools):
    """The rounds are compare's own loop: no step sees settings that change under it."""
    from dataclasses import FrozenInstanceError

    from mobilenets.compare.records import Context

    calls = []
    monkeypatch.setattr("mobilenets.benchmark.benchmark", lambda models, threads, runs, warmup: (
        calls.append(_file_of(models[0])) or {"rows": [{"latency_ms_p50": 1.0}]}))
    rows = compare(["v1-0.25-128", "v1-0.50-128"], out_dir=tmp_path, repeats=3, report=False,
                   progress=False).rows
    one_round = ["v1-0.25-128/float32.tflite", "v1-0.25-128/int8.tflite",
                 "v1-0.50-128/float32.tflite", "v1-0.50-128/int8.tflite"]
    assert calls == one_round * 3 and [r["latency_samples"] for r in rows] == [3, 3]
    ctx = Context(out=tmp_path, threads=(1,), runs=1, warmup=0, cpu="cpu", repeats=3)
    with pytest.raises(FrozenInstanceError):
        ctx.repeats = 1


def test_ctrl_c_keeps_finished_candidates_and_the_next_run_continues(tmp_path, monkeypatch, capsys,
                                                                     fake_tools):
    calls = []

    def fake_benchmark(models, threads, runs, warmup):
        calls.append(models[0])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return {"rows": [{"latency_ms_p50": 1.0}]}

    monkeypatch.setattr("mobilenets.benchmark.benchmark", fake_benchmark)
    specs = ["v1-0.25-128", "v1-0.50-128"]
    with pytest.raises(KeyboardInterrupt):
        compare(specs, out_dir=tmp_path, report=False, progress=False)
    assert "1 of 2 candidate passes are finished" in capsys.readouterr().err
    first = json.loads((tmp_path / "rows" / "v1-0.25-128.json").read_text())
    assert first["row"]["int8_ms_t1"] == 1.0
    calls.clear()
    rows = compare(specs, out_dir=tmp_path, report=False, progress=False).rows
    assert len(calls) == 2 and rows[0]["reused"] and not rows[1]["reused"]


# ------------------------------------------------------------------ end to end


def _cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    assert code == 0, err.getvalue()[-2000:]
    return out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Two tiny specs compared for real (conversions, LiteRT timings), then compared again."""
    out = tmp_path_factory.mktemp("compare") / "out"
    argv = ["compare", "v1-0.25-32", "v2-0.35-32", "v1-0.25-32", "--runs", "5", "--warmup", "1",
            "--out", str(out), "--budget-ms", "50", "--format", "json"]
    first, _ = _cli(argv)
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.parent.name != "plots"
                   and p.name not in ("report.html", "results.json"))
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    second, err = _cli(argv)
    return {"out": out, "argv": argv, "first": json.loads(first), "second": json.loads(second),
            "mtimes": mtimes, "err": err}


@pytest.mark.slow
def test_compare_rows_plots_and_report(tiny):
    out, rows = tiny["out"], tiny["first"]
    assert [r["spec"] for r in rows] == ["v1-0.25-32", "v2-0.35-32"]
    for r in rows:
        assert r["params"] > 0 and r["macs_m"] > 0
        assert 0 < r["int8_mb"] < r["float_mb"]
        assert r["float_ms_t1"] > 0 and r["int8_ms_t1"] > 0
        assert r["reused"] is False and r["note"] is None
    assert rows[0]["macs_m"] < rows[1]["macs_m"]
    assert {p.name for p in (out / "rows").iterdir()} == {"v1-0.25-32.json", "v2-0.35-32.json"}
    assert (out / "models" / "v1-0.25-32" / "int8.tflite").is_file()
    assert (out / "plots" / "latency_accuracy.png").stat().st_size > 10_000
    assert (out / "plots" / "macs_latency.png").stat().st_size > 10_000
    results = json.loads((out / "results.json").read_text())
    assert results["choice"].startswith(results["chosen"] + " is the biggest model within 50 ms")
    assert not any(p.name.startswith(".") for p in out.rglob("*"))  # no temp files left behind


@pytest.mark.slow
def test_rerun_reuses_stored_rows_without_measuring(tiny):
    assert all(r["reused"] for r in tiny["second"])
    assert "2 candidates (2 reused" in tiny["err"]
    for path, mtime in tiny["mtimes"].items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was rewritten"
    strip = ("reused", "pareto")
    assert [{k: v for k, v in r.items() if k not in strip} for r in tiny["second"]] == \
        [{k: v for k, v in r.items() if k not in strip} for r in tiny["first"]]


@pytest.mark.slow
def test_a_new_thread_count_measures_only_that(tiny):
    out = tiny["out"]
    before = json.loads((out / "rows" / "v1-0.25-32.json").read_text())["latency"]
    argv = tiny["argv"] + ["--threads", "1,2"]
    rows = json.loads(_cli(argv)[0])
    after = json.loads((out / "rows" / "v1-0.25-32.json").read_text())["latency"]
    assert all(after[k] == v for k, v in before.items())  # the 1-thread timings are kept
    assert len(after) == 2 * len(before) and rows[0]["int8_ms_t2"] > 0
    assert not rows[0]["reused"]


@pytest.mark.slow
def test_report_renders_in_chromium(tiny, tmp_path):
    seen = render(tiny["out"] / "report.html", tmp_path, sort_column=0)
    assert seen["rows"] == 2
    assert seen["images"] == 2 and seen["images_ok"] == 2
    assert sorted(seen["sorted"]) == ["v1-0.25-32", "v2-0.35-32"]
    assert looks_drawn(seen["screenshot"])


@pytest.mark.slow
def test_compare_with_data_retrains_and_shows_confusions(tmp_path):
    data = make_folder(tmp_path / "colours", per_class=12, size=32)
    out = tmp_path / "out"
    rows = json.loads(_cli(["compare", "v1-0.25-32", "--data", str(data), "--epochs", "1",
                            "--weights", "none", "--runs", "3", "--warmup", "1", "--out", str(out),
                            "--cache-dir", str(tmp_path / "cache"), "--format", "json"])[0])
    r = rows[0]
    assert r["weights"] == "none" and r["note"] is None
    assert 0 <= r["accuracy"] <= 100 and 0 <= r["int8_accuracy"] <= 100
    assert r["params"] < 475_544  # a 3-class head, not ImageNet's 1000
    assert (out / r["run"] / "export" / "model_int8.tflite").is_file()
    html = (out / "report.html").read_text()
    assert 'class="confusion"' in html and "accuracy after retraining" in html
    evaluation = json.loads((out / r["run"] / "evaluation" / "evaluation.json").read_text())
    assert html.count('src="data:image/jpeg;base64,') == min(len(evaluation["misclassified"]), 24)


@pytest.mark.slow
def test_kill_9_mid_conversion_leaves_no_half_file_and_the_rerun_cleans_up(tmp_path):
    """SIGKILL compare while it converts: no file under a final name is half written, and the
    same command run again finishes the candidate and removes the killed run's scratch folder."""
    from _debris import kill_9_when

    out = tmp_path / "out"
    argv = ["compare", "v1-0.25-32", "--runs", "2", "--warmup", "0", "--out", str(out),
            "--no-report", "--format", "json"]
    models = out / "models" / "v1-0.25-32"
    # the converter has started writing
    kill_9_when(argv, lambda: any(models.glob(".convert.tmp-*/*")), "compare")
    debris = list(models.glob(".convert.tmp-*"))
    assert debris  # what the killed run left
    for name in ("float32.tflite", "int8.tflite"):  # whole or absent
        if (models / name).exists():
            Interpreter(model_path=str(models / name)).allocate_tensors()
    for row in (out / "rows").glob("*.json"):
        json.loads(row.read_text())

    rows = json.loads(_cli(argv)[0])
    assert rows[0]["float_ms_t1"] > 0 and rows[0]["int8_ms_t1"] > 0
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]
    for name in ("float32.tflite", "int8.tflite"):
        Interpreter(model_path=str(models / name)).allocate_tensors()
