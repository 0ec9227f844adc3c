"""The sound of the ad: narration placed at its scenes, a music bed looped or
trimmed to the ad, faded, ducked under the voice (sidechain compression keyed
by the narration), and the mix normalised to about -14 LUFS integrated with
true peak at most -1 dBTP (two-pass loudnorm). Audio only: cheap passes that
end in one WAV the video encode takes.
"""
from __future__ import annotations

import math
import os
import re
import subprocess
import tempfile
import threading
import wave
from dataclasses import dataclass

import numpy as np

from .. import limits
from ..media.ffmpeg import find_ffmpeg, input_args, open_media
from ..models import MAX_DURATION_SECONDS, AdReelInputError, Storyboard
from .narration import resample

SAMPLE_RATE = 48000
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 768000
MAX_CHANNELS = 8
MUSIC_MARGIN_SECONDS = 5.0  # a music bed is trimmed to the ad: decode no more than the longest ad + this


@dataclass
class AudioClip:
    samples: np.ndarray  # float32 (channels, n)
    sample_rate: int
    voice: str | None = None  # the voice that spoke it, as SceneNarration shows it ("Piper en_US-joe-medium")

    @property
    def duration(self) -> float:
        return self.samples.shape[-1] / self.sample_rate

    @classmethod
    def mono(cls, samples: np.ndarray, sample_rate: int) -> "AudioClip":
        return cls(np.asarray(samples, np.float32).reshape(1, -1), sample_rate)

    @classmethod
    def checked(cls, samples, sample_rate, field: str) -> "AudioClip":
        """An AudioClip from outside (any pack's AUDIO): a usable sample rate, at most
        MAX_CHANNELS channels, finite samples, no longer than ADREEL_MAX_MEDIA_SECONDS;
        otherwise an AdReelInputError naming ``field``."""
        try:
            sr = float(sample_rate)
        except (TypeError, ValueError):
            raise AdReelInputError(field, f"sample_rate {sample_rate!r} is not a number") from None
        if not math.isfinite(sr) or sr != int(sr) or not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
            raise AdReelInputError(field, f"sample_rate {sample_rate!r} is not a whole number of Hz within "
                                          f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE}")
        arr = np.asarray(samples)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or not 1 <= arr.shape[0] <= MAX_CHANNELS:
            raise AdReelInputError(field, f"audio of shape {tuple(arr.shape)} is not (channels ≤ {MAX_CHANNELS}, samples)")
        cap = limits.MAX_MEDIA_SECONDS.read()
        if arr.shape[1] > cap * sr:
            raise AdReelInputError(field, f"{arr.shape[1] / sr:.1f} s of audio is longer than this server takes "
                                          f"({cap:g} s, ADREEL_MAX_MEDIA_SECONDS)")
        arr = np.asarray(arr, np.float32)
        if not np.isfinite(arr).all():
            raise AdReelInputError(field, "the audio has NaN or infinite samples")
        return cls(arr, int(sr))

    def to_mono(self) -> np.ndarray:
        return self.samples.mean(axis=0).astype(np.float32)

    def trimmed(self, threshold: float = 0.01, keep: float = 0.03) -> "AudioClip":
        loud = np.flatnonzero(np.abs(self.samples).max(axis=0) > threshold)
        if loud.size == 0:
            return AudioClip(self.samples[:, :0], self.sample_rate, self.voice)
        pad = int(keep * self.sample_rate)
        a, b = max(0, loud[0] - pad), min(self.samples.shape[-1], loud[-1] + pad)
        return AudioClip(self.samples[:, a:b], self.sample_rate, self.voice)


@dataclass
class MixSettings:
    music_gain_db: float = -6.0     # music level before ducking, relative to its own loudness-normalised level
    duck_threshold: float = 0.015   # sidechain: voice above this (linear) pulls the music down
    duck_ratio: float = 20.0
    duck_attack_ms: float = 20.0
    duck_release_ms: float = 350.0
    fade_in: float = 0.6
    fade_out: float = 1.5
    target_lufs: float = -14.0
    true_peak: float = -1.5         # a little under -1 dBTP, for the AAC encode


def write_wav(path: str, samples: np.ndarray, sample_rate: int, chunk_seconds: float = 5.0) -> None:
    """float (channels, n) → 16-bit PCM WAV, a few seconds at a time (no whole-track copies)."""
    data = np.asarray(samples)
    if data.ndim == 1:
        data = data[None, :]
    step = max(1, int(chunk_seconds * sample_rate))
    with wave.open(path, "wb") as w:
        w.setnchannels(data.shape[0])
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        for a in range(0, data.shape[1], step):
            part = np.clip(np.asarray(data[:, a:a + step], np.float32), -1, 1)
            w.writeframes((part.T * 32767).round().astype("<i2").tobytes())


def music_seconds_cap() -> float:
    """The most of a music file worth decoding: the longest ad plus a margin, never above the server's cap."""
    return min(limits.MAX_MEDIA_SECONDS.read(), MAX_DURATION_SECONDS + MUSIC_MARGIN_SECONDS)


def decode_audio_file(path: str, field: str = "track", max_seconds: float | None = None,
                      sample_rate: int = SAMPLE_RATE, channels: int = 2, timeout: float | None = None,
                      allowance=None) -> AudioClip:
    """An audio file → float32 AudioClip (channels, n) at ``sample_rate``, streamed, never more
    than ``max_seconds`` (default: ``music_seconds_cap``; never above ADREEL_MAX_MEDIA_SECONDS).

    The file is probed first and read only as a known audio container (``open_media``), with the
    protocol whitelist and ``-t``; the decode streams into one buffer of the bounded size.
    ``allowance``: the prompt's share of ADREEL_MAX_MEDIA_SECONDS; what will be decoded is reserved there first."""
    media = open_media(path, field, "audio")
    cap = min(max_seconds if max_seconds is not None else music_seconds_cap(), limits.MAX_MEDIA_SECONDS.read())
    if allowance is not None:
        probed = media.duration
        allowance.reserve(min(cap, probed) if probed is not None and probed > 0 else cap,
                          f"{field}: decoding {os.path.basename(path)!r}")
    frame_bytes = 4 * channels
    limit = int(math.ceil(cap * sample_rate)) * frame_bytes
    buf = bytearray(limit)
    view = memoryview(buf)
    cmd = [find_ffmpeg(), "-v", "error", "-nostdin", *media.args(cap), "-map", "0:a:0", "-vn", "-sn", "-dn",
           "-f", "f32le", "-ac", str(channels), "-ar", str(sample_rate), "-t", f"{cap:.3f}", "pipe:1"]
    got = 0
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        timer = threading.Timer(timeout if timeout is not None else max(60.0, cap), proc.kill)
        timer.start()
        try:
            while got < limit:
                n = proc.stdout.readinto(view[got:])
                if not n:
                    break
                got += n
        finally:
            timer.cancel()
            proc.kill()  # anything past the bound is not wanted
            proc.stdout.close()
            rc = proc.wait()
        err.seek(0)
        tail = err.read()[-400:].decode(errors="replace").strip()
    name = os.path.basename(path)
    got -= got % frame_bytes
    if got == 0:
        raise AdReelInputError(field, f"cannot decode {name!r}: {tail.replace(path, name) or f'ffmpeg exited {rc}'}")
    samples = np.frombuffer(view[:got], "<f4").reshape(-1, channels).T.copy()
    del view
    return AudioClip(samples, sample_rate)


def narration_track(sb: Storyboard, clips: list[AudioClip | None], lead_in: float) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """One mono 48 kHz track with each scene's narration at its scene start + lead-in.

    Returns the track and the (start, end) seconds of each scene's voice.
    """
    total = int(round(sb.total_frames / sb.fps * SAMPLE_RATE))
    track = np.zeros(total, np.float32)
    spans = []
    for sc, clip in zip(sb.scenes, clips):
        if clip is None or clip.samples.shape[-1] == 0:
            spans.append((0.0, 0.0))
            continue
        voice = resample(clip.to_mono(), clip.sample_rate, SAMPLE_RATE)
        start = sc.start_frame / sb.fps + lead_in
        a = int(round(start * SAMPLE_RATE))
        scene_end = int(round((sc.start_frame + sc.frame_count) / sb.fps * SAMPLE_RATE))
        b = min(a + voice.size, scene_end, total)
        if b <= a:
            spans.append((0.0, 0.0))
            continue
        track[a:b] += voice[: b - a]
        spans.append((a / SAMPLE_RATE, b / SAMPLE_RATE))
    return track, spans


def _run(cmd: list[str], what: str, stop: threading.Event | None = None) -> str:
    """Run ffmpeg to its end (its stderr returned); killed at once when ``stop`` is set."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        try:
            while True:
                try:
                    rc = proc.wait(timeout=0.1)
                    break
                except subprocess.TimeoutExpired:
                    if stop is not None and stop.is_set():
                        raise InterruptedError(f"stopped while trying to {what}") from None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        text = err.read().decode(errors="replace")
    if rc != 0:
        raise RuntimeError(f"ffmpeg failed to {what}: {text.strip()[-1200:]}")
    return text


def mix_audio(duration: float, narration: np.ndarray | None, music: AudioClip | None, out_path: str,
              work_dir: str, settings: MixSettings | None = None, stop: threading.Event | None = None) -> dict:
    """Write the 48 kHz stereo mix to ``out_path`` (float WAV) and measure it.

    Returns loudness facts with ``filter``: the gain (+ limiter) that brings the
    mix to the target, for the encode to apply; ``silent`` when there is nothing.
    ``stop`` (set by the caller on an error or interrupt) kills the ffmpeg pass.
    """
    s = settings or MixSettings()
    for name in ("music_gain_db", "duck_threshold", "duck_ratio", "duck_attack_ms", "duck_release_ms",
                 "fade_in", "fade_out", "target_lufs", "true_peak"):
        limits.require_finite(getattr(s, name), "music_volume_db" if name == "music_gain_db" else name)
    limits.require_finite(duration, "duration")
    ff = find_ffmpeg()
    inputs, parts = [], []
    has_voice = narration is not None and np.abs(narration).max(initial=0) > 1e-4
    if music is not None and music.samples.shape[-1] < music.sample_rate * 0.2:
        raise AdReelInputError("music", f"the music is {music.duration:.2f}s long: too short to loop")
    if has_voice:
        p = os.path.join(work_dir, "narration.wav")
        write_wav(p, narration, SAMPLE_RATE)
        inputs += input_args(p, "wav")
    if music is not None:
        p = os.path.join(work_dir, "music.wav")
        # the bed is trimmed to the ad: never write (or loop) more of it than the ad lasts
        keep = int(math.ceil((duration + 1.0) * music.sample_rate))
        write_wav(p, music.samples[:, :keep], music.sample_rate)
        inputs += ["-stream_loop", "-1", *input_args(p, "wav")]
    d = f"{duration:.6f}"
    if not inputs:
        return {"silent": True, "filter": "anull"}
    fmt = f"aformat=sample_fmts=fltp:sample_rates={SAMPLE_RATE}:channel_layouts=stereo"
    m_idx = 1 if has_voice else 0
    if music is not None:
        fo_start = max(0.0, duration - s.fade_out)
        parts.append(f"[{m_idx}:a]{fmt},atrim=0:{d},asetpts=N/SR/TB,volume={s.music_gain_db}dB,"
                     f"afade=t=in:st=0:d={s.fade_in},afade=t=out:st={fo_start:.3f}:d={s.fade_out}[m]")
    if has_voice:
        parts.append(f"[0:a]{fmt},apad=whole_dur={d},atrim=0:{d},asplit=2[vk][vv]")
    if music is not None and has_voice:
        parts.append(f"[m][vk]sidechaincompress=threshold={s.duck_threshold}:ratio={s.duck_ratio}"
                     f":attack={s.duck_attack_ms}:release={s.duck_release_ms}:knee=2:makeup=1[duck]")
        parts.append("[duck][vv]amix=inputs=2:normalize=0:duration=first[mix]")
    elif has_voice:
        parts.append("[vk]anullsink;[vv]anull[mix]")
    else:
        parts.append("[m]anull[mix]")
    # one pass: write the mix and measure it (EBU R128 integrated loudness + true peak)
    err = _run([ff, "-hide_banner", "-nostdin", "-y", *inputs, "-filter_complex",
                ";".join(parts) + ";[mix]asplit=2[out][meas];[meas]ebur128=peak=true:framelog=verbose[measured]",
                "-map", "[out]", "-t", d, "-c:a", "pcm_f32le", "-ar", str(SAMPLE_RATE), out_path,
                "-map", "[measured]", "-t", d, "-f", "null", "-"], "mix the audio", stop)
    plan = loudness_plan(_last_summary(err), s)
    if plan.get("limited"):
        # the limiter takes some loudness off: measure what it gives and make up the difference
        err = _run([ff, "-hide_banner", "-nostdin", *input_args(out_path, "wav"), "-af",
                    f"{plan['filter']},ebur128=peak=true:framelog=verbose", "-f", "null", "-"],
                   "measure the limited mix", stop)
        after, _ = _last_summary(err)
        plan = loudness_plan((plan["input_lufs"], plan["input_true_peak"]), s,
                             gain=plan["gain_db"] + s.target_lufs - after)
    return plan


def _last_summary(stderr: str) -> tuple[float, float]:
    summary = stderr[stderr.rfind("Summary:"):]
    i = re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary)
    peak = re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary)
    if not i or not peak:
        raise RuntimeError(f"ffmpeg's loudness measurement gave no summary: {stderr.strip()[-400:]}")
    return float(i.group(1)), float(peak.group(1))


def loudness_plan(measured: tuple[float, float], s: MixSettings, gain: float | None = None) -> dict:
    """The gain (and, when the peaks would overshoot, a limiter) that brings the mix
    to the target; applied inside the video encode's filter graph, not in a pass of its own.
    ``gain`` overrides the plain difference (the make-up after limiting)."""
    integrated, true_peak = measured
    if integrated < -70:  # silence
        return {"silent": True, "filter": "anull"}
    if gain is None:
        gain = s.target_lufs - integrated
    chain = [f"volume={gain:.2f}dB"]
    limited = true_peak + gain > s.true_peak
    if limited:  # sample-peak limiter a dB under the true-peak ceiling (inter-sample peaks)
        limit = 10 ** ((s.true_peak - 1.0) / 20)
        chain.append(f"alimiter=limit={limit:.4f}:attack=5:release=60:level=disabled:latency=1")
    return {"silent": False, "input_lufs": integrated, "input_true_peak": true_peak, "gain_db": round(gain, 2),
            "limited": limited, "target_lufs": s.target_lufs, "true_peak_limit": s.true_peak,
            "filter": ",".join(chain)}
