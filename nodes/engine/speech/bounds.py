"""Bounds on making speech: what Interrupt, the wall-time ceiling and the media-length ceiling stop.

Synthesis is bounded three ways, whatever the voice:

* before it starts, a line whose estimated length (``Voice.check_length``) is over
  ``ADREEL_MAX_MEDIA_SECONDS`` is refused;
* while it runs, every voice calls :func:`check_bounds` between its chunks (sentences, or while its
  synthesis process runs): a run inside :func:`speech_bounds` stops when the node layer's
  ``interrupted()`` says so (ComfyUI's Interrupt; the engine never imports ComfyUI) or after
  ``ADREEL_MAX_SYNTH_SECONDS``; the audio made so far is counted against the media-length ceiling too;
* espeak-ng runs as a child process with an address-space ceiling (``ADREEL_MAX_SYNTH_BYTES``), and
  Piper says a line a bounded chunk at a time, so memory stays flat in the length of the text.
"""
from __future__ import annotations

import contextlib
import contextvars
import time
from dataclasses import dataclass
from typing import Callable, Optional

from .. import limits
from ..models import AdReelInputError


class SpeechStopped(RuntimeError):
    """The run was interrupted while a voice spoke (the node layer turns it into ComfyUI's interrupt)."""


@dataclass
class SpeechBounds:
    interrupted: Optional[Callable[[], bool]]
    deadline: float      # time.monotonic() past which synthesis stops
    seconds: float       # ADREEL_MAX_SYNTH_SECONDS, for the message


_BOUNDS: contextvars.ContextVar[Optional[SpeechBounds]] = contextvars.ContextVar("adreel_speech_bounds",
                                                                                 default=None)


@contextlib.contextmanager
def speech_bounds(interrupted: Optional[Callable[[], bool]] = None):
    """Speech made inside the block stops when ``interrupted()`` says so (the node layer passes ComfyUI's
    interrupt flag; the engine never imports ComfyUI) or when it has run ADREEL_MAX_SYNTH_SECONDS."""
    seconds = limits.MAX_SYNTH_SECONDS.read()
    token = _BOUNDS.set(SpeechBounds(interrupted, time.monotonic() + seconds, seconds))
    try:
        yield
    finally:
        _BOUNDS.reset(token)


def check_bounds(started: float) -> None:
    """Raise when the run was interrupted, or when synthesis ran past ADREEL_MAX_SYNTH_SECONDS (counted
    from :func:`speech_bounds`, else from ``started``, the ``time.monotonic()`` this synthesis began:
    never unlimited). Voices call this between chunks and while a synthesis process runs."""
    bounds = _BOUNDS.get()
    if bounds is not None and bounds.interrupted is not None and bounds.interrupted():
        raise SpeechStopped("interrupted")
    seconds = bounds.seconds if bounds is not None else limits.MAX_SYNTH_SECONDS.read()
    deadline = bounds.deadline if bounds is not None else started + seconds
    if time.monotonic() > deadline:
        raise AdReelInputError("text", f"speaking the narration took longer than the server allows "
                                       f"({seconds:g} s, {limits.MAX_SYNTH_SECONDS.env})")


def media_seconds_ceiling() -> float:
    return limits.MAX_MEDIA_SECONDS.read()


def media_length_problem(seconds: float, what: str = "the narration") -> AdReelInputError:
    ceiling = media_seconds_ceiling()
    return AdReelInputError("text", f"{what} would last about {seconds:.0f} s, more than the server allows "
                                    f"({ceiling:g} s, {limits.MAX_MEDIA_SECONDS.env}); shorten the text")
