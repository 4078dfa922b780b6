"""A trained fusion model: the token prior plus its two tokenizers, loaded from a run directory.

    model = FusionModel.from_run("runs/fusion-av-digits")
    audio = model.generate(images, to="audio")          # (B, 3, S, S) in [-1, 1] -> (B, 1, T)
    images = model.generate(audio, to="image")          # (B, 1, T) -> (B, 3, S, S)
    images, audio = model.sample_joint(8)

Works with both prior kinds: a MaskGIT prior decodes the target in `steps` parallel steps (joint samples
decode both segments together), a causal prior samples token by token with a KV cache. `cfg_scale` is
classifier-free guidance (None or 1: none; the prior was trained with condition dropout for it). `rerank`
N > 1 samples N candidates per output and keeps the pair the prior itself finds most coherent: the highest
pointwise mutual information, each modality's log-likelihood given the other minus given nothing, summed over
both (`vqfuse.prior.scoring`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from vqfuse.errors import InputFileError, ModelMismatchError, PathLike, VqfuseError
from vqfuse.fusion.tokens import decode_audio, encode_audio, flatten_audio_tokens, unflatten_audio_tokens
from vqfuse.io.weights import load_json
from vqfuse.prior.maskgit import maskgit_decode, maskgit_sample_joint
from vqfuse.prior.persist import load_prior
from vqfuse.prior.sampling import generate as ar_generate
from vqfuse.prior.sampling import sample_joint as ar_sample_joint
from vqfuse.prior.scoring import pick_best, segment_log_likelihood
from vqfuse.prior.sequence import SequenceLayout
from vqfuse.prior.transformer import PriorTransformer
from vqfuse.tokenizer import Tokenizer

FUSION_FILE = "fusion.json"
FUSION_FORMAT = "vqfuse-fusion/1"
MODALITIES = ("image", "audio")
_UNSET: Any = object()


def other_modality(name: str) -> str:
    if name not in MODALITIES:
        raise VqfuseError(f"unknown modality {name!r}; choose image or audio")
    return "audio" if name == "image" else "image"


def is_fusion_run(path: PathLike) -> bool:
    return (Path(path) / FUSION_FILE).is_file()


# Generation defaults (a run's fusion.json may override them). Temperature 0.5 rather than 1: in an exploratory
# run (not a committed benchmark) on 100 training conditions of av-digits (seed-0 run), image -> speech coherence
# rose from 0.15 to 0.26, joint from 0.13 to 0.29; speech -> image stayed at 0.72-0.73; guidance 2 vs 4 changed
# little. Rerank 8 (best of 8 candidates by the prior's coherence score): benchmarks/results/rerank-gpucodec.md
# (100 held-out conditions, GPU-codec seed-0 run, measured with the earlier scores: the condition's likelihood,
# and for joint pairs both modalities' likelihoods without the unconditional terms) gives image -> speech
# 0.34 / 0.46 / 0.53 / 0.54 and joint 0.59 / 0.73 / 0.86 / 0.88 for best of 1 / 4 / 8 / 16; speech -> image
# stays at 0.90-0.93.
DEFAULT_SAMPLING: dict[str, Any] = {"steps": 12, "joint_steps": 24, "temperature": 0.5, "cfg_scale": 2.0,
                                    "top_k": None, "top_p": None, "rerank": 8}


def _rerank_count(value: Any) -> int:
    """The number of candidates per output (None or 1: no reranking)."""
    n = 1 if value is None else int(value)
    if n < 1:
        raise VqfuseError(f"rerank must be >= 1 candidates per output, got {value}")
    return n


class FusionModel:
    """Prior + image tokenizer + audio tokenizer (+ the facts in fusion.json).

    Attributes: prior, layout, kind ("maskgit" | "causal"), tokenizers {"image", "audio"}, n_q,
    image_size, sample_rate, segment_length (audio samples per item), sampling (generation defaults).
    """

    def __init__(self, prior: PriorTransformer, layout: SequenceLayout, image_tok: Tokenizer, audio_tok: Tokenizer,
                 n_q: int, kind: str | None = None, description: dict[str, Any] | None = None) -> None:
        self.prior, self.layout = prior.eval(), layout
        self.tokenizers = {"image": image_tok.eval(), "audio": audio_tok.eval()}
        self.n_q = int(n_q)
        self.kind = kind or ("causal" if prior.causal else "maskgit")
        self.description = dict(description or {})
        self.sampling: dict[str, Any] = {**DEFAULT_SAMPLING, **self.description.get("sampling", {})}
        self.order = tuple(self.description.get("order") or layout.names)
        data = self.description.get("data", {})
        self.image_size = int(image_tok.config.meta.get("image_size", data.get("size", 32)))
        self.sample_rate = int(audio_tok.config.meta.get("sample_rate", data.get("sample_rate", 16000)))
        hop = 1
        for f in audio_tok.downsample_factors:
            hop *= f
        self.hop = hop
        self.n_frames = layout.segment("audio").n_tokens // self.n_q
        self.segment_length = self.n_frames * hop
        h = layout.segment("image").n_tokens
        shape = self.description.get("tokenizers", {}).get("image", {}).get("token_shape")
        self.image_token_shape = tuple(shape) if shape else (int(round(h ** 0.5)),) * 2

    # ---- loading ------------------------------------------------------------------------------------

    @classmethod
    def from_run(cls, run_dir: PathLike, device: str | torch.device = "cpu") -> "FusionModel":
        """Load `run_dir/fusion.json`, the prior it names and both tokenizers (paths relative to the run dir).
        Tokenizers whose weights differ from the ones the prior was trained on are an error."""
        run_dir = Path(run_dir)
        path = run_dir / FUSION_FILE
        if not path.is_file():
            if not run_dir.exists():
                raise InputFileError(run_dir, "does not exist")
            raise InputFileError(run_dir, f"not a fusion model (no {FUSION_FILE}; train one with a task: fusion config)")
        desc = load_json(path)
        if not isinstance(desc, dict) or desc.get("format") != FUSION_FORMAT:
            found = desc.get("format") if isinstance(desc, dict) else None
            raise InputFileError(path, f"not a vqfuse fusion description (format {found!r})")
        try:
            toks = {name: desc["tokenizers"][name] for name in MODALITIES}
            n_q = int(desc["n_q"])
            prior_dir = run_dir / desc.get("prior", "prior")
        except (KeyError, TypeError, ValueError) as exc:
            raise InputFileError(path, f"invalid fusion description: missing {exc}") from None
        prior, layout = load_prior(prior_dir, device)
        if layout is None:
            raise InputFileError(prior_dir, "the prior was saved without its sequence layout")
        loaded = {}
        for name in MODALITIES:
            tok = Tokenizer.from_pretrained(run_dir / toks[name]["path"], device)
            want = toks[name].get("model_id")
            if want and tok.model_id != want:
                raise ModelMismatchError(f"{run_dir / toks[name]['path']}: this {name} tokenizer ({tok.model_id}) is not the "
                                         f"one the prior was trained on ({want})")
            loaded[name] = tok
        return cls(prior, layout, loaded["image"], loaded["audio"], n_q, desc.get("kind"), desc)

    @property
    def device(self) -> torch.device:
        return next(self.prior.parameters()).device

    def to(self, device: str | torch.device) -> "FusionModel":
        self.prior.to(device)
        for tok in self.tokenizers.values():
            tok.to(device)
        return self

    # ---- tokens <-> signals -------------------------------------------------------------------------

    def prepare(self, modality: str, x: Tensor) -> Tensor:
        """Fit inputs to what the tokenizers were trained on: images (B, 3, H, W) resized (shorter side)
        and centre-cropped to S x S; audio (B, 1, T) or (B, T) centred, cut or zero-padded to the item length."""
        if modality == "image":
            if x.dim() == 3:
                x = x.unsqueeze(0)
            if x.dim() != 4 or x.shape[1] != 3:
                raise VqfuseError(f"images must be (B, 3, H, W), got {tuple(x.shape)}")
            s = self.image_size
            if x.shape[-2:] != (s, s):
                h, w = x.shape[-2:]
                side = min(h, w)
                top, left = (h - side) // 2, (w - side) // 2
                x = x[..., top:top + side, left:left + side]
                x = F.interpolate(x.float(), size=(s, s), mode="bicubic", align_corners=False, antialias=side > s)
            return x.float().clamp(-1, 1)
        if modality == "audio":
            if x.dim() == 2:
                x = x.unsqueeze(1)
            if x.dim() != 3 or x.shape[1] != 1:
                raise VqfuseError(f"audio must be (B, 1, T) or (B, T), got {tuple(x.shape)}")
            n, t = self.segment_length, x.shape[-1]
            if t > n:
                start = (t - n) // 2
                x = x[..., start:start + n]
            elif t < n:
                left = (n - t) // 2
                x = F.pad(x, (left, n - t - left))
            return x.float()
        raise VqfuseError(f"unknown modality {modality!r}; choose image or audio")

    @torch.no_grad()
    def encode(self, modality: str, x: Tensor) -> Tensor:
        """Signals -> flat local codes (B, n_tokens) as the prior sees them (audio frame-major)."""
        x = self.prepare(modality, x).to(self.device)
        tok = self.tokenizers[modality]
        if modality == "image":
            return tok.encode(x).reshape(x.shape[0], -1)
        return flatten_audio_tokens(encode_audio(tok, x, self.n_q))

    @torch.no_grad()
    def decode(self, modality: str, tokens: Tensor) -> Tensor:
        """Flat local codes (B, n_tokens) -> signals: images (B, 3, S, S) or audio (B, 1, T), in [-1, 1]."""
        tok = self.tokenizers[modality]
        tokens = tokens.to(self.device)
        if modality == "image":
            return tok.decode(tokens.reshape(tokens.shape[0], *self.image_token_shape)).clamp(-1, 1)
        return decode_audio(tok, unflatten_audio_tokens(tokens, self.n_q)).clamp(-1, 1)

    # ---- generation ---------------------------------------------------------------------------------

    def _opt(self, name: str, value: Any) -> Any:
        return self.sampling.get(name) if value is _UNSET else value

    @torch.no_grad()
    def generate_tokens(self, tokens: Tensor, to: str, *, steps: int | None = _UNSET, temperature: float = _UNSET,
                        cfg_scale: float | None = _UNSET, top_k: int | None = _UNSET, top_p: float | None = _UNSET,
                        rerank: int = _UNSET, generator: torch.Generator | None = None) -> Tensor:
        """Condition codes (B, n_from) of the other modality -> target codes (B, n_to).

        With `rerank` N > 1, N candidates are sampled per condition and the most coherent pair kept
        (`coherence_score`)."""
        source = other_modality(to)
        temperature, cfg = self._opt("temperature", temperature), self._opt("cfg_scale", cfg_scale)
        top_k, top_p = self._opt("top_k", top_k), self._opt("top_p", top_p)
        n_cand = _rerank_count(self._opt("rerank", rerank))
        cond = tokens.to(self.device).long()  # (B, n_from)
        batch = cond.shape[0]
        cond = cond.repeat(n_cand, 1)  # (N*B, n_from): candidate-major
        if self.kind == "maskgit":
            target = maskgit_decode(self.prior, self.layout, {source: cond}, to, order=self.layout.names,
                                    steps=int(self._opt("steps", steps)), cfg_scale=cfg, temperature=temperature,
                                    top_k=top_k, top_p=top_p, generator=generator)
        else:
            target = ar_generate(self.prior, self.layout, {source: cond}, to, order=(source, to), cfg_scale=cfg,
                                 temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
        if n_cand == 1:
            return target
        scores = self.coherence_score({source: cond, to: target})  # (N*B,)
        return pick_best(target.view(n_cand, batch, -1), scores.view(n_cand, batch))

    @torch.no_grad()
    def coherence_score(self, codes: dict[str, Tensor]) -> Tensor:
        """How coherent the prior finds pairs of codes {"image": (B, n_image), "audio": (B, n_audio)}: (B,).

        The sum over both modalities of log p(codes | other's codes) - log p(codes | NULL) (mean per token):
        how much each modality is explained by the other, beyond how likely it is on its own. `rerank` keeps
        the highest. Subtracting the unconditional term stops reranked joint samples from crowding onto the
        digits the prior finds easiest, and one rule serves joint and cross-modal pairs. Exploratory
        comparison (200 held-out conditions, best of 8, seed-0 5,000-step run, the same candidates each):
        joint agreement / class entropy 0.980 / 0.64 with the plain sum of log p(codes | other's codes),
        0.990 / 0.91 with this score; image -> speech (seeds 0 / 1) 0.895 / 0.865 by the condition's
        likelihood alone, 0.900 / 0.905 with this; speech -> image 0.990 / 0.965 -> 0.995 / 0.975. The
        committed figures: benchmarks/results/fusion-gpucodec-pmi.md."""
        return sum(segment_log_likelihood(self.prior, self.layout, codes, name)
                   - segment_log_likelihood(self.prior, self.layout, codes, name, unconditional=True)
                   for name in MODALITIES)

    @torch.no_grad()
    def generate(self, x: Tensor, to: str, *, steps: int | None = _UNSET, temperature: float = _UNSET,
                 cfg_scale: float | None = _UNSET, top_k: int | None = _UNSET, top_p: float | None = _UNSET,
                 rerank: int = _UNSET, generator: torch.Generator | None = None, batch_size: int = 64) -> Tensor:
        """A batch of the other modality -> decoded `to` signals.

        Args:
            x: images (B, 3, H, W) for to="audio", audio (B, 1, T) for to="image" (fitted with `prepare`).
            steps: MaskGIT decoding steps (ignored by a causal prior).
            temperature: sampling temperature (0: greedy); cfg_scale: guidance (None: none).
            top_k, top_p: logits filtering.
            rerank: candidates sampled per item, the most coherent kept (see `generate_tokens`).
            Defaults: fusion.json's `sampling`, else DEFAULT_SAMPLING.
            batch_size: items per prior call.
        """
        source = other_modality(to)
        out = []
        for start in range(0, x.shape[0], batch_size):
            codes = self.encode(source, x[start:start + batch_size])
            target = self.generate_tokens(codes, to, steps=steps, temperature=temperature, cfg_scale=cfg_scale,
                                          top_k=top_k, top_p=top_p, rerank=rerank, generator=generator)
            out.append(self.decode(to, target))
        return torch.cat(out)

    @torch.no_grad()
    def sample_joint_tokens(self, n: int, *, steps: int | None = _UNSET, temperature: float = _UNSET,
                            top_k: int | None = _UNSET, top_p: float | None = _UNSET, rerank: int = _UNSET,
                            generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """n unconditional pairs of codes: {"image": (n, n_image), "audio": (n, n_audio)}.

        With `rerank` N > 1, N pairs are sampled per output and the most coherent kept (`coherence_score`)."""
        temperature, top_k, top_p = self._opt("temperature", temperature), self._opt("top_k", top_k), self._opt("top_p", top_p)
        n_cand = _rerank_count(self._opt("rerank", rerank))
        if self.kind == "maskgit":
            codes = maskgit_sample_joint(self.prior, self.layout, n * n_cand, order=self.layout.names,
                                         steps=int(self._opt("joint_steps", steps)), temperature=temperature,
                                         top_k=top_k, top_p=top_p, generator=generator)
        else:
            codes = ar_sample_joint(self.prior, self.layout, n * n_cand, order=self.order, temperature=temperature,
                                    top_k=top_k, top_p=top_p, generator=generator)
        if n_cand == 1:
            return codes
        scores = self.coherence_score(codes).view(n_cand, n)
        return {name: pick_best(c.view(n_cand, n, -1), scores) for name, c in codes.items()}

    @torch.no_grad()
    def sample_joint(self, n: int, *, steps: int | None = _UNSET, temperature: float = _UNSET,
                     top_k: int | None = _UNSET, top_p: float | None = _UNSET, rerank: int = _UNSET,
                     generator: torch.Generator | None = None, batch_size: int = 64) -> tuple[Tensor, Tensor]:
        """n unconditional (image, audio) pairs: images (n, 3, S, S) and audio (n, 1, T)."""
        if n < 1:
            raise VqfuseError(f"the number of joint samples must be >= 1, got {n}")
        images, audios = [], []
        for start in range(0, n, batch_size):
            codes = self.sample_joint_tokens(min(batch_size, n - start), steps=steps, temperature=temperature,
                                             top_k=top_k, top_p=top_p, rerank=rerank, generator=generator)
            images.append(self.decode("image", codes["image"]))
            audios.append(self.decode("audio", codes["audio"]))
        return torch.cat(images), torch.cat(audios)

    def summary_rows(self) -> list[tuple[str, str]]:
        """(label, value) rows for `vqfuse info`: the prior, its sequence, both tokenizers, sampling defaults."""
        seg = {n: self.layout.segment(n) for n in self.layout.names}
        frames = self.n_frames
        rows = [
            ("prior", f"{self.kind}, {sum(p.numel() for p in self.prior.parameters()):,} parameters"),
            ("sequence", " | ".join(f"{n}: {seg[n].n_tokens} tokens of {seg[n].vocab_size} codes" for n in seg)),
            ("image", f"{self.image_size}x{self.image_size} px -> {'x'.join(map(str, self.image_token_shape))} "
                      f"tokens (tokenizer {self.tokenizers['image'].model_id})"),
            ("audio", f"{self.segment_length / self.sample_rate:g} s at {self.sample_rate} Hz -> {frames} frames x "
                      f"{self.n_q} stage{'s' if self.n_q != 1 else ''} (tokenizer {self.tokenizers['audio'].model_id})"),
            ("sampling", ", ".join(f"{k} {v}" for k, v in self.sampling.items() if v is not None)),
        ]
        if self.description.get("name"):
            rows.insert(0, ("name", str(self.description["name"])))
        return rows

    def __repr__(self) -> str:
        return (f"FusionModel(kind={self.kind!r}, {self.layout}, n_q={self.n_q}, image_size={self.image_size}, "
                f"sample_rate={self.sample_rate}, segment_length={self.segment_length})")



# ---- files ------------------------------------------------------------------------------------------


def _output_pairs(src: Path, dst: Path, source: str, target: str) -> list[tuple[Path, Path]]:
    """(input, output) files: a file to a file (or into a folder), a folder tree to a mirrored folder tree;
    outputs take the target modality's suffix (cat.png -> cat.wav; cat.png.wav when two inputs share a stem)."""
    from vqfuse.io.paths import map_paths
    from vqfuse.modalities import get_modality

    src_mod, dst_mod = get_modality(source), get_modality(target)
    suffix = dst_mod.default_output_suffix()
    into_folder = dst.is_dir() or str(dst).endswith(("/", "\\"))
    if src.is_file() and src.suffix.lower() not in src_mod.extensions:
        raise InputFileError(src, f"not an {source} file ({', '.join(e.lstrip('.') for e in src_mod.extensions)}); "
                                  f"--to {target} generates from {source}")
    if src.is_file() and not into_folder and dst.suffix.lower() not in dst_mod.extensions:
        raise VqfuseError(f"{dst}: a generated {target} file should end with one of {', '.join(dst_mod.extensions)} "
                          "(or name an existing folder)")
    pairs = map_paths(src, dst, src_mod.extensions, lambda n: Path(n).stem + suffix, what=source)
    outs = [b for _, b in pairs]
    clash = {b for b in outs if outs.count(b) > 1}
    return [(a, b.with_name(a.name + suffix) if b in clash else b) for a, b in pairs]


def generate_path(model: FusionModel, src: PathLike, dst: PathLike, to: str, *, batch_size: int = 32,
                  on_error: Any = None, progress: bool = False, seed: int | None = 0, **sampling: Any) -> Any:
    """Generate `to` files from the other modality's file or folder tree (`vqfuse generate --from`).

    A folder's tree is mirrored into `dst` (a/cat.png -> dst/a/cat.wav). Unreadable files of a folder are
    reported through `on_error(path, exc)` and skipped; for a single file the error is raised. `sampling`
    goes to `FusionModel.generate` (steps, temperature, cfg_scale, top_k, top_p). Returns a
    `vqfuse.io.paths.BatchResult` (tokens: generated tokens per file).
    """
    import time

    from tqdm.auto import tqdm

    from vqfuse.io.paths import BatchResult, FileResult
    from vqfuse.modalities import get_modality

    source = other_modality(to)
    src, dst = Path(src), Path(dst)
    pairs = _output_pairs(src, dst, source, to)
    src_mod, dst_mod = get_modality(source), get_modality(to)
    meta = {"sample_rate": model.sample_rate, "image_size": model.image_size}
    generator = torch.Generator(device=model.device).manual_seed(seed) if seed is not None else None
    n_tokens = model.layout.segment(to).n_tokens
    result = BatchResult()

    def skip(path: Path, exc: VqfuseError) -> None:
        """A bad file inside a folder is reported and skipped; a single bad file is the error."""
        if not src.is_dir():
            raise exc
        result.failed.append((path, str(exc)))
        if on_error is not None:
            on_error(path, exc)

    start = time.perf_counter()
    bar = tqdm(total=len(pairs), desc="generate", unit="file", disable=not progress or len(pairs) < 2, leave=False)
    try:
        for i in range(0, len(pairs), batch_size):
            chunk, inputs = [], []
            for a, b in pairs[i:i + batch_size]:
                try:
                    x = src_mod.load_file(a, meta)
                    inputs.append(model.prepare(source, x.unsqueeze(0))[0])
                    chunk.append((a, b))
                except VqfuseError as exc:
                    skip(a, exc)
                    bar.update(1)
            if not chunk:
                continue
            y = model.generate(torch.stack(inputs), to, generator=generator, batch_size=batch_size, **sampling).cpu()
            for (a, b), item in zip(chunk, y):
                try:
                    dst_mod.save_file(item, b, meta)
                    size = list(item.shape[1:])
                    result.done.append(FileResult(a, b, n_tokens, 0.0, dst_mod.extent(size, meta),
                                                  dst_mod.duration(size, meta) or 0.0))
                except VqfuseError as exc:
                    skip(a, exc)
                bar.update(1)
    finally:
        bar.close()
    result.seconds = time.perf_counter() - start
    return result


def sample_joint_path(model: FusionModel, n: int, out_dir: PathLike, *, batch_size: int = 32, seed: int | None = 0,
                      **sampling: Any) -> list[tuple[Path, Path]]:
    """`vqfuse generate --joint N OUT_DIR`: out_dir/sample-000.png + sample-000.wav, ...; returns the pairs."""
    from vqfuse.modalities import get_modality

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputFileError(out_dir, "exists and is not a folder (joint samples go into a folder)")
    generator = torch.Generator(device=model.device).manual_seed(seed) if seed is not None else None
    images, audios = model.sample_joint(n, generator=generator, batch_size=batch_size, **sampling)
    meta = {"sample_rate": model.sample_rate, "image_size": model.image_size}
    width = max(3, len(str(n - 1)))
    written = []
    for i, (img, aud) in enumerate(zip(images.cpu(), audios.cpu())):
        stem = out_dir / f"sample-{i:0{width}d}"
        a, b = stem.with_suffix(".png"), stem.with_suffix(".wav")
        get_modality("image").save_file(img, a, meta)
        get_modality("audio").save_file(aud, b, meta)
        written.append((a, b))
    return written


__all__ = ["DEFAULT_SAMPLING", "FusionModel", "is_fusion_run", "other_modality", "generate_path", "sample_joint_path",
           "FUSION_FILE"]
