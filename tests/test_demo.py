"""`make demo` end to end: train on digits, export int8, predict with the file alone."""

import json

import pytest

from mobilenets.demo import run_demo


@pytest.mark.slow
def test_demo_trains_exports_and_predicts(tmp_path, capsys):
    run = run_demo(tmp_path, epochs=1, samples=2)
    out = capsys.readouterr().out
    report = json.loads((run / "export" / "export_report.json").read_text())
    int8 = [r for r in report["rows"] if r.get("quantize") == "int8"]
    assert int8 and int8[0]["io"] == "uint8"
    assert (run / "export" / "model_int8.tflite").is_file()
    assert len([l for l in out.splitlines() if "_true_" in l and ".png:" in l]) == 2
