"""Modalities: image, audio and video, each registering itself on import."""

from vqfuse.modalities import (
    audio,  # noqa: F401  (registers "audio")
    image,  # noqa: F401  (registers "image")
    video,  # noqa: F401  (registers "video")
)
from vqfuse.modalities.base import Modality, get_modality, register_modality

__all__ = ["Modality", "get_modality", "register_modality"]
