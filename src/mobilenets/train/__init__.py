"""Retrain a MobileNet on your folders, or train one from scratch.

    mobilenets retrain data/pets --arch v1-0.25-224 --fine-tune 20
    mobilenets train cifar10:/data/cifar-10-python.tar.gz --arch v1-0.50-32

Everything a run makes lands in `runs/<name>/`, each file written atomically:
`config.json` (all settings: enough to rebuild the run), `data_report.json`,
`model.keras`, `labels.txt`, `history.csv`, `metrics.json`,
`training_curves.png`, `logs/` (TensorBoard) and `checkpoints/`. A checkpoint
is saved after every epoch, so `--resume runs/<name>` after Ctrl-C or kill -9
loses at most the epoch that was running.

Transfer learning (`retrain`) first trains only the new head. Without
augmentation the frozen backbone's pooled features are computed once and
cached on disk, keyed by model, weights and image content (TF-Hub
retrain.py's bottleneck trick): a second run skips the backbone entirely.

The package, one module per concern, each importing only those above it here:

    config     `TrainConfig`, every setting of a run
    schedule   the learning rate: constant, or warm-up then cosine (pure)
    presets    the named recipes, face presets included, as data
    kernels    faster CPU training kernels with the same maths
    runtime    thread pools, devices, the distribution strategy
    build      the model a run trains, its optimizer and loss
    history    history.csv and the training curves
    runs       run folders: new, read back, resumed; `Job`, a run in progress
    lowres     the low-resolution first epochs of a from-scratch run
    callbacks  per-epoch history, checkpoints, the time-budget cosine
    features   the bottleneck cache and the head trained on it
    phases     one resumable phase on the image pipeline
    run        `run_training`: every phase, then evaluation and the files
"""

from mobilenets.train.config import TrainConfig
from mobilenets.train.schedule import SCHEDULES, budget_fitted, keras_schedule, warmup_cosine, warmup_steps
from mobilenets.train.presets import PRESETS, apply_preset
from mobilenets.train.kernels import (PAIR_PRODUCTS, SMALL_MAP_PIXELS, depthwise_filter_grad, depthwise_small_maps,
                                      fuse_batchnorm, matmul_pointwise, onednn_enabled, training_kernels)
from mobilenets.train.runtime import (SMALL_STEP_WORK, apply_thread_plan, split_cpu, step_work, strategy_for,
                                      thread_plan)
from mobilenets.train.build import build_for_config, class_weights, compile_model, make_optimizer, set_trainable
from mobilenets.train.history import plot_history, write_history
from mobilenets.train.runs import (Job, check_run_name, ignored_on_resume, load_checkpoint, load_run_config,
                                   load_state, new_run_dir)
from mobilenets.train.lowres import low_res_epochs, low_res_size
from mobilenets.train.callbacks import budget_cosine, epoch_callbacks
from mobilenets.train.features import extract_features, head_on_features
from mobilenets.train.phases import fit_phase
from mobilenets.train.run import finish_run, refuse_random_backbone, run_training, summary_rows


__all__ = ["TrainConfig", "SCHEDULES", "budget_fitted", "keras_schedule", "warmup_cosine", "warmup_steps",
           "PRESETS", "apply_preset", "PAIR_PRODUCTS", "SMALL_MAP_PIXELS", "depthwise_filter_grad",
           "depthwise_small_maps", "fuse_batchnorm", "matmul_pointwise", "onednn_enabled", "training_kernels",
           "SMALL_STEP_WORK", "apply_thread_plan", "split_cpu", "step_work", "strategy_for", "thread_plan",
           "build_for_config", "class_weights", "compile_model", "make_optimizer", "set_trainable",
           "plot_history", "write_history", "Job", "check_run_name", "ignored_on_resume", "load_checkpoint",
           "load_run_config", "load_state", "new_run_dir", "low_res_epochs", "low_res_size", "budget_cosine",
           "epoch_callbacks", "extract_features", "head_on_features", "fit_phase", "finish_run",
           "refuse_random_backbone", "run_training", "summary_rows"]
