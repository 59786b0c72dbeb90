"""A .tflite's named metadata entries and the zip of files appended to it.

    from mobilenets.tflite.container import embed_metadata, read_metadata
    data = embed_metadata(converted, {"mobilenets_labels": b"cat\\ndog\\n"})
    read_metadata(data)["mobilenets_labels"]
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np


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
    reuse = {text(m.name): m.buffer for m in (model.metadata or []) if text(m.name) in entries}
    model.metadata = [m for m in (model.metadata or []) if text(m.name) not in entries]
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
            out[text(meta.Name())] = data.tobytes() if isinstance(data, np.ndarray) else b""
    except Exception:  # noqa: BLE001 - a damaged file simply has no metadata we can use
        return {}
    return out


def text(name) -> str:
    """A flatbuffer string (bytes) as text."""
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
