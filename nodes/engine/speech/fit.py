"""Whether a narration line fits its scene — one measure for the whole pack.

A scene of ``d`` seconds holds ``d - LEAD_IN - BREATH - FIT_MARGIN`` seconds of
voice: the voice starts ``LEAD_IN`` after the scene, ends ``BREATH`` before the
next, and ``FIT_MARGIN`` covers frame rounding. The script's quality bar, the
template, SceneNarration and FFmpegAssemble's retiming all use these numbers
and the same :class:`~.voice.Voice` measure of the same spoken form.

A line that is a little long is said a little faster: :func:`fit_speed` picks
the speed, the same way for the bar (up to ``BAR_MAX_SPEED``) and for
SceneNarration (up to the voice's own natural limit, which is higher), so a
line that passes the bar is always spoken inside its scene.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..audio.narration import DEFAULT_RATE_WPM, Speech
from .spoken import spoken_form
from .voice import EspeakVoice, Voice, default_voice, unit_budget

LEAD_IN_SECONDS = 0.1     # the voice starts this long after its scene starts
BREATH_SECONDS = 0.25     # and ends at least this long before the scene ends
FIT_MARGIN_SECONDS = 0.1  # frame rounding (a scene may get a frame less than its seconds), with room to spare
OVERHEAD_SECONDS = LEAD_IN_SECONDS + BREATH_SECONDS + FIT_MARGIN_SECONDS
BAR_MAX_SPEED = 1.15      # the quality bar lets a line be said up to 15 % faster than the voice's normal pace
_FIT_TRIES = 4            # measures of a line at a faster speed before it is given up as too long


def speech_room(scene_seconds: float) -> float:
    """Seconds of voice a scene of ``scene_seconds`` holds."""
    return max(0.0, scene_seconds - OVERHEAD_SECONDS)


def scene_seconds_for(speech_seconds: float) -> float:
    """The shortest scene that holds ``speech_seconds`` of voice (0 for silence)."""
    return speech_seconds + OVERHEAD_SECONDS if speech_seconds > 0 else 0.0


def voice_or_default(voice: Voice | None, language: str) -> Voice:
    return voice if voice is not None else default_voice(language)


def narration_seconds(text: str, language: str, voice: Voice | None = None) -> float:
    """Seconds ``voice`` (default: the language's default voice) takes to say ``text``."""
    return voice_or_default(voice, language).measure(spoken_form(text, language))


def fit_speed(voice: Voice, spoken: str, room: float, max_speed: float | None = None) -> float | None:
    """The speed at which ``voice`` says ``spoken`` within ``room`` seconds: 1.0 when it fits as it
    is, else faster, up to a pace of ``max_speed`` (``Voice.speed_for_pace``; default: the voice's
    natural limit); None when it cannot."""
    seconds = voice.measure(spoken)
    if seconds <= room + 1e-6:
        return 1.0
    limit = min(voice.max_speed, voice.speed_for_pace(max_speed) if max_speed is not None else voice.max_speed)
    if room <= 0 or limit <= 1.0 or seconds / limit > room * 1.1:
        return None  # no voice says a line much more than ``speed`` times shorter: not worth measuring
    # espeak-ng's seconds fall as 1/speed; a neural voice's less so (Piper's pauses and shortest
    # phonemes barely shrink): aim again from what the voice did, seconds ≈ a + b / speed
    tried = [(1.0, seconds)]
    speed = min(limit, seconds / room * 1.03)
    for _ in range(_FIT_TRIES):
        got = voice.measure(spoken, speed)
        if got <= room + 1e-6:
            return speed
        if speed >= limit - 1e-9:
            return None
        tried.append((speed, got))
        (s1, d1), (s2, d2) = tried[-2], tried[-1]
        b = (d1 - d2) / (1 / s1 - 1 / s2)
        a = d2 - b / s2
        target = room * 0.99 - a
        speed = limit if b <= 0 or target <= 0 else min(limit, max(speed * 1.01, b / target))
    return None


def narration_fits(text: str, language: str, scene_seconds: float, voice: Voice | None = None) -> bool:
    """The bar's test: said with ``voice`` (at most ``BAR_MAX_SPEED`` faster), ``text`` fits its scene."""
    spoken = spoken_form(text, language)
    return not spoken or fit_speed(voice_or_default(voice, language), spoken, speech_room(scene_seconds),
                                   BAR_MAX_SPEED) is not None


@dataclass
class Fit:
    """How a line was spoken: the audio, the spoken form, the speed factor, and whether it fits."""

    speech: Speech
    spoken: str
    speed: float
    fits: bool
    room: float


def speak_line(text: str, language: str, voice: Voice, scene_seconds: float | None = None,
               fit: bool = True) -> Fit:
    """Say ``text`` (its spoken form) with ``voice``. With ``fit`` and a scene length, a line
    longer than the scene's room is said faster, up to the voice's natural limit."""
    spoken = spoken_form(text, language)
    if not spoken:
        return Fit(Speech.silence(), "", 1.0, True, speech_room(scene_seconds) if scene_seconds else float("inf"))
    voice.check_length(spoken)  # over ADREEL_MAX_MEDIA_SECONDS: refused before any synthesis
    room = speech_room(scene_seconds) if scene_seconds else float("inf")
    speed = (fit_speed(voice, spoken, room) if fit and scene_seconds else 1.0) or voice.max_speed
    speech = voice.synthesize(spoken, speed)
    if fit and scene_seconds and not voice.measured and speech.duration > room > 0 and speed < voice.max_speed:
        # the estimate was short for this voice: ask once more, at the speed the real audio says fits
        speed = min(voice.max_speed, speed * speech.duration / room * 1.03)
        speech = voice.synthesize(spoken, speed)
    return Fit(speech, spoken, speed, speech.duration <= room + 1e-6, room)


def speak_to_fit(text: str, language: str, seconds: float, rate_wpm: int = DEFAULT_RATE_WPM) -> tuple[Speech, int]:
    """Speak the spoken form of ``text`` with espeak-ng; if it overruns the room a scene of
    ``seconds`` has for a voice, speak it faster, up to narration.MAX_RATE_WPM.
    Returns the speech and the rate used."""
    voice = EspeakVoice(language, rate_wpm)
    fit = speak_line(text, language, voice, seconds)
    return fit.speech, voice.rate_for(fit.speed)


class Measure:
    """How long lines take to say in one language, with the voice that will say them: what the script
    stage is handed (once) to write, budget and check narration by. The same spoken form, room and fit
    as SceneNarration's."""

    overhead = OVERHEAD_SECONDS
    max_speed = BAR_MAX_SPEED

    def __init__(self, language: str, voice: Voice | None = None):
        self.language = language
        self.voice = voice_or_default(voice, language)
        self.unit = unit_budget(1.0, language)[0]

    def says_something(self, text: str) -> bool:
        return bool(text) and bool(spoken_form(text, self.language))

    def prefetch(self, texts) -> None:
        """Measure ``texts`` together (a neural voice measures a batch faster than one line at a time)."""
        self.voice.measure_many(spoken_form(t, self.language) for t in texts)

    def scene_need(self, text: str) -> float:
        """The shortest scene that holds ``text`` said at the voice's normal pace (0 for nothing to say)."""
        return scene_seconds_for(self.voice.measure(spoken_form(text, self.language))) if text else 0.0

    def overrun(self, text: str, scene_seconds: float) -> tuple[float, float] | None:
        """(seconds to say ``text``, seconds of room) when it does not fit a scene of ``scene_seconds`` even
        ``max_speed`` times faster; None when it fits."""
        spoken = spoken_form(text, self.language)
        room = speech_room(scene_seconds)
        if not spoken or fit_speed(self.voice, spoken, room, BAR_MAX_SPEED) is not None:
            return None
        return self.voice.measure(spoken), room

    def budget(self, scene_seconds: float) -> int:
        """About how many units (``unit``: words, syllables …) a writer may give a scene of ``scene_seconds``."""
        return unit_budget(speech_room(scene_seconds), self.language)[1]

    def describe(self) -> str:
        return ("measured" if self.voice.measured else "estimated") + f" with {self.voice.describe()}"

