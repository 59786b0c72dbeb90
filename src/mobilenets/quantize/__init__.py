"""Int8 that keeps the float model's answers: layer-wise reconstruction before conversion.

    from mobilenets.quantize import reconstruct
    int8_ready, reports = reconstruct(model, calibration_uint8_images)   # a copy; model is untouched

Why: a retrained MobileNet is a sensitive function. On pokemon-types a
v1-0.25-224 head flips 1.8% of its answers under +-2 of pixel noise, and the
TFLite converter's plain post-training int8 (round every BatchNorm-folded
weight to the nearest of 255 levels per channel, min/max activation ranges)
moved its pooled features by 22% and flipped 15% of its answers; int16
activations (16x8) changed almost nothing, so rounding weights is most of it.

What: before the converter sees the model, every Conv2D, DepthwiseConv2D and
Dense kernel is replaced, layer by layer from the input, by one that is
already on the converter's int8 grid (per output channel, symmetric, scale
max|w| / 127 of the BatchNorm-folded kernel, so the converter's own rounding
leaves it as it is) and that best reproduces the float layer's output on the
calibration images:

1. drift: the layer's inputs in the int8 network differ from the float
   network's (earlier rounding, int8 activations, simulated here with the
   min/max ranges the converter will take). The kernel is first refitted by
   least squares so that it maps the int8-network inputs to the float
   outputs;
2. GPTQ (Frantar et al. 2022, the Optimal Brain Quantizer applied one input
   column at a time): each column is rounded and the error it makes is
   spread over the columns not yet rounded, weighted by the inverse Hessian
   of the layer's inputs; columns go in order of decreasing input energy;
3. bias: what remains of the mean output error per channel goes into the
   BatchNorm offset (or the layer's bias).

The result is an ordinary float Keras model; converting it with the usual
full-integer recipe gives an integer-only file (Coral / Edge TPU class) of
the same size and speed as plain int8.

Modules: `graph` (what the converter fuses and quantizes), `equalize`
(ReLU6 channels rescaled to fill the int8 range), `gptq` (refit and
rounding, pure NumPy), `reconstruct` (layer by layer, simulated int8 inputs).
"""

from mobilenets.quantize.equalize import HEADROOM, MAX_GAIN, equalize
from mobilenets.quantize.reconstruct import LayerReport, reconstruct

__all__ = ["HEADROOM", "MAX_GAIN", "LayerReport", "equalize", "reconstruct"]
