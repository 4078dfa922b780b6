"""Modalities: image now; audio and video register themselves the same way."""

from vqfuse.modalities.base import Modality, get_modality, register_modality
from vqfuse.modalities import image  # noqa: F401  (registers "image")

__all__ = ["Modality", "get_modality", "register_modality"]
