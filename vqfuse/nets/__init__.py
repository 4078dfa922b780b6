"""Networks: dimension-generic blocks, the encoder/decoder pair, and discriminators (1D/2D/3D)."""

from .autoencoder import AutoencoderConfig, Decoder, Encoder
from .blocks import AttnBlock, Downsample, Norm, PaddedConv, ResBlock, Upsample, avg_pool_nd, conv_nd, norm_groups_for
from .discriminators import (
    CombinedDiscriminator,
    DiscriminatorOutput,
    MultiDiscriminatorOutput,
    MultiScaleDiscriminator,
    PatchDiscriminator,
)

__all__ = [
    "AttnBlock",
    "AutoencoderConfig",
    "CombinedDiscriminator",
    "Decoder",
    "DiscriminatorOutput",
    "Downsample",
    "Encoder",
    "MultiDiscriminatorOutput",
    "MultiScaleDiscriminator",
    "Norm",
    "PaddedConv",
    "PatchDiscriminator",
    "ResBlock",
    "Upsample",
    "avg_pool_nd",
    "conv_nd",
    "norm_groups_for",
]
