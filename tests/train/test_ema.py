import pytest
import torch
from torch import nn

from vqfuse.train.ema import EMA, ema_decay


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.register_buffer("codebook", torch.zeros(3))


def test_decay_warmup():
    assert ema_decay(0.999, 0) == pytest.approx(0.1)
    assert ema_decay(0.999, 10) == pytest.approx(11 / 20)
    assert ema_decay(0.9, 10_000) == 0.9
    assert ema_decay(0.999, 0, warmup=False) == 0.999


def test_update_math_parameters_averaged_buffers_copied():
    net = Net()
    ema = EMA(net, decay=0.9, warmup=False)
    start = net.lin.weight.detach().clone()
    with torch.no_grad():
        net.lin.weight.add_(1.0)
        net.codebook.fill_(5.0)
    ema.update(net)
    torch.testing.assert_close(ema.model.lin.weight, 0.9 * start + 0.1 * (start + 1.0))
    torch.testing.assert_close(ema.model.codebook, torch.full((3,), 5.0))  # copied, not averaged
    with torch.no_grad():
        net.lin.weight.add_(1.0)
    ema.update(net)
    first = 0.9 * start + 0.1 * (start + 1.0)
    torch.testing.assert_close(ema.model.lin.weight, 0.9 * first + 0.1 * (start + 2.0))
    assert ema.updates == 2
    assert not any(p.requires_grad for p in ema.model.parameters())


def test_warmup_decay_used_in_update_and_state_round_trip():
    net = Net()
    ema = EMA(net, decay=0.999)
    start = net.lin.bias.detach().clone()
    with torch.no_grad():
        net.lin.bias.add_(2.0)
    ema.update(net)  # decay min(0.999, 1/10) = 0.1
    torch.testing.assert_close(ema.model.lin.bias, 0.1 * start + 0.9 * (start + 2.0))
    other = EMA(Net(), decay=0.999)
    other.load_state_dict(ema.state_dict(), ema.updates)
    torch.testing.assert_close(other.model.lin.bias, ema.model.lin.bias)
    assert other.updates == 1


def test_invalid_decay():
    with pytest.raises(ValueError):
        EMA(Net(), decay=1.0)
