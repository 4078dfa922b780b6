"""Residual vector quantization: each stage quantizes what the previous stages left over."""

from __future__ import annotations

import functools
import operator

import torch
from torch import Tensor, nn

from vqfuse.quantize.base import Quantizer, QuantizerOutput
from vqfuse.quantize.distributed import broadcast_int
from vqfuse.quantize.vq import VectorQuantizer


class ResidualVQ(Quantizer):
    """`n_quantizers` VectorQuantizer stages summed (SoundStream / EnCodec style).

    Bitrate control: `forward(x, n_q=...)` and `encode(x, n_q=...)` use the first `n_q` stages in
    training and in eval mode alike. With `quantizer_dropout` > 0, training batches without an explicit
    `n_q` use a random number of stages (the same on every process), so that one model serves every
    bitrate.

    Args:
        dim: channels C of the input.
        codebook_size: codes per stage.
        n_quantizers: number of stages.
        quantizer_dropout: probability that a training batch uses a random prefix of the stages.
        **options: forwarded to each `VectorQuantizer`.
    """

    def __init__(
        self, dim: int, codebook_size: int, n_quantizers: int = 8, quantizer_dropout: float = 0.0, **options
    ) -> None:
        super().__init__()
        self.codebook_size = codebook_size
        self.n_quantizers = n_quantizers
        self.quantizer_dropout = quantizer_dropout
        self.stages = nn.ModuleList(VectorQuantizer(dim, codebook_size, **options) for _ in range(n_quantizers))

    def _stages_to_use(self, n_q: int | None, device: torch.device) -> int:
        if n_q is not None:
            if not 1 <= n_q <= self.n_quantizers:
                raise ValueError(f"n_q must be in 1..{self.n_quantizers}, got {n_q}")
            return n_q
        if self.training and self.quantizer_dropout > 0:
            use_all = torch.rand(()) >= self.quantizer_dropout
            n = self.n_quantizers if use_all else int(torch.randint(1, self.n_quantizers + 1, ()))
            return broadcast_int(n, device)
        return self.n_quantizers

    variable_rate = True

    @property
    def n_stages(self) -> int:
        return self.n_quantizers

    def to_stages(self, indices: Tensor) -> Tensor:
        return indices

    def from_stages(self, codes: Tensor) -> Tensor:
        return codes

    def forward(self, x: Tensor, n_q: int | None = None) -> QuantizerOutput:
        """x (B, C, *spatial) -> quantized (B, C, *spatial), indices (B, n_used, *spatial)."""
        n_used = self._stages_to_use(n_q, x.device)
        residual = x
        quantized = torch.zeros_like(x)
        indices, loss, metrics = [], x.new_zeros(()), {}
        for i, stage in enumerate(self.stages[:n_used]):
            out = stage(residual)
            residual = residual - out.quantized.detach()
            quantized = quantized + out.quantized
            indices.append(out.indices)
            loss = loss + out.loss
            for name, value in out.metrics.items():
                metrics[f"{name}/{i}"] = value
        for name in ("perplexity", "usage"):
            metrics[name] = torch.stack([metrics[f"{name}/{i}"] for i in range(n_used)]).mean()
        metrics["n_q"] = torch.tensor(float(n_used))
        return QuantizerOutput(quantized=quantized, indices=torch.stack(indices, dim=1), loss=loss, metrics=metrics)

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """k-means init of every stage, in order, on what the previous stages leave of x (B, C, *spatial)."""
        residual = x
        for stage in self._stage_list():
            residual = residual - stage.initialize(residual)

    @property
    def initialized(self) -> bool:
        return all(bool(stage.initialized) for stage in self._stage_list())

    @torch.no_grad()
    def encode(self, x: Tensor, n_q: int | None = None) -> Tensor:
        """x (B, C, *spatial) -> indices (B, n_q, *spatial); all stages unless `n_q` is given."""
        n_used = n_q if n_q is not None else self.n_quantizers
        self._stages_to_use(n_used, x.device)  # validates
        residual, indices = x, []
        for stage in self._stage_list()[:n_used]:
            idx = stage.encode(residual)
            residual = residual - stage.decode(idx).to(residual.dtype)
            indices.append(idx)
        return torch.stack(indices, dim=1)

    def decode(self, indices: Tensor) -> Tensor:
        """indices (B, n, *spatial) with n <= n_quantizers -> latents (B, C, *spatial)."""
        if indices.shape[1] > self.n_quantizers:
            raise ValueError(f"indices have {indices.shape[1]} stages, this quantizer has {self.n_quantizers}")
        parts = [stage.decode(indices[:, i]) for i, stage in enumerate(self._stage_list()[: indices.shape[1]])]
        return functools.reduce(operator.add, parts)

    def _stage_list(self) -> list[VectorQuantizer]:
        return list(self.stages)  # type: ignore[arg-type]  # a ModuleList of VectorQuantizers
