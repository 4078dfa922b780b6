"""Vector quantizer: nearest-code lookup with EMA or gradient-learned codebook, k-means init, restarts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqfuse.quantize.base import Quantizer, QuantizerOutput, count_metrics, to_vectors, usage_metrics
from vqfuse.quantize.distributed import all_reduce_sum_, broadcast_, is_distributed
from vqfuse.quantize.estimators import rotation_trick, straight_through
from vqfuse.quantize.search import kmeans, nearest_code


@dataclass
class EMAConfig:
    """Codebook learned as exponential moving averages of assigned vectors (van den Oord et al. 2017)."""

    decay: float = 0.99
    eps: float = 1e-5  # Laplace smoothing of the cluster sizes


@dataclass
class RestartConfig:
    """Dead-code restart: a code whose EMA usage drops below `threshold` times the mean usage of a code
    is moved toward a recent encoder output, drawn with probability proportional to its quantization error
    (k-means++ style), so that revived codes land where the codebook fits the data worst.

    Defaults chosen on benchmarks/quantizers.py's skewed mixtures (threshold 0.2 / toward_vector 0.2
    gave the lowest held-out MSE and ~100% usage there; 0.05 / 1.0 left 9-20% of codes unused).
    """

    threshold: float = 0.2
    # Where the revived code goes, between the drawn vector's current code (0) and the vector itself (1).
    # In high dimensions a code placed on one raw vector sits far from everything else and dies again;
    # part of the way there it splits a busy cell instead (as in LBG codebook splitting).
    toward_vector: float = 0.2


@dataclass
class VQConfig:
    """Everything that defines a `VectorQuantizer`; JSON-friendly for checkpoints."""

    dim: int
    codebook_size: int
    codebook_dim: int | None = None  # factorised lookup: project dim -> codebook_dim -> dim
    beta: float = 0.25  # commitment weight, on the encoder term only
    learning: Literal["ema", "gradient"] = "ema"
    ema: EMAConfig = field(default_factory=EMAConfig)
    estimator: Literal["ste", "rotation"] = "ste"
    normalize: bool = False  # l2-normalised (cosine) codes and inputs
    init: Literal["kmeans", "random"] = "kmeans"
    kmeans_iters: int = 10
    restart: RestartConfig | None = field(default_factory=RestartConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "VQConfig":
        d = dict(d)
        d["ema"] = EMAConfig(**d.get("ema") or {})
        d["restart"] = RestartConfig(**d["restart"]) if d.get("restart") is not None else None
        return cls(**d)


class VectorQuantizer(Quantizer):
    """Nearest-neighbour vector quantizer over channel-first latents (B, C, *spatial), 1D/2D/3D.

    Quantization always runs in fp32, also inside autocast (bf16 distances halve codebook usage).

    Args:
        dim: channels C of the input.
        codebook_size: number of codes K.
        **options: any other `VQConfig` field (codebook_dim, beta, learning, ema, estimator, normalize,
            init, kmeans_iters, restart).
    """

    codebook: Tensor  # (K, Dc), a Parameter when learned by gradient
    embed_sum: Tensor  # (K, Dc)
    cluster_size: Tensor  # (K,)
    initialized: Tensor  # () bool

    def __init__(self, dim: int, codebook_size: int, **options) -> None:
        super().__init__()
        self.config = cfg = VQConfig(dim=dim, codebook_size=codebook_size, **options)
        self.codebook_size = codebook_size
        code_dim = cfg.codebook_dim or dim
        self.code_dim = code_dim
        factorised = code_dim != dim
        self.project_in = nn.Linear(dim, code_dim) if factorised else nn.Identity()
        self.project_out = nn.Linear(code_dim, dim) if factorised else nn.Identity()

        codes = torch.randn(codebook_size, code_dim)
        if cfg.normalize:
            codes = F.normalize(codes, dim=-1)
        if cfg.learning == "gradient":
            self.codebook = nn.Parameter(codes)
        elif cfg.learning == "ema":
            self.register_buffer("codebook", codes)
            self.register_buffer("embed_sum", codes.clone())
        else:
            raise ValueError(f"learning must be 'ema' or 'gradient', got {cfg.learning!r}")
        if cfg.estimator not in ("ste", "rotation"):
            raise ValueError(f"estimator must be 'ste' or 'rotation', got {cfg.estimator!r}")
        # EMA of how many vectors each code received per step: drives EMA learning, restarts and metrics.
        self.register_buffer("cluster_size", torch.ones(codebook_size))
        self.register_buffer("initialized", torch.tensor(cfg.init != "kmeans"))

    # ---- public API ---------------------------------------------------------------------------------

    def forward(self, x: Tensor) -> QuantizerOutput:
        """x (B, C, *spatial) -> quantized (B, C, *spatial), indices (B, *spatial)."""
        cfg = self.config
        with torch.autocast(device_type=x.device.type, enabled=False):
            flat, restore = to_vectors(x.float())  # (N, C)
            z = self._to_code_space(flat)  # (N, Dc)
            if self.training and not bool(self.initialized):
                self._init_codebook(z.detach())
            codebook = self.codes()  # (K, Dc)
            want_error = self.training and cfg.restart is not None
            indices, error = nearest_code(z.detach(), codebook.detach(), return_distance=want_error)
            q = F.embedding(indices, codebook)  # (N, Dc); gradient reaches a learned codebook
            loss = cfg.beta * F.mse_loss(z, q.detach())  # commitment: moves the encoder only
            if cfg.learning == "gradient":
                loss = loss + F.mse_loss(q, z.detach())  # codebook term: moves the codes only
            estimate = straight_through if cfg.estimator == "ste" else rotation_trick
            out = self.project_out(estimate(z, q))  # (N, C)
            counts = self._update(z.detach(), indices, error) if self.training else None
            quantized = restore(out).to(x.dtype)
        metrics = usage_metrics(indices, self.codebook_size) if counts is None else count_metrics(counts)
        return QuantizerOutput(quantized=quantized, indices=restore(indices), loss=loss, metrics=metrics)

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """x (B, C, *spatial) -> indices (B, *spatial); no autograd, no state updates."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            flat, restore = to_vectors(x.float())
            indices, _ = nearest_code(self._to_code_space(flat), self.codes())
        return restore(indices)

    def decode(self, indices: Tensor) -> Tensor:
        """indices (B, *spatial) -> latents (B, C, *spatial)."""
        q = self.project_out(F.embedding(indices, self.codes()))  # (B, *spatial, C)
        return torch.movedim(q, -1, 1)

    @torch.no_grad()
    def initialize(self, x: Tensor) -> Tensor:
        """k-means init of the codebook on x (B, C, *spatial), e.g. many batches of encoder outputs (more
        vectors than the first training batch holds); returns x's quantized latents (B, C, *spatial)."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            flat, restore = to_vectors(x.float())
            self._init_codebook(self._to_code_space(flat))
            return restore(
                self.project_out(F.embedding(nearest_code(self._to_code_space(flat), self.codes())[0], self.codes()))
            ).to(x.dtype)

    def codes(self) -> Tensor:
        """The codebook as used for lookup, (K, Dc)."""
        return (
            F.normalize(self.codebook, dim=-1)
            if self.config.normalize and self.config.learning == "gradient"
            else self.codebook
        )

    # ---- internals ----------------------------------------------------------------------------------

    def _to_code_space(self, flat: Tensor) -> Tensor:
        z = self.project_in(flat)
        return F.normalize(z, dim=-1) if self.config.normalize else z

    @torch.no_grad()
    def _init_codebook(self, z: Tensor) -> None:
        """k-means on the first training batch, computed on rank 0 and broadcast."""
        centroids, counts = kmeans(z, self.codebook_size, iters=self.config.kmeans_iters)
        if self.config.normalize:
            centroids = F.normalize(centroids, dim=-1)
        broadcast_(centroids)
        broadcast_(counts)
        self._set_codes(torch.ones_like(counts, dtype=torch.bool), centroids, counts.clamp_min(1.0))
        self.initialized.fill_(True)

    @torch.no_grad()
    def _set_codes(self, mask: Tensor, codes: Tensor, sizes: Tensor) -> None:
        self.codebook.data[mask] = codes
        self.cluster_size[mask] = sizes
        if self.config.learning == "ema":
            self.embed_sum[mask] = codes * sizes[:, None]

    @torch.no_grad()
    def _update(self, z: Tensor, indices: Tensor, error: Tensor | None) -> Tensor:
        """EMA statistics (all-reduced across processes), EMA codebook, restarts. Returns local counts."""
        cfg = self.config
        local_counts = torch.bincount(indices, minlength=self.codebook_size).to(z.dtype)  # (K,)
        counts = all_reduce_sum_(local_counts.clone())
        decay = cfg.ema.decay
        self.cluster_size.mul_(decay).add_(counts, alpha=1.0 - decay)
        if cfg.learning == "ema":
            sums = all_reduce_sum_(torch.zeros_like(self.embed_sum).index_add_(0, indices, z))  # (K, Dc)
            self.embed_sum.mul_(decay).add_(sums, alpha=1.0 - decay)
            total = self.cluster_size.sum()
            smoothed = (self.cluster_size + cfg.ema.eps) / (total + self.codebook_size * cfg.ema.eps) * total
            codes = self.embed_sum / smoothed[:, None]
            self.codebook.copy_(F.normalize(codes, dim=-1) if cfg.normalize else codes)
        if cfg.restart is not None and error is not None:
            self._restart_dead_codes(z, indices, error)
        return local_counts

    @torch.no_grad()
    def _restart_dead_codes(self, z: Tensor, indices: Tensor, error: Tensor) -> None:
        restart = self.config.restart
        assert restart is not None  # called only with restarts on
        mean_size = self.cluster_size.mean()
        dead = self.cluster_size < restart.threshold * mean_size  # identical on every rank
        n_dead = int(dead.sum())
        if n_dead == 0:
            return
        weights = error if bool(error.sum() > 0) else torch.ones_like(error)
        picks = torch.multinomial(weights, n_dead, replacement=n_dead > z.shape[0])
        fresh = z[picks]  # (n_dead, Dc)
        alpha = restart.toward_vector
        if alpha < 1.0:
            fresh = self.codebook[indices[picks]].lerp(fresh, alpha)
        fresh = fresh.contiguous()
        if is_distributed():
            broadcast_(fresh)
        self._set_codes(dead, fresh, mean_size.expand(n_dead).clone())
