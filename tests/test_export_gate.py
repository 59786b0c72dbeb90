"""The parity gate: Wilson and paired (Newcombe) intervals, and which files fail and why."""

import numpy as np
import pytest

from mobilenets.export import accuracy_drop, parity_failures, wilson_interval


def test_intervals():
    low, high = wilson_interval(60, 65)
    assert (round(low, 4), round(high, 4)) == (0.8322, 0.9667)
    # Fagerland et al.'s example (airway hyper-responsiveness, Bentur 2009): 1 both, 1 first
    # only, 7 second only, 12 neither.
    ref = np.array([1, 1] + [0] * 7 + [0] * 12, bool)
    new = np.array([1, 0] + [1] * 7 + [0] * 12, bool)
    drop, low, high = accuracy_drop(ref, new)
    assert (round(drop, 3), round(low, 3), round(high, 3)) == (-0.286, -0.507, -0.026)
    # Many images: the paired Wald interval, (b - c) / n ± 1.96 sqrt(b + c - (b - c)^2 / n) / n.
    ref = np.array([1] * 500 + [1] * 30 + [0] * 10 + [0] * 460, bool)
    new = np.array([1] * 500 + [0] * 30 + [1] * 10 + [0] * 460, bool)
    drop, low, high = accuracy_drop(ref, new)
    half = 1.96 * np.sqrt(40 - 20 ** 2 / 1000) / 1000
    assert drop == 0.02 and low == pytest.approx(0.02 - half, abs=5e-4)
    assert high == pytest.approx(0.02 + half, abs=5e-4)
    # The same predictions: no drop, and an interval that shrinks with the images.
    same = np.array([1] * 365 + [0] * 275, bool)
    drop, low, high = accuracy_drop(same, same)
    assert drop == 0 and -0.005 < low < 0 < high < 0.005


def test_parity_failures():
    def row(model, agreement, drop):
        return {"model": model, "format": "tflite", "images": 640, "agreement": agreement,
                "agreement_low": agreement - 0.01, "agreement_high": min(1, agreement + 0.01),
                "accuracy_drop": drop, "accuracy_drop_low": drop - 0.01, "accuracy_drop_high": drop + 0.01}

    rows = [{"model": "keras", "format": "keras", "agreement": 1.0, "accuracy_drop": 0.0},
            row("model_float32.tflite", 1.0, 0.0), row("model_int8.tflite", 0.97, 0.01),
            row("model_dynamic.tflite", 0.99, 0.02),
            {"model": "model.onnx", "format": "onnx", "agreement": None, "accuracy_drop": None}]
    failed = parity_failures(rows, min_agreement=0.98, max_drop=0.01)
    assert [f["model"] for f in failed] == ["model_int8.tflite", "model_dynamic.tflite"]
    assert failed[0]["message"] == ("model_int8.tflite: agreement 0.970 [0.960, 0.980] is below 0.98 "
                                    "(95% intervals, 640 parity images)")
    assert "accuracy drop 0.020 [0.010, 0.030] is above 0.01" in failed[1]["message"]
    assert parity_failures(rows, min_agreement=0.9, max_drop=0.02) == []  # 0.02 is not above 0.02
