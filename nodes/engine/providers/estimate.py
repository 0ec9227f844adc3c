"""The editor's cost badge (``GET /adreel/providers/estimate``): what ProviderRender would be charged,
priced by each provider's own plan from the one price table (``cost``), without a key, an image or the
network; and the route's parameters, each checked."""
from __future__ import annotations

import json
import math
from typing import Any, Mapping, Optional

from ..models import ASPECT_RATIOS, AdReelInputError, StoryboardScene
from .base import JobPlan, PlanContext, choose_duration
from .cost import CostEstimate, server_budget, summarize
from .jobs import RenderJob
from .registry import PROVIDERS
from .request import parse_options

TYPICAL_SCENE = (0.0, "a short line of narration")  # before the storyboard is known: the model's shortest clip
MAX_ESTIMATE_SCENES = 200
MAX_SCENE_SECONDS = 600.0
MAX_NARRATION_CHARS = 5000
MAX_OPTIONS_CHARS = 4000
MAX_MODEL_CHARS = 200
MAX_BUDGET_USD = 1e6
ESTIMATE_PARAMS = ("provider", "model", "aspect_ratio", "durations", "narrations", "options_json", "max_cost_usd")


def estimate(provider: str, model: str, scenes: list[tuple[float, str]], *, aspect_ratio: str = "9:16",
             options_json: str = "", max_cost_usd: Optional[float] = None) -> dict:
    """What ProviderRender would be charged for ``scenes`` ((seconds, narration) each), priced by the
    provider's own plan (allowed durations and ratios, resolutions, HeyGen's speaking rate, Replicate's
    price options) from this table; secret-free and with no network, no key and no image.

    ``options_json`` is read as the node reads it (request.parse_options: credentials refused). Raises
    ``AdReelInputError`` naming the field for a job the node would refuse."""
    prov = PROVIDERS.get(provider)
    if prov is None:
        raise AdReelInputError("provider", f"unknown provider; choose one of {', '.join(PROVIDERS)}")
    opts = parse_options(options_json)
    chosen = opts.models.get(provider) or opts.model or model
    try:
        spec = prov.model_spec(chosen, "model")
    except AdReelInputError as exc:
        raise AdReelInputError("model", exc.message) from None
    if aspect_ratio not in spec.ratios:
        raise AdReelInputError("aspect_ratio", f"{prov.label} {spec.id} cannot render {aspect_ratio}; it offers "
                                               f"{', '.join(spec.ratios) or 'none'}")
    job_options = {**opts.shared, **opts.per_provider.get(provider, {})}
    budget, note = server_budget(max_cost_usd)
    out_scenes, costs = [], []
    for i, (seconds, narration) in enumerate(scenes):
        scene = StoryboardScene(index=i, segment="scene", start=0.0, duration=float(seconds), start_frame=0,
                                frame_count=1, narration=narration, image_prompt="the scene")
        job = RenderJob(scene=scene, provider=provider, model=spec.id, aspect_ratio=aspect_ratio,
                        seed=opts.seed, options=dict(job_options))
        duration, dnote = choose_duration(scene.duration, spec)
        plan = JobPlan(job=job, provider=prov, spec=spec, field_path=f"scenes[{i}]", key=None, base_url="",
                       duration=duration, image=None, image_mode=None, cost=CostEstimate(None, "not estimated"),
                       notes=[dnote] if dnote else [])
        prov.configure(plan, PlanContext())
        out_scenes.append({"usd": plan.cost.usd, "basis": plan.cost.basis, "requested_duration": plan.duration,
                           "notes": list(plan.notes)})
        costs.append(plan.cost)
    total, unknown = summarize(costs)
    return {"provider": provider, "model": spec.id, "aspect_ratio": aspect_ratio, "total_usd": total,
            "unknown": unknown, "scenes": out_scenes, "budget_usd": budget, "budget_note": note.lstrip(", "),
            "within_budget": unknown == 0 and total <= budget + 1e-9}


def estimate_query(query: Mapping[str, Any]) -> dict:
    """``GET /adreel/providers/estimate``'s parameters → ``estimate``; every one checked (known names
    only, once each, bounded sizes, finite numbers), else ``AdReelInputError`` naming it.

    provider, model; aspect_ratio (default 9:16); durations: seconds per scene, comma-separated (none: one
    scene of the model's shortest clip, "from …"); narrations: a JSON list of the scenes' narrations (HeyGen
    prices the spoken length); options_json: ProviderRender's widget; max_cost_usd: its budget (0: the
    server's ceiling)."""
    def one(name: str, default: Optional[str] = None, limit: int = 200) -> Optional[str]:
        values = query.getall(name, []) if hasattr(query, "getall") else ([query[name]] if name in query else [])
        if len(values) > 1:
            raise AdReelInputError(name, "is given more than once")
        if not values:
            return default
        text = str(values[0])
        if len(text) > limit:
            raise AdReelInputError(name, f"is {len(text)} characters, more than {limit}")
        return text

    unknown_names = sorted(set(query.keys()) - set(ESTIMATE_PARAMS))
    if unknown_names:
        raise AdReelInputError("query", f"holds a parameter this route does not take; it takes "
                                        f"{', '.join(ESTIMATE_PARAMS)}")
    provider = one("provider", "")
    if not provider:
        raise AdReelInputError("provider", "is required")
    model = (one("model", "", MAX_MODEL_CHARS) or "").strip()
    if not model:
        raise AdReelInputError("model", "is required")
    aspect = one("aspect_ratio", "9:16")
    if aspect not in ASPECT_RATIOS:
        raise AdReelInputError("aspect_ratio", f"is not one of {', '.join(ASPECT_RATIOS)}")
    durations_text = (one("durations", "", 16 * MAX_ESTIMATE_SCENES) or "").strip()
    durations = []
    for k, part in enumerate(p.strip() for p in durations_text.split(",")) if durations_text else ():
        try:
            d = float(part)
        except ValueError:
            raise AdReelInputError(f"durations[{k}]", "must be a number of seconds") from None
        if not math.isfinite(d) or d < 0 or d > MAX_SCENE_SECONDS:
            raise AdReelInputError(f"durations[{k}]", f"must be a finite number of seconds within 0..{MAX_SCENE_SECONDS:g}")
        durations.append(d)
    if len(durations) > MAX_ESTIMATE_SCENES:
        raise AdReelInputError("durations", f"{len(durations)} scenes, more than {MAX_ESTIMATE_SCENES}")
    narr_text = one("narrations", None, MAX_ESTIMATE_SCENES * MAX_NARRATION_CHARS)
    narrations: list[str] = []
    if narr_text is not None:
        try:
            narrations = json.loads(narr_text)
        except (ValueError, RecursionError):
            raise AdReelInputError("narrations", "must be a JSON list of strings") from None
        if not isinstance(narrations, list) or not all(isinstance(n, str) for n in narrations):
            raise AdReelInputError("narrations", "must be a JSON list of strings")
        if len(narrations) != len(durations):
            raise AdReelInputError("narrations", f"{len(narrations)} narrations for {len(durations)} durations")
        for k, n in enumerate(narrations):
            if len(n) > MAX_NARRATION_CHARS:
                raise AdReelInputError(f"narrations[{k}]", f"is {len(n)} characters, more than {MAX_NARRATION_CHARS}")
    scenes = [(d, narrations[k] if narrations else "") for k, d in enumerate(durations)] or [TYPICAL_SCENE]
    budget_text = one("max_cost_usd", "0", 32)
    try:
        budget = float(budget_text)
    except ValueError:
        raise AdReelInputError("max_cost_usd", "must be a number of USD") from None
    if not math.isfinite(budget) or budget < 0 or budget > MAX_BUDGET_USD:
        raise AdReelInputError("max_cost_usd", f"must be a finite number of USD within 0..{MAX_BUDGET_USD:g}")
    result = estimate(provider, model, scenes, aspect_ratio=aspect,
                      options_json=one("options_json", "", MAX_OPTIONS_CHARS) or "", max_cost_usd=budget)
    result["per_scene"] = not durations
    return result
