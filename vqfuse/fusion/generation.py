"""Generation from a fusion model (`FusionModel` inherits it): one modality from another, and joint samples.

A MaskGIT prior decodes the target in `steps` parallel steps (joint samples decode every segment together), a
causal prior samples token by token with a KV cache. `cfg_scale` is classifier-free guidance (None or 1:
none); `rerank` N > 1 samples N candidates per output and keeps the set the prior itself finds most coherent
(pointwise mutual information, `vqfuse.prior.scoring`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from vqfuse.errors import VqfuseError
from vqfuse.fusion.tokens import flatten_codes
from vqfuse.prior.maskgit import maskgit_decode, maskgit_sample_joint
from vqfuse.prior.sampling import generate as ar_generate
from vqfuse.prior.sampling import sample_joint as ar_sample_joint
from vqfuse.prior.scoring import pick_best, segment_log_likelihood

_UNSET: Any = object()


def _rerank_count(value: Any) -> int:
    """The number of candidates per output (None or 1: no reranking)."""
    n = 1 if value is None else int(value)
    if n < 1:
        raise VqfuseError(f"rerank must be >= 1 candidates per output, got {value}")
    return n


class FusionGeneration:
    """Sampling methods over a FusionModel's prior, layout, tokenizers and `sampling` defaults."""

    prior: Any
    layout: Any
    kind: str
    sampling: dict[str, Any]
    names: tuple[str, ...]

    # ---- generation ---------------------------------------------------------------------------------

    def _opt(self, name: str, value: Any) -> Any:
        return self.sampling.get(name) if value is _UNSET else value

    @torch.no_grad()
    def generate_tokens(
        self,
        tokens: Tensor,
        to: str,
        *,
        source: str | None = None,
        steps: int | None = _UNSET,
        temperature: float = _UNSET,
        cfg_scale: float | None = _UNSET,
        top_k: int | None = _UNSET,
        top_p: float | None = _UNSET,
        rerank: int = _UNSET,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Condition codes (B, n_from) of modality `source` (default: the other one) -> target codes (B, n_to).

        With `rerank` N > 1, N candidates are sampled per condition and the most coherent kept
        (`coherence_score`)."""
        source = source or self.other(to)
        temperature, cfg = self._opt("temperature", temperature), self._opt("cfg_scale", cfg_scale)
        top_k, top_p = self._opt("top_k", top_k), self._opt("top_p", top_p)
        n_cand = _rerank_count(self._opt("rerank", rerank))
        cond = tokens.to(self.device).long()  # (B, n_from)
        batch = cond.shape[0]
        cond = cond.repeat(n_cand, 1)  # (N*B, n_from): candidate-major
        if self.kind == "maskgit":
            order = tuple(n for n in self.layout.names if n in (source, to))  # the other segments left out
            target = maskgit_decode(
                self.prior,
                self.layout,
                {source: cond},
                to,
                order=order,
                steps=int(self._opt("steps", steps)),
                cfg_scale=cfg,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                generator=generator,
            )
        else:
            target = ar_generate(
                self.prior,
                self.layout,
                {source: cond},
                to,
                order=(source, to),
                cfg_scale=cfg,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                generator=generator,
            )
        if n_cand == 1:
            return target
        scores = self.coherence_score({source: cond, to: target})  # (N*B,)
        return pick_best(target.view(n_cand, batch, -1), scores.view(n_cand, batch))

    @torch.no_grad()
    def coherence_score(self, codes: dict[str, Tensor]) -> Tensor:
        """How coherent the prior finds sets of codes {name: (B, n_name)}: (B,).

        The sum over the given modalities of log p(codes | the others' codes) - log p(codes | NULL) (mean per
        token): how much each modality is explained by the others, beyond how likely it is on its own.
        Subtracting the unconditional term stops reranked joint samples from crowding onto the items the
        prior finds easiest, and one rule serves joint and cross-modal samples."""
        return sum(
            segment_log_likelihood(self.prior, self.layout, codes, name)
            - segment_log_likelihood(self.prior, self.layout, codes, name, unconditional=True)
            for name in codes
        )

    @torch.no_grad()
    def generate(
        self,
        x: Tensor,
        to: str,
        *,
        source: str | None = None,
        steps: int | None = _UNSET,
        temperature: float = _UNSET,
        cfg_scale: float | None = _UNSET,
        top_k: int | None = _UNSET,
        top_p: float | None = _UNSET,
        rerank: int = _UNSET,
        generator: torch.Generator | None = None,
        batch_size: int = 64,
    ) -> Tensor:
        """A batch of modality `source` (default: the other one) -> decoded `to` signals.

        Args:
            x: the condition signals, fitted with `prepare`.
            steps: MaskGIT decoding steps (ignored by a causal prior).
            temperature: sampling temperature (0: greedy); cfg_scale: guidance (None: none).
            top_k, top_p: logits filtering.
            rerank: candidates sampled per item, the most coherent kept (see `generate_tokens`).
            Defaults: fusion.json's `sampling`, else DEFAULT_SAMPLING.
            batch_size: items per prior call.
        """
        source = source or self.other(to)
        out = []
        for start in range(0, x.shape[0], batch_size):
            codes = self.encode(source, x[start : start + batch_size])
            target = self.generate_tokens(
                codes,
                to,
                source=source,
                steps=steps,
                temperature=temperature,
                cfg_scale=cfg_scale,
                top_k=top_k,
                top_p=top_p,
                rerank=rerank,
                generator=generator,
            )
            out.append(self.decode(to, target))
        return torch.cat(out)

    @torch.no_grad()
    def sample_joint_tokens(
        self,
        n: int,
        *,
        steps: int | None = _UNSET,
        temperature: float = _UNSET,
        top_k: int | None = _UNSET,
        top_p: float | None = _UNSET,
        rerank: int = _UNSET,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """n unconditional sets of codes: {name: (n, n_name)}.

        With `rerank` N > 1, N sets are sampled per output and the most coherent kept (`coherence_score`)."""
        temperature, top_k, top_p = (
            self._opt("temperature", temperature),
            self._opt("top_k", top_k),
            self._opt("top_p", top_p),
        )
        n_cand = _rerank_count(self._opt("rerank", rerank))
        if self.kind == "maskgit":
            codes = maskgit_sample_joint(
                self.prior,
                self.layout,
                n * n_cand,
                order=self.layout.names,
                steps=int(self._opt("joint_steps", steps)),
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                generator=generator,
            )
        else:
            codes = ar_sample_joint(
                self.prior,
                self.layout,
                n * n_cand,
                order=self.order,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                generator=generator,
            )
        if n_cand == 1:
            return codes
        scores = self.coherence_score(codes).view(n_cand, n)
        return {name: pick_best(c.view(n_cand, n, -1), scores) for name, c in codes.items()}

    @torch.no_grad()
    def sample_joint(
        self,
        n: int,
        *,
        steps: int | None = _UNSET,
        temperature: float = _UNSET,
        top_k: int | None = _UNSET,
        top_p: float | None = _UNSET,
        rerank: int = _UNSET,
        generator: torch.Generator | None = None,
        batch_size: int = 64,
    ) -> dict[str, Tensor]:
        """n unconditional samples of every modality: {name: (n, C, *item_shape)}."""
        if n < 1:
            raise VqfuseError(f"the number of joint samples must be >= 1, got {n}")
        parts: dict[str, list[Tensor]] = {name: [] for name in self.names}
        for start in range(0, n, batch_size):
            codes = self.sample_joint_tokens(
                min(batch_size, n - start),
                steps=steps,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                rerank=rerank,
                generator=generator,
            )
            for name in self.names:
                parts[name].append(self.decode(name, codes[name]))
        return {name: torch.cat(p) for name, p in parts.items()}

    @torch.no_grad()
    def continue_items(
        self,
        name: str,
        x: Tensor,
        steps_after: int,
        *,
        steps: int | None = _UNSET,
        temperature: float = _UNSET,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Continue timed items x (B, C, T0, ...) of segment `name` by `steps_after` steps along the time axis
        (frame prediction): (B, C, T0 + steps_after, ...), the given steps kept as they are.

        The tokens whose input steps all lie in the given ones are known (a causal tokenizer's codes of a
        prefix do not depend on what follows it); the prior infills the rest of the segment given them and the
        others' NULL, and the decoded steps after T0 are appended. T0 + steps_after must fit in the segment."""
        from vqfuse.fusion.repair import encode_items, infill

        if self.kind != "maskgit":
            raise VqfuseError(f"continuing {name} needs a masked (maskgit) prior; this run's prior is {self.kind}")
        tok = self.tokenizers[name]  # type: ignore[attr-defined]
        axis = tok.modality.time_axis
        if axis is None:
            raise VqfuseError(f"{name} items have no time axis to continue along")
        item = self.item_shapes[name]  # type: ignore[attr-defined]
        t0, total = x.shape[2 + axis], item[axis]
        if steps_after < 1 or t0 < 1 or t0 + steps_after > total:
            raise VqfuseError(
                f"this prior's {name} items hold {total} steps: give 1 or more steps and ask for 1 to "
                f"{max(total - t0, 0)} more (got {t0} + {steps_after})"
            )
        pad = [0, 0] * (x.dim() - 3 - axis) + [0, total - t0]
        full = self.prepare(name, torch.nn.functional.pad(x.float(), pad)).to(self.device)  # type: ignore[attr-defined]
        codes = encode_items(tok, full, self.stages[name])  # type: ignore[attr-defined]  (B, S, *grid)
        known_steps = (t0 + tok.time_lead) // tok.downsample_factors[axis]
        if known_steps < 1:
            raise VqfuseError(f"give at least {tok.downsample_factors[axis] - tok.time_lead} steps to continue from")
        known = torch.zeros_like(codes, dtype=torch.bool)
        known.narrow(2 + axis, 0, known_steps).fill_(True)
        flat = infill(
            self.prior,
            self.layout,
            name,
            flatten_codes(codes),
            flatten_codes(known),
            {},
            steps=self._opt("steps", steps),
            temperature=self._opt("temperature", temperature),
            generator=generator,
        )
        decoded = self.decode(name, flat)  # type: ignore[attr-defined]  (B, C, *item)
        new = decoded.narrow(2 + axis, t0, steps_after).to(x.device)
        return torch.cat([x.float(), new], dim=2 + axis)


__all__ = ["FusionGeneration"]
