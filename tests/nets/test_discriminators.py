import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from vqfuse.nets import CombinedDiscriminator, MultiScaleDiscriminator, PatchDiscriminator

INPUTS = {1: (2, 1, 256), 2: (2, 3, 32, 32), 3: (2, 3, 8, 16, 16)}


@pytest.mark.parametrize("norm", ["group", "none", "spectral"])
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_patch_discriminator(dims, norm):
    shape = INPUTS[dims]
    disc = PatchDiscriminator(dims=dims, in_channels=shape[1], channels=8, n_layers=2, norm=norm)
    x = torch.randn(shape, requires_grad=True)
    logits, features = disc(x)
    assert logits.shape == (shape[0], 1, *(n // 4 for n in shape[2:]))
    assert len(features) == 3
    assert all(f.shape[0] == shape[0] and f.dim() == dims + 2 for f in features)
    (logits.mean() + sum(f.mean() for f in features)).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    has_group = any(isinstance(m, nn.GroupNorm) for m in disc.modules())
    assert has_group == (norm == "group")


def test_spectral_norm_bounds_every_conv():
    torch.manual_seed(0)
    disc = PatchDiscriminator(dims=2, channels=8, n_layers=2, norm="spectral")
    convs = [m for m in disc.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(parametrize.is_parametrized(c, "weight") for c in convs)
    x = torch.randn(2, 3, 32, 32)
    for _ in range(5):  # power iterations run in training-mode forwards
        disc(x)
    disc.eval()
    for conv in convs:
        sigma = torch.linalg.matrix_norm(conv.weight.reshape(conv.weight.shape[0], -1), ord=2)
        assert sigma < 1.2


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_multiscale_discriminator(dims):
    shape = INPUTS[dims]
    disc = MultiScaleDiscriminator(3, dims=dims, in_channels=shape[1], channels=4, n_layers=1, norm="group")
    logits, features = disc(torch.randn(shape))
    assert len(logits) == len(features) == 3
    assert all(len(f) > 0 for f in features)
    sizes = [lg.shape[2:].numel() for lg in logits]
    assert sizes[0] > sizes[1] > sizes[2]
    assert logits[1].shape[2:] == tuple(n // 4 for n in shape[2:])  # pooled by 2, then one stride-2 layer


def test_multiscale_keeps_time_axis_with_per_axis_stride():
    disc = MultiScaleDiscriminator(2, dims=3, in_channels=3, channels=4, n_layers=2, stride=(1, 2, 2))
    logits, _ = disc(torch.randn(1, 3, 4, 16, 16))
    assert [tuple(lg.shape[2:]) for lg in logits] == [(4, 4, 4), (4, 2, 2)]


def test_combined_discriminator_flattens():
    single = PatchDiscriminator(dims=1, in_channels=1, channels=4, n_layers=1)
    multi = MultiScaleDiscriminator(2, dims=1, in_channels=1, channels=4, n_layers=1)
    logits, features = CombinedDiscriminator([single, multi])(torch.randn(2, 1, 64))
    assert len(logits) == len(features) == 3
    assert all(isinstance(lg, torch.Tensor) for lg in logits)
    assert all(isinstance(f, list) and f for f in features)


def test_errors():
    with pytest.raises(ValueError, match="norm"):
        PatchDiscriminator(norm="batch")
    disc = PatchDiscriminator(dims=3, channels=4, n_layers=3)
    with pytest.raises(ValueError, match="minimum"):
        disc(torch.randn(1, 3, 4, 16, 16))
