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

import dataclasses
import hashlib
import logging
import os
import time

import numpy as np

from ..engine.keyimage.composed import compose_key_image, load_image_file
from ..engine import limits
from ..engine.limits import require_finite
from ..engine.models import AdReelInputError, SceneSpec
from ..engine.motion.camera import CameraMoveClip
from ..engine.providers import PROVIDERS, ProgressEvent, ProviderInterrupted, list_models
from ..engine.providers.routes import QUALITIES, RenderSettings, RoutePlan, render_routes
from ..engine.providers.request import (ProgressLines, RenderWidgets, aspect_for, plan_run, poll_interval,
                                        provider_report_json, report_text, widget_problem)
from ..engine.storage.hosting import image_host_from_environment
from .api import (CATEGORY, InputImpl, SceneType, interrupted, io, output_directory, private_directory,
                  progress_bar, prompt_allowance, raise_if_interrupted, send_progress_text, update_bar_keeping_interrupt)
from .convert import image_to_rgb, key_image_files
from .lazy_image import still_of
from .video import RenderOnDemandVideo

logger = logging.getLogger("adreel.providers")

PROVIDER_CHOICES = [*PROVIDERS, "auto"]
MODEL_CHOICES = list(dict.fromkeys(m for models in list_models().values() for m in models))
FALLBACKS = ["error", "camera move"]
CLIP_SUBFOLDER = os.path.join("AdReel", "provider_clips")


# ------------------------------------------------------------------ progress on the node
class ProgressBoard(ProgressLines):
    """The progress text shown on the node, and its bar."""

    def __init__(self, node_id: str | None, plan: RoutePlan, title: str):
        super().__init__(plan, title)
        self.node_id = node_id
        self.bar = progress_bar(100 * max(1, len(plan.routes))) if node_id else None
        self.saw_interrupt = False

    def show(self, text: str | None = None) -> None:
        if self.node_id:
            send_progress_text(text if text is not None else self.text(), self.node_id)

    def __call__(self, ev: ProgressEvent) -> None:
        super().__call__(ev)
        self.show()
        if self.bar is not None and not self.saw_interrupt:
            if not update_bar_keeping_interrupt(self.bar, int(100 * self.done())):
                self.saw_interrupt = True

    def interrupted(self) -> bool:
        return self.saw_interrupt or interrupted()


# ------------------------------------------------------------------ outputs
def camera_clip(spec: SceneSpec, image) -> RenderOnDemandVideo:
    """The local camera move over the scene's key image — SceneKeyImage's, moved from its PNG as
    MotionClip moves it — or, when none is connected, the composed one."""
    sc = spec.scene
    if image is not None:
        rgb = still_of(image) or image_to_rgb(image)
    else:
        product = load_image_file(spec.product_image_path, "brief.product_image") if spec.product_image_path else None
        rgb = np.asarray(compose_key_image(sc, spec.width, spec.height, spec.product, product_image=product, seed=0,
                                           zone=spec.zone()))
    clip = CameraMoveClip(rgb, sc.camera, sc.frame_count, spec.fps, spec.width, spec.height)
    return RenderOnDemandVideo(clip, f"scene {sc.index} {clip.move} (camera fallback)")


def private_clip(result) -> str:
    """The downloaded clip as AdReel's own copy, checked against the sha256 taken while it downloaded.

    The clip in output/ is the user's to keep, but anyone may overwrite a file there (/upload/image
    type=output, overwrite=true): the VIDEO this node outputs reads the private copy instead."""
    dest = os.path.join(private_directory("provider_clips"), f"{result.sha256[:32]}.{result.container}")
    if os.path.isfile(dest):
        return dest  # made by this process from a checked copy; nobody else can write there
    digest, part = hashlib.sha256(), f"{dest}.{os.getpid()}.part"
    with open(result.path, "rb") as src, open(part, "wb") as dst:
        for block in iter(lambda: src.read(1 << 20), b""):
            digest.update(block)
            dst.write(block)
    if digest.hexdigest() != result.sha256:
        os.remove(part)
        raise AdReelInputError("videos", f"the clip {os.path.basename(result.path)!r} in ComfyUI's output folder "
                                         "changed after it was downloaded: queue the prompt again")
    os.replace(part, dest)
    return dest


# ------------------------------------------------------------------ the node
def _first(value):
    """The node takes its inputs as lists (``is_input_list``): a widget's value is the first item."""
    return value[0] if isinstance(value, list) and value else value


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
                io.String.Output(display_name="provider_report",
                                 tooltip="The run's records as JSON (provider, model, job id, cost per scene): "
                                         "connect it to FFmpegAssemble's provider_report for the manifest."),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, provider, model, fallback, quality, max_cost_usd=None, chain=None, options_json=None):
        return widget_problem(_first(provider), _first(model), _first(fallback), _first(quality), _first(max_cost_usd),
                              _first(chain), _first(options_json)) or True

    @classmethod
    async def execute(cls, scenes, key_images=None, **widgets) -> io.NodeOutput:
        w = RenderWidgets.from_values({name: _first(v) for name, v in widgets.items()})
        provider, timeout_s, specs = w.provider, int(w.timeout_s), list(scenes or [])
        if not specs:
            raise AdReelInputError("scenes", "no scenes: connect StoryboardSplit's scenes output")
        per_scene, paths = key_image_files(key_images, specs, private_directory())
        host, host_problem = image_host_from_environment()
        allowance = prompt_allowance(limits.MAX_COST_USD)  # shared by every ProviderRender of this prompt
        w = dataclasses.replace(w, max_cost_usd=require_finite(w.max_cost_usd, "max_cost_usd"))
        plan, cands = plan_run([s.scene for s in specs], paths, w,
                               aspect_ratio=aspect_for(specs[0].width, specs[0].height), image_host=host,
                               image_host_problem=host_problem, allowance=allowance)

        node_id = cls.hidden.unique_id if cls.hidden else None
        title = f"ProviderRender — {provider}" + ("" if provider == "auto" else f" {cands[0].model}")
        board = ProgressBoard(node_id, plan, title)
        board.show("\n".join((title, plan.describe())))  # the estimate, before anything is sent

        t0 = time.monotonic()
        clips_dir = os.path.join(output_directory(), CLIP_SUBFOLDER)
        try:
            outcomes = await render_routes(plan, RenderSettings(
                output_dir=clips_dir, on_progress=board, cancel=board.interrupted, image_host=host,
                poll_interval=poll_interval(), timeout=timeout_s, allowance=allowance))
        except ProviderInterrupted as exc:
            if board.interrupted():
                board.footer = f"interrupted: {exc}"
                board.show()
                logger.info("ProviderRender interrupted: %s", exc)
                raise_if_interrupted()
            raise

        # in scene order; position: the scene's place in the input list
        videos = [camera_clip(specs[o.position], per_scene[o.position]) if o.result is None
                  else InputImpl.VideoFromFile(private_clip(o.result)) for o in outcomes]
        report, summary = report_text(plan, outcomes, time.monotonic() - t0)
        board.footer = report.splitlines()[0]
        board.show()
        return io.NodeOutput(videos, report, provider_report_json(summary),
                             ui={"text": [report], "adreel_provider": [summary]})
