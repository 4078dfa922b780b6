"""Datasets: built-in image, speech and paired data, folders of files, splits and a spec registry.

Every image dataset yields float32 tensors ``(3, S, S)`` in [-1, 1]; build one from a spec string
with :func:`image_dataset` (``emoji``, ``digits``, ``photos``, ``folder:PATH``).

One module per source, each registering itself on import: images :mod:`.emoji`, :mod:`.digits`,
:mod:`.photos`, :mod:`.image_folder`; audio :mod:`.audio` (``folder:PATH``), :mod:`.speech`; paired
:mod:`.paired`; video :mod:`.moving` (``moving-digits``, ``moving-emoji``), :mod:`.video_folder`
(``bigbuckbunny``, ``folder:PATH``). Shared pieces: :mod:`.image_files`, :mod:`.video_files`, :mod:`.files`,
:mod:`.cache`, :mod:`.split`, :mod:`.espeak`, :mod:`.speech_render`, :mod:`.registry`.
"""

# Importing a source registers it: the order below is the order each modality lists its specs in.
from vqfuse.data.emoji import OPENMOJI_ATTRIBUTION, EmojiDataset  # isort: skip
from vqfuse.data.digits import DigitsDataset  # isort: skip
from vqfuse.data.photos import PhotosDataset  # isort: skip
from vqfuse.data.image_folder import FolderDataset  # isort: skip
from vqfuse.data.audio import AudioFolderDataset  # isort: skip
from vqfuse.data.speech import SpeechDataset  # isort: skip
from vqfuse.data.paired import PairedDataset, make_paired_dataset  # isort: skip
from vqfuse.data.moving import MovingDigitsDataset, MovingEmojiDataset  # isort: skip
from vqfuse.data.video_folder import BigBuckBunnyDataset, VideoFolderDataset  # isort: skip
from vqfuse.data.image_files import IMAGE_EXTENSIONS, load_image_file, save_image_file
from vqfuse.data.registry import dataset_entries, image_dataset, make_dataset, parse_spec, register_dataset
from vqfuse.data.split import is_heldout, select_split, split_items
from vqfuse.data.video_files import VIDEO_EXTENSIONS, VideoInfo, read_video
from vqfuse.data.video_write import write_video

__all__ = [
    "AudioFolderDataset",
    "SpeechDataset",
    "IMAGE_EXTENSIONS",
    "OPENMOJI_ATTRIBUTION",
    "DigitsDataset",
    "EmojiDataset",
    "FolderDataset",
    "PhotosDataset",
    "load_image_file",
    "save_image_file",
    "image_dataset",
    "make_dataset",
    "parse_spec",
    "register_dataset",
    "dataset_entries",
    "is_heldout",
    "split_items",
    "select_split",
    "PairedDataset",
    "make_paired_dataset",
    "MovingDigitsDataset",
    "MovingEmojiDataset",
    "BigBuckBunnyDataset",
    "VideoFolderDataset",
    "VIDEO_EXTENSIONS",
    "VideoInfo",
    "read_video",
    "write_video",
]
