"""LPIPS (VGG16) perceptual loss from LOCAL weights only — never downloaded, never the default.

`LPIPSNetwork` is the plain-torch architecture (VGG16 conv features + 1x1 linear heads, as in
Zhang et al. 2018 / the `lpips` package, version 0.1). `LocalLPIPS(path)` builds it from a
safetensors file the user supplies, with keys

    features.{i}.weight / features.{i}.bias   i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
                                               (torchvision's vgg16().features indices)
    lin{k}.model.1.weight                      k in 0..4, shape (1, C_k, 1, 1) (lpips' vgg.pth heads)

The `lpips` package's full-model names `net.slice{s}.{i}.*` are accepted too. To make such a file,
merge torchvision's VGG16 `features.*` tensors with lpips' `lin*` tensors in a trusted environment
and save them with `safetensors.torch.save_file`. Channel widths are read from the file, so
narrower (e.g. test-sized) networks load as well.
"""

from __future__ import annotations

import os
import re
from typing import Literal, Sequence

import torch
from torch import Tensor, nn

__all__ = ["LPIPSNetwork", "LocalLPIPS", "VGG16_WIDTHS"]

VGG16_WIDTHS: tuple[int, int, int, int, int] = (64, 128, 256, 512, 512)
_CONVS_PER_STAGE = (2, 2, 3, 3, 3)
# torchvision vgg16().features index of the first conv of each stage; LPIPS taps relu1_2..relu5_3
_STAGE_FIRST_CONV = (0, 5, 10, 17, 24)
_SLICE_KEY = re.compile(r"^net\.slice\d+\.(\d+)\.(weight|bias)$")


class LPIPSNetwork(nn.Module):
    """VGG16-features LPIPS with 1x1 linear heads, randomly initialised. Inputs in [-1, 1].

    Module layout mirrors torchvision (`features.{i}`) and lpips (`lin{k}.model.1`) so state_dict
    keys match the converted checkpoints. All parameters are frozen; the net stays in eval mode.
    """

    shift: Tensor
    scale: Tensor

    def __init__(self, widths: Sequence[int] = VGG16_WIDTHS, eps: float = 1e-10) -> None:
        super().__init__()
        if len(widths) != 5:
            raise ValueError(f"LPIPS-VGG16 needs 5 stage widths, got {tuple(widths)}")
        self.widths = tuple(int(w) for w in widths)
        self.eps = eps
        # lpips ScalingLayer: ImageNet-ish normalisation expressed for inputs in [-1, 1]
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)

        layers: list[nn.Module] = []
        self.tap_indices: list[int] = []  # index in `features` of each tapped ReLU
        in_ch = 3
        for stage, (width, n_conv) in enumerate(zip(self.widths, _CONVS_PER_STAGE)):
            if stage > 0:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            for _ in range(n_conv):
                layers += [nn.Conv2d(in_ch, width, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                in_ch = width
            self.tap_indices.append(len(layers) - 1)
        self.features = nn.Sequential(*layers)  # indices match torchvision vgg16().features[:30]
        for k, width in enumerate(self.widths):
            setattr(self, f"lin{k}", nn.Module())
            getattr(self, f"lin{k}").model = nn.Sequential(nn.Identity(), nn.Conv2d(width, 1, 1, bias=False))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "LPIPSNetwork":
        """Always stays in eval mode (frozen metric network)."""
        return super().train(False)

    def _taps(self, x: Tensor) -> list[Tensor]:
        feats, h = [], x
        taps = set(self.tap_indices)
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in taps:
                feats.append(h)
        return feats  # 5 x (B, C_k, H_k, W_k)

    def _unit_normalize(self, f: Tensor) -> Tensor:
        return f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + self.eps)

    def forward(self, x_hat: Tensor, x: Tensor, reduction: Literal["mean", "none"] = "mean") -> Tensor:
        """LPIPS distance. (B, 3, H, W) or video (B, 3, T, H, W) (frames folded into the batch).

        Returns a scalar (reduction='mean') or per-sample distances (B,) (reduction='none'; for video,
        the mean over frames).
        """
        if x_hat.shape != x.shape:
            raise ValueError(f"shape mismatch: x_hat {tuple(x_hat.shape)} vs x {tuple(x.shape)}")
        if x.dim() not in (4, 5) or x.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) or (B, 3, T, H, W) in [-1, 1], got {tuple(x.shape)}")
        batch = x.shape[0]
        if x.dim() == 5:  # (B, 3, T, H, W) -> (B*T, 3, H, W)
            x_hat = x_hat.transpose(1, 2).flatten(0, 1)
            x = x.transpose(1, 2).flatten(0, 1)
        both = torch.cat([x_hat, x], dim=0)
        both = (both - self.shift.to(both)) / self.scale.to(both)
        dist = both.new_zeros(both.shape[0] // 2)
        for k, f in enumerate(self._taps(both)):
            f_hat, f_ref = self._unit_normalize(f).chunk(2, dim=0)
            diff = (f_hat - f_ref).pow(2)  # (N, C_k, H_k, W_k)
            dist = dist + getattr(self, f"lin{k}").model(diff).mean(dim=(1, 2, 3))  # (N,)
        dist = dist.view(batch, -1).mean(dim=1)  # (B,)
        return dist.mean() if reduction == "mean" else dist


def _widths_from_state(state: dict[str, Tensor], path: str) -> tuple[int, ...]:
    widths = []
    for i in _STAGE_FIRST_CONV:
        key = f"features.{i}.weight"
        if key not in state:
            raise ValueError(f"LPIPS weights file {path!r} lacks {key!r}; not a VGG16 LPIPS checkpoint")
        widths.append(int(state[key].shape[0]))
    return tuple(widths)


class LocalLPIPS(LPIPSNetwork):
    """LPIPS-VGG16 loaded from a local safetensors file (see module docstring for the key layout)."""

    def __init__(self, weights_path: str | os.PathLike[str], eps: float = 1e-10) -> None:
        path = os.fspath(weights_path)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"LPIPS weights not found at {path!r}. vqfuse never downloads weights: LPIPS weights "
                "(VGG16 features + linear heads) must be supplied locally as a safetensors file."
            )
        try:
            from safetensors.torch import load_file

            raw = load_file(path, device="cpu")
        except Exception as e:  # safetensors raises its own error types for bad headers
            raise ValueError(f"could not read {path!r} as a safetensors file: {e}") from e
        state: dict[str, Tensor] = {}
        for key, value in raw.items():
            m = _SLICE_KEY.match(key)
            state[f"features.{m.group(1)}.{m.group(2)}" if m else key] = value
        state = {k: v for k, v in state.items() if k not in ("scaling_layer.shift", "scaling_layer.scale")}
        super().__init__(widths=_widths_from_state(state, path), eps=eps)
        try:
            missing, unexpected = self.load_state_dict(state, strict=False)
        except RuntimeError as e:  # shape mismatches
            raise ValueError(f"LPIPS weights file {path!r} does not match LPIPS-VGG16: {e}") from e
        if missing or unexpected:
            raise ValueError(
                f"LPIPS weights file {path!r} does not match LPIPS-VGG16: missing keys {missing}, unexpected keys {unexpected}"
            )
        self.weights_path = path
