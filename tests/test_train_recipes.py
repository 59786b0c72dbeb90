"""Recipes, models, schedules and thread plans of training runs, without training a run."""

import os
import subprocess
import sys

import numpy as np
import pytest

from _tiny import tiny_config as tiny
from mobilenets.cli import main
from mobilenets.errors import MobilenetsError
from mobilenets.train import (PRESETS, SMALL_STEP_WORK, TrainConfig, apply_preset, build_for_config,
                              keras_schedule, step_work, thread_plan, warmup_cosine, warmup_steps)


def test_seed_preset_is_the_seed_recipe():
    cfg = apply_preset(TrainConfig(data="cifar10", arch="v1-0.50-32"), "seed-cifar10")
    assert (cfg.optimizer, cfg.batch_size, cfg.label_smoothing) == ("nadam", 32, 0.0)
    assert cfg.augment == {"flip_left_right": True, "shift": 10.0, "fill": "reflect"}
    assert cfg.mode == "scratch" and cfg.stem_stride == 2
    assert build_for_config(cfg, 10).count_params() == 834_666  # the seed's table


def test_explicit_flags_beat_the_preset():
    cfg = apply_preset(TrainConfig(data="x", batch_size=7), "scratch", explicit={"batch_size"})
    assert cfg.batch_size == 7 and cfg.optimizer == PRESETS["scratch"]["optimizer"]


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


def test_a_broken_import_inside_the_package_surfaces_instead_of_hiding_the_face_presets(monkeypatch):
    # faces is part of the package, not an optional extra: if importing it
    # fails, that is a bug to see, not a reason to report "unknown preset".
    monkeypatch.delitem(sys.modules, "mobilenets.faces", raising=False)
    monkeypatch.setitem(sys.modules, "mobilenets.imagetree", None)  # faces imports it
    with pytest.raises(ImportError, match="mobilenets.imagetree"):
        apply_preset(TrainConfig(data="fer"), "emotion")


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


@pytest.mark.parametrize("arch", ["v1-0.25-32", "v2-0.35-32", "v3-small-0.75-32", "v4-conv-s-0.25-32"])
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


def test_set_trainable_keeps_batchnorm_frozen():
    from mobilenets.train import set_trainable

    model = build_for_config(tiny("x"), 3)
    unfrozen = set_trainable(model, 12)
    assert unfrozen > 0
    bns = [l for l in model.layers if type(l).__name__ == "BatchNormalization"]
    assert bns and not any(l.trainable for l in bns)
    assert model.get_layer("head_predictions").trainable
    assert not model.get_layer("conv1").trainable


def test_compile_builds_everything_so_the_training_step_traces_once():
    import keras

    from mobilenets.train import compile_model

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    compile_model(model, tiny("x", mode="scratch", optimizer="sgd", weight_decay=5e-3), 2, 1, 0.1)
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


def test_scratch_preset_trains_its_first_epochs_at_three_quarters_of_the_height():
    from mobilenets.errors import MobilenetsError
    from mobilenets.faces import PRESETS as FACE_PRESETS
    from mobilenets.train import low_res_size

    cfg = apply_preset(TrainConfig(data="x", arch="v1-0.50-32"), "scratch")
    assert cfg.low_res is None and low_res_size(cfg, (32, 32)) == (24, 24)
    assert low_res_size(cfg, (96, 64)) == (72, 48)  # same aspect ratio
    assert low_res_size(cfg, (8, 8)) is None  # 6 px: the preset's setting is skipped, not an error
    off = apply_preset(TrainConfig(data="x", arch="v1-0.50-32", low_res=0), "scratch",
                       explicit={"low_res"})
    assert low_res_size(off, (32, 32)) is None  # --low-res 0 turns it off
    mine = apply_preset(TrainConfig(data="x", arch="v1-0.50-32", low_res=16), "scratch",
                        explicit={"low_res"})
    assert low_res_size(mine, (32, 32)) == (16, 16)
    with pytest.raises(MobilenetsError, match="--low-res takes a height"):
        low_res_size(TrainConfig(data="x", mode="scratch", low_res=6), (8, 8))  # the user's is checked
    assert apply_preset(TrainConfig(data="x"), "seed-cifar10").low_res_scale is None
    for name in FACE_PRESETS:  # fine-tuned from ImageNet at their own size
        assert apply_preset(TrainConfig(data="x"), name).low_res_scale is None


def test_low_res_fraction_of_a_plan():
    from mobilenets.train import low_res_epochs

    cfg = TrainConfig(data="x", mode="scratch", low_res=24, low_res_fraction=0.5)
    assert [low_res_epochs(cfg, n) for n in (1, 2, 3, 16, 17)] == [0, 1, 2, 8, 9]
    cfg.low_res_fraction = 0.9
    assert low_res_epochs(cfg, 4) == 3  # at least the last epoch trains at full size


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


def test_thread_plan_counts_the_cores_where_the_affinity_mask_cannot_be_read(monkeypatch):
    def unreadable(pid):
        raise OSError("sched_getaffinity: not permitted here")

    monkeypatch.setattr(os, "sched_getaffinity", unreadable, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    seed = apply_preset(TrainConfig(data="cifar10", arch="v1-0.50-32", mode="scratch"), "seed-cifar10")
    assert thread_plan(seed) == (4, 2)  # the machine's 8 cores, as mobilenets.env counts them


def test_cli_sets_onednn_and_the_thread_plan_before_tensorflow_runs_unless_the_user_chose():
    # One fresh process per case: both settings are process-wide and fixed once
    # TensorFlow loads (oneDNN) or runs an op (thread pools).
    code = ("from mobilenets.cli.common import quiet_tensorflow; quiet_tensorflow(); import tensorflow as tf; "
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


def test_short_schedules_still_warm_up_and_decay_to_zero():
    # 2 epochs of 10 steps, 2 warm-up epochs asked for: a tenth of the 20 steps warm up.
    assert warmup_steps(10, 2, 20) == 2
    rates = [warmup_cosine(step, 0.1, 20, 2) for step in range(25)]
    assert rates[0] == pytest.approx(0.01) and rates[2] == pytest.approx(0.1)  # from a tenth up to the peak
    assert all(a >= b for a, b in zip(rates[2:], rates[3:]))  # then only down
    assert rates[20] == rates[24] == pytest.approx(0.0, abs=1e-12)  # to zero at the end, and it stays there


@pytest.mark.parametrize("steps, epochs, warmup_epochs", [(10, 2, 2), (7, 30, 0), (50, 3, 0.5)])
def test_the_optimizer_steps_along_the_same_curve(steps, epochs, warmup_epochs):
    total = steps * epochs
    warmup = warmup_steps(steps, warmup_epochs, total)
    schedule = keras_schedule("cosine", 0.1, steps, epochs, warmup_epochs)
    for step in range(total + 3):
        assert float(schedule(step)) == pytest.approx(warmup_cosine(step, 0.1, total, warmup), rel=1e-5, abs=1e-7)
    assert keras_schedule("constant", 0.1, steps, epochs, warmup_epochs) == 0.1
    with pytest.raises(MobilenetsError, match="schedule must be constant or cosine. Received 'step'"):
        keras_schedule("step", 0.1, steps, epochs, warmup_epochs)
