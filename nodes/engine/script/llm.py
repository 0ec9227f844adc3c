"""The conversation with an LLM about one script: the first request, the repairs, the context budget.

A :class:`Conversation` is handed the brief's bar (its plan, its measure) and
the answer's JSON Schema by the flow (generate.py), and owns everything about
talking to the model: which prompt fits ``context_size`` (context.py), when a
request too long for the server is sent again smaller, when an unavailable
server is tried again, how a repair is worded so that it never grows. When the
model cannot give a script to use, :class:`Fallback` says why, and the flow
lets the template write it.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from typing import Awaitable, Callable

from ..brand.knowledge import fit_passages, passages_note
from ..models import ReferenceStyle
from .backends import Completion, LLMContextExceeded, LLMRejected, LLMUnavailable
from .context import answer_cap, budget_for, estimate_messages, max_scenes
from .prompting import SYSTEM_COMPACT, messages as build_messages, repair_messages
from .quality import Bar, Issue

MAX_RETRY_WAIT = 10.0


class GenerationCancelled(Exception):
    pass


class Fallback(Exception):
    """The LLM gave no script to use; ``reason`` says why (the template writes the script)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class ScriptOptions:
    """How a script is asked for: the variant, the LLM's settings, the tries, the pacing's inputs, the hooks."""

    seed: int = 0
    temperature: float = 0.8
    max_attempts: int = 3
    reference: ReferenceStyle | None = None
    shot_seconds: float = 0.0
    cancelled: Callable[[], bool] | None = None
    progress: Callable[[str], None] | None = None


@dataclass
class LLMTry:
    """One request to the LLM and what became of it."""

    number: int
    outcome: str                      # ok | invalid | unavailable | rejected | too_long
    seconds: float
    issues: list[str] = field(default_factory=list)


def summary(issues: list[Issue] | list[str], limit: int = 3) -> str:
    items = [str(i) for i in issues]
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return "; ".join(items[:limit]) + more


class Conversation:
    """Asks ``llm`` for the script ``bar`` describes, in answers that follow ``schema``; repairs what missed."""

    def __init__(self, bar: Bar, llm, schema: dict, options: ScriptOptions):
        self.bar, self.llm, self.schema, self.options = bar, llm, schema, options
        self.label = llm.label
        self.max_attempts = max(1, int(options.max_attempts))
        self.budget = budget_for(getattr(llm, "context_size", 0), schema)
        self.answer_cap = answer_cap(max_scenes(schema))
        self.tries: list[LLMTry] = []
        self.notes: list[str] = []    # what the context made of the requests
        self.reason: str | None = None
        self._fixed: list[str] = []
        self._first: list[dict] = []
        self._msgs: list[dict] = []
        self._t0 = 0.0

    def say(self, message: str) -> None:
        if self.options.progress:
            self.options.progress(message)

    async def wait(self, awaitable: Awaitable):
        """Await ``awaitable``, giving up (and cancelling it) as soon as the user cancels."""
        cancelled = self.options.cancelled
        if cancelled is None:
            return await awaitable
        task = asyncio.ensure_future(awaitable)
        while True:
            done, _ = await asyncio.wait({task}, timeout=0.2)
            if done:
                return task.result()
            if cancelled():
                task.cancel()
                raise GenerationCancelled()

    async def _tokens(self, msgs: list[dict]) -> int:
        count = getattr(self.llm, "count_tokens", None)
        counted = await self.wait(count(msgs)) if count else None
        return counted if counted is not None else estimate_messages(msgs)

    def _messages(self, compact: bool) -> list[dict]:
        return build_messages(self.bar, self.schema, self.options.reference, self.options.seed, compact=compact)

    async def _first_request(self, force_compact: bool = False) -> tuple[list[dict], bool]:
        """(messages, compact): the full prompt when it fits the budget (or there is none), else the compact
        one (which :meth:`ask` checks against the budget too)."""
        if self.budget is None:
            return self._messages(force_compact), force_compact
        if not force_compact:
            full = self._messages(False)
            if self.budget.fits(await self._tokens(full)):
                return full, False
        return self._messages(True), True

    async def open(self) -> None:
        # the brand kit's passages (BrandKnowledge): as many as fit the context with the answer's room
        before = self.bar.brief
        self.bar.brief = await fit_passages(before, lambda brief, compact: build_messages(
            replace(self.bar, brief=brief), self.schema, self.options.reference, self.options.seed,
            compact=compact), self.budget, self._tokens)
        self.notes += [n for n in [passages_note(before, self.bar.brief)] if n]
        self._first, compact = await self._first_request()
        self._msgs = self._first
        if compact:
            self.notes.append(f"context: the full prompt does not fit context_size {self.budget.context_size} "
                              "with room for the answer: sent the compact prompt")

    def _fail(self, number: int, outcome: str, error: Exception) -> None:
        self.tries.append(LLMTry(number, outcome, time.monotonic() - self._t0, [str(error)]))
        if outcome != "too_long":  # a request sent again smaller is no reason yet
            self.reason = str(error)

    async def ask(self, number: int) -> Completion | None:
        """The model's answer on try ``number``; None when the server was unavailable for a moment (waited
        for: the next try may ask again). Raises :class:`Fallback` when no try can give a script."""
        while True:
            budget = self.budget
            prompt_tokens = await self._tokens(self._msgs) if budget else 0
            if budget and not budget.fits(prompt_tokens):
                self.reason = ((self.reason + "; the repair ") if self.reason else "the request ") + (
                    f"does not fit the model's context ({budget.describe(prompt_tokens)}): raise context_size "
                    "(and the server's context, llama-server -c) or use a larger model")
                raise Fallback(self.reason)
            self.say(f"{self.label}: writing the script (try {number}/{self.max_attempts})")
            self._t0 = time.monotonic()
            try:
                return await self.wait(self.llm.complete(
                    self._msgs, self.schema, seed=self.options.seed, temperature=self.options.temperature,
                    answer_cap=self.answer_cap,
                    **({"max_tokens": budget.max_tokens(prompt_tokens)} if budget else {})))
            except LLMContextExceeded as e:
                self._fail(number, "too_long", e)
                if not await self._shrink(e):
                    raise Fallback(self.reason) from None
            except LLMUnavailable as e:
                self._fail(number, "unavailable", e)
                if not (e.transient and number < self.max_attempts):
                    raise Fallback(self.reason) from None
                wait = min(MAX_RETRY_WAIT, e.retry_after if e.retry_after is not None else 1.0)
                self.say(f"{self.label}: {e} — trying again in {wait:g} s")
                await self.wait(asyncio.sleep(wait))
                return None
            except LLMRejected as e:
                self._fail(number, "rejected", e)
                raise Fallback(self.reason) from None

    async def _shrink(self, e: LLMContextExceeded) -> bool:
        """Never send again what was refused as too long: adopt the server's real context and go compact
        (the same try). False when the request cannot be made smaller."""
        budget = self.budget
        server_ctx = e.n_ctx or (budget.context_size if budget else 0)
        smaller = server_ctx if (not budget or server_ctx < budget.context_size) else budget.context_size * 3 // 4
        self.budget = budget_for(smaller, self.schema)
        shrunk, _ = await self._first_request(force_compact=True)
        figures = f" (the server's context is {e.n_ctx} tokens)" if e.n_ctx else ""
        if shrunk == self._msgs:
            self.reason = (f"{e}{figures}; the request cannot be made smaller: raise the server's context "
                           "(llama-server -c) and context_size")
            return False
        self.notes.append(f"context: {self.label} refused a request as too long for its context"
                          f"{figures}: sent the compact prompt within {self.budget.context_size} tokens")
        self._msgs = self._first = shrunk
        return True

    def answered(self, number: int, repairs: list[str]) -> list[str]:
        """Try ``number``'s answer met the bar: record it; the notes on how it was reached."""
        self.tries.append(LLMTry(number, "ok", time.monotonic() - self._t0))
        notes = list(self.notes)
        if self._fixed:
            notes.append(f"repaired: {self.label} fixed its answer on try {number} of {self.max_attempts} "
                         f"after: {summary(self._fixed)}")
        return notes + [f"repaired: {r}" for r in repairs]

    async def repair(self, number: int, answer: str, issues: list[Issue]) -> None:
        """Try ``number``'s ``answer`` missed the bar: the next request is a first request + that answer + its
        problems — never the whole history, so a repair is as long as one exchange. The first that fits: the
        request as sent with the answer, without it, then the compact request with and without it (:meth:`ask`
        checks the last one too)."""
        self.tries.append(LLMTry(number, "invalid", time.monotonic() - self._t0, [str(i) for i in issues]))
        self._fixed += [str(i) for i in issues if str(i) not in self._fixed]
        self.reason = f"{self.label} missed the brief in {number} tries: {summary(issues)}"
        self.say(f"{self.label}: {summary(issues, 2)} — asking for a fix")
        firsts = [self._first]
        if self.budget is not None and self._first[0]["content"] != SYSTEM_COMPACT:
            firsts.append(self._messages(True))
        for first in firsts:
            for shown in (answer, None):
                self._msgs = repair_messages(first, shown, issues, self.bar.brief)
                if self.budget is None or self.budget.fits(await self._tokens(self._msgs)):
                    return
