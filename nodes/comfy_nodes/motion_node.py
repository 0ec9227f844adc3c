"""MotionClip: key image (or a model's frame batch) + scene → VIDEO of the scene's length."""
from __future__ import annotations

from ..engine.motion.frame_batch import FIT_MODES, INTERPOLATIONS, BatchFit, FittedFrameBatch, MotionWidgets
from ..engine.media.frames import FRAMINGS
from ..engine.models import CAMERA_MOVES, AdReelInputError
from ..engine.motion.camera import CameraMoveClip
from .api import CATEGORY, SceneType, io, send_progress_text
from .convert import check_image, image_to_rgb
from .lazy_image import still_of
from .video import RenderOnDemandVideo

FALLBACKS = ("stop with the error", "camera move")
MIN_FRAME_STD = 0.5 / 255


def batch_problem(images) -> str | None:
    """Why a frame batch is no video (a failed or bypassed video model), or None."""
    import torch
    if not bool(torch.isfinite(images).all()):
        return "the frame batch has NaN/inf pixels"
    if float(images.float().std()) < MIN_FRAME_STD:
        return "every frame of the batch is the same flat colour"
    return None


class MotionClip(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="MotionClip",
            display_name="Motion Clip",
            category=CATEGORY,
            description="A single image gets a smooth camera move over the scene. A frame batch from any video-model "
                        "node (SVD, WAN, LTX-Video, AnimateDiff …) is fitted to the scene: its length (stretch, or "
                        "native speed holding the last frame), the ad's fps (motion-compensated interpolation by "
                        "optical flow, or blend) and the frame (cover or contain). Frames are made one at a time "
                        "when the ad is encoded: nothing is encoded or held here. Fallback: when the batch is "
                        "unusable (NaN or blank frames from a failed or bypassed model) the scene gets a camera "
                        "move on the key image instead, and the node says so.",
            inputs=[
                io.Image.Input("images", tooltip="One key image, or a frame batch from any video-model node."),
                SceneType.Input("scene"),
                io.Combo.Input("camera", options=["from scene", *CAMERA_MOVES], default="from scene"),
                io.Float.Input("strength", default=1.0, min=0.0, max=3.0, step=0.05),
                io.Float.Input("source_fps", default=8.0, min=1.0, max=120.0, step=1.0,
                               tooltip="Frame rate of a frame batch (ignored for a single image): SVD 6, "
                                       "AnimateDiff 8, WAN 16, LTX-Video 24."),
                io.Combo.Input("fit", options=list(FIT_MODES), default="stretch",
                               tooltip="Frame batch: stretch to the scene, or keep its speed and hold the last frame."),
                io.Combo.Input("interpolation", options=list(INTERPOLATIONS), default="motion", optional=True,
                               tooltip="Frames between two model frames: motion (optical flow, things move), "
                                       "blend (cross-fade) or nearest (repeat)."),
                io.Combo.Input("framing", options=list(FRAMINGS), default="cover", optional=True,
                               tooltip="Model frames of another aspect: cover (fill, crop) or contain (whole "
                                       "frame on a blurred copy)."),
                io.Image.Input("key_image", optional=True,
                               tooltip="The scene's key image: what the camera-move fallback moves over."),
                io.Combo.Input("fallback", options=list(FALLBACKS), default="stop with the error", optional=True,
                               tooltip="When the frame batch is unusable: stop, or a camera move on the key image."),
            ],
            outputs=[io.Video.Output(display_name="video"),
                     io.String.Output(display_name="info", tooltip="What made this clip (and any fallback).")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, images, scene, key_image=None, **widgets) -> io.NodeOutput:
        w = MotionWidgets.from_values(widgets)
        sc = scene.scene
        node_id = cls.hidden.unique_id if cls.hidden else None
        move = sc.camera if w.camera == "from scene" else w.camera

        def camera_clip(image, field="images"):  # SceneKeyImage's IMAGE: moved from its PNG, never held in memory
            check_image(image, field)
            return CameraMoveClip(still_of(image) or image_to_rgb(image), move, sc.frame_count, scene.fps, scene.width, scene.height,
                                  strength=w.strength)

        check_image(images, "images")
        if images.shape[0] == 1:
            clip = camera_clip(images)
            info = f"scene {sc.index}: camera move {move} over the key image, {sc.frame_count} frames"
        else:
            problem = batch_problem(images)
            if problem is None:
                n = int(images.shape[0])
                fitted = FittedFrameBatch(lambda i: image_to_rgb(images, i), n, source_fps=w.source_fps,
                                          frame_count=sc.frame_count, fps=scene.fps, width=scene.width,
                                          height=scene.height,
                                          how=BatchFit(fit=w.fit, interpolation=w.interpolation, framing=w.framing))
                clip = fitted
                info = (f"scene {sc.index}: {n} model frames at {w.source_fps:g} fps → {sc.frame_count} frames at "
                        f"{scene.fps} fps ({w.fit}, {w.interpolation} interpolation, {w.framing})")
            elif w.fallback == "camera move":
                if key_image is None:
                    raise AdReelInputError("key_image", f"scene {sc.index}: {problem}; connect the scene's key image "
                                           "for the camera-move fallback")
                clip = camera_clip(key_image, "key_image")
                info = f"scene {sc.index}: FALLBACK — {problem}; camera move {move} over the key image instead"
            else:
                raise AdReelInputError("images", f"scene {sc.index}: {problem} (a failed or bypassed video model?). "
                                       "Set fallback to 'camera move' and connect key_image to render the scene anyway")
        if node_id:
            send_progress_text(info, node_id)
        label = f"scene {sc.index} " + ("frames" if not isinstance(clip, CameraMoveClip) else clip.move)
        return io.NodeOutput(RenderOnDemandVideo(clip, label), info, ui={"text": [info]})
