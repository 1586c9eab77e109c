"""Minimal safetensors read/write with numpy, for NormLab's PyTorch parity scripts (the
`safetensors` Python package is not a Debian package). Format: 8-byte little-endian header
length, JSON header {name: {dtype, shape, data_offsets}}, then the raw little-endian data.

BF16 (numpy has no bfloat16): `save` writes a tensor as BF16 when it is wrapped in `BF16(array)`
(float32 values rounded to nearest, ties to even, onto the upper 16 bits of their float32 bits);
`load` returns BF16 tensors widened exactly to float32 (`load(path, bf16="raw")` gives the raw
uint16 bit patterns instead). Every other dtype reads and writes as before."""
import json
import struct

import numpy as np

_DTYPES = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I8": np.int8, "U8": np.uint8, "I64": np.int64, "F64": np.float64}
_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}


class BF16:
    """A tensor to be stored as BF16: `BF16(values)` rounds float values to bfloat16 (RNE)."""

    def __init__(self, values):
        self.bits = bf16_bits(values)

    @property
    def shape(self):
        return self.bits.shape


def bf16_bits(values):
    """float values -> uint16 bfloat16 bit patterns, rounded to nearest, ties to even (NaN stays NaN)."""
    f = np.ascontiguousarray(np.asarray(values, dtype=np.float32))
    u = f.view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(f)
    if nan.any():
        r[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)  # keep a quiet NaN
    return r


def bf16_to_f32(bits):
    """uint16 bfloat16 bit patterns -> float32 (exact)."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def save(path, tensors, metadata=None):
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        if isinstance(t, BF16):
            dtype, data = "BF16", t.bits.astype("<u2").tobytes()
        else:
            arr = np.ascontiguousarray(t)
            dtype, data = _NAMES[arr.dtype], arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))


def load(path, bf16="f32"):
    """{name: numpy array}; BF16 tensors as float32 (bf16="f32") or raw uint16 bits (bf16="raw")."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    header.pop("__metadata__", None)
    base = 8 + n
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        if info["dtype"] == "BF16":
            bits = np.frombuffer(raw[base + b : base + e], dtype="<u2").reshape(info["shape"]).copy()
            out[name] = bits if bf16 == "raw" else bf16_to_f32(bits)
        else:
            out[name] = np.frombuffer(raw[base + b : base + e], dtype=_DTYPES[info["dtype"]]).reshape(info["shape"]).copy()
    return out
