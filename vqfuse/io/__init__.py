"""File I/O: atomic writes, safetensors weights, JSON, and ``.vqf`` token files."""

from vqfuse.io.atomic import (
    atomic_path,
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    read_input_bytes,
)
from vqfuse.io.bitpack import pack_bits, unpack_bits
from vqfuse.io.tokenfile import TokenFile, check_model, decode_tokens, encode_tokens, read_tokens, write_tokens
from vqfuse.io.weights import load_json, load_weights, load_weights_metadata, save_json, save_weights

__all__ = [
    "atomic_path",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "read_input_bytes",
    "TokenFile",
    "check_model",
    "decode_tokens",
    "encode_tokens",
    "pack_bits",
    "read_tokens",
    "unpack_bits",
    "write_tokens",
    "load_json",
    "load_weights",
    "load_weights_metadata",
    "save_json",
    "save_weights",
]
