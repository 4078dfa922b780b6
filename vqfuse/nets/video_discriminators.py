"""Video GAN discriminators: the 2D PatchGAN over frames, and it joined with a 3D space-time PatchGAN.

The 3D space-time PatchGAN is `PatchDiscriminator(dims=3)` itself (kind "patch" on video data); it judges
motion as well as texture. `FrameDiscriminator` folds the frames into the batch and runs the image
PatchGAN (or its multi-scale set) on each frame: it judges texture only, is cheaper per frame, and works
for single images (T = 1) where a 3D net with a temporal stride cannot. `SpaceTimeDiscriminator` runs
both. All keep the output contract of :mod:`vqfuse.nets.discriminators`, logits with a time axis:
(B, 1, T', H', W').
"""

from __future__ import annotations

from typing import Any

from einops import rearrange
from torch import Tensor, nn

from .discriminators import (
    CombinedDiscriminator,
    DiscriminatorOutput,
    MultiDiscriminatorOutput,
    MultiScaleDiscriminator,
    PatchDiscriminator,
)

__all__ = ["FrameDiscriminator", "SpaceTimeDiscriminator"]


def _unfold(x: Tensor, batch: int) -> Tensor:
    # (B*T', C, H, W) -> (B, C, T', H, W): per-frame outputs get their time axis back
    return rearrange(x, "(b t) c h w -> b c t h w", b=batch)


class FrameDiscriminator(nn.Module):
    """The 2D PatchGAN on every `frame_stride`-th frame of (B, C, T, H, W) clips.

    Args:
        in_channels: channels of a frame.
        n_scales: 1 for one PatchDiscriminator, more for a MultiScaleDiscriminator over each frame.
        frame_stride: judge frames 0, s, 2s, ... only (a cheaper discriminator step; the same frames for
            real and fake inputs, so feature matching compares like with like).
        **patch_kwargs: channels, n_layers, norm, stride, max_mult, norm_groups of the 2D PatchGAN.
    """

    def __init__(self, in_channels: int = 3, n_scales: int = 1, frame_stride: int = 1, **patch_kwargs: Any) -> None:
        super().__init__()
        if frame_stride < 1:
            raise ValueError(f"frame_stride must be >= 1, got {frame_stride}")
        patch_kwargs = {k: v for k, v in patch_kwargs.items() if k != "dims"}
        self.frame_stride = frame_stride
        self.disc: nn.Module = (
            PatchDiscriminator(dims=2, in_channels=in_channels, **patch_kwargs)
            if n_scales == 1
            else MultiScaleDiscriminator(n_scales, dims=2, in_channels=in_channels, **patch_kwargs)
        )

    def forward(self, x: Tensor) -> DiscriminatorOutput | MultiDiscriminatorOutput:
        # x: (B, C, T, H, W)
        if x.dim() != 5:
            raise ValueError(f"expected clips (B, C, T, H, W), got {tuple(x.shape)}")
        b = x.shape[0]
        frames = rearrange(x[:, :, :: self.frame_stride], "b c t h w -> (b t) c h w")  # (B*T', C, H, W)
        logits, features = self.disc(frames)
        if isinstance(logits, Tensor):  # one PatchGAN: (B*T', 1, h, w) -> (B, 1, T', h, w)
            return _unfold(logits, b), [_unfold(f, b) for f in features]
        return [_unfold(t, b) for t in logits], [[_unfold(f, b) for f in fs] for fs in features]


class SpaceTimeDiscriminator(CombinedDiscriminator):
    """A 3D space-time PatchGAN plus the per-frame 2D one, outputs concatenated (motion and texture).

    Args:
        in_channels: channels of the clip.
        channels, norm: shared by both members unless their own dicts say otherwise.
        space_time: options of the 3D PatchDiscriminator (n_layers, stride, ...); its default stride
            (1, 2, 2) on its first layer count keeps short clips valid: set e.g. `stride: 2` for 21 frames.
        frame: options of the FrameDiscriminator (n_scales, frame_stride, n_layers, ...).
    """

    def __init__(
        self,
        in_channels: int = 3,
        channels: int = 32,
        norm: str = "group",
        space_time: dict[str, Any] | None = None,
        frame: dict[str, Any] | None = None,
    ) -> None:
        shared = dict(in_channels=in_channels, channels=channels, norm=norm)
        st = {"n_layers": 3, "stride": (1, 2, 2)} | dict(space_time or {})
        super().__init__(
            [
                PatchDiscriminator(**(shared | st | {"dims": 3})),
                FrameDiscriminator(**(shared | {"n_layers": 3} | dict(frame or {}))),
            ]
        )
