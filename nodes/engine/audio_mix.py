"""The sound of the ad: narration placed at its scenes, a music bed looped or
trimmed to the ad, faded, ducked under the voice (sidechain compression keyed
by the narration), and the mix normalised to about -14 LUFS integrated with
true peak at most -1 dBTP (two-pass loudnorm). Audio only: cheap passes that
end in one WAV the video encode takes.
"""
from __future__ import annotations

import os
import re
import subprocess
import wave
from dataclasses import dataclass

import numpy as np

from .ffmpeg_tools import find_ffmpeg
from .models import AdReelInputError, Storyboard
from .narration import resample

SAMPLE_RATE = 48000


@dataclass
class AudioClip:
    samples: np.ndarray  # float32 (channels, n)
    sample_rate: int

    @property
    def duration(self) -> float:
        return self.samples.shape[-1] / self.sample_rate

    @classmethod
    def mono(cls, samples: np.ndarray, sample_rate: int) -> "AudioClip":
        return cls(np.asarray(samples, np.float32).reshape(1, -1), sample_rate)

    def to_mono(self) -> np.ndarray:
        return self.samples.mean(axis=0).astype(np.float32)

    def trimmed(self, threshold: float = 0.01, keep: float = 0.03) -> "AudioClip":
        loud = np.flatnonzero(np.abs(self.samples).max(axis=0) > threshold)
        if loud.size == 0:
            return AudioClip(self.samples[:, :0], self.sample_rate)
        pad = int(keep * self.sample_rate)
        a, b = max(0, loud[0] - pad), min(self.samples.shape[-1], loud[-1] + pad)
        return AudioClip(self.samples[:, a:b], self.sample_rate)


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


def write_wav(path: str, samples: np.ndarray, sample_rate: int) -> None:
    """float (channels, n) → 16-bit PCM WAV."""
    data = np.clip(np.asarray(samples, np.float32), -1, 1)
    if data.ndim == 1:
        data = data[None, :]
    pcm = (data.T * 32767).round().astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(data.shape[0])
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())


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


def _run(cmd: list[str], what: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed to {what}: {proc.stderr.strip()[-1200:]}")
    return proc.stderr


def mix_audio(duration: float, narration: np.ndarray | None, music: AudioClip | None, out_path: str,
              work_dir: str, settings: MixSettings | None = None) -> dict:
    """Write the 48 kHz stereo mix to ``out_path`` (float WAV) and measure it.

    Returns loudness facts with ``filter``: the gain (+ limiter) that brings the
    mix to the target, for the encode to apply; ``silent`` when there is nothing.
    """
    s = settings or MixSettings()
    ff = find_ffmpeg()
    inputs, parts = [], []
    has_voice = narration is not None and np.abs(narration).max(initial=0) > 1e-4
    if music is not None and music.samples.shape[-1] < music.sample_rate * 0.2:
        raise AdReelInputError("music", f"the music is {music.duration:.2f}s long: too short to loop")
    if has_voice:
        p = os.path.join(work_dir, "narration.wav")
        write_wav(p, narration, SAMPLE_RATE)
        inputs += ["-i", p]
    if music is not None:
        p = os.path.join(work_dir, "music.wav")
        write_wav(p, music.samples, music.sample_rate)
        inputs += ["-stream_loop", "-1", "-i", p]
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
                "-map", "[measured]", "-t", d, "-f", "null", "-"], "mix the audio")
    plan = loudness_plan(_last_summary(err), s)
    if plan.get("limited"):
        # the limiter takes some loudness off: measure what it gives and make up the difference
        err = _run([ff, "-hide_banner", "-nostdin", "-i", out_path, "-af",
                    f"{plan['filter']},ebur128=peak=true:framelog=verbose", "-f", "null", "-"],
                   "measure the limited mix")
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
