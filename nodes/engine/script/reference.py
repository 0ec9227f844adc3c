"""ReferenceAnalyze's engine: a reference ad → its pacing and structure (models.ReferenceStyle).

Shot boundaries come from ffmpeg's own scene-change score (``select='gt(scene,T)'``
reporting through ``showinfo``), measured on a small copy of each frame, so
the cut times are the presentation times of the first frame of each new shot.
Duration and aspect come from ffprobe (sample aspect ratio and rotation
included).
"""
from __future__ import annotations

import os
import re
import statistics
import subprocess
from fractions import Fraction

from .. import limits
from ..media.ffmpeg import MediaInput, find_ffmpeg, open_media
from ..models import ASPECT_RATIOS, SEGMENTS, AdReelInputError, ReferenceStyle

# showinfo's "n: 12 … pts_time: 0.48", read line by line with two searches (linear in the line)
_SHOWINFO = "Parsed_showinfo"
_SHOWINFO_N = re.compile(r"\bn:\s*(\d+)")
_SHOWINFO_PTS = re.compile(r"\bpts_time:\s*(-?[0-9.]+)")
ANALYSIS_WIDTH = 160


def _video_stream(info: dict, path: str) -> dict:
    for s in info.get("streams", []):
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic"):
            return s
    raise AdReelInputError("video", f"{path!r} has no video stream")


def _rate(value: str | None) -> float | None:
    try:
        f = Fraction(str(value).replace(":", "/"))
        return float(f) if f > 0 else None
    except (TypeError, ValueError, ZeroDivisionError):
        return None


def _rotation(stream: dict) -> int:
    rot = (stream.get("tags") or {}).get("rotate")
    for sd in stream.get("side_data_list") or []:
        if "rotation" in sd:
            rot = sd["rotation"]
    try:
        return int(float(rot or 0)) % 360
    except ValueError:
        return 0


def display_aspect(stream: dict) -> tuple[int, int, str]:
    """(display width, display height, aspect): the nearest of 9:16 / 1:1 / 16:9 within 3 %, else W:H."""
    w, h = int(stream["width"]), int(stream["height"])
    sar = _rate(stream.get("sample_aspect_ratio")) or 1.0
    dw, dh = w * sar, float(h)
    if _rotation(stream) in (90, 270):
        dw, dh = dh, dw
    ratio = dw / dh
    best = min(ASPECT_RATIOS, key=lambda a: abs(ASPECT_RATIOS[a][0] / ASPECT_RATIOS[a][1] - ratio))
    bw, bh = ASPECT_RATIOS[best]
    if abs(bw / bh - ratio) / ratio <= 0.03:
        return round(dw), round(dh), best
    f = Fraction(ratio).limit_denominator(32)
    return round(dw), round(dh), f"{f.numerator}:{f.denominator}"


def detect_cuts(path: str | MediaInput, threshold: float = 0.3, timeout: float = 600) -> tuple[list[float], float]:
    """Times (seconds from the first frame) where a new shot starts, and the first frame's time.

    The file is read only as the known video container it was probed as, and at most
    ADREEL_MAX_MEDIA_SECONDS of it is decoded."""
    if not 0 < threshold < 1:
        raise AdReelInputError("threshold", f"must be between 0 and 1 (got {threshold:g})")
    media = path if isinstance(path, MediaInput) else open_media(path, "video", "video")
    name = os.path.basename(media.path)
    vf = (f"scale={ANALYSIS_WIDTH}:-2:flags=area,"
          f"select='eq(n\\,0)+gt(scene\\,{threshold:.4f})',showinfo")
    cmd = [find_ffmpeg(), "-hide_banner", "-nostdin", "-v", "info", *media.args(limits.MAX_MEDIA_SECONDS.read()),
           "-map", "0:v:0", "-an", "-sn", "-dn", "-vf", vf, "-f", "null", "-"]
    try:
        out = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AdReelInputError("video", f"analysing {name!r} took longer than {timeout:.0f} s") from None
    if out.returncode != 0:
        tail = "\n".join(out.stderr.strip().replace(media.path, name).splitlines()[-4:])
        raise AdReelInputError("video", f"ffmpeg cannot read {name!r}: {tail}")
    frames = showinfo_frames(out.stderr)
    if not frames:
        raise AdReelInputError("video", f"{name!r} has no decodable video frames")
    first = frames[0][1]
    return [round(t - first, 6) for _, t in frames[1:]], first


def showinfo_frames(stderr: str) -> list[tuple[int, float]]:
    """(n, pts_time) of every frame ffmpeg's showinfo filter reported in ``stderr``."""
    frames = []
    for line in stderr.splitlines():
        at = line.find(_SHOWINFO)
        n = _SHOWINFO_N.search(line, at) if at >= 0 else None
        t = _SHOWINFO_PTS.search(line, n.end()) if n else None
        if t:
            try:
                frames.append((int(n.group(1)), float(t.group(1))))
            except ValueError:  # "1.2.3": not a time
                continue
    return frames


def parse_structure(text: str | list[str] | None) -> list[str]:
    if not text:
        return []
    items = text if isinstance(text, list) else [p for p in re.split(r"[,\s>→]+", text) if p]
    out = []
    for item in items:
        seg = item.strip().lower().replace("call_to_action", "cta")
        if seg not in SEGMENTS:
            raise AdReelInputError("structure", f"{item!r} is not a segment: use {', '.join(SEGMENTS)}")
        out.append(seg)
    return out


def analyze_reference(path: str, threshold: float = 0.3, min_shot_seconds: float = 0.25,
                      structure: str | list[str] | None = None, tone: str | None = None,
                      allowance=None) -> ReferenceStyle:
    """Pacing and structure of the reference ad at ``path``. ``allowance``: the prompt's share of
    ADREEL_MAX_MEDIA_SECONDS, where the reference's length is reserved before it is decoded."""
    media = open_media(path, "video", "video")
    info = media.info
    stream = _video_stream(info, path)
    _, _, aspect = display_aspect(stream)
    duration = None
    for value in (stream.get("duration"), (info.get("format") or {}).get("duration")):
        try:
            duration = float(value)
            break
        except (TypeError, ValueError):
            continue
    if duration is None or not duration > 0 or duration == float("inf"):
        raise AdReelInputError("video", f"{os.path.basename(path)!r} has no duration")
    cap = limits.MAX_MEDIA_SECONDS.read()
    if duration > cap:
        raise AdReelInputError("video", f"{os.path.basename(path)!r} lasts {duration:.0f} s: this server analyses "
                                        f"references of at most {cap:g} s (ADREEL_MAX_MEDIA_SECONDS)")
    if allowance is not None:
        allowance.reserve(duration, f"video: analysing {os.path.basename(path)!r}")
    cuts, _first = detect_cuts(media, threshold)
    fps = _rate(stream.get("avg_frame_rate")) or _rate(stream.get("r_frame_rate")) or 25.0
    # a flash frame or a double detection is not a shot: keep cuts at least min_shot apart
    kept: list[float] = []
    for c in cuts:
        if c < max(min_shot_seconds, 1.0 / fps) or duration - c < max(min_shot_seconds, 0.5 / fps):
            continue
        if kept and c - kept[-1] < min_shot_seconds:
            continue
        kept.append(c)
    edges = [0.0] + kept + [duration]
    shots = [b - a for a, b in zip(edges, edges[1:])]
    segs = parse_structure(structure)
    if segs and len(segs) != len(shots):
        raise AdReelInputError("structure", f"names {len(segs)} segments, but the reference has {len(shots)} "
                                            f"shots (cuts at {', '.join(f'{c:.2f}' for c in kept) or 'none'} s)")
    return ReferenceStyle(
        duration_seconds=round(duration, 3),
        shot_count=len(shots),
        mean_shot_seconds=round(statistics.fmean(shots), 3),
        median_shot_seconds=round(statistics.median(shots), 3),
        shot_boundaries=[round(c, 3) for c in kept],
        structure=segs,
        aspect_ratio=aspect,
        tone=(tone or "").strip() or None,
    )


def describe(ref: ReferenceStyle) -> str:
    cuts = ", ".join(f"{c:.2f}" for c in ref.shot_boundaries) or "none"
    lines = [f"{ref.shot_count} shots in {ref.duration_seconds:.2f} s ({ref.aspect_ratio}): mean "
             f"{ref.mean_shot_seconds:.2f} s, median {ref.median_shot_seconds:.2f} s", f"cuts at {cuts} s"]
    if ref.structure:
        lines.append("structure: " + " → ".join(ref.structure))
    return "\n".join(lines)
