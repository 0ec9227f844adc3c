"""The Voice base class: what speaks a narration line and measures how long it takes (cached).

Its own module so every voice (espeak-ng and the estimate in ``voice.py``, Piper in
``piper_voice.py``, the cloud voices) builds on it without importing the module that
chooses among them (``voice.voice_for``).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

from ..audio.narration import Speech

_CACHE: "OrderedDict[tuple, float]" = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 8192


class Voice:
    """Something that speaks spoken-form text. Subclasses implement :meth:`synthesize`."""

    language: str = "en"
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

    def _measure(self, spoken: str, speed: float) -> float:
        return self.synthesize(spoken, speed).duration

    def measure(self, spoken: str, speed: float = 1.0) -> float:
        """Seconds of speech for ``spoken`` (leading / trailing silence trimmed), cached."""
        spoken = spoken.strip()
        if not spoken:
            return 0.0
        k = (self.key, spoken, round(float(speed), 4))
        with _CACHE_LOCK:
            if k in _CACHE:
                _CACHE.move_to_end(k)
                return _CACHE[k]
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
                return dict(zip(todo, pool.map(self.measure, todo)))
        return {s: self.measure(s) for s in todo}
