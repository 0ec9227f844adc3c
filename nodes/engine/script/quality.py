"""The script's quality bar, applied to every script (LLM, template or edited).

A script passes when:

* its scenes add up to the brief's duration (±0.05 s);
* the scene count and lengths follow the pacing: given (a shot length), from a
  reference ad, or — when neither — the template's structure for that length;
* the segments follow an ad structure: it opens on a hook and closes on the
  call to action, no problem after the solution — or exactly the reference's
  structure when it has one;
* the brand, the product and the CTA appear (the CTA in the last scene);
* each narration can be spoken in its scene: its spoken form (speech/spoken.py),
  measured with the voice that will say it, plus lead-in, breath and margin,
  fits the scene's length (speech/fit.py — the measure SceneNarration and
  FFmpegAssemble use too);
* narration and on-screen text are in the brief's language;
* every scene has an image prompt.

Each problem is an :class:`Issue` naming the scene and field, so it can be
sent back to an LLM or shown to a user as is.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from ..brand.rules import kit_issues
from ..models import Brief, ReferenceStyle, Script
from ..speech.fit import BAR_MAX_SPEED, OVERHEAD_SECONDS, fit_speed, speech_room
from ..speech.spoken import spoken_form
from ..speech.voice import Voice, default_voice
from .language import language_name, language_problem, speaking_rate, speech_units
from .template import scene_length_bounds, segment_plan, split_duration

DURATION_TOLERANCE = 0.05
_CANONICAL = ["hook", "problem", "solution", "benefit", "proof", "cta"]
_MIDDLE = ["solution", "benefit", "proof", "offer"]


@dataclass(frozen=True)
class Issue:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass
class Pacing:
    """How many scenes, how long each, which segment each (targets)."""

    duration: float
    shot_seconds: list[float]
    structure: list[str]
    source: str = "auto"                 # auto | given | reference
    exact_count: bool = False
    exact_structure: bool = False
    length_tolerance: float = 0.25       # relative, for given / reference pacing
    notes: list[str] = field(default_factory=list)

    @property
    def scene_count(self) -> int:
        return len(self.shot_seconds)

    @property
    def mean_shot(self) -> float:
        return self.duration / self.scene_count

    def count_range(self) -> tuple[int, int]:
        n = self.scene_count
        return (n, n) if self.exact_count else (max(1, n - 1), n + 1)

    def length_bounds(self, index: int, count: int) -> tuple[float, float]:
        """Allowed length of scene ``index`` in a script of ``count`` scenes."""
        if self.exact_count and count == self.scene_count:
            return scene_length_bounds(self.duration, count, self.shot_seconds, self.length_tolerance)[index]
        return scene_length_bounds(self.duration, count)[index]

    def describe(self) -> str:
        lengths = ", ".join(f"{s:.2f}" for s in self.shot_seconds)
        return (f"{self.scene_count} scenes ({self.source} pacing): {', '.join(self.structure)}; "
                f"lengths {lengths} s")


def structure_for(n: int) -> list[str]:
    """A canonical ad structure with ``n`` segments."""
    if n <= 1:
        return ["cta"]
    if n == 2:
        return ["hook", "cta"]
    if n == 3:
        return ["hook", "solution", "cta"]
    if n == 4:
        return ["hook", "problem", "solution", "cta"]
    if n == 5:
        return ["hook", "problem", "solution", "proof", "cta"]
    plan = list(_CANONICAL)
    for i in range(n - len(plan)):
        plan.insert(-1, _MIDDLE[i % len(_MIDDLE)])
    return plan


def _resample(lengths: list[float], n: int) -> list[float]:
    """The shape of a shot-length profile, at ``n`` shots (relative weights)."""
    total = sum(lengths)
    edges, t = [], 0.0
    for s in lengths:
        edges.append((t / total, (t + s) / total, s))
        t += s
    out = []
    for i in range(n):
        pos = (i + 0.5) / n
        for a, b, s in edges:
            if a <= pos < b or (b >= 1.0 and pos >= a):
                out.append(s)
                break
    return out


def shot_lengths(ref: ReferenceStyle) -> list[float]:
    cuts = [0.0] + [c for c in ref.shot_boundaries if 0 < c < ref.duration_seconds] + [ref.duration_seconds]
    lengths = [b - a for a, b in zip(cuts, cuts[1:]) if b - a > 0]
    if len(lengths) != ref.shot_count:
        lengths = [ref.duration_seconds / ref.shot_count] * ref.shot_count
    return lengths


def plan_pacing(brief: Brief, reference: ReferenceStyle | None = None, shot_seconds: float = 0.0) -> Pacing:
    """The pacing a script for ``brief`` must follow."""
    d = brief.duration_seconds
    if reference is not None:
        ref_lengths = shot_lengths(reference)
        n = max(1, round(d / reference.mean_shot_seconds))
        n = min(n, 60, max(1, int(d / 0.2)))
        weights = ref_lengths if n == len(ref_lengths) else _resample(ref_lengths, n)
        structure = (list(reference.structure) if len(reference.structure) == n
                     else structure_for(n))
        notes = []
        if reference.structure and len(reference.structure) != n:
            notes.append(f"the reference's structure has {len(reference.structure)} segments, this "
                         f"{d:g}s ad gets {n} scenes: used the standard structure")
        return Pacing(d, split_duration(d, weights), structure, "reference", exact_count=True,
                      exact_structure=len(reference.structure) == n, notes=notes)
    if shot_seconds and shot_seconds > 0:
        n = max(1, min(60, round(d / shot_seconds)))
        return Pacing(d, split_duration(d, [1.0] * n), structure_for(n), "given", exact_count=True)
    plan = segment_plan(d)
    return Pacing(d, split_duration(d, [w for _, w in plan]), [s for s, _ in plan], "auto")


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s.casefold()).strip()


def _norm_cta(s: str) -> str:
    return _norm(s).strip(" .!?,;:。！？、")


def check_structure(segments: list[str], pacing: Pacing) -> list[Issue]:
    if pacing.exact_structure:
        if segments != pacing.structure:
            return [Issue("scenes", f"segments are {', '.join(segments)}; the reference's structure is "
                                    f"{', '.join(pacing.structure)}")]
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


def narration_issue(index: int, text: str, seconds: float, language: str, voice: Voice) -> Issue | None:
    """The problem with scene ``index``'s narration ``text`` in a scene of ``seconds`` (None: it fits)."""
    spoken = spoken_form(text, language)
    room = speech_room(seconds)
    if not spoken or fit_speed(voice, spoken, room, BAR_MAX_SPEED) is not None:
        return None
    need = voice.measure(spoken)
    unit, _ = speaking_rate(language)
    units = speech_units(text, language)
    keep = int(units * room / need) if need > 0 else 0
    how = "measured" if voice.measured else "estimated"
    cut = math.ceil((need - room) * 10) / 10
    return Issue(f"scenes[{index}].narration",
                 f"its {units:g} {unit} take about {need:.1f} s to say ({how} with {voice.describe()}); scene "
                 f"{index} lasts {seconds:.2f} s, which leaves {room:.2f} s for speech after the lead-in, breath "
                 f"and margin ({OVERHEAD_SECONDS:g} s), and even {round((BAR_MAX_SPEED - 1) * 100)} % faster it "
                 f"overruns: shorten it by about {cut:.1f} s, to about {keep} {unit[:-1] if keep == 1 else unit}")


def check_script(script: Script, brief: Brief, pacing: Pacing, voice: Voice | None = None) -> list[Issue]:
    """Everything in ``script`` that misses the bar (empty when it passes). Narration is
    measured with ``voice`` (default: the voice SceneNarration speaks the language with)."""
    issues: list[Issue] = []
    scenes = script.scenes
    n = len(scenes)
    total = sum(sc.duration for sc in scenes)
    if abs(total - brief.duration_seconds) > DURATION_TOLERANCE or \
            abs(script.total_duration - brief.duration_seconds) > DURATION_TOLERANCE:
        issues.append(Issue("scenes", f"scene durations add up to {total:.2f} s; the ad lasts "
                                      f"{brief.duration_seconds:g} s (±{DURATION_TOLERANCE} s)"))
    lo, hi = pacing.count_range()
    if not lo <= n <= hi:
        want = f"{lo}" if lo == hi else f"{lo}–{hi}"
        issues.append(Issue("scenes", f"{n} scenes; the {pacing.source} pacing asks for {want}"))
    else:
        for i, sc in enumerate(scenes):
            a, b = pacing.length_bounds(i, n)
            if not a - 1e-6 <= sc.duration <= b + 1e-6:
                issues.append(Issue(f"scenes[{i}].duration", f"{sc.duration:.2f} s is outside the "
                                                             f"{pacing.source} pacing's {a:.2f}–{b:.2f} s"))
    issues += check_structure([sc.segment for sc in scenes], pacing)

    everything = _norm(" ".join(sc.narration + " " + sc.on_screen_text for sc in scenes))
    for name, value in (("brand", brief.brand), ("product", brief.product)):
        if _norm(value) not in everything:
            issues.append(Issue("scenes", f"the brief's {name} appears in no narration or on-screen text"))
    last = scenes[-1]
    cta = _norm_cta(brief.cta)
    if cta not in _norm(last.on_screen_text) and cta not in _norm(last.narration):
        issues.append(Issue(f"scenes[{n - 1}].on_screen_text",
                            "the brief's call to action (cta) must appear in the last scene"))

    voice = voice or default_voice(brief.language)
    voice.measure_many(spoken_form(sc.narration, brief.language) for sc in scenes)
    names = [brief.brand, brief.product, brief.cta, *(brief.brand_kit.legal_lines if brief.brand_kit else [])]
    for i, sc in enumerate(scenes):
        problem = narration_issue(i, sc.narration, sc.duration, brief.language, voice)
        if problem:
            issues.append(problem)
        for fname in ("narration", "on_screen_text"):
            problem = language_problem(getattr(sc, fname), brief.language, names)
            if problem:
                issues.append(Issue(f"scenes[{i}].{fname}",
                                    f"{problem}: write it in {language_name(brief.language)}"))
        if not sc.image_prompt.strip():
            issues.append(Issue(f"scenes[{i}].image_prompt", "is empty"))
    return issues + [Issue(f, m) for f, m in kit_issues(script, brief)]  # the brand kit's rules

