"""Voices: what speaks a narration line, and how long it takes to say it.

A :class:`Voice` speaks the *spoken form* of a line (``spoken.py``) and
measures it. Offline voices measure by synthesising (a Piper neural voice says
a line in a fraction of a second, espeak-ng in milliseconds; results are cached
by voice and text), so the script's quality bar, SceneNarration's fit and
FFmpegAssemble's timing all see the same seconds for the same line. A voice
that cannot be run just to measure (a paid cloud API) gives a calibrated
estimate that errs long (``measured = False``) and fits at render time by
asking for a faster speed.

Defaults (:func:`default_voice`, SceneNarration's backend ``auto``): English
speaks with Piper's en_US-joe-medium (``piper_voice.py``) where piper-tts is
installed, else — with a logged note — espeak-ng; Korean and every other
language with espeak-ng, tuned per language (``ESPEAK_TUNING``).

Adding a backend (another cloud TTS) is a subclass with
``synthesize(spoken, speed)``, a ``key`` that changes whenever the sound
changes (model, voice, rate), ``max_speed`` (the fastest that still sounds
natural, as a factor of its normal rate) and, when measuring means money or
network, ``measured = False``; then register it in :func:`voice_for` (and in
:func:`default_voice` to make it the language's default).
"""
from __future__ import annotations

import math
import re
import shutil
import subprocess
from functools import lru_cache

from ..models import AdReelInputError
from ..audio.narration import DEFAULT_RATE_WPM, MAX_RATE_WPM, Speech, espeak_voice, speak_espeak
from .base import EST_DEFAULT, EST_RATES, Voice, estimate_seconds, estimate_units  # noqa: F401
from .spoken import base_language

# ------------------------------------------------------------------ espeak-ng
@lru_cache(maxsize=1)
def espeak_voices() -> frozenset[str]:
    """The voice names this machine's espeak-ng has (empty when it is not installed)."""
    exe = shutil.which("espeak-ng")
    if not exe:
        return frozenset()
    try:
        out = subprocess.run([exe, "--voices"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    names = set()
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 2:
            names.add(parts[1].lower())
    return frozenset(names)


# How espeak-ng speaks each language: ``pace`` scales the rate asked for (SceneNarration's rate_wpm,
# 165 by default), ``pitch`` is espeak-ng's -p (0-99), ``word_gap`` its -g (10 ms units between words).
# Korean: at 165 wpm espeak-ng's ko voice articulates about 5.6 syllables a second, a natural read pace,
# but runs the eojeol (spaced words) together; a 20 ms word gap makes the word boundaries audible and a
# 4 % faster rate (172 wpm) keeps a line as long as before (the template's Korean lines: 42.84 s at
# 165 wpm without gaps, 42.83 s tuned). Pitch 50 is espeak-ng's centre, where the ko voice's own narrow
# range (80-118 Hz) sits as its authors set it; AdReel's 45 elsewhere is a slightly calmer read.
ESPEAK_TUNING = {"ko": {"pace": 172 / 165, "pitch": 50, "word_gap": 2}}
_ESPEAK_PLAIN = {"pace": 1.0, "pitch": 45, "word_gap": 0}


class EspeakVoice(Voice):
    """espeak-ng, offline: ~100 languages; speed is the rate in words per minute."""

    def __init__(self, language: str, rate_wpm: int = DEFAULT_RATE_WPM, pitch: int | None = None):
        tuning = ESPEAK_TUNING.get(base_language(language), _ESPEAK_PLAIN)
        self.language = language
        self.pace = int(rate_wpm) / DEFAULT_RATE_WPM
        self.rate_wpm = int(round(int(rate_wpm) * tuning["pace"]))
        self.pitch = int(tuning["pitch"] if pitch is None else pitch)
        self.word_gap = int(tuning["word_gap"])
        self.max_speed = max(1.0, MAX_RATE_WPM * tuning["pace"] / self.rate_wpm)

    @property
    def key(self) -> str:
        return f"espeak-ng:{espeak_voice(self.language)}:{self.rate_wpm}:{self.pitch}:{self.word_gap}"

    def describe(self) -> str:
        return f"espeak-ng {espeak_voice(self.language)} at {self.rate_wpm} wpm"

    def rate_for(self, speed: float) -> int:
        return int(math.ceil(self.rate_wpm * speed - 1e-9))

    def synthesize(self, spoken: str, speed: float = 1.0) -> Speech:
        return speak_espeak(spoken, self.language, self.rate_for(speed), self.pitch, self.word_gap)


# ------------------------------------------------------------------ estimate
# (the calibrated estimate lives with the Voice base class: every voice checks a line's length with it)


# a typical line's pace with espeak-ng at 165 wpm (pauses included): budgets for a writer (an LLM's
# prompt), not the bar — the bar measures each line with the voice
_TYPICAL_RATES = {"ko": 4.6, "ja": 7.0, "zh": 4.0, "th": 10.0}
_TYPICAL_WORDS = 2.6


def unit_budget(seconds: float, language: str) -> tuple[str, int]:
    """About how many units (words, syllables …) a line said in ``seconds`` holds."""
    unit, _ = EST_RATES.get(base_language(language), EST_DEFAULT)
    rate = _TYPICAL_RATES.get(base_language(language), _TYPICAL_WORDS)
    return unit, max(0, math.floor(seconds * rate + 1e-9))


class EstimateVoice(Voice):
    """No voice to measure with (espeak-ng missing, or a language it lacks): the calibrated estimate."""

    measured = False

    def __init__(self, language: str):
        self.language = language

    @property
    def key(self) -> str:
        return f"estimate:{base_language(self.language)}"

    def describe(self) -> str:
        return f"the speaking-rate estimate for {base_language(self.language)!r} (no voice to measure with)"

    def _measure(self, spoken: str, speed: float) -> float:
        return estimate_seconds(spoken, self.language, speed)

    def synthesize(self, spoken: str, speed: float = 1.0) -> Speech:
        return EspeakVoice(self.language).synthesize(spoken, speed)  # fails clearly naming the language


# ------------------------------------------------------------------ cloud
class CloudVoice(Voice):
    """OpenAI / ElevenLabs TTS (tts_cloud.py). Measuring would cost a request: the estimate stands in,
    and the line is asked for again at the speed that fits when the real audio overruns."""

    measured = False
    _MAX_SPEED = {"openai": 1.3, "elevenlabs": 1.2}

    def __init__(self, provider: str, language: str, voice: str = "", model: str = ""):
        self.provider, self.language, self.voice, self.model = provider, language, voice, model
        self.max_speed = self._MAX_SPEED.get(provider, 1.2)

    @property
    def key(self) -> str:
        return f"{self.provider}:{self.model}:{self.voice}"

    def describe(self) -> str:
        return f"{self.provider} TTS" + (f" voice {self.voice}" if self.voice else "")

    def _measure(self, spoken: str, speed: float) -> float:
        return estimate_seconds(spoken, self.language, speed)

    def synthesize(self, spoken: str, speed: float = 1.0) -> Speech:
        from ..audio.tts_cloud import speak_cloud
        return speak_cloud(self.provider, spoken, self.language, self.voice, self.model, speed=speed)


# ------------------------------------------------------------------ choosing
# "auto": the language's default voice (Piper for English, espeak-ng otherwise)
VOICE_BACKENDS = ("auto", "piper", "espeak-ng", "openai", "elevenlabs")


def espeak_speaks(language: str) -> bool:
    return espeak_voice(language).lower() in espeak_voices()


def espeak_or_estimate(language: str, rate_wpm: int = DEFAULT_RATE_WPM) -> Voice:
    return EspeakVoice(language, rate_wpm) if espeak_speaks(language) else EstimateVoice(language)


def default_voice(language: str) -> Voice:
    """The voice AdReel narrates ``language`` with by default (SceneNarration's backend ``auto``):
    the script stage measures with it. English: Piper's en_US-joe-medium where piper-tts is
    installed; else (and for the languages AdReel has no Piper voice for) espeak-ng; the estimate
    where espeak-ng lacks the language."""
    from .piper_voice import default_piper_voice
    return default_piper_voice(language) or espeak_or_estimate(language)


def voice_for(backend: str, language: str, rate_wpm: int = DEFAULT_RATE_WPM, voice: str = "",
              model: str = "", piper_voice: str = "default") -> Voice:
    """The voice a SceneNarration configuration speaks with.

    ``auto``: ``piper_voice`` when one is chosen and speaks ``language``, else the language's default
    voice. ``piper``: ``piper_voice`` (default: the language's Piper voice), refused for a line in
    another language. ``rate_wpm`` is the pace (165: each voice's normal pace; Piper speaks at
    rate_wpm / 165 of its own)."""
    from .piper_voice import PiperVoice, piper_available, piper_voice_files, piper_voice_for
    pace = int(rate_wpm) / DEFAULT_RATE_WPM
    if backend == "auto":
        if piper_voice and piper_voice != "default" and piper_available():
            vf = piper_voice_files().get(piper_voice)
            if vf is None or vf.speaks(language):  # a voice that is gone: the error names it
                return piper_voice_for(piper_voice, language, pace=pace)
        speaker = default_voice(language)  # a chosen voice of another language: the language's default
        return PiperVoice(speaker.file, pace) if isinstance(speaker, PiperVoice) else \
            espeak_or_estimate(language, rate_wpm)
    if backend == "piper":
        return piper_voice_for(piper_voice, language, pace=pace)
    if backend == "espeak-ng":
        return EspeakVoice(language, rate_wpm)
    if backend in ("openai", "elevenlabs"):
        return CloudVoice(backend, language, voice, model)
    raise ValueError(f"{backend!r} is not one of {', '.join(VOICE_BACKENDS)}")
