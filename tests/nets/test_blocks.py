import pytest
import torch
from einops import rearrange
from torch import nn

from vqfuse.nets.blocks import AttnBlock, Downsample, Norm, PaddedConv, ResBlock, Upsample, conv_nd, norm_groups_for

SPATIAL = {1: (40,), 2: (8, 8), 3: (4, 8, 8)}


def _changed_after(x: torch.Tensor, t: int) -> torch.Tensor:
    """Copy of x with every time step >= t (first spatial axis) replaced by noise."""
    y = x.clone()
    y[:, :, t:] = torch.randn_like(y[:, :, t:])
    return y


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_conv_nd_picks_class(dims):
    assert isinstance(conv_nd(dims, 2, 3, 1), (nn.Conv1d, nn.Conv2d, nn.Conv3d)[dims - 1])
    assert isinstance(
        conv_nd(dims, 2, 3, 1, transpose=True), (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)[dims - 1]
    )


def test_conv_nd_rejects_bad_dims():
    with pytest.raises(ValueError, match="dims"):
        conv_nd(4, 2, 3, 1)


@pytest.mark.parametrize("channels, groups, expected", [(64, 32, 32), (48, 32, 24), (16, 32, 16), (7, 4, 1), (6, 4, 3)])
def test_norm_groups_for(channels, groups, expected):
    assert norm_groups_for(channels, groups) == expected


@pytest.mark.parametrize("stride", [2, 3, 4, 5, 8])
@pytest.mark.parametrize("causal", [False, True])
def test_audio_strides_divide_exactly(stride, causal):
    x = torch.randn(2, 4, 240)  # divisible by every stride
    down = Downsample(1, 4, 6, stride=stride, causal=causal)
    assert down.conv.conv.kernel_size == (2 * stride,)
    y = down(x)
    assert y.shape == (2, 6, x.shape[-1] // stride)
    for mode in ("nearest", "transpose"):
        up = Upsample(1, 6, 4, stride=stride, mode=mode, causal=causal)
        assert up(y).shape == x.shape


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("mode", ["nearest", "transpose"])
def test_down_up_shapes(dims, mode):
    x = torch.randn(2, 4, *SPATIAL[dims])
    y = Downsample(dims, 4, 8, stride=2)(x)
    assert y.shape == (2, 8, *(n // 2 for n in SPATIAL[dims]))
    assert Upsample(dims, 8, 4, stride=2, mode=mode)(y).shape == x.shape


@pytest.mark.parametrize("mode", ["nearest", "transpose"])
def test_per_axis_stride_3d(mode):
    x = torch.randn(1, 4, 4, 8, 8)
    y = Downsample(3, 4, stride=(1, 2, 2), causal=True)(x)
    assert y.shape == (1, 4, 4, 4, 4)
    assert Upsample(3, 4, stride=(1, 2, 2), mode=mode, causal=True)(y).shape == x.shape


def test_padded_conv_rejects_kernel_below_stride():
    with pytest.raises(ValueError, match="kernel_size"):
        PaddedConv(1, 1, 1, kernel_size=2, stride=4)


@pytest.mark.parametrize("transpose, pad_mode", [(False, "zeros"), (False, "replicate"), (True, "zeros")])
@pytest.mark.parametrize("dims", [1, 3])
def test_padded_conv_is_causal(dims, transpose, pad_mode):
    torch.manual_seed(0)
    stride = 2
    conv = PaddedConv(dims, 3, 3, 4, stride, causal=True, transpose=transpose, pad_mode=pad_mode)
    x = torch.randn(2, 3, 12, *SPATIAL[dims][1:])
    t = 4  # input steps >= 4 change
    y0, y1 = conv(x), conv(_changed_after(x, t))
    # conv: output step j sees inputs < (j + 1) * stride; transposed: output j sees inputs <= j // stride
    keep = t // stride if not transpose else t * stride
    torch.testing.assert_close(y0[:, :, :keep], y1[:, :, :keep], rtol=0, atol=1e-6)
    assert not torch.allclose(y0[:, :, keep:], y1[:, :, keep:])


@pytest.mark.parametrize("dims", [1, 3])
def test_non_causal_conv_leaks_future(dims):
    """Sanity check that the causality tests can fail."""
    conv = PaddedConv(dims, 3, 3, 3)
    x = torch.randn(2, 3, *SPATIAL[dims])
    t = 2
    assert not torch.allclose(conv(x)[:, :, :t], conv(_changed_after(x, t))[:, :, :t])


@pytest.mark.parametrize("dims", [1, 3])
def test_causal_norm_uses_per_step_statistics(dims):
    norm = Norm(dims, 8, groups=4, causal=True)
    x = torch.randn(2, 8, *SPATIAL[dims])
    t = 2
    torch.testing.assert_close(norm(x)[:, :, :t], norm(_changed_after(x, t))[:, :, :t], rtol=0, atol=1e-6)
    assert not torch.allclose(Norm(dims, 8, 4)(x)[:, :, :t], Norm(dims, 8, 4)(_changed_after(x, t))[:, :, :t])


def test_causal_norm_1d_is_not_degenerate():
    """Per-step stats over groups of 1 channel would zero the output; causal 1D uses one group."""
    norm = Norm(1, 8, groups=32, causal=True)
    assert norm.norm.num_groups == 1
    assert norm(torch.randn(2, 8, 10)).abs().mean() > 0.5


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_resblock(dims):
    x = torch.randn(2, 8, *SPATIAL[dims])
    same = ResBlock(dims, 8, norm_groups=4)
    assert isinstance(same.skip, nn.Identity)
    assert same(x).shape == x.shape
    wider = ResBlock(dims, 8, 16, norm_groups=4, dropout=0.1)
    assert isinstance(wider.skip, (nn.Conv1d, nn.Conv2d, nn.Conv3d))
    assert wider.skip.kernel_size == (1,) * dims
    assert wider(x).shape == (2, 16, *SPATIAL[dims])


@pytest.mark.parametrize("heads", [1, 2])
def test_attention_is_permutation_equivariant(heads):
    torch.manual_seed(0)
    attn = AttnBlock(2, 8, heads=heads, norm_groups=4)
    x = torch.randn(2, 8, 4, 4)
    perm = torch.randperm(16)
    flat = rearrange(x, "b c h w -> b c (h w)")
    x_perm = rearrange(flat[:, :, perm], "b c (h w) -> b c h w", h=4)
    out, out_perm = attn(x), attn(x_perm)
    assert out.shape == x.shape
    expected = rearrange(rearrange(out, "b c h w -> b c (h w)")[:, :, perm], "b c (h w) -> b c h w", h=4)
    torch.testing.assert_close(out_perm, expected, rtol=1e-5, atol=1e-5)
    # and it actually mixes positions: changing one position changes another's output
    x2 = x.clone()
    x2[:, :, 0, 0] += 1.0
    assert not torch.allclose(attn(x2)[:, :, 3, 3], out[:, :, 3, 3])


@pytest.mark.parametrize("dims", [1, 3])
def test_causal_attention(dims):
    torch.manual_seed(0)
    attn = AttnBlock(dims, 8, heads=2, norm_groups=4, causal=True)
    x = torch.randn(2, 8, *SPATIAL[dims])
    t = 2
    out, out2 = attn(x), attn(_changed_after(x, t))
    torch.testing.assert_close(out[:, :, :t], out2[:, :, :t], rtol=0, atol=1e-6)
    if dims == 3:  # positions within one frame still see each other
        x3 = x.clone()
        x3[:, :, 1, 0, 0] += 1.0
        assert not torch.allclose(attn(x3)[:, :, 1, 7, 7], out[:, :, 1, 7, 7])
