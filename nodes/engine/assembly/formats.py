"""What one clip can be saved as, on its own (``write_clip``): containers × video codecs, as data.

A lazy clip asked to save itself (ComfyUI's Save Video, another pack) names a
container (``mp4``, ``mkv``, ``webm`` or ``auto``: from the file's extension,
else MP4), a codec (``h264``, ``vp9``, ``av1`` or ``auto``: the container's
first), a quality (``crf``), a bit depth (8, or 10 where the encoder has a
10-bit pixel format), a colour space and an H.264 speed ``preset``.
``clip_format`` checks the combination against these tables and against the
encoders of the ffmpeg found here, and says in one sentence what it cannot do.

AdReel renders SDR pictures (BT.709 primaries and matrix, limited range, as
the assembler tags them): ``sRGB`` (or ``auto`` / None) is the only colour space.
An HDR request (``HDR`` HLG, ``HDR PQ``) would need a colour conversion AdReel
does not do, so it is refused, as ComfyUI refuses saving an sRGB file as HDR.
The clips are silent: no audio stream is written.
"""
from __future__ import annotations

import functools
import math
import os
import subprocess
import tempfile
from dataclasses import dataclass

from ..media.ffmpeg import FFmpegNotFound, capabilities, find_ffmpeg, input_args
from ..cloud.redaction import redact
from ..models import AdReelInputError
from .encode import PRESETS, FrameSource, metadata_args
from .metadata import write_ffmetadata


@dataclass(frozen=True)
class CodecSpec:
    encoders: tuple[str, ...]          # ffmpeg encoders, the first one present is used
    crf_range: tuple[int, int]
    default_crf: int
    args: dict                         # encoder → its options besides crf / pixel format
    profile: dict                      # bit depth → profile (H.264: high / high10)


CODECS: dict[str, CodecSpec] = {
    "h264": CodecSpec(("libx264",), (0, 51), 20, {"libx264": ["-x264-params", "8x8dct=1"]},
                      {8: "high", 10: "high10"}),
    "vp9": CodecSpec(("libvpx-vp9",), (0, 63), 32,
                     {"libvpx-vp9": ["-b:v", "0", "-row-mt", "1", "-deadline", "good", "-cpu-used", "5"]}, {}),
    # crf 0 is lossless in some AV1 encoders and "unset" in others: 1..63 means the same everywhere
    "av1": CodecSpec(("libsvtav1", "libaom-av1"), (1, 63), 30,
                     {"libsvtav1": ["-preset", "8"], "libaom-av1": ["-b:v", "0", "-cpu-used", "8", "-row-mt", "1"]},
                     {}),
}


@dataclass(frozen=True)
class ContainerSpec:
    muxer: str
    extension: str
    codecs: tuple[str, ...]            # the first is what ``auto`` means


CONTAINERS: dict[str, ContainerSpec] = {
    "mp4": ContainerSpec("mp4", "mp4", ("h264", "av1")),
    "mkv": ContainerSpec("matroska", "mkv", ("h264", "vp9", "av1")),
    "webm": ContainerSpec("webm", "webm", ("vp9", "av1")),
}
EXTENSIONS = {spec.extension: name for name, spec in CONTAINERS.items()}
PIXEL_FORMATS = {8: "yuv420p", 10: "yuv420p10le"}
COLOR_SPACES = ("sRGB",)
HDR_COLOR_SPACES = ("HDR", "HDR PQ")


@dataclass(frozen=True)
class ClipFormat:
    """A checked choice: container, codec, the encoder that writes it, crf, bit depth, preset."""
    container: str = "mp4"
    codec: str = "h264"
    encoder: str = "libx264"
    crf: int = 20
    bit_depth: int = 8
    preset: str = "medium"

    @property
    def muxer(self) -> str:
        return CONTAINERS[self.container].muxer

    def video_args(self) -> list[str]:
        spec = CODECS[self.codec]
        args = ["-c:v", self.encoder]
        if self.codec == "h264":
            args += ["-preset", self.preset]
        args += ["-crf", str(self.crf), *spec.args.get(self.encoder, [])]
        if self.bit_depth in spec.profile:
            args += ["-profile:v", spec.profile[self.bit_depth]]
        return args + ["-pix_fmt", PIXEL_FORMATS[self.bit_depth], "-colorspace", "bt709", "-color_primaries",
                       "bt709", "-color_trc", "bt709", "-color_range", "tv"]


def _shown(value) -> str:
    """A caller's value inside an error: masked like every message, and short."""
    text = redact(repr(value))
    return text if len(text) <= 40 else text[:39] + "…"


def _name(value) -> str:
    """A core enum member (``VideoContainer.WEBM``) or a plain string → its lower-case name."""
    return str(getattr(value, "value", value)).strip().lower()


@functools.lru_cache(maxsize=32)
def encoder_pixel_formats(ffmpeg: str, encoder: str) -> frozenset[str]:
    """The pixel formats ffmpeg says ``encoder`` takes (``ffmpeg -h encoder=…``)."""
    try:
        out = subprocess.run([ffmpeg, "-hide_banner", "-h", f"encoder={encoder}"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    for line in out.splitlines():
        if "pixel formats:" in line:
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def _ffmpeg_with(encoder: str) -> str | None:
    try:
        return find_ffmpeg((encoder,), ())
    except FFmpegNotFound:
        return None


def container_for(path) -> str:
    """``auto``'s container: from the file's extension (``.mkv``, ``.webm``), else MP4."""
    ext = str(path).rsplit(".", 1)[-1].lower() if isinstance(path, str) and "." in str(path) else ""
    return EXTENSIONS.get(ext, "mp4")


def clip_format(container="auto", codec="auto", path=None, crf=None, bit_depth=None, color_space=None,
                preset=None, ffmpeg: str | None = None) -> ClipFormat:
    """The checked ``ClipFormat`` for these choices (core enums or plain strings), or an
    ``AdReelInputError`` naming the choice this server cannot write and what it can."""
    name = _name(container if container is not None else "auto")
    if name == "auto":
        name = container_for(path)
    if name not in CONTAINERS:
        raise AdReelInputError("format", f"{_shown(name)} is not a container AdReel writes: "
                                         f"{', '.join(CONTAINERS)} (or auto)")
    spec = CONTAINERS[name]
    cname = _name(codec if codec is not None else "auto")
    if cname == "auto":
        cname = spec.codecs[0]
    if cname not in CODECS:
        raise AdReelInputError("codec", f"{_shown(cname)} is not a codec AdReel writes: {', '.join(CODECS)} (or auto)")
    if cname not in spec.codecs:
        raise AdReelInputError("codec", f"{name} holds {' or '.join(spec.codecs)}, not {cname}")
    cspec = CODECS[cname]

    space = None if color_space is None else str(getattr(color_space, "value", color_space)).strip()
    if space in HDR_COLOR_SPACES:
        raise AdReelInputError("color_space", f"{_shown(space)}: AdReel's clips are SDR (BT.709/sRGB) and it does not "
                                              "convert them to HDR; use sRGB or auto")
    if space not in (None, "", "auto", *COLOR_SPACES):
        raise AdReelInputError("color_space", f"{_shown(space)} is not one of sRGB, auto")

    depth = 8 if bit_depth is None else bit_depth
    if isinstance(depth, bool) or not isinstance(depth, (int, float)) or depth not in PIXEL_FORMATS:
        raise AdReelInputError("bit_depth", f"{_shown(bit_depth)} is not one of {', '.join(map(str, PIXEL_FORMATS))}")
    depth = int(depth)

    if crf is None:
        quality = cspec.default_crf
    else:
        try:
            q = float(crf)
        except (TypeError, ValueError):
            raise AdReelInputError("crf", f"{_shown(crf)} is not a number") from None
        lo, hi = cspec.crf_range
        if not math.isfinite(q) or not lo <= q <= hi:
            raise AdReelInputError("crf", f"{_shown(crf)} is not within {lo}..{hi} for {cname}")
        quality = int(round(q))

    speed = "medium" if preset is None else str(preset)
    if speed not in PRESETS:
        raise AdReelInputError("preset", f"{_shown(speed)} is not one of {', '.join(PRESETS)}")

    encoder, binary = None, None
    for name_ in cspec.encoders:  # the first encoder any usable ffmpeg has (write_clip finds the same binary)
        binary = _ffmpeg_with(name_) if ffmpeg is None else (ffmpeg if name_ in capabilities(ffmpeg)[0] else None)
        if binary is not None:
            encoder = name_
            break
    if encoder is None:
        raise AdReelInputError("codec", f"{cname} needs ffmpeg's {' or '.join(cspec.encoders)} encoder, which "
                                        "no ffmpeg found here has: install a full ffmpeg build or set ADREEL_FFMPEG")
    if PIXEL_FORMATS[depth] not in encoder_pixel_formats(binary, encoder):
        raise AdReelInputError("bit_depth", f"{depth}-bit {cname}: {binary}'s {encoder} has no "
                                            f"{PIXEL_FORMATS[depth]} pixel format")
    return ClipFormat(name, cname, encoder, quality, depth, speed)


def write_clip(source: FrameSource, frame_count: int, width: int, height: int, fps: float, out_path: str,
               fmt: ClipFormat | None = None, metadata: dict[str, str] | None = None) -> None:
    """Encode one clip on its own (for packs that ask a lazy clip to save itself) in ``fmt`` (default:
    H.264 MP4); ``metadata``: container tags (``metadata_tags``), written as ComfyUI's SaveVideo does
    (MP4: ``use_metadata_tags`` with the ``moov`` first; Matroska/WebM: tags)."""
    fmt = fmt or ClipFormat()
    if width % 2 or height % 2:
        raise AdReelInputError("video", f"{width}×{height} px: {fmt.codec} in 4:2:0 needs an even width and "
                                        "height (crop or resize to even numbers)")
    binary = find_ffmpeg((fmt.encoder,), ())
    cmd = [binary, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-f", "rawvideo",
           "-pix_fmt", "yuv420p", "-s", f"{width}x{height}", "-framerate", str(fps), "-i", "pipe:0"]
    tmp = None
    if metadata:
        tmp = tempfile.TemporaryDirectory(prefix="adreel_meta_")
        cmd += input_args(write_ffmetadata(metadata, os.path.join(tmp.name, "metadata.txt")), "ffmetadata")
        tail = metadata_args("mp4" if fmt.container == "mp4" else fmt.container, 1)
    else:
        tail = ["-movflags", "+faststart"] if fmt.container == "mp4" else []
    cmd += ["-map", "0:v", *fmt.video_args(), "-g", str(max(1, round(2 * float(fps)))), *tail,
            "-frames:v", str(int(frame_count)), "-f", fmt.muxer, out_path]
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            for frame in source.yuv_frames(0, frame_count):
                proc.stdin.write(frame.data)
            proc.stdin.close()
        except BrokenPipeError:
            pass
        err = proc.stderr.read().decode(errors="replace")
        if proc.wait() != 0:
            raise RuntimeError(f"ffmpeg could not write the clip as {fmt.container}/{fmt.codec}: "
                               f"{err.strip()[-800:]}")
    finally:
        if tmp is not None:
            tmp.cleanup()
