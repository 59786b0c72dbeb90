"""TFLite Support's standard metadata (`TFLITE_METADATA`, `M001`) of an image classifier.

    from mobilenets.tflite.standard import ClassifierInfo, standard_metadata, write_metadata
    data = write_metadata(converted, ClassifierInfo("MobileNet v1-0.25-128", ["cat", "dog"]))
    standard_metadata(data)["outputs"][0]["files"]

Written and read by the schema's field slots, with the `flatbuffers`
package: tflite-support has no wheels for current Python.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from mobilenets.tflite.container import attach_files, embed_metadata, read_metadata, split_zip, text

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.0.0"  # the file identifier's own: no later field is used
LABELS_FILE = "labels.txt"

_RGB = 1  # ColorSpaceType
_FEATURE_PROPERTIES, _IMAGE_PROPERTIES = 1, 2  # ContentProperties union
_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union
_TENSOR_AXIS_LABELS = 2  # AssociatedFileType
# Value range of a tensor by its TFLite type: (min, max).
_RANGES = {"uint8": (0.0, 255.0), "int8": (-128.0, 127.0)}


@dataclass
class ClassifierInfo:
    """What the standard metadata of an image classifier says: names, one label
    per output, and the input's normalization (tensor = (pixel - mean) / std,
    one value or one per channel; the defaults are raw 0-255 pixels)."""

    name: str
    labels: list[str]
    description: str = ""
    version: str = ""
    author: str = ""
    license: str = ""
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)



def write_metadata(tflite: bytes, info: ClassifierInfo, entries: dict[str, bytes] | None = None) -> bytes:
    """A classifier .tflite with standard metadata, `labels.txt` zipped on, and `entries`.

    Args:
        tflite: the converted model (one image input, one class output).
        info: what the metadata says.
        entries: further named entries (ours: `LABELS_KEY`, `CONFIG_KEY`).
    """
    from ai_edge_litert import schema_py_generated as fb

    model = fb.Model.GetRootAs(split_zip(bytes(tflite))[0], 0)
    graph = model.Subgraphs(0)
    image, scores = graph.Tensors(graph.Inputs(0)), graph.Tensors(graph.Outputs(0))
    shape = image.ShapeAsNumpy()
    meta = _build(info, _dtype(image.Type()), _dtype(scores.Type()), int(shape[1]), int(shape[2]))
    data = embed_metadata(tflite, {METADATA_NAME: meta, **(entries or {})})
    return attach_files(data, {LABELS_FILE: ("\n".join(info.labels) + "\n").encode("utf-8")})


def _dtype(tensor_type: int) -> str:
    from ai_edge_litert import schema_py_generated as fb

    names = {v: k.lower() for k, v in vars(fb.TensorType).items() if not k.startswith("_")}
    return names.get(tensor_type, str(tensor_type))


def _build(info: ClassifierInfo, input_dtype: str, output_dtype: str, height: int, width: int) -> bytes:
    """The `M001` ModelMetadata flatbuffer (slots as in metadata_schema.fbs)."""
    import flatbuffers

    b = flatbuffers.Builder(1024)
    offset, byte, uint = b.PrependUOffsetTRelativeSlot, b.PrependUint8Slot, b.PrependUint32Slot

    def table(*fields):  # (slot, prepend, value); strings and vectors are made before the call
        b.StartObject(1 + max((slot for slot, _, _ in fields), default=-1))
        for slot, prepend, value in fields:
            prepend(slot, value, 0)
        return b.EndObject()

    def vector(items):
        b.StartVector(4, len(items), 4)
        for item in reversed(items):
            b.PrependUOffsetTRelative(item)
        return b.EndVector()

    def floats(values):
        return b.CreateNumpyVector(np.asarray(values, np.float32))

    def stats(lo, hi):  # Stats: max 0, min 1
        return table((0, offset, floats([hi])), (1, offset, floats([lo])))

    s = b.CreateString
    mean = info.mean
    if input_dtype == "int8":  # the tensor takes pixel - 128
        mean = tuple(m + 128.0 for m in mean)
    pixels = "uint8 pixel values" if input_dtype == "uint8" else (
        "pixel values - 128 (int8)" if input_dtype == "int8" else f"pixel values 0-255 as {input_dtype}")
    # ImageSize: width 0, height 1; ImageProperties: color_space 0, default_size 1.
    image_props = table((0, byte, _RGB), (1, offset, table((0, uint, width), (1, uint, height))))
    # NormalizationOptions: mean 0, std 1; ProcessUnit: options_type 0, options 1.
    unit = table((0, byte, _NORMALIZATION_OPTIONS),
                 (1, offset, table((0, offset, floats(mean)), (1, offset, floats(info.std)))))
    # Content: content_properties_type 0, content_properties 1.
    # TensorMetadata: name 0, description 1, content 3, process_units 4, stats 5, associated_files 6.
    image = table((0, offset, s("image")),
                  (1, offset, s(f"RGB image, {width}x{height}, raw {pixels} (no scaling needed).")),
                  (3, offset, table((0, byte, _IMAGE_PROPERTIES), (1, offset, image_props))),
                  (4, offset, vector([unit])),
                  (5, offset, stats(*_RANGES.get(input_dtype, (0.0, 255.0)))))
    # AssociatedFile: name 0, description 1, type 2.
    labels = table((0, offset, s(LABELS_FILE)),
                   (1, offset, s("Labels for the categories the model recognizes, one per line.")),
                   (2, byte, _TENSOR_AXIS_LABELS))
    feature = table()
    scores = table((0, offset, s("probability")),
                   (1, offset, s(f"Probabilities of the {len(info.labels)} labels respectively.")),
                   (3, offset, table((0, byte, _FEATURE_PROPERTIES), (1, offset, feature))),
                   (5, offset, stats(*_RANGES.get(output_dtype, (0.0, 1.0)))),
                   (6, offset, vector([labels])))
    # SubGraphMetadata: input_tensor_metadata 2, output_tensor_metadata 3.
    graph = table((2, offset, vector([image])), (3, offset, vector([scores])))
    # ModelMetadata: name 0, description 1, version 2, subgraph_metadata 3, author 4,
    # license 5, min_parser_version 7.
    texts = [s(t) for t in (info.name, info.description, info.version, info.author, info.license)]
    root = table((0, offset, texts[0]), (1, offset, texts[1]), (2, offset, texts[2]),
                 (3, offset, vector([graph])), (4, offset, texts[3]), (5, offset, texts[4]),
                 (7, offset, s(MIN_PARSER_VERSION)))
    b.Finish(root, file_identifier=METADATA_IDENTIFIER)
    return bytes(b.Output())


class _Table:
    """Read access to one flatbuffer table by field slot (absent fields: None, 0 or [])."""

    def __init__(self, buf: bytearray, pos: int):
        from flatbuffers.table import Table

        self.t = Table(buf, pos)

    def _at(self, slot: int) -> int:
        return self.t.Offset(4 + 2 * slot)

    def str(self, slot: int) -> str | None:
        o = self._at(slot)
        return text(self.t.String(o + self.t.Pos)) if o else None

    def byte(self, slot: int) -> int:
        from flatbuffers.number_types import Uint8Flags

        o = self._at(slot)
        return int(self.t.Get(Uint8Flags, o + self.t.Pos)) if o else 0

    def table(self, slot: int) -> "_Table | None":
        o = self._at(slot)
        return _Table(self.t.Bytes, self.t.Indirect(o + self.t.Pos)) if o else None

    def tables(self, slot: int) -> list["_Table"]:
        o, t = self._at(slot), self.t
        return [_Table(t.Bytes, t.Indirect(t.Vector(o) + 4 * i)) for i in range(t.VectorLen(o))] if o else []

    def floats(self, slot: int) -> list[float] | None:
        from flatbuffers.number_types import Float32Flags

        o = self._at(slot)
        return [float(v) for v in self.t.GetVectorAsNumpy(Float32Flags, o)] if o else None


def parse_metadata(buf: bytes) -> dict:
    """The fields of an `M001` ModelMetadata flatbuffer that classifiers use.

    Args:
        buf: the `TFLITE_METADATA` entry.

    Returns:
        `{"name", "description", "version", "author", "license",
        "min_parser_version", "inputs": [...], "outputs": [...]}`; each tensor
        `{"name", "color_space", "mean", "std", "min", "max", "files":
        [{"name", "type"}]}`.

    Raises:
        ValueError: not an `M001` flatbuffer.
    """
    import flatbuffers

    if len(buf) < 8 or buf[4:8] != METADATA_IDENTIFIER:
        raise ValueError("not a TFLite Metadata flatbuffer (no M001 identifier)")
    buf = bytearray(buf)
    root = _Table(buf, flatbuffers.encode.Get(flatbuffers.packer.uoffset, buf, 0))
    out = {k: root.str(slot) for k, slot in (("name", 0), ("description", 1), ("version", 2),
                                             ("author", 4), ("license", 5), ("min_parser_version", 7))}
    graph = (root.tables(3) or [None])[0]
    out["inputs"] = [_tensor(t) for t in graph.tables(2)] if graph else []
    out["outputs"] = [_tensor(t) for t in graph.tables(3)] if graph else []
    return out


def _tensor(t: _Table) -> dict:
    out = {"name": t.str(0), "color_space": None, "mean": None, "std": None}
    content = t.table(3)
    if content and content.byte(0) == _IMAGE_PROPERTIES:
        out["color_space"] = {1: "RGB", 2: "GRAYSCALE"}.get(content.table(1).byte(0), "UNKNOWN")
    for unit in t.tables(4):
        if unit.byte(0) == _NORMALIZATION_OPTIONS:
            out["mean"], out["std"] = unit.table(1).floats(0), unit.table(1).floats(1)
    stats = t.table(5)
    out["max"], out["min"] = (stats.floats(0), stats.floats(1)) if stats else (None, None)
    out["files"] = [{"name": f.str(0), "type": "TENSOR_AXIS_LABELS" if f.byte(2) == _TENSOR_AXIS_LABELS
                     else f.byte(2)} for f in t.tables(6)]
    return out


def standard_metadata(tflite: "bytes | str | os.PathLike") -> dict | None:
    """`parse_metadata` of a file's `TFLITE_METADATA` entry; None without one (or unreadable)."""
    buf = read_metadata(tflite).get(METADATA_NAME)
    try:
        return parse_metadata(buf) if buf else None
    except Exception:  # noqa: BLE001 - a damaged entry is no metadata we can use
        return None

