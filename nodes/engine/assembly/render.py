"""Rendering an ad end to end: storyboard + clips + narration + music + brand →
every requested aspect and format, subtitles, thumbnail and manifest.

Order of work: scene timing follows the narration; the audio is mixed once
(cheap, audio only); then each aspect is assembled in one pass that encodes
each of its formats once.
"""
from __future__ import annotations

import math
import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from typing import Any, Callable

from PIL import Image

from .encode import AssemblyExtras, EncodeSettings, Overlay, assemble, describe_file, still_card
from ..audio.mix import AudioClip, MixSettings, mix_audio, narration_track
from ..cloud.redaction import redact
from .cards import LOGO_POSITIONS, end_card, intro_card, logo_overlay
from .. import channels as channel_table
from .. import limits
from ..motion.clip_sources import refit
from ..media.frames import FRAMINGS
from ..media.fonts import DEFAULT_FAMILY, font_family_name, resolve_font
from ..models import ASPECT_RATIOS, AdReelInputError, RenderManifest, Storyboard, WidgetValues
from ..speech.spoken import display_form
from ..storage.manifest import public_form, write_manifest
from ..storyboard import LEAD_IN_SECONDS, retime_for_narration, size_for_short_side
from ..audio.subtitles import Cue, make_cues, max_line_units, write_ass, write_srt, write_vtt

SUBTITLE_MODES = ("burn + sidecar", "sidecar only", "off")


@dataclass
class RenderOptions:
    encode: EncodeSettings = field(default_factory=EncodeSettings)
    font: str | None = None
    subtitles: str = "burn + sidecar"
    subtitle_style: str = "box"
    mix: MixSettings = field(default_factory=MixSettings)
    logo_position: str = "top-right"
    logo_size: float = 0.22           # fraction of the frame width
    logo_opacity: float = 0.9
    end_card_seconds: float = 2.0
    intro_seconds: float = 0.0
    formats: tuple[str, ...] = ("mp4",)
    thumbnail: bool = True
    extra_aspects: tuple[str, ...] = ()
    framing: str = "cover"            # extra aspects: cover (crop) or contain (bars in the brief's first colour)
    metadata: dict[str, str] | None = None  # container tags of every MP4/WebM/MOV (mp4_metadata.workflow_tags)

    def __post_init__(self):
        checks = [("subtitles", self.subtitles, SUBTITLE_MODES), ("logo_position", self.logo_position, LOGO_POSITIONS),
                  ("framing", self.framing, FRAMINGS)]
        for name, val, allowed in checks:
            if val not in allowed:
                raise AdReelInputError(name, f"is not one of {', '.join(allowed)}")
        for a in self.extra_aspects:
            if a not in ASPECT_RATIOS:
                raise AdReelInputError("extra_aspects", f"holds an aspect that is not one of {', '.join(ASPECT_RATIOS)}")
        self.extra_aspects = tuple(dict.fromkeys(self.extra_aspects))  # "1:1, 1:1, …" is one aspect
        for name in ("logo_size", "logo_opacity", "end_card_seconds", "intro_seconds"):
            value = getattr(self, name)
            try:
                ok = math.isfinite(float(value))
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise AdReelInputError(name, "must be a finite number")
        if self.end_card_seconds < 0 or self.intro_seconds < 0:
            raise AdReelInputError("end_card_seconds", "must not be negative")


@dataclass(frozen=True)
class AssembleWidgets(WidgetValues):
    """FFmpegAssemble's widget values, one value each (the storyboard, clips, narration, music, logo and
    provider report are inputs, not widgets)."""
    filename_prefix: str = "AdReel/ad"
    preset: str = "medium"
    crf: int = 20
    subtitles: str = "burn + sidecar"
    subtitle_style: str = "box"
    music_volume_db: float = -6.0
    logo_position: str = "top-right"
    logo_size: float = 0.22
    logo_opacity: float = 0.9
    end_card_seconds: float = 2.0
    intro_seconds: float = 0.0
    webm: bool = False
    mov: bool = False
    hls: bool = False
    extra_aspects: str = ""
    framing: str = "cover"
    font: str = ""
    embed_workflow: bool = True

    def render_options(self, metadata: dict[str, str] | None) -> RenderOptions:
        """The render's options from these widgets; ``metadata``: the container tags (the workflow)."""
        formats = ("mp4",) + tuple(f for f, on in (("webm", self.webm), ("mov", self.mov), ("hls", self.hls)) if on)
        return RenderOptions(
            encode=EncodeSettings(preset=self.preset, crf=self.crf), font=self.font or None,
            subtitles=self.subtitles, subtitle_style=self.subtitle_style,
            mix=MixSettings(music_gain_db=self.music_volume_db), logo_position=self.logo_position,
            logo_size=self.logo_size, logo_opacity=self.logo_opacity, end_card_seconds=self.end_card_seconds,
            intro_seconds=self.intro_seconds, formats=formats, extra_aspects=parse_aspects(self.extra_aspects),
            framing=self.framing, metadata=metadata)


@dataclass
class RenderResult:
    storyboard: Storyboard
    files: dict[str, str]                 # kind → path, for the main aspect
    aspects: dict[str, dict[str, str]]    # aspect → its files
    manifest_path: str
    seconds: float
    notes: list[str]


def parse_aspects(text: str) -> tuple[str, ...]:
    """``"1:1, 16:9"`` → the distinct aspects, in order."""
    return tuple(dict.fromkeys(p.strip() for p in (text or "").replace(";", ",").split(",") if p.strip()))


ENCODED_FORMATS = ("mp4", "webm", "mov")  # HLS is cut from the MP4 without an encode


def render_plan(sb: Storyboard, extra_aspects: tuple[str, ...]) -> list[tuple[str, int, int]]:
    """(aspect, width, height) of every aspect one render encodes, the brief's first, then those its
    channels choose (when they chose the formats), then ``extra_aspects``."""
    chosen = channel_table.output_aspects(channel_table.known(sb.brief.channels)) \
        if sb.brief.formats_from_channels else []
    aspects = list(dict.fromkeys([sb.brief.aspect_ratio, *chosen, *extra_aspects]))
    cap = limits.MAX_EXTRA_ASPECTS.read()
    if len(aspects) - 1 > cap:
        field = "channels and extra_aspects" if len(chosen) > 1 else "extra_aspects"
        raise limits.LimitExceeded(f"{field}: {len(aspects) - 1} distinct extra aspects "
                                   f"({', '.join(aspects[1:])}); this server renders at most {cap} "
                                   "(ADREEL_MAX_EXTRA_ASPECTS)")
    short = min(sb.width, sb.height)
    return [(a, sb.width, sb.height) if n == 0 else (a, *size_for_short_side(a, short))
            for n, a in enumerate(aspects)]


def check_work(sb: Storyboard, plan: list[tuple[str, int, int]], formats: tuple[str, ...]) -> float:
    """The pixel-frames one render encodes (duration × fps × pixels × formats × aspects), or a
    ``LimitExceeded`` naming every factor when it is above ADREEL_MAX_PIXEL_FRAMES.

    Checked before any audio pass or encode starts."""
    encodes = sum(1 for f in dict.fromkeys(formats) if f in ENCODED_FORMATS) or 1
    pixels = sum(w * h for _, w, h in plan)
    work = float(sb.total_frames) * pixels * encodes
    cap = limits.MAX_PIXEL_FRAMES.read()
    if work > cap:
        sizes = " + ".join(f"{w}×{h}" for _, w, h in plan)
        raise limits.LimitExceeded(
            f"work per prompt: {sb.total_frames / sb.fps:.1f} s × {sb.fps} fps × ({sizes}) px × {encodes} "
            f"format{'s' if encodes > 1 else ''} ({', '.join(f for f in formats if f in ENCODED_FORMATS)}) "
            f"= {work:.3g} pixel-frames, more than this server allows per prompt ({cap:.3g}, "
            "ADREEL_MAX_PIXEL_FRAMES): shorten the ad, lower the resolution, or drop formats or aspects")
    return work


def subtitle_cues(sb: Storyboard, spans: list[tuple[float, float]],
                  plan: list[tuple[str, int, int]] | None = None) -> list[Cue]:
    """Cues of what was written (URLs shortened to host and path), timed to the voice; their lines fit
    the main aspect's subtitle box (and, when the channels chose the formats, every aspect's in ``plan``)."""
    sizes = [(w, h) for _, w, h in plan] if (plan and sb.brief.formats_from_channels) else [(sb.width, sb.height)]
    units = min(max_line_units(w, h, channel_table.brief_zone(sb.brief, w, h)) for w, h in sizes)
    cues = []
    for sc, (a, b) in zip(sb.scenes, spans):
        if b > a and sc.narration.strip():
            cues += make_cues(display_form(sc.narration), a, b, units)
    return cues


def _font_family(font: str | None) -> tuple[str, str | None]:
    """(family for libass, file to ship in a fonts dir or None)."""
    if not font:
        return DEFAULT_FAMILY, None
    face = resolve_font(font)
    if os.path.splitext(font.split("#")[0])[1].lower() in (".ttf", ".otf", ".ttc", ".otc"):
        return font_family_name(face) or DEFAULT_FAMILY, face.path
    return font.split(":")[0], None


MAX_VOICE_LABEL = 200


def scene_voices(narration: list[AudioClip | None] | None) -> list[dict]:
    """Who spoke each narrated scene, for the manifest: the voice as SceneNarration shows it, or
    "unknown" for another node's AUDIO; one line, redacted, at most MAX_VOICE_LABEL characters."""
    out = []
    for i, clip in enumerate(narration or []):
        if clip is None:
            continue
        label = " ".join(str(clip.voice or "unknown").split())
        label = redact(label)
        out.append({"scene": i, "voice": label[:MAX_VOICE_LABEL - 1] + "…" if len(label) > MAX_VOICE_LABEL else label})
    return out


@dataclass
class AdMedia:
    """What an ad is made of beside its storyboard and clips: the narration (one clip or None per scene),
    the music bed, the logo, and the provider records that go into the manifest."""
    narration: list[AudioClip | None] | None = None
    music: AudioClip | None = None
    logo: Image.Image | None = None
    providers: list[dict] | None = None


@dataclass
class RenderHooks:
    """How a render talks to its caller: ``progress(text, done, total)``, ``cancelled()``, and ``allowance``,
    the prompt's share of ADREEL_MAX_PIXEL_FRAMES (``budget.Allowance``)."""
    progress: Callable[[str, int, int], None] | None = None
    cancelled: Callable[[], bool] | None = None
    allowance: Any = None


def render_ad(sb: Storyboard, clips: list, out_path: str, work_dir: str, options: RenderOptions | None = None,
              media: AdMedia | None = None, hooks: RenderHooks | None = None) -> RenderResult:
    """Render every aspect and format of the ad from one clip per scene (CameraMoveClip,
    FittedFrameBatch, VideoFileSource: recipes of any length and size). This is the timing
    authority: each clip is refitted to the scene as retimed for the narration, and to each
    aspect's size — the main aspect in the clip's own framing, extra aspects in ``options.framing``.

    ``hooks.allowance``: the prompt's share of ADREEL_MAX_PIXEL_FRAMES, which every assembly of the
    prompt draws on: this render's pixel-frames are reserved there before anything runs."""
    import time
    t0 = time.monotonic()
    opt = options or RenderOptions()
    media = media or AdMedia()
    hooks = hooks or RenderHooks()
    narration = media.narration
    os.makedirs(work_dir, exist_ok=True)
    if len(clips) != len(sb.scenes):
        raise AdReelInputError("clips", f"{len(clips)} clips for {len(sb.scenes)} storyboard scenes")

    # 1. timing follows the voice
    if narration is not None:
        if len(narration) != len(sb.scenes):
            raise AdReelInputError("narration", f"{len(narration)} narration clips for {len(sb.scenes)} scenes: "
                                   "connect SceneNarration fed by StoryboardSplit's scenes")
        speech = [c.trimmed() if c is not None else None for c in narration]
        sb = retime_for_narration(sb, [c.duration if c is not None else 0.0 for c in speech])
    else:
        speech = None

    # the operator's ceilings, before any audio pass or encode: aspects and work per prompt
    plan = render_plan(sb, opt.extra_aspects)
    work = check_work(sb, plan, tuple(opt.formats))
    if hooks.allowance is not None:
        hooks.allowance.reserve(work, f"work per prompt: this assembly ({sb.total_frames / sb.fps:.1f} s, "
                                      f"{len(plan)} aspect(s), {', '.join(opt.formats)})")

    # 2. audio, once for all aspects
    run = _AdRender(sb, clips, out_path, work_dir, opt, media.logo, hooks, t0)
    t_audio = time.monotonic()
    duration = sb.total_frames / sb.fps
    voice, spans = (narration_track(sb, speech, LEAD_IN_SECONDS) if speech else (None, []))
    stop_mix = threading.Event()

    def mix():  # ffmpeg subprocesses: runs while the cards and subtitles are composed
        facts = mix_audio(duration, voice, media.music, run.audio_path, work_dir, opt.mix, stop=stop_mix)
        run.timings["audio"] = round(time.monotonic() - t_audio, 3)
        return facts

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="adreel-audio")
    loud_future = pool.submit(mix)
    pool.shutdown(wait=False)
    try:
        by_aspect, loud, cues = run.render_aspects(plan, speech, spans, loud_future)
    except BaseException:
        # stop the mix and wait for it: its ffmpeg must not outlive the work dir the caller removes next
        stop_mix.set()
        wait_futures([loud_future])
        for p in run.sidecar_parts.values():
            _remove(p)
        raise
    if media.music is None:
        run.notes.append("no music connected")
    return run.finish(by_aspect, [a for a, _, _ in plan], loud, media.providers, scene_voices(narration))


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _write_atomic_text(write: Callable[[str], None], path: str) -> str:
    """``write(part)`` into ``path.part``, fsynced; the caller renames it once the render succeeded."""
    part = f"{path}.part"
    write(part)
    with open(part, "rb+") as f:
        os.fsync(f.fileno())
    return part


class _AdRender:
    """One render's shared state once the timing is known: the clips, the options, the logo, the hooks,
    the mix's path, the sidecars being written, the subtitle cues, the timings and notes, the start time."""

    def __init__(self, sb: Storyboard, clips: list, out_path: str, work_dir: str, opt: RenderOptions,
                 logo: Image.Image | None, hooks: RenderHooks, t0: float):
        self.sb, self.clips, self.out_path, self.work_dir, self.opt, self.logo = sb, clips, out_path, work_dir, opt, logo
        self.progress, self.cancelled = hooks.progress, hooks.cancelled
        self.stem = os.path.splitext(out_path)[0]
        self.audio_path = os.path.join(work_dir, "mix.wav")
        self.timings: dict[str, float] = {}
        self.sidecar_parts: dict[str, str] = {}
        self.cues: list[Cue] = []
        self.font: tuple[str, str | None] = (DEFAULT_FAMILY, None)
        self.notes: list[str] = []
        self.t0 = t0

    def render_aspects(self, plan, speech, spans, loud_future):
        import time
        sb, opt, stem, progress, cancelled = self.sb, self.opt, self.stem, self.progress, self.cancelled
        # 3. subtitles (the sidecars are written as .part files and take their names after the encode)
        cues = subtitle_cues(sb, spans, plan) if (speech and opt.subtitles != "off") else []
        self.cues = cues
        sidecars = {}
        if cues:
            sidecars = {"srt": f"{stem}.srt", "vtt": f"{stem}.vtt"}
            self.sidecar_parts["srt"] = _write_atomic_text(lambda p: write_srt(cues, p), sidecars["srt"])
            self.sidecar_parts["vtt"] = _write_atomic_text(lambda p: write_vtt(cues, p), sidecars["vtt"])
        self.font = _font_family(opt.font)

        aspects = [a for a, _, _ in plan]
        by_aspect: dict[str, dict[str, str]] = {}
        total_frames_all = sb.total_frames * len(aspects)
        loud: dict = {}
        for n, (aspect, W, H) in enumerate(plan):
            if cancelled and cancelled():
                raise InterruptedError("render cancelled")
            target = self.out_path if n == 0 else f"{stem}_{aspect.replace(':', 'x')}.mp4"

            def prog(d, t, n=n, aspect=aspect):
                if progress:
                    progress(f"{aspect}: frame {d}/{t}", n * sb.total_frames + d, total_frames_all)

            loud = loud_future.result()  # the mix is ready by now (or we wait for it here)
            t_enc = time.monotonic()
            files = self.render_aspect((W, H), None if n == 0 else opt.framing, target,
                                       os.path.join(self.work_dir, f"aspect_{n}"),
                                       (None if loud.get("silent") else self.audio_path, loud.get("filter")), prog)
            self.timings[f"assemble {aspect}"] = round(time.monotonic() - t_enc, 3)
            if n == 0:
                files.update(sidecars)
            by_aspect[aspect] = files
        for kind, part in list(self.sidecar_parts.items()):
            os.replace(part, sidecars[kind])
            del self.sidecar_parts[kind]
        return by_aspect, loud, cues

    def render_aspect(self, size: tuple[int, int], framing: str | None, target: str, adir: str,
                      audio: tuple[str | None, str | None],
                      progress: Callable[[int, int], None] | None = None) -> dict[str, str]:
        """One aspect of the ad, encoded once into every format: the clips refitted to its size
        (``framing`` None: each clip's own), its burnt-in subtitles, cards and logo over the mixed audio
        (``audio``: the mix's path, None for silence, and the filter applied to it). Returns {kind: path}."""
        sb, opt, logo, cues = self.sb, self.opt, self.logo, self.cues
        W, H = size
        family, font_file = self.font
        asb = sb if (W, H) == (sb.width, sb.height) else sb.model_copy(update={"width": W, "height": H})
        os.makedirs(adir, exist_ok=True)
        extras = AssemblyExtras(formats=tuple(opt.formats), metadata=opt.metadata or None, font=opt.font)
        if cues and opt.subtitles == "burn + sidecar":
            extras.subtitles_path = os.path.join(adir, "subs.ass")
            if font_file:
                extras.fonts_dir = os.path.join(adir, "fonts")
                os.makedirs(extras.fonts_dir, exist_ok=True)
                shutil.copy(font_file, extras.fonts_dir)
            write_ass(cues, W, H, extras.subtitles_path, font=family, style=opt.subtitle_style,
                      zone=channel_table.brief_zone(sb.brief, W, H))
        end_frames = min(int(round(opt.end_card_seconds * sb.fps)), sb.total_frames // 2)
        intro_frames = min(int(round(opt.intro_seconds * sb.fps)), sb.total_frames // 3)
        end_start = sb.total_frames - end_frames
        if end_frames:
            extras.cards.append(still_card(end_card(sb.brief, W, H, logo, opt.font), end_start, sb.total_frames,
                                           max(1, round(0.4 * sb.fps))))
            extras.text_until = end_start / sb.fps
        if intro_frames:
            extras.cards.append(still_card(intro_card(sb.brief, W, H, logo, opt.font), 0, intro_frames, 1))
        if opt.logo_size > 0 and opt.logo_opacity > 0:
            lg, x, y = logo_overlay(sb.brief, logo, W, H, opt.logo_size, opt.logo_opacity, opt.logo_position,
                                    opt.font)
            lp = os.path.join(adir, "logo.png")
            lg.save(lp)
            extras.logo = Overlay(lp, x, y, intro_frames / sb.fps, end_start / sb.fps, slide_in=False)
        if opt.thumbnail:
            first = asb.scenes[0]
            extras.thumbnail_frame = max(first.start_frame + int(first.frame_count * 0.6), intro_frames + 1)
        extras.audio_path, extras.audio_filter = audio
        sources = [refit(c, sc, asb, framing) for c, sc in zip(self.clips, asb.scenes)]
        result = assemble(asb, sources, target, adir, encode=opt.encode, progress=progress,
                          cancelled=self.cancelled, extras=extras)
        return dict(result.files)

    def finish(self, by_aspect, aspects, loud: dict, providers, voices: list[dict] | None = None) -> RenderResult:
        """The manifest written (``loud``: the mix's loudness facts), and the result."""
        import time
        sb, opt, timings, cues, notes, t0 = self.sb, self.opt, self.timings, self.cues, self.notes, self.t0
        main_files = by_aspect[aspects[0]]
        manifest_path = f"{self.stem}.json"
        outputs = []
        for aspect, files in by_aspect.items():
            for kind, path in files.items():
                if kind == "hls":
                    for name in sorted(os.listdir(os.path.dirname(path))):
                        outputs.append(describe_file(f"hls:{aspect}", os.path.join(os.path.dirname(path), name)))
                else:
                    outputs.append(describe_file(f"{kind}:{aspect}", path))
        providers = list(providers or [])
        manifest = RenderManifest(
            brief=sb.brief, storyboard=sb, providers=providers,
            costs_usd=round(sum(r.get("actual_cost_usd") or 0 for r in providers), 4),
            models=sorted({f"{r['provider']}:{r['model']}" for r in providers if r.get("provider") not in (None, "camera")}),
            timings_seconds={"render": round(time.monotonic() - t0, 3), **timings},
            encode={"video": "h264 high yuv420p bt709", "preset": opt.encode.preset, "crf": opt.encode.crf,
                    "audio": "aac 48kHz stereo", "fps": sb.fps, "frames": sb.total_frames,
                    "formats": list(opt.formats), "aspects": aspects, "loudness": loud,
                    "subtitles": opt.subtitles if cues else "none"},
            voices=list(voices or []), outputs=outputs, notes=list(sb.notes) + notes)
        # anyone may read it (ComfyUI's /view, the bucket): paths relative to its folder, input images by name only
        write_manifest(manifest_path, public_form(manifest, manifest_path))
        return RenderResult(sb, main_files, by_aspect, manifest_path, time.monotonic() - t0, notes)
