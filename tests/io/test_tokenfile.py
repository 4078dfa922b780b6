import json
import struct
import zlib

import numpy as np
import pytest
import torch

from vqfuse.errors import ModelMismatchError, TokenFileError
from vqfuse.io.tokenfile import MAGIC, TokenFile, check_model, decode_tokens, encode_tokens, read_tokens, write_tokens


def _image_tokens(seed: int = 0) -> TokenFile:
    idx = torch.randint(0, 1024, (16, 16), generator=torch.Generator().manual_seed(seed))
    return TokenFile(idx, "vqgan-f16-1024", "image", 1024, {"image_size": [256, 256]})


def _audio_tokens() -> TokenFile:
    idx = np.random.default_rng(1).integers(0, 1024, size=(4, 123))
    return TokenFile(idx, "rvq-audio-24k", "audio", 1024, {"sample_rate": 24000, "length": 39360})


def _split(data: bytes):
    """Parse the documented layout by hand."""
    magic, version, hlen = struct.unpack_from("<4sBI", data)
    header = json.loads(data[9 : 9 + hlen].decode("utf-8"))
    payload = data[9 + hlen : -4]
    (crc,) = struct.unpack("<I", data[-4:])
    return magic, version, header, payload, crc


@pytest.fixture
def image_file(tmp_path):
    path = tmp_path / "img.vqf"
    write_tokens(path, _image_tokens())
    return path


def test_image_round_trip(image_file):
    original = _image_tokens()
    tf = read_tokens(image_file)
    assert isinstance(tf.indices, torch.Tensor) and tf.indices.dtype == torch.int64
    assert torch.equal(tf.indices, original.indices)
    assert (tf.model_id, tf.modality, tf.codebook_size) == ("vqgan-f16-1024", "image", 1024)
    assert tf.meta == {"image_size": [256, 256]}
    assert tf.bits == 10 and tf.shape == (16, 16)


def test_audio_residual_round_trip(tmp_path):
    original = _audio_tokens()
    write_tokens(tmp_path / "a.vqf", original)
    tf = read_tokens(tmp_path / "a.vqf")
    assert tf.shape == (4, 123)
    np.testing.assert_array_equal(tf.indices.numpy(), original.indices)
    assert tf.meta == original.meta


def test_layout_matches_spec(image_file):
    data = image_file.read_bytes()
    magic, version, header, payload, crc = _split(data)
    assert magic == MAGIC == b"VQFT" and version == 1
    assert header == {
        "model_id": "vqgan-f16-1024",
        "modality": "image",
        "shape": [16, 16],
        "codebook_size": 1024,
        "bits": 10,
        "meta": {"image_size": [256, 256]},
    }
    assert len(payload) == 16 * 16 * 10 // 8
    assert crc == zlib.crc32(data[:-4])


def test_per_stage_codebook_sizes(tmp_path):
    idx = np.array([[0, 3, 2], [0, 7, 5]])
    tf = TokenFile(idx, "m", "audio", [4, 8], {})
    write_tokens(tmp_path / "s.vqf", tf)
    back = read_tokens(tmp_path / "s.vqf")
    assert back.codebook_size == [4, 8] and back.bits == 3
    np.testing.assert_array_equal(back.indices.numpy(), idx)
    with pytest.raises(ValueError, match="outside"):
        encode_tokens(TokenFile(np.array([[4, 0], [0, 0]]), "m", "audio", [4, 8], {}))
    with pytest.raises(ValueError, match="one entry per row"):
        encode_tokens(TokenFile(idx, "m", "audio", [4, 8, 8], {}))


@pytest.mark.parametrize("k,bits", [(1, 1), (2, 1), (3, 2), (256, 8), (257, 9), (1024, 10), (65536, 16)])
def test_bits_is_ceil_log2(k, bits):
    data = encode_tokens(TokenFile(np.full((3,), k - 1), "m", "x", k, {}))
    assert _split(data)[2]["bits"] == bits


def test_empty_and_scalar_shapes(tmp_path):
    for idx in (np.zeros((4, 0), np.int64), np.array(5)):
        write_tokens(tmp_path / "e.vqf", TokenFile(idx, "m", "audio", 8, {}))
        back = read_tokens(tmp_path / "e.vqf")
        assert back.shape == idx.shape
        np.testing.assert_array_equal(back.indices.numpy(), idx)


@pytest.mark.parametrize("bad", [-1, 1024, 5000])
def test_out_of_range_index_on_write_raises_and_writes_nothing(tmp_path, bad):
    idx = torch.zeros(4, 4, dtype=torch.long)
    idx[2, 3] = bad
    path = tmp_path / "bad.vqf"
    with pytest.raises(ValueError, match=r"position \[2, 3\]"):
        write_tokens(path, TokenFile(idx, "m", "image", 1024, {}))
    assert not path.exists()


def test_write_rejects_bad_content():
    ok = np.zeros((2, 2), np.int64)
    with pytest.raises(ValueError, match="integers"):
        encode_tokens(TokenFile(ok.astype(float), "m", "image", 4, {}))
    with pytest.raises(ValueError, match="codebook_size"):
        encode_tokens(TokenFile(ok, "m", "image", 0, {}))
    with pytest.raises(ValueError, match="JSON"):
        encode_tokens(TokenFile(ok, "m", "image", 4, {"x": object()}))
    with pytest.raises(ValueError, match="JSON"):
        encode_tokens(TokenFile(ok, "m", "image", 4, {"x": float("nan")}))
    with pytest.raises(ValueError, match="model_id"):
        encode_tokens(TokenFile(ok, None, "image", 4, {}))


def _assert_token_error(path, match=None):
    with pytest.raises(TokenFileError) as info:
        read_tokens(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)
    if match:
        assert match in str(info.value), str(info.value)
    return str(info.value)


def test_every_truncation_is_detected(image_file):
    data = image_file.read_bytes()
    for n in range(len(data)):
        image_file.write_bytes(data[:n])
        _assert_token_error(image_file)


def test_truncated_payload_says_truncated(image_file):
    data = image_file.read_bytes()
    image_file.write_bytes(data[:-50])
    _assert_token_error(image_file, "truncated")


def test_every_flipped_byte_is_detected(image_file):
    data = image_file.read_bytes()
    for i in range(len(data)):
        for mask in (0x01, 0x80, 0xFF):
            corrupted = bytearray(data)
            corrupted[i] ^= mask
            with pytest.raises(TokenFileError):
                decode_tokens(bytes(corrupted), image_file)


def test_flipped_payload_byte_says_corrupt(image_file):
    data = bytearray(image_file.read_bytes())
    data[-20] ^= 0x10
    image_file.write_bytes(bytes(data))
    _assert_token_error(image_file, "corrupt")


def test_wrong_magic(tmp_path):
    path = tmp_path / "x.vqf"
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    _assert_token_error(path, "not a vqfuse token file")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.vqf"
    path.write_bytes(b"")
    _assert_token_error(path, "empty file")


def test_missing_file(tmp_path):
    _assert_token_error(tmp_path / "nope.vqf", "no such file")


def _rebuild(data: bytes, version: int | None = None, header: bytes | None = None, payload: bytes | None = None):
    """Re-assemble a file with some parts replaced and a valid CRC."""
    _, v, h, p, _ = _split(data)
    version = v if version is None else version
    header = json.dumps(h).encode() if header is None else header
    payload = p if payload is None else payload
    body = struct.pack("<4sBI", MAGIC, version, len(header)) + header + payload
    return body + struct.pack("<I", zlib.crc32(body))


def test_unsupported_version(image_file):
    image_file.write_bytes(_rebuild(image_file.read_bytes(), version=2))
    _assert_token_error(image_file, "unsupported token file version 2")


def test_bad_json_header_with_valid_crc(image_file):
    image_file.write_bytes(_rebuild(image_file.read_bytes(), header=b'{"model_id": "m",\n "shape": [16 16]}'))
    msg = _assert_token_error(image_file, "bad JSON header")
    assert "line 2" in msg


@pytest.mark.parametrize(
    "change,needle",
    [
        ({"shape": [16, -1]}, "shape"),
        ({"shape": "16x16"}, "shape"),
        ({"codebook_size": 0}, "codebook_size"),
        ({"bits": 4}, "bits"),
        ({"model_id": 3}, "model_id"),
        ({"meta": []}, "meta"),
    ],
)
def test_invalid_header_fields(image_file, change, needle):
    data = image_file.read_bytes()
    header = {**_split(data)[2], **change}
    image_file.write_bytes(_rebuild(data, header=json.dumps(header).encode()))
    _assert_token_error(image_file, needle)


def test_payload_size_not_matching_shape(image_file):
    data = image_file.read_bytes()
    image_file.write_bytes(_rebuild(data, payload=_split(data)[3] + b"\x00"))
    _assert_token_error(image_file, "needs 320")
    header = {**_split(data)[2], "shape": [16, 17]}
    image_file.write_bytes(_rebuild(data, header=json.dumps(header).encode()))
    _assert_token_error(image_file, "needs 340")


def test_out_of_range_index_in_file(tmp_path):
    data = encode_tokens(TokenFile(np.array([1, 2, 3]), "m", "x", 4, {}))
    header = {**_split(data)[2], "codebook_size": 3}
    path = tmp_path / "r.vqf"
    path.write_bytes(_rebuild(data, header=json.dumps(header).encode()))
    _assert_token_error(path, "outside [0, 3)")


def test_random_garbage_never_escapes_as_other_exception(tmp_path):
    rng = np.random.default_rng(0)
    for n in (1, 5, 9, 13, 40, 400):
        blob = MAGIC + b"\x01" + rng.integers(0, 256, size=n, dtype=np.uint8).tobytes()
        with pytest.raises(TokenFileError):
            decode_tokens(blob, "blob.vqf")


def test_check_model(image_file):
    tf = read_tokens(image_file)
    check_model(tf, "vqgan-f16-1024", image_file)
    with pytest.raises(ModelMismatchError) as info:
        check_model(tf, "other-model", image_file)
    assert str(info.value) == f"{image_file} was encoded by model vqgan-f16-1024, not other-model"


def test_overwrite_is_atomic_on_failure(image_file):
    before = image_file.read_bytes()
    with pytest.raises(ValueError):
        write_tokens(image_file, TokenFile(np.array([9]), "m", "x", 4, {}))
    assert image_file.read_bytes() == before
