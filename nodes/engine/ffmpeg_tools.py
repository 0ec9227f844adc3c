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
import shutil
import subprocess

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


def probe(path: str) -> dict:
    """ffprobe's JSON (format + streams) for ``path``."""
    out = subprocess.run([find_ffprobe(), "-v", "error", "-print_format", "json", "-show_format", "-show_streams", path],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise ValueError(f"ffprobe cannot read {path!r}: {out.stderr.strip()[-400:]}")
    return json.loads(out.stdout)
