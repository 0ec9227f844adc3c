"""The script's quality bar, applied to every script (LLM, template or edited).

A script passes when:

* its scenes add up to the brief's duration (±0.05 s);
* the scene count and lengths follow the brief's plan (plan.py);
* the segments follow an ad structure: it opens on a hook and closes on the
  call to action, no problem after the solution — or exactly the reference's
  structure when it has one;
* the brand, the product and the CTA appear (the CTA in the last scene);
* each narration can be spoken in its scene: its spoken form (speech/spoken.py),
  measured with the voice that will say it, plus lead-in, breath and margin,
  fits the scene's length (the ``Measure`` of speech/fit.py the flow hands in —
  the measure SceneNarration and FFmpegAssemble use too);
* narration and on-screen text are in the brief's language;
* every scene has an image prompt.

Each problem is an :class:`Issue` naming the scene and field, so it can be
sent back to an LLM or shown to a user as is.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from ..brand.rules import kit_issues
from ..models import Brief, Script
from .language import language_name, language_problem, speaking_rate, speech_units
from .plan import Plan

if TYPE_CHECKING:  # handed in by the flow (generate.py), never made here
    from ..speech.fit import Measure

DURATION_TOLERANCE = 0.05


@dataclass(frozen=True)
class Issue:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass
class Bar:
    """What every script for one brief must meet: its plan, its narration said by ``measure``, its language.

    Built once per brief; the prompt states it (``language_name``, each planned scene's narration
    ``budgets`` in ``unit``), :meth:`check` applies it. Further rules (a brand's banned words, its
    required lines) join as prompt lines in ``extra_rules`` and checks in ``extra_checks``.
    """

    brief: Brief
    plan: Plan
    measure: "Measure"
    extra_rules: list[str] = field(default_factory=list)
    extra_checks: list[Callable[[Script], list[Issue]]] = field(default_factory=list)

    def __post_init__(self):
        self.language_name = language_name(self.brief.language)
        self.unit = self.measure.unit
        self.budgets = [self.measure.budget(sec) for sec in self.plan.shot_seconds]

    def check(self, script: Script) -> list[Issue]:
        """Everything in ``script`` that misses the bar (empty when it passes)."""
        issues = _timing_issues(script, self.brief, self.plan)
        issues += check_structure([sc.segment for sc in script.scenes], self.plan)
        issues += _content_issues(script, self.brief, self.measure, self.language_name)
        issues += [Issue(f, m) for f, m in kit_issues(script, self.brief)]  # the brand kit's rules
        for extra in self.extra_checks:
            issues += extra(script)
        return issues


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s.casefold()).strip()


def _norm_cta(s: str) -> str:
    return _norm(s).strip(" .!?,;:。！？、")


def check_structure(segments: list[str], plan: Plan) -> list[Issue]:
    if plan.exact_structure:
        if segments != plan.structure:
            return [Issue("scenes", f"segments are {', '.join(segments)}; the reference's structure is "
                                    f"{', '.join(plan.structure)}")]
        return []
    issues = []
    n = len(segments)
    if n == 1:
        if segments[0] not in ("hook", "cta"):
            issues.append(Issue("scenes[0].segment", f"a one-scene ad is a cta (or hook), not {segments[0]}"))
        return issues
    if segments[0] not in ("hook", "intro"):
        issues.append(Issue("scenes[0].segment", f"the ad must open on a hook, not {segments[0]}"))
    if segments[-1] != "cta":
        issues.append(Issue(f"scenes[{n - 1}].segment", f"the ad must close on the cta, not {segments[-1]}"))
    if "cta" in segments[:-1] and segments[-1] == "cta":
        i = segments.index("cta")
        issues.append(Issue(f"scenes[{i}].segment", "the cta belongs in the last scene only"))
    if "solution" in segments:
        first_solution = segments.index("solution")
        late = [i for i, s in enumerate(segments) if s == "problem" and i > first_solution]
        if late:
            issues.append(Issue(f"scenes[{late[0]}].segment", "a problem after the solution breaks the ad's arc"))
    if n >= 4 and not ({"solution", "benefit"} & set(segments)):
        issues.append(Issue("scenes", "an ad of 4+ scenes needs a solution (or benefit) scene"))
    return issues


def _timing_issues(script: Script, brief: Brief, plan: Plan) -> list[Issue]:
    issues: list[Issue] = []
    scenes = script.scenes
    n = len(scenes)
    total = sum(sc.duration for sc in scenes)
    if abs(total - brief.duration_seconds) > DURATION_TOLERANCE or \
            abs(script.total_duration - brief.duration_seconds) > DURATION_TOLERANCE:
        issues.append(Issue("scenes", f"scene durations add up to {total:.2f} s; the ad lasts "
                                      f"{brief.duration_seconds:g} s (±{DURATION_TOLERANCE} s)"))
    lo, hi = plan.count_range
    if not lo <= n <= hi:
        want = f"{lo}" if lo == hi else f"{lo}–{hi}"
        issues.append(Issue("scenes", f"{n} scenes; the {plan.source} pacing asks for {want}"))
        return issues
    for i, (sc, (a, b)) in enumerate(zip(scenes, plan.bounds[n])):
        if not a - 1e-6 <= sc.duration <= b + 1e-6:
            issues.append(Issue(f"scenes[{i}].duration", f"{sc.duration:.2f} s is outside the "
                                                         f"{plan.source} pacing's {a:.2f}–{b:.2f} s"))
    return issues


def _narration_issue(index: int, text: str, seconds: float, language: str, measure: Measure) -> Issue | None:
    """The problem with scene ``index``'s narration ``text`` in a scene of ``seconds`` (None: it fits)."""
    overrun = measure.overrun(text, seconds)
    if overrun is None:
        return None
    need, room = overrun
    unit, _ = speaking_rate(language)
    units = speech_units(text, language)
    keep = int(units * room / need) if need > 0 else 0
    cut = math.ceil((need - room) * 10) / 10
    return Issue(f"scenes[{index}].narration",
                 f"its {units:g} {unit} take about {need:.1f} s to say ({measure.describe()}); scene "
                 f"{index} lasts {seconds:.2f} s, which leaves {room:.2f} s for speech after the lead-in, breath "
                 f"and margin ({measure.overhead:g} s), and even {round((measure.max_speed - 1) * 100)} % faster it "
                 f"overruns: shorten it by about {cut:.1f} s, to about {keep} {unit[:-1] if keep == 1 else unit}")


def _content_issues(script: Script, brief: Brief, measure: Measure, lang_name: str) -> list[Issue]:
    """The brand, the product and the CTA named; each narration said in its scene; the brief's language;
    an image prompt for every scene."""
    issues: list[Issue] = []
    scenes = script.scenes
    everything = _norm(" ".join(sc.narration + " " + sc.on_screen_text for sc in scenes))
    for name, value in (("brand", brief.brand), ("product", brief.product)):
        if _norm(value) not in everything:
            issues.append(Issue("scenes", f"the brief's {name} appears in no narration or on-screen text"))
    last = scenes[-1]
    cta = _norm_cta(brief.cta)
    if cta not in _norm(last.on_screen_text) and cta not in _norm(last.narration):
        issues.append(Issue(f"scenes[{len(scenes) - 1}].on_screen_text",
                            "the brief's call to action (cta) must appear in the last scene"))

    measure.prefetch(sc.narration for sc in scenes)
    names = [brief.brand, brief.product, brief.cta, *(brief.brand_kit.legal_lines if brief.brand_kit else [])]
    for i, sc in enumerate(scenes):
        problem = _narration_issue(i, sc.narration, sc.duration, brief.language, measure)
        if problem:
            issues.append(problem)
        for fname in ("narration", "on_screen_text"):
            problem = language_problem(getattr(sc, fname), brief.language, names)
            if problem:
                issues.append(Issue(f"scenes[{i}].{fname}", f"{problem}: write it in {lang_name}"))
        if not sc.image_prompt.strip():
            issues.append(Issue(f"scenes[{i}].image_prompt", "is empty"))
    return issues
