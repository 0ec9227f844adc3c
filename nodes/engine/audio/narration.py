"""The narration stage: scene text → speech.

Offline: English with a Piper neural voice (``speech/piper_voice.py``) where
piper-tts is installed, Korean and the many other languages espeak-ng has with
espeak-ng; text goes through a file, never the command line. Any other source of
speech (another pack's AUDIO) is just a waveform to the assembler. What a
voice says for a line (its spoken form), the voices and how a line is fitted
to its scene live in ``speech/``; this module holds the espeak-ng primitives.
"""
from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
import time
import wave
from dataclasses import dataclass

import numpy as np

from .. import limits
from ..models import AdReelInputError
from ..speech.bounds import check_bounds, media_length_problem, media_seconds_ceiling

# language → espeak-ng voice
ESPEAK_VOICES = {"en": "en-us", "ko": "ko", "ja": "ja", "zh": "cmn", "es": "es", "fr": "fr", "de": "de",
                 "pt": "pt", "it": "it", "nl": "nl", "pl": "pl", "ru": "ru", "tr": "tr", "vi": "vi", "id": "id"}
DEFAULT_RATE_WPM = 165


@dataclass
class Speech:
    samples: np.ndarray  # float32 mono, -1..1
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    @classmethod
    def silence(cls, sample_rate: int = 22050) -> "Speech":
        return cls(np.zeros(0, np.float32), sample_rate)


def espeak_binary() -> str:
    path = shutil.which("espeak-ng")
    if not path:
        raise AdReelInputError("backend", "espeak-ng is not installed: apt-get install espeak-ng (or choose another TTS)")
    return path


def espeak_voice(language: str) -> str:
    base = language.lower().split("-")[0]
    if language.lower() in ("en-gb", "en-uk"):
        return "en-gb"
    return ESPEAK_VOICES.get(base, base)


def read_wav(path: str) -> Speech:
    with wave.open(path, "rb") as w:
        sr, ch, width, n = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
        raw = w.readframes(n)
    if width != 2:
        raise ValueError(f"{path}: expected 16-bit PCM, got {8 * width}-bit")
    data = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    if ch > 1:
        data = data.reshape(-1, ch).mean(axis=1)
    return Speech(data, sr)


def speak_espeak(text: str, language: str, rate_wpm: int = DEFAULT_RATE_WPM, pitch: int = 45,
                 word_gap: int = 0) -> Speech:
    """Synthesize ``text`` with espeak-ng (``word_gap``: espeak-ng's -g, pause between words in
    10 ms units); empty text gives silence of length 0."""
    text = text.strip()
    if not text:
        return Speech(np.zeros(0, np.float32), 22050)
    voice = espeak_voice(language)
    with tempfile.TemporaryDirectory(prefix="adreel_tts_") as tmp:
        txt, out = os.path.join(tmp, "text.txt"), os.path.join(tmp, "speech.wav")
        with open(txt, "w", encoding="utf-8") as f:
            f.write(text)
        code, stderr = _run_espeak([espeak_binary(), "-v", voice, "-s", str(int(rate_wpm)), "-p", str(int(pitch)),
                                    "-g", str(int(word_gap)), "-b", "1", "-w", out, "-f", txt], out, tmp)
        if code != 0 or not os.path.exists(out):
            raise AdReelInputError("language", f"espeak-ng could not speak {language!r} (voice {voice!r}): "
                                   f"{stderr.strip()[-300:]}")
        speech = read_wav(out)
    return trim_silence(speech)


_ESPEAK_WAV_BYTES_PER_SECOND = 22050 * 2  # espeak-ng writes 16-bit mono at 22.05 kHz
_POLL_SECONDS = 0.05


def _run_espeak(cmd: list[str], wav: str, tmp: str) -> tuple[int, str]:
    """Run espeak-ng as a bounded child: its address space capped at ADREEL_MAX_SYNTH_BYTES, stopped when the
    run is interrupted, past ADREEL_MAX_SYNTH_SECONDS, or once its WAV is longer than
    ADREEL_MAX_MEDIA_SECONDS. Returns (exit code, stderr)."""
    started = time.monotonic()
    max_wav = int((media_seconds_ceiling() + 1) * _ESPEAK_WAV_BYTES_PER_SECOND) + 4096
    cap = limits.MAX_SYNTH_BYTES.read()
    err_path = os.path.join(tmp, "stderr.txt")
    # the cap holds from exec on through util-linux's prlimit (no preexec_fn: not safe in a threaded server);
    # without it, it is set from here the moment the process exists
    limiter = shutil.which("prlimit")
    if limiter:
        cmd = [limiter, f"--as={cap}", "--", *cmd]
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        try:
            if not limiter:
                try:
                    resource.prlimit(proc.pid, resource.RLIMIT_AS, (cap, cap))
                except (OSError, ValueError):
                    pass  # already gone: its exit code tells
            while True:
                try:
                    code = proc.wait(timeout=_POLL_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    pass
                check_bounds(started)
                try:
                    size = os.path.getsize(wav)
                except OSError:
                    size = 0
                if size > max_wav:
                    raise media_length_problem((size - 44) / _ESPEAK_WAV_BYTES_PER_SECOND)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    with open(err_path, "rb") as f:
        return code, f.read(64 * 1024).decode("utf-8", "replace")


def loud_span(samples: np.ndarray, rate: int, threshold: float = 0.01, keep: float = 0.03) -> tuple[int, int]:
    """(start, end) of ``samples`` without their leading / trailing silence, ``keep`` seconds of it left at
    each end; (0, 0) for silence."""
    loud = np.flatnonzero(np.abs(samples) > threshold)
    if loud.size == 0:
        return 0, 0
    pad = int(keep * rate)
    return max(0, int(loud[0]) - pad), min(len(samples), int(loud[-1]) + pad)


def trim_silence(s: Speech, threshold: float = 0.01, keep: float = 0.03) -> Speech:
    """Cut leading / trailing silence (espeak pads both ends)."""
    a, b = loud_span(s.samples, s.sample_rate, threshold, keep)
    return Speech(np.ascontiguousarray(s.samples[a:b]), s.sample_rate)


def resample(samples: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Band-limited enough for speech and music beds: linear interpolation after a
    short moving-average when decimating."""
    if sr_in == sr_out or samples.size == 0:
        return samples.astype(np.float32, copy=False)
    if sr_out < sr_in:
        k = int(np.ceil(sr_in / sr_out))
        samples = np.convolve(samples, np.ones(k, np.float32) / k, mode="same")
    n_out = int(round(samples.shape[-1] * sr_out / sr_in))
    x_out = np.arange(n_out) * (sr_in / sr_out)
    return np.interp(x_out, np.arange(samples.shape[-1]), samples).astype(np.float32)


MAX_RATE_WPM = 225  # faster than this stops sounding natural
