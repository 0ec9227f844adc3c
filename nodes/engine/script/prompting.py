"""The messages sent to an LLM: the brief, its plan and bar (quality.Bar: read, never worked out here),
the rules, the fixes."""
from __future__ import annotations

import json

from ..brand.rules import prompt_lines as kit_lines
from ..models import Brief, ReferenceStyle
from .quality import Bar, Issue

SYSTEM = (
    "You are a senior copywriter and director of short video ads. You write timed scripts that sell: "
    "a hook in the first seconds, one clear idea per scene, concrete visuals, and a call to action at the end. "
    "You answer with exactly one JSON object that follows the JSON Schema you are given: no prose, no "
    "markdown, no code fences."
)


def _brief_lines(bar: Bar) -> list[str]:
    brief = bar.brief
    lines = [
        f"- brand: {brief.brand}",
        f"- product: {brief.product}",
        f"- audience: {brief.audience or 'general'}",
        f"- goal: {brief.goal or 'sell the product'}",
        f"- tone: {brief.tone}",
        f"- length: {brief.duration_seconds:g} seconds",
        f"- aspect ratio: {brief.aspect_ratio}",
        f"- language: {bar.language_name} ({brief.language})",
        f"- call to action (CTA): {brief.cta}",
        f"- brand colours: {', '.join(brief.brand_colors)}",
    ]
    if brief.channels:
        lines.append(f"- channels: {', '.join(brief.channels)}")
    if brief.price:
        lines.append(f"- price: {brief.price}")
    if brief.description:
        lines.append(f"- product description: {brief.description}")
    return lines


def _pacing_lines(bar: Bar) -> list[str]:
    plan, unit = bar.plan, bar.unit
    lo, hi = plan.count_range
    if lo == hi:
        head = f"Write exactly {lo} scenes, in this order and with these durations (seconds):"
    else:
        head = (f"Write {lo} to {hi} scenes. This plan of {plan.scene_count} is a good start "
                f"(segments and seconds; adjust within the range if the story needs it):")
    lines = [head]
    for i, (seg, sec, budget) in enumerate(zip(plan.structure, plan.shot_seconds, bar.budgets)):
        lines.append(f"  {i + 1}. {seg}: {sec:.2f} s — narration at most {budget} {unit}")
    lines.append(f"The durations must add up to exactly {plan.duration:g} seconds.")
    lines.append("Each narration is measured with the voice that reads it (numbers, prices, phone numbers and "
                 "URLs as they are said): keep each scene's narration within its budget (shorter is fine).")
    return lines


def _reference_lines(ref: ReferenceStyle | None) -> list[str]:
    if ref is None:
        return []
    lines = [f"The pacing comes from a reference ad: {ref.shot_count} shots in {ref.duration_seconds:g} s, "
             f"mean shot {ref.mean_shot_seconds:.2f} s, median {ref.median_shot_seconds:.2f} s."]
    if ref.structure:
        lines.append(f"Its structure: {', '.join(ref.structure)}.")
    if ref.tone:
        lines.append(f"Its tone: {ref.tone}.")
    return lines


def user_prompt(bar: Bar, schema: dict, reference: ReferenceStyle | None = None, seed: int = 0) -> str:
    brief, lang = bar.brief, bar.language_name
    parts = [
        "Write the script of a short video ad for this brief:",
        *_brief_lines(bar),
        "",
        *_pacing_lines(bar),
        *_reference_lines(reference),
        *kit_lines(brief),
        "",
        "Rules:",
        f"- narration and on_screen_text are in {lang}; image_prompt, negative_prompt and visual_direction "
        "are in English (they drive an image model).",
        "- the first scene is the hook; the last scene is the CTA, and its on_screen_text is exactly the CTA: "
        f"{json.dumps(brief.cta, ensure_ascii=False)}.",
        f"- name the brand ({brief.brand}) and the product ({brief.product}) in the narration or on-screen text.",
        "- on_screen_text is a few words; narration is natural speech, not a list.",
        "- image_prompt describes one photographable frame in the brand colours; no text in the image.",
        "- camera is a move the key image gets; transition is how the scene begins (the first scene: cut).",
        *(f"- {rule}" for rule in bar.extra_rules),
        f"- this is variant {seed}: make your own creative choices.",
        "",
        "Answer with one JSON object that follows this JSON Schema:",
        json.dumps(schema, ensure_ascii=False, separators=(",", ":")),
    ]
    return "\n".join(parts)


# the compact prompt, for small contexts (a 4096-token llama-server): the same brief and plan, the rules in
# short, and a one-line skeleton of the answer instead of the JSON Schema (the server's grammar enforces it)
SYSTEM_COMPACT = "You write short video ad scripts. Answer with one JSON object only."


def _skeleton(schema: dict) -> str:
    scene = ((schema.get("properties") or {}).get("scenes") or {}).get("items") or {}
    fields = []
    for name, prop in (scene.get("properties") or {}).items():
        if prop.get("enum"):
            value = "|".join(prop["enum"])
        elif prop.get("type") == "number":
            value = "seconds"
        elif prop.get("type") == "array":
            value = "[...]"
        else:
            value = "..."
        fields.append(f'"{name}":{value}')
    return '{"title":"...","scenes":[{' + ",".join(fields) + "}, ...]}"


def compact_user_prompt(bar: Bar, schema: dict, reference: ReferenceStyle | None = None, seed: int = 0) -> str:
    brief, lang = bar.brief, bar.language_name
    lo, hi = bar.plan.count_range
    count = f"exactly {lo}" if lo == hi else f"{lo} to {hi}"
    plan = "; ".join(f"{seg} {sec:.2f}s (narration <= {budget} {bar.unit})"
                     for seg, sec, budget in zip(bar.plan.structure, bar.plan.shot_seconds, bar.budgets))
    parts = [
        f"Ad for {brief.brand} {brief.product}. Audience: {brief.audience or 'general'}. "
        f"Goal: {brief.goal or 'sell the product'}. Tone: {brief.tone}. Colours: {', '.join(brief.brand_colors)}.",
        f"{count} scenes adding up to exactly {brief.duration_seconds:g} s. Plan: {plan}.",
        *_reference_lines(reference),
        *kit_lines(brief, compact=True),
        f"narration and on_screen_text in {lang}; image_prompt, negative_prompt, visual_direction in English.",
        f"Scene 1 is the hook. The last scene is the cta; its on_screen_text is exactly "
        f"{json.dumps(brief.cta, ensure_ascii=False)}. Name {brief.brand} and {brief.product}. Variant {seed}.",
        *bar.extra_rules,
        "JSON: " + _skeleton(schema),
    ]
    return "\n".join(parts)


def repair_prompt(issues: list[Issue], brief: Brief, limit: int = 8) -> str:
    lines = ["Your answer does not meet the brief yet. Fix these problems:"]
    lines += [f"- {i}" for i in issues[:limit]]
    if len(issues) > limit:
        lines.append(f"- (and {len(issues) - limit} more of the same kinds)")
    lines.append(f"Answer again with the whole JSON object (all scenes, durations adding up to "
                 f"{brief.duration_seconds:g} s), fixing these and keeping what was right. JSON only.")
    return "\n".join(lines)


def messages(bar: Bar, schema: dict, reference: ReferenceStyle | None = None, seed: int = 0,
             compact: bool = False) -> list[dict]:
    if compact:
        return [{"role": "system", "content": SYSTEM_COMPACT},
                {"role": "user", "content": compact_user_prompt(bar, schema, reference, seed)}]
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": user_prompt(bar, schema, reference, seed)}]


def repair_messages(first: list[dict], answer: str | None, issues: list[Issue], brief: Brief) -> list[dict]:
    """A repair request that never grows: the first request, the last answer (when given) and its problems.

    Without ``answer`` (it would not fit) the problems travel in the one user message."""
    fix = repair_prompt(issues, brief)
    if answer is None:
        return first[:-1] + [{"role": "user", "content": first[-1]["content"] + "\n\nA previous answer failed. "
                                                         + fix}]
    return first + [{"role": "assistant", "content": answer}, {"role": "user", "content": fix}]
