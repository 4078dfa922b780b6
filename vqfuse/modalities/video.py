"""Video: clips (C, T, H, W) in [-1, 1], C = 1 (grey) or 3 (RGB); mp4/webm/gif files; frame strips and GIF
previews; per-frame PSNR / SSIM and temporal consistency.

Rates are bits per pixel, a pixel being one spatial position of one frame (extent T*H*W). A causal
tokenizer that codes the first frame alone (`first_frame_alone`) has 1 + k latent frames for 1 + 4k
frames, so its rate is given at the training clip length (21 frames, 6x8x8 codes at 4x8x8: 0.0625
bits/pixel at K = 16,384). Windows along time (long clips) follow `time_axis` 0, the frame axis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from vqfuse.data.registry import make_dataset
from vqfuse.errors import VqfuseError
from vqfuse.modalities.base import Modality, register_modality

DEFAULT_SIZE = 64
DEFAULT_LENGTH = 21  # 1 + 4*5: a whole number of latent frames after the first at temporal factor 4
DEFAULT_FPS = 8.0  # synthetic clips have no native rate; 8 fps is what their motion (3.6 px/frame) suits
MAX_PREVIEW_CLIPS = 4
# GIF stores delays in whole centiseconds (8 fps is kept as 12 cs, 8.33 fps): a file within this fraction
# of the model's rate is read frame for frame rather than resampled, so a written clip reads back whole.
FPS_TOLERANCE = 0.1
# The synthetic sets' fixed attributions (their modules import numpy/PIL data lazily; text kept here).
_ATTRIBUTIONS = {
    "moving-digits": "vqfuse.data.moving:MNIST_ATTRIBUTION",
    "moving-emoji": "vqfuse.data.emoji:OPENMOJI_ATTRIBUTION",
}


def _spec_name(spec: Any) -> str:
    return str(spec or "").partition(":")[0].strip().lower()


def _fps(meta_or_data: dict[str, Any]) -> float:
    return float(meta_or_data.get("fps") or DEFAULT_FPS)


def _channels(data: dict[str, Any]) -> int:
    """Grey for moving digits unless asked otherwise (their pixels are grey); RGB for everything else."""
    if "channels" in data:
        return int(data["channels"])
    return 1 if _spec_name(data.get("train")) == "moving-digits" else 3


def _attribution(spec: Any) -> str | None:
    target = _ATTRIBUTIONS.get(_spec_name(spec))
    if target is None:
        return None
    import importlib

    module, _, name = target.partition(":")
    return str(getattr(importlib.import_module(module), name))


def _frames_rgb(x: Tensor) -> Tensor:
    # (C, T, H, W) -> (T, 3, H, W): grey frames repeated to RGB for PNG/GIF previews
    frames = x.detach().float().cpu().clamp(-1, 1).transpose(0, 1)
    return frames.expand(-1, 3, -1, -1) if frames.shape[1] == 1 else frames


class VideoModality(Modality):
    name = "video"
    dims = 3
    time_axis = 0
    rate_unit, rate_scale, rate_key = "bits/pixel", 1.0, "bits_per_pixel"
    repair_mode = "inpaint"
    element = "pixels"
    mask_help = "an image file, white = missing in every frame, and/or --missing A-B for missing frames"

    @property
    def extensions(self) -> tuple[str, ...]:  # type: ignore[override]
        # from the video file module, imported only when asked (PyAV loads with it)
        from vqfuse.data.video_files import VIDEO_EXTENSIONS

        return VIDEO_EXTENSIONS

    # ---- data -----------------------------------------------------------------------------------------

    def dataset(self, spec: str, split: str, data: dict[str, Any]) -> Dataset:
        """``moving-digits``, ``moving-emoji`` or any other registered video spec (``folder:PATH``);
        data keys ``size`` (64), ``length`` (frames, 21), ``fps`` (8), ``channels`` (1 for moving digits,
        else 3) and ``options`` (extra keyword arguments of the dataset, e.g. {num_digits: 3})."""
        import vqfuse.data.moving  # noqa: F401  (registers the synthetic sets)

        try:  # a folder of video files, when that module is present
            import vqfuse.data.video_folder  # noqa: F401
        except ImportError:
            pass
        meta = self.meta(data)
        options: dict[str, Any] = dict(data.get("options") or {})
        name, channels = _spec_name(spec), meta["channels"]
        if name == "moving-digits":
            options.setdefault("colour", channels == 3)  # tinted digits give C = 3
        elif name == "moving-emoji":
            if channels != 3:
                raise VqfuseError("moving-emoji clips are RGB: set data.channels to 3")
        else:
            options.setdefault("channels", channels)
        return make_dataset(
            "video", spec, size=meta["size"], length=meta["length"], fps=meta["fps"], split=split, **options
        )

    def meta(self, data: dict[str, Any]) -> dict[str, Any]:
        size, length = int(data.get("size", DEFAULT_SIZE)), int(data.get("length", DEFAULT_LENGTH))
        meta: dict[str, Any] = {
            "size": size,
            "length": length,
            "fps": _fps(data),
            "channels": _channels(data),
            "dataset": data.get("train", ""),
            "item_shape": [length, size, size],
        }
        if data.get("options"):
            meta["options"] = dict(data["options"])
        attribution = _attribution(data.get("train"))
        if attribution:
            meta["attribution"] = attribution
        return meta

    # ---- shapes and rates -----------------------------------------------------------------------------

    def steps_per_second(self, meta: dict[str, Any]) -> float | None:
        return _fps(meta)

    def describe(self, size: tuple[int, ...] | list[int], meta: dict[str, Any]) -> str:
        t, h, w = (int(n) for n in size)
        return f"{t} frame{'s' if t != 1 else ''} {h}x{w} at {_fps(meta):g} fps"

    def token_meta(self, meta: dict[str, Any]) -> dict[str, Any]:
        return {"fps": _fps(meta)}

    def info_rows(self, meta: dict[str, Any]) -> dict[str, Any]:
        shape = self.item_shape(meta)
        return {"clip": self.describe(shape, meta)} if shape is not None else {}

    def fit(self, x: Tensor, meta: dict[str, Any]) -> Tensor:
        """(B, C, T, H, W) or (C, T, H, W) -> (B, C, *item_shape): each frame's shorter side resized to the
        item size and centre-cropped; time cut to the first `length` frames or padded by repeating the
        last frame (so a causal model sees the clip from its start)."""
        if x.dim() == 4:
            x = x.unsqueeze(0)
        channels = int(meta.get("channels", 3))
        if x.dim() != 5 or x.shape[1] != channels:
            raise VqfuseError(f"video must be (B, {channels}, T, H, W), got {tuple(x.shape)}")
        x = x.float()
        shape = self.item_shape(meta)
        if shape is None:
            return x.clamp(-1, 1)
        length, target = shape[0], shape[1:]
        if x.shape[2] > length:
            x = x[:, :, :length]
        elif x.shape[2] < length:
            x = torch.cat([x, x[:, :, -1:].expand(-1, -1, length - x.shape[2], -1, -1)], dim=2)
        if tuple(x.shape[-2:]) != target:
            h, w = x.shape[-2:]
            side = min(h, w)
            top, left = (h - side) // 2, (w - side) // 2
            b, t = x.shape[0], x.shape[2]
            frames = x[..., top : top + side, left : left + side].transpose(1, 2).flatten(0, 1)  # (B*T, C, S, S)
            frames = F.interpolate(
                frames, size=target, mode="bicubic", align_corners=False, antialias=side > min(target)
            )
            x = frames.unflatten(0, (b, t)).transpose(1, 2)  # (B, C, T, *target)
        return x.clamp(-1, 1)

    # ---- repair ---------------------------------------------------------------------------------------

    def load_mask(self, path: Path, meta: dict[str, Any]) -> Tensor:
        """An image file of any size, fitted like the frames (centre crop + resize): its bright pixels are
        missing in every frame. -> (1, 1, 1, H, W) bool."""
        from vqfuse.data.image_files import load_image_file
        from vqfuse.errors import InputFileError

        grey = load_image_file(path).mean(0)[None, None, None]  # (1, 1, 1, h, w)
        fitted = self.fit(grey.expand(-1, int(meta.get("channels", 3)), -1, -1, -1), meta)[:, :1, :1]
        mask = fitted > 0.0
        if not bool(mask.any()):
            raise InputFileError(path, "the mask marks no pixel as missing (white = missing, black = kept)")
        return mask

    def damage(self, items: Tensor, generator: Any, settings: dict[str, Any]) -> tuple[Tensor, Tensor | None]:
        """Missing frames ``missing_frames`` (1-based, inclusive; default 9-12 as in the Moving MNIST repair
        protocol) and, with ``hole`` N, an N x N square missing at the centre of every frame; set to -1."""
        b, _, t, h, w = items.shape
        mask = torch.zeros(b, 1, t, h, w, dtype=torch.bool, device=items.device)
        first, last = settings.get("missing_frames", (9, 12)) or (0, -1)
        mask[:, :, max(0, int(first) - 1) : int(last)] = True
        if settings.get("hole"):
            n = int(settings["hole"])
            top, left = (h - n) // 2, (w - n) // 2
            mask[..., top : top + n, left : left + n] = True
        return items.masked_fill(mask.expand_as(items), -1.0), mask

    def repair_scores(self, repaired: Tensor, clean: Tensor, damaged: Tensor,
                      mask: Tensor | None) -> dict[str, Tensor]:  # fmt: skip
        """PSNR over the missing pixels (peak-to-peak 2 in [-1, 1]), per clip."""
        from vqfuse.fusion.damage import masked_psnr

        if mask is None:
            raise ValueError("video repair is scored over a mask of missing pixels")
        return {"masked_psnr": masked_psnr(repaired, clean, mask, reduction="none")}

    # ---- files ----------------------------------------------------------------------------------------

    def load_file(self, path: Path, meta: dict[str, Any]) -> Tensor:
        """(C, T, H, W) at the file's own size; frames resampled to the model's fps unless the file is
        within FPS_TOLERANCE of it."""
        from vqfuse.data.video_files import probe_video, read_video

        fps, channels = _fps(meta), int(meta.get("channels", 3))
        native = probe_video(path).fps
        resample = not native or abs(native - fps) > FPS_TOLERANCE * fps
        return read_video(path, fps=fps if resample else None, channels=channels)[0]

    def save_file(self, x: Tensor, path: Path, meta: dict[str, Any]) -> None:
        from vqfuse.data.video_write import write_video

        write_video(x, path, _fps(meta))

    def save_output(self, x: Tensor, path: Path, meta: dict[str, Any], source: Path | None = None) -> str:
        """The clip, with `source`'s audio track copied in unchanged (or re-encoded where the container does
        not take its codec); the note says which."""
        from vqfuse.data.video_write import write_video

        return write_video(x, path, _fps(meta), audio_from=source)

    def encode_note(self, path: Path) -> str:
        from vqfuse.data.video_files import probe_video

        if probe_video(path).has_audio:
            return "its audio track is not kept in the token file (`vqfuse reconstruct` keeps it)"
        return ""

    def save_samples(self, inputs: Tensor, outputs: Tensor, path: Path, meta: dict[str, Any]) -> list[Path]:
        """``<stem>.png``: per clip (up to 4) a row of input frames above a row of reconstructed frames;
        ``<stem>.gif``: the clips playing, inputs on the left and reconstructions on the right."""
        from vqfuse.data.image_files import save_image_file
        from vqfuse.data.video_write import write_video
        from vqfuse.modalities.image import image_grid

        path = Path(path)
        stem = path.name[: -len(path.suffix)] if path.suffix.lower() in (".png", ".gif") else path.name
        n = min(inputs.shape[0], MAX_PREVIEW_CLIPS)
        rows: list[Tensor] = []
        for i in range(n):
            rows += [_frames_rgb(inputs[i]), _frames_rgb(outputs[i])]  # each (T, 3, H, W)
        png = path.parent / f"{stem}.png"
        save_image_file(image_grid(rows), png)
        # (3, T, n*H, 2*W): clips stacked vertically, input | reconstruction side by side
        pairs = [torch.cat([rows[2 * i], rows[2 * i + 1]], dim=-1) for i in range(n)]  # (T, 3, H, 2W) each
        movie = torch.cat(pairs, dim=-2).transpose(0, 1)
        gif = path.parent / f"{stem}.gif"
        write_video(movie, gif, _fps(meta))
        return [png, gif]

    def metrics(self, outputs: Tensor, inputs: Tensor, meta: dict[str, Any]) -> dict[str, float]:
        """psnr (mean per-frame PSNR), ssim (per frame), temporal_mae / temporal_psnr (frame-to-frame
        changes), OpenSTL mse / mae and more: see `vqfuse.metrics.video.video_metrics`."""
        from vqfuse.metrics.video import video_metrics

        return video_metrics(outputs.detach().float(), inputs.detach().float())


def _video_only(factory: Any) -> Any:
    def build(dims: int, in_channels: int, **options: Any) -> Any:
        if dims != 3:
            raise ValueError(f"this discriminator is for video (3 spatial axes), the data has {dims}")
        return factory(in_channels=in_channels, **options)

    return build


def _register_discriminators() -> None:
    """loss.discriminator kinds for video, beside "patch" / "multiscale" (3D space-time PatchGANs on
    video data): "frame" (the 2D PatchGAN on each frame) and "spacetime" (3D + per-frame, combined)."""
    from vqfuse.nets.video_discriminators import FrameDiscriminator, SpaceTimeDiscriminator
    from vqfuse.train.discriminator import register_discriminator

    register_discriminator("frame", _video_only(FrameDiscriminator))
    register_discriminator("spacetime", _video_only(SpaceTimeDiscriminator))


register_modality(VideoModality())
_register_discriminators()
