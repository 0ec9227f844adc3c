"""The deterministic script writer: a brief (+ seed) → a valid, timed Script.

Used when asked for, and as the fallback when no LLM answers. The same brief and
seed always give the same script; another seed picks other phrasings, camera
moves and pacing within the same structure.
"""
from __future__ import annotations

import random
import re

from ..models import Brief, Scene, Script
from .language import narration_fits, speech_seconds

# Segment structures by ad length; weights share out the duration.
_STRUCTURES: list[tuple[float, list[tuple[str, float]]]] = [
    (8.0, [("hook", 0.4), ("cta", 0.6)]),
    (12.0, [("hook", 0.3), ("solution", 0.4), ("cta", 0.3)]),
    (24.0, [("hook", 0.2), ("problem", 0.2), ("solution", 0.25), ("proof", 0.15), ("cta", 0.2)]),
    (45.0, [("hook", 0.14), ("problem", 0.16), ("solution", 0.2), ("benefit", 0.18), ("proof", 0.16), ("cta", 0.16)]),
]
_LONG_SHOT_SECONDS = 6.0  # past 45 s: middle segments repeat so shots stay short

_PHRASES: dict[str, dict[str, list[tuple[str, str]]]] = {
    # segment → [(on-screen text, narration)], with {brand} {product} {audience} {goal} {cta}
    "en": {
        "hook": [("Meet {product}", "Meet {product} from {brand}."),
                 ("Still settling for less?", "Still settling for less? There's a better way."),
                 ("This changes everything", "This is {product}, and it changes everything.")],
        "problem": [("Sound familiar?", "Too much effort, not enough results. Sound familiar?"),
                    ("The old way is slow", "The old way is slow, fiddly and expensive.")],
        "solution": [("{product} does it for you", "{product} does the hard part for you."),
                     ("Made for {audience}", "Made for {audience}, {product} just works.")],
        "benefit": [("More time for what matters", "Spend less time fixing and more time on what matters."),
                    ("Designed to last", "Designed to last, and a joy to use every day.")],
        "proof": [("Loved by thousands", "Thousands already trust {brand}."),
                  ("Rated five stars", "Rated five stars by people like you.")],
        "offer": [("Limited-time offer", "For a limited time, get more for less.")],
        "cta": [("{cta}", "{cta}. {brand}."), ("{cta}", "Don't wait. {cta}.")],
        "_audience_default": [("everyone", "")],
    },
    "ko": {
        "hook": [("{product}, 지금 만나보세요", "{brand}의 {product}, 지금 만나보세요."),
                 ("아직도 불편하게 사세요?", "아직도 불편하게 사세요? 더 좋은 방법이 있습니다."),
                 ("모든 것이 달라집니다", "{product}, 모든 것이 달라집니다.")],
        "problem": [("이런 고민 있으시죠?", "시간은 없고 결과는 아쉽고, 이런 고민 있으시죠?"),
                    ("예전 방식은 느립니다", "예전 방식은 느리고 번거롭고 비쌉니다.")],
        "solution": [("해결책은 {product}", "어려운 일은 {product}에 맡기세요."),
                     ("{audience}에게 꼭 맞게", "{audience}에게 꼭 맞춘 {product}.")],
        "benefit": [("소중한 시간을 지키세요", "번거로움은 줄이고 소중한 시간은 늘리세요."),
                    ("오래 쓰는 디자인", "오래 쓰도록 설계했습니다.")],
        "proof": [("수많은 고객의 선택", "수많은 고객의 선택, {brand}."),
                  ("별점 다섯 개", "고객 만족 별점 다섯 개.")],
        "offer": [("기간 한정 혜택", "지금만 드리는 기간 한정 혜택.")],
        "cta": [("{cta}", "지금 바로, {cta}. {brand}."), ("{cta}", "망설이지 마세요. {cta}.")],
        "_audience_default": [("모두", "")],
    },
}

_VISUALS = {
    "hook": "bold hero shot of {product}, dynamic angle, brand colours",
    "problem": "muted, slightly desaturated everyday scene showing the frustration {product} solves",
    "solution": "{product} in use, clean studio light, brand colours",
    "benefit": "happy {audience} enjoying the result, warm light",
    "proof": "{product} with trust signals: stars, testimonials, clean layout",
    "offer": "{product} with a bold price tag graphic",
    "cta": "{brand} logo and {product} on a brand-colour background",
    "scene": "{product} advertisement shot",
}
_CAMERAS = {
    "hook": ["zoom_in", "pulse"], "problem": ["pan_left", "drift"], "solution": ["zoom_out", "pan_right"],
    "benefit": ["drift", "pan_up"], "proof": ["pan_right", "zoom_in"], "offer": ["pulse"],
    "cta": ["zoom_in", "pulse"], "scene": ["drift"],
}
_NEGATIVE = "blurry, low quality, distorted text, watermark, extra fingers, deformed"


def template_languages() -> list[str]:
    return sorted(_PHRASES)


def segment_plan(duration: float, structure: list[str] | None = None) -> list[tuple[str, float]]:
    """Segments and their share of the duration."""
    if structure:
        return [(seg, 1.0 / len(structure)) for seg in structure]
    for limit, plan in _STRUCTURES:
        if duration <= limit:
            return list(plan)
    plan = list(_STRUCTURES[-1][1])
    extra = int(duration // _LONG_SHOT_SECONDS) - len(plan)
    middle = ["solution", "benefit", "proof", "offer"]
    for i in range(max(0, extra)):
        plan.insert(-1, (middle[i % len(middle)], plan[-2][1]))
    total = sum(w for _, w in plan)
    return [(s, w / total) for s, w in plan]


def split_duration(total: float, weights: list[float], step: float = 0.01) -> list[float]:
    """Share ``total`` by ``weights`` in ``step`` units; the parts add up exactly."""
    units = round(total / step)
    wsum = sum(weights)
    raw = [units * w / wsum for w in weights]
    parts = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - parts[i], reverse=True)[: units - sum(parts)]:
        parts[i] += 1
    if any(p <= 0 for p in parts):
        raise ValueError(f"{total:g}s is too short for {len(weights)} scenes")
    return [p * step for p in parts]


def write_template_script(brief: Brief, seed: int = 0, structure: list[str] | None = None,
                          shot_seconds: list[float] | None = None) -> Script:
    """Write the deterministic script for ``brief``.

    ``structure`` / ``shot_seconds`` come from a reference style when one is given.
    """
    rng = random.Random(f"{seed}:{brief.model_dump_json()}")
    lang = brief.base_language
    notes = []
    if lang not in _PHRASES:
        notes.append(f"the template has no {brief.language!r} phrasing; it wrote English text")
        lang = "en"
    phrases = _PHRASES[lang]
    plan = segment_plan(brief.duration_seconds, structure)
    if shot_seconds and len(shot_seconds) == len(plan):
        weights = list(shot_seconds)
    else:
        weights = [w * rng.uniform(0.9, 1.1) for _, w in plan]
    durations = split_duration(brief.duration_seconds, weights)
    audience = brief.audience or phrases["_audience_default"][0][0]
    fields = dict(brand=brief.brand, product=brief.product, audience=audience, goal=brief.goal, cta=brief.cta)
    style = f"{brief.tone} advertising photography, palette {' '.join(brief.brand_colors)}"

    scenes, t, used = [], 0.0, set()
    for i, ((segment, _), dur) in enumerate(zip(plan, durations)):
        options = phrases.get(segment) or phrases["solution"]
        choices = [o for o in options if (segment, o) not in used] or options
        text, narration = rng.choice(choices)
        used.add((segment, (text, narration)))
        end = round(t + dur, 6) if i < len(plan) - 1 else brief.duration_seconds
        visual = _VISUALS.get(segment, _VISUALS["scene"]).format(**fields)
        scenes.append(Scene(
            index=i, start=round(t, 6), end=end, segment=segment,
            on_screen_text=text.format(**fields)[:200],
            narration=narration.format(**fields)[:1000],
            visual_direction=visual,
            image_prompt=f"{visual}, {style}",
            negative_prompt=_NEGATIVE,
            camera=rng.choice(_CAMERAS.get(segment, ["drift"])),
            transition="cut" if i == 0 else rng.choice(["cut", "crossfade", "fade"]) if segment != "cta" else "crossfade",
            music_mood=brief.tone,
            brand_elements=["logo"] if segment in ("hook", "cta") else [],
        ))
        t = end
    _meet_the_bar(scenes, phrases, fields, brief.language)
    return Script(
        title=f"{brief.brand} — {brief.product}",
        language=brief.language,
        total_duration=brief.duration_seconds,
        scenes=scenes,
        source="template",
        notes=notes,
    )


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s.casefold()).strip()


def _meet_the_bar(scenes: list[Scene], phrases: dict, fields: dict, language: str) -> None:
    """Make the template's own script meet the quality bar (quality.py) where it misses.

    Scenes that already pass are left exactly as written. A narration too long
    for its scene is swapped for a phrasing that fits (or the on-screen text, or
    silence); a brand or product named nowhere is worked into the CTA or hook.
    """
    def fits(text: str, sc: Scene) -> bool:
        return narration_fits(text, language, sc.duration)

    def options(segment: str, slot: int, must: str = "") -> list[str]:
        out = []
        for pair in phrases.get(segment) or phrases["solution"]:
            if must and must not in pair[slot]:
                continue
            out.append(pair[slot].format(**fields)[:1000 if slot else 200])
        return out

    for sc in scenes:
        if sc.narration and not fits(sc.narration, sc):
            shorter = [n for n in options(sc.segment, 1) + [sc.on_screen_text] if n and fits(n, sc)]
            sc.narration = min(shorter, key=lambda n: speech_seconds(n, language)) if shorter else ""

    def present(value: str) -> bool:
        return _norm(value) in _norm(" ".join(sc.narration + " " + sc.on_screen_text for sc in scenes))

    last, first = scenes[-1], scenes[0]
    for key in ("brand", "product"):
        if present(fields[key]):
            continue
        placeholder = "{" + key + "}"
        # a narration that names it (the CTA's, then the hook's), where one fits
        for sc in ([last] + ([first] if first is not last else [])):
            fitting = [n for n in options(sc.segment, 1, placeholder) if fits(n, sc)]
            if fitting:
                sc.narration = fitting[0]
                break
        else:
            if first is not last:  # the opening card names it
                texts = options(first.segment, 0, placeholder)
                first.on_screen_text = texts[0] if texts else f"{fields['brand']} {fields['product']}"[:200]
                if not present(fields[key]):
                    first.on_screen_text = f"{fields['brand']} {fields['product']}"[:200]
            elif fits(fields[key], last):
                last.narration = (f"{fields[key]}. {last.narration}" if last.narration
                                  and fits(f"{fields[key]}. {last.narration}", last) else fields[key])
