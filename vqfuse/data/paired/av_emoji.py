"""The ``av-emoji`` paired dataset: OpenMoji emoji with their Unicode names spoken by several voices.

:func:`emoji_spoken_name` holds the text rules: which codepoints are silent, which read as words.
"""

from __future__ import annotations

import unicodedata
from typing import Any, Sequence

import numpy as np
import torch

from vqfuse.data.audio import fit_length, int16_to_tensor
from vqfuse.data.cache import stable_hash
from vqfuse.data.emoji import EmojiDataset, emoji_text
from vqfuse.data.paired.base import MODALITY, PairedDataset, check_pairings, choose, clip_length, paired_factory
from vqfuse.data.registry import register_dataset
from vqfuse.data.speech import voices_of_split
from vqfuse.data.speech_render import Utterance, render_corpus
from vqfuse.data.split import check_split, heldout_score
from vqfuse.errors import VqfuseError

_SILENT = {0x200D, 0xFE0E, 0xFE0F, 0xE007F}  # zero width joiner, variation selectors, cancel tag
_SPOKEN = {  # modifiers whose Unicode names read badly
    0x1F3FB: "light skin tone",
    0x1F3FC: "medium light skin tone",
    0x1F3FD: "medium skin tone",
    0x1F3FE: "medium dark skin tone",
    0x1F3FF: "dark skin tone",
    0x20E3: "keycap",
}
EMOJI_RATE_RANGE = (130, 210)  # words per minute, as in the speech corpus
EMOJI_PITCH_RANGE = (30, 70)


def emoji_spoken_name(name: str, sequences: bool = False) -> str | None:
    """The lower-cased Unicode name of an emoji (``"1F600"`` -> ``"grinning face"``), or None.

    None when a codepoint has no name in this Python's ``unicodedata`` (OpenMoji's private-use extras,
    emoji newer than the Unicode database). Joiners and variation selectors are silent, skin tones and
    the keycap read as words. Unless ``sequences``, only single emoji qualify (one codepoint, optionally
    with a variation selector or keycap: ``"digit two keycap"``); with it, ZWJ sequences, skin tones
    and flags (``"flag e a"``) are named part by part (``"man light skin tone microscope"``).
    """
    parts: list[str] = []
    bases = 0
    flag = False
    for cp in (int(c, 16) for c in name.split("-")):
        if cp in _SILENT:
            continue
        if cp in _SPOKEN:
            if cp != 0x20E3:
                bases += 1  # a skin tone makes it a sequence
            parts.append(_SPOKEN[cp])
        elif 0x1F1E6 <= cp <= 0x1F1FF:  # regional indicator letters: a flag
            bases += 1
            if not flag:
                parts.append("flag")
                flag = True
            parts.append(chr(ord("a") + cp - 0x1F1E6))
        elif 0xE0020 <= cp <= 0xE007E:  # tag letters of subdivision flags
            bases += 1
            parts.append(chr(cp - 0xE0000).lower())
        else:
            text = unicodedata.name(chr(cp), "")
            if not text:
                return None
            bases += 1
            parts.append(text.lower())
    if not parts or (not sequences and bases != 1):
        return None
    if flag and bases == 1:  # a lone regional indicator letter is no flag
        return unicodedata.name(emoji_text(name).replace("\ufe0f", "")).lower()
    return " ".join(parts)


class AVEmojiDataset(PairedDataset):
    """OpenMoji emoji paired with their spoken Unicode names (``"grinning face"``), several voices each.

    At most ``limit`` emoji of the split that have a name (see :func:`emoji_spoken_name`), a fixed
    hash-chosen subset kept in the image dataset's order; label = the emoji's index among them, so
    ``num_classes`` is the number of emoji. Each emoji is spoken by ``pairings`` distinct voices of
    the split chosen by ``(seed, emoji)``, each with its own rate and pitch. Test emoji (about 10%)
    are spoken only by held-out voices. Audio is rendered once (about 1,000x faster than real time)
    and cached like the speech corpus.

    Args:
        split: "train", "test" or "all".
        size: image side in pixels.
        limit: most emoji to use (None: all named emoji of the split).
        pairings: voices per emoji; items are ``len(emoji) * pairings``.
        seed: fixes which voices speak each emoji.
        sample_rate, segment_seconds: audio rate and fixed clip length (2 s holds ~95% of the names).
        voices: the voice pool before splitting (None: all 160 espeak-ng voices).
        sequences: also use multi-codepoint emoji (ZWJ sequences, skin tones, flags).
        image_fraction, voice_fraction: held-out shares of emoji and voices.
        disk_cache: keep rendered emoji and speech on disk between runs.
    """

    def __init__(
        self,
        split: str = "train",
        size: int = 32,
        limit: int | None = 500,
        pairings: int = 2,
        seed: int = 0,
        sample_rate: int = 16000,
        segment_seconds: float | None = 2.0,
        voices: Sequence[str] | None = None,
        sequences: bool = False,
        image_fraction: float = 0.1,
        voice_fraction: float = 0.15,
        disk_cache: bool = True,
    ) -> None:
        check_split(split)
        check_pairings(pairings)
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise VqfuseError(f"limit must be an integer >= 1 or None, got {limit!r}")
        self.segment_length = clip_length(segment_seconds, sample_rate)
        self.split, self.size, self.sample_rate = split, size, int(sample_rate)
        self.seed, self.pairings = seed, pairings
        self.emoji = EmojiDataset(size, split, fraction=image_fraction, disk_cache=disk_cache)
        named = [(j, s) for j, n in enumerate(self.emoji.names) if (s := emoji_spoken_name(n, sequences))]
        if limit is not None and len(named) > limit:
            score = {t: heldout_score("av-emoji/" + self.emoji.names[j]) for t, (j, _) in enumerate(named)}
            keep = set(sorted(score, key=score.__getitem__)[:limit])  # a fixed subset, not the first in order
            named = [x for t, x in enumerate(named) if t in keep]
        if not named:
            raise VqfuseError(f"no emoji of the '{split}' split has a Unicode name")
        self.emoji_index: list[int] = [j for j, _ in named]  # position in self.emoji, per label
        self.names: list[str] = [self.emoji.names[j] for j in self.emoji_index]  # codepoints, per label
        self.spoken_names: list[str] = [s for _, s in named]  # per label
        self.voice_names: list[str] = voices_of_split(voices, split, voice_fraction)
        if not self.voice_names:
            raise VqfuseError(f"the '{split}' split has no voices")
        self.utterances: list[Utterance] = []
        self.pairs, self.labels = [], []
        for label, (name, text) in enumerate(zip(self.names, self.spoken_names)):
            rng = np.random.default_rng(stable_hash("av-emoji", seed, name))
            for v in choose(rng, len(self.voice_names), pairings):
                voice = self.voice_names[v]
                r = np.random.default_rng(stable_hash("av-emoji-prosody", voice, text))
                rate = int(r.integers(EMOJI_RATE_RANGE[0], EMOJI_RATE_RANGE[1] + 1))
                pitch = int(r.integers(EMOJI_PITCH_RANGE[0], EMOJI_PITCH_RANGE[1] + 1))
                self.pairs.append((label, len(self.utterances)))
                self.labels.append(label)
                self.utterances.append(Utterance(text, voice, rate, pitch, "emoji", label))
        self._audio, _ = render_corpus(self.utterances, self.sample_rate, disk_cache)  # int16 (T_i,)
        self.num_classes = len(self.names)

    def image(self, j: int) -> torch.Tensor:
        return self.emoji[self.emoji_index[j]]

    def audio(self, k: int) -> torch.Tensor:
        x = int16_to_tensor(self._audio[k])  # (1, T_k)
        return x if self.segment_length is None else fit_length(x, self.segment_length)

    def describe(self, i: int) -> dict[str, Any]:
        j, k = self.pairs[i]
        u = self.utterances[k]
        return {
            **super().describe(i),
            "emoji": self.names[j],
            "voice": u.voice,
            "text": u.text,
            "audio_label": u.label,
            "seconds": len(self._audio[k]) / self.sample_rate,
        }


register_dataset(
    MODALITY,
    "av-emoji",
    paired_factory(AVEmojiDataset),
    help="OpenMoji emoji paired with their spoken Unicode names (CC BY-SA 4.0)",
)

__all__ = ["AVEmojiDataset", "emoji_spoken_name", "EMOJI_RATE_RANGE", "EMOJI_PITCH_RANGE"]
