"""The .tflite file contract: TFLite Metadata, our own entries, the labels zip.

    data = write_metadata(converted, ClassifierInfo("MobileNet v1-0.25-128", ["cat", "dog"]),
                          {LABELS_KEY: b"cat\\ndog\\n"})

A .tflite flatbuffer (`TFL3`) has named metadata entries. `TFLITE_METADATA`
is TFLite Support's standard metadata (`metadata_schema.fbs`, identifier
`M001`), read by MediaPipe Tasks, the LiteRT Support Library and Android
Studio: names, the input's image properties and normalization, the output's
labels file. `mobilenets_labels` (a label per line) and `mobilenets_config`
(JSON) are ours, and all that files exported before the standard metadata
have. Other entries (the converter's) are kept as they are.

The labels file is packed as TFLite Support's MetadataPopulator packs it: a
zip archive appended to the flatbuffer, offsets counted from the start of the
file. Flatbuffer readers ignore trailing bytes but re-packing drops them, so
`embed_metadata` re-attaches the archive. Only the tables a classifier needs
are written and read, by the schema's field slots; none is newer than schema
1.0.0, hence `min_parser_version` 1.0.0.

The contract also says what the input takes: our files take raw pixels
(`PIXEL_RANGE`), a model without our `preprocess` layer takes MobileNet's
`MOBILENET_RANGE`; and how a file is opened (`open_interpreter` to run it,
`graph_interpreter` to read its tensors). export writes files to this
contract and predict, profile and benchmark read them by it, so none of them
needs another's module for it.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mobilenets.env import first_line, quiet_native_stderr
from mobilenets.errors import MobilenetsError

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.0.0"  # the file identifier's own: no later field is used
LABELS_FILE = "labels.txt"
LABELS_KEY = "mobilenets_labels"
CONFIG_KEY = "mobilenets_config"
# The range of pixel values our exported models take.
PIXEL_RANGE = (0.0, 255.0)
# MobileNet's own input range: what a model without our `preprocess` layer expects.
MOBILENET_RANGE = (-1.0, 1.0)
# Enum values of metadata_schema.fbs.
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


# --------------------------------------------------------------- entries and the zip


def as_bytes(tflite: "bytes | str | os.PathLike") -> bytes:
    """The model bytes of `tflite` (bytes, or a path to read)."""
    return Path(tflite).read_bytes() if isinstance(tflite, (str, os.PathLike)) else bytes(tflite)


def split_zip(tflite: bytes) -> tuple[bytes, dict[str, bytes]]:
    """`(flatbuffer, {name: bytes})`: model bytes split from their appended zip (none: `{}`)."""
    try:
        with zipfile.ZipFile(io.BytesIO(tflite)) as z:
            infos = z.infolist()
            start = min((i.header_offset for i in infos), default=-1)
            if start < 8 or tflite[start:start + 4] != b"PK\x03\x04":
                return tflite, {}
            return tflite[:start], {i.filename: z.read(i) for i in infos}
    except (zipfile.BadZipFile, OSError, ValueError):
        return tflite, {}


def attach_files(tflite: bytes, files: dict[str, bytes]) -> bytes:
    """Model bytes with `files` ({name: bytes}) as their appended zip, replacing any zip.

    Stored uncompressed with a fixed date: the same model gives the same bytes.
    """
    out = io.BytesIO()
    out.write(split_zip(tflite)[0])
    if not files:
        return out.getvalue()
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as z:
        for name, data in files.items():
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return out.getvalue()


def embed_metadata(tflite: bytes, entries: dict[str, bytes]) -> bytes:
    """Add (or replace) named metadata entries in a .tflite flatbuffer.

    Args:
        tflite: the model bytes.
        entries: metadata name -> bytes (e.g. `LABELS_KEY` -> labels text).

    Returns:
        The new model bytes; tensors, ops, other metadata and the appended
        zip of associated files are unchanged.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    flat, files = split_zip(bytes(tflite))
    model = fb.ModelT.InitFromPackedBuf(bytearray(flat), 0)
    # A replaced entry keeps its buffer: the file does not grow by an orphan each time.
    reuse = {_text(m.name): m.buffer for m in (model.metadata or []) if _text(m.name) in entries}
    model.metadata = [m for m in (model.metadata or []) if _text(m.name) not in entries]
    for name, data in entries.items():
        buffer = fb.BufferT()
        buffer.data = np.frombuffer(bytes(data), dtype=np.uint8)
        if name in reuse:
            model.buffers[reuse[name]] = buffer
        else:
            model.buffers.append(buffer)
        meta = fb.MetadataT()
        meta.name = name
        meta.buffer = reuse.get(name, len(model.buffers) - 1)
        model.metadata.append(meta)
    builder = flatbuffers.Builder(len(flat) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return attach_files(bytes(builder.Output()), files)


def read_metadata(tflite: "bytes | str | os.PathLike") -> dict[str, bytes]:
    """`{name: bytes}` of a .tflite's (bytes or path) metadata entries; `{}` if unreadable."""
    from ai_edge_litert import schema_py_generated as fb

    buf = as_bytes(tflite)
    out = {}
    try:
        model = fb.Model.GetRootAs(buf, 0)
        for i in range(model.MetadataLength()):
            meta = model.Metadata(i)
            data = model.Buffers(meta.Buffer()).DataAsNumpy()
            out[_text(meta.Name())] = data.tobytes() if isinstance(data, np.ndarray) else b""
    except Exception:  # noqa: BLE001 - a damaged file simply has no metadata we can use
        return {}
    return out


def _text(name) -> str:
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)


# --------------------------------------------------------------- standard metadata


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
        return _text(self.t.String(o + self.t.Pos)) if o else None

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


def labels_in(tflite: "bytes | str | os.PathLike") -> tuple[list[str] | None, str | None]:
    """The labels a file carries and where they were found.

    Our `mobilenets_labels` entry first (what every file we exported has),
    then the standard metadata's TENSOR_AXIS_LABELS file, then any `.txt`
    (preferably one named like labels) in the appended zip.

    Returns:
        `(labels, source)`; `(None, None)` when the file has none.
    """
    data = as_bytes(tflite)
    entries = read_metadata(data)
    if LABELS_KEY in entries:
        return _lines(entries[LABELS_KEY]), LABELS_KEY
    files = split_zip(data)[1]
    meta = standard_metadata(data) or {}
    named = [f["name"] for t in meta.get("outputs", []) for f in t["files"]
             if f["type"] == "TENSOR_AXIS_LABELS"]
    texts = [n for n in files if n.lower().endswith(".txt")]
    for name in [n for n in named if n in files] + [n for n in texts if "label" in n.lower()] + texts:
        labels = _lines(files[name])
        if labels:
            return labels, name
    return None, None


def _lines(data: bytes) -> list[str]:
    return [ln.strip() for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]


# --------------------------------------------------------------- input range and interpreters


def parse_range(text: "str | tuple | None") -> tuple[float, float] | None:
    """An input range such as `"-1,1"`, `"0,1"` or `"0,255"`.

    Args:
        text: two comma-separated numbers, a pair, or None.
    """
    if text is None:
        return None
    try:
        lo, hi = (float(v) for v in (text.split(",") if isinstance(text, str) else text))
    except (TypeError, ValueError):
        raise MobilenetsError(f"--input-range must be LOW,HIGH such as -1,1 or 0,255. "
                              f"Received {text!r}") from None
    if not hi > lo:
        raise MobilenetsError(f"--input-range needs LOW < HIGH. Received {text!r}")
    return (lo, hi)


def open_interpreter(path: "str | os.PathLike", threads: int | None = None):
    """A LiteRT interpreter with tensors allocated, or one clear line.

    Args:
        path: the .tflite file.
        threads: `num_threads` (None: LiteRT's default).
    """
    from ai_edge_litert.interpreter import Interpreter

    path = Path(path)
    if not path.is_file():
        raise MobilenetsError(f"no such model file: {path}")
    with open(path, "rb") as f:
        head = f.read(8)
    if head[4:8] != b"TFL3":
        raise MobilenetsError(f"not a TFLite model (no TFL3 identifier): {path}")
    if threads is not None and threads < 1:
        raise MobilenetsError(f"--threads must be >= 1. Received {threads}")
    try:
        with quiet_native_stderr():  # LiteRT's "INFO: Created ... XNNPACK delegate" line
            interp = Interpreter(model_path=str(path), num_threads=threads)
            interp.allocate_tensors()
    except Exception as e:  # noqa: BLE001 - truncated or corrupt flatbuffers
        raise MobilenetsError(f"cannot load TFLite model {path}: {first_line(e, limit=200)}") from None
    return interp


def graph_interpreter(tflite: bytes):
    """An interpreter that reads a model's tensors and ops as the file has them.

    Built without the default delegates (XNNPACK), so the ops read are the
    file's own. Tensors are not allocated.

    Args:
        tflite: the model bytes.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    return Interpreter(model_content=tflite,
                       experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
