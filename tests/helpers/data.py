"""Tiny in-memory datasets, registered under test names: images, audio clips, and their pairs."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from vqfuse.data.paired import PairedDataset
from vqfuse.data.registry import register_dataset

TINY_DATASET = "tinytest"


class TinyImages(Dataset):
    """Smooth random 16x16 RGB images in [-1, 1]: 40 for training, 12 held out."""

    def __init__(self, size: int = 16, split: str = "train") -> None:
        n = {"train": 40, "test": 12, "all": 52}[split]
        g = torch.Generator().manual_seed({"train": 1, "test": 2, "all": 3}[split])
        low = torch.rand(n, 3, 4, 4, generator=g) * 2 - 1  # (n, 3, 4, 4)
        self.images = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]  # (3, 16, 16)


register_dataset("image", TINY_DATASET, lambda arg, size, split: TinyImages(size, split), replace=True)


RATE, SECONDS = 8000, 0.064  # 512 samples -> 32 frames with the tiny audio model's hop of 16
TINY_AUDIO, TINY_PAIRS = "tinyaudio", "tinypairs"


class TinyAudio(torch.utils.data.Dataset):
    """Decaying tones in [-1, 1], (1, 512); 24 for training, 8 held out."""

    def __init__(self, split: str = "train", sample_rate: int = RATE, segment_seconds: float = SECONDS) -> None:
        n = {"train": 24, "test": 8, "all": 32}[split]
        g = torch.Generator().manual_seed({"train": 11, "test": 12, "all": 13}[split])
        t = torch.arange(round(sample_rate * segment_seconds)) / sample_rate
        freq = 200 + 1500 * torch.rand(n, 1, generator=g)
        self.clips = (0.6 * torch.sin(2 * torch.pi * freq * t) * torch.exp(-t / 0.03)).unsqueeze(1)  # (n, 1, L)
        self.labels = torch.arange(n) % 4

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.clips[i]


class TinyPairs(PairedDataset):
    """TinyImages paired with TinyAudio, two clips per image."""

    def __init__(
        self,
        split: str = "train",
        size: int = 16,
        sample_rate: int = RATE,
        segment_seconds: float = SECONDS,
        pairings: int = 2,
    ) -> None:
        self.split, self.size, self.sample_rate = split, size, sample_rate
        self.segment_length = round(sample_rate * segment_seconds)
        self.images, self.clips = TinyImages(size, split), TinyAudio(split, sample_rate, segment_seconds)
        n_img, n_aud = len(self.images), len(self.clips)
        self.pairs = [(j, (j * pairings + p) % n_aud) for j in range(n_img) for p in range(pairings)]
        self.labels = [j % 4 for j, _ in self.pairs]
        self.num_classes = 4

    def image(self, j: int) -> torch.Tensor:
        return self.images[j]

    def audio(self, k: int) -> torch.Tensor:
        return self.clips[k]


register_dataset(
    "audio",
    TINY_AUDIO,
    lambda arg, sample_rate, segment_seconds, split: TinyAudio(split, sample_rate, segment_seconds),
    replace=True,
)
register_dataset("paired", TINY_PAIRS, lambda arg, **kw: TinyPairs(**kw), replace=True)


def write_pair_inputs(folder: Path) -> None:
    """Two held-out images and clips as files (one of each in a subfolder, of other sizes) and a stray file."""
    from vqfuse.data.audio import save_audio_file
    from vqfuse.data.image_files import save_image_file

    data = TinyPairs("test")
    (folder / "sub").mkdir(parents=True)
    save_image_file(data.image(0), folder / "zero.png")
    save_image_file(torch.nn.functional.interpolate(data.image(1)[None], size=(20, 28))[0], folder / "sub" / "one.png")
    save_audio_file(data.audio(0), folder / "zero.wav", RATE)
    save_audio_file(data.audio(1)[..., :400], folder / "sub" / "one.wav", RATE)
    (folder / "notes.txt").write_text("not an input")
