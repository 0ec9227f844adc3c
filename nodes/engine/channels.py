"""Where an ad runs chooses its formats: per channel its aspects, its lengths and its safe zone.

One table, ``CHANNELS``. BrandBrief's ``channels`` widget names channels (any
case; the usual short names too: "reels", "ig", "fb feed"); with
``aspect_ratio`` ``auto`` the channels choose (``Brief.formats_from_channels``):

* the aspect: the first channel's first aspect; every other aspect the named
  channels show is rendered too, from the same storyboard (FFmpegAssemble's
  extra aspects);
* the length: a brief longer or shorter than a named channel takes is refused,
  naming the channel and its limits;
* the safe zone: every brand element of an aspect (headline, logo, CTA,
  subtitles, product photo) lies inside the zones of all the named channels
  that show that aspect (the larger margin at each edge).

An explicit aspect (``9:16``, ``4:5``, ``1:1``, ``16:9``) wins: the render is
that aspect in its own layout, as before channels chose anything, and what
does not suit a named channel (its aspect, its length) is a note in the
storyboard and the manifest.

The numbers are the platforms' published ad specs and safe-zone guides as
commonly documented (TikTok Ads Manager's in-feed spec, Meta's Ads Guide and
its Reels safe-zone guidance, YouTube's Shorts and in-stream ad specs); docs/channels.md lists them
with their sources. Margins are fractions of the frame (at 1080×1920, TikTok's
150 px right rail is 0.14 of the width).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Optional

from .media.layout import FrameLayout, SafeZone, frame_layout

MAX_CHANNELS = 12
AUTO = "auto"  # BrandBrief's aspect_ratio that lets the channels choose


@dataclass(frozen=True)
class Channel:
    id: str
    label: str
    aliases: tuple[str, ...]
    aspects: tuple[str, ...]                      # what it shows; the first is what it chooses
    zones: dict[str, SafeZone] = field(hash=False)  # per aspect: the edges its UI covers
    min_seconds: float                            # 0: no minimum
    max_seconds: Optional[float]                  # None: longer than AdReel renders (180 s)
    recommended: tuple[float, float]              # the length it recommends, seconds

    def limits(self) -> str:
        if self.min_seconds and self.max_seconds:
            return f"{self.min_seconds:g}–{self.max_seconds:g} s"
        if self.max_seconds:
            return f"up to {self.max_seconds:g} s"
        return f"at least {self.min_seconds:g} s" if self.min_seconds else "any length"


_FEED = SafeZone(top=0.05, right=0.06, bottom=0.05, left=0.06)  # the whole frame is seen; 64 px title-safe
CHANNELS: dict[str, Channel] = {c.id: c for c in (
    # TikTok in-feed ads: 9:16 1080×1920, 5–60 s (9–15 s recommended); keep 150 px clear at the top
    # (Following / For You), 440 px at the bottom (caption, sound), 150 px on the right (the action rail)
    Channel("tiktok", "TikTok", ("tik tok",), ("9:16",),
            {"9:16": SafeZone(top=0.08, right=0.14, bottom=0.23, left=0.06)}, 5, 60, (9, 15)),
    # Instagram and Facebook Reels ads: 9:16; Meta: leave the top 14 %, the bottom 35 % and 6 % at each
    # side free of text and logos; 0 s to 15 min (AdReel's 180 s is the limit), 15–30 s recommended
    Channel("reels", "Reels", ("instagram reels", "ig reels", "facebook reels", "fb reels"), ("9:16",),
            {"9:16": SafeZone(top=0.14, right=0.06, bottom=0.35, left=0.06)}, 0, None, (15, 30)),
    # YouTube Shorts ads: 9:16, at most 60 s; the title, channel and subscribe button cover the bottom
    # 25 % (480 px), the like/comment/share column about 15 % on the right, the search bar the top 10 %
    Channel("shorts", "Shorts", ("youtube shorts", "yt shorts"), ("9:16",),
            {"9:16": SafeZone(top=0.10, right=0.15, bottom=0.25, left=0.06)}, 0, 60, (15, 30)),
    # YouTube in-stream: 16:9 1920×1080, skippable ads have no maximum (under 3 min recommended); the
    # player's progress bar, "Skip ad" button and the advertiser's link sit over the bottom 15 %
    Channel("youtube", "YouTube", ("yt", "youtube in-stream", "youtube instream"), ("16:9",),
            {"16:9": SafeZone(top=0.05, right=0.05, bottom=0.15, left=0.05)}, 0, None, (15, 60)),
    # Instagram / Facebook feed video: 4:5 1080×1350 recommended (1:1 too), 1 s to 241 min, 15 s
    # recommended; no UI on the picture (header and caption are above and below it): a title-safe margin
    Channel("instagram feed", "Instagram feed", ("instagram", "ig", "ig feed", "insta"), ("4:5", "1:1"),
            {"4:5": _FEED, "1:1": _FEED}, 1, None, (6, 15)),
    Channel("facebook feed", "Facebook feed", ("facebook", "fb", "fb feed"), ("4:5", "1:1"),
            {"4:5": _FEED, "1:1": _FEED}, 1, None, (6, 15)),
)}
_BY_NAME = {n: c for c in CHANNELS.values() for n in (c.id, c.label.lower(), *c.aliases)}


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", str(name).strip().lower())


def known_names() -> str:
    return ", ".join(c.label for c in CHANNELS.values())


def lookup(name: str) -> Optional[Channel]:
    return _BY_NAME.get(_key(name))


def resolve(names: Iterable[str]) -> list[Channel]:
    """The named channels, in order, each once; a ValueError naming the position of a name that is no
    channel AdReel knows (the name itself is not repeated)."""
    names = list(names)
    if len(names) > MAX_CHANNELS:
        raise ValueError(f"at most {MAX_CHANNELS} channels")
    out: list[Channel] = []
    for i, name in enumerate(names, start=1):
        ch = lookup(name)
        if ch is None:
            raise ValueError(f"channel {i} is not one AdReel knows; use {known_names()} (separated by commas)")
        if ch not in out:
            out.append(ch)
    return out


def known(names: Iterable[str]) -> list[Channel]:
    """The named channels AdReel knows, in order (the brief's own check reports the others)."""
    out: list[Channel] = []
    for name in names:
        ch = lookup(name)
        if ch is not None and ch not in out:
            out.append(ch)
    return out


def output_aspects(channels: list[Channel]) -> list[str]:
    """Every aspect the channels choose, the first channel's first: each channel's own first aspect."""
    return list(dict.fromkeys(c.aspects[0] for c in channels))


def safe_zone(channels: list[Channel], aspect: str) -> Optional[SafeZone]:
    """The zone clear of every named channel's UI that shows ``aspect``; None when none shows it."""
    zone = None
    for c in channels:
        z = c.zones.get(aspect)
        if z is not None:
            zone = z if zone is None else zone.union(z)
    return zone


def length_problem(channels: list[Channel], seconds: float) -> Optional[str]:
    """Why ``seconds`` is a length some named channel does not take, or None."""
    bad = [c for c in channels if seconds < c.min_seconds or (c.max_seconds and seconds > c.max_seconds)]
    if not bad:
        return None
    lo = max(c.min_seconds for c in channels)
    tops = [c.max_seconds for c in channels if c.max_seconds]
    fit = (f"{lo:g}–{min(tops):g} s" if lo else f"at most {min(tops):g} s") if tops else f"at least {lo:g} s"
    which = "; ".join(f"{c.label} takes {c.limits()}" for c in bad)
    if tops and lo > min(tops):
        return f"{seconds:g} s does not suit every named channel ({which}), and no length suits them all: " \
               "name fewer channels, or choose the aspect_ratio yourself"
    return f"{seconds:g} s does not suit every named channel ({which}): make the ad {fit}, or name other channels"


def aspect_of(width: int, height: int) -> str:
    """The aspect name of a frame size (the nearest of the channels' aspects)."""
    ratio = width / height
    names = {a for c in CHANNELS.values() for a in c.aspects} | {"9:16", "4:5", "1:1", "16:9"}

    def value(a: str) -> float:
        w, h = a.split(":")
        return int(w) / int(h)

    return min(sorted(names), key=lambda a: abs(value(a) - ratio))


def brief_zone(brief, width: int, height: int) -> Optional[SafeZone]:
    """The safe zone of a ``width``×``height`` render of ``brief`` (a ``models.Brief``): its channels'
    when they chose the formats, else None (the aspect's own layout)."""
    if not getattr(brief, "formats_from_channels", False):
        return None
    return safe_zone(known(brief.channels), aspect_of(width, height))


def zone_margins(zone: Optional[SafeZone]) -> Optional[tuple[float, float, float, float]]:
    """A zone as plain data (``SceneSpec.safe_zone``): (top, right, bottom, left)."""
    return None if zone is None else (zone.top, zone.right, zone.bottom, zone.left)


def brief_layout(brief, width: int, height: int) -> FrameLayout:
    """Where things go in a ``width``×``height`` render of ``brief``."""
    return frame_layout(width, height, brief_zone(brief, width, height))


def notes(brief) -> list[str]:
    """What a user should know of the channels of a brief: with an explicit aspect, the named channels
    that show another one, and lengths a channel does not take; with channels choosing, lengths outside
    a channel's recommended range."""
    chosen = known(brief.channels)
    out = []
    secs = brief.duration_seconds
    if getattr(brief, "formats_from_channels", False):
        for c in chosen:
            lo, hi = c.recommended
            if not lo <= secs <= hi:
                out.append(f"{c.label} recommends {lo:g}–{hi:g} s; this ad lasts {secs:g} s")
        return out
    for c in chosen:
        if brief.aspect_ratio not in c.aspects:
            out.append(f"{c.label} shows {' or '.join(c.aspects)}; this ad is {brief.aspect_ratio} (aspect_ratio "
                       "chosen; set it to auto to let the channels choose)")
        problem = length_problem([c], secs)
        if problem:
            out.append(f"{c.label} takes {c.limits()}; this ad lasts {secs:g} s")
    return out
