"""MobileNetV4 (Qin et al. 2024) in Keras 3, built from its block tables.

    model = mobilenet_v4(parse_spec("v4-conv-s-224"), classes=1000)

The architecture is data: `ARCHITECTURES` holds each variant's stem width
and blocks, stage by stage, as timm's `_gen_mobilenet_v4` arch definitions
and the paper's Tables 11-13 give them. Three block kinds:

* `conv`: a plain KxK convolution, BatchNorm, ReLU (Conv-S's first stages).
* `fused`: the fused inverted bottleneck (KxK expansion, 1x1 projection).
* `uib`: the Universal Inverted Bottleneck. Its optional depthwise
  convolutions before (`start`) and after (`mid`) the 1x1 expansion give
  the four forms: ExtraDW (both), IB (mid only), ConvNext-like (start
  only) and FFN (neither).

A residual joins a block's input and output where the shapes allow (stride
1, same width), except for `conv` blocks. The head is V4's: the last block
(a 1x1 convolution to 960) -> global average pool -> 1x1 convolution to
1280 (no bias) with BatchNorm and ReLU -> classifier.

Channels follow timm: each block's output width is `make_divisible(c *
alpha, 8)`, an expansion's width `make_divisible(in * ratio, 8)`; neither
falls more than 10% below the exact product. The stem keeps its width for
alpha < 1 and the 1280-wide head conv never scales (timm's `fix_stem` and
`num_features`).

Layer names: `stem_conv`, `block_<i>_<part>` with `i` counting blocks from
0 across stages (`block_3_expand`, `block_3_dw_mid_bn`, `block_3_add`),
then `conv_head`, `conv_head_bn`, `predictions`. Stride-2 layers pad
explicitly (`<name>_pad`, k//2 on each side, then a 'valid' convolution) as
PyTorch does, so the graph is timm's to the pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

from mobilenets.errors import MobilenetsError
from mobilenets.specs import ModelSpec

HEAD_WIDTH = 1280  # V4's head convolution after the pool (not scaled by alpha)


@dataclass(frozen=True)
class Block:
    """One row of a block table (`repeat` rows alike; only the first strides)."""

    kind: str  # "conv", "fused" or "uib"
    out: int
    stride: int = 1
    kernel: int = 3  # conv / fused: the KxK convolution
    start: int = 0  # uib: depthwise kernel before the expansion (0: none)
    mid: int = 0  # uib: depthwise kernel after the expansion (0: none)
    expand: float = 1.0
    repeat: int = 1

    @property
    def form(self) -> str:
        """The UIB form (`ExtraDW`, `IB`, `ConvNext`, `FFN`), else the kind."""
        if self.kind != "uib":
            return self.kind
        return {(True, True): "ExtraDW", (False, True): "IB",
                (True, False): "ConvNext", (False, False): "FFN"}[(bool(self.start), bool(self.mid))]


def conv(kernel: int, stride: int, out: int) -> Block:
    return Block("conv", out, stride, kernel)


def fused(kernel: int, stride: int, expand: float, out: int) -> Block:
    return Block("fused", out, stride, kernel, expand=expand)


def uib(start: int, mid: int, stride: int, expand: float, out: int, repeat: int = 1) -> Block:
    return Block("uib", out, stride, start=start, mid=mid, expand=expand, repeat=repeat)


@dataclass(frozen=True)
class Architecture:
    stem: int
    stages: tuple[tuple[Block, ...], ...]
    source: str


# timm `_gen_mobilenet_v4` (conv_small / conv_medium / conv_large), the
# paper's Tables 11-13. Stage comments give the input size at 224 px.
ARCHITECTURES = {
    "v4-conv-s": Architecture(stem=32, source="timm mobilenetv4_conv_small; paper Table 11", stages=(
        (conv(3, 2, 32), conv(1, 1, 32)),  # 112
        (conv(3, 2, 96), conv(1, 1, 64)),  # 56
        (uib(5, 5, 2, 3, 96), uib(0, 3, 1, 2, 96, repeat=4), uib(3, 0, 1, 4, 96)),  # 28
        (uib(3, 3, 2, 6, 128), uib(5, 5, 1, 4, 128), uib(0, 5, 1, 4, 128), uib(0, 5, 1, 3, 128),
         uib(0, 3, 1, 4, 128, repeat=2)),  # 14
        (conv(1, 1, 960),),  # 7
    )),
    "v4-conv-m": Architecture(stem=32, source="timm mobilenetv4_conv_medium; paper Table 12", stages=(
        (fused(3, 2, 4, 48),),
        (uib(3, 5, 2, 4, 80), uib(3, 3, 1, 2, 80)),
        (uib(3, 5, 2, 6, 160), uib(3, 3, 1, 4, 160, repeat=2), uib(3, 5, 1, 4, 160),
         uib(3, 3, 1, 4, 160), uib(3, 0, 1, 4, 160), uib(0, 0, 1, 2, 160), uib(3, 0, 1, 4, 160)),
        (uib(5, 5, 2, 6, 256), uib(5, 5, 1, 4, 256), uib(3, 5, 1, 4, 256, repeat=2),
         uib(0, 0, 1, 4, 256), uib(3, 0, 1, 4, 256), uib(3, 5, 1, 2, 256), uib(5, 5, 1, 4, 256),
         uib(0, 0, 1, 4, 256, repeat=2), uib(5, 0, 1, 2, 256)),
        (conv(1, 1, 960),),
    )),
    "v4-conv-l": Architecture(stem=24, source="timm mobilenetv4_conv_large; paper Table 13", stages=(
        (fused(3, 2, 4, 48),),
        (uib(3, 5, 2, 4, 96), uib(3, 3, 1, 4, 96)),
        (uib(3, 5, 2, 4, 192), uib(3, 3, 1, 4, 192, repeat=3), uib(3, 5, 1, 4, 192),
         uib(5, 3, 1, 4, 192, repeat=5), uib(3, 0, 1, 4, 192)),
        (uib(5, 5, 2, 4, 512, repeat=4), uib(5, 0, 1, 4, 512), uib(5, 3, 1, 4, 512),
         uib(5, 0, 1, 4, 512, repeat=2), uib(5, 3, 1, 4, 512), uib(5, 5, 1, 4, 512),
         uib(5, 0, 1, 4, 512, repeat=3)),
        (conv(1, 1, 960),),
    )),
}


def make_divisible(value: float, divisor: int = 8) -> int:
    """Nearest multiple of `divisor` (at least `divisor`), never 10% below `value`."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def blocks(spec: ModelSpec) -> list[Block]:
    """The spec's blocks in order, repeats unrolled, widths scaled by alpha."""
    arch = _architecture(spec)
    out = []
    for stage in arch.stages:
        for row in stage:
            for i in range(row.repeat):
                out.append(Block(row.kind, make_divisible(row.out * spec.alpha), row.stride if i == 0 else 1,
                                 row.kernel, row.start, row.mid, row.expand))
    return out


def _architecture(spec: ModelSpec) -> Architecture:
    if spec.family not in ARCHITECTURES:
        raise MobilenetsError(f"not a MobileNetV4 spec: {spec.name}")
    return ARCHITECTURES[spec.family]


def mobilenet_v4(spec: ModelSpec, input_tensor=None, input_shape=None, include_top: bool = True,
                 weights=None, classes: int = 1000, pooling: str | None = None,
                 dropout_rate: float = 0.2, name: str | None = None):
    """Build a MobileNetV4 as a flat functional model, as keras.applications builds V3.

    Args:
        spec: a `v4-conv-*` spec (family, width multiplier, input size).
        input_tensor: a tensor to build on (e.g. after a Rescaling layer).
        input_shape: the input shape when no tensor is given (default: the spec's).
        include_top: the V4 head and classifier; False ends at the last
            block's 960-wide feature map (as V3's `include_top=False` does).
        weights: None, or a path to a Keras weights file of this architecture.
        classes: classifier size.
        pooling: without the top, `"avg"` or `"max"` pools the feature map.
        dropout_rate: dropout before the classifier.
        name: the model name (default: the spec's familiar name).

    Returns:
        An uncompiled `keras.Model` taking inputs scaled to [-1, 1].
    """
    import keras
    from keras import layers

    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max'. Received pooling={pooling!r}")
    table = blocks(spec)
    if input_tensor is None:
        inputs = keras.Input(shape=input_shape or spec.input_shape)
        x = inputs
    else:
        inputs = keras.utils.get_source_inputs(input_tensor)[0]
        x = input_tensor
    stem = _architecture(spec).stem
    if spec.alpha > 1:  # timm keeps the stem's width for thinner models
        stem = make_divisible(stem * spec.alpha)
    x = _conv_bn(x, stem, 3, 2, "stem_conv")
    x = layers.ReLU(name="stem_conv_relu")(x)
    for i, block in enumerate(table):
        x = _block(x, block, f"block_{i}")
    if include_top:
        x = layers.GlobalAveragePooling2D(keepdims=True, name="avg_pool")(x)
        x = layers.Conv2D(HEAD_WIDTH, 1, use_bias=False, name="conv_head")(x)
        x = layers.BatchNormalization(epsilon=1e-5, name="conv_head_bn")(x)
        x = layers.ReLU(name="conv_head_relu")(x)
        x = layers.Flatten(name="flatten")(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name="dropout")(x)
        x = layers.Dense(classes, activation="softmax", name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    model = keras.Model(inputs, x, name=name or spec.keras_name)
    if weights is not None:
        model.load_weights(str(weights))
    return model


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, depthwise: bool = False):
    """KxK convolution (depthwise if asked) without bias, then BatchNorm."""
    from keras import layers

    padding = "same"
    if stride > 1:  # PyTorch's symmetric padding, not TensorFlow's bottom-right 'same'
        x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        padding = "valid"
    if depthwise:
        x = layers.DepthwiseConv2D(kernel, stride, padding, use_bias=False, name=name)(x)
    else:
        x = layers.Conv2D(filters, kernel, stride, padding, use_bias=False, name=name)(x)
    return layers.BatchNormalization(epsilon=1e-5, name=f"{name}_bn")(x)


def _block(x, block: Block, name: str):
    from keras import layers

    relu = layers.ReLU
    inputs = x
    width = x.shape[-1]
    if block.kind == "conv":
        x = _conv_bn(x, block.out, block.kernel, block.stride, f"{name}_conv")
        return relu(name=f"{name}_conv_relu")(x)
    if block.kind == "fused":
        x = _conv_bn(x, make_divisible(width * block.expand), block.kernel, block.stride, f"{name}_expand")
        x = relu(name=f"{name}_expand_relu")(x)
    else:
        if block.start:  # stride here only when there is no middle depthwise
            x = _conv_bn(x, width, block.start, 1 if block.mid else block.stride, f"{name}_dw_start",
                         depthwise=True)
        x = _conv_bn(x, make_divisible(width * block.expand), 1, 1, f"{name}_expand")
        x = relu(name=f"{name}_expand_relu")(x)
        if block.mid:
            x = _conv_bn(x, None, block.mid, block.stride, f"{name}_dw_mid", depthwise=True)
            x = relu(name=f"{name}_dw_mid_relu")(x)
        elif not block.start and block.stride > 1:
            raise MobilenetsError(f"{name}: a UIB without depthwise convolutions cannot stride")
    x = _conv_bn(x, block.out, 1, 1, f"{name}_project")
    if block.stride == 1 and width == block.out:
        x = layers.Add(name=f"{name}_add")([inputs, x])
    return x
