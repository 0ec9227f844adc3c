"""The plan of a script: how many scenes, which segment each, how long each may be.

One plan per brief, made once (:func:`plan_for`) and read by everything after
it: the prompt asks the LLM for it, the template writes it, the quality bar
checks a script against it. Nothing downstream plans again.

The pacing comes from, in this order:

* a reference ad (``reference``): its shot count for this length, its shot
  lengths' shape, and its structure when it has as many segments;
* a shot length the user gives (``shot_seconds``): equal scenes, the standard
  structure for that many;
* neither: the standard structure for the ad's length (``_STRUCTURES``), whose
  weights share out the duration.

A plan is data: the bounds of each scene's length are worked out here for
every scene count the plan allows, so the writers and the checker only read.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from ..models import Brief, ReferenceStyle

# Segment structures by ad length; weights share out the duration.
_STRUCTURES: list[tuple[float, list[tuple[str, float]]]] = [
    (8.0, [("hook", 0.4), ("cta", 0.6)]),
    (12.0, [("hook", 0.3), ("solution", 0.4), ("cta", 0.3)]),
    (24.0, [("hook", 0.2), ("problem", 0.2), ("solution", 0.25), ("proof", 0.15), ("cta", 0.2)]),
    (45.0, [("hook", 0.14), ("problem", 0.16), ("solution", 0.2), ("benefit", 0.18), ("proof", 0.16), ("cta", 0.16)]),
]
_LONG_SHOT_SECONDS = 6.0  # past 45 s: middle segments repeat so shots stay short
_CANONICAL = ["hook", "problem", "solution", "benefit", "proof", "cta"]
_MIDDLE = ["solution", "benefit", "proof", "offer"]
LENGTH_TOLERANCE = 0.25   # relative, for a given or reference pacing


@dataclass(frozen=True)
class Plan:
    """How many scenes, how long each, which segment each.

    ``shot_seconds`` are the targets (what the prompt shows); ``scene_seconds``
    the lengths the template writes (the targets, varied by the variant's dice
    when the pacing is the standard one); ``bounds[n]`` the allowed length of
    each scene of a script with ``n`` scenes, for every ``n`` in ``count_range``.
    """

    duration: float
    structure: list[str]
    shot_seconds: list[float]
    scene_seconds: list[float]
    source: str                          # auto | given | reference
    exact_count: bool
    exact_structure: bool
    count_range: tuple[int, int]
    bounds: dict[int, list[tuple[float, float]]]
    notes: list[str] = field(default_factory=list)
    scene_count: int = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "scene_count", len(self.shot_seconds))


def dice_for(brief: Brief, seed: int) -> random.Random:
    """The variant's dice: the plan draws the template's pacing from them, then the template its phrasing.

    The brief's words and settings decide, not where its logo or photo happens to lie on disk (ComfyUI's
    temp names differ per run): the same brief and seed roll the same everywhere."""
    return random.Random(f"{seed}:{brief.model_dump_json(exclude={'logo_path', 'product_image_path', 'brand_kit'})}")


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


def _standard(duration: float) -> list[tuple[str, float]]:
    """The standard structure for an ad of ``duration``: segments and their share of it."""
    for limit, plan in _STRUCTURES:
        if duration <= limit:
            return list(plan)
    plan = list(_STRUCTURES[-1][1])
    extra = int(duration // _LONG_SHOT_SECONDS) - len(plan)
    for i in range(max(0, extra)):
        plan.insert(-1, (_MIDDLE[i % len(_MIDDLE)], plan[-2][1]))
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


def scene_length_bounds(total: float, count: int, targets: list[float] | None = None,
                        tolerance: float = LENGTH_TOLERANCE) -> list[tuple[float, float]]:
    """The length each of ``count`` scenes may have: around ``targets`` (a given or reference
    pacing) or, for the standard structure, between half and 2.2× the mean shot."""
    if targets is not None and len(targets) == count:
        return [(max(0.04, t - max(0.3, tolerance * t)), t + max(0.3, tolerance * t)) for t in targets]
    m = total / count
    return [(min(1.0, 0.5 * m), max(2.2 * m, 2.0))] * count


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


def _plan(d: float, structure: list[str], shots: list[float], scene_seconds: list[float], source: str,
          exact_structure: bool = False, notes: list[str] | None = None) -> Plan:
    n, exact = len(shots), source != "auto"
    count_range = (n, n) if exact else (max(1, n - 1), n + 1)
    bounds = {k: scene_length_bounds(d, k, shots if exact and k == n else None)
              for k in range(count_range[0], count_range[1] + 1)}
    return Plan(d, structure, shots, scene_seconds, source, exact, exact_structure, count_range, bounds,
                notes or [])


def plan_for(brief: Brief, reference: ReferenceStyle | None = None, shot_seconds: float = 0.0,
             dice: random.Random | None = None) -> Plan:
    """The plan a script for ``brief`` follows. With ``dice`` (:func:`dice_for`), the standard pacing's
    scene lengths for the template vary a little by the variant."""
    d = brief.duration_seconds
    if reference is not None:
        ref_lengths = shot_lengths(reference)
        n = max(1, round(d / reference.mean_shot_seconds))
        n = min(n, 60, max(1, int(d / 0.2)))
        weights = ref_lengths if n == len(ref_lengths) else _resample(ref_lengths, n)
        matches = len(reference.structure) == n
        notes = []
        if reference.structure and not matches:
            notes.append(f"the reference's structure has {len(reference.structure)} segments, this "
                         f"{d:g}s ad gets {n} scenes: used the standard structure")
        shots = split_duration(d, weights)
        return _plan(d, list(reference.structure) if matches else structure_for(n), shots, split_duration(d, shots),
                     "reference", exact_structure=matches, notes=notes)
    if shot_seconds and shot_seconds > 0:
        n = max(1, min(60, round(d / shot_seconds)))
        shots = split_duration(d, [1.0] * n)
        return _plan(d, structure_for(n), shots, split_duration(d, shots), "given")
    standard = _standard(d)
    weights = [w for _, w in standard]
    varied = [w * dice.uniform(0.9, 1.1) for w in weights] if dice is not None else weights
    return _plan(d, [s for s, _ in standard], split_duration(d, weights), split_duration(d, varied), "auto")
