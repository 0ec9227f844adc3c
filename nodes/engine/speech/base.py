"""The Voice base class: what speaks a narration line and measures how long it takes (cached).

Its own module so every voice (espeak-ng and the estimate in ``voice.py``, Piper in
``piper_voice.py``, the cloud voices) builds on it without importing the module that
chooses among them (``voice.voice_for``).
"""
from __future__ import annotations

import contextvars
import re
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

from ..audio.narration import Speech
from .bounds import media_length_problem, media_seconds_ceiling
from .spoken import base_language

_CACHE: "OrderedDict[tuple, float]" = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 8192


# ------------------------------------------------------------------ the estimate
# Calibrated against espeak-ng 1.51 at 165 wpm on AdReel's template lines and
# the corpus briefs (tests/unit/test_spoken_form.py checks that it errs long):
# units of the spoken form per second, seconds per pause, seconds of onset.
EST_RATES = {"ko": ("syllables", 4.0), "ja": ("characters", 6.0), "zh": ("characters", 3.5),
              "th": ("characters", 9.0)}
EST_DEFAULT = ("words", 2.2)
_EST_PAUSE = 0.2
_EST_ONSET = 0.3


def estimate_units(spoken: str, language: str) -> float:
    unit, _ = EST_RATES.get(base_language(language), EST_DEFAULT)
    if unit == "words":
        return float(len(re.findall(r"[^\W_]+(?:['’][^\W_]+)?", spoken)))
    hangul = len(re.findall(r"[\uac00-\ud7a3]", spoken))
    cjk = len(re.findall(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\u0e00-\u0e7f]", spoken))
    latin_words = len(re.findall(r"[A-Za-z]+", spoken))
    digits = len(re.findall(r"\d", spoken))
    return hangul + cjk + 2.5 * latin_words + 1.5 * digits


def estimate_seconds(spoken: str, language: str, speed: float = 1.0) -> float:
    """A length for ``spoken`` that errs long against espeak-ng's normal rate."""
    if not spoken.strip():
        return 0.0
    _, rate = EST_RATES.get(base_language(language), EST_DEFAULT)
    pauses = len(re.findall(r"[,.!?;:](?=\s|$)", spoken))
    return (_EST_ONSET + estimate_units(spoken, language) / rate + _EST_PAUSE * pauses) / max(speed, 1e-3)


class Voice:
    """Something that speaks spoken-form text. Subclasses implement :meth:`synthesize`."""

    language: str = "en"
    pace: float = 1.0           # the pace asked for (SceneNarration's rate_wpm / 165)
    max_speed: float = 1.0      # fastest natural speed, as a factor of the normal rate
    measured: bool = True       # False: :meth:`measure` is a calibrated estimate, not the voice itself

    @property
    def key(self) -> str:  # identifies the sound: the cache key
        raise NotImplementedError

    def describe(self) -> str:
        return self.key

    def speed_for_pace(self, pace: float) -> float:
        """The ``speed`` at which a line lasts about 1 / ``pace`` of its normal length (what "15 %
        faster" means to a listener). espeak-ng (and a cloud API's speed): ``pace`` itself."""
        return pace

    def synthesize(self, spoken: str, speed: float = 1.0) -> Speech:
        raise NotImplementedError

    def estimate(self, spoken: str, speed: float = 1.0) -> float:
        """Seconds ``spoken`` lasts by the calibrated estimate (errs long), at this voice's pace."""
        return estimate_seconds(spoken, self.language, speed * max(self.pace, 1e-3))

    def check_length(self, spoken: str, speed: float = 1.0) -> None:
        """Refuse, before any synthesis, a line whose estimated length is over ADREEL_MAX_MEDIA_SECONDS."""
        seconds = self.estimate(spoken, speed)
        if seconds > media_seconds_ceiling():
            raise media_length_problem(seconds)

    def _measure(self, spoken: str, speed: float) -> float:
        return self.synthesize(spoken, speed).duration

    def measure(self, spoken: str, speed: float = 1.0) -> float:
        """Seconds of speech for ``spoken`` (leading / trailing silence trimmed), cached. A line whose estimate
        is over ADREEL_MAX_MEDIA_SECONDS is not synthesized to measure it: its estimate is returned."""
        spoken = spoken.strip()
        if not spoken:
            return 0.0
        k = (self.key, spoken, round(float(speed), 4))
        with _CACHE_LOCK:
            if k in _CACHE:
                _CACHE.move_to_end(k)
                return _CACHE[k]
        estimate = self.estimate(spoken, speed)
        if estimate > media_seconds_ceiling():
            # never synthesized (speaking it is refused: check_length): the estimate, which errs long, is
            # its length for the script's bar and the fit, which find it too long for any scene
            return estimate
        seconds = float(self._measure(spoken, speed))
        with _CACHE_LOCK:
            _CACHE[k] = seconds
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
        return seconds

    def measure_many(self, lines) -> dict[str, float]:
        """Measure several lines at once (two synthesis processes at a time)."""
        todo = list(dict.fromkeys(s.strip() for s in lines if s and s.strip()))
        if len(todo) > 1 and self.measured:
            with ThreadPoolExecutor(max_workers=2, thread_name_prefix="adreel-voice") as pool:
                # each in the caller's context: its speech_bounds (interrupt, deadline) hold in the pool too
                runs = [pool.submit(contextvars.copy_context().run, self.measure, s) for s in todo]
                return dict(zip(todo, (r.result() for r in runs)))
        return {s: self.measure(s) for s in todo}
