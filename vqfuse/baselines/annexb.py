"""Annex-B byte streams (H.264 / H.265): finding NAL units and dropping user-data-only SEI.

x264 writes its encoder-info string (about 0.7 kB per clip, droppable metadata) as a user-data-unregistered
SEI message; `strip_user_data_sei` removes such NAL units so a bit count covers only what decoding needs.
"""

from __future__ import annotations

__all__ = ["nal_units", "strip_user_data_sei"]


def nal_units(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each NAL unit in an Annex-B byte string, start code (3 or 4 bytes) included."""
    starts, pos = [], data.find(b"\x00\x00\x01")
    while pos >= 0:
        starts.append(pos - 1 if pos > 0 and data[pos - 1] == 0 else pos)  # 4-byte start code
        pos = data.find(b"\x00\x00\x01", pos + 3)
    return list(zip(starts, starts[1:] + [len(data)]))


def _only_user_data_sei(rbsp: bytes) -> bool:
    """True when every SEI message in this RBSP is user_data_unregistered (payload type 5)."""
    data = rbsp.replace(b"\x00\x00\x03", b"\x00\x00")  # emulation prevention bytes
    i, seen, fields = 0, 0, []
    while i < len(data) and data[i:] != b"\x80":  # 0x80: rbsp_trailing_bits
        value = 0
        while i < len(data) and data[i] == 0xFF:  # payload type / size: each 0xFF adds 255
            value, i = value + 255, i + 1
        if i >= len(data):
            return False
        fields, i = [*fields, value + data[i]], i + 1
        if len(fields) == 2:  # (type, size) read: skip the payload
            if fields[0] != 5:
                return False
            i, seen, fields = i + fields[1], seen + 1, []
    return seen > 0 and not fields


def strip_user_data_sei(packet: bytes, codec: str) -> bytes:
    """Drop SEI NAL units that carry only user-data-unregistered messages (x264's encoder-info string).

    H.264: NAL type 6. H.265: prefix/suffix SEI types 39/40 (x265 with info=0 writes none). Other codecs
    are returned unchanged.
    """
    if codec not in ("h264", "h265"):
        return packet
    header = 1 if codec == "h264" else 2
    kept = []
    for start, end in nal_units(packet):
        nal = packet[start:end].lstrip(b"\x00")[1:] or b"\x00"  # after the start code's 0x01
        kind = nal[0] & 0x1F if codec == "h264" else (nal[0] >> 1) & 0x3F
        is_sei = kind == 6 if codec == "h264" else kind in (39, 40)
        if not (is_sei and _only_user_data_sei(nal[header:])):
            kept.append(packet[start:end])
    return b"".join(kept) if kept else packet[:0]
