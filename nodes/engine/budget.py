"""The per-prompt ledger: what one prompt has reserved of each server ceiling, across all its nodes.

The ceilings in ``limits.py`` (spending, pixel-frames encoded, media seconds decoded or made) are
allowances of a *prompt*, not of a node: five ProviderRender nodes in one prompt share one
``ADREEL_MAX_COST_USD``, six FFmpegAssemble nodes one ``ADREEL_MAX_PIXEL_FRAMES``. Each node
reserves what it is about to use *before* it submits, encodes or decodes anything; a reservation
that would take the prompt over its ceiling is refused with an error naming the variable and how
much of the allowance the prompt has already used. Work that turns out not to happen (a job the
provider refused outright) is released.

One ledger per process (``LEDGER``), keyed by the prompt id the node layer gets from ComfyUI's
executor; a lock makes it safe for scenes rendered concurrently and for worker threads. A prompt's
entries are forgotten when it is no longer running (``Allowance`` is given the ids ComfyUI is
running now) and the ledger never holds more than ``MAX_PROMPTS`` prompts. Without an executor (a
script run) each allowance is a prompt of its own.
"""
from __future__ import annotations

import itertools
import threading
from typing import Callable, Iterable, Optional

from . import limits
from .limits import Ceiling, LimitExceeded

MAX_PROMPTS = 64
_EPS = 1e-9


def usd(x: float) -> str:
    return f"${x:.2f}"


def seconds(x: float) -> str:
    return f"{x:.0f} s"


def pixel_frames(x: float) -> str:
    return f"{x:.3g} pixel-frames"


UNITS: dict[str, Callable[[float], str]] = {
    limits.MAX_COST_USD.env: usd,
    limits.MAX_PIXEL_FRAMES.env: pixel_frames,
    limits.MAX_MEDIA_SECONDS.env: seconds,
}


class PromptLedger:
    """Reserved amounts per prompt id and ceiling; thread-safe."""

    def __init__(self, max_prompts: int = MAX_PROMPTS):
        self._lock = threading.Lock()
        self._used: dict[str, dict[str, float]] = {}  # prompt id → ceiling env → reserved (oldest first)
        self.max_prompts = max_prompts

    def used(self, prompt_id: str, ceiling: Ceiling) -> float:
        with self._lock:
            return self._used.get(prompt_id, {}).get(ceiling.env, 0.0)

    def reserve(self, prompt_id: str, ceiling: Ceiling, amount: float, what: str) -> float:
        """Add ``amount`` to the prompt's use of ``ceiling``, or raise ``LimitExceeded`` (nothing reserved)
        when that would pass the ceiling. Returns the amount reserved."""
        amount = float(amount)
        if not amount >= 0:  # NaN included
            raise LimitExceeded(f"{what}: cannot reserve {amount!r} of {ceiling.env}")
        cap = ceiling.read()
        fmt = UNITS.get(ceiling.env, lambda x: f"{x:g}")
        with self._lock:
            row = self._used.setdefault(prompt_id, {})
            used = row.get(ceiling.env, 0.0)
            if used + amount > cap * (1 + _EPS) + _EPS:
                if not row:
                    self._used.pop(prompt_id, None)
                raise LimitExceeded(
                    f"{what} needs {fmt(amount)}, but this prompt has already used {fmt(used)} of its "
                    f"{fmt(cap)} allowance ({ceiling.env}, per prompt, all its nodes together; "
                    f"{fmt(max(0.0, cap - used))} left). Nothing was started for it: lower what this node "
                    f"asks for, or split the work into separate prompts; only the operator can raise "
                    f"{ceiling.env}.")
            row[ceiling.env] = used + amount
            self._used[prompt_id] = self._used.pop(prompt_id)  # most recently used last
            while len(self._used) > self.max_prompts:
                self._used.pop(next(iter(self._used)))
        return amount

    def release(self, prompt_id: str, ceiling: Ceiling, amount: float) -> None:
        with self._lock:
            row = self._used.get(prompt_id)
            if row is not None and ceiling.env in row:
                row[ceiling.env] = max(0.0, row[ceiling.env] - max(0.0, float(amount or 0.0)))

    def forget(self, prompt_id: str) -> None:
        with self._lock:
            self._used.pop(prompt_id, None)

    def keep_only(self, running: Iterable[str]) -> None:
        """Forget every prompt that is not in ``running`` (the prompts ComfyUI is executing now)."""
        keep = set(running)
        with self._lock:
            for pid in [p for p in self._used if p not in keep]:
                del self._used[pid]

    def prompts(self) -> list[str]:
        with self._lock:
            return list(self._used)


LEDGER = PromptLedger()
_solo = itertools.count()


class Allowance:
    """One prompt's share of one ceiling, as a node sees it."""

    def __init__(self, ceiling: Ceiling, prompt_id: Optional[str] = None,
                 running: Optional[Iterable[str]] = None, ledger: Optional[PromptLedger] = None):
        self.ceiling = ceiling
        self.ledger = LEDGER if ledger is None else ledger
        self.prompt_id = str(prompt_id) if prompt_id is not None else f"solo-{next(_solo)}"
        if running is not None:  # prompts that ended are forgotten, the one asking is kept
            self.ledger.keep_only({*running, self.prompt_id})
        self.fmt = UNITS.get(ceiling.env, lambda x: f"{x:g}")

    @property
    def env(self) -> str:
        return self.ceiling.env

    def cap(self) -> float:
        return self.ceiling.read()

    def used(self) -> float:
        return self.ledger.used(self.prompt_id, self.ceiling)

    def left(self) -> float:
        return max(0.0, self.cap() - self.used())

    def reserve(self, amount: float, what: str) -> float:
        return self.ledger.reserve(self.prompt_id, self.ceiling, amount, what)

    def release(self, amount: float) -> None:
        self.ledger.release(self.prompt_id, self.ceiling, amount)

    def describe_used(self) -> str:
        """"this prompt has already used $0.75 of $1.00 (ADREEL_MAX_COST_USD)"."""
        return f"this prompt has already used {self.fmt(self.used())} of {self.fmt(self.cap())} ({self.env})"
