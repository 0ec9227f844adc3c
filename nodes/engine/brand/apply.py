"""A brand kit applied to a brief's values (BrandBrief), with one precedence rule:

* the kit decides how the brand looks and sounds: its name, palette, logo, fonts, voice, music and tone
  replace BrandBrief's widgets and images wherever the kit sets them (a field the kit leaves empty keeps
  the brief's own);
* the call to action is the one field of a single ad: a ``cta`` you typed or linked (ProductPage's) wins;
  left at the widget's default or empty, the kit's CTA is used;
* the brief's brand, product and CTA may not use a word the kit never uses (an error naming the field).
"""
from __future__ import annotations

from ..models import AdReelInputError, BrandRules
from .kit import BrandKit
from .rules import banned_word


def brief_values(values: dict, kit: BrandKit, cta_default: str) -> dict:
    """``values`` (BrandBrief's, as ``Brief`` takes them) with ``kit`` applied by the module's rule."""
    out = dict(values)
    out["brand"] = kit.name
    if kit.palette:
        out["brand_colors"] = list(kit.palette)
    if kit.tone:
        out["tone"] = kit.tone
    cta = str(out.get("cta") or "").strip()
    if kit.cta and (not cta or cta == cta_default.strip()):
        out["cta"] = kit.cta
    for fname in ("brand", "product", "cta"):
        word = banned_word(str(out.get(fname) or ""), kit.words_never)
        if word:
            raise AdReelInputError(fname, f'uses "{word}", a word brand kit {kit.name} never uses')
    return out


def rules_for(kit: BrandKit, *, font: str = "", music_path: str | None = None,
              passages: list[str] | None = None) -> BrandRules:
    """What the brief carries of ``kit`` past its widgets (the node layer resolved the files)."""
    return BrandRules(name=kit.name, voice=kit.voice, font=font, music_path=music_path,
                      words_to_use=list(kit.words_to_use), words_never=list(kit.words_never),
                      legal_lines=list(kit.legal_lines), passages=list(passages or []))
