"""What size to sample a key image at, by model family and output aspect.

Image models are trained at one pixel budget and degrade away from it (SD 1.5
repeats subjects above ~768 px, SDXL goes soft below ~0.6 MP). So the key image
is sampled at the family's native budget, at the output's aspect ratio, then
cover-fitted to the output frame (1080×1920 etc.).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..models import AdReelInputError


@dataclass(frozen=True)
class Family:
    name: str
    label: str
    short_side: int | None = None   # budget as the short side (SD 1.x / 2.x)
    area: int | None = None         # budget as total pixels (SDXL and later)
    multiple: int = 64              # side granularity of trained buckets


FAMILIES: dict[str, Family] = {
    "sd15": Family("sd15", "SD 1.5", short_side=512),
    "sd2": Family("sd2", "SD 2.x", short_side=768),
    "sdxl": Family("sdxl", "SDXL", area=1024 * 1024),
    "sd3": Family("sd3", "SD 3", area=1024 * 1024),
    "flux": Family("flux", "Flux", area=1024 * 1024),
    "cascade": Family("cascade", "Stable Cascade", area=1024 * 1024),
    "qwen": Family("qwen", "Qwen-Image", area=1328 * 1328),
    "hunyuan_image": Family("hunyuan_image", "HunyuanImage 2.1", area=2048 * 2048),
    "other": Family("other", "image model", area=1024 * 1024),
}

# ComfyUI model-config class names (comfy.supported_models) → family; first match along the MRO wins.
CONFIG_FAMILY = {
    "SD15": "sd15", "SD20": "sd2", "SD21UnclipL": "sd2", "SD21UnclipH": "sd2", "LotusD": "sd2",
    "SDXL": "sdxl", "SDXLRefiner": "sdxl",  # SSD-1B, Vega, KOALA subclass SDXL
    "SD3": "sd3", "Flux": "flux", "FluxSchnell": "flux", "FluxInpaint": "flux", "Chroma": "flux",
    "Stable_Cascade_C": "cascade", "QwenImage": "qwen",
    "HunyuanImage21": "hunyuan_image",
}

MIN_SIDE = 64
MAX_SIDE = 4096


def family_from_config_names(names: list[str]) -> Family:
    """The family of a ComfyUI model config, given its class names most specific first."""
    for n in names:
        if n in CONFIG_FAMILY:
            return FAMILIES[CONFIG_FAMILY[n]]
    return FAMILIES["other"]


def _round(v: float, multiple: int) -> int:
    return max(multiple, int(round(v / multiple)) * multiple)


def sample_size(family: Family, out_width: int, out_height: int, short_side: int = 0) -> tuple[int, int]:
    """(width, height) to sample at: the family's budget (or ``short_side`` px) at the output aspect.

    Sides are multiples of 64 for a family budget (the trained buckets: SDXL
    9:16 → 768×1344, SD 1.5 9:16 → 512×896) and of 16 for an explicit short side.
    """
    if out_width <= 0 or out_height <= 0:
        raise AdReelInputError("scene", f"output size {out_width}x{out_height} is not positive")
    aspect = out_width / out_height
    if short_side:
        if not MIN_SIDE <= short_side <= MAX_SIDE:
            raise AdReelInputError("sample_size", f"must be 0 (by model family) or {MIN_SIDE}–{MAX_SIDE} px (got {short_side})")
        mult = 16
        s = _round(short_side, mult)
        long_ = _round(s * max(aspect, 1 / aspect), mult)
        w, h = (long_, s) if aspect >= 1 else (s, long_)
    elif family.short_side:
        s = family.short_side
        long_ = _round(s * max(aspect, 1 / aspect), family.multiple)
        w, h = (long_, s) if aspect >= 1 else (s, long_)
    else:
        w = _round(math.sqrt(family.area * aspect), family.multiple)
        h = _round(math.sqrt(family.area / aspect), family.multiple)
    return min(w, MAX_SIDE), min(h, MAX_SIDE)
