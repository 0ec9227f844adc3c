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
        raise AdReelInputError(field_name, "must be a finite price in USD, 0 or more")
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

