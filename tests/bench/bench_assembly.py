#!/usr/bin/env python3
"""`make bench-assembly`: AdReel's assembly against the limit and against a
MoneyPrinterTurbo-style moviepy composition, on the same machine, in one run.

The same ad for everyone: 9:16 1080p 30 fps, five scenes (composed key images),
espeak-ng narration, the bundled music bed, subtitles, headlines, transitions;
15 s and 60 s. Measured, each in its own child process (peak RSS of the process
and its ffmpeg children, sampled every 50 ms):
  * AdReel: render_ad (one pass: camera moves, transitions, text, subtitles,
    logo, end card, ducked and normalised audio) → MP4.
  * (a) the limit: one libx264 encode, same preset/crf, of AdReel's finished
    frames (decode the output, encode it once).
  * (b) moviepy 2 as MoneyPrinterTurbo composes: each scene clip written on its
    own (zoom via per-frame resize), the clips concatenated and written again,
    then a CompositeVideoClip with TextClips (headlines, subtitles) and a
    CompositeAudioClip (voice + music at 20 %) written a third time.
Prints wall time and peak memory with the ratios.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [ROOT, os.path.dirname(HERE)]

PRESET, CRF = "medium", 20
STRUCTURE = ["hook", "problem", "solution", "proof", "cta"]


def measure(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; (wall seconds, peak MB of it and its children)."""
    t0 = time.monotonic()
    proc = psutil.Popen(cmd)
    peak = 0
    while proc.poll() is None:
        try:
            rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed with {proc.returncode}")
    return time.monotonic() - t0, peak / 2**20


# ---------------------------------------------------------------- inputs
def prepare(seconds: float, work: str) -> dict:
    """Storyboard, key images, narration WAVs, music WAV: shared by both contenders."""
    import numpy as np
    from nodes.engine.audio.mix import write_wav
    from nodes.engine.keyimage.composed import compose_key_image
    from nodes.engine.models import Brief
    from nodes.engine.speech.fit import speak_to_fit
    from nodes.engine.script import write_template_script
    from nodes.engine.storyboard import build_storyboard, retime_for_narration

    b = Brief(brand="Acme", product="RoboVac X2", cta="Shop now at acme.com", duration_seconds=seconds,
              brand_colors=["#1E3A8A", "#F59E0B", "#10B981"])
    script = write_template_script(b, 7, structure=STRUCTURE)
    sb = build_storyboard(b, script)
    voices = []
    for sc in sb.scenes:
        sp, _ = speak_to_fit(sc.narration, "en", sc.duration)
        path = os.path.join(work, f"voice_{sc.index}.wav")
        write_wav(path, sp.samples, sp.sample_rate)
        voices.append((path, sp.duration))
    sb = retime_for_narration(sb, [d for _, d in voices])
    keys = []
    for sc in sb.scenes:
        p = os.path.join(work, f"key_{sc.index}.png")
        compose_key_image(sc, sb.width, sb.height, b.product).save(p)
        keys.append(p)
    music = os.path.join(ROOT, "assets", "music", "adreel_bright_120bpm.ogg")
    spec = {"storyboard": json.loads(sb.model_dump_json()), "keys": keys, "voices": voices, "music": music}
    with open(os.path.join(work, "spec.json"), "w") as f:
        json.dump(spec, f)
    return spec


# ---------------------------------------------------------------- contenders
def run_adreel(work: str) -> None:
    import numpy as np
    from PIL import Image
    from nodes.engine.assembly.encode import EncodeSettings
    from nodes.engine.audio.mix import AudioClip
    from nodes.engine.models import Storyboard
    from nodes.engine.motion.camera import CameraMoveClip
    from nodes.engine.audio.narration import read_wav
    from nodes.engine.assembly.render import AdMedia, RenderOptions, render_ad
    spec = json.load(open(os.path.join(work, "spec.json")))
    sb = Storyboard.model_validate(spec["storyboard"])
    imgs = [np.asarray(Image.open(p).convert("RGB")) for p in spec["keys"]]
    voices = [read_wav(p) for p, _ in spec["voices"]]
    narration = [AudioClip.mono(v.samples, v.sample_rate) for v in voices]
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", spec["music"], "-f", "f32le", "-ac", "2", "-ar", "48000",
                          "pipe:1"], capture_output=True, check=True).stdout
    music = AudioClip(np.frombuffer(raw, "<f4").reshape(-1, 2).T.copy(), 48000)

    clips = [CameraMoveClip(im, sc.camera, sc.frame_count, sb.fps, sb.width, sb.height)
             for im, sc in zip(imgs, sb.scenes)]
    render_ad(sb, clips, os.path.join(work, "adreel.mp4"), os.path.join(work, "adreel_work"),
              RenderOptions(encode=EncodeSettings(PRESET, CRF)), AdMedia(narration=narration, music=music))


def run_moviepy(work: str) -> None:
    from moviepy import (AudioFileClip, CompositeAudioClip, CompositeVideoClip, ImageClip, TextClip,
                         VideoFileClip, afx, concatenate_videoclips)
    from nodes.engine.media.fonts import resolve_font
    spec = json.load(open(os.path.join(work, "spec.json")))
    sb = spec["storyboard"]
    W, H, fps = sb["width"], sb["height"], sb["fps"]
    font = resolve_font("Noto Sans CJK KR:style=Bold").path
    ffp = ["-crf", str(CRF)]
    # 1. every scene written on its own (MoneyPrinterTurbo's combine_videos writes processed clips)
    parts = []
    for sc, key in zip(sb["scenes"], spec["keys"]):
        d = sc["frame_count"] / fps
        clip = ImageClip(key).with_duration(d)
        zoom = clip.resized(lambda t, d=d: 1 + 0.12 * t / d).with_position("center")
        scene = CompositeVideoClip([zoom], size=(W, H)).with_duration(d)
        p = os.path.join(work, f"mp_scene_{sc['index']}.mp4")
        scene.write_videofile(p, fps=fps, codec="libx264", preset=PRESET, ffmpeg_params=ffp, audio=False, logger=None)
        parts.append(p)
    # 2. concatenated and written again
    combined = os.path.join(work, "mp_combined.mp4")
    concatenate_videoclips([VideoFileClip(p) for p in parts]).write_videofile(
        combined, fps=fps, codec="libx264", preset=PRESET, ffmpeg_params=ffp, audio=False, logger=None)
    # 3. text and audio composited, written a third time
    video = VideoFileClip(combined)
    layers = [video]
    for sc, (vp, vd) in zip(sb["scenes"], spec["voices"]):
        start = sc["start_frame"] / fps
        dur = sc["frame_count"] / fps
        layers.append(TextClip(font=font, text=sc["on_screen_text"], font_size=70, color="white",
                               bg_color="#1E3A8A", method="caption", size=(int(W * 0.86), None))
                      .with_start(start).with_duration(dur).with_position(("center", int(H * 0.6))))
        if vd > 0:
            layers.append(TextClip(font=font, text=sc["narration"], font_size=48, color="white", bg_color="black",
                                   method="caption", size=(int(W * 0.86), None))
                          .with_start(start + 0.1).with_duration(min(vd, dur - 0.1))
                          .with_position(("center", int(H * 0.77))))
    voice = [AudioFileClip(vp).with_start(sc["start_frame"] / fps + 0.1)
             for sc, (vp, vd) in zip(sb["scenes"], spec["voices"]) if vd > 0]
    bgm = AudioFileClip(spec["music"]).with_effects([afx.AudioLoop(duration=video.duration), afx.MultiplyVolume(0.2)])
    final = CompositeVideoClip(layers, size=(W, H)).with_audio(CompositeAudioClip(voice + [bgm]).with_duration(video.duration))
    final.write_videofile(os.path.join(work, "moviepy.mp4"), fps=fps, codec="libx264", preset=PRESET,
                          ffmpeg_params=ffp, audio_codec="aac", logger=None)


def limit_encode(work: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", os.path.join(work, "adreel.mp4"), "-c:v", "libx264",
                    "-preset", PRESET, "-crf", str(CRF), "-profile:v", "high", "-x264-params", "8x8dct=1",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "192k", os.path.join(work, "limit.mp4")], check=True)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] != "--seconds":  # child process
        {"adreel": run_adreel, "moviepy": run_moviepy, "limit": limit_encode}[sys.argv[1]](sys.argv[2])
        return
    rows = []
    lengths = (15.0, 60.0)
    if len(sys.argv) == 3 and sys.argv[1] == "--seconds":  # e.g. --seconds 15
        lengths = tuple(float(x) for x in sys.argv[2].split(","))
    for seconds in lengths:
        with tempfile.TemporaryDirectory(prefix="adreel_bench_") as work:
            prepare(seconds, work)
            me = [sys.executable, os.path.abspath(__file__)]
            a_t, a_m = measure(me + ["adreel", work])
            l_t, l_m = measure(me + ["limit", work])
            m_t, m_m = measure(me + ["moviepy", work])
            rows.append((seconds, a_t, a_m, l_t, l_m, m_t, m_m))
    print()
    print("Assembly of a 9:16 1080p 30 fps ad, five scenes, narration, music, subtitles, transitions "
          f"(x264 {PRESET} crf {CRF})")
    print(f"{'ad':>4} | {'AdReel':>15} | {'(a) 1 encode':>15} | {'(b) moviepy/MPT':>17} | "
          f"{'AdReel/(a)':>10} | {'(b)/AdReel':>10}")
    for s, a_t, a_m, l_t, l_m, m_t, m_m in rows:
        print(f"{s:>3.0f}s | {a_t:6.1f}s {a_m:5.0f}MB | {l_t:6.1f}s {l_m:5.0f}MB | {m_t:7.1f}s {m_m:6.0f}MB | "
              f"{a_t / l_t:9.2f}x | {m_t / a_t:9.2f}x")
    print("targets: AdReel within 1.3x of (a); (b) at least 3x AdReel's time; AdReel's memory flat with length.")


if __name__ == "__main__":
    main()
