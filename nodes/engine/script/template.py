"""The deterministic script writer: a brief (+ seed) → a valid, timed Script.

Used when asked for, and as the fallback when no LLM answers. It writes the
brief's plan (plan.py) and never plans again. The same brief and seed always
give the same script; another seed picks other phrasings, camera moves and
(through the plan) pacing within the same structure.

Every line is measured with the voice that will say it (the measure the flow
hands in, speech/fit.py), so the
template never writes narration that cannot be spoken in its scene. When a
line does not fit, the template picks a shorter phrasing; then (with its own
pacing) a scene that says less lends its time to one that needs more; then
it drops optional lines (problem, proof, benefit … before the hook and the
CTA's line). The brand, the product and the CTA are never dropped: what is
not said is shown.
"""
from __future__ import annotations

import math
import random
import re
from typing import TYPE_CHECKING

from ..brand.rules import allowed, honour_kit
from ..models import Brief, Scene, Script

if TYPE_CHECKING:  # handed in by the flow (generate.py): the template never plans or picks a voice
    from ..speech.fit import Measure
    from .plan import Plan

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
    "es": {
        "hook": [("Descubre {product}", "Descubre {product} de {brand}."),
                 ("¿Todavía te conformas?", "¿Todavía te conformas con menos? Hay una forma mejor."),
                 ("Esto lo cambia todo", "Esto es {product}, y lo cambia todo.")],
        "problem": [("¿Te suena?", "Mucho esfuerzo y pocos resultados. ¿Te suena?"),
                    ("Lo de siempre es lento", "Lo de siempre es lento, complicado y caro.")],
        "solution": [("{product} lo hace por ti", "{product} hace la parte difícil por ti."),
                     ("Pensado para {audience}", "Pensado para {audience}, {product} simplemente funciona.")],
        "benefit": [("Más tiempo para lo que importa", "Menos tiempo arreglando y más tiempo para lo que importa."),
                    ("Hecho para durar", "Hecho para durar, y un placer de usar cada día.")],
        "proof": [("Miles ya lo eligen", "Miles de personas ya confían en {brand}."),
                  ("Cinco estrellas", "Cinco estrellas de gente como tú.")],
        "offer": [("Oferta por tiempo limitado", "Por tiempo limitado, consigue más por menos.")],
        "cta": [("{cta}", "{cta}. {brand}."), ("{cta}", "No esperes más. {cta}.")],
        "_audience_default": [("todos", "")],
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


def write_template(brief: Brief, plan: "Plan", dice: random.Random, measure: "Measure") -> Script:
    """Write the deterministic script for ``brief`` along ``plan``: its segments, its ``scene_seconds``
    and bounds. ``dice`` (plan.dice_for, after the plan's own rolls) choose the phrasing, camera moves
    and transitions; ``measure`` is the voice that will say the lines."""
    rng = dice
    lang = brief.base_language
    notes = []
    if lang not in _PHRASES:
        notes.append("the template has no phrasing in the brief's language; it wrote English text")
        lang = "en"
    phrases = _PHRASES[lang]
    durations = plan.scene_seconds
    n = len(plan.structure)
    audience = brief.audience or phrases["_audience_default"][0][0]
    fields = dict(brand=brief.brand, product=brief.product, audience=audience, goal=brief.goal, cta=brief.cta)
    style = f"{brief.tone} advertising photography, palette {' '.join(brief.brand_colors)}"

    scenes, t, used = [], 0.0, set()
    for i, (segment, dur) in enumerate(zip(plan.structure, durations)):
        options = phrases.get(segment) or phrases["solution"]
        choices = [o for o in options if (segment, o) not in used] or options
        choices = [o for o in choices if allowed(" ".join(o).format(**fields), brief)] or choices  # brand kit
        text, narration = rng.choice(choices)
        used.add((segment, (text, narration)))
        end = round(t + dur, 6) if i < n - 1 else brief.duration_seconds
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
    scenes = _meet_the_bar(scenes, phrases, fields, brief, measure, plan.bounds[n], lend=not plan.exact_count)
    return honour_kit(Script(
        title=f"{brief.brand} — {brief.product}"[:200],
        language=brief.language,
        total_duration=brief.duration_seconds,
        scenes=scenes,
        source="template",
        notes=notes,
    ), brief)


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s.casefold()).strip()


def allot(needs: list[float], base: list[float], bounds: list[tuple[float, float]], total: float,
          step: float = 0.01) -> list[float] | None:
    """Scene lengths (``step`` units, adding up to ``total``) of at least each scene's need and
    within its bounds, as close to ``base``'s proportions as that allows; None when impossible.
    ``base`` itself when it already meets every need."""
    if all(b + 1e-9 >= nd for b, nd in zip(base, needs)):
        return list(base)
    units = round(total / step)
    lo = [max(1, math.ceil(max(a, nd) / step - 1e-6)) for (a, _), nd in zip(bounds, needs)]
    hi = [max(1, math.floor(b / step + 1e-6)) for _, b in bounds]
    if any(a > b for a, b in zip(lo, hi)) or sum(lo) > units or sum(hi) < units:
        return None
    w = [max(b, step) / step for b in base]

    def at(k: float) -> list[float]:
        return [min(h, max(a, wi * k)) for wi, a, h in zip(w, lo, hi)]

    k_lo, k_hi = 0.0, 1.0
    while sum(at(k_hi)) < units:
        k_hi *= 2
    for _ in range(80):
        mid = (k_lo + k_hi) / 2
        k_lo, k_hi = (mid, k_hi) if sum(at(mid)) < units else (k_lo, mid)
    x = at(k_hi)
    parts = [min(h, max(a, int(xi))) for xi, a, h in zip(x, lo, hi)]
    order = sorted(range(len(x)), key=lambda i: x[i] - int(x[i]), reverse=True)
    while sum(parts) < units:
        i = next(i for i in order if parts[i] < hi[i])
        parts[i] += 1
        order.remove(i)
        order.append(i)
    while sum(parts) > units:
        i = next(i for i in reversed(order) if parts[i] > lo[i])
        parts[i] -= 1
        order.remove(i)
        order.insert(0, i)
    return [p * step for p in parts]


# the lines the template drops first when the ad is too short for all of them
_DROP_ORDER = ["problem", "proof", "benefit", "offer", "solution", "scene", "intro", "outro", "hook", "cta"]


def _meet_the_bar(scenes: list[Scene], phrases: dict, fields: dict, brief: Brief, measure: "Measure",
                  bounds: list[tuple[float, float]], lend: bool = True) -> list[Scene]:
    """Make the template's script speakable with ``measure``'s voice and complete (quality.py's bar).

    Scenes whose narration fits are left as written. A line that does not fit gets a
    shorter phrasing; then (``lend``) the scenes' lengths are re-shared so that each
    narration has its time; then optional lines are dropped, least important first.
    A brand or product named nowhere is worked into a narration that fits, or shown.
    """
    total = brief.duration_seconds

    def fmt(template: str, limit: int) -> str:
        return template.format(**fields)[:limit]

    def options(segment: str, slot: int, must: str = "") -> list[str]:
        return [fmt(pair[slot], 1000 if slot else 200) for pair in (phrases.get(segment) or phrases["solution"])
                if (not must or must in pair[slot]) and allowed(fmt(pair[slot], 1000), brief)]

    candidates = []
    for sc in scenes:
        opts = [sc.narration] + options(sc.segment, 1)
        opts += [f"{fields['cta']}.", f"{fields['brand']}."] if sc.segment == "cta" else [sc.on_screen_text]
        candidates.append(list(dict.fromkeys(o for o in opts if measure.says_something(o))))

    need = measure.scene_need

    base = [sc.duration for sc in scenes]
    chosen = [sc.narration if measure.says_something(sc.narration) else "" for sc in scenes]
    measure.prefetch(chosen)  # (a measure is a synthesis: other phrasings are measured once a line needs one)

    def layout(lines: list[str]) -> list[float] | None:
        needs = [need(t) for t in lines]
        if lend:
            return allot(needs, base, bounds, total)
        return base if all(b + 1e-9 >= nd for b, nd in zip(base, needs)) else None

    def carries(text: str) -> set[str]:
        return {k for k in ("brand", "product", "cta") if _norm(fields[k]) in _norm(text)}

    # 1. a shorter phrasing that says as much (the brand, product and CTA it names), where a line
    #    overruns its scene; then (in layout) the time of scenes that say less is lent to it
    for i, sc in enumerate(scenes):
        if need(chosen[i]) > base[i] + 1e-9:
            measure.prefetch(candidates[i])
            keep = carries(chosen[i])
            same = [o for o in candidates[i] if carries(o) >= keep]
            fitting = [o for o in same if need(o) <= base[i] + 1e-9]
            chosen[i] = fitting[0] if fitting else min(same, key=need, default=chosen[i])
    durations = layout(chosen)
    # 2. (lending happened in layout) then drop optional lines, least important first;
    #    within a segment kind the longest line goes first
    if durations is None:
        order = sorted(range(len(scenes)), key=lambda i: (_DROP_ORDER.index(scenes[i].segment)
                                                          if scenes[i].segment in _DROP_ORDER else 0, -need(chosen[i])))
        for i in order:
            if not chosen[i] or (not lend and need(chosen[i]) <= base[i] + 1e-9):
                continue  # without lending, only a line that overruns its own scene is worth cutting
            measure.prefetch(candidates[i])
            shorter = [o for o in candidates[i] if 0 < need(o) < need(chosen[i])]
            for option in sorted(shorter, key=need, reverse=True) + [""]:
                chosen[i] = option
                durations = layout(chosen)
                if durations is not None:
                    break
            if durations is not None:
                break
    if durations is None:  # every line dropped: always fits
        chosen = [""] * len(scenes)
        durations = list(base)

    # 3. the brand and the product: said where a line naming them fits, else shown
    def present(value: str) -> bool:
        return _norm(value) in _norm(" ".join(c + " " + sc.on_screen_text for c, sc in zip(chosen, scenes)))

    last, first = len(scenes) - 1, 0
    for key in ("brand", "product"):
        if present(fields[key]):
            continue
        placeholder = "{" + key + "}"
        for i in ([last] + ([first] if first != last else [])):
            bare = [f"{fields[key]}."] if i == first and first != last else []  # the CTA's line stays the CTA's
            for option in options(scenes[i].segment, 1, placeholder) + bare:
                trial = chosen[:i] + [option] + chosen[i + 1:]
                d = layout(trial)
                if d is not None:
                    chosen, durations = trial, d
                    break
            if present(fields[key]):
                break
    missing = [fields[k] for k in ("brand", "product") if not present(fields[k])]
    if missing:  # shown instead
        _show(scenes, missing, [fields["brand"], fields["product"], fields["cta"]])

    out, t = [], 0.0
    for i, (sc, line, dur) in enumerate(zip(scenes, chosen, durations)):
        end = round(t + dur, 6) if i < len(scenes) - 1 else total
        out.append(sc.model_copy(update={"narration": line, "start": round(t, 6), "end": end}))
        t = end
    return out


def _show(scenes: list[Scene], names: list[str], required: list[str], limit: int = 200) -> None:
    """Put ``names`` on screen: beside a card's text, instead of a card that shows nothing
    ``required``, or beside the CTA on the last card."""
    def carries(text: str) -> bool:
        return any(_norm(r) in _norm(text) for r in required)

    cards, last = scenes[:-1], scenes[-1]
    for name in sorted(names, key=len, reverse=True):
        for sc in cards:
            joined = f"{sc.on_screen_text} · {name}" if sc.on_screen_text else name
            if len(joined) <= limit:
                sc.on_screen_text = joined
                break
        else:
            spare = [sc for sc in cards if not carries(sc.on_screen_text)]
            if spare and len(name) <= limit:
                spare[0].on_screen_text = name
            elif len(f"{last.on_screen_text} · {name}") <= limit:
                last.on_screen_text = f"{last.on_screen_text} · {name}"
