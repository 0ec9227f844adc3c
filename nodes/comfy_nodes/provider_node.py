"""ProviderRender: scenes (+ key images) → one VIDEO per scene from a cloud provider.

Luma, Runway, HeyGen, fal.ai, Replicate, Google Veo — or ``auto``: per scene the
local camera move or a provider, by budget and quality, falling back along a
chain. The node takes the whole scene list at once (``is_input_list``) so that
the estimate and the budget cover the whole run and are checked before any
request; the engine then renders the scenes concurrently under a per-provider
cap and returns them in scene order. Keys come from the environment or the
secrets file only — never from a widget.
"""
from __future__ import annotations

import logging
import os
import time

import numpy as np

from ..engine.keyimage import compose_key_image, load_image_file
from ..engine.limits import require_finite
from ..engine.models import AdReelInputError, SceneSpec
from ..engine.motion import CameraMoveClip
from ..engine.providers import PROVIDERS, ProgressEvent, ProviderInterrupted, list_models, redact
from ..engine.providers.routes import QUALITIES, RoutePlan, SceneRequest, plan_routes, render_routes
from ..engine.providers.request import candidates, parse_options, poll_interval, report_text
from ..engine.storage.hosting import image_host_from_environment
from .api import (
    CATEGORY,
    InputImpl,
    SceneType,
    check_combo_inputs,
    interrupted,
    io,
    output_directory,
    progress_bar,
    raise_if_interrupted,
    send_progress_text,
    temp_directory,
    update_bar_keeping_interrupt,
)
from .convert import image_to_rgb, save_image_input
from .video import RenderOnDemandVideo

logger = logging.getLogger("adreel.providers")

PROVIDER_CHOICES = [*PROVIDERS, "auto"]
MODEL_CHOICES = list(dict.fromkeys(m for models in list_models().values() for m in models))
FALLBACKS = ["error", "camera move"]
CLIP_SUBFOLDER = os.path.join("AdReel", "provider_clips")
_ASPECTS = {"9:16": 9 / 16, "1:1": 1.0, "16:9": 16 / 9}


def aspect_of(spec: SceneSpec) -> str:
    ratio = spec.width / spec.height
    return min(_ASPECTS, key=lambda a: abs(_ASPECTS[a] - ratio))


def split_images(key_images) -> list:
    """IMAGE inputs (a list of batches) → single images (1, H, W, C)."""
    flat = []
    for batch in key_images or []:
        if batch is None:
            continue
        for b in range(int(batch.shape[0])):
            flat.append(batch[b:b + 1])
    return flat


def key_image_files(key_images, specs: list[SceneSpec]) -> tuple[list, list]:
    """(the IMAGE for each scene or None, its PNG in ComfyUI's temp folder or None)."""
    images = split_images(key_images)
    if images and len(images) not in (1, len(specs)):
        raise AdReelInputError("key_images", f"{len(images)} images for {len(specs)} scenes: connect one per "
                                             "scene (SceneKeyImage fed by StoryboardSplit) or a single image")
    per_scene = [images[i] if len(images) > 1 else (images[0] if images else None) for i in range(len(specs))]
    folder = os.path.join(temp_directory(), "adreel_key_images")
    paths = [save_image_input(img, folder, f"scene{spec.scene.index:03d}") if img is not None else None
             for img, spec in zip(per_scene, specs)]
    return per_scene, paths


# ------------------------------------------------------------------ progress on the node
class ProgressBoard:
    """The node's progress text (estimate, then one line per scene) and bar."""

    def __init__(self, node_id: str | None, plan: RoutePlan, title: str):
        self.node_id = node_id
        self.title = title
        self.estimate = plan.describe()
        self.lines = {r.scene.index: ("camera move (local, $0.00)" if r.pick.candidate.is_camera else f"{r.pick.candidate}: waiting")
                      for r in plan.routes}
        self.fractions = {r.scene.index: (1.0 if r.pick.candidate.is_camera else 0.0) for r in plan.routes}
        self.bar = progress_bar(100 * max(1, len(plan.routes))) if node_id else None
        self.saw_interrupt = False
        self.footer = ""
        self._first_fraction: dict[int, tuple[float, float]] = {}  # scene → (elapsed, fraction) first reported

    def text(self) -> str:
        body = "\n".join(f"scene {i}: {line}" for i, line in sorted(self.lines.items()))
        return "\n".join(x for x in (self.title, self.estimate.splitlines()[0], body, self.footer) if x)

    def show(self, text: str | None = None) -> None:
        if self.node_id:
            send_progress_text(text if text is not None else self.text(), self.node_id)

    def __call__(self, ev: ProgressEvent) -> None:
        if ev.status == "fallback":
            self.lines[ev.scene_index] = ev.message.split(": ", 1)[-1]
        else:
            parts = [f"{ev.provider} {ev.model}", ev.status]
            if ev.fraction is not None:
                parts[-1] += f" {ev.fraction * 100:.0f}%"
            parts.append(f"{ev.elapsed:.0f} s")
            remaining = self._remaining(ev)
            if remaining is not None and ev.status not in ("done", "cancelled"):
                parts.append(f"~{remaining:.0f} s left")
            if ev.cost_usd is not None:
                parts.append(f"${ev.cost_usd:.2f}")
            if ev.job_id:
                parts.append(f"job {ev.job_id}")
            self.lines[ev.scene_index] = " · ".join(parts)
            if ev.status == "done":
                self.fractions[ev.scene_index] = 1.0
            elif ev.fraction is not None:
                self.fractions[ev.scene_index] = min(0.99, ev.fraction)
            elif ev.remaining:
                self.fractions[ev.scene_index] = min(0.95, ev.elapsed / (ev.elapsed + ev.remaining))
        self.show()
        if self.bar is not None and not self.saw_interrupt:
            value = int(100 * sum(self.fractions.values()))
            if not update_bar_keeping_interrupt(self.bar, value):
                self.saw_interrupt = True

    def _remaining(self, ev: ProgressEvent) -> float | None:
        """From the provider's progress rate since its first report (a job may already be part done
        when it is first seen running); else the engine's estimate."""
        if ev.fraction is not None and 0 < ev.fraction < 1:
            t0, f0 = self._first_fraction.setdefault(ev.scene_index, (ev.elapsed, ev.fraction))
            if ev.fraction > f0 + 0.01 and ev.elapsed > t0:
                return (1 - ev.fraction) * (ev.elapsed - t0) / (ev.fraction - f0)
        return ev.remaining

    def interrupted(self) -> bool:
        return self.saw_interrupt or interrupted()


# ------------------------------------------------------------------ outputs
class ProviderVideo(InputImpl.VideoFromFile):
    """A provider's clip on disk, carrying its secret-free job record (``provider_record``)."""

    def __init__(self, path: str, record: dict):
        super().__init__(path)
        self.provider_record = record


def camera_clip(spec: SceneSpec, image) -> RenderOnDemandVideo:
    """The local camera move over the key image (composed when none was connected)."""
    sc = spec.scene
    if image is not None:
        rgb = image_to_rgb(image)
    else:
        product = load_image_file(spec.product_image_path, "brief.product_image") if spec.product_image_path else None
        logo = load_image_file(spec.logo_path, "brief.logo") if spec.logo_path else None
        rgb = np.asarray(compose_key_image(sc, spec.width, spec.height, spec.brand, spec.product,
                                           product_image=product, logo=logo, seed=0))
    clip = CameraMoveClip(rgb, sc.camera, sc.frame_count, spec.fps, spec.width, spec.height)
    return RenderOnDemandVideo(clip, f"scene {sc.index} {clip.move} (camera fallback)")


# ------------------------------------------------------------------ the node
class ProviderRender(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ProviderRender",
            display_name="Provider Render (cloud video)",
            category=CATEGORY,
            description="Renders every scene with a cloud video API — Luma, Runway, HeyGen, fal.ai, Replicate, "
                        "Google Veo — or, with provider 'auto', picks per scene a provider or the local camera move "
                        "by budget and quality. The cost is estimated and checked against max_cost_usd before "
                        "anything is sent; scenes render concurrently. Keys come from the environment "
                        "(RUNWAY_API_KEY, …) or the secrets file, never from the workflow.",
            is_input_list=True,
            inputs=[
                SceneType.Input("scenes", tooltip="StoryboardSplit's scenes (the whole list)."),
                io.Combo.Input("provider", options=PROVIDER_CHOICES, default="runway",
                               tooltip="'auto': per scene a provider from the chain or the camera move."),
                io.Combo.Input("model", options=MODEL_CHOICES, default="gen4_turbo",
                               tooltip="The provider's model (ignored by 'auto', which uses the chain). Another "
                                       "Replicate model: options_json {\"replicate\": {\"model\": \"owner/name:version\"}}."),
                io.Float.Input("max_cost_usd", default=2.0, min=0.0, max=10000.0, step=0.05,
                               tooltip="Budget for the whole run, checked against the estimate before anything is "
                                       "sent. It can only lower the server's ceiling (ADREEL_MAX_COST_USD, set by "
                                       "the operator); 0 = that ceiling. Paid providers run only when the operator "
                                       "sets ADREEL_PAID_PROVIDERS=1."),
                io.Combo.Input("fallback", options=FALLBACKS, default="error",
                               tooltip="When a scene cannot be rendered (no key, over budget, failed, timed out): "
                                       "fail the prompt, or use the local camera move over the key image."),
                io.Combo.Input("quality", options=list(QUALITIES), default="balanced",
                               tooltip="For 'auto': best = the chain's order; balanced = the camera move for CTA / "
                                       "static scenes; budget = that, and the cheapest provider first."),
                io.String.Input("chain", default="", multiline=False,
                                tooltip="For 'auto': candidates in order, e.g. 'runway:gen4_turbo, luma:ray-flash-2, "
                                        "camera'. Empty: a default chain for the quality. Candidates without a key "
                                        "are skipped."),
                io.Int.Input("timeout_s", default=900, min=30, max=7200, step=30,
                             tooltip="Longest wait per scene; the remote job is cancelled after it."),
                io.Image.Input("key_images", optional=True,
                               tooltip="One key image per scene (SceneKeyImage), or one for all scenes."),
                io.String.Input("options_json", default="", multiline=True, optional=True,
                                tooltip='Provider options, never keys: {"seed": 7, "resolution": "1080p", '
                                        '"heygen": {"avatar_id": "…", "voice_id": "…"}, "replicate": '
                                        '{"model": "owner/name", "price_usd_per_run": 0.5}}'),
            ],
            outputs=[
                io.Video.Output(display_name="videos", is_output_list=True),
                io.String.Output(display_name="report"),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, provider, model, fallback, quality, max_cost_usd=None, chain=None, options_json=None):
        first = lambda v: v[0] if isinstance(v, list) and v else v  # noqa: E731
        budget = first(max_cost_usd)
        if budget is not None:
            try:  # NaN passes ComfyUI's min/max check; naming the input here also skips that check
                if require_finite(budget, "max_cost_usd") < 0:
                    return "max_cost_usd: must be 0 (the server's ceiling) or more"
            except ValueError as exc:
                return str(exc)
        combos = check_combo_inputs(cls, provider=provider, model=model, fallback=fallback, quality=quality)
        if combos is not True:
            return combos
        p, m, fb, q = first(provider), first(model), first(fallback), first(quality)
        if None in (p, m, fb, q):
            return True
        try:
            opts = parse_options(first(options_json) or "")
            candidates(p, m, fb, q, first(chain) or "", opts)
        except AdReelInputError as exc:
            return str(exc)
        return True

    @classmethod
    async def execute(cls, scenes, provider, model, max_cost_usd, fallback, quality, chain, timeout_s,
                      key_images=None, options_json=None) -> io.NodeOutput:
        provider, model, fallback, quality = provider[0], model[0], fallback[0], quality[0]
        chain, timeout_s, budget = chain[0], int(timeout_s[0]), require_finite(max_cost_usd[0], "max_cost_usd")
        specs = list(scenes or [])
        if not specs:
            raise AdReelInputError("scenes", "no scenes: connect StoryboardSplit's scenes output")
        opts = parse_options((options_json or [""])[0])
        cands = candidates(provider, model, fallback, quality, chain, opts)

        per_scene, paths = key_image_files(key_images, specs)

        host, host_problem = image_host_from_environment()
        aspect = aspect_of(specs[0])
        requests = [SceneRequest(scene=s.scene, aspect_ratio=aspect, image_path=p, seed=opts.seed,
                                 options=opts.shared, provider_options=opts.per_provider)
                    for s, p in zip(specs, paths)]
        strict = provider != "auto" and fallback == "error"
        plan = plan_routes(requests, cands, quality=quality, max_cost_usd=budget,  # never above ADREEL_MAX_COST_USD
                           image_host=host, image_host_problem=host_problem, strict=strict)
        raw_options = (options_json or [""])[0] or ""
        if redact(raw_options) != raw_options:  # the keys read while planning are known to redact() now
            raise AdReelInputError("options_json", "contains an API key or credential; remove it (keys are read from "
                                                   "the environment or the secrets file only). Nothing was sent.")

        node_id = cls.hidden.unique_id if cls.hidden else None
        title = f"ProviderRender — {provider}" + ("" if provider == "auto" else f" {cands[0].model}")
        board = ProgressBoard(node_id, plan, title)
        board.show("\n".join((title, plan.describe())))  # the estimate, before anything is sent

        t0 = time.monotonic()
        clips_dir = os.path.join(output_directory(), CLIP_SUBFOLDER)
        try:
            outcomes = await render_routes(plan, output_dir=clips_dir, on_progress=board, cancel=board.interrupted,
                                           image_host=host, poll_interval=poll_interval(), timeout=timeout_s)
        except ProviderInterrupted as exc:
            if board.interrupted():
                board.footer = f"interrupted: {exc}"
                board.show()
                logger.info("ProviderRender interrupted: %s", exc)
                raise_if_interrupted()
            raise

        videos = []
        for outcome in outcomes:  # in scene order; position: the scene's place in the input list
            record = outcome.record()
            if outcome.result is None:
                video = camera_clip(specs[outcome.position], per_scene[outcome.position])
                video.provider_record = record
            else:
                video = ProviderVideo(outcome.result.path, record)
            videos.append(video)
        report, summary = report_text(plan, outcomes, time.monotonic() - t0)
        board.footer = report.splitlines()[0]
        board.show()
        return io.NodeOutput(videos, report, ui={"text": [report], "adreel_provider": [summary]})
