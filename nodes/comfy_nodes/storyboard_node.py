"""StoryboardSplit: script → storyboard + per-scene lists for native nodes."""
from __future__ import annotations

from ..engine.channels import brief_zone, zone_margins
from ..engine.models import SceneSpec
from ..engine.storyboard import RESOLUTION_CHOICES, build_storyboard

RESOLUTION_OPTIONS = list(RESOLUTION_CHOICES)
from .api import CATEGORY, SceneType, ScriptType, StoryboardType, io, ui


class StoryboardSplit(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="StoryboardSplit",
            display_name="Storyboard Split",
            category=CATEGORY,
            description="Resolves the script for rendering and fans it out per scene, so per-scene nodes run once per scene.",
            inputs=[
                ScriptType.Input("script"),
                io.Combo.Input("fps", options=["24", "25", "30"], default="30"),
                io.Combo.Input("resolution", options=RESOLUTION_OPTIONS, default="1080p",
                               tooltip="Short side of the frame; 180p and 360p are drafts for quick previews."),
            ],
            outputs=[
                StoryboardType.Output(display_name="storyboard"),
                SceneType.Output(display_name="scenes", is_output_list=True),
                io.String.Output(display_name="image_prompts", is_output_list=True),
                io.String.Output(display_name="negative_prompts", is_output_list=True),
                io.String.Output(display_name="narrations", is_output_list=True),
                io.Float.Output(display_name="durations", is_output_list=True),
            ],
        )

    @classmethod
    def execute(cls, script, fps, resolution) -> io.NodeOutput:
        brief = script.brief
        sb = build_storyboard(brief, script.script, fps=int(fps), resolution=resolution)
        specs = [SceneSpec(scene=sc, width=sb.width, height=sb.height, fps=sb.fps, brand=brief.brand,
                           product=brief.product, language=brief.language,
                           product_image_path=brief.product_image_path, logo_path=brief.logo_path,
                           safe_zone=zone_margins(brief_zone(brief, sb.width, sb.height)),
                           voice=brief.brand_kit.voice if brief.brand_kit else "")
                 for sc in sb.scenes]
        table = [f"{sb.width}x{sb.height} @ {sb.fps} fps, {sb.total_frames} frames"] + [
            f"#{s.index} {s.segment} {s.start:.2f}s+{s.duration:.2f}s ({s.frame_count}f) {s.camera} {s.transition}: {s.on_screen_text}"
            for s in sb.scenes]
        return io.NodeOutput(
            sb, specs,
            [s.image_prompt for s in sb.scenes], [s.negative_prompt for s in sb.scenes],
            [s.narration for s in sb.scenes], [s.frame_count / sb.fps for s in sb.scenes],
            ui={**ui.PreviewText("\n".join(table)).as_dict(),  # + the storyboard (no file paths) and its script, for the editor
                "adreel_storyboard": [sb.model_dump(mode="json", exclude={"brief"}) | {"script": script.script.model_dump(mode="json")}]},
        )
