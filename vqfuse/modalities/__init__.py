"""Modalities: image and audio; video registers itself the same way."""

from vqfuse.modalities import (
    audio,  # noqa: F401  (registers "audio")
    image,  # noqa: F401  (registers "image")
)
from vqfuse.modalities.base import Modality, get_modality, register_modality

__all__ = ["Modality", "get_modality", "register_modality"]
