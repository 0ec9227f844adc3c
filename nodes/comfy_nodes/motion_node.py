"""MotionClip: key image (or a model's frame batch) + scene → VIDEO of the scene's length."""
from __future__ import annotations

from ..engine.clip_sources import FIT_MODES, FrameBatchClip
from ..engine.models import CAMERA_MOVES
from ..engine.motion import CameraMoveClip
from .api import CATEGORY, SceneType, check_combos, io
from .convert import image_to_rgb
from .video import RenderOnDemandVideo


class MotionClip(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="MotionClip",
            display_name="Motion Clip",
            category=CATEGORY,
            description="A single image gets a smooth camera move over the scene; a frame batch from a video "
                        "model is fitted to the scene's length and fps (interpolated). Rendered lazily: no encode here.",
            inputs=[
                io.Image.Input("images", tooltip="One key image, or a frame batch from any video-model node."),
                SceneType.Input("scene"),
                io.Combo.Input("camera", options=["from scene", *CAMERA_MOVES], default="from scene"),
                io.Float.Input("strength", default=1.0, min=0.0, max=3.0, step=0.05),
                io.Float.Input("source_fps", default=8.0, min=1.0, max=120.0, step=1.0,
                               tooltip="Frame rate of a frame batch (ignored for a single image)."),
                io.Combo.Input("fit", options=list(FIT_MODES), default="stretch",
                               tooltip="Frame batch: stretch to the scene, or keep its speed and hold the last frame."),
            ],
            outputs=[io.Video.Output(display_name="video")],
        )

    @classmethod
    def validate_inputs(cls, camera, fit):
        return check_combos({"camera": camera, "fit": fit},
                            {"camera": ["from scene", *CAMERA_MOVES], "fit": list(FIT_MODES)})

    @classmethod
    def execute(cls, images, scene, camera, strength, source_fps, fit) -> io.NodeOutput:
        sc = scene.scene
        if images.shape[0] == 1:
            clip = CameraMoveClip(image_to_rgb(images), sc.camera if camera == "from scene" else camera,
                                  sc.frame_count, scene.fps, scene.width, scene.height, strength=strength)
            label = f"scene {sc.index} {clip.move}"
        else:
            clip = FrameBatchClip(lambda i: image_to_rgb(images, i), int(images.shape[0]), source_fps=source_fps,
                                  frame_count=sc.frame_count, fps=scene.fps, width=scene.width,
                                  height=scene.height, fit=fit)
            label = f"scene {sc.index} frames"
        return io.NodeOutput(RenderOnDemandVideo(clip, label))
