"""The ``digits`` image dataset: scikit-learn's 1,797 handwritten 8x8 digits, upscaled."""

from __future__ import annotations

import torch

from vqfuse.data.image_files import ArrayImageDataset, check_image_size
from vqfuse.data.registry import register_dataset
from vqfuse.data.split import check_split, select_split


class DigitsDataset(ArrayImageDataset):
    """scikit-learn's handwritten digits (white ink on black), 8x8 upscaled bilinearly to ``size``.

    ``__getitem__`` returns only the image ``(3, size, size)``; labels are in ``.labels`` (int64,
    one per item) and :meth:`label`.
    """

    def __init__(self, size: int = 32, split: str = "train", fraction: float = 0.1) -> None:
        from sklearn.datasets import load_digits

        check_image_size(size)
        check_split(split)
        digits = load_digits()
        x = torch.from_numpy(digits.images).float().div(16.0).unsqueeze(1)  # (N, 1, 8, 8) in [0, 1]
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        x = (x.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1)  # (N, 3, S, S)
        images = x.permute(0, 2, 3, 1).contiguous().numpy()  # (N, S, S, 3)
        idx = select_split(range(len(images)), lambda i: f"digits/{i}", split, fraction)
        super().__init__(images[idx], [f"digits/{i}" for i in idx])
        self.labels: torch.Tensor = torch.as_tensor(digits.target[idx], dtype=torch.int64)  # (N,)
        self.split = split

    def label(self, i: int) -> int:
        """The digit (0-9) shown by item ``i``."""
        return int(self.labels[i])


register_dataset(
    "image",
    "digits",
    lambda arg, size, split: DigitsDataset(size, split),
    help="1,797 handwritten digits from scikit-learn",
)

__all__ = ["DigitsDataset"]
