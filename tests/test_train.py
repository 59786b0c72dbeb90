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
from _debris import leftover, live_writer
from _tiny import COLOURS
from mobilenets.cli import main
from mobilenets.errors import MobilenetsError
from mobilenets.train import (PRESETS, SMALL_STEP_WORK, TrainConfig, apply_preset, build_for_config,
                              run_training, step_work, thread_plan)

def make_folder(root, per_class=12, **kw):
    return _tiny.make_folder(root, per_class=per_class, **kw)


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path / "colours")


def tiny(data, **kw):
    base = dict(data=str(data), arch="v1-0.25-32", weights="none", epochs=3, batch_size=8,
                learning_rate=0.01, validation_percent=20, test_percent=20)
    base.update(kw)
    return TrainConfig(**base)


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


def test_set_trainable_keeps_batchnorm_frozen():
    from mobilenets.train import set_trainable

    model = build_for_config(tiny("x"), 3)
    unfrozen = set_trainable(model, 12)
    assert unfrozen > 0
    bns = [l for l in model.layers if type(l).__name__ == "BatchNormalization"]
    assert bns and not any(l.trainable for l in bns)
    assert model.get_layer("head_predictions").trainable
    assert not model.get_layer("conv1").trainable


def test_seed_preset_is_the_seed_recipe():
    cfg = apply_preset(TrainConfig(data="cifar10", arch="v1-0.50-32"), "seed-cifar10")
    assert (cfg.optimizer, cfg.batch_size, cfg.label_smoothing) == ("nadam", 32, 0.0)
    assert cfg.augment == {"flip_left_right": True, "shift": 10.0, "fill": "reflect"}
    assert cfg.mode == "scratch" and cfg.stem_stride == 2
    assert build_for_config(cfg, 10).count_params() == 834_666  # the seed's table


def test_explicit_flags_beat_the_preset():
    cfg = apply_preset(TrainConfig(data="x", batch_size=7), "scratch", explicit={"batch_size"})
    assert cfg.batch_size == 7 and cfg.optimizer == PRESETS["scratch"]["optimizer"]


def test_scratch_preset_rewires_stem_and_batchnorm():
    cfg = apply_preset(TrainConfig(data="x", arch="v1-0.25-32"), "scratch")
    model = build_for_config(cfg, 10)
    assert model.get_layer("conv1").strides == (1, 1)
    assert _last_map(model) == (2, 2)
    assert model.get_layer("conv1_bn").momentum == 0.9
    # Or a block keeps its resolution instead: its input's 8x8 (it pads itself now).
    cfg.stem_stride, cfg.block_strides = 2, [2, 1, 2, 2]
    model = build_for_config(cfg, 10)
    assert model.get_layer("conv1").strides == (2, 2)
    assert model.get_layer("conv_dw_4").strides == (1, 1)
    assert model.get_layer("conv_dw_4").padding == "same"
    assert model.get_layer("conv_pad_4").output.shape[1:3] == (8, 8)
    assert [model.get_layer(f"conv_dw_{i}").strides for i in (2, 6, 12)] == [(2, 2)] * 3
    assert _last_map(model) == (2, 2)


def test_block_strides_of_the_wrong_length_are_one_line_errors(capsys):
    from mobilenets.errors import MobilenetsError

    cfg = apply_preset(TrainConfig(data="x", arch="v1-0.25-32"), "scratch")
    cfg.block_strides = [2, 1]
    with pytest.raises(MobilenetsError, match=r"take 4 values .* e\.g\. 2,2,2,2\. Received 2,1$"):
        build_for_config(cfg, 10)
    with pytest.raises(SystemExit) as e:
        main(["train", "digits", "--block-strides", "2,3,2,2"])
    assert e.value.code == 2 and "takes comma-separated 1s and 2s" in capsys.readouterr().err


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


def test_evaluate_writes_json_png_and_misclassified(folder, tmp_path, capsys):
    run = run_training(tiny(folder, epochs=1), runs_dir=tmp_path / "runs", name="e")
    capsys.readouterr()
    assert main(["evaluate", str(run), "--split", "test", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    out = run / "evaluation-test"
    assert (out / "evaluation.json").is_file() and (out / "confusion_matrix.png").is_file()
    assert sum(map(sum, r["confusion_matrix"])) == r["count"]
    rows = (out / "misclassified.csv").read_text().splitlines()
    assert len(rows) - 1 == len(r["misclassified"]) == round(r["count"] * (1 - r["accuracy"]))
    assert [c["class"] for c in r["per_class"]] == sorted(COLOURS)
    assert main(["evaluate", str(run), "--split", "test", "--tta", "flip", "--out", str(tmp_path / "tta")]) == 0
    assert "(flip TTA)" in capsys.readouterr().out
    assert json.loads((tmp_path / "tta" / "evaluation.json").read_text())["tta"] == "flip"


def test_flip_tta_averages_each_image_with_its_mirror_image():
    from mobilenets.errors import MobilenetsError
    from mobilenets.evaluate import evaluate_arrays

    def model(images):
        # Class 0 if the left half is brighter, 1 if the right one is; class 2
        # scores 0.6 of the brighter half, so only the average of an image
        # and its mirror image (0.5, 0.5, 0.6) picks it.
        x = np.asarray(images, dtype="float32") / 255
        w = x.shape[2] // 2
        left, right = x[:, :, :w].mean(axis=(1, 2, 3)), x[:, :, w:].mean(axis=(1, 2, 3))
        scores = np.stack([left, right, 0.6 * np.maximum(left, right)], axis=1)
        return scores / scores.sum(axis=1, keepdims=True)

    images = np.zeros((4, 6, 6, 3), dtype="uint8")
    images[:2, :, :3] = 255  # bright left
    images[2:, :, 3:] = 255  # bright right
    labels = np.full(4, 2)
    plain = evaluate_arrays(model, images, labels, ["left", "right", "both"])
    flipped = evaluate_arrays(model, images, labels, ["left", "right", "both"], tta="flip")
    assert (plain["accuracy"], plain["tta"]) == (0.0, "none")
    assert (flipped["accuracy"], flipped["tta"]) == (1.0, "flip")
    with pytest.raises(MobilenetsError, match="tta"):
        evaluate_arrays(model, images, labels, ["left", "right", "both"], tta="rotate")


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


def test_faces_step_runs_before_training(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("MOBILENETS_CACHE", str(tmp_path / "cache"))
    run = run_training(tiny(folder, epochs=1, faces=True), runs_dir=tmp_path / "runs", name="f")
    faces = json.loads((run / "faces.json").read_text())
    # 40 px images are already face crops: counted as such, none lost.
    assert faces["already_cropped"] == 3 * 12
    report = json.loads((run / "data_report.json").read_text())
    assert report["total"] == 3 * 12


def test_face_presets_are_training_configs():
    cfg = apply_preset(TrainConfig(data="fer"), "emotion")
    # Every layer trains from ImageNet with the scratch recipe, at the preset's own stem stride.
    assert cfg.faces and cfg.mode == "scratch" and cfg.init == "imagenet"
    assert (cfg.optimizer, cfg.schedule, cfg.stem_stride) == ("sgd", "cosine", 2)
    assert cfg.block_strides is None  # Keras's: the emotion figures were measured with them
    assert cfg.weight_decay == 5e-4  # likewise, though the scratch recipe's is 5e-3 now
    assert apply_preset(TrainConfig(data="c"), "scratch").weight_decay == 5e-3
    assert cfg.augment == {"flip_left_right": True, "random_crop": 0.0, "random_scale": 0.0,
                           "random_brightness": 0.0, "pad_crop": 4}
    cfg = apply_preset(TrainConfig(data="imdb"), "gender")
    assert cfg.arch == "v1-0.50-224" and cfg.faces


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


def test_no_ragged_last_batch_and_short_schedules_still_decay(folder, tmp_path):
    from mobilenets.data import open_dataset
    from mobilenets.train import _schedule

    cfg = tiny(folder, mode="scratch", epochs=1, batch_size=8)
    run = run_training(cfg, runs_dir=tmp_path / "runs", name="rag")
    rows = (run / "history.csv").read_text().splitlines()
    assert "seconds" in rows[0].split(",")
    # 3 classes x 12 images, 60% train = 21 or so: batches of 8 drop the remainder.
    n = open_dataset(str(folder), 20, 20).split_sizes()["train"]
    ds = open_dataset(str(folder), 20, 20).dataset("train", (32, 32), batch_size=8, drop_remainder=True)
    assert sum(int(x.shape[0]) for x, _ in ds) == n - n % 8

    sched = _schedule(apply_preset(TrainConfig(data="x", epochs=2), "scratch"), 10, 2, 0.1)
    assert sched.warmup_steps == 2  # a tenth of 20 steps, not 2 whole epochs
    assert float(sched(20)) < 1e-6  # decayed to zero at the end


def test_scratch_recipe_can_start_from_imagenet_and_keeps_the_weights(keras_home):
    from mobilenets.models import build_model

    cfg = apply_preset(TrainConfig(data="x", arch="v1-0.25-32", init="imagenet"), "scratch",
                       explicit={"init"})
    model = build_for_config(cfg, 7)
    start = build_model("v1-0.25-32", classes=7, weights="imagenet", head="new")
    # The stem was rewired to stride 1 and BatchNorm to momentum 0.9, yet the
    # ImageNet weights survived the rebuild.
    assert model.get_layer("conv1").strides == (1, 1)
    assert model.get_layer("conv_pw_13_bn").momentum == 0.9
    for name in ("conv1", "conv_dw_7", "conv_pw_13_bn"):
        for a, b in zip(model.get_layer(name).get_weights(), start.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert model.output_shape == (None, 7)


def test_compile_builds_everything_so_the_training_step_traces_once():
    import keras

    from mobilenets.train import _compile

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    _compile(model, tiny("x", mode="scratch", optimizer="sgd", weight_decay=5e-3), 2, 1, 0.1)
    assert model.optimizer.built
    traces, step = [], model.train_step

    def counted(data):
        traces.append(1)
        return step(data)

    model.train_step = counted
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    history = model.fit(x, np.eye(3, dtype="float32")[np.arange(16) % 3], batch_size=8, verbose=0)
    # Variables made inside the first trace (lazy optimizer slots, the "accuracy"
    # string metric) make TensorFlow trace the whole step a second time.
    assert len(traces) == 1
    assert {"accuracy", "loss"} <= set(history.history)
    assert "top_k" not in history.history  # 3 classes: top-5 would always be 1.0


def test_budget_cosine_fits_the_schedule_to_the_time_left():
    import keras

    from mobilenets.train import budget_cosine

    now = [0.0]
    state = {}
    cb = budget_cosine(lr=0.1, steps_per_epoch=10, epochs=50, warmup_epochs=2, budget_s=100.0,
                       started=0.0, state=state, phase="train", clock=lambda: now[0])
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    cb.set_model(model)
    assert cb.rate(0) == pytest.approx(0.01)  # warm-up starts at a tenth
    stopped_after = None
    for epoch in range(50):
        cb.on_epoch_begin(epoch)
        now[0] += 10.0  # every epoch takes 10 s of the 100 s budget
        cb.on_epoch_end(epoch, logs={})
        if model.stop_training:
            stopped_after = epoch + 1
            break
    # 10 s epochs in 100 s, a little kept back for the final evaluation: 9 epochs.
    assert stopped_after == 9 and state["planned_epochs"]["train"] == 9
    assert state["stopped_by_time_budget"] is True
    assert cb.rate(9 * 10) == pytest.approx(0.0, abs=1e-9)  # the cosine reached its end
    assert cb.epoch_rate(8) < 0.01 * 0.1  # the last epoch trains at the curve's tail
    assert cb.rate(5 * 10) < cb.rate(2 * 10) <= 0.1  # and decays after the warm-up
    assert float(model.optimizer.learning_rate) == pytest.approx(cb.epoch_rate(8))
    # Resuming with the saved plan continues the same curve.
    again = budget_cosine(0.1, 10, 50, 2, 100.0, 0.0, state, "train", clock=lambda: now[0])
    assert again.rate(45) == cb.rate(45)


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


@pytest.mark.parametrize("arch", ["v1-0.25-32", "v2-0.35-32", "v3-small-0.75-32"])
def test_scratch_recipe_builds_every_generation(arch):
    # V2's Keras head has no dropout argument: the recipe's dropout must not crash it.
    cfg = apply_preset(TrainConfig(data="x", arch=arch), "scratch")
    model = build_for_config(cfg, 7)
    assert model.output_shape == (None, 7)
    # A stride-1 block instead of a stride-1 stem: the same 2x2 last feature
    # map at 32 px, the same weights, every generation (each has four
    # downsampling blocks after the stem).
    cfg.stem_stride, cfg.block_strides = 2, [2, 2, 2, 1]
    late = build_for_config(cfg, 7)
    assert late.output_shape == (None, 7) and late.count_params() == model.count_params()
    assert _last_map(late) == _last_map(model) == (2, 2)
    cfg.block_strides = None
    assert _last_map(build_for_config(cfg, 7)) == (1, 1)


def _last_map(model):
    import keras

    return [l for l in model.layers if isinstance(l, keras.layers.DepthwiseConv2D)][-1].output.shape[1:3]


def test_fused_batchnorm_is_keras_batchnorm_faster(tmp_path):
    import keras
    import tensorflow as tf

    from mobilenets.train import fuse_batchnorm

    def model():
        inp = keras.Input((6, 6, 5))
        x = keras.layers.BatchNormalization(momentum=0.9, name="bn")(inp)
        m = keras.Model(inp, keras.layers.ReLU(6.0)(x))
        m.get_layer("bn").gamma.assign(np.linspace(0.5, 2, 5))
        m.get_layer("bn").beta.assign(np.linspace(-1, 1, 5))
        return m

    keras_bn, fused = model(), model()
    assert fuse_batchnorm(fused) == 1
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(3, 2, (4, 6, 6, 5)).astype("float32"))
    w = tf.constant(rng.normal(size=(4, 6, 6, 5)).astype("float32"))
    results = []
    for m in (keras_bn, fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = m(x, training=True)
            loss = tf.reduce_sum(y * w)
        grads = tape.gradient(loss, [x] + m.trainable_variables)
        bn = m.get_layer("bn")
        results.append([y, *grads, bn.moving_mean, bn.moving_variance, m(x, training=False)])
    for a, b in zip(*results):  # outputs, gradients, moving statistics, inference
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)
    assert not np.allclose(results[1][-3], 0)  # the moving mean did move

    # A frozen layer normalises with its moving statistics, as Keras's does.
    for m in (keras_bn, fused):
        m.get_layer("bn").trainable = False
    np.testing.assert_allclose(fused(x, training=True), keras_bn(x, training=True), rtol=1e-5, atol=1e-5)
    # Saved, it is plain Keras BatchNormalization.
    fused.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.get_layer("bn")) is keras.layers.BatchNormalization
    np.testing.assert_allclose(loaded(x), fused(x), rtol=1e-5, atol=1e-5)


def test_pointwise_convolutions_as_matmul_are_the_same_layer(tmp_path):
    import keras
    import tensorflow as tf

    from mobilenets.train import matmul_pointwise

    def model():
        keras.utils.set_random_seed(1)
        inp = keras.Input((5, 5, 4))
        x = keras.layers.Conv2D(6, 1, use_bias=False, name="pw")(inp)
        x = keras.layers.Conv2D(3, 1, activation="relu", name="pw_bias")(x)  # bias and activation
        x = keras.layers.Conv2D(3, 3, padding="same", name="k3")(x)  # not 1x1: left alone
        return keras.Model(inp, x)

    conv, mm = model(), model()
    assert matmul_pointwise(mm) == 2
    mm.get_layer("pw_bias").bias.assign(np.linspace(-1, 1, 3))
    conv.get_layer("pw_bias").bias.assign(np.linspace(-1, 1, 3))
    x = tf.constant(np.random.default_rng(0).normal(size=(2, 5, 5, 4)).astype("float32"))
    results = []
    for m in (conv, mm):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = m(x)
            loss = tf.reduce_sum(y * y)
        results.append([y, *tape.gradient(loss, [x] + m.trainable_variables)])
    for a, b in zip(*results):  # outputs, input gradient, every weight's gradient
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
    # Saved, they are plain Keras Conv2D layers.
    mm.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.get_layer("pw")) is keras.layers.Conv2D
    np.testing.assert_allclose(loaded(x), mm(x), rtol=1e-5, atol=1e-5)
    # Every pointwise convolution of a MobileNet V1: 13 blocks and the 1x1 classifier.
    assert matmul_pointwise(build_for_config(TrainConfig(data="x", arch="v1-0.25-32", mode="scratch"), 10)) == 14


@pytest.mark.parametrize("size, strides, padding", [(2, 1, "same"), (1, 1, "same"), (3, 2, "valid"),
                                                     (4, 2, "same"), (3, 2, "same")])
def test_depthwise_small_map_filter_gradient_is_the_same(size, strides, padding):
    import keras
    import tensorflow as tf

    from mobilenets.train import depthwise_small_maps

    def model():
        keras.utils.set_random_seed(2)
        inp = keras.Input((size, size, 5))
        x = keras.layers.DepthwiseConv2D(3, strides=strides, padding=padding, use_bias=True,
                                         activation="relu", name="dw")(inp)
        return keras.Model(inp, x)

    native, ours = model(), model()
    # Stride 2 keeps TensorFlow's (oneDNN's) kernel, fast there; the sum is still checked.
    assert depthwise_small_maps(ours) == (strides == 1)
    if strides == 2:
        from mobilenets.train import _depthwise_filter_grad

        x = tf.constant(np.random.default_rng(1).normal(size=(3, size, size, 5)).astype("float32"))
        dw = ours.get_layer("dw")
        y = tf.nn.depthwise_conv2d(x, dw.kernel.value, [1, 2, 2, 1], padding.upper())
        dy = tf.constant(np.random.default_rng(2).normal(size=y.shape).astype("float32"))
        tf_grad = tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
            input=x, filter_sizes=[3, 3, 5, 1], out_backprop=dy, strides=[1, 2, 2, 1],
            padding=padding.upper())
        np.testing.assert_allclose(_depthwise_filter_grad(x, dy, 3, 3, 2, 2, padding.upper()), tf_grad,
                                   rtol=1e-4, atol=1e-4)
    for m in (native, ours):
        m.get_layer("dw").bias.assign(np.linspace(-0.5, 0.5, 5))
    x = tf.constant(np.random.default_rng(0).normal(size=(3, size, size, 5)).astype("float32"))
    results = []
    for m in (native, ours):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = m(x)
            loss = tf.reduce_sum(y * tf.reshape(tf.range(tf.size(y), dtype=y.dtype), tf.shape(y)) / 10.0 * y)
        results.append([y, *tape.gradient(loss, [x] + m.trainable_variables)])
    for a, b in zip(*results):  # outputs, input gradient, kernel and bias gradients
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size, strides, padding", [(1, 1, "SAME"), (2, 1, "SAME"), (4, 2, "SAME"),
                                                     (5, 2, "VALID"), (6, 1, "SAME"), (7, 2, "SAME")])
def test_depthwise_filter_gradient_matches_tensorflow_on_either_path(size, strides, padding):
    import tensorflow as tf

    from mobilenets.train import PAIR_PRODUCTS, _depthwise_filter_grad

    rng = np.random.default_rng(size)
    x = rng.normal(size=(3, size, size, 4)).astype("float32")
    kernel = tf.zeros([3, 3, 4, 1])
    out = tf.nn.depthwise_conv2d(x, kernel, [1, strides, strides, 1], padding).shape
    dy = rng.normal(size=out).astype("float32")
    want = tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
        input=x, filter_sizes=[3, 3, 4, 1], out_backprop=dy, strides=[1, strides, strides, 1], padding=padding)
    # Traced with an unknown batch size, as a training step without a fixed batch is.
    spec = [tf.TensorSpec([None, size, size, 4]), tf.TensorSpec([None, *out[1:]])]
    grad = tf.function(lambda a, b: _depthwise_filter_grad(a, b, 3, 3, strides, strides, padding),
                       input_signature=spec)
    np.testing.assert_allclose(grad(x, dy), want, rtol=1e-4, atol=1e-4)
    assert (out[1] * out[2] * size * size <= PAIR_PRODUCTS) == (size <= 4)  # both paths are covered


def test_depthwise_small_maps_picks_only_tiny_outputs():
    from mobilenets.train import depthwise_small_maps

    # v1 at 32 px with Keras's strides: blocks 6-13 end at 2x2 or 1x1; six of them are stride 1.
    model = build_for_config(TrainConfig(data="x", arch="v1-0.25-32", mode="scratch"), 10)
    assert depthwise_small_maps(model) == 6
    assert depthwise_small_maps(model, max_pixels=0) == 0


def test_thread_plan_splits_small_steps_into_parallel_single_thread_ops():
    seed = apply_preset(TrainConfig(data="cifar10", arch="v1-0.50-32", mode="scratch"), "seed-cifar10")
    ours = apply_preset(TrainConfig(data="cifar10", arch="v1-0.50-32", mode="scratch"), "scratch")
    assert step_work(seed) == 32 * 16 * 16 * 0.25 < SMALL_STEP_WORK
    assert thread_plan(seed, cores=2) == (1, 2)
    assert thread_plan(seed, cores=8) == (4, 2)
    # One core, a big step, a retrain, or several devices: TensorFlow's defaults.
    assert thread_plan(seed, cores=1) is None
    assert step_work(ours) == 128 * 32 * 32 * 0.25 >= SMALL_STEP_WORK
    assert thread_plan(ours, cores=2) is None
    assert thread_plan(TrainConfig(data="x", arch="v1-0.25-32", batch_size=8), cores=2) is None
    seed.distribute = "mirrored"
    assert thread_plan(seed, cores=2) is None


def test_cli_sets_onednn_and_the_thread_plan_before_tensorflow_runs_unless_the_user_chose():
    # One fresh process per case: both settings are process-wide and fixed once
    # TensorFlow loads (oneDNN) or runs an op (thread pools).
    code = ("from mobilenets.cli import _quiet_tensorflow; _quiet_tensorflow(); import tensorflow as tf; "
            "from mobilenets.train import TrainConfig, apply_preset, apply_thread_plan, onednn_enabled; "
            "c = apply_preset(TrainConfig(data='cifar10', arch='v1-0.50-32', mode='scratch'), 'seed-cifar10'); "
            "print(onednn_enabled(), apply_thread_plan(c), tf.config.threading.get_intra_op_parallelism_threads(), "
            "tf.config.threading.get_inter_op_parallelism_threads())")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_NUM_") and k != "TF_ENABLE_ONEDNN_OPTS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"

    def run(code=code, **extra):
        out = subprocess.run([sys.executable, "-c", code], env={**env, **extra}, capture_output=True,
                             text=True, check=True)
        return out.stdout.split()

    cores = len(os.sched_getaffinity(0))
    assert run() == (["True", f"({max(1, cores // 2)},", "2)", str(max(1, cores // 2)), "2"]
                     if cores >= 2 else ["True", "None", "0", "0"])
    # A user's own settings win.
    assert run(TF_ENABLE_ONEDNN_OPTS="0", TF_NUM_INTRAOP_THREADS="3")[:2] == ["False", "None"]
    # Once TensorFlow has run an op its thread pools are fixed: left alone, no error.
    assert run(code.replace("print(", "tf.constant(1) + 1; print(", 1))[1:] == ["None", "0", "0"]


def test_depthwise_small_maps_decides_by_the_traced_input_size():
    import keras
    import tensorflow as tf

    from mobilenets.train import depthwise_small_maps

    inp = keras.Input((8, 8, 4))
    model = keras.Model(inp, keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(inp))
    assert depthwise_small_maps(model) == 0  # 8x8 output at the built size
    model.input_spec = None  # let it run at other sizes, as low-resolution epochs do

    def filter_grad_ops(side):
        @tf.function
        def grads(x):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(model(x) ** 2)
            return tape.gradient(loss, model.trainable_variables)

        graph = grads.get_concrete_function(tf.TensorSpec((2, side, side, 4))).graph
        return sum(op.type == "DepthwiseConv2dNativeBackpropFilter" for op in graph.get_operations())

    assert filter_grad_ops(8) == 1  # TensorFlow's kernel
    assert filter_grad_ops(2) == 0  # written out: 2x2 maps are small


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


def test_scratch_preset_trains_its_first_epochs_at_three_quarters_of_the_height():
    from mobilenets.errors import MobilenetsError
    from mobilenets.faces import PRESETS as FACE_PRESETS
    from mobilenets.train import _low_res

    cfg = apply_preset(TrainConfig(data="x", arch="v1-0.50-32"), "scratch")
    assert cfg.low_res is None and _low_res(cfg, (32, 32)) == (24, 24)
    assert _low_res(cfg, (96, 64)) == (72, 48)  # same aspect ratio
    assert _low_res(cfg, (8, 8)) is None  # 6 px: the preset's setting is skipped, not an error
    off = apply_preset(TrainConfig(data="x", arch="v1-0.50-32", low_res=0), "scratch",
                       explicit={"low_res"})
    assert _low_res(off, (32, 32)) is None  # --low-res 0 turns it off
    mine = apply_preset(TrainConfig(data="x", arch="v1-0.50-32", low_res=16), "scratch",
                        explicit={"low_res"})
    assert _low_res(mine, (32, 32)) == (16, 16)
    with pytest.raises(MobilenetsError, match="--low-res takes a height"):
        _low_res(TrainConfig(data="x", mode="scratch", low_res=6), (8, 8))  # the user's is checked
    assert apply_preset(TrainConfig(data="x"), "seed-cifar10").low_res_scale is None
    for name in FACE_PRESETS:  # fine-tuned from ImageNet at their own size
        assert apply_preset(TrainConfig(data="x"), name).low_res_scale is None


def test_low_res_fraction_of_a_plan():
    from mobilenets.train import _low_res_epochs

    cfg = TrainConfig(data="x", mode="scratch", low_res=24, low_res_fraction=0.5)
    assert [_low_res_epochs(cfg, n) for n in (1, 2, 3, 16, 17)] == [0, 1, 2, 8, 9]
    cfg.low_res_fraction = 0.9
    assert _low_res_epochs(cfg, 4) == 3  # at least the last epoch trains at full size


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


def test_a_broken_import_inside_the_package_surfaces_instead_of_hiding_the_face_presets(monkeypatch):
    # faces is part of the package, not an optional extra: if importing it
    # fails, that is a bug to see, not a reason to report "unknown preset".
    monkeypatch.delitem(sys.modules, "mobilenets.faces", raising=False)
    monkeypatch.setitem(sys.modules, "mobilenets.imagetree", None)  # faces imports it
    with pytest.raises(ImportError, match="mobilenets.imagetree"):
        apply_preset(TrainConfig(data="fer"), "emotion")


def test_thread_plan_counts_the_cores_where_the_affinity_mask_cannot_be_read(monkeypatch):
    def unreadable(pid):
        raise OSError("sched_getaffinity: not permitted here")

    monkeypatch.setattr(os, "sched_getaffinity", unreadable, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    seed = apply_preset(TrainConfig(data="cifar10", arch="v1-0.50-32", mode="scratch"), "seed-cifar10")
    assert thread_plan(seed) == (4, 2)  # the machine's 8 cores, as mobilenets.env counts them


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
