"""Brief → script through an LLM: ask, validate, send the errors back (bounded), else the template.

Every way out gives a valid Script, and says what happened in ``Script.source``
and ``Script.notes``: the model that wrote it, the repairs it needed, or the
reason the template took over. Only what the user must fix (a model the server
lacks, a refused key, a bad setting) is an error.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Optional

from pydantic import ValidationError

from .. import limits
from ..brand.knowledge import fit_passages, passages_note
from ..cloud.redaction import redact
from ..models import AdScript, AdReelInputError, Brief, ReferenceStyle, Script
from .backends import (LLMAuthError, LLMConfigError, LLMContextExceeded, LLMModelMissing, LLMRejected,
                       LLMUnavailable)
from .context import budget_for, estimate_messages
from .prompting import SYSTEM_COMPACT, messages as build_messages, repair_messages
from .quality import Issue, Pacing, check_script, plan_pacing
from .schema import AnswerProblem, edit_bound_issues, json_schema, parse_answer, to_script, validation_issues
from .template import write_template_script

BACKENDS = ("ollama", "openai", "template")
MAX_RETRY_WAIT = 10.0


class GenerationCancelled(Exception):
    pass


@dataclass
class Attempt:
    number: int
    outcome: str                      # ok | invalid | unavailable | rejected | too_long
    seconds: float
    issues: list[str] = field(default_factory=list)


@dataclass
class Generation:
    script: Script
    pacing: Pacing
    fell_back: bool = False
    reason: Optional[str] = None
    attempts: list[Attempt] = field(default_factory=list)


def template_for(brief: Brief, seed: int, pacing: Pacing) -> Script:
    """The template's script, following ``pacing`` (auto pacing = the template's own plan)."""
    if pacing.source == "auto":
        return write_template_script(brief, seed=seed)
    return write_template_script(brief, seed=seed, structure=pacing.structure, shot_seconds=pacing.shot_seconds)


def _with_notes(script: Script, notes: list[str], source: str | None = None) -> Script:
    # notes quote servers and answers: they travel into the node's ui, the manifest and the history
    notes = [redact(n) for n in notes]
    return script.model_copy(update={"notes": list(dict.fromkeys(notes + list(script.notes))),
                                     **({"source": source} if source else {})})


def _bar_notes(script: Script, brief: Brief, pacing: Pacing) -> list[str]:
    return [f"below the bar: {i}" for i in check_script(script, brief, pacing)]


async def _await(coro: Awaitable, cancelled: Callable[[], bool] | None):
    """Await ``coro``, giving up (and cancelling it) as soon as ``cancelled()`` says so."""
    if cancelled is None:
        return await coro
    task = asyncio.ensure_future(coro)
    while True:
        done, _ = await asyncio.wait({task}, timeout=0.2)
        if done:
            return task.result()
        if cancelled():
            task.cancel()
            raise GenerationCancelled()


def _read_answer(text: str, brief: Brief, label: str, pacing: Pacing):
    data, repairs = parse_answer(text)
    script = to_script(data, brief, label)
    return script, repairs, check_script(script, brief, pacing)


def _summary(issues: list[Issue] | list[str], limit: int = 3) -> str:
    items = [str(i) for i in issues]
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return "; ".join(items[:limit]) + more


async def generate_script(brief: Brief, backend=None, *, seed: int = 0, temperature: float = 0.8,
                          max_attempts: int = 3, reference: ReferenceStyle | None = None, shot_seconds: float = 0.0,
                          cancelled: Callable[[], bool] | None = None,
                          progress: Callable[[str], None] | None = None) -> Generation:
    """The script for ``brief``: from ``backend`` (an Ollama / OpenAI backend) or, when None, the template."""
    pacing = plan_pacing(brief, reference, shot_seconds)
    say = progress or (lambda _msg: None)
    if backend is None:
        script = template_for(brief, seed, pacing)
        return Generation(_with_notes(script, pacing.notes + _bar_notes(script, brief, pacing)), pacing)

    schema = json_schema(pacing, portable=getattr(backend, "portable_schema", False))
    budget = budget_for(getattr(backend, "context_size", 0), schema)
    count = getattr(backend, "count_tokens", None)

    async def tokens(msgs: list[dict]) -> int:
        return await _await(count(msgs), cancelled) if count else estimate_messages(msgs)

    attempts: list[Attempt] = []
    fixed: list[str] = []
    notes_ctx: list[str] = []
    # the brand kit's passages (BrandKnowledge): as many as fit the context with the answer's room
    fitted = await fit_passages(brief, lambda b, c: build_messages(b, pacing, schema, reference, seed, compact=c),
                                budget, tokens)
    notes_ctx += [n for n in [passages_note(brief, fitted)] if n]
    brief = fitted
    reason = None
    max_attempts = max(1, int(max_attempts))
    first, compact = await _first_request(brief, pacing, schema, reference, seed, budget, tokens)
    msgs = first
    if compact:
        notes_ctx.append(f"context: the full prompt does not fit context_size {budget.context_size} with room "
                         "for the answer: sent the compact prompt")
    n = 0
    while n < max_attempts:
        n += 1
        prompt_tokens = await tokens(msgs) if budget else 0
        if budget and not budget.fits(prompt_tokens):
            reason = ((reason + "; the repair ") if reason else "the request ") + (
                f"does not fit the model's context ({budget.describe(prompt_tokens)}): raise context_size "
                "(and the server's context, llama-server -c) or use a larger model")
            break
        say(f"{backend.label}: writing the script (try {n}/{max_attempts})")
        t0 = time.monotonic()
        try:
            completion = await _await(backend.complete(msgs, schema, seed=seed, temperature=temperature,
                                                       **({"max_tokens": budget.max_tokens(prompt_tokens)}
                                                          if budget else {})), cancelled)
        except LLMContextExceeded as e:
            # never sent again as it was: adopt the server's real context, shrink once, else the template
            attempts.append(Attempt(n, "too_long", time.monotonic() - t0, [str(e)]))
            server_ctx = e.n_ctx or (budget.context_size if budget else 0)
            smaller = server_ctx if (not budget or server_ctx < budget.context_size) else budget.context_size * 3 // 4
            budget = budget_for(smaller, schema)
            shrunk, compact = await _first_request(brief, pacing, schema, reference, seed, budget, tokens,
                                                   force_compact=True)
            figures = f" (the server's context is {e.n_ctx} tokens)" if e.n_ctx else ""
            if shrunk != msgs:
                notes_ctx.append(f"context: {backend.label} refused a request as too long for its context"
                                 f"{figures}: sent the compact prompt within {budget.context_size} tokens")
                msgs = first = shrunk
                n -= 1  # the shrunk request is the same try
                continue
            reason = (f"{e}{figures}; the request cannot be made smaller: raise the server's context "
                      "(llama-server -c) and context_size")
            break
        except LLMUnavailable as e:
            attempts.append(Attempt(n, "unavailable", time.monotonic() - t0, [str(e)]))
            reason = str(e)
            if e.transient and n < max_attempts:
                wait = min(MAX_RETRY_WAIT, e.retry_after if e.retry_after is not None else 1.0)
                say(f"{backend.label}: {e} — trying again in {wait:g} s")
                await _await(asyncio.sleep(wait), cancelled)
                continue
            break
        except LLMRejected as e:
            attempts.append(Attempt(n, "rejected", time.monotonic() - t0, [str(e)]))
            reason = str(e)
            break
        try:
            # off the event loop, so an Interrupt is seen while a long answer is read (the parse is linear
            # and the answer capped, so the thread ends soon after)
            script, repairs, issues = await _await(
                asyncio.to_thread(_read_answer, completion.text, brief, backend.label, pacing), cancelled)
        except AnswerProblem as p:
            issues, repairs = p.issues, []
        if completion.truncated and issues:
            issues = [Issue("answer", "was cut off at the model's output limit: write shorter texts")] + issues
        if not issues:
            attempts.append(Attempt(n, "ok", time.monotonic() - t0))
            notes = list(pacing.notes) + notes_ctx
            if fixed:
                notes.append(f"repaired: {backend.label} fixed its answer on try {n} of {max_attempts} "
                             f"after: {_summary(fixed)}")
            notes += [f"repaired: {r}" for r in repairs]
            return Generation(_with_notes(script, notes), pacing, attempts=attempts)
        attempts.append(Attempt(n, "invalid", time.monotonic() - t0, [str(i) for i in issues]))
        fixed += [str(i) for i in issues if str(i) not in fixed]
        reason = f"{backend.label} missed the brief in {n} tries: {_summary(issues)}"
        say(f"{backend.label}: {_summary(issues, 2)} — asking for a fix")
        firsts = [first]
        if budget is not None and first[0]["content"] != SYSTEM_COMPACT:
            firsts.append(build_messages(brief, pacing, schema, reference, seed, compact=True))
        msgs = await _repair_request(firsts, completion.text, issues, brief, budget, tokens)

    script = template_for(brief, seed, pacing)
    notes = [f"fallback: {reason} — wrote the template script instead"] + pacing.notes + notes_ctx
    notes += _bar_notes(script, brief, pacing)
    say(f"fell back to the template: {reason}")
    return Generation(_with_notes(script, notes), pacing, fell_back=True, reason=reason, attempts=attempts)


async def _first_request(brief, pacing, schema, reference, seed, budget, tokens, force_compact: bool = False):
    """(messages, compact): the full prompt when it fits ``budget`` (or there is none), else the compact one
    (which the caller checks against the budget too)."""
    if budget is None:
        return build_messages(brief, pacing, schema, reference, seed, compact=force_compact), force_compact
    if not force_compact:
        full = build_messages(brief, pacing, schema, reference, seed)
        if budget.fits(await tokens(full)):
            return full, False
    return build_messages(brief, pacing, schema, reference, seed, compact=True), True


async def _repair_request(firsts, answer, issues, brief, budget, tokens) -> list[dict]:
    """The next try's messages: a first request + the last answer + its problems — never the whole history,
    so a repair is as long as one exchange. The first of these that fits: the request as sent with the answer,
    without it, then the compact request with and without it (the caller checks the last one too)."""
    msgs: list[dict] = []
    for first in firsts:
        for shown in (answer, None):
            msgs = repair_messages(first, shown, issues, brief)
            if budget is None or budget.fits(await tokens(msgs)):
                return msgs
    return msgs


def raise_for_user(err: Exception) -> None:
    """Turn what only the user can fix into an AdReelInputError naming the widget."""
    if isinstance(err, LLMModelMissing):
        raise AdReelInputError("openai_model" if err.where.startswith("the OpenAI") else "model", str(err)) from None
    if isinstance(err, LLMAuthError):
        raise AdReelInputError("api_key_env", str(err)) from None
    if isinstance(err, LLMConfigError):
        raise AdReelInputError(err.field, str(err)) from None
    raise err


# ----------------------------------------------------------------- editing
def parse_edited_script(text: str, brief: Brief, pacing: Pacing, field_name: str = "edited_script") -> Script:
    """A script edited by hand (the node's script JSON, changed), checked like any other.

    Errors name the scene and field: ``edited_script.scenes[2].narration: …``.
    Scenes may give ``start``/``end`` (as the node outputs them) or ``duration``.
    """
    limit = limits.MAX_TEXT_CHARS.read()
    if len(text or "") > limit:
        raise AdReelInputError(field_name, f"is {len(text)} characters; a script is at most {limit} "
                                           "(ADREEL_MAX_TEXT_CHARS)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise AdReelInputError(field_name, f"is not JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except RecursionError:
        raise AdReelInputError(field_name, "is nested too deeply to be a script") from None
    if isinstance(data, dict) and isinstance(data.get("script"), dict):
        data = data["script"]  # the whole ADREEL_SCRIPT (brief + script)
    if not isinstance(data, dict) or not isinstance(data.get("scenes"), list):
        raise AdReelInputError(field_name, "must be a script object with a \"scenes\" list (the node's script_json)")

    def fail(issues: list[Issue]):
        first = issues[0]
        raise AdReelInputError(f"{field_name}.{first.field}",
                               "; ".join(f"{field_name}.{i}" for i in issues)) from None

    scenes = data["scenes"]
    bounds = edit_bound_issues(data)
    if bounds:
        fail(bounds)
    if scenes and all(isinstance(s, dict) and "duration" in s and "end" not in s for s in scenes):
        try:
            script = to_script({"title": data.get("title") or f"{brief.brand} — {brief.product}"[:200], "scenes": scenes},
                               brief, "edited")
        except AnswerProblem as p:
            fail(p.issues)
    else:
        body = {k: v for k, v in data.items() if k not in ("source", "notes")}
        body.setdefault("language", brief.language)
        body.setdefault("total_duration", brief.duration_seconds)
        for i, s in enumerate(scenes):
            if isinstance(s, dict):
                s.setdefault("index", i)
        try:
            script = Script.model_validate(body)
        except ValidationError as e:
            fail(validation_issues(e, root="scenes"))
    issues = check_script(script, brief, pacing)
    if script.language.split("-")[0] != brief.base_language:
        issues.insert(0, Issue("language", f"is not the brief's language ({brief.base_language})"))
    if issues:
        fail(issues)
    return script.model_copy(update={"source": "edited", "language": brief.language,
                                     "notes": ["edited by hand: this script replaces the generated one"]})


def script_summary(ad: AdScript) -> str:
    """What ScriptLLM shows: a fallback first, then the title line, the notes and one line a scene."""
    s = ad.script
    lines = []
    fallback = next((n for n in s.notes if n.startswith("fallback:")), None)
    if fallback:
        lines.append("FELL BACK TO THE TEMPLATE — " + fallback[len("fallback:"):].strip())
    lines.append(f"{s.title} — {s.total_duration:g}s, {len(s.scenes)} scenes, {s.language}, source: {s.source}")
    lines += [f"note: {n}" for n in s.notes if n is not fallback]
    for sc in s.scenes:
        lines.append(f"[{sc.start:5.2f}–{sc.end:5.2f}] {sc.segment:<8} {sc.on_screen_text} | {sc.narration}")
    return "\n".join(lines)
