"""The comparison report: plots, one self-contained HTML page, rendered in Chromium."""

import re

import numpy as np
import pytest
from PIL import Image

from _chromium import looks_drawn, render
from mobilenets.compare import summarize
from mobilenets.report import environment, thumbnail_uri, write_plots, write_report


def _rows():
    # spec, MACs, top-1, int8 ms at 1 and 2 threads, int8 MB
    table = [("v1-1.00-224", 568.7, 70.9, 20.0, 11.0, 4.3), ("v1-0.50-160", 76.5, 59.1, 3.1, 1.9, 1.4),
             ("v1-0.25-128", 13.6, 41.5, 0.9, 0.6, 0.5), ("v2-1.00-224", 300.8, 71.8, 14.0, 8.0, 3.9),
             ("v3-small-1.00-224", 56.5, 68.1, 4.0, 2.6, 2.6)]
    return [{"spec": s, "params": 1000, "macs_m": m, "top1": t, "top1_source": "slim-v1",
             "float_mb": mb * 3.5, "int8_mb": mb, "float_ms_t1": l1 * 1.8, "int8_ms_t1": l1,
             "float_ms_t2": l2 * 1.8, "int8_ms_t2": l2, "note": None, "measured_at": "2026-11-23T10:00:00"}
            for s, m, t, l1, l2, mb in table]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    result = summarize(_rows(), out, (1, 2), budget_ms=5, max_size_mb=3)
    result.plots = write_plots(result, out / "plots", budget_ms=5)
    thumbs = [thumbnail_uri(np.full((32, 32, 3), c, np.uint8)) for c in (30, 120, 220)]
    models = [{"spec": "v1-0.50-160", "accuracy": 93.3, "int8_accuracy": 92.0, "count": 30,
               "misclassified": 3, "confusion_png": result.plots["macs_latency"],
               "gallery": [{"path": f"red/{i}.jpg", "true": "red", "predicted": "blue",
                            "confidence": 0.9, "thumb": t} for i, t in enumerate(thumbs)]}]
    page = write_report(out / "report.html", result, models=models,
                        settings={"command": "mobilenets compare --grid v1:1.0:224", "runs": 50,
                                  "warmup": 5}, environment=environment((1, 2), result.rows))
    return result, page


def test_plots_are_pngs_with_content(report):
    result, _ = report
    assert set(result.plots) == {"latency_accuracy", "macs_latency"}
    for path in result.plots.values():
        pixels = np.asarray(Image.open(path).convert("RGB"))
        assert pixels.shape[1] > 600 and looks_drawn(pixels)


def test_report_is_self_contained_and_says_what_it_shows(report):
    result, page = report
    text = page.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), "external resource in the report"
    assert "<link" not in text and "<script src" not in text
    assert text.count('src="data:image/png;base64,') >= 3  # two plots + the confusion matrix
    assert text.count('src="data:image/jpeg;base64,') == 3  # the gallery
    assert result.choice.sentence in text
    assert "published ImageNet top-1" in text
    for key in ("CPU", "cores", "threads used", "Python", "TensorFlow", "Keras", "LiteRT"):
        assert f"<dt>{key}" in text
    assert len(re.findall(r"<tr class=", text)) == len(result.rows)


def test_environment_names_the_cpu_and_versions():
    stamps = [{"measured_at": "2026-01-02T03:04:05"}, {"measured_at": "2026-01-01T00:00:00"}]
    env = environment((1, 2), stamps)
    assert env["threads used"] == "1, 2"
    assert env["CPU"] and env["Python"].count(".") == 2
    assert env["latencies measured"] == "2026-01-01T00:00:00 to 2026-01-02T03:04:05"


def test_thumbnails(tmp_path):
    Image.fromarray(np.zeros((200, 100, 3), np.uint8)).save(tmp_path / "a.png")
    assert thumbnail_uri(tmp_path / "a.png").startswith("data:image/jpeg;base64,")
    assert thumbnail_uri(np.random.default_rng(0).random((8, 8))).startswith("data:image/jpeg")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    assert thumbnail_uri(tmp_path / "broken.jpg") is None and thumbnail_uri(None) is None


def test_report_renders_in_chromium(report, tmp_path):
    result, page = report
    macs_column = result.columns.index("macs_m")
    seen = render(page, tmp_path, sort_column=macs_column)
    assert seen["images"] == 6 and seen["images_ok"] == seen["images"]
    assert seen["rows"] == len(result.rows)
    assert seen["sorted"] == ["v1-0.25-128", "v1-1.00-224"]  # MACs ascending, then descending
    assert looks_drawn(seen["screenshot"])
    assert "Which MobileNet?" in seen["dom"] and result.choice.sentence in seen["dom"]
