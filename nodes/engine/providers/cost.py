"""Published prices and the cost estimate made before anything is submitted.

Sources (see shared/reference/provider-contracts.md): Luma per-Mpx rates
(Comfy-Org docs pricing page), Runway credits per second at $0.01 a credit,
HeyGen credits per minute billed in 30 s steps, fal per-video / per-second
prices, Gemini Veo per-second prices, and a small Replicate table. Prices
change: every estimate carries its ``basis`` so a user can see what was
assumed, and a price this table does not know is reported as unknown — never
guessed. A budget (``max_cost_usd``) cannot be checked against an unknown price,
so a run with a budget and an unknown price is refused until a price is given
(Replicate: ``options={"price_usd_per_run": …}`` or ``"price_usd_per_second"``).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from .. import limits

# --- Luma: USD = W × H × 24 fps × seconds / 1e6 × rate --------------------------------
LUMA_USD_PER_MPX = {"ray-2": 0.0064, "ray-flash-2": 0.0022}
LUMA_FPS = 24
LUMA_PIXELS = {"540p": 960 * 540, "720p": 1280 * 720, "1080p": 1920 * 1080, "4k": 3840 * 2160}

# --- Runway: credits per second of output, $0.01 a credit --------------------------------
RUNWAY_USD_PER_CREDIT = 0.01
RUNWAY_CREDITS_PER_SECOND = {"gen4_turbo": 5, "veo3": 40}

# --- HeyGen: credits per minute, billed in 30 s increments ------------------------------
HEYGEN_CREDITS_PER_MINUTE = {"avatar": 1.0, "talking_photo": 0.2}
HEYGEN_BILLING_STEP_S = 30
HEYGEN_USD_PER_CREDIT = 0.99  # Pro plan: $99 a month for 100 credits (Scale: $330 / 660 = $0.50)

# --- fal.ai: per video, or a base price for 5 s plus a price per extra second -----------
FAL_PER_VIDEO = {"fal-ai/stable-video": 0.075}
FAL_KLING = {  # (USD for the first 5 s, USD per extra second)
    "fal-ai/kling-video/v2.1/standard/image-to-video": (0.28, 0.056),
    "fal-ai/kling-video/v2.1/pro/image-to-video": (0.49, 0.098),
}

# --- Google Veo (Gemini API): USD per second of output, audio included -----------------
VEO_USD_PER_SECOND = {
    "veo-3.1-generate-preview": 0.40,
    "veo-3.1-fast-generate-preview": 0.15,
    "veo-3.0-generate-001": 0.40,
    "veo-3.0-fast-generate-001": 0.15,  # assumed equal to Veo 3.1 Fast (no separate published figure)
    "veo-2.0-generate-001": 0.35,
}
VEO_4K_USD_PER_SECOND = {"veo-3.1-generate-preview": 0.60}

# --- Replicate: per model; no global rate exists ---------------------------------------
REPLICATE_PRICES: dict[str, dict[str, float]] = {
    "minimax/video-01": {"per_run": 0.50},  # third-party figure
}


@dataclass(frozen=True)
class CostEstimate:
    usd: Optional[float]  # None: unknown; else a finite number ≥ 0 (a NaN or negative cost cannot be built)
    basis: str  # how it was computed, in words

    def __post_init__(self):
        if self.usd is not None and not (isinstance(self.usd, (int, float)) and math.isfinite(self.usd) and self.usd >= 0):
            raise ValueError(f"a cost must be a finite number of USD, 0 or more (got {self.usd!r})")

    @property
    def known(self) -> bool:
        return self.usd is not None


def _usd(x: float) -> float:
    return round(x + 1e-12, 4)


def require_price(value: Any, field_name: str) -> float:
    """A price option (USD, credits): a finite number ≥ 0, else an error naming ``field_name``.

    ``float(x) < 0`` lets NaN through (every comparison with NaN is False) and
    a budget check ``total > max`` is then False too; a negative price would
    enlarge what the other scenes may spend. Both are refused here, as is inf.
    """
    from ..models import AdReelInputError  # late: the data model imports nothing of the providers

    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise AdReelInputError(field_name, f"must be a price in USD, 0 or more (got {type(value).__name__})")
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise AdReelInputError(field_name, "must be a price in USD, 0 or more") from None
    if not math.isfinite(f) or f < 0:
        raise AdReelInputError(field_name, f"must be a finite price in USD, 0 or more (got {value!r})")
    return f


def luma(model: str, resolution: str, seconds: float) -> CostEstimate:
    rate = LUMA_USD_PER_MPX[model]
    px = LUMA_PIXELS[resolution]
    usd = px * LUMA_FPS * seconds / 1e6 * rate
    return CostEstimate(_usd(usd), f"Luma {model}: {px / 1e6:.3f} Mpx × {LUMA_FPS} fps × {seconds:g} s × ${rate}/Mpx")


def runway(model: str, seconds: float) -> CostEstimate:
    credits = RUNWAY_CREDITS_PER_SECOND[model] * seconds
    return CostEstimate(
        _usd(credits * RUNWAY_USD_PER_CREDIT),
        f"Runway {model}: {RUNWAY_CREDITS_PER_SECOND[model]} credits/s × {seconds:g} s = {credits:g} credits at ${RUNWAY_USD_PER_CREDIT}/credit",
    )


def heygen(kind: str, seconds: float, usd_per_credit: Optional[float] = None) -> CostEstimate:
    per_credit = HEYGEN_USD_PER_CREDIT if usd_per_credit is None else require_price(usd_per_credit, "usd_per_credit")
    billed = max(1, math.ceil(seconds / HEYGEN_BILLING_STEP_S - 1e-9)) * HEYGEN_BILLING_STEP_S
    credits = HEYGEN_CREDITS_PER_MINUTE[kind] * billed / 60.0
    return CostEstimate(
        _usd(credits * per_credit),
        f"HeyGen {kind}: {seconds:.1f} s billed as {billed} s × {HEYGEN_CREDITS_PER_MINUTE[kind]:g} credit/min "
        f"= {credits:g} credits at ${per_credit:g}/credit",
    )


def fal(model: str, seconds: Optional[float]) -> CostEstimate:
    if model in FAL_PER_VIDEO:
        return CostEstimate(FAL_PER_VIDEO[model], f"fal {model}: ${FAL_PER_VIDEO[model]} per video")
    base, extra = FAL_KLING[model]
    secs = max(5.0, float(seconds or 5.0))
    usd = base + (secs - 5.0) * extra
    return CostEstimate(_usd(usd), f"fal {model}: ${base} for 5 s + ${extra}/s beyond (requested {secs:g} s)")


def veo(model: str, seconds: float, resolution: str = "720p") -> CostEstimate:
    rate = VEO_4K_USD_PER_SECOND.get(model) if resolution == "4k" else None
    rate = rate if rate is not None else VEO_USD_PER_SECOND[model]
    return CostEstimate(_usd(rate * seconds), f"Google Veo {model}: ${rate}/s × {seconds:g} s")


def replicate(model_ref: str, seconds: Optional[float], options: Mapping[str, Any]) -> CostEstimate:
    """From the job's price override, else the table, else unknown."""
    name = model_ref.split(":", 1)[0]
    if options.get("price_usd_per_run") is not None:
        p = require_price(options["price_usd_per_run"], "price_usd_per_run")
        return CostEstimate(_usd(p), f"Replicate {name}: ${p:g} per run (given in the job options)")
    if options.get("price_usd_per_second") is not None:
        p = require_price(options["price_usd_per_second"], "price_usd_per_second")
        s = require_price(seconds or 0, "duration")
        return CostEstimate(_usd(p * s), f"Replicate {name}: ${p:g}/s × {s:g} s (given in the job options)")
    row = REPLICATE_PRICES.get(name)
    if row and "per_run" in row:
        return CostEstimate(row["per_run"], f"Replicate {name}: ${row['per_run']:g} per run (AdReel price table)")
    if row and "per_second" in row and seconds:
        return CostEstimate(_usd(row["per_second"] * seconds), f"Replicate {name}: ${row['per_second']:g}/s × {seconds:g} s")
    return CostEstimate(
        None,
        f"unknown price: Replicate prices each model separately and AdReel has no price for {name}; "
        "pass options price_usd_per_run or price_usd_per_second to budget it",
    )


def summarize(estimates: list[CostEstimate]) -> tuple[float, int]:
    """(sum of the known estimates, number of unknown ones)."""
    known = sum(e.usd for e in estimates if e.usd is not None)
    return _usd(known), sum(1 for e in estimates if e.usd is None)


def server_budget(widget_usd: Optional[float]) -> tuple[float, str]:
    """(the budget a run may spend, a note when the server ceiling set it). ``None`` / 0 = the ceiling.

    The widget can only lower the operator's ``ADREEL_MAX_COST_USD``; NaN, inf or a negative number
    count as "no budget of my own", i.e. the ceiling — never "unlimited".
    """
    budget = limits.effective_budget(0.0 if widget_usd is None else widget_usd)
    ceiling = limits.MAX_COST_USD.read()
    try:
        asked = float(widget_usd) if widget_usd is not None else 0.0
    except (TypeError, ValueError):
        asked = 0.0
    note = f", the server ceiling {limits.MAX_COST_USD.env}" if budget >= ceiling and not (0 < asked <= ceiling) else ""
    return budget, note


# --- the editor's cost badge: the same planning, without keys, images or the network -----
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
    from ..models import AdReelInputError, StoryboardScene  # late: the data model imports nothing of the providers
    from . import PROVIDERS
    from .base import JobPlan, PlanContext, choose_duration
    from .jobs import RenderJob
    from .request import parse_options

    prov = PROVIDERS.get(provider)
    if prov is None:
        raise AdReelInputError("provider", f"unknown provider {provider!r}; choose one of {', '.join(PROVIDERS)}")
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
    out_scenes, total, unknown = [], 0.0, 0
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
        if plan.cost.usd is None:
            unknown += 1
        else:
            total += plan.cost.usd
    total = _usd(total)
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
    from ..models import ASPECT_RATIOS, AdReelInputError

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
        raise AdReelInputError(unknown_names[0][:40], f"is not a parameter of this route ({', '.join(ESTIMATE_PARAMS)})")
    provider = one("provider", "")
    if not provider:
        raise AdReelInputError("provider", "is required")
    model = (one("model", "", MAX_MODEL_CHARS) or "").strip()
    if not model:
        raise AdReelInputError("model", "is required")
    aspect = one("aspect_ratio", "9:16")
    if aspect not in ASPECT_RATIOS:
        raise AdReelInputError("aspect_ratio", f"{aspect!r} is not one of {', '.join(ASPECT_RATIOS)}")
    durations_text = (one("durations", "", 16 * MAX_ESTIMATE_SCENES) or "").strip()
    durations = []
    for k, part in enumerate(p.strip() for p in durations_text.split(",")) if durations_text else ():
        try:
            d = float(part)
        except ValueError:
            raise AdReelInputError(f"durations[{k}]", f"must be a number of seconds (got {part[:20]!r})") from None
        if not math.isfinite(d) or d < 0 or d > MAX_SCENE_SECONDS:
            raise AdReelInputError(f"durations[{k}]", f"must be a finite number of seconds within 0..{MAX_SCENE_SECONDS:g}"
                                                      f" (got {part[:20]!r})")
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
        raise AdReelInputError("max_cost_usd", f"must be a number (got {budget_text[:20]!r})") from None
    if not math.isfinite(budget) or budget < 0 or budget > MAX_BUDGET_USD:
        raise AdReelInputError("max_cost_usd", f"must be a finite number of USD within 0..{MAX_BUDGET_USD:g} "
                                               f"(got {budget_text[:20]!r})")
    result = estimate(provider, model, scenes, aspect_ratio=aspect,
                      options_json=one("options_json", "", MAX_OPTIONS_CHARS) or "", max_cost_usd=budget)
    result["per_scene"] = not durations
    return result
