"""Classic-codec baselines: what a vqfuse tokenizer is measured against, at the same rate.

One implementation each, shared by the benchmarks and `vqfuse demo`:

- `vqfuse.baselines.image`: WebP and JPEG (Pillow) at a bits-per-pixel budget (`classic_at_bpp`).
- `vqfuse.baselines.audio`: Opus through PyAV's libopus at a set bit rate (`opus_at_kbps`), and Ogg Opus
  through libsndfile at a calibrated compression level (the older speech benchmark anchor).
- `vqfuse.baselines.video`: H.264 / H.265 / VP9 / AV1 through PyAV with no container (`encode_clip`,
  `rd_curve`), and H.264 at a bits-per-pixel budget (`h264_at_bpp`).

The submodules are imported on demand (they pull in Pillow, soundfile or PyAV).
"""

__all__ = ["audio", "image", "video"]
