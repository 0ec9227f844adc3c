"""VIDEO objects that are descriptions, not pixels.

A camera move or a fitted frame batch travels between nodes as a native
``VIDEO`` that knows how to render itself. FFmpegAssemble streams it inside its
single encode; any other pack can still call ``get_components()`` (frames as a
tensor, rendered on demand) or ``save_to()`` (encoded on demand).

It honours the whole ``VideoInput`` interface of ComfyUI from 0.3.75 to the
newest core (one class: the methods a core lacks are simply never called):

* edits render nothing: ``as_trimmed`` (a frame window), ``as_cropped`` and
  ``as_resized`` return a new lazy video (engine: ``motion.edits``);
* ``get_stream_source`` is a real file: the unedited clip, encoded once as H.264
  MP4 into a private temporary folder (not ComfyUI's input/output/temp), shared by
  every trim of it and removed with the last of them. ``get_active_trim_window``
  says which part of that file a trimmed video shows, ``has_pending_frame_edits``
  whether crops or resizes are still to be applied;
* ``save_to`` writes MP4, MKV or WebM with H.264, VP9 or AV1 at the asked crf,
  bit depth and preset, or refuses naming what it cannot do (engine:
  ``assembly.formats``). The clips are SDR: ``get_color_space`` is ``sRGB``,
  ``get_bit_depth`` 8.
"""
from __future__ import annotations

import io as _io
import math
import os
import shutil
import tempfile
import threading
import weakref
from fractions import Fraction

import numpy as np
import torch

from ..engine import limits
from ..engine.assembly.formats import clip_format, write_clip
from ..engine.assembly.metadata import metadata_tags
from ..engine.models import AdReelInputError
from ..engine.motion.edits import Crop, EditedClip, Resize, even_crop_rect
from .api import Input, Types, image_scaler


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


class _StreamFile:
    """A clip encoded once (H.264 MP4) into a private folder of its own (mode 0700), on first use;
    the folder goes when the last video sharing it is collected, or when the process exits."""

    def __init__(self, clip):
        self.clip = clip
        self._lock = threading.Lock()
        self._path: str | None = None

    def path(self) -> str:
        with self._lock:
            if self._path is None or not os.path.isfile(self._path):
                folder = tempfile.mkdtemp(prefix="adreel-stream-")
                path = os.path.join(folder, "clip.mp4")
                try:
                    c = self.clip
                    write_clip(c, int(c.frame_count), c.width, c.height, c.fps, path)
                except BaseException:
                    shutil.rmtree(folder, ignore_errors=True)
                    raise
                weakref.finalize(self, shutil.rmtree, folder, True)
                self._path = path
            return self._path


def _seconds(value, name: str) -> float:
    v = 0.0 if value is None else float(value)
    if not math.isfinite(v):
        raise AdReelInputError(name, f"must be a finite number of seconds, got {value!r}")
    return v


class RenderOnDemandVideo(Input.Video):
    def __init__(self, clip, label: str = "clip", _stream: _StreamFile | None = None):
        self.clip = clip  # the engine clip FFmpegAssemble streams (an EditedClip once trimmed or cropped)
        self.label = label
        self._stream = _stream or _StreamFile(clip.root if isinstance(clip, EditedClip) else clip)

    def _edited(self) -> EditedClip:
        return self.clip if isinstance(self.clip, EditedClip) else EditedClip(self.clip)

    def _derived(self, clip: EditedClip, what: str) -> "RenderOnDemandVideo":
        return RenderOnDemandVideo(clip, f"{self.label}, {what}", self._stream)

    # cheap facts, no rendering
    def get_dimensions(self) -> tuple[int, int]:
        return int(self.clip.width), int(self.clip.height)

    def get_display_dimensions(self) -> tuple[int, int]:
        return self.get_dimensions()  # never rotated

    def get_frame_count(self) -> int:
        return int(self.clip.frame_count)

    def get_frame_rate(self) -> Fraction:
        return Fraction(self.clip.fps).limit_denominator(1001)

    def get_duration(self) -> float:
        return self.clip.frame_count / self.clip.fps

    def get_container_format(self) -> str:
        return "mp4"  # what get_stream_source holds

    def get_color_space(self) -> str:
        return "sRGB"

    def get_bit_depth(self) -> int:
        return 8

    def get_active_trim_window(self) -> tuple[float, float]:
        """(start, duration) in seconds of the part of ``get_stream_source()`` this video shows; (0, 0): all."""
        return self.clip.window_seconds() if isinstance(self.clip, EditedClip) else (0.0, 0.0)

    def has_pending_frame_edits(self) -> bool:
        """True when crops or resizes are not in ``get_stream_source()`` (a caller must re-encode)."""
        return isinstance(self.clip, EditedClip) and self.clip.has_frame_ops

    # edits, nothing rendered
    def as_trimmed(self, start_time: float | None = None, duration: float | None = None,
                   strict_duration: bool = False) -> "RenderOnDemandVideo | None":
        """Frames from ``start_time`` (seconds; negative: from the end) for ``duration`` (0 or None: to the
        end), to the nearest frame. None when nothing is left, or when ``strict_duration`` and the clip
        is shorter than asked."""
        fps = float(self.clip.fps)
        n = int(self.clip.frame_count)
        start, dur = _seconds(start_time, "start_time"), _seconds(duration, "duration")
        if dur < 0:
            return None
        if start < 0:
            start = max(n / fps + start, 0.0)
        first = round(start * fps)
        available = n - first
        want = round(dur * fps) if dur > 0 else available
        if available <= 0 or want <= 0 or (strict_duration and dur > 0 and want > available):
            return None
        count = min(want, available)
        return self._derived(self._edited().window(first, count), f"{first / fps:.3f}s +{count / fps:.3f}s")

    def as_cropped(self, x: int = 0, y: int = 0, width: int = 0, height: int = 0) -> "RenderOnDemandVideo":
        """The rectangle, clamped to the frame with its corner and size on even pixels; an empty or
        whole-frame rectangle gives this video back."""
        w, h = self.get_dimensions()
        rect = even_crop_rect(x, y, width, height, w, h)
        if rect is None:
            return self
        return self._derived(self._edited().with_op(Crop(*rect)), "crop {}x{}+{}+{}".format(rect[2], rect[3], *rect[:2]))

    def as_resized(self, width: int, height: int, upscale_method: str, crop: str = "disabled",
                   post_crop: tuple[int, int, int, int] | None = None) -> "RenderOnDemandVideo":
        """Every frame scaled as ComfyUI's Resize Image node scales it (``upscale_method``, ``crop``),
        then cut to ``post_crop`` (x, y, w, h) exactly; timing untouched."""
        width, height = int(width), int(height)
        if width < 1 or height < 1:
            raise AdReelInputError("as_resized", f"{width}×{height} px is no frame size")
        clip = self._edited().with_op(Resize(width, height, image_scaler(width, height, upscale_method, crop)))
        if post_crop is not None:
            x, y, w, h = (int(v) for v in post_crop)
            if x < 0 or y < 0 or w < 1 or h < 1 or x + w > width or y + h > height:
                raise AdReelInputError("post_crop", f"{w}×{h}+{x}+{y} does not lie inside {width}×{height}")
            clip = clip.with_op(Crop(x, y, w, h))
        return self._derived(clip, f"resized {width}x{height}")

    # rendering on demand
    def get_stream_source(self) -> str:
        return self._stream.path()

    def get_components(self):
        """Every frame as a float IMAGE batch, for packs that want pixels: bounded by the server's
        ceilings (frames, and bytes of the batch) and filled in place, one frame at a time."""
        c = self.clip
        n, (w, h) = int(c.frame_count), self.get_dimensions()
        check_components(n, w, h, self.label)
        images = torch.empty((n, h, w, 3), dtype=torch.float32)
        for k, f in enumerate(c.rgb_frames(0, n)):
            images[k].copy_(torch.from_numpy(np.ascontiguousarray(f))).div_(255)
        return Types.VideoComponents(images=images, audio=None, frame_rate=self.get_frame_rate())

    def save_to(self, path, format="auto", codec="auto", metadata=None, bit_depth=None, crf=None,
                color_space=None, preset=None, **options):
        """Encode the clip: ``format`` mp4 / mkv / webm / auto (from the extension), ``codec`` h264 / vp9 /
        av1 / auto, ``crf``, ``bit_depth`` 8 or 10, ``color_space`` sRGB / auto, ``preset`` (H.264), as
        core's enums or plain strings. ``metadata`` ({name: value}, e.g. SaveVideo's prompt and workflow)
        becomes container tags as in ComfyUI's own videos, redacted (``metadata_tags``). A keyword a newer
        ComfyUI may add is accepted when it asks for nothing (None); otherwise the error names it."""
        asked = sorted(k for k, v in options.items() if v is not None)
        if asked:
            names = ", ".join(k if k.isidentifier() and len(k) <= 40 else "(an odd name)" for k in asked[:5])
            raise AdReelInputError("save_to", f"AdReel's lazy video does not know {names} (update AdReel, "
                                              "or leave them unset)")
        target = path if isinstance(path, (str, os.PathLike)) else None
        fmt = clip_format(format, codec, os.fspath(target) if target is not None else None, crf=crf,
                          bit_depth=bit_depth, color_space=color_space, preset=preset)
        if target is None:
            if not (isinstance(path, _io.IOBase) or hasattr(path, "write")):
                raise AdReelInputError("save_to", f"path must be a file name or a writable file, not {type(path).__name__}")
            with tempfile.TemporaryDirectory(prefix="adreel-save-") as tmp:
                p = os.path.join(tmp, f"clip.{fmt.container}")
                self._write(p, fmt, metadata)
                with open(p, "rb") as f:
                    shutil.copyfileobj(f, path)
            return
        self._write(os.fspath(target), fmt, metadata)

    def _write(self, path: str, fmt, metadata) -> None:
        c = self.clip
        w, h = self.get_dimensions()
        write_clip(c, int(c.frame_count), w, h, c.fps, path, fmt, metadata=metadata_tags(metadata) or None)

    def __repr__(self) -> str:
        w, h = self.get_dimensions()
        return f"<AdReel {self.label} {w}x{h} {self.get_duration():.2f}s>"
