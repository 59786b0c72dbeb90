"""Ship a trained model: .tflite (float32/float16/dynamic/int8), SavedModel, ONNX.

    mobilenets export runs/pets --quantize none,int8 --io uint8

Every exported model takes raw RGB pixels at the model's resolution (0-255
floats, or uint8/int8 for full-integer files): the `Rescaling` that maps them
to MobileNet's [-1, 1] is inside the model, so an app feeds the camera frame
as it is. For int8 files the input quantization is pinned to scale 1.0
(zero point 0 for uint8, -128 for int8), so a uint8 input value *is* the pixel
value, as in the models Teachable Machine and Coral ship.

The class labels travel inside each .tflite twice: as standard TFLite
Metadata with `labels.txt` zipped onto the file (what MediaPipe Tasks, the
LiteRT Support Library and Android Studio read; see `mobilenets.tflite`) and
as our entries `mobilenets_labels` (one label per line) and
`mobilenets_config` (JSON). So `mobilenets predict model_int8.tflite
photo.jpg` needs no side file; a `labels.txt` is written beside them too.

After export, a parity report compares every file with the Keras model on
images int8 calibration did not see: the run's test and validation splits,
then training images calibration left out, up to `--parity-images` (1000).
Every figure (top-1 accuracy, top-1 agreement with Keras, accuracy drop
against Keras) has its image count and a 95% confidence interval; it is saved
as `export_report.json`. A file below `--min-agreement` (0.98) or losing more
than `--max-drop` (0.01, i.e. one percentage point) fails the parity gate:
`ExportResult.failed` names it, and the CLI warns and exits 3.

An export folder is one set, replaced whole: a killed export leaves the old
set as it was, and the next export removes what the killed one left.

The package, one module per concern, each importing only those above it here:

    source         the Keras model to export, taking raw pixels
    conversion     SavedModel, .tflite in every quantize mode, ONNX
    quantization   what int8 converts: the hard-swish rewrite, reconstructed kernels
    calibration    the calibration images, and how an image is named
    ship           the folder as one set: staged, swapped in, labelled, summed
    gate           95% intervals, which files fail the gate, the parity table
    parity         every file against Keras on images calibration did not see
    run            `export`: all of the above, in order
"""

from mobilenets.export.source import Source, load_source
from mobilenets.export.conversion import (DEFAULT_QUANTIZE, FORMATS, IO_TYPES, QUANTIZE_MODES,
                                          conversion_error, convert, export_onnx, parse_formats,
                                          parse_quantize, save_traced)
from mobilenets.export.quantization import (DEFAULT_INT8_IO, DEFAULT_INT8_METHOD, INT8_METHODS,
                                            check_int8_method, has_hard_swish, int8_friendly, int8_model)
from mobilenets.export.calibration import DEFAULT_CALIBRATION_SIZE, Calibration, calibration_images, image_id
from mobilenets.export.ship import (EXPORT_NAMES, TFLITE_NAMES, VERSIONED_PACKAGES, clean_leftovers,
                                    staged_folder)
from mobilenets.export.gate import (DEFAULT_MAX_DROP, DEFAULT_MIN_AGREEMENT, accuracy_drop, parity_failures,
                                    parity_table, wilson_interval)
from mobilenets.export.parity import (DEFAULT_PARITY_IMAGES, NOISE_PIXELS, PARITY_SPLITS, ParityReport,
                                      keras_stability, parity_images, parity_report)
from mobilenets.export.run import ExportResult, default_out_dir, export

# Old import paths of names whose home is elsewhere (the .tflite file contract in
# mobilenets.tflite, float_ops in profile, native stderr in env): new code imports them there.
from mobilenets.env import quiet_native_stderr
from mobilenets.profile import float_ops
from mobilenets.tflite import (CONFIG_KEY, LABELS_KEY, MOBILENET_RANGE, PIXEL_RANGE, ClassifierInfo,
                               embed_metadata, graph_interpreter, parse_range, read_metadata, write_metadata)

__all__ = ["Source", "load_source", "DEFAULT_QUANTIZE", "FORMATS", "IO_TYPES", "QUANTIZE_MODES",
           "conversion_error", "convert", "export_onnx", "parse_formats", "parse_quantize", "save_traced",
           "DEFAULT_INT8_IO", "DEFAULT_INT8_METHOD", "INT8_METHODS", "check_int8_method", "has_hard_swish",
           "int8_friendly", "int8_model", "DEFAULT_CALIBRATION_SIZE", "Calibration", "calibration_images",
           "image_id", "EXPORT_NAMES", "TFLITE_NAMES", "VERSIONED_PACKAGES", "clean_leftovers",
           "staged_folder", "DEFAULT_MAX_DROP", "DEFAULT_MIN_AGREEMENT", "accuracy_drop", "parity_failures",
           "parity_table", "wilson_interval", "DEFAULT_PARITY_IMAGES", "NOISE_PIXELS", "PARITY_SPLITS",
           "ParityReport", "keras_stability", "parity_images", "parity_report", "ExportResult",
           "default_out_dir", "export",
           "quiet_native_stderr", "float_ops", "CONFIG_KEY", "LABELS_KEY", "MOBILENET_RANGE", "PIXEL_RANGE",
           "ClassifierInfo", "embed_metadata", "graph_interpreter", "parse_range", "read_metadata",
           "write_metadata"]
