#!/usr/bin/env python3
"""Convert the MSD_musicnn and MTT_musicnn TF1 checkpoints of the `musicnn` wheel into the .npz files the
analysis loads (soniquebay_assets/models/musicnn/), without TensorFlow.

    pip download musicnn==0.1.0 --no-deps -d /tmp/musicnn-wheel   # its metadata pins a 2019 TensorFlow
    python scripts/convert_musicnn.py /tmp/musicnn-wheel/musicnn-0.1.0-py3-none-any.whl

A checkpoint is a `.index` file (a LevelDB-format SSTable mapping each variable name to a BundleEntryProto:
dtype, shape, offset and size in the data file) and a `.data-00000-of-00001` file of raw little-endian
tensors. Only the model's variables are kept (the Adam optimizer slots and the step counter are dropped).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import struct
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np

MODELS = ("MSD_musicnn", "MTT_musicnn")
OUT_DIR = Path(__file__).resolve().parent.parent / "soniquebay_assets" / "models" / "musicnn"
TABLE_MAGIC = 0xDB4775248B80FB57
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64}  # tensorflow DataType enum values


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _block(data: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """The (key, value) entries of one SSTable block (prefix-compressed keys, restart array at its end)."""
    if data[offset + size] != 0:
        raise ValueError("compressed SSTable block: TensorFlow bundles are written uncompressed")
    block = data[offset:offset + size]
    restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * restarts
    entries, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        entries.append((key, block[pos:pos + value_len]))
        pos += value_len
    return entries


def _fields(message: bytes) -> list[tuple[int, int | bytes]]:
    """Protobuf wire format: (field number, varint value or bytes) pairs; fixed32 fields as int."""
    out, pos = [], 0
    while pos < len(message):
        tag, pos = _varint(message, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(message, pos)
        elif wire == 2:
            length, pos = _varint(message, pos)
            value, pos = message[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = struct.unpack_from("<I", message, pos)[0], pos + 4
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", message, pos)[0], pos + 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.append((number, value))
    return out


def read_checkpoint(index: bytes, data: bytes) -> dict[str, np.ndarray]:
    """Every tensor of a single-shard TF checkpoint, by variable name."""
    if struct.unpack_from("<Q", index, len(index) - 8)[0] != TABLE_MAGIC:
        raise ValueError("not an SSTable (bad magic)")
    footer = index[-48:]
    _, pos = _varint(footer, 0)  # metaindex offset
    _, pos = _varint(footer, pos)
    index_offset, pos = _varint(footer, pos)
    index_size, pos = _varint(footer, pos)
    tensors: dict[str, np.ndarray] = {}
    for _, handle in _block(index, index_offset, index_size):
        offset, pos = _varint(handle, 0)
        size, _ = _varint(handle, pos)
        for key, value in _block(index, offset, size):
            if not key:
                continue  # the BundleHeaderProto
            entry = dict.fromkeys(("dtype", "offset", "size", "shard"), 0)
            shape: list[int] = []
            for number, field in _fields(value):
                if number == 1:
                    entry["dtype"] = field
                elif number == 2:
                    shape = [dict(_fields(dim)).get(1, 0) for n, dim in _fields(field) if n == 2]
                elif number == 3:
                    entry["shard"] = field
                elif number == 4:
                    entry["offset"] = field
                elif number == 5:
                    entry["size"] = field
            if entry["shard"] != 0 or entry["dtype"] not in DTYPES:
                raise ValueError(f"{key!r}: unsupported shard or dtype {entry}")
            raw = data[entry["offset"]:entry["offset"] + entry["size"]]
            tensors[key.decode()] = np.frombuffer(raw, dtype=np.dtype(DTYPES[entry["dtype"]]).newbyteorder("<")
                                                  ).reshape(shape).copy()
    return tensors


def model_variables(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inference variables: no optimizer slots, no step counter."""
    return {name: array.astype(np.float32) for name, array in sorted(tensors.items())
            if "Adam" not in name and not name.startswith(("beta1_power", "beta2_power", "global_step"))}


def convert(wheel: Path, out_dir: Path = OUT_DIR) -> dict[str, int]:
    """Write <model>.npz for each model and the wheel's licence; returns parameter counts."""
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        licence = next(n for n in names if n.endswith("LICENSE.md"))
        (out_dir / "LICENSE.md").write_text(
            "The MSD_musicnn and MTT_musicnn weights in this folder are converted from the musicnn 0.1.0 wheel\n"
            f"(PyPI, sha256 {digest}) by scripts/convert_musicnn.py. Its licence (ISC):\n\n"
            + archive.read(licence).decode())
        for model in MODELS:
            index = archive.read(f"musicnn/{model}/.index")
            data = archive.read(f"musicnn/{model}/.data-00000-of-00001")
            variables = model_variables(read_checkpoint(index, data))
            buffer = io.BytesIO()
            np.savez_compressed(buffer, **variables)
            (out_dir / f"{model}.npz").write_bytes(buffer.getvalue())
            counts[model] = int(sum(v.size for v in variables.values()))
            print(f"{model}: {len(variables)} variables, {counts[model]} parameters, "
                  f"crc32 {zlib.crc32(buffer.getvalue()):08x}")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="musicnn-0.1.0-py3-none-any.whl")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    convert(args.wheel, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
