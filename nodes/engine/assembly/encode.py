"""The assembly stage: storyboard + one frame source per scene → the finished ad,
in ONE pass: every output format is encoded once from the same frames.

Frames are produced here (camera moves, decoded clips, transitions, brand
cards) as raw yuv420p and streamed through a pipe into a single ffmpeg
process. ffmpeg overlays the text cards (rendered to PNG by text_render: text
never enters filter syntax), burns the subtitles (libass), adds the corner
logo and the mixed audio, and splits the picture to each encoder (H.264 MP4,
VP9 WebM, ProRes MOV, a JPEG thumbnail). HLS is cut from the MP4 without
re-encoding. Memory holds a few frames, whatever the length.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol

import cv2
import numpy as np
from PIL import Image

from ..media.ffmpeg import file_url, find_ffmpeg, input_args
from ..channels import brief_layout
from ..models import AdReelInputError, OutputFile, Storyboard
from .metadata import write_ffmetadata
from ..media.frames import ease_in_out, pack_yuv420, rgb_to_yuv420
from ..media.text import CardLook, hex_rgb, render_text_card

TRANSITION_SECONDS = {"cut": 0.0, "fade": 0.5, "crossfade": 0.5, "wipeleft": 0.5, "wiperight": 0.5,
                      "wipeup": 0.5, "wipedown": 0.5, "slideleft": 0.45, "slideright": 0.45,
                      "slideup": 0.45, "slidedown": 0.45}
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower")
FORMATS = ("mp4", "webm", "mov", "hls")
ENTRANCE_SECONDS = 0.45


class FrameSource(Protocol):
    """Anything that yields yuv420p frames of the output size for a scene.

    ``first`` may be negative or run past the scene: sources extend their first
    and last frames (camera moves simply continue) so transitions can overlap.
    """

    def yuv_frames(self, first: int, count: int) -> Iterator[np.ndarray]: ...


@dataclass
class EncodeSettings:
    preset: str = "medium"
    crf: int = 20
    audio_bitrate: str = "192k"

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise AdReelInputError("preset", f"is not one of {', '.join(PRESETS)}")
        if not 0 <= int(self.crf) <= 51:
            raise AdReelInputError("crf", f"{self.crf} is not within 0..51")

    def video_args(self) -> list[str]:
        # 8x8dct is on in every preset but ultrafast; keeping it on keeps the stream High profile
        return ["-c:v", "libx264", "-preset", self.preset, "-crf", str(int(self.crf)), "-profile:v", "high",
                "-x264-params", "8x8dct=1",
                "-pix_fmt", "yuv420p", "-colorspace", "bt709", "-color_primaries", "bt709",
                "-color_trc", "bt709", "-color_range", "tv"]


@dataclass
class Overlay:
    """An RGBA image laid over the picture from ``start`` to ``end`` (seconds)."""
    path: str
    x: int
    y: int
    start: float
    end: float
    slide_in: bool = True


@dataclass
class Card:
    """A full-frame still blended over frames [start, end) with a fade-in."""
    start: int
    end: int
    yuv: np.ndarray
    fade_frames: int


@dataclass
class AssemblyExtras:
    """Everything beyond picture + text: audio, subtitles, logo, cards, formats."""
    audio_path: str | None = None           # the mix (WAV); None: silence
    audio_filter: str | None = None         # applied in this pass (the loudness gain, a limiter)
    subtitles_path: str | None = None       # .ass to burn in (inside work_dir)
    fonts_dir: str | None = None            # extra fonts for libass (inside work_dir)
    logo: Overlay | None = None
    cards: list[Card] = field(default_factory=list)
    text_until: float | None = None         # headlines hide from here (the end card)
    formats: tuple[str, ...] = ("mp4",)
    thumbnail_frame: int | None = None
    metadata: dict[str, str] | None = None  # container tags (the workflow: mp4_metadata), in MP4, WebM and MOV
    font: str | None = None                 # the headlines' font (family or file); None: Noto Sans CJK


@dataclass
class AssembleResult:
    path: str
    width: int
    height: int
    fps: int
    frames: int
    duration: float
    seconds: float
    overlays: list[Overlay] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # kind → path (mp4, webm, mov, hls, thumbnail)


def transition_half_widths(sb: Storyboard) -> list[int]:
    """Half-width in frames of the transition INTO scene j+1, for each boundary j.

    A transition is centred on the boundary, so scene times stay where the
    storyboard put them and the total length never changes.
    """
    out = []
    for a, b in zip(sb.scenes, sb.scenes[1:]):
        h = round(TRANSITION_SECONDS.get(b.transition, 0.0) * sb.fps / 2)
        out.append(max(0, min(h, a.frame_count // 3, b.frame_count // 3)))
    return out


def _planes(buf: np.ndarray, W: int, H: int):
    n, c = W * H, (W // 2) * (H // 2)
    return (buf[:n].reshape(H, W), buf[n:n + c].reshape(H // 2, W // 2), buf[n + c:n + 2 * c].reshape(H // 2, W // 2))


def blend_transition(kind: str, a: np.ndarray, b: np.ndarray, alpha: float, out: np.ndarray,
                     black: np.ndarray, W: int, H: int) -> np.ndarray:
    """Frame ``alpha`` (0..1) of the transition from ``a`` to ``b``, written into ``out``."""
    if kind == "fade":  # through black
        if alpha < 0.5:
            cv2.addWeighted(a, 1 - 2 * alpha, black, 2 * alpha, 0, dst=out)
        else:
            cv2.addWeighted(black, 2 - 2 * alpha, b, 2 * alpha - 1, 0, dst=out)
        return out
    if kind == "crossfade" or not (kind.startswith("wipe") or kind.startswith("slide")):
        cv2.addWeighted(a, 1 - alpha, b, alpha, 0, dst=out)
        return out
    e = ease_in_out(alpha)
    for pa, pb, po in zip(_planes(a, W, H), _planes(b, W, H), _planes(out, W, H)):
        h, w = po.shape
        if kind.startswith("wipe"):
            po[:] = pa
            if kind == "wipeleft":
                x = int(round(w * (1 - e)))
                po[:, x:] = pb[:, x:]
            elif kind == "wiperight":
                x = int(round(w * e))
                po[:, :x] = pb[:, :x]
            elif kind == "wipeup":
                y = int(round(h * (1 - e)))
                po[y:, :] = pb[y:, :]
            else:
                y = int(round(h * e))
                po[:y, :] = pb[:y, :]
        else:
            if kind in ("slideleft", "slideright"):
                off = int(round(w * e))
                if kind == "slideleft":   # B pushes in from the right
                    po[:, :w - off], po[:, w - off:] = pa[:, off:], pb[:, :off]
                else:
                    po[:, off:], po[:, :off] = pa[:, :w - off], pb[:, w - off:]
            else:
                off = int(round(h * e))
                if kind == "slideup":     # B pushes in from the bottom
                    po[:h - off, :], po[h - off:, :] = pa[off:, :], pb[:off, :]
                else:
                    po[off:, :], po[:off, :] = pa[:h - off, :], pb[h - off:, :]
    return out


def frame_stream(sb: Storyboard, sources: list[FrameSource], cards: list[Card] | None = None) -> Iterator[np.ndarray]:
    """Exactly ``sb.total_frames`` yuv420p frames: scenes in order, transitions and cards blended."""
    if len(sources) != len(sb.scenes):
        raise AdReelInputError("clips", f"{len(sources)} clips for {len(sb.scenes)} storyboard scenes")
    W, H = sb.width, sb.height
    hw = transition_half_widths(sb)
    n = len(sb.scenes)
    fsize = W * H * 3 // 2
    black = np.empty(fsize, np.uint8)
    black[: W * H] = 16
    black[W * H:] = 128
    out = np.empty(fsize, np.uint8)
    carded = np.empty(fsize, np.uint8)
    cards = sorted(cards or [], key=lambda c: c.start)

    def window(j):
        lead = hw[j - 1] if j > 0 else 0
        tail = hw[j] if j < n - 1 else 0
        return iter(sources[j].yuv_frames(-lead, sb.scenes[j].frame_count + lead + tail))

    def with_cards(k, frame):
        for c in cards:
            if c.start <= k < c.end:
                a = min(1.0, (k - c.start + 1) / max(1, c.fade_frames))
                if a >= 1.0:
                    return c.yuv
                cv2.addWeighted(frame, 1 - a, c.yuv, a, 0, dst=carded)
                return carded
        return frame

    k = 0
    it = window(0)
    for j, sc in enumerate(sb.scenes):
        lead = hw[j - 1] if j > 0 else 0
        tail = hw[j] if j < n - 1 else 0
        for _ in range(sc.frame_count - lead - tail):
            yield with_cards(k, next(it))
            k += 1
        if j == n - 1:
            break
        nxt = window(j + 1)
        span = 2 * tail
        kind = sb.scenes[j + 1].transition
        for m in range(span):
            a, b = next(it), next(nxt)
            yield with_cards(k, blend_transition(kind, a, b, (m + 0.5) / span, out, black, W, H))
            k += 1
        it = nxt


def still_card(image: Image.Image, start: int, end: int, fade_frames: int) -> Card:
    rgb = np.asarray(image.convert("RGB"))
    return Card(start, end, pack_yuv420(rgb_to_yuv420(rgb)), fade_frames)


def render_text_overlays(sb: Storyboard, work_dir: str, font: str | None = None,
                         until: float | None = None) -> list[Overlay]:
    """One PNG card per scene with on-screen text, placed in the headline zone."""
    lay = brief_layout(sb.brief, sb.width, sb.height)
    box = lay.headline
    overlays = []
    for sc in sb.scenes:
        text = sc.on_screen_text.strip()
        # half a frame early at both ends: exactly frames [start_frame, end_frame) show it, so the
        # boundary frame never shows two headlines at once (``between`` includes both of its ends)
        start = max(0.0, (sc.start_frame - 0.5) / sb.fps)
        end = (sc.start_frame + sc.frame_count - 0.5) / sb.fps
        if until is not None:
            end = min(end, until - 0.5 / sb.fps)
        if not text or end - start < 0.2:
            continue
        pal = sc.palette or sb.brief.brand_colors
        card = render_text_card(text, box.w, lay.font_px,
                                CardLook(hex_rgb(pal[0]), accent_rgb=hex_rgb(pal[1 % len(pal)])), font=font,
                                field=f"scenes[{sc.index}].on_screen_text", max_lines=3, max_height=box.h)
        path = os.path.join(work_dir, f"text_{sc.index:03d}.png")
        card.save(path, compress_level=1)
        x = box.x + (box.w - card.width) // 2
        y = box.y + max(0, (box.h - card.height) // 2)
        overlays.append(Overlay(path, x, y, start, end))
    return overlays


def filter_graph(overlays: list[Overlay], slide_px: int, extras: AssemblyExtras | None = None,
                 logo_input: int | None = None, outputs: int = 1) -> tuple[str, list[str]]:
    """The filter_complex script (numbers and our own file names only, no user
    text) and its output labels, one per encoder."""
    extras = extras or AssemblyExtras()
    parts, last = [], "0:v"
    for i, ov in enumerate(overlays, start=1):
        s, e = f"{ov.start:.4f}", f"{ov.end:.4f}"
        parts.append(f"[{i}:v]format=rgba,scale=out_color_matrix=bt709:out_range=tv,format=yuva420p[t{i}]")
        y = f"{ov.y}+{slide_px}*pow(max(0\\,1-(t-{s})/{ENTRANCE_SECONDS})\\,3)" if ov.slide_in else str(ov.y)
        parts.append(f"[{last}][t{i}]overlay=x={ov.x}:y='{y}':enable='between(t\\,{s}\\,{e})'"
                     f":format=yuv420:eof_action=repeat[v{i}]")
        last = f"v{i}"
    if extras.subtitles_path:
        fonts = f":fontsdir={os.path.basename(extras.fonts_dir)}" if extras.fonts_dir else ""
        parts.append(f"[{last}]subtitles=f={os.path.basename(extras.subtitles_path)}{fonts}[vsub]")
        last = "vsub"
    if extras.logo is not None and logo_input is not None:
        lg = extras.logo
        parts.append(f"[{logo_input}:v]format=rgba,scale=out_color_matrix=bt709:out_range=tv,format=yuva420p[lg]")
        parts.append(f"[{last}][lg]overlay=x={lg.x}:y={lg.y}:enable='between(t\\,{lg.start:.4f}\\,{lg.end:.4f})'"
                     f":format=yuv420:eof_action=repeat[vlogo]")
        last = "vlogo"
    labels = [f"out{i}" for i in range(outputs)]
    if outputs == 1:
        parts.append(f"[{last}]format=yuv420p[{labels[0]}]")
    else:
        parts.append(f"[{last}]format=yuv420p,split={outputs}" + "".join(f"[{l}]" for l in labels))
    return ";\n".join(parts), labels


def metadata_args(kind: str, metadata_input: int | None) -> list[str]:
    """Output options that carry the tags of input ``metadata_input`` (an ffmetadata file) into ``kind``.

    MP4/MOV: as ``moov/udta/meta`` keys + ilst (``use_metadata_tags``), the ``moov`` before the
    media (``faststart``): where ComfyUI's editor looks when a file is dropped on it. WebM: as
    Matroska tags."""
    if metadata_input is None:
        return []
    args = ["-map_metadata", str(metadata_input)]
    if kind in ("mp4", "mov"):
        args += ["-movflags", "+faststart+use_metadata_tags"]
    return args


def _output_args(kind: str, label: str, audio: str, sb: Storyboard, encode: EncodeSettings, path: str,
                 metadata_input: int | None = None) -> list[str]:
    gop = ["-g", str(2 * sb.fps)]  # a keyframe every 2 s: HLS segments, scrubbing
    # -t (not -frames:v) ends every stream together: frames arrive at a fixed rate, so it is exact
    common = ["-map", f"[{label}]", "-map", audio, "-t", f"{sb.total_frames / sb.fps:.6f}", "-r", str(sb.fps)]
    meta = metadata_args(kind, metadata_input)
    if kind == "mp4":
        flags = [] if metadata_input is not None else ["-movflags", "+faststart"]
        return common + encode.video_args() + gop + ["-c:a", "aac", "-b:a", encode.audio_bitrate, "-ar", "48000",
                                                     "-ac", "2", *flags, *meta, "-f", "mp4", path]
    if kind == "webm":
        return common + ["-c:v", "libvpx-vp9", "-crf", "32", "-b:v", "0", "-row-mt", "1", "-deadline", "good",
                         "-cpu-used", "5", "-pix_fmt", "yuv420p", "-colorspace", "bt709", "-color_primaries",
                         "bt709", "-color_trc", "bt709", *gop, "-c:a", "libopus", "-b:a", "128k", "-ar", "48000",
                         "-ac", "2", *meta, "-f", "webm", path]
    if kind == "mov":
        return common + ["-c:v", "prores_ks", "-profile:v", "2", "-pix_fmt", "yuv422p10le", "-vendor", "apl0",
                         "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
                         "-c:a", "pcm_s16le", "-ar", "48000", "-ac", "2", *meta, "-f", "mov", path]
    raise AdReelInputError("formats", f"is not one of {', '.join(FORMATS)}")


def assemble(sb: Storyboard, sources: list[FrameSource], out_path: str, work_dir: str,
             encode: EncodeSettings | None = None, progress: Callable[[int, int], None] | None = None,
             cancelled: Callable[[], bool] | None = None, extras: AssemblyExtras | None = None) -> AssembleResult:
    """Render the ad to ``out_path`` (MP4, plus the extra formats) in one pass."""
    encode = encode or EncodeSettings()
    extras = extras or AssemblyExtras()
    unknown = [f for f in extras.formats if f not in FORMATS]
    if unknown:
        raise AdReelInputError("formats", f"is not one of {', '.join(FORMATS)}")
    encoders = ("libx264", "aac") + (("libvpx-vp9", "libopus") if "webm" in extras.formats else ()) + \
        (("prores_ks",) if "mov" in extras.formats else ())
    filters = ("overlay", "scale", "format", "split") + (("subtitles",) if extras.subtitles_path else ())
    ffmpeg = find_ffmpeg(encoders, filters)
    os.makedirs(work_dir, exist_ok=True)
    t0 = time.monotonic()
    overlays = render_text_overlays(sb, work_dir, extras.font, until=extras.text_until)
    stem = os.path.splitext(out_path)[0]
    targets = {"mp4": out_path}
    for kind in ("webm", "mov"):
        if kind in extras.formats:
            targets[kind] = f"{stem}.{kind}"
    if extras.thumbnail_frame is not None:
        targets["thumbnail"] = f"{stem}.jpg"
    parts = {k: f"{os.path.splitext(p)[0]}.part{os.path.splitext(p)[1]}" for k, p in targets.items()}
    cmd, maps = _command(ffmpeg, sb, overlays, extras, work_dir)
    video_kinds = [k for k in ("mp4", "webm", "mov") if k in targets]
    for kind, (label, audio, metadata_input) in zip(video_kinds, maps):
        cmd += _output_args(kind, label, audio, sb, encode, parts[kind], metadata_input)

    log_path = os.path.join(work_dir, "ffmpeg.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log, cwd=work_dir)
    _widen_pipe(proc.stdin)
    try:
        done = _feed(proc.stdin, frame_stream(sb, sources, extras.cards), sb.total_frames, progress, cancelled)
    except BaseException:
        proc.kill()
        proc.wait()
        for p in parts.values():
            _remove(p)
        raise
    rc = proc.wait()
    if rc != 0 or done != sb.total_frames:
        for p in parts.values():
            _remove(p)
        with open(log_path, "r", encoding="utf-8", errors="replace") as f:
            tail = f.read()[-1500:]
        raise RuntimeError(f"ffmpeg failed (exit {rc}) after {done}/{sb.total_frames} frames: {tail.strip()}")
    if "thumbnail" in targets:
        _thumbnail(ffmpeg, parts["mp4"], min(max(0, extras.thumbnail_frame), sb.total_frames - 1) / sb.fps,
                   parts["thumbnail"])
    for kind, p in parts.items():
        os.replace(p, targets[kind])
    files = dict(targets)
    if "hls" in extras.formats:
        files["hls"] = cut_hls(ffmpeg, out_path, f"{stem}_hls")
    return AssembleResult(out_path, sb.width, sb.height, sb.fps, sb.total_frames, sb.total_duration,
                          time.monotonic() - t0, overlays, files)


def _command(ffmpeg: str, sb: Storyboard, overlays: list[Overlay], extras: AssemblyExtras,
             work_dir: str) -> tuple[list[str], list[tuple]]:
    """The encode's ffmpeg command up to its outputs (the raw frames on stdin, the overlays, the logo, the
    audio, the tags, the filter graph written to ``work_dir``), and per video output in order (mp4, webm,
    mov) the (video label, audio label, metadata input) it maps."""
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
           "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{sb.width}x{sb.height}",
           "-framerate", str(sb.fps), "-i", "pipe:0"]
    for ov in overlays:
        cmd += ["-i", ov.path]
    logo_input = None
    if extras.logo is not None:
        logo_input = len(overlays) + 1
        cmd += ["-i", extras.logo.path]
    audio_index = len(overlays) + 1 + (1 if logo_input else 0)
    if extras.audio_path:
        cmd += input_args(extras.audio_path, "wav")
    else:
        cmd += ["-f", "lavfi", "-t", f"{sb.total_duration:.6f}", "-i", "anullsrc=r=48000:cl=stereo"]
    metadata_input = None
    if extras.metadata:
        metadata_input = audio_index + 1
        cmd += input_args(write_ffmetadata(extras.metadata, os.path.join(work_dir, "metadata.txt")), "ffmetadata")
    outputs = 1 + sum(1 for k in ("webm", "mov") if k in extras.formats)
    graph, labels = filter_graph(overlays, max(20, sb.height // 24), extras, logo_input, outputs)
    audio_labels = [f"{audio_index}:a"] * outputs
    if extras.audio_path and extras.audio_filter:
        audio_labels = [f"[aout{i}]" for i in range(outputs)]
        graph += (f";\n[{audio_index}:a]{extras.audio_filter},aformat=sample_fmts=fltp:sample_rates=48000"
                  f":channel_layouts=stereo,asplit={outputs}" + "".join(audio_labels))
    graph_path = os.path.join(work_dir, "graph.txt")
    with open(graph_path, "w", encoding="utf-8") as f:
        f.write(graph)
    cmd += ["-filter_complex_script", graph_path]
    return cmd, [(label, audio, metadata_input) for label, audio in zip(labels, audio_labels)]


def _feed(pipe, frames: Iterator[np.ndarray], total: int, progress: Callable[[int, int], None] | None,
          cancelled: Callable[[], bool] | None) -> int:
    """Write ``frames`` into ffmpeg's stdin and close it; the number of frames it took."""
    done = 0
    # ffmpeg's input thread queues packets, so writing straight into the pipe
    # keeps the encoders fed without another copy of each frame
    for frame in frames:
        if cancelled and cancelled():
            raise InterruptedError("assembly cancelled")
        try:
            pipe.write(frame.data)
        except BrokenPipeError:
            break
        done += 1
        if progress and (done % 15 == 0 or done == total):
            progress(done, total)
    pipe.close()
    return done


def _thumbnail(ffmpeg: str, mp4: str, seconds: float, path: str) -> None:
    """One frame of the finished MP4 (text, subtitles and logo included) at ``seconds``: a decode, not an
    encode pass. (An extra output inside the main pass would end early and, in ffmpeg 5.1, cut the others'
    audio.)"""
    thumb = subprocess.run([ffmpeg, "-v", "error", "-nostdin", "-y", "-ss", f"{seconds:.4f}",
                            *input_args(mp4, "mov"), "-frames:v", "1", "-update", "1", "-q:v", "3",
                            "-f", "image2", file_url(path)],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if thumb.returncode != 0:
        raise RuntimeError(f"ffmpeg could not write the thumbnail: {thumb.stderr.strip()[-500:]}")


def cut_hls(ffmpeg: str, mp4: str, folder: str, segment_seconds: int = 4) -> str:
    """HLS (VOD playlist + MPEG-TS segments) cut from the MP4's own streams: no re-encode.

    ffmpeg runs inside ``folder`` with relative names: the HLS muxer expands ``%`` patterns in its
    file names, and the folder is named after the user's filename_prefix (``ad%d`` is a valid one)."""
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    playlist = os.path.join(folder, "playlist.m3u8")
    proc = subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", *input_args(mp4, "mov"),
                           "-c", "copy", "-f", "hls", "-hls_time", str(segment_seconds), "-hls_playlist_type", "vod",
                           "-hls_segment_filename", "segment_%03d.ts", "playlist.m3u8"],
                          cwd=folder, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg could not cut HLS: {proc.stderr.strip()[-800:]}")
    return playlist


def _widen_pipe(pipe) -> None:
    """Ask Linux for a 1 MiB pipe (default 64 KiB): fewer wake-ups per frame."""
    try:
        import fcntl
        fcntl.fcntl(pipe.fileno(), 1031, 1 << 20)  # F_SETPIPE_SZ
    except (ImportError, OSError, ValueError):
        pass


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def describe_file(kind: str, path: str) -> OutputFile:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return OutputFile(kind=kind, path=path, bytes=os.path.getsize(path), sha256=h.hexdigest())
