"""Modalities: image and audio; video registers itself the same way."""

from vqfuse.modalities.base import Modality, get_modality, register_modality
from vqfuse.modalities import image  # noqa: F401  (registers "image")
from vqfuse.modalities import audio  # noqa: F401  (registers "audio")

__all__ = ["Modality", "get_modality", "register_modality"]
