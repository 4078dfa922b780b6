"""Dimension-generic GAN discriminators that also return their features (for feature-matching losses).

Output contract, shared with every discriminator in vqfuse (audio STFT / period ones included):
- a single discriminator returns `(logits, features)`: logits (B, 1, *spatial'), features a list of
  intermediate activations;
- a set of discriminators returns `(list_of_logits, list_of_feature_lists)`, one entry per member.
`CombinedDiscriminator` joins any mix of the two into the second form.
"""

from __future__ import annotations

from typing import Iterable

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from .blocks import IntOrTuple, PaddedConv, avg_pool_nd, norm_groups_for, stride_kernel, to_tuple

DiscriminatorOutput = tuple[Tensor, list[Tensor]]
MultiDiscriminatorOutput = tuple[list[Tensor], list[list[Tensor]]]
DISC_NORMS = ("group", "none", "spectral")


class PatchDiscriminator(nn.Module):
    """PatchGAN: strided convs with LeakyReLU(0.2), one logit per patch.

    Layout: conv(stride) -> [conv(stride), norm] x (n_layers - 1) -> conv3, norm -> conv3 to 1 channel.
    Every axis shrinks by stride ** n_layers, so inputs need at least that many steps per axis.

    Args:
        dims: spatial axes (1, 2, 3).
        channels: width of the first layer; doubles per layer up to `max_mult` times.
        n_layers: number of strided convs.
        norm: "group" (GroupNorm), "none", or "spectral" (spectral norm on every conv, no norm layer).
        stride: one int or one per axis, e.g. (1, 2, 2) to keep the time axis of short video clips.
    """

    def __init__(
        self,
        dims: int = 2,
        in_channels: int = 3,
        channels: int = 64,
        n_layers: int = 3,
        norm: str = "group",
        stride: IntOrTuple = 2,
        max_mult: int = 8,
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        if norm not in DISC_NORMS:
            raise ValueError(f"norm must be one of {DISC_NORMS}, got {norm!r}")
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.dims, self.n_layers, self.stride = dims, n_layers, to_tuple(stride, dims, "stride")
        kernel = stride_kernel(self.stride, dims)

        def conv(c_in: int, c_out: int, k: IntOrTuple, s: IntOrTuple, bias: bool = True) -> nn.Module:
            layer = PaddedConv(dims, c_in, c_out, k, s, bias=bias)
            if norm == "spectral":
                layer.conv = spectral_norm(layer.conv)
            return layer

        def block(c_in: int, c_out: int, k: IntOrTuple, s: IntOrTuple, normed: bool) -> nn.Sequential:
            grouped = normed and norm == "group"
            layers = [conv(c_in, c_out, k, s, bias=not grouped)]  # GroupNorm's shift makes a bias redundant
            if grouped:
                layers.append(nn.GroupNorm(norm_groups_for(c_out, norm_groups), c_out))
            layers.append(nn.LeakyReLU(0.2))
            return nn.Sequential(*layers)

        widths = [channels * min(2**i, max_mult) for i in range(n_layers + 1)]
        blocks = [block(in_channels, widths[0], kernel, self.stride, normed=False)]
        for i in range(1, n_layers):
            blocks.append(block(widths[i - 1], widths[i], kernel, self.stride, normed=True))
        blocks.append(block(widths[n_layers - 1], widths[n_layers], 3, 1, normed=True))
        self.blocks = nn.ModuleList(blocks)
        self.out = conv(widths[n_layers], 1, 3, 1)

    def forward(self, x: Tensor) -> DiscriminatorOutput:
        # x: (B, in_channels, *spatial)
        min_size = tuple(s**self.n_layers for s in self.stride)
        if any(n < m for n, m in zip(x.shape[2:], min_size)):
            raise ValueError(
                f"input spatial size {tuple(x.shape[2:])} is below the minimum {min_size} for "
                f"stride {self.stride} and {self.n_layers} strided layers: use fewer layers or stride 1 "
                "on short axes"
            )
        features: list[Tensor] = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return self.out(x), features  # logits (B, 1, *spatial / stride**n_layers)


class MultiScaleDiscriminator(nn.Module):
    """`n_scales` PatchDiscriminators; scale i sees the input average-pooled i times by the stride.

    Args:
        n_scales: number of discriminators / resolutions.
        **patch_kwargs: passed to each PatchDiscriminator (dims, in_channels, channels, n_layers, norm, stride...).
    """

    def __init__(self, n_scales: int = 3, **patch_kwargs) -> None:
        super().__init__()
        if n_scales < 1:
            raise ValueError(f"n_scales must be >= 1, got {n_scales}")
        self.discriminators = nn.ModuleList(PatchDiscriminator(**patch_kwargs) for _ in range(n_scales))
        first = self.discriminators[0]
        s = first.stride
        # kernel 2s-1, padding s-1: each axis of length L becomes ceil(L / s); axes with s == 1 are untouched.
        self.pool = avg_pool_nd(
            first.dims, tuple(2 * v - 1 for v in s), stride=s, padding=tuple(v - 1 for v in s), count_include_pad=False
        )

    def forward(self, x: Tensor) -> MultiDiscriminatorOutput:
        # x: (B, C, *spatial)
        all_logits, all_features = [], []
        for i, disc in enumerate(self.discriminators):
            if i > 0:
                x = self.pool(x)  # (B, C, *spatial / stride**i)
            logits, features = disc(x)
            all_logits.append(logits)
            all_features.append(features)
        return all_logits, all_features


class CombinedDiscriminator(nn.Module):
    """Runs several discriminators on the same input and concatenates their outputs.

    Members may return `(logits, features)` or `(list_of_logits, list_of_feature_lists)`; the result is
    always the list form, so losses handle one shape (e.g. multi-scale + multi-period + STFT for audio).
    """

    def __init__(self, discriminators: Iterable[nn.Module]) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(discriminators)

    def forward(self, x: Tensor) -> MultiDiscriminatorOutput:
        all_logits: list[Tensor] = []
        all_features: list[list[Tensor]] = []
        for disc in self.discriminators:
            logits, features = disc(x)
            if isinstance(logits, Tensor):
                all_logits.append(logits)
                all_features.append(features)
            else:
                all_logits.extend(logits)
                all_features.extend(features)
        return all_logits, all_features
