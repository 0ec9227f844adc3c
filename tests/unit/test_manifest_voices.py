"""The render manifest records each scene's voice, as SceneNarration shows it.

SceneNarration's AUDIO names its voice (besides waveform and sample_rate, which is all core's nodes
read); FFmpegAssemble carries it to the manifest. Another node's AUDIO is recorded as "unknown".
"""
from __future__ import annotations

import importlib
import json
import os
import sys

import numpy as np

from nodes.engine.assembly.encode import EncodeSettings
from nodes.engine.assembly.render import AdMedia, RenderOptions, render_ad
from nodes.engine.motion.camera import CameraMoveClip
from nodes.engine.models import Brief
from nodes.engine.script import write_template_script
from nodes.engine.storyboard import build_storyboard

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def convert():
    comfy = os.environ.get("ADREEL_COMFYUI") or os.path.join(ROOT, ".runtime", "ComfyUI")
    if comfy not in sys.path:
        sys.path.append(comfy)
    return importlib.import_module("nodes.comfy_nodes.convert")


def tone(seconds: float, sr: int = 24000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def test_each_scenes_voice_reaches_the_manifest(tmp_path):
    cv = convert()
    b = Brief(brand="Acme", product="RoboVac X2", cta="Shop now", duration_seconds=20.0, aspect_ratio="9:16")
    sb = build_storyboard(b, write_template_script(b, 1), fps=24, resolution="720p")
    sb = sb.model_copy(update={"width": 96, "height": 160})
    assert len(sb.scenes) >= 4
    labels = ["Piper en_US-joe-medium", "espeak-ng ko at 150 wpm",
              "openai TTS voice sk-proj-Q7wX2mZ9Q7wX2mZ9Q7wX2mZ9Q7wX2mZ9"]  # a key pasted as a voice
    audios = [cv.clip_to_audio(tone(0.6), 24000, label) for label in labels]
    assert all(set(a) == {"waveform", "sample_rate", cv.VOICE_KEY} for a in audios)
    audios.append({"waveform": audios[0]["waveform"], "sample_rate": 24000})  # another pack's AUDIO
    narration = [cv.audio_to_clip(a, f"narration[{i}]") for i, a in enumerate(audios)]
    narration += [None] * (len(sb.scenes) - len(narration))  # scenes without a line
    clips = [CameraMoveClip(np.full((160, 96, 3), 90, np.uint8), "zoom_in", sc.frame_count, sb.fps, 96, 160)
             for sc in sb.scenes]
    res = render_ad(sb, clips, str(tmp_path / "ad.mp4"), str(tmp_path / "work"),
                    RenderOptions(thumbnail=False, encode=EncodeSettings("ultrafast")),
                    AdMedia(narration=narration))
    voices = json.load(open(res.manifest_path, encoding="utf-8"))["voices"]
    expected = {0: labels[0], 1: labels[1], 3: "unknown"}
    got = {v["scene"]: v["voice"] for v in voices}
    assert {k: got[k] for k in expected} == expected
    assert got[2].startswith("openai TTS voice ") and "Q7wX2mZ9" not in got[2]  # masked, as every public file
    assert set(got) == {i for i, c in enumerate(narration) if c is not None}
