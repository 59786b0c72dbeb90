"""`export`: a run or Keras model to one checked set of files.

    result = export("runs/pets", quantize="none,int8", io="uint8")
    result.files, result.failed

Loads the model (`source`), converts it once per quantize mode
(`conversion`; int8 from the model `quantization` makes and the images
`calibration` picks), writes the set (`ship`), then measures every file
against Keras (`parity`) and judges it (`gate`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mobilenets import artifacts
from mobilenets.env import package_versions
from mobilenets.errors import MobilenetsError
from mobilenets.export.calibration import DEFAULT_CALIBRATION_SIZE, calibration_images
from mobilenets.export.conversion import (IO_TYPES, convert, export_onnx, parse_formats, parse_quantize,
                                          save_traced)
from mobilenets.export.gate import DEFAULT_MAX_DROP, DEFAULT_MIN_AGREEMENT, figure, parity_failures
from mobilenets.export.parity import DEFAULT_PARITY_IMAGES, parity_report
from mobilenets.export.quantization import (DEFAULT_INT8_IO, DEFAULT_INT8_METHOD, check_int8_method,
                                            int8_model)
from mobilenets.export.ship import (VERSIONED_PACKAGES, dir_bytes, sha256_file, staged_folder, write_report,
                                    write_tflite)
from mobilenets.export.source import load_source
from mobilenets.tflite import MOBILENET_RANGE, PIXEL_RANGE, parse_range


@dataclass
class ExportResult:
    """What `export` made, and which files failed the parity gate."""

    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)  # name -> path
    rows: list[dict] = field(default_factory=list)  # the parity report
    report_path: Path | None = None
    notes: list[str] = field(default_factory=list)
    # One dict per file below min_agreement or above max_drop: model, agreement,
    # accuracy_drop, images, message (one line naming the file and its numbers).
    failed: list[dict] = field(default_factory=list)
    stability: dict | None = None  # `keras_stability` of the parity images


def default_out_dir(target: "str | os.PathLike") -> Path:
    """`<run>/export` for a run directory, `<model>-export/` beside a model file.

    Args:
        target: run directory or model file.
    """
    target = Path(target)
    return target / "export" if target.is_dir() else target.parent / f"{target.stem}-export"


def export(target, out_dir=None, quantize=None, io: str | None = None, formats=None,
           calibration=None, calibration_size: int = DEFAULT_CALIBRATION_SIZE, data=None,
           parity: bool = True, parity_images: int = DEFAULT_PARITY_IMAGES,
           input_range=None, min_agreement: float = DEFAULT_MIN_AGREEMENT,
           max_drop: float = DEFAULT_MAX_DROP, int8_method: str = DEFAULT_INT8_METHOD,
           progress: bool | None = None) -> ExportResult:
    """Export a run or Keras model and check every file against Keras.

    The folder is written as one set (see `mobilenets.export.ship`): a re-export
    replaces a previous export folder whole, and refuses a folder that holds
    anything else.

    Args:
        target: run directory, `.keras` or full-model `.h5`.
        out_dir: where files go (default: `default_out_dir(target)`).
        quantize: .tflite modes, e.g. `"none,int8"` (default `DEFAULT_QUANTIZE`).
        io: int8 input/output type: `uint8` (default), `int8` or `float32`.
            Float modes always take and return float32.
        formats: `"tflite"` (default), `"saved_model"`, `"onnx"`, or a list.
        calibration: data for int8 calibration (default: the run's data).
        calibration_size: calibration images (default 200).
        data: data for the parity report (default: the run's own: test, val,
            then the training images calibration did not use; None and no
            run: no parity report).
        parity: write the parity report.
        parity_images: at most this many images in the parity report.
        input_range: the input range of a model without our `preprocess`
            layer (default MobileNet's -1,1).
        min_agreement: the parity gate's lowest top-1 agreement with Keras,
            a fraction 0..1 (default 0.98).
        max_drop: the parity gate's largest top-1 accuracy drop against
            Keras, a fraction of the images (default 0.01: one percentage point).
        int8_method: `reconstruct` (default: `mobilenets.quantize` puts the
            kernels on the int8 grid so they keep the float outputs, then
            the converter quantizes) or `plain` (the converter alone).
        progress: show a progress bar for the int8 reconstruction (default:
            when stderr is a terminal).

    Returns:
        An `ExportResult`; `failed` lists the files that missed the gate
        (they are written all the same).
    """
    from mobilenets.data import run_data

    formats = parse_formats(formats)
    modes = parse_quantize(quantize) if "tflite" in formats or quantize is not None else ()
    if "tflite" not in formats and quantize is not None:
        raise MobilenetsError(f"--quantize applies to --format tflite. Received formats={','.join(formats)}")
    if io is not None and io not in IO_TYPES:
        raise MobilenetsError(f"--io must be one of {', '.join(IO_TYPES)}. Received {io!r}")
    if io not in (None, "float32") and "int8" not in modes:
        raise MobilenetsError(f"--io {io} needs --quantize int8 (float modes take float32). "
                              f"Received quantize={','.join(modes) or 'none'}")
    int8_io = io or DEFAULT_INT8_IO
    if calibration_size < 1:
        raise MobilenetsError(f"--calibration-size must be >= 1. Received {calibration_size}")
    check_int8_method(int8_method)
    if parity_images < 1:
        raise MobilenetsError(f"--parity-images must be >= 1. Received {parity_images}")
    if not 0 <= min_agreement <= 1:
        raise MobilenetsError(f"--min-agreement must be between 0 and 1. Received {min_agreement}")
    if not max_drop >= 0:
        raise MobilenetsError(f"--max-drop must be >= 0 (a fraction: 0.01 is one percentage "
                              f"point). Received {max_drop}")

    source = load_source(target, input_range)
    dest = Path(out_dir) if out_dir else default_out_dir(target)
    result = ExportResult(out_dir=dest)
    cfg = source.config
    calib_data = calibration or (run_data(cfg, "give --calibration DATA (and --data DATA for the parity "
                                               "report)") if "int8" in modes else None)
    if "int8" in modes and not calib_data:
        if quantize is not None:
            raise MobilenetsError("int8 needs calibration images: give --calibration DATA "
                                  "(the model has no run config naming its data)")
        # The default asks for int8 too; without data for it, ship the float file and say so.
        modes = tuple(m for m in modes if m != "int8")
        result.notes.append("int8 skipped: no calibration data (a model file without a run "
                            "config); give --calibration DATA")
    spec = cfg.get("spec") or cfg.get("arch")
    meta_config = {"format": "mobilenets", "version": 1, "spec": spec,
                   "image_size": list(source.image_size), "input_range": list(PIXEL_RANGE),
                   "classes": len(source.labels)}
    labels_text = "\n".join(source.labels) + "\n"
    files_info: dict[str, dict] = {}
    calib = None

    with staged_folder(dest) as out:
        with tempfile.TemporaryDirectory(prefix=".export-", dir=out) as tmp:
            tmp = Path(tmp)
            float_saved = None
            if any(m != "int8" for m in modes) or "saved_model" in formats:
                float_saved = save_traced(source.model, tmp / "float")
            for mode in modes:
                mode_io = int8_io if mode == "int8" else "float32"
                extra = {}
                if mode == "int8":
                    calib = calibration_images(calib_data, source.image_size, calibration_size, cfg)
                    model, extra, notes = int8_model(source.model, calib.images, int8_method, progress)
                    result.notes += notes
                    if model is source.model and float_saved is not None:
                        saved = float_saved
                    else:
                        saved = save_traced(model, tmp / "int8")
                    tflite = convert(saved, "int8", mode_io, calib.images)
                else:
                    tflite = convert(float_saved, mode, "float32")
                path, facts = write_tflite(out, tflite, source, spec, mode, mode_io, meta_config, labels_text)
                result.files[path.name] = path
                files_info[path.name] = dict(facts, **extra)
            if "saved_model" in formats:
                path = Path(shutil.move(float_saved, out / "saved_model"))
                result.files[path.name] = path
                files_info[path.name] = dict(format="saved_model", quantize="none", io="float32",
                                             bytes=dir_bytes(path), signature="serving_default",
                                             input_shape=[1, *source.image_size, 3])
            if "onnx" in formats:
                path = export_onnx(source.model, out / "model.onnx", source.labels, meta_config)
                result.files[path.name] = path
                files_info[path.name] = dict(format="onnx", quantize="none", io="float32",
                                             bytes=path.stat().st_size)

        artifacts.write_text(out / "labels.txt", labels_text)
        export_config = {
            "source": str(source.model_path),
            "source_sha256": sha256_file(source.model_path),
            "run": str(source.run_dir) if source.run_dir else None,
            "spec": spec,
            "image_size": list(source.image_size),
            "input_range": list(PIXEL_RANGE),
            "added_preprocessing": (f"Rescaling 0..255 -> {parse_range(input_range) or MOBILENET_RANGE}"
                                    if source.wrapped else None),
            "labels": source.labels,
            "quantize": list(modes),
            "io": int8_io if "int8" in modes else "float32",
            "formats": list(formats),
            "calibration": ({"data": str(calib_data), "size": calibration_size,
                             "used": calib.note, "images": len(calib.files), "files": calib.files}
                            if calib else None),
            "files": files_info,
            "versions": package_versions(*VERSIONED_PACKAGES),
        }
        artifacts.write_json(out / "config.json", export_config)

        if parity:
            report = parity_report(source, result.files, data=data, max_images=parity_images,
                                   exclude=calib.files if calib else ())
            if report.note:
                result.notes.append(report.note)
            if report.rows:
                result.rows = report.rows
                result.stability = st = report.stability
                result.notes.append(f"Keras keeps its own top-1 on {figure(st, 'agreement')} of "
                                    f"these images under +-{st['pixels']} of pixel noise (how firm its "
                                    f"answers are: read a file's agreement against it)")
                result.failed = parity_failures(report.rows, min_agreement, max_drop,
                                                report.stability)
                write_report(out, report, len(calib.files) if calib else 0, min_agreement, max_drop,
                             result.failed)
                result.report_path = dest / "export_report.json"
    result.files = {name: dest / name for name in result.files}
    return result
