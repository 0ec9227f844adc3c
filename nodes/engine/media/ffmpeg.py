"""Finding a suitable ffmpeg / ffprobe, and asking them what they can do.

Order: ``ADREEL_FFMPEG`` / ``ADREEL_FFPROBE``, then the system binaries on PATH,
then the ffmpeg bundled by ``imageio-ffmpeg`` (a fallback that ships no
ffprobe). A binary that lacks a needed encoder or filter is passed over; when
none fits, the error names what is missing and how to get it.
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from ..models import AdReelInputError

REQUIRED_ENCODERS = ("libx264", "aac")
REQUIRED_FILTERS = ("overlay", "scale", "format")


class FFmpegNotFound(RuntimeError):
    pass


@functools.lru_cache(maxsize=8)
def capabilities(binary: str) -> tuple[frozenset[str], frozenset[str]]:
    def listing(flag):
        try:
            out = subprocess.run([binary, "-hide_banner", flag], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            return frozenset()
        names = set()
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 2 and len(parts[0]) <= 7 and set(parts[0]) <= set("VASFXBDTCILEN.|->"):
                names.add(parts[1])
        return frozenset(names)
    return listing("-encoders"), listing("-filters")


def _candidates() -> list[str]:
    found = []
    env = os.environ.get("ADREEL_FFMPEG")
    if env:
        if not (os.path.isfile(env) and os.access(env, os.X_OK)):
            raise FFmpegNotFound(f"ADREEL_FFMPEG={env!r} is not an executable file")
        return [env]
    system = shutil.which("ffmpeg")
    if system:
        found.append(system)
    try:
        import imageio_ffmpeg  # optional fallback
        found.append(imageio_ffmpeg.get_ffmpeg_exe())
    except Exception:
        pass
    return found


@functools.lru_cache(maxsize=8)
def find_ffmpeg(encoders: tuple[str, ...] = REQUIRED_ENCODERS, filters: tuple[str, ...] = REQUIRED_FILTERS) -> str:
    """Path of the first ffmpeg that has every named encoder and filter."""
    cands = _candidates()
    if not cands:
        raise FFmpegNotFound(
            "ffmpeg was not found: install it (Debian/Ubuntu: apt-get install ffmpeg; macOS: brew install ffmpeg), "
            "pip install imageio-ffmpeg, or point ADREEL_FFMPEG at a binary")
    problems = []
    for c in cands:
        enc, fil = capabilities(c)
        missing = [f"encoder {e}" for e in encoders if e not in enc] + [f"filter {f}" for f in filters if f not in fil]
        if not missing:
            return c
        problems.append(f"{c} lacks {', '.join(missing)}")
    raise FFmpegNotFound("no suitable ffmpeg: " + "; ".join(problems) +
                         " — install a full build (e.g. Debian's ffmpeg package) or set ADREEL_FFMPEG")


@functools.lru_cache(maxsize=1)
def find_ffprobe() -> str:
    env = os.environ.get("ADREEL_FFPROBE")
    if env:
        return env
    path = shutil.which("ffprobe")
    if path:
        return path
    sibling = os.path.join(os.path.dirname(find_ffmpeg()), "ffprobe")
    if os.path.isfile(sibling):
        return sibling
    raise FFmpegNotFound("ffprobe was not found: install ffmpeg's ffprobe (apt-get install ffmpeg) or set ADREEL_FFPROBE")




# --- reading untrusted media ---------------------------------------------------------------------
# Anyone who can reach a shared ComfyUI can upload any bytes under any name. ffmpeg picks a demuxer by
# content, not by name, and some demuxers open other files: an "mp3" that is an HLS playlist (#EXTM3U)
# naming /home/u/private.ts gets that file decoded into the ad. So every input ffmpeg or ffprobe reads
# goes through ``open_media``/``input_args``: ffprobe first, with only known single-file containers
# allowed (``-format_whitelist``), then the decode with that demuxer forced (``-f``), the same
# whitelist, only the file and pipe protocols, and a length bound (``-t``).

PROTOCOLS = "file,pipe"
# demuxer names (the first name ffprobe reports in format_name) that read one self-contained file
AUDIO_CONTAINERS = ("mp3", "ogg", "wav", "flac", "aac", "mov", "matroska")
VIDEO_CONTAINERS = ("mov", "matroska", "avi", "mpegts")
_NOT_ALLOWED = re.compile(r"\[([\w-]+) @ (?:0x)?[0-9a-fA-F]+\] Format not on whitelist")
PROBE_TIMEOUT = 60.0


class MediaRefused(AdReelInputError):
    """An input medium that is not a known audio/video container (or cannot be read)."""


def file_url(path: str) -> str:
    """``path`` as an explicit ``file:`` URL, so a name with ``:`` in it is never read as a protocol."""
    return "file:" + os.path.abspath(path)


def input_args(source: str, demuxer: str | tuple[str, ...], max_seconds: float | None = None) -> list[str]:
    """ffmpeg input options + ``-i`` for one input read with the given demuxer(s), the protocol
    whitelist and an optional length bound. ``source`` is a path or ``pipe:0``.

    One demuxer name is forced with ``-f``; a tuple is only allowed (probing picks among them),
    for piped bytes that cannot be probed first (a downloaded TTS answer)."""
    names = (demuxer,) if isinstance(demuxer, str) else tuple(demuxer)
    args = ["-protocol_whitelist", PROTOCOLS, "-format_whitelist", ",".join(names)]
    if isinstance(demuxer, str):
        args += ["-f", demuxer]
    if max_seconds is not None:
        if not (max_seconds > 0) or max_seconds == float("inf"):
            raise ValueError(f"max_seconds must be a positive finite number, got {max_seconds!r}")
        args += ["-t", f"{max_seconds:.3f}"]
    src = source if source.startswith("pipe:") else file_url(source)
    return args + ["-i", src]


@dataclass(frozen=True)
class MediaInput:
    """A probed input medium: its path, the demuxer it is read with, ffprobe's facts."""
    path: str
    demuxer: str
    info: dict

    @property
    def format_name(self) -> str:
        return str((self.info.get("format") or {}).get("format_name", ""))

    @property
    def duration(self) -> float | None:
        try:
            d = float((self.info.get("format") or {}).get("duration"))
        except (TypeError, ValueError):
            return None
        return d if d == d and d >= 0 else None

    def streams(self, kind: str) -> list[dict]:
        return [s for s in self.info.get("streams", []) if s.get("codec_type") == kind]

    def args(self, max_seconds: float | None = None) -> list[str]:
        return input_args(self.path, self.demuxer, max_seconds)


def open_media(path: str, field: str, kind: str = "audio", containers: tuple[str, ...] | None = None) -> MediaInput:
    """Probe ``path`` and accept it only as a known ``kind`` ("audio" or "video") container that has
    such a stream; otherwise a ``MediaRefused`` naming ``field``, the file and what it is."""
    allowed = containers or (AUDIO_CONTAINERS if kind == "audio" else VIDEO_CONTAINERS)
    if not os.path.isfile(path):
        raise MediaRefused(field, "names no file")
    cmd = [find_ffprobe(), "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
           *input_args(path, tuple(allowed))[:-2], file_url(path)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=PROBE_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise MediaRefused(field, f"ffprobe could not read the file within {PROBE_TIMEOUT:.0f} s") from None
    if out.returncode != 0:
        m = _NOT_ALLOWED.search(out.stderr)
        if m:
            what = _DESCRIBE.get(m.group(1), f"a {m.group(1)!r} file")
            raise MediaRefused(field, f"the file is {what} (ffmpeg format {m.group(1)!r}), not one of the "
                                      f"{kind} containers AdReel reads ({', '.join(allowed)})")
        tail = out.stderr.strip().replace(path, "the file")[-300:]
        raise MediaRefused(field, f"the file is not a readable {kind} file: {tail or 'ffprobe failed'}")
    info = json.loads(out.stdout or "{}")
    fmt = str((info.get("format") or {}).get("format_name", ""))
    demuxer = next((n for n in fmt.split(",") if n in allowed), None)
    if demuxer is None:  # the whitelist should have stopped it; never decode what was not allowed
        raise MediaRefused(field, f"the file is ffmpeg format {fmt!r}, not one of the {kind} containers "
                                  f"AdReel reads ({', '.join(allowed)})")
    media = MediaInput(path, demuxer, info)
    if not media.streams(kind):
        raise MediaRefused(field, f"the file ({fmt}) has no {kind} stream")
    return media


_DESCRIBE = {"hls": "an HLS playlist", "concat": "an ffconcat list", "image2": "an image or image sequence",
             "tty": "a text file", "lavfi": "a filter graph", "data": "raw data", "ffmetadata": "ffmpeg metadata",
             "dash": "a DASH manifest", "sdp": "an SDP session", "rtsp": "an RTSP description",
             "webm_dash_manifest": "a DASH manifest", "mpjpeg": "a multipart JPEG stream"}


def probe(path: str) -> dict:
    """ffprobe's JSON (format + streams) for ``path`` (a video container, see ``open_media``)."""
    return open_media(path, "video", "video").info
