"""Training runs end to end on tiny models and generated image folders."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import _tiny
from _tiny import tiny_config as tiny
from _debris import leftover, live_writer
from _tiny import COLOURS
from mobilenets.cli import main
from mobilenets.errors import MobilenetsError
from mobilenets.train import run_training


def make_folder(root, per_class=12, **kw):
    return _tiny.make_folder(root, per_class=per_class, **kw)


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path / "colours")


def test_retrain_writes_a_complete_run_and_hits_the_feature_cache(folder, tmp_path):
    cache = tmp_path / "cache"
    run1 = run_training(tiny(folder), runs_dir=tmp_path / "runs", name="a", cache_dir=cache)
    for f in ("model.keras", "labels.txt", "config.json", "history.csv", "metrics.json",
              "data_report.json", "training_curves.png", "evaluation/confusion_matrix.png"):
        assert (run1 / f).is_file(), f
    m1 = json.loads((run1 / "metrics.json").read_text())
    assert m1["feature_cache_hit"] is False
    assert (run1 / "labels.txt").read_text().split() == sorted(COLOURS)
    assert list(cache.glob("features/*.npy"))

    run2 = run_training(tiny(folder), runs_dir=tmp_path / "runs", name="b", cache_dir=cache)
    m2 = json.loads((run2 / "metrics.json").read_text())
    assert m2["feature_cache_hit"] is True
    assert m2["test"]["accuracy"] == m1["test"]["accuracy"]  # same seed, same features


def test_training_writes_nothing_to_stdout_and_its_progress_to_stderr(folder, tmp_path, capfd):
    # stdout is the caller's (the CLI's table, compare's JSON): Keras's fit and
    # predict progress, and every message, go to stderr.
    run_training(tiny(folder, mode="scratch", epochs=1), runs_dir=tmp_path / "runs", name="s")
    out, err = capfd.readouterr()
    assert out == ""
    assert "val_loss: " in err and "run: " in err  # the epoch line Keras writes
    cache = tmp_path / "cache"
    run_training(tiny(folder, epochs=1), runs_dir=tmp_path / "runs", name="r", cache_dir=cache)
    assert list(cache.glob("features/*.npy"))  # the backbone's predict ran
    out, err = capfd.readouterr()
    assert out == ""
    assert "bottleneck features: computed" in err


def test_messages_go_to_the_reporter_a_caller_sets(folder, tmp_path, capfd):
    import mobilenets as mn

    messages = []
    old = mn.set_reporter(messages.append)
    try:
        run = run_training(tiny(folder, epochs=1), runs_dir=tmp_path / "runs", name="m",
                           cache_dir=tmp_path / "cache")
    finally:
        mn.set_reporter(old)
    assert f"run: {run}" in messages and any(m.startswith("bottleneck features: ") for m in messages)
    out, err = capfd.readouterr()
    assert out == "" and "run: " not in err and "bottleneck features" not in err


def test_retrain_with_imagenet_weights_and_fine_tune(folder, tmp_path, keras_home):
    cfg = tiny(folder, weights="imagenet", fine_tune=10, fine_tune_epochs=1,
               augment={"flip_left_right": True, "random_brightness": 10.0})
    run = run_training(cfg, runs_dir=tmp_path / "runs", name="ft", cache_dir=tmp_path / "c")
    history = (run / "history.csv").read_text().splitlines()
    phases = [line.split(",")[0] for line in history[1:]]
    assert phases == ["head"] * 3 + ["fine_tune"]
    # Fine-tuning moved the top layers away from ImageNet, not the stem.
    import keras

    from mobilenets.models import build_model

    trained = keras.saving.load_model(run / "model.keras")
    start = build_model("v1-0.25-32", classes=3, weights="imagenet", head="new", preprocessing=True)
    same = lambda name: all(np.array_equal(a, b) for a, b in zip(
        trained.get_layer(name).get_weights(), start.get_layer(name).get_weights()))
    assert same("conv1") and same("conv_pw_13_bn")
    assert not same("conv_pw_13")


def _cli(*args, env=None):
    return subprocess.Popen([sys.executable, "-m", "mobilenets", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_resume_after_kill_9_loses_at_most_one_epoch(folder, tmp_path):
    runs = tmp_path / "runs"
    args = ["train", str(folder), "--arch", "v1-0.25-32", "--epochs", "12", "--batch-size", "8",
            "--runs-dir", str(runs), "--name", "r", "--no-cache", "--seed", "1"]
    proc = _cli(*args)
    state = runs / "r" / "checkpoints" / "state.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if state.is_file() and json.loads(state.read_text()).get("epoch", 0) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = json.loads(state.read_text())["epoch"]
    assert 2 <= done < 12
    assert not (runs / "r" / "model.keras").exists()

    resumed = _cli("train", "--resume", str(runs / "r"))
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert f"resuming train at epoch {done + 1}/12" in err
    epochs = [int(line.split(",")[1]) for line in
              (runs / "r" / "history.csv").read_text().splitlines()[1:]]
    assert epochs == list(range(1, 13))
    assert (runs / "r" / "model.keras").is_file()
    assert not [p for p in (runs / "r").rglob(".*") if ".tmp-" in p.name]  # no debris of the killed run


@pytest.mark.slow
def test_mirrored_training_on_two_logical_cpus(folder, tmp_path):
    proc = _cli("train", str(folder), "--arch", "v1-0.25-32", "--epochs", "1", "--batch-size", "8",
                "--distribute", "mirrored", "--logical-cpus", "2", "--runs-dir", str(tmp_path),
                "--name", "m", "--no-cache")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert json.loads((tmp_path / "m" / "metrics.json").read_text())["replicas"] == 2


def test_single_class_folder_is_one_line_error_and_leaves_no_run(tmp_path, capsys):
    make_folder(tmp_path / "one")
    for name in ("green", "blue"):
        for f in (tmp_path / "one" / name).iterdir():
            f.unlink()
        (tmp_path / "one" / name).rmdir()
    for _ in range(2):  # the refused run's name stays free: the same error again, not "exists"
        rc = main(["retrain", str(tmp_path / "one"), "--arch", "v1-0.25-32",
                   "--runs-dir", str(tmp_path / "runs"), "--name", "one"])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and "need at least 2 classes" in err, err
    assert not (tmp_path / "runs").exists()  # nor the runs folder it made


def test_existing_run_name_is_refused(folder, tmp_path, capsys):
    run_training(tiny(folder, epochs=1), runs_dir=tmp_path / "runs", name="same")
    rc = main(["retrain", str(folder), "--arch", "v1-0.25-32",
               "--runs-dir", str(tmp_path / "runs"), "--name", "same"])
    assert rc == 2 and "--resume" in capsys.readouterr().err


@pytest.mark.parametrize("mode, ckpt", [("scratch", "train.keras"), ("retrain", "head.keras")])
def test_resume_from_a_broken_checkpoint_is_one_line_naming_it(folder, tmp_path, capsys, mode, ckpt):
    import keras

    run = run_training(tiny(folder, mode=mode, epochs=1), runs_dir=tmp_path / "runs", name="r")
    state_path = run / "checkpoints" / "state.json"
    state = json.loads(state_path.read_text())
    state["done"] = [] if mode == "scratch" else ["head"]  # as if killed before the end
    state_path.write_text(json.dumps(state))
    path = run / "checkpoints" / ckpt
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])

    def resume():
        capsys.readouterr()
        rc = main(["train" if mode == "scratch" else "retrain", "--resume", str(run)])
        err = capsys.readouterr().err
        assert rc == 2 and "Traceback" not in err, err
        last = err.splitlines()[-1]  # after any note on how it would have trained
        assert err.count("error:") == 1 and "error:" in last, err
        return last

    assert f"checkpoint {path} is truncated or corrupt" in resume()
    inp = keras.Input((4,))
    keras.Model(inp, keras.layers.Lambda(lambda x: x * 2)(inp)).save(path)
    assert f"checkpoint {path} holds a Lambda layer" in resume()
    state_path.write_text(json.dumps(state)[:10])
    assert f"{state_path} is unreadable or truncated" in resume()


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", "/tmp/abs"])
def test_run_names_stay_inside_the_runs_dir(folder, tmp_path, capsys, name):
    rc = main(["retrain", str(folder), "--arch", "v1-0.25-32", "--runs-dir", str(tmp_path / "a" / "runs"),
               "--name", name])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "--name takes a plain folder name" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["colours"]  # nothing made anywhere


def test_runs_started_in_the_same_second_get_folders_of_their_own(tmp_path):
    import threading

    from mobilenets.train import new_run_dir

    cfg = tiny(tmp_path / "colours")
    now = time.time()
    taken = [f"colours-v1-0.25-32-{time.strftime('%Y%m%d-%H%M%S', time.localtime(now + k))}" for k in range(3)]
    for n in taken:  # other runs' folders, this second and the next two
        (tmp_path / "runs" / n).mkdir(parents=True, exist_ok=True)
        (tmp_path / "runs" / n / "config.json").write_text("{}")
    first = new_run_dir(tmp_path / "runs", None, cfg)
    assert first.name in {f"{n}-2" for n in taken} and not (first / "config.json").exists()
    made = []
    threads = [threading.Thread(target=lambda: made.append(new_run_dir(tmp_path / "runs", None, cfg)))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 8 and first not in made and all(p.is_dir() for p in made)
    # A given name is the user's: taken, it is refused, and only a run is offered to resume.
    with pytest.raises(MobilenetsError, match="--resume"):
        new_run_dir(tmp_path / "runs", taken[0], cfg)
    with pytest.raises(MobilenetsError, match="exists and is not a run; remove it or pass another --name$"):
        new_run_dir(tmp_path / "runs", first.name, cfg)


def test_resume_says_which_new_flags_it_ignores(folder, tmp_path, capsys):
    run = run_training(tiny(folder, mode="scratch", epochs=1), runs_dir=tmp_path / "runs", name="r")
    state_path = run / "checkpoints" / "state.json"
    state = json.loads(state_path.read_text())
    state["done"] = []  # killed after its last epoch, before the end
    state_path.write_text(json.dumps(state))
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "5", "--batch-size", "8", "--seed", "0",
                 "--optimizer", "nadam", "--flip-left-right", "--name", "other"]) == 0
    err = capsys.readouterr().err
    # --batch-size 8 and --seed 0 are the run's own values: nothing is lost by them.
    assert (f"--resume continues {run} with the settings in its config.json; ignoring --epochs, "
            "--optimizer, --augment (or an augmentation flag), --name\n") in err, err
    assert json.loads((run / "config.json").read_text())["epochs"] == 1
    # Its one epoch was done: the phase is complete, not "resuming train at epoch 2/1".
    assert "resuming: train is already complete (after epoch 1); not training it again\n" in err
    assert "resuming train at epoch" not in err
    assert [row["phase"] for row in csv.DictReader(open(run / "history.csv"))] == ["train"]
    capsys.readouterr()
    state["done"] = []
    state_path.write_text(json.dumps(state))
    # What kill -9 leaves (temporary files of dead writers) goes; a live writer's stays.
    dead = [leftover(run / "checkpoints" / "train.keras"), leftover(run / "model.keras")]
    with live_writer(run / "checkpoints" / "train.keras") as busy:
        assert main(["train", "--resume", str(run)]) == 0
        assert busy.is_file()
    assert not any(p.exists() for p in dead)
    assert "ignoring" not in capsys.readouterr().err


def test_retrain_on_a_random_backbone_is_refused_with_a_pointer_to_train(folder, tmp_path, capsys):
    rc = main(["retrain", str(folder), "--arch", "v1-0.25-32", "--weights", "none",
               "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "random backbone" in err and "'mobilenets train'" in err
    assert not (tmp_path / "runs").exists()  # refused before any run folder is made


def test_archives_and_face_crops_go_under_cache_dir_and_nowhere_with_no_cache(folder, tmp_path, monkeypatch):
    import tarfile
    import tempfile

    archive = tmp_path / "colours.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="colours")
    home, scratch = tmp_path / "home", tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("MOBILENETS_CACHE", str(home))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    run = run_training(tiny(archive, epochs=1, faces=True), runs_dir=tmp_path / "runs", name="c",
                       cache_dir=tmp_path / "given")
    assert json.loads((run / "data_report.json").read_text())["total"] == 3 * 12
    assert [p.name for p in (tmp_path / "given" / "datasets").iterdir()][0].startswith("colours")
    assert (tmp_path / "given" / "faces").is_dir() and not home.exists()
    # No cache: extracted and cropped in a folder of the run's own, gone when it ends.
    run = run_training(tiny(archive, epochs=1, faces=True), runs_dir=tmp_path / "runs", name="n")
    assert json.loads((run / "data_report.json").read_text())["total"] == 3 * 12
    assert not home.exists() and [p for p in scratch.iterdir() if p.name.startswith("mobilenets")] == []


def test_faces_step_runs_before_training(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("MOBILENETS_CACHE", str(tmp_path / "cache"))
    run = run_training(tiny(folder, epochs=1, faces=True), runs_dir=tmp_path / "runs", name="f")
    faces = json.loads((run / "faces.json").read_text())
    # 40 px images are already face crops: counted as such, none lost.
    assert faces["already_cropped"] == 3 * 12
    report = json.loads((run / "data_report.json").read_text())
    assert report["total"] == 3 * 12


def test_unreadable_files_are_skipped_counted_and_reported(folder, tmp_path, capsys):
    good = (folder / "red" / "red_000.jpg").read_bytes()
    (folder / "red" / "cut.jpg").write_bytes(good[: len(good) // 2])  # train split
    (folder / "green" / "bad.jpg").write_bytes(good[: len(good) // 2])  # test split, as notes.jpg
    (folder / "blue" / "notes.jpg").write_text("not a picture")
    run = run_training(tiny(folder, epochs=1), runs_dir=tmp_path / "runs", name="skip")
    report = json.loads((run / "data_report.json").read_text())
    reasons = {s["path"]: s["reason"] for s in report["skipped"]}
    assert set(reasons) == {"red/cut.jpg", "green/bad.jpg", "blue/notes.jpg"}
    assert json.loads((run / "metrics.json").read_text())["skipped_files"] == 3
    # evaluate says which files of its split it left out, on stderr and in its JSON.
    capsys.readouterr()
    assert main(["evaluate", str(run), "--split", "test", "--json"]) == 0
    captured = capsys.readouterr()
    r = json.loads(captured.out)
    assert r["skipped_files"] == 2 and r["skipped"] == [
        {"path": "blue/notes.jpg", "reason": "not an image (unrecognised file contents)"},
        {"path": "green/bad.jpg", "reason": "truncated image data"}]
    assert captured.err == (f"skipped 2 unreadable files (blue/notes.jpg, green/bad.jpg) of the 'test' "
                            f"split; reasons in {run / 'evaluation-test' / 'evaluation.json'}\n")


@pytest.mark.parametrize("augment", [{}, {"flip_left_right": True}])
def test_a_split_whose_every_file_fails_to_decode_is_called_empty(tmp_path, keras_home, capsys, augment):
    # Pre-split folders; the only validation image is a JPEG cut in half: its
    # header reads fine, its pixels do not.
    make_folder(tmp_path / "d" / "train")
    good = (tmp_path / "d" / "train" / "red" / "red_000.jpg").read_bytes()
    (tmp_path / "d" / "val" / "red").mkdir(parents=True)
    (tmp_path / "d" / "val" / "red" / "cut.jpg").write_bytes(good[: len(good) // 2])
    cfg = tiny(tmp_path / "d", weights="imagenet", epochs=1, augment=augment)
    with pytest.raises(MobilenetsError, match=r"^the 'val' split of .* is empty$"):
        run_training(cfg, runs_dir=tmp_path / "runs", name="cut", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "runs" / "cut").exists()  # refused: no stub blocks the name


def test_no_ragged_last_batch(folder, tmp_path):
    from mobilenets.data import open_dataset

    cfg = tiny(folder, mode="scratch", epochs=1, batch_size=8)
    run = run_training(cfg, runs_dir=tmp_path / "runs", name="rag")
    rows = (run / "history.csv").read_text().splitlines()
    assert "seconds" in rows[0].split(",")
    # 3 classes x 12 images, 60% train = 21 or so: batches of 8 drop the remainder.
    n = open_dataset(str(folder), 20, 20).split_sizes()["train"]
    ds = open_dataset(str(folder), 20, 20).dataset("train", (32, 32), batch_size=8, drop_remainder=True)
    assert sum(int(x.shape[0]) for x, _ in ds) == n - n % 8


def test_time_budget_run_ends_its_cosine_schedule(folder, tmp_path):
    cfg = tiny(folder, mode="scratch", epochs=400, batch_size=8, schedule="cosine", warmup_epochs=1,
               optimizer="sgd", learning_rate=0.05, time_budget_minutes=0.4)
    run = run_training(cfg, runs_dir=tmp_path / "runs", name="budget")
    rows = [r.split(",") for r in (run / "history.csv").read_text().splitlines()]
    lr = rows[0].index("learning_rate")
    state = json.loads((run / "checkpoints" / "state.json").read_text())
    planned = state["planned_epochs"]["train"]
    assert len(rows) - 1 == planned < 400  # stopped by the plan, not by running out of epochs
    rates = [float(r[lr]) for r in rows[1:]]
    # It ends on the cosine's second half whatever this machine's speed made the plan.
    assert rates[-1] == min(rates) <= 0.5 * 0.05
    assert json.loads((run / "metrics.json").read_text())["stopped_by_time_budget"] is True


def test_low_res_epochs_train_small_then_full_size(folder, tmp_path):
    from mobilenets.errors import MobilenetsError

    # Stride-1 stem: 16 px still ends at 1x1 after the four stride-2 blocks.
    cfg = tiny(folder, mode="scratch", epochs=4, low_res=16, low_res_fraction=0.5, stem_stride=1)
    run = run_training(cfg, runs_dir=tmp_path / "runs", name="lowres")
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert [float(r["input_height"]) for r in rows] == [16, 16, 32, 32]
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    import keras

    model = keras.saving.load_model(run / "model.keras")
    assert model.input_shape == (None, 32, 32, 3)  # the saved model is the full-size one
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["test"]["accuracy"] <= 1
    with pytest.raises(MobilenetsError, match="--low-res takes a height"):
        run_training(tiny(folder, mode="scratch", low_res=32), runs_dir=tmp_path / "runs", name="bad")
    with pytest.raises(MobilenetsError, match="--low-res 16 is too small for this model"):
        run_training(tiny(folder, mode="scratch", low_res=16), runs_dir=tmp_path / "runs", name="small")
    with pytest.raises(MobilenetsError, match="is for training from scratch"):
        run_training(tiny(folder, low_res=16), runs_dir=tmp_path / "runs", name="bad2")


def test_a_time_budget_ending_in_low_res_epochs_still_ends_at_full_size(folder, tmp_path):
    # The budget runs out during the first (low-resolution) epoch: one full-size
    # epoch follows, so the saved model's BatchNorm statistics are the 32 px ones.
    cfg = tiny(folder, mode="scratch", epochs=50, low_res=16, low_res_fraction=0.9, stem_stride=1,
               time_budget_minutes=0.01)
    run = run_training(cfg, runs_dir=tmp_path / "runs", name="lowres-budget")
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert [float(r["input_height"]) for r in rows] == [16, 32]
    assert json.loads((run / "metrics.json").read_text())["stopped_by_time_budget"] is True


def test_a_run_with_relative_data_evaluates_exports_and_resumes_from_another_directory(
        tmp_path, monkeypatch, capsys):
    from mobilenets.export import export

    make_folder(tmp_path / "work" / "corpus")
    monkeypatch.chdir(tmp_path / "work")
    run = run_training(tiny("corpus", epochs=1), runs_dir=tmp_path / "runs", name="rel")
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["data"] == "corpus" and cfg["data_resolved"] == str(tmp_path / "work" / "corpus")

    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] > 0
    r = export(run, out_dir=tmp_path / "exp", quantize="float32,int8", parity_images=8)
    assert r.rows and "int8" in r.files["model_int8.tflite"].name
    state_path = run / "checkpoints" / "state.json"
    state = json.loads(state_path.read_text())
    state_path.write_text(json.dumps({**state, "done": ["head"]}))  # as if killed before the end
    assert main(["retrain", "--resume", str(run)]) == 0
    assert "ignoring" not in capsys.readouterr().err


def test_a_run_whose_data_moved_says_which_path_is_missing_and_how_to_pass_it(folder, tmp_path, capsys):
    run = run_training(tiny(folder, epochs=1), runs_dir=tmp_path / "runs", name="moved")
    moved = folder.rename(tmp_path / "moved")

    def one_line_error(*argv):
        capsys.readouterr()
        rc = main(list(argv))
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, err
        assert f"the run's data is missing: '{folder}'" in err, err
        return err

    assert f"mobilenets evaluate {run} DATA" in one_line_error("evaluate", str(run))
    assert "--calibration DATA" in one_line_error("export", str(run), "--out", str(tmp_path / "e1"))
    assert "--data DATA" in one_line_error("export", str(run), "--quantize", "float32",
                                           "--out", str(tmp_path / "e2"))
    state_path = run / "checkpoints" / "state.json"
    state = json.loads(state_path.read_text())
    state_path.write_text(json.dumps({**state, "done": ["head"]}))
    assert f"mobilenets retrain --resume {run} DATA" in one_line_error("retrain", "--resume", str(run))
    # The DATA given stands in for the run's own, and is not reported as ignored.
    assert main(["evaluate", str(run), str(moved)]) == 0
    assert main(["retrain", "--resume", str(run), str(moved)]) == 0
    assert "ignoring" not in capsys.readouterr().err


def test_an_unreadable_checkpoint_is_named_with_the_first_line_of_the_reason(tmp_path, monkeypatch):
    import zipfile

    import keras

    from mobilenets.train import load_checkpoint

    path = tmp_path / "train.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", "{}")

    def refuse(p):
        raise ValueError("Layer 'dense' has an invalid config.   \n  (the rest of Keras's explanation)")

    monkeypatch.setattr(keras.saving, "load_model", refuse)
    with pytest.raises(MobilenetsError) as e:
        load_checkpoint(path)
    assert str(e.value) == f"cannot resume: checkpoint {path} cannot be read: Layer 'dense' has an invalid config."


def test_a_distributed_retrain_runs_with_the_settings_its_config_json_holds(folder, tmp_path):
    cfg = tiny(folder, epochs=1, distribute="mirrored")
    given = cfg.to_dict()
    run = run_training(cfg, runs_dir=tmp_path / "runs", name="m", cache_dir=tmp_path / "cache")
    saved = json.loads((run / "config.json").read_text())
    assert {k: saved[k] for k in given} == given == cfg.to_dict()  # nothing edited after it was written
    assert not list(tmp_path.glob("cache/features/*.npy"))  # the head trained on images, not features


def test_features_read_in_batches_equal_features_computed_at_once(tmp_path):
    import keras

    from mobilenets.data import ImageFolder
    from mobilenets.train import extract_features

    folder = ImageFolder(make_folder(tmp_path / "d", per_class=7), 0, 0)
    images = folder.stream("train", (16, 16), cache_dir=tmp_path / "images")
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    backbone = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    at_once = backbone.predict(images.read().astype("float32"), verbose=0)
    cache = tmp_path / "cache"
    streamed, hit = extract_features(backbone, images, "k", cache, batch_size=4)
    assert not hit and streamed.shape == at_once.shape == (21, 4)
    np.testing.assert_allclose(streamed, at_once, rtol=1e-5, atol=1e-6)
    again, hit = extract_features(backbone, images.read(), "k", cache)
    assert hit and np.array_equal(again, streamed)


def test_a_large_split_trains_from_its_store_on_disk_and_no_cache_leaves_nothing(folder, tmp_path, monkeypatch):
    import tempfile

    import mobilenets.data.base as data_base

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    # Every split counts as too large to hold: batches come from the .npy store.
    monkeypatch.setattr(data_base, "IN_MEMORY_BYTES", 0)
    run = run_training(tiny(folder, mode="scratch", epochs=1, augment={"flip_left_right": True}),
                       runs_dir=tmp_path / "runs", name="disk")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["count"] > 0 and "accuracy_flip_tta" in metrics["test"]
    assert [p for p in scratch.iterdir() if p.name.startswith("mobilenets")] == []
