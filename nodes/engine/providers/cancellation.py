"""Stopping a render: user interrupt, job timeout, or a sibling scene's failure.

``cancel`` given to the engine may be an ``asyncio.Event``, a ``threading.Event``
or a callable returning True when the user interrupted (ComfyUI:
``comfy.model_management.processing_interrupted``). A callable that raises is
treated as an interrupt.
"""
from __future__ import annotations

import asyncio
import threading
import time
from typing import Awaitable, Callable, Optional, TypeVar, Union

T = TypeVar("T")

INTERRUPTED = "interrupted"
TIMEOUT = "timeout"
SIBLING_FAILED = "sibling_failed"

CancelSource = Union[None, asyncio.Event, threading.Event, Callable[[], bool]]

_SLICE = 0.05  # how quickly a sleeping job notices a stop


class Stopped(Exception):
    """Internal: the job must stop for ``reason``; the flow turns it into a user-facing error."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


class Overtime(Exception):
    """Internal: an awaited step ran past its own total time (``JobStop.run(..., seconds=…)``)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        super().__init__(f"over {seconds:g} s")


class RunSignal:
    """Run-wide stop state: the user's cancel source plus 'a sibling failed'."""

    def __init__(self, external: CancelSource = None):
        self._external = external
        self._tripped: Optional[str] = None

    def trip(self, reason: str = SIBLING_FAILED) -> None:
        if self._tripped is None:
            self._tripped = reason

    def reason(self) -> Optional[str]:
        ext = self._external
        if ext is not None:
            try:
                fired = ext.is_set() if hasattr(ext, "is_set") else bool(ext())
            except Exception:
                fired = True
            if fired:
                return INTERRUPTED
        return self._tripped


class JobStop:
    """One job's view: the run signal plus the job's own deadline."""

    def __init__(self, signal: RunSignal, timeout: Optional[float]):
        self.signal = signal
        self.started = time.monotonic()
        self.deadline = None if timeout is None else self.started + timeout

    def reason(self) -> Optional[str]:
        r = self.signal.reason()
        if r:
            return r
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return TIMEOUT
        return None

    def raise_if_stopped(self) -> None:
        r = self.reason()
        if r:
            raise Stopped(r)

    def remaining(self) -> Optional[float]:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, waking within ~50 ms to raise ``Stopped`` when asked to stop."""
        end = time.monotonic() + max(0.0, seconds)
        while True:
            self.raise_if_stopped()
            left = end - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(_SLICE, left))

    async def run(self, aw: Awaitable[T], seconds: Optional[float] = None) -> T:
        """Await ``aw``, but stop it at once (cancelled, within ~50 ms) when the job must stop or ``seconds``
        pass: raises ``Stopped`` (interrupt, job timeout, a sibling's failure) or ``Overtime``.

        What a socket read does not notice — a server dripping one byte a minute, a user pressing
        Interrupt during a 60 s request — this does. The awaited task is cancelled and awaited, so its
        own clean-up (a ``.part`` file removed) has run when this returns.
        """
        task = asyncio.ensure_future(aw)
        end = None if seconds is None else time.monotonic() + max(0.0, seconds)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=_SLICE)
                if done:
                    return task.result()
                reason = self.reason()
                if reason:
                    raise Stopped(reason)
                if end is not None and time.monotonic() >= end:
                    raise Overtime(seconds)
        finally:
            if not task.done():
                task.cancel()
                try:
                    await task
                except BaseException:  # its own cancellation or failure: the stop is what we report
                    pass
