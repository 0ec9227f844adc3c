"""The script stage's flow, top to bottom: plan → write → check → repair → fall back.

* plan.py makes the brief's one plan; speech enters once, as the measure of the
  voice that will say the lines; quality.Bar holds both (what a script must meet);
* template.py writes that plan, or llm.Conversation asks the LLM for it (the
  answer's JSON Schema from schema.py; the context budget is the conversation's);
* schema.py reads the answer, the bar checks it; what misses goes back to the
  LLM with the problems (bounded tries), else the template writes the script.

Every way out gives a valid Script, and says what happened in ``Script.source``
and ``Script.notes``: the model that wrote it, the repairs it needed, or the
reason the template took over. Only what the user must fix (a model the server
lacks, a refused key, a bad setting) is an error.
"""
from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field
from typing import Optional

from pydantic import ValidationError

from .. import limits
from ..cloud.redaction import redact
from ..models import AdScript, AdReelInputError, Brief, ReferenceStyle, Script
from ..speech.fit import Measure
from ..speech.voice import Voice
from .backends import LLMAuthError, LLMConfigError, LLMModelMissing
from .llm import Conversation, Fallback, LLMTry, ScriptOptions
from .plan import Plan, dice_for, plan_for
from .quality import Bar, Issue
from .schema import AnswerProblem, edit_bound_issues, json_schema, parse_answer, to_script, validation_issues
from .template import write_template

BACKENDS = ("ollama", "openai", "template")


@dataclass
class Generation:
    script: Script
    bar: Bar
    fell_back: bool = False
    reason: Optional[str] = None
    attempts: list[LLMTry] = field(default_factory=list)


def bar_for(brief: Brief, reference: ReferenceStyle | None = None, shot_seconds: float = 0.0,
            voice: Voice | None = None, plan: Plan | None = None) -> Bar:
    """What a script for ``brief`` must meet: its plan (made here unless given), its narration measured with
    ``voice`` (default: the voice SceneNarration speaks the language with). Speech enters the stage here."""
    plan = plan or plan_for(brief, reference, shot_seconds)
    return Bar(brief, plan, Measure(brief.language, voice))


def write_template_script(brief: Brief, seed: int = 0, voice: Voice | None = None) -> Script:
    """The template's script for ``brief`` and ``seed`` alone (the standard pacing), as ScriptLLM's template
    backend writes it."""
    return template_generation(brief, ScriptOptions(seed=seed), voice).script


def _prepare(brief: Brief, options: ScriptOptions, voice: Voice | None = None) -> tuple[Bar, random.Random]:
    """The bar (plan and measure) of this brief and variant, and the variant's dice after the plan's rolls."""
    dice = dice_for(brief, options.seed)
    return bar_for(brief, voice=voice, plan=plan_for(brief, options.reference, options.shot_seconds, dice)), dice


def template_generation(brief: Brief, options: ScriptOptions, voice: Voice | None = None) -> Generation:
    """The template's script: plan → write → check (what misses the bar is noted, never refused)."""
    bar, dice = _prepare(brief, options, voice)
    script = write_template(brief, bar.plan, dice, bar.measure)
    return Generation(_with_notes(script, bar.plan.notes + _bar_notes(script, bar)), bar)


def _with_notes(script: Script, notes: list[str]) -> Script:
    # notes quote servers and answers: they travel into the node's ui, the manifest and the history
    notes = [redact(n) for n in notes]
    return script.model_copy(update={"notes": list(dict.fromkeys(notes + list(script.notes)))})


def _read(text: str, bar: Bar, label: str) -> tuple[Script, list[str], list[Issue]]:
    """The answer as a Script, the repairs needed to find it, and where it misses the bar."""
    data, repairs = parse_answer(text)
    script = to_script(data, bar.brief, label)
    return script, repairs, bar.check(script)


async def generate_script(brief: Brief, llm=None, options: ScriptOptions | None = None) -> Generation:
    """The script for ``brief``: plan → write (``llm``, an Ollama / OpenAI backend, or, when None, the
    template) → check → repair → fall back to the template."""
    options = options or ScriptOptions()
    if llm is None:
        return template_generation(brief, options)
    bar, dice = _prepare(brief, options)
    conversation = Conversation(bar, llm, json_schema(bar.plan, portable=getattr(llm, "portable_schema", False)),
                                options)
    try:
        await conversation.open()
        for number in range(1, conversation.max_attempts + 1):
            completion = await conversation.ask(number)
            if completion is None:
                continue
            try:
                # off the event loop, so an Interrupt is seen while a long answer is read and measured (the
                # parse is linear and the answer capped, so the thread ends soon after)
                script, repairs, issues = await conversation.wait(
                    asyncio.to_thread(_read, completion.text, bar, llm.label))
            except AnswerProblem as p:
                issues, repairs = p.issues, []
            if completion.truncated and issues:
                issues = [Issue("answer", "was cut off at the model's output limit: write shorter texts")] + issues
            if not issues:
                notes = bar.plan.notes + conversation.answered(number, repairs)
                return Generation(_with_notes(script, notes), bar, attempts=conversation.tries)
            await conversation.repair(number, completion.text, issues)
        raise Fallback(conversation.reason)
    except Fallback as f:
        script = write_template(brief, bar.plan, dice, bar.measure)
        notes = [f"fallback: {f.reason} — wrote the template script instead"] + bar.plan.notes + conversation.notes
        conversation.say(f"fell back to the template: {f.reason}")
        return Generation(_with_notes(script, notes + _bar_notes(script, bar)), bar, fell_back=True,
                          reason=f.reason, attempts=conversation.tries)


def _bar_notes(script: Script, bar: Bar) -> list[str]:
    return [f"below the bar: {i}" for i in bar.check(script)]


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
def parse_edited_script(text: str, brief: Brief, plan: Plan, field_name: str = "edited_script") -> Script:
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
    issues = bar_for(brief, plan=plan).check(script)
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
