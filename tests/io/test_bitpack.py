import numpy as np
import pytest

from vqfuse.io.bitpack import pack_bits, packed_size, unpack_bits

SIZES = [0, 1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 63, 100, 1001]


@pytest.mark.parametrize("bits", range(1, 17))
def test_round_trip_and_exact_size(bits):
    rng = np.random.default_rng(bits)
    for n in SIZES:
        values = rng.integers(0, 1 << bits, size=n, dtype=np.int64)
        data = pack_bits(values, bits)
        assert len(data) == (n * bits + 7) // 8 == packed_size(n, bits)
        out = unpack_bits(data, bits, n)
        assert out.dtype == np.int64 and out.shape == (n,)
        np.testing.assert_array_equal(out, values)


@pytest.mark.parametrize("bits", [1, 7, 10, 16, 17, 24, 31, 32, 33, 48, 63])
def test_extreme_values(bits):
    values = np.array([0, (1 << bits) - 1, 1, (1 << bits) - 2 if bits > 1 else 0] * 3, dtype=np.int64)
    np.testing.assert_array_equal(unpack_bits(pack_bits(values, bits), bits, values.size), values)


def test_bit_order_is_lsb_first():
    assert pack_bits(np.array([1, 0, 1]), 1) == bytes([0b101])
    assert pack_bits(np.array([0x3FF]), 10) == b"\xff\x03"
    # 3 and 1 at 4 bits: first value in the low nibble
    assert pack_bits(np.array([3, 1]), 4) == bytes([0x13])
    # 10-bit values straddle bytes: 1 | (2 << 10)
    assert pack_bits(np.array([1, 2]), 10) == (1 | 2 << 10).to_bytes(3, "little")


def test_padding_bits_are_zero():
    data = pack_bits(np.array([7]), 3)
    assert data == b"\x07"


def test_multidimensional_input_is_flattened_in_c_order():
    values = np.arange(12).reshape(3, 4)
    np.testing.assert_array_equal(unpack_bits(pack_bits(values, 4), 4, 12), values.ravel())


def test_accepts_bytes_like_and_extra_trailing_bytes():
    values = np.array([5, 6, 7])
    data = pack_bits(values, 3) + b"\xff"
    np.testing.assert_array_equal(unpack_bits(bytearray(data), 3, 3), values)
    np.testing.assert_array_equal(unpack_bits(np.frombuffer(data, np.uint8), 3, 3), values)


def test_is_vectorised_fast_enough():
    import time

    values = np.random.default_rng(0).integers(0, 1024, size=1_000_000)
    start = time.perf_counter()
    out = unpack_bits(pack_bits(values, 10), 10, values.size)
    assert time.perf_counter() - start < 5.0  # a per-element Python loop takes far longer
    np.testing.assert_array_equal(out, values)


@pytest.mark.parametrize("values,bits", [([-1], 4), ([16], 4), ([2], 1), ([0.5], 4)])
def test_rejects_values_that_do_not_fit(values, bits):
    with pytest.raises(ValueError):
        pack_bits(np.array(values), bits)


@pytest.mark.parametrize("bits", [0, -1, 64, 1.5, True])
def test_rejects_bad_bit_widths(bits):
    with pytest.raises(ValueError):
        pack_bits(np.array([0]), bits)
    with pytest.raises(ValueError):
        unpack_bits(b"\x00", bits, 1)


def test_unpack_rejects_short_buffer():
    with pytest.raises(ValueError, match="need 2 bytes"):
        unpack_bits(b"\x00", 10, 1)
