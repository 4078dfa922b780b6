"""Bit packing of token indices: each value in ``bits`` bits, LSB-first, the payload of a ``.vqf`` file."""

from __future__ import annotations

import numpy as np

MAX_BITS = 63


def _unsigned_dtype(bits: int) -> np.dtype:
    """Smallest little-endian unsigned dtype holding ``bits`` bits."""
    for nbytes in (1, 2, 4, 8):
        if bits <= 8 * nbytes:
            return np.dtype(f"<u{nbytes}")
    raise ValueError(f"bits must be at most 64, got {bits}")


def _check_bits(bits: int) -> None:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= MAX_BITS:
        raise ValueError(f"bits must be an int in [1, {MAX_BITS}], got {bits!r}")


def packed_size(count: int, bits: int) -> int:
    """Bytes needed for ``count`` values at ``bits`` bits each: ``ceil(count * bits / 8)``."""
    return (count * bits + 7) // 8


def pack_bits(values: np.ndarray, bits: int) -> bytes:
    """Pack non-negative integers (flattened in C order) into ``bits`` bits each, LSB-first.

    Value ``i`` occupies stream bits ``[i*bits, (i+1)*bits)``, least significant bit first; stream
    bit ``j`` is bit ``j % 8`` of byte ``j // 8``. Padding bits in the last byte are zero.
    """
    _check_bits(bits)
    arr = np.asarray(values)
    if arr.dtype.kind not in "iub":
        raise ValueError(f"can only pack integer values, got dtype {arr.dtype}")
    flat = arr.reshape(-1).astype(np.int64, copy=False)
    if flat.size and (flat.min() < 0 or flat.max() >= (1 << bits)):
        raise ValueError(
            f"values must lie in [0, {1 << bits}) to pack at {bits} bits, got min {flat.min()} max {flat.max()}"
        )
    dtype = _unsigned_dtype(bits)
    as_bytes = flat.astype(dtype).view(np.uint8).reshape(flat.size, dtype.itemsize)
    bit_matrix = np.unpackbits(as_bytes, axis=1, bitorder="little")[:, :bits]
    return np.packbits(bit_matrix.reshape(-1), bitorder="little").tobytes()


def unpack_bits(data: bytes | bytearray | memoryview | np.ndarray, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: read ``count`` values of ``bits`` bits; returns int64 of shape (count,)."""
    _check_bits(bits)
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if isinstance(data, np.ndarray):
        buf = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
    else:
        buf = np.frombuffer(data, dtype=np.uint8)
    need = packed_size(count, bits)
    if buf.size < need:
        raise ValueError(f"need {need} bytes for {count} values at {bits} bits, got {buf.size}")
    dtype = _unsigned_dtype(bits)
    bit_matrix = np.zeros((count, 8 * dtype.itemsize), dtype=np.uint8)
    bit_matrix[:, :bits] = np.unpackbits(buf[:need], count=count * bits, bitorder="little").reshape(count, bits)
    as_bytes = np.packbits(bit_matrix, axis=1, bitorder="little")
    return as_bytes.view(dtype).reshape(count).astype(np.int64)


__all__ = ["MAX_BITS", "packed_size", "pack_bits", "unpack_bits"]
