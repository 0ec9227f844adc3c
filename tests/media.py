"""Measuring a rendered video the way a user would: ffprobe facts, frames as
pixels, shot boundaries, motion, and OCR of the text on screen."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

import numpy as np
from PIL import Image


def ffprobe(path: str, count_frames: bool = True) -> dict:
    """The file's format and streams; with ``count_frames`` every stream is decoded to count its frames
    (``nb_read_frames``), the costly part on a long file."""
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams"]
                         + (["-count_frames"] if count_frames else []) + [path],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def stream(info: dict, kind: str) -> dict:
    matches = [s for s in info["streams"] if s["codec_type"] == kind]
    assert len(matches) == 1, f"expected one {kind} stream, got {len(matches)}"
    return matches[0]


def decode_frames(path: str, width: int, height: int, fps: float | None = None,
                  start: float | None = None, count: int | None = None,
                  crop: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """All (or ``count`` from ``start``) frames as uint8 RGB, scaled to width×height
    (after cropping to ``crop`` = (x, y, w, h) when given)."""
    cmd = ["ffmpeg", "-v", "error", "-nostdin"]
    if start is not None:
        cmd += ["-ss", f"{start:.4f}"]
    cmd += ["-i", path]
    vf = f"scale={width}:{height}:flags=area"
    if crop:
        vf = f"crop={crop[2]}:{crop[3]}:{crop[0]}:{crop[1]}," + vf
    if fps:
        vf = f"fps={fps}," + vf
    cmd += ["-vf", vf, "-f", "rawvideo", "-pix_fmt", "rgb24"]
    if count:
        cmd += ["-frames:v", str(count)]
    cmd += ["pipe:1"]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def frame_at(path: str, t: float, width: int, height: int) -> np.ndarray:
    return decode_frames(path, width, height, start=t, count=1)[0]


def frames_by_index(path: str, indices, width: int, height: int) -> dict[int, np.ndarray]:
    """Frames ``indices`` (0-based, in stream order) as uint8 RGB at width×height, from one decoding pass
    (what ``frame_at`` gives one seek at a time)."""
    wanted = sorted(set(int(k) for k in indices))
    pick = "+".join(f"eq(n\\,{k})" for k in wanted)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", path, "-vf",
                          f"select='{pick}',scale={width}:{height}:flags=area", "-fps_mode", "passthrough",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"], capture_output=True, check=True).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)
    assert len(frames) == len(wanted), f"{path}: {len(frames)} of the {len(wanted)} frames asked for"
    return dict(zip(wanted, frames))


def colour_hist(frame: np.ndarray, bins: int = 8) -> np.ndarray:
    q = (frame // (256 // bins)).reshape(-1, 3).astype(np.int64)
    idx = q[:, 0] * bins * bins + q[:, 1] * bins + q[:, 2]
    h = np.bincount(idx, minlength=bins ** 3).astype(np.float64)
    return h / h.sum()


def shot_boundaries(frames: np.ndarray, fps: float, window: int = 8, threshold: float = 0.35) -> list[float]:
    """Times where the picture changes as a new shot does (cuts or blended transitions).

    Compares colour histograms ``window`` frames apart: camera moves barely change
    them, a new scene changes them a lot. Peaks above ``threshold`` (L1 in 0..2)
    separated by at least a second are boundaries.
    """
    hists = [colour_hist(f) for f in frames]
    d = np.array([np.abs(hists[k] - hists[k + window]).sum() for k in range(len(hists) - window)])
    peaks = []
    k = 0
    while k < len(d):
        if d[k] > threshold:
            j = k
            while j + 1 < len(d) and d[j + 1] > threshold:
                j += 1
            seg = d[k:j + 1]
            centre = k + int(np.argmax(seg)) + window / 2
            if not peaks or (centre / fps - peaks[-1]) > 1.0:
                peaks.append(centre / fps)
            k = j + 1
        else:
            k += 1
    return peaks


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# Tesseract's OpenMP threads only spin on a busy machine: one thread reads the same words for about half the CPU
TESSERACT_ENV = dict(os.environ, OMP_THREAD_LIMIT="1")


def ocr(image: np.ndarray, lang: str = "eng", psm: int = 6) -> str:
    """Tesseract's reading of an RGB image (white-on-colour text is inverted first)."""
    if shutil.which("tesseract") is None:
        raise RuntimeError("tesseract is not installed (make setup installs tesseract-ocr)")
    gray = np.asarray(Image.fromarray(image).convert("L"), dtype=np.uint8)
    if gray.mean() < 128:
        gray = 255 - gray
    with tempfile.NamedTemporaryFile(suffix=".png") as f:
        Image.fromarray(gray).save(f.name)
        out = subprocess.run(["tesseract", f.name, "stdout", "-l", lang, "--psm", str(psm)],
                             capture_output=True, text=True, env=TESSERACT_ENV)
    return out.stdout.strip()


def read_small_type(crop: np.ndarray, word: str, lang: str = "eng") -> str:
    """Find ``word`` in small type (a corner badge's wordmark, 10–20 px tall): Tesseract wants glyphs far
    bigger, so the crop is read enlarged 2×, 4× and 5×, as it is, from its light pixels only, and without
    its left third (a roundel beside the type). The first reading holding ``word`` is returned, else all
    readings joined (for the failure message)."""
    import cv2
    light = np.where(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) > 150, 0, 255).astype(np.uint8)
    variants = (crop, np.repeat(light[..., None], 3, 2), np.ascontiguousarray(crop[:, int(crop.shape[1] * 0.35):]))
    reads = []
    for variant in variants:
        for scale in (2, 4, 5):
            up = cv2.resize(variant, (variant.shape[1] * scale, variant.shape[0] * scale), interpolation=cv2.INTER_CUBIC)
            reads.append(ocr(up, lang, 11))
            if word.upper() in reads[-1].upper().replace(" ", ""):
                return reads[-1]
    return " | ".join(reads)


def normalise_text(s: str) -> str:
    return "".join(ch for ch in s.lower() if ch.isalnum())


def similarity(a: str, b: str) -> float:
    import difflib
    return difflib.SequenceMatcher(None, normalise_text(a), normalise_text(b)).ratio()


def decode_audio(path: str, sample_rate: int = 48000) -> np.ndarray:
    """The audio track as mono float32."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", path, "-vn", "-ac", "1", "-ar", str(sample_rate),
                          "-f", "f32le", "pipe:1"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, "<f4")


def band_levels_db(x: np.ndarray, sr: int, lo: float, hi: float, window: float = 0.05) -> np.ndarray:
    """Level (dB) of the lo..hi Hz band in consecutive windows."""
    n = int(sr * window)
    frames = x[: len(x) // n * n].reshape(-1, n) * np.hanning(n)
    spec = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(n, 1 / sr)
    band = spec[:, (freqs >= lo) & (freqs <= hi)].sum(axis=1)
    return 10 * np.log10(band + 1e-12)


def voice_windows(x: np.ndarray, sr: int, window: float = 0.05, music_band=(5800, 6200)) -> np.ndarray:
    """Windows where speech is present: 300-3400 Hz energy well above its quiet floor
    (the test's music bed is a pure tone outside that band)."""
    speech = band_levels_db(x, sr, 300, 3400, window)
    floor = np.percentile(speech, 10)
    return speech > floor + 20


def loudness(path: str) -> dict:
    """Integrated loudness (LUFS) and true peak (dBTP) by ffmpeg's ebur128."""
    err = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-i", path, "-vn", "-af", "ebur128=peak=true",
                          "-f", "null", "-"], capture_output=True, text=True).stderr
    summary = err[err.rfind("Summary:"):]
    import re
    i = float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))
    peak = float(re.search(r"Peak:\s+(-?[\d.inf]+) dBFS", summary).group(1))
    return {"integrated": i, "true_peak": peak}


def ffmpeg_children(parent_pid: int, names: tuple[str, ...] = ("ffmpeg", "ffprobe")) -> list[int]:
    """Live (not zombie) ffmpeg/ffprobe processes whose parent is ``parent_pid``, from /proc."""
    import os

    kids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if int(fields[1]) == parent_pid and comm.startswith(names) and fields[0] != "Z":
            kids.append(int(pid))
    return kids
