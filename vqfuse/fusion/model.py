"""A trained fusion model: the token prior plus one tokenizer per named modality, loaded from a run directory.

    model = FusionModel.from_run("runs/fusion-av-digits")
    audio = model.generate(images, to="audio")          # (B, 3, S, S) in [-1, 1] -> (B, 1, T)
    images = model.generate(audio, to="image")          # (B, 1, T) -> (B, 3, S, S)
    samples = model.sample_joint(8)                     # {"image": (8, 3, S, S), "audio": (8, 1, T)}

Nothing here knows which modalities there are: each one's fitting, rates and files come from its
`Modality`, its codes from its `Tokenizer` (a stage axis, flattened position-major into the prior's
segment). With more than two modalities, `generate` takes the condition's name (`source=`).

Works with both prior kinds: a MaskGIT prior decodes the target in `steps` parallel steps (joint samples
decode every segment together), a causal prior samples token by token with a KV cache. `cfg_scale` is
classifier-free guidance (None or 1: none; the prior was trained with condition dropout for it). `rerank`
N > 1 samples N candidates per output and keeps the set the prior itself finds most coherent: the highest
pointwise mutual information, each modality's log-likelihood given the others minus given nothing, summed
(`vqfuse.prior.scoring`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vqfuse.errors import InputFileError, ModelMismatchError, PathLike, VqfuseError
from vqfuse.fusion.generation import FusionGeneration
from vqfuse.fusion.tokens import flatten_codes, unflatten_codes
from vqfuse.io.weights import load_json
from vqfuse.prior.persist import load_prior
from vqfuse.prior.sequence import SequenceLayout
from vqfuse.prior.transformer import PriorTransformer
from vqfuse.tokenizer import Tokenizer

FUSION_FILE = "fusion.json"
FUSION_FORMAT = "vqfuse-fusion/1"

# Generation defaults (a run's fusion.json may override them): temperature 0.5 and best of 8 by the prior's
# coherence score (docs and figures: benchmarks/results/rerank-*.md).
DEFAULT_SAMPLING: dict[str, Any] = {
    "steps": 12,
    "joint_steps": 24,
    "temperature": 0.5,
    "cfg_scale": 2.0,
    "top_k": None,
    "top_p": None,
    "rerank": 8,
}


def is_fusion_run(path: PathLike) -> bool:
    """Whether `path` (or the shipped model of that name) is a fusion run."""
    from vqfuse.pretrained import resolve_run_dir

    return (resolve_run_dir(path) / FUSION_FILE).is_file()


def _tokenizer_dir(run_dir: Path, path: str) -> Path:
    """A fusion run's tokenizer: `path` relative to the run, or the name of a shipped model (a shipped fusion
    model names the shipped codec it was trained on instead of carrying a second copy)."""
    from vqfuse.pretrained import builtin_model

    local = run_dir / path
    return local if local.exists() or builtin_model(path) is None else builtin_model(path)  # type: ignore[return-value]


def _grid(tok: Tokenizer, n_tokens: int, stages: int, known: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(item shape, latent shape) of a segment of `n_tokens` codes in `stages` stages: the recorded token
    shape, else the tokenizer's item shape with the time axis (if any) stretched to fill the segment. The item
    is what the latent decodes to (latent x factors, less the repeated first frames of a video tokenizer)."""
    factors = tuple(tok.downsample_factors)
    if known:
        latent = tuple(int(n) for n in known)
    else:
        item = tok.modality.item_shape(tok.meta)
        axis = tok.modality.time_axis
        if item is None and axis is None:
            raise VqfuseError(f"the {tok.config.modality} tokenizer records no item shape; the fusion run must")
        lead = [tok.time_lead if i == axis else 0 for i in range(len(factors))]
        latent = (
            tuple(math.ceil((n + d) / f) for n, d, f in zip(item, lead, factors))
            if item is not None
            else (1,) * len(factors)
        )
        if axis is not None:
            others = math.prod(n for i, n in enumerate(latent) if i != axis)
            latent = tuple(n_tokens // stages // others if i == axis else n for i, n in enumerate(latent))
    if math.prod(latent) * stages != n_tokens:
        raise VqfuseError(f"{tok.config.modality}: {n_tokens} tokens are not {stages} stage(s) of {latent}")
    item_shape = [n * f for n, f in zip(latent, factors)]
    if tok.time_lead and tok.modality.time_axis is not None:  # the first step is coded alone: 1 + (n - 1) f
        item_shape[tok.modality.time_axis] -= tok.time_lead
    return tuple(item_shape), latent


class FusionModel(FusionGeneration):
    """Prior + a tokenizer per modality (+ the facts in fusion.json).

    Attributes: prior, layout, kind ("maskgit" | "causal"), tokenizers {name: Tokenizer} in the layout's
    order, stages {name: stages kept}, item_shapes / token_shapes {name: spatial shape of one item / of its
    latent grid}, sampling (generation defaults), description (fusion.json).
    """

    def __init__(
        self,
        prior: PriorTransformer,
        layout: SequenceLayout,
        tokenizers: dict[str, Tokenizer],
        stages: dict[str, int] | None = None,
        kind: str | None = None,
        description: dict[str, Any] | None = None,
    ) -> None:
        missing = [n for n in layout.names if n not in tokenizers]
        if missing:
            raise VqfuseError(f"no tokenizer for the prior's segment(s) {missing}")
        self.prior, self.layout = prior.eval(), layout
        self.tokenizers = {n: tokenizers[n].eval() for n in layout.names}
        self.kind = kind or ("causal" if prior.causal else "maskgit")
        self.description = dict(description or {})
        self.sampling: dict[str, Any] = {**DEFAULT_SAMPLING, **self.description.get("sampling", {})}
        self.order = tuple(self.description.get("order") or layout.names)
        recorded = self.description.get("tokenizers", {})
        self.stages = {
            n: int((stages or {}).get(n) or recorded.get(n, {}).get("stages") or tok.n_stages)
            for n, tok in self.tokenizers.items()
        }
        self.item_shapes: dict[str, tuple[int, ...]] = {}
        self.token_shapes: dict[str, tuple[int, ...]] = {}
        for n, tok in self.tokenizers.items():
            self.item_shapes[n], self.token_shapes[n] = _grid(
                tok, layout.segment(n).n_tokens, self.stages[n], recorded.get(n, {}).get("token_shape")
            )

    @property
    def names(self) -> tuple[str, ...]:
        return self.layout.names

    def meta(self, name: str) -> dict[str, Any]:
        """What modality `name`'s files and fitting need: its tokenizer's meta with this model's item shape."""
        return {**self.tokenizers[name].meta, "item_shape": list(self.item_shapes[name])}

    def other(self, name: str) -> str:
        """The one modality besides `name` (two-modality models); otherwise name the source explicitly."""
        if name not in self.tokenizers:
            raise VqfuseError(f"unknown modality {name!r}; this model has {', '.join(self.names)}")
        others = [n for n in self.names if n != name]
        if len(others) != 1:
            raise VqfuseError(
                f"this model has {len(self.names)} modalities ({', '.join(self.names)}); name the condition's modality"
            )
        return others[0]

    # ---- loading ------------------------------------------------------------------------------------

    @classmethod
    def from_run(cls, run_dir: PathLike, device: str | torch.device = "cpu") -> "FusionModel":
        """Load `run_dir/fusion.json`, the prior it names and its tokenizers (paths relative to the run dir).
        Tokenizers whose weights differ from the ones the prior was trained on are an error."""
        from vqfuse.pretrained import resolve_run_dir

        run_dir = resolve_run_dir(run_dir)
        path = run_dir / FUSION_FILE
        if not path.is_file():
            if not run_dir.exists():
                raise InputFileError(run_dir, "does not exist")
            raise InputFileError(
                run_dir, f"not a fusion model (no {FUSION_FILE}; train one with a task: fusion config)"
            )
        desc = load_json(path)
        if not isinstance(desc, dict) or desc.get("format") != FUSION_FORMAT:
            found = desc.get("format") if isinstance(desc, dict) else None
            raise InputFileError(path, f"not a vqfuse fusion description (format {found!r})")
        try:
            toks = dict(desc["tokenizers"])
            prior_dir = run_dir / desc.get("prior", "prior")
        except (KeyError, TypeError, ValueError) as exc:
            raise InputFileError(path, f"invalid fusion description: missing {exc}") from None
        prior, layout = load_prior(prior_dir, device)
        if layout is None:
            raise InputFileError(prior_dir, "the prior was saved without its sequence layout")
        loaded, stages = {}, {}
        for name in layout.names:
            if name not in toks:
                raise InputFileError(path, f"invalid fusion description: no tokenizer for {name!r}")
            tok = Tokenizer.from_pretrained(_tokenizer_dir(run_dir, str(toks[name]["path"])), device)
            want = toks[name].get("model_id")
            if want and tok.model_id != want:
                raise ModelMismatchError(
                    f"{run_dir / toks[name]['path']}: this {name} tokenizer ({tok.model_id}) is not "
                    f"the one the prior was trained on ({want})"
                )
            loaded[name] = tok
            # runs written before per-tokenizer stages kept one top-level n_q for their timed modality
            legacy = desc.get("n_q") if tok.modality.time_axis is not None else None
            stages[name] = int(toks[name].get("stages") or toks[name].get("n_q") or legacy or tok.n_stages)
        return cls(prior, layout, loaded, stages, desc.get("kind"), desc)

    @property
    def device(self) -> torch.device:
        return next(self.prior.parameters()).device

    def to(self, device: str | torch.device) -> "FusionModel":
        self.prior.to(device)
        for tok in self.tokenizers.values():
            tok.to(device)
        return self

    # ---- tokens <-> signals -------------------------------------------------------------------------

    def prepare(self, name: str, x: Tensor) -> Tensor:
        """Fit a batch to what the prior's segment holds (the modality's `fit`: e.g. images resized and
        centre-cropped, audio centred and cut or padded to the clip length)."""
        return self.tokenizers[name].modality.fit(x, self.meta(name))

    def _n_q(self, name: str) -> int | None:
        return self.stages[name] if self.tokenizers[name].quantizer.variable_rate else None

    @torch.no_grad()
    def encode(self, name: str, x: Tensor) -> Tensor:
        """Signals -> flat local codes (B, n_tokens) as the prior sees them (position-major over stages)."""
        codes = self.tokenizers[name].encode_codes(self.prepare(name, x).to(self.device), n_q=self._n_q(name))
        return flatten_codes(codes)

    @torch.no_grad()
    def decode(self, name: str, tokens: Tensor) -> Tensor:
        """Flat local codes (B, n_tokens) -> signals (B, C, *item_shape) in [-1, 1]."""
        codes = unflatten_codes(tokens.to(self.device), self.stages[name], self.token_shapes[name])
        return self.tokenizers[name].decode_codes(codes).clamp(-1, 1)

    def summary_rows(self) -> list[tuple[str, str]]:
        """(label, value) rows for `vqfuse info`: the prior, its sequence, each tokenizer, sampling defaults."""
        seg = {n: self.layout.segment(n) for n in self.names}
        rows = [
            ("prior", f"{self.kind}, {sum(p.numel() for p in self.prior.parameters()):,} parameters"),
            ("sequence", " | ".join(f"{n}: {seg[n].n_tokens} tokens of {seg[n].vocab_size} codes" for n in seg)),
        ]
        for n, tok in self.tokenizers.items():
            s = self.stages[n]
            rows.append(
                (
                    n,
                    f"{tok.modality.describe(self.item_shapes[n], tok.meta)} -> "
                    f"{'x'.join(map(str, self.token_shapes[n]))} tokens x {s} stage{'s' if s != 1 else ''} "
                    f"(tokenizer {tok.model_id})",
                )
            )
        rows.append(("sampling", ", ".join(f"{k} {v}" for k, v in self.sampling.items() if v is not None)))
        if self.description.get("name"):
            rows.insert(0, ("name", str(self.description["name"])))
        return rows

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}: {'x'.join(map(str, s))} x {self.stages[n]}" for n, s in self.token_shapes.items())
        return f"FusionModel(kind={self.kind!r}, {self.layout}, tokens {{{parts}}})"


__all__ = ["DEFAULT_SAMPLING", "FusionModel", "is_fusion_run", "FUSION_FILE", "FUSION_FORMAT"]
