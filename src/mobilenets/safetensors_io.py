"""safetensors files read and written with NumPy alone (no PyTorch, no `safetensors` package).

    tensors = read_safetensors("model.safetensors")   # {"conv_stem.weight": ndarray, ...}
    write_safetensors("out.safetensors", tensors, dtype="BF16")

The format (huggingface/safetensors): 8 bytes, the little-endian length N of
a JSON header; the header, `{name: {"dtype", "shape", "data_offsets": [begin,
end]}}` plus an optional `"__metadata__"` of strings; then the tensors' raw
little-endian bytes, offsets counted from the end of the header. Floats come
back as float32 (BF16 by shifting its 16 bits into a float32's top half, which
is exact), integers and booleans as they are. Written here rather than taken
from PyPI's `safetensors` because the format is this small and the package's
NumPy API would still be one more compiled dependency for one function.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from mobilenets.artifacts import atomic_path
from mobilenets.errors import MobilenetsError

# safetensors dtype name -> NumPy little-endian dtype (BF16 is read as raw uint16).
DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?",
}
_HEADER_LIMIT = 100_000_000  # the reference implementation refuses larger headers too


def read_safetensors(path: "str | os.PathLike") -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file, floats as float32.

    Raises:
        MobilenetsError: one line naming the file and what is wrong (missing,
            truncated, a header that is not JSON, a tensor whose bytes fall
            outside the file or do not fit its shape, an unknown dtype).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise MobilenetsError(f"cannot read {path}: {e.strerror or e}") from None

    def bad(why: str) -> MobilenetsError:
        return MobilenetsError(f"{path} is not a valid safetensors file: {why}")

    if len(data) < 8:
        raise bad(f"{len(data)} bytes, shorter than the 8-byte header length")
    size = int.from_bytes(data[:8], "little")
    if size > min(_HEADER_LIMIT, len(data) - 8):
        raise bad(f"header length {size} but {len(data) - 8} bytes follow (truncated?)")
    try:
        header = json.loads(data[8:8 + size].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise bad(f"the header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")
    header.pop("__metadata__", None)
    body = memoryview(data)[8 + size:]
    tensors = {}
    for name, entry in header.items():
        try:
            dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            shape = tuple(int(d) for d in shape)
        except (KeyError, TypeError, ValueError):
            raise bad(f"tensor {name!r} lacks dtype, shape or data_offsets: {entry!r}") from None
        if dtype not in DTYPES:
            raise bad(f"tensor {name!r} has dtype {dtype!r}; known: {', '.join(DTYPES)}")
        if not (isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end <= len(body)):
            raise bad(f"tensor {name!r} has data_offsets [{begin}, {end}] outside the "
                      f"{len(body)} data bytes (truncated?)")
        np_dtype = np.dtype(DTYPES[dtype])
        if min(shape, default=0) < 0 or end - begin != int(np.prod(shape)) * np_dtype.itemsize:
            raise bad(f"tensor {name!r} of shape {list(shape)} and dtype {dtype} takes "
                      f"{int(np.prod(shape)) * np_dtype.itemsize} bytes, not {end - begin}")
        array = np.frombuffer(body[begin:end], dtype=np_dtype).reshape(shape)
        if dtype == "BF16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        elif np_dtype.kind == "f":
            array = array.astype(np.float32)
        tensors[name] = array.copy()  # own the memory, native byte order
    return tensors


def write_safetensors(path: "str | os.PathLike", tensors: "dict[str, np.ndarray]",
                      dtype: str | None = None, metadata: "dict[str, str] | None" = None) -> Path:
    """Write tensors as a safetensors file, atomically.

    Args:
        path: the file to write.
        tensors: name -> array (float, integer or bool).
        dtype: store every floating tensor as this (`"F32"`, `"F16"`,
            `"BF16"`: rounded to nearest, ties to even); None keeps each
            array's own.
        metadata: the header's `__metadata__` (strings only, as the format says).
    """
    header: dict = {"__metadata__": dict(metadata)} if metadata else {}
    chunks, offset = [], 0
    names = {np.dtype(v).str: k for k, v in DTYPES.items() if k != "BF16"}
    for name, array in tensors.items():
        array = np.asarray(array)
        if array.dtype.kind == "f" and dtype is not None:
            if dtype == "BF16":
                bits = np.ascontiguousarray(array, dtype="<f4").view("<u4").astype(np.uint64)
                array = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")
                kind = "BF16"
            else:
                array = array.astype(DTYPES[dtype])
                kind = dtype
        else:
            array = array.astype(array.dtype.newbyteorder("<"))
            kind = names.get(array.dtype.str)
            if kind is None:
                raise MobilenetsError(f"cannot write tensor {name!r} of dtype {array.dtype} as safetensors")
        raw = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": kind, "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the reference writer pads the header to 8 bytes
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(len(text).to_bytes(8, "little"))
            f.write(text)
            for raw in chunks:
                f.write(raw)
    return Path(path)
