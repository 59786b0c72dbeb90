"""What a .tflite takes and carries, and how it is opened: labels, input range, interpreters.

    from mobilenets.tflite.reading import labels_in, open_interpreter
    labels, where = labels_in("model_int8.tflite")
"""

from __future__ import annotations

import os
from pathlib import Path

from mobilenets.env import first_line, quiet_native_stderr
from mobilenets.errors import MobilenetsError
from mobilenets.tflite.container import as_bytes, read_metadata, split_zip
from mobilenets.tflite.standard import standard_metadata

LABELS_KEY = "mobilenets_labels"
CONFIG_KEY = "mobilenets_config"
# The range of pixel values our exported models take.
PIXEL_RANGE = (0.0, 255.0)
# MobileNet's own input range: what a model without our `preprocess` layer expects.
MOBILENET_RANGE = (-1.0, 1.0)


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
