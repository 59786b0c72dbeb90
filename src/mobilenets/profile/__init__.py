"""Exact cost of a MobileNet: params, multiply-accumulates, memory.

    mobilenets profile v1-1.00-224 --per-layer

`profile(target)` takes a spec (`"v1-1.00-224"`), a `keras.Model`, or a
`.keras`, full-model `.h5` or `.tflite` file, and walks its graph.

Conventions (the MobileNet papers' own):

* MACs count multiply-accumulates of Conv2D, DepthwiseConv2D, Dense (and
  their TFLite forms CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED), including
  the 1x1 convolutions inside squeeze-excite blocks. Biases, BatchNorm (folded
  into the convolution at inference), activations, pooling, adds and the
  squeeze-excite multiply are not multiply-accumulates; they are counted
  apart, one per output element, as `elementwise_ops`.
* Batch size 1. `weight_bytes` is the bytes of the stored parameters
  (float32 for Keras; the real tensor types for TFLite).
* `peak_activation_bytes` assumes layers run one at a time in graph order,
  nothing is fused, and each tensor lives from the layer that makes it to
  the last layer that reads it (model inputs included).

A `.tflite` profile also carries what the file says about itself (`metadata`,
from `describe`): its TFLite Metadata name, labels, normalization, input type
and quantization, and the ops that compute in floating point.

The package, one module per concern, each importing only those above it here:

    base          `Profile` and the liveness sweep for peak memory
    keras_graph   Keras models: loading a file, counting layer by layer
    tflite_file   .tflite files: counting operators, `describe`, `float_ops`
    dispatch      `profile(target)` and `profile_file`
"""

from mobilenets.profile.base import Profile
from mobilenets.profile.keras_graph import load_keras_model, profile_keras
from mobilenets.profile.tflite_file import describe, float_ops, metadata_summary, profile_tflite
from mobilenets.profile.dispatch import MODEL_SUFFIXES, profile, profile_file

__all__ = ["Profile", "load_keras_model", "profile_keras", "describe", "float_ops", "metadata_summary",
           "profile_tflite", "MODEL_SUFFIXES", "profile", "profile_file"]
