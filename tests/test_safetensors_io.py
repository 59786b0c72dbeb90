"""safetensors read and written with NumPy: files made by hand, every dtype, and the broken ones."""

import json
import struct

import numpy as np
import pytest

from mobilenets.errors import MobilenetsError
from mobilenets.safetensors_io import read_safetensors, write_safetensors


def handmade(path, entries, body: bytes, header_extra=None):
    """A file laid out by the format's description, not by our writer."""
    header = dict(entries, **(header_extra or {}))
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + body)
    return path


def test_reads_a_file_laid_out_by_hand(tmp_path):
    f32 = struct.pack("<4f", 1.5, -2.0, 0.25, 8.0)
    f16 = np.array([0.5, -3.0], "<f2").tobytes()
    bf16 = struct.pack("<2H", 0x3F80, 0xC040)  # 1.0, -3.0: a float32's top 16 bits
    i64 = struct.pack("<q", 12345)
    body = f32 + f16 + bf16 + i64
    o = np.cumsum([0, len(f32), len(f16), len(bf16), len(i64)])
    path = handmade(tmp_path / "m.safetensors", {
        "a.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [int(o[0]), int(o[1])]},
        "b": {"dtype": "F16", "shape": [2], "data_offsets": [int(o[1]), int(o[2])]},
        "c": {"dtype": "BF16", "shape": [2], "data_offsets": [int(o[2]), int(o[3])]},
        "bn.num_batches_tracked": {"dtype": "I64", "shape": [], "data_offsets": [int(o[3]), int(o[4])]},
    }, body, {"__metadata__": {"format": "pt"}})
    t = read_safetensors(path)
    assert set(t) == {"a.weight", "b", "c", "bn.num_batches_tracked"}  # metadata is not a tensor
    np.testing.assert_array_equal(t["a.weight"], [[1.5, -2.0], [0.25, 8.0]])
    assert t["b"].dtype == t["c"].dtype == np.float32  # half precision comes back as float32
    np.testing.assert_array_equal(t["b"], [0.5, -3.0])
    np.testing.assert_array_equal(t["c"], [1.0, -3.0])
    assert t["bn.num_batches_tracked"].shape == () and int(t["bn.num_batches_tracked"]) == 12345


def test_round_trip_of_every_kind(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {
        "conv.weight": rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
        "f64": rng.normal(size=(3,)),
        "count": np.array(7, np.int64),
        "mask": np.array([True, False]),
        "bytes": np.arange(5, dtype=np.uint8),
        "empty": np.zeros((0, 3), np.float32),
    }
    path = write_safetensors(tmp_path / "x.safetensors", tensors, metadata={"format": "pt"})
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    assert (8 + size) % 8 == 0 and json.loads(raw[8:8 + size])["__metadata__"] == {"format": "pt"}
    back = read_safetensors(path)
    for name, array in tensors.items():
        if array.dtype == np.float64:  # every float comes back as float32, what Keras takes
            assert back[name].dtype == np.float32
            array = array.astype(np.float32)
        np.testing.assert_array_equal(back[name], array)
        assert back[name].shape == array.shape and back[name].dtype == array.dtype


def test_f16_and_bf16_round_to_nearest(tmp_path):
    values = np.array([1.0, -2.5, 1 + 2**-8, 1 + 3 * 2**-8, 3.14159265, 1e-3], np.float32)
    write_safetensors(tmp_path / "h.safetensors", {"v": values}, dtype="F16")
    write_safetensors(tmp_path / "b.safetensors", {"v": values}, dtype="BF16")
    np.testing.assert_array_equal(read_safetensors(tmp_path / "h.safetensors")["v"],
                                  values.astype(np.float16).astype(np.float32))
    bf16 = read_safetensors(tmp_path / "b.safetensors")["v"]
    # 8 significant bits; ties go to the even neighbour (1 + 2^-8 -> 1, 1 + 3*2^-8 -> 1 + 2^-6).
    assert bf16[:4].tolist() == [1.0, -2.5, 1.0, 1 + 2**-6]
    assert np.all(np.abs(bf16 - values) <= np.abs(values) * 2**-8)  # half a unit in the last place
    header = json.loads((tmp_path / "b.safetensors").read_bytes()[8:].split(b"}}")[0] + b"}}")
    assert header["v"]["dtype"] == "BF16"


def _broken(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(MobilenetsError) as e:
        read_safetensors(path)
    message = str(e.value)
    assert "\n" not in message and str(path) in message
    return message


def test_broken_files_are_one_line(tmp_path):
    good = write_safetensors(tmp_path / "good.safetensors",
                             {"w": np.ones((8, 8), np.float32)}).read_bytes()
    size = int.from_bytes(good[:8], "little")
    assert "shorter than the 8-byte" in _broken(tmp_path, "tiny.safetensors", b"\x01\x02")
    assert "truncated" in _broken(tmp_path, "cut-header.safetensors", good[:8 + size // 2])
    assert "data_offsets [0, 256] outside the 100 data bytes" in _broken(
        tmp_path, "cut-data.safetensors", good[:8 + size + 100])
    assert "header is not JSON" in _broken(
        tmp_path, "garbage.safetensors", struct.pack("<Q", 4) + b"{{{{")
    assert "not a JSON object" in _broken(tmp_path, "list.safetensors", struct.pack("<Q", 2) + b"[]")

    def one(entry, body=b"\0" * 16):
        text = json.dumps({"w": entry}).encode()
        return struct.pack("<Q", len(text)) + text + body

    assert "has dtype 'F8_E4M3'" in _broken(tmp_path, "dtype.safetensors",
                                            one({"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}))
    assert "takes 32 bytes, not 16" in _broken(tmp_path, "shape.safetensors",
                                                one({"dtype": "F32", "shape": [8], "data_offsets": [0, 16]}))
    assert "outside the 16 data bytes" in _broken(tmp_path, "offsets.safetensors",
                                                  one({"dtype": "F32", "shape": [8], "data_offsets": [16, 48]}))
    assert "lacks dtype, shape or data_offsets" in _broken(tmp_path, "keys.safetensors",
                                                           one({"dtype": "F32", "shape": [4]}))
    with pytest.raises(MobilenetsError, match="cannot read .*missing.safetensors"):
        read_safetensors(tmp_path / "missing.safetensors")
