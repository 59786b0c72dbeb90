"""Classify images with a run, a .keras/.h5 model or any .tflite classifier.

    mobilenets predict runs/pets/export/model_int8.tflite photos/ --top-k 3 --json

A model is loaded once as a `Classifier` (uint8 RGB images in, class
probabilities out), whatever made it: our exports and runs carry their labels
and input range, a third-party .tflite is read from its tensors and
metadata. Files and folders then stream through it, decoded in threads while
the model runs; an unreadable file gives an error record and the rest go on.

The package, one module per concern, each importing only those above it here:

    labels        aligning labels with the model's outputs (files: `mobilenets.rundir`)
    classifiers   `load_classifier`: Keras and TFLite models as one `Classifier`
    files         listing images, `predict_files` (streaming), text / JSON lines
"""

from mobilenets.predict.labels import align_labels
from mobilenets.predict.classifiers import (Classifier, KerasClassifier, TFLiteClassifier, load_classifier,
                                            set_tf_threads)
from mobilenets.predict.files import (DEFAULT_TOP_K, format_result, list_images, predict_files, top_k,
                                      write_predictions)
# Reading labels files is rundir's, the file contract tflite's; both stay importable from here.
from mobilenets.rundir import read_labels
from mobilenets.tflite import open_interpreter

__all__ = ["align_labels", "read_labels", "Classifier", "KerasClassifier", "TFLiteClassifier",
           "load_classifier", "set_tf_threads", "DEFAULT_TOP_K", "format_result", "list_images",
           "predict_files", "top_k", "write_predictions", "open_interpreter"]
