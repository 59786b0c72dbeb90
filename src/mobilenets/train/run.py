"""A whole run: new or resumed, every phase, then the model, metrics and curves on disk.

    run = run_training(TrainConfig(data="photos/", arch="v1-0.50-160"), runs_dir="runs")
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from mobilenets import artifacts
from mobilenets.augment import Augment
from mobilenets.env import report
from mobilenets.errors import MobilenetsError
from mobilenets.train.build import build_for_config, set_trainable
from mobilenets.train.config import TrainConfig
from mobilenets.train.features import head_on_features, image_cache
from mobilenets.train.history import plot_history
from mobilenets.train.lowres import low_res_size
from mobilenets.train.multiworker import WORKER_MODEL_ENV, cluster_strategy, multiworker_phase
from mobilenets.train.phases import fit_phase
from mobilenets.train.runs import (Job, ignored_on_resume, load_checkpoint, load_run_config, load_state, new_run_dir,
                                   resume_data)
from mobilenets.train.runtime import apply_thread_plan, strategy_for, strategy_scope


def run_training(config: TrainConfig, runs_dir="runs", name: str | None = None,
                 resume: "str | os.PathLike | None" = None, cache_dir: "str | os.PathLike | None" = None,
                 data=None, random_backbone: bool = True, cluster=None) -> "Path | None":
    """Train (or resume) a run and write everything to its directory.

    Args:
        config: the settings (ignored when resuming: the run's own are used).
        runs_dir: parent of new run directories.
        name: run name (default: data-spec-timestamp).
        resume: an existing run directory to continue.
        cache_dir: where bottleneck features, extracted archives and face crops are
            cached (None: nothing cached; archives and crops live in a temporary folder).
        data: an already opened dataset (default: `open_dataset(config.data)`).
        random_backbone: allow a retrain on a randomly initialised backbone
            (`weights="none"`); False refuses it (see `refuse_random_backbone`).
        cluster: `(strategy, task)` of `multiworker.cluster_strategy()`; made
            here from TF_CONFIG when the run is `distribute="multiworker"`.

    Returns:
        The run directory; None on a multi-worker run's non-chief workers,
        which train in a temporary folder of their own, removed at the end
        (only the chief writes the run).

    If TensorFlow has not run anything yet in this process, a small-step
    run also sets its thread pools (`apply_thread_plan`), process-wide.
    """
    import keras

    started = time.monotonic()
    if cluster is None and "multiworker" in (config.distribute, resume and load_run_config(Path(resume)).distribute):
        # First: the strategy starts this worker's server before TensorFlow runs anything.
        cluster = cluster_strategy()
        if not cluster[1]["chief"]:
            return _worker_run(config, runs_dir, name, resume, cache_dir, data, random_backbone, cluster)
    if resume:
        run = Path(resume)
        given, config = config, load_run_config(run)
        for folder in (run, run / "checkpoints"):
            artifacts.remove_stale(folder)  # temporary files of a killed process
        ignored = ignored_on_resume(given, config)
        if data is None:
            config.data = resume_data(run, given)
            if config.data == given.data and "DATA" in ignored:
                ignored.remove("DATA")  # the run's own data is gone: the DATA given stands in for it
        if name and name != run.name:
            ignored.append("--name")
        if str(runs_dir) != "runs" and Path(runs_dir).absolute() != run.absolute().parent:
            ignored.append("--runs-dir")
        if ignored:
            report(f"--resume continues {run} with the settings in its config.json; ignoring "
                   f"{', '.join(ignored)}")
        state = load_state(run)
        if "complete" in state.get("done", []):
            raise MobilenetsError(f"run {run} is already complete")
    else:
        if not random_backbone:
            refuse_random_backbone(config)
        low_res_size(config, (config.spec.height, config.spec.width))  # a bad setting fails before any work
        made_runs_dir = not Path(runs_dir).exists()
        run = new_run_dir(runs_dir, name, config)
        state = {"done": [], "history": []}
        from mobilenets.data import resolved_data

        # DATA as typed, and its absolute path for commands run from another directory.
        artifacts.write_json(run / "config.json",
                             {**config.to_dict(), "data_resolved": resolved_data(config.data)})
    threads = apply_thread_plan(config)
    if threads:
        report(f"small training steps: TensorFlow runs {threads[1]} ops at once, "
               f"{threads[0]} thread each")
    keras.utils.set_random_seed(config.seed)
    # Extracted archives and face crops go under the cache given; with none
    # (--no-cache) under a folder of this run's own, removed when it ends.
    # Decoded images always go to disk (the cache's, or that folder) and are
    # read back in batches: in memory they grow with the dataset.
    keep = bool(cache_dir and config.cache_features)
    scratch = None if keep else Path(tempfile.mkdtemp(prefix="mobilenets-no-cache-"))
    files_dir = Path(cache_dir) if cache_dir else scratch
    cache_dir = Path(cache_dir) if keep else None
    images_dir = image_cache(cache_dir) if keep else scratch / "images"
    if cache_dir:
        for folder in (cache_dir / "features", images_dir):
            artifacts.remove_stale(folder)
    try:
        return _train_run(run, config, state, cache_dir, files_dir, images_dir, data, started, cluster)
    except MobilenetsError:
        if not resume and not (run / "checkpoints" / "state.json").exists():
            # Refused before its first epoch (bad data, a split that decodes to
            # nothing): the folder holds only settings, and would block its name.
            shutil.rmtree(run, ignore_errors=True)
            if made_runs_dir:
                with contextlib.suppress(OSError):  # only if still empty: another run may be in it
                    os.rmdir(runs_dir)
        raise
    except KeyboardInterrupt:
        command = "retrain" if config.mode == "retrain" else "train"
        report(f"\ninterrupted: every finished epoch is saved; continue with "
               f"'mobilenets {command} --resume {run}'")
        raise
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _worker_run(config, runs_dir, name, resume, cache_dir, data, random_backbone, cluster) -> None:
    """A non-chief worker's share of a multi-worker run, in a temporary folder it removes.

    A resumed run is copied there first (the chief's folder must be readable
    here: shared storage), so this worker reads the same state and never
    writes into the chief's run; weights come from the chief all the same.
    """
    scratch = Path(tempfile.mkdtemp(prefix="mobilenets-worker-"))
    try:
        if resume:
            resume = shutil.copytree(resume, scratch / Path(resume).name)
        else:
            runs_dir = scratch
        run_training(config, runs_dir=runs_dir, name=name, resume=resume, cache_dir=cache_dir, data=data,
                     random_backbone=random_backbone, cluster=cluster)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return None


def refuse_random_backbone(config: TrainConfig) -> None:
    """Refuse a retrain whose frozen backbone has random weights.

    A freshly initialised MobileNet's pooled features shrink to ~1e-16: a head
    trained on them learns nothing (validation accuracy = the majority share).
    Training every layer (`mobilenets train`) is what random weights need.
    """
    if config.mode == "retrain" and str(config.weights).lower() == "none":
        raise MobilenetsError(
            "retrain --weights none would train a head on a random backbone's features (~1e-16), "
            "which learns nothing; use 'mobilenets train' to train the whole network, or "
            "--weights imagenet or a weights file")


def _train_run(run: Path, config: TrainConfig, state: dict, cache_dir, files_dir: Path, images_dir: Path,
               data, started: float, cluster=None) -> "Path | None":
    import keras

    from mobilenets.data import open_dataset

    if data is None:
        data = open_dataset(config.data, validation_percent=config.validation_percent,
                            test_percent=config.test_percent, cache_dir=files_dir / "datasets")
    if config.faces:
        from mobilenets.faces import face_cropped

        data, faces_report = face_cropped(data, config.validation_percent, config.test_percent,
                                          cache_dir=files_dir)
        artifacts.write_json(run / "faces.json", faces_report)
    data.write_report(run / "data_report.json")
    classes = list(data.classes)
    artifacts.write_text(run / "labels.txt", "\n".join(classes) + "\n")
    strategy = cluster[0] if cluster else strategy_for(config)
    state["replicas"] = strategy.num_replicas_in_sync if strategy is not None else 1
    aug = Augment.parse(config.augment)
    job = Job(dir=run, config=config, data=data, splits=data.splits, augment=aug, state=state,
              started=started, strategy=strategy, cache_dir=cache_dir, images_dir=images_dir)
    if cluster:
        task = cluster[1]

        def phase_fit(model, job, phase, epochs, lr):  # Keras's fit does not run multi-worker
            return multiworker_phase(model, job, phase, epochs, lr, task)
    else:
        phase_fit = fit_phase

    with strategy_scope(strategy):
        model = build_for_config(config, len(classes))
    if config.mode == "retrain":
        if "head" not in state["done"]:
            set_trainable(model, 0)
            # Under a strategy the head trains on images: features would be computed on one device.
            if aug.is_identity and config.cache_features and strategy is None:
                model = head_on_features(model, job)
            else:
                if not aug.is_identity:
                    report("augmentation is on: bottleneck features are not cached "
                           "(each epoch sees new images)")
                model = phase_fit(model, job, "head", config.epochs, config.learning_rate)
        elif cluster:  # the architecture only: the fine-tuning phase takes the chief's weights
            set_trainable(model, 0)
        else:
            with strategy_scope(strategy):
                model = load_checkpoint(run / "checkpoints" / "head.keras")
        if config.fine_tune and "fine_tune" not in state["done"]:
            set_trainable(model, config.fine_tune)
            lr = config.fine_tune_learning_rate or config.learning_rate / 10
            if cluster and "head" in state["done"] and state.get("phase") != "fine_tune" and task["chief"]:
                head = load_checkpoint(run / "checkpoints" / "head.keras")  # sent to all by the phase
                model.set_weights(head.get_weights())
            model = phase_fit(model, job, "fine_tune", config.fine_tune_epochs, lr)
    else:
        model = phase_fit(model, job, "train", config.epochs, config.learning_rate)

    if strategy is not None:  # evaluate and save a plain, single-device copy
        plain = keras.Model.from_config(model.get_config())
        plain.set_weights(model.get_weights())
        model = plain
    if cluster and not cluster[1]["chief"]:
        if os.environ.get(WORKER_MODEL_ENV):  # for checking that every worker ends alike
            model.save(os.environ[WORKER_MODEL_ENV])
        return None
    finish_run(run, model, data, job.splits, state, started, images_dir,
               flip_tta=bool(config.augment.get("flip_left_right")))
    return run


def finish_run(run: Path, model, data, splits: tuple[str, ...], state: dict, started: float,
               image_cache: Path | None = None, flip_tta: bool = False) -> dict:
    """Save the model, evaluate it and write metrics, curves and the summary.

    With `flip_tta` (runs trained with flips) the test split is also scored
    with flip test-time augmentation, reported beside the plain accuracy
    (`mobilenets evaluate --tta flip` gives the full report).
    """
    from mobilenets.evaluate import evaluate_arrays

    with artifacts.atomic_path(run / "model.keras") as tmp:
        model.save(tmp)
    size = tuple(model.input_shape[1:3])
    metrics = {"train_seconds": round(time.monotonic() - started, 1),
               "feature_cache_hit": state.get("feature_cache_hit"),
               "stopped_by_time_budget": state.get("stopped_by_time_budget", False),
               "replicas": state.get("replicas", 1)}
    for split in ("val", "test"):
        if split in splits:
            images = data.stream(split, size, cache_dir=image_cache)
            result = evaluate_arrays(model, images, images.labels, list(data.classes), images.paths)
            metrics[split] = {k: result[k] for k in ("accuracy", "top_k_accuracy", "k", "count")}
            if split == "test" and flip_tta:
                tta = evaluate_arrays(model, images, images.labels, list(data.classes), images.paths, tta="flip")
                metrics[split]["accuracy_flip_tta"] = tta["accuracy"]
                metrics[split]["top_k_accuracy_flip_tta"] = tta["top_k_accuracy"]
            if split == "test":
                from mobilenets.evaluate import write_evaluation

                write_evaluation(result, run / "evaluation")
    # Again now that every split was decoded: truncated files show up only then.
    data_report = data.report()
    data.write_report(run / "data_report.json")
    if data_report.get("skipped"):
        report(f"skipped {len(data_report['skipped'])} unreadable file(s); reasons in "
               f"{run / 'data_report.json'}")
    metrics["skipped_files"] = len(data_report.get("skipped", []))
    artifacts.write_json(run / "metrics.json", metrics)
    plot_history(state["history"], run / "training_curves.png")
    state["done"].append("complete")
    artifacts.write_json(run / "checkpoints" / "state.json", state)
    report(f"run: {run}")
    return metrics


def summary_rows(run: "str | os.PathLike") -> list[dict]:
    """A finished run's accuracy per split, as result rows (the table `mobilenets retrain` prints).

        write_rows(summary_rows(run), "table", title=run.name)
    """
    from mobilenets.evaluate import top_k_column

    metrics = artifacts.read_json(Path(run) / "metrics.json")
    rows = []
    for split in ("val", "test"):
        m = metrics.get(split)
        if not m:
            continue
        rows.append({"split": split, "images": m["count"], "accuracy": m["accuracy"], **top_k_column(m)})
        if "accuracy_flip_tta" in m:
            tta = {"k": m["k"], "top_k_accuracy": m.get("top_k_accuracy_flip_tta")}
            rows.append({"split": "test, flip TTA", "images": m["count"], "accuracy": m["accuracy_flip_tta"],
                         **top_k_column(tta)})
    return rows
