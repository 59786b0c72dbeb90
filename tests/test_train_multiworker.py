"""Multi-worker training: two worker processes on localhost, each with its own TF_CONFIG."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mobilenets.train.multiworker import local_ports

ARGS = ["digits", "--arch", "v1-0.25-32", "--epochs", "3", "--batch-size", "32", "--low-res", "0", "--no-cache"]




def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", MOBILENETS_CLUSTER_TIMEOUT="120", **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(p) for p in sys.path if p.endswith("src")] + [env.get("PYTHONPATH", "")])
    return env


def _cluster(args, worker_model):
    """Run `mobilenets train ARGS` on two workers; returns their (returncode, stderr)."""
    ports = local_ports(2)
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": [f"localhost:{p}" for p in ports]},
                                "task": {"type": "worker", "index": index}})
        extra = {"TF_CONFIG": tf_config}
        if index:
            extra["MOBILENETS_WORKER_MODEL"] = str(worker_model)
        procs.append(subprocess.Popen([sys.executable, "-m", "mobilenets", "train", *args], env=_env(**extra),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return [(p.wait(timeout=900), p.communicate()[1]) for p in procs]


def _weights(path):
    import keras

    return keras.saving.load_model(path).get_weights()


@pytest.mark.slow
def test_two_workers_train_alike_resume_and_match_one_worker(tmp_path):
    runs = tmp_path / "runs"
    worker_model = tmp_path / "worker1.keras"
    common = ARGS + ["--distribute", "multiworker", "--runs-dir", str(runs), "--name", "mw"]
    for rc, err in _cluster(common, worker_model):
        assert rc == 0, err
    run = runs / "mw"
    for f in ("model.keras", "config.json", "history.csv", "metrics.json", "labels.txt", "checkpoints/train.keras",
              "evaluation/confusion_matrix.png"):
        assert (run / f).is_file(), f
    assert sorted(p.name for p in runs.iterdir()) == ["mw"]  # the other worker wrote nowhere here
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["replicas"] == 2
    for a, b in zip(_weights(run / "model.keras"), _weights(worker_model), strict=True):
        np.testing.assert_array_equal(a, b)  # BatchNorm's statistics included

    # As if killed after epoch 2: both workers continue from the chief's checkpoint and state.
    state = json.loads((run / "checkpoints" / "state.json").read_text())
    state.update(done=[], epoch=2, history=state["history"][:2])
    (run / "checkpoints" / "state.json").write_text(json.dumps(state))
    for f in ("model.keras", "metrics.json"):
        (run / f).unlink()
    worker_model.unlink()
    for rc, err in _cluster(["--resume", str(run)], worker_model):
        assert rc == 0, err
        assert "resuming train at epoch 3/3" in err
    epochs = [int(line.split(",")[1]) for line in (run / "history.csv").read_text().splitlines()[1:]]
    assert epochs == [1, 2, 3]
    for a, b in zip(_weights(run / "model.keras"), _weights(worker_model), strict=True):
        np.testing.assert_array_equal(a, b)

    # One process, Keras's fit, the same data and epochs: the same level of accuracy.
    one = subprocess.run([sys.executable, "-m", "mobilenets", "train", *ARGS, "--runs-dir", str(runs),
                          "--name", "one"], env=_env(), capture_output=True, text=True, timeout=900)
    assert one.returncode == 0, one.stderr
    single = json.loads((runs / "one" / "metrics.json").read_text())["val"]["accuracy"]
    two = json.loads((run / "metrics.json").read_text())["val"]["accuracy"]
    assert single > 0.5  # the comparison means something
    assert abs(two - single) < 0.15, (two, single)


@pytest.mark.parametrize("tf_config, says", [
    (None, "needs TF_CONFIG"),
    ("{not json", "TF_CONFIG is not valid JSON"),
    ('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 3}}', "index 3 is out of range"),
])
def test_a_bad_tf_config_is_one_line_and_a_non_zero_exit(tmp_path, tf_config, says):
    env = _env()
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = tf_config
    proc = subprocess.run([sys.executable, "-m", "mobilenets", "train", *ARGS, "--distribute", "multiworker",
                           "--runs-dir", str(tmp_path / "runs")], env=env, capture_output=True, text=True,
                          timeout=300)
    ours = [line for line in proc.stderr.splitlines() if line.startswith("mobilenets")]
    assert proc.returncode != 0
    assert len(ours) == 1 and says in ours[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_peer_that_never_comes_is_one_line_after_the_timeout(tmp_path):
    a, b = local_ports(2)
    tf_config = json.dumps({"cluster": {"worker": [f"localhost:{a}", f"localhost:{b}"]},
                            "task": {"type": "worker", "index": 1}})
    env = _env(TF_CONFIG=tf_config)
    env["MOBILENETS_CLUSTER_TIMEOUT"] = "5"
    proc = subprocess.run([sys.executable, "-m", "mobilenets", "train", *ARGS, "--distribute", "multiworker",
                           "--runs-dir", str(tmp_path / "runs")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0
    ours = [line for line in proc.stderr.splitlines() if "mobilenets: error" in line]
    assert len(ours) == 1 and "did not come together within 5 s" in ours[0] and f"localhost:{a}" in ours[0]
