"""VIDEO objects that are descriptions, not pixels.

A camera move or a fitted frame batch travels between nodes as a native
``VIDEO`` that knows how to render itself. FFmpegAssemble streams it inside its
single encode; any other pack can still call ``get_components()`` (frames as a
tensor, rendered on demand) or ``save_to()`` (encoded on demand).
"""
from __future__ import annotations

import io as _io
import os
import shutil
import tempfile
from fractions import Fraction

import numpy as np
import torch

from ..engine import limits
from ..engine.assembly.encode import write_clip
from ..engine.assembly.metadata import metadata_tags
from .api import Input, Types


def check_components(frames: int, width: int, height: int, label: str = "clip") -> None:
    """Refuse to expand a lazy clip into more frames (or float bytes) than the server allows."""
    cap = limits.MAX_MEDIA_FRAMES.read()
    if frames > cap:
        raise limits.LimitExceeded(f"{label}: {frames} frames as an IMAGE batch is more than this server allows "
                                   f"({cap}, ADREEL_MAX_MEDIA_FRAMES); connect the VIDEO to FFmpegAssemble, "
                                   "which streams it")
    size = frames * width * height * 3 * 4
    byte_cap = limits.MAX_FRAMES_BYTES.read()
    if size > byte_cap:
        raise limits.LimitExceeded(f"{label}: {frames} frames of {width}×{height} px are {size / 2**30:.1f} GiB as "
                                   f"float IMAGE frames, more than this server allows ({byte_cap / 2**30:.1f} GiB, "
                                   "ADREEL_MAX_FRAMES_BYTES); connect the VIDEO to FFmpegAssemble, which streams it")


class RenderOnDemandVideo(Input.Video):
    def __init__(self, clip, label: str = "clip"):
        self.clip = clip
        self.label = label

    # cheap facts, no rendering
    def get_dimensions(self) -> tuple[int, int]:
        return self.clip.width, self.clip.height

    def get_frame_count(self) -> int:
        return int(self.clip.frame_count)

    def get_frame_rate(self) -> Fraction:
        return Fraction(self.clip.fps).limit_denominator(1001)

    def get_duration(self) -> float:
        return self.clip.frame_count / self.clip.fps

    def get_container_format(self) -> str:
        return "mp4"

    # rendering on demand
    def get_components(self):
        """Every frame as a float IMAGE batch, for packs that want pixels: bounded by the server's
        ceilings (frames, and bytes of the batch) and filled in place, one frame at a time."""
        c = self.clip
        check_components(int(c.frame_count), c.width, c.height, self.label)
        images = torch.empty((int(c.frame_count), c.height, c.width, 3), dtype=torch.float32)
        for k, f in enumerate(c.rgb_frames(0, c.frame_count)):
            images[k].copy_(torch.from_numpy(np.ascontiguousarray(f))).div_(255)
        return Types.VideoComponents(images=images, audio=None, frame_rate=self.get_frame_rate())

    def save_to(self, path, format="auto", codec="auto", metadata=None):
        """Encode the clip as an MP4; ``metadata`` ({name: value}, e.g. SaveVideo's prompt and workflow)
        becomes container tags as in ComfyUI's own videos, redacted (engine: mp4_metadata)."""
        if isinstance(path, _io.IOBase) or hasattr(path, "write"):
            with tempfile.TemporaryDirectory() as tmp:
                p = os.path.join(tmp, "clip.mp4")
                self.save_to(p, format, codec, metadata)
                with open(p, "rb") as f:
                    shutil.copyfileobj(f, path)
            return
        c = self.clip
        write_clip(c, c.frame_count, c.width, c.height, c.fps, path, metadata=metadata_tags(metadata) or None)

    def __repr__(self) -> str:
        return f"<AdReel {self.label} {self.clip.width}x{self.clip.height} {self.get_duration():.2f}s>"
