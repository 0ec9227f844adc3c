"""FFmpegAssemble: storyboard + one VIDEO per scene → the finished ad, one encode."""
from __future__ import annotations

import dataclasses
import os
import tempfile

from ..engine.assemble import PRESETS, EncodeSettings, assemble
from ..engine.clip_sources import FrameBatchClip, VideoFileSource
from ..engine.manifest import write_manifest
from ..engine.models import AdReelInputError
from ..engine.motion import CameraMoveClip
from .api import CATEGORY, InputImpl, check_combos, Progress, StoryboardType, io, raise_if_interrupted, save_path, temp_directory, ui
from .video import RenderOnDemandVideo


def frame_source(video, sc, sb, work_dir: str):
    """Any VIDEO → a frame source of the storyboard's size, fps and the scene's length."""
    size = dict(width=sb.width, height=sb.height)
    if isinstance(video, RenderOnDemandVideo):
        clip = video.clip
        if isinstance(clip, CameraMoveClip):
            return dataclasses.replace(clip, frame_count=sc.frame_count, fps=sb.fps, _planes=None, **size)
        if isinstance(clip, FrameBatchClip):
            return FrameBatchClip(clip.get_frame, clip.n, source_fps=clip.source_fps, frame_count=sc.frame_count,
                                  fps=sb.fps, fit=clip.fit, **size)
    if isinstance(video, InputImpl.VideoFromComponents):
        comp = video.get_components()
        imgs = comp.images
        return FrameBatchClip(lambda i: (imgs[i, ..., :3].clamp(0, 1) * 255).round().byte().numpy(),
                              int(imgs.shape[0]), source_fps=float(comp.frame_rate), frame_count=sc.frame_count,
                              fps=sb.fps, fit="native", **size)
    src = video.get_stream_source()
    if not isinstance(src, str):
        path = os.path.join(work_dir, f"clip_{sc.index:03d}.bin")
        with open(path, "wb") as f:
            f.write(src.read())
        src = path
    return VideoFileSource(src, sc.frame_count, sb.fps, sb.width, sb.height)


class FFmpegAssemble(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FFmpegAssemble",
            display_name="FFmpeg Assemble",
            category=CATEGORY,
            description="Assembles the finished ad in one ffmpeg encode: scenes in order, transitions, on-screen "
                        "text, audio; H.264 High yuv420p BT.709 + AAC 48 kHz, faststart.",
            is_input_list=True,
            is_output_node=True,
            inputs=[
                StoryboardType.Input("storyboard"),
                io.Video.Input("clips", tooltip="One VIDEO per storyboard scene, in scene order."),
                io.String.Input("filename_prefix", default="AdReel/ad"),
                io.Combo.Input("preset", options=list(PRESETS), default="medium", tooltip="x264 speed/size trade-off."),
                io.Int.Input("crf", default=20, min=0, max=51, tooltip="x264 quality: lower is better and bigger."),
                io.String.Input("font", default="", optional=True,
                                tooltip="Font family (fontconfig) or font file for on-screen text; empty: Noto Sans CJK."),
            ],
            outputs=[io.Video.Output(display_name="video"), io.String.Output(display_name="path")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, preset):
        return check_combos({"preset": preset}, {"preset": list(PRESETS)})

    @classmethod
    def execute(cls, storyboard, clips, filename_prefix, preset, crf, font=None) -> io.NodeOutput:
        if len(storyboard) != 1:
            raise AdReelInputError("storyboard", f"connect exactly one storyboard (got {len(storyboard)})")
        sb = storyboard[0]
        encode = EncodeSettings(preset=preset[0], crf=crf[0])
        if len(clips) != len(sb.scenes):
            raise AdReelInputError("clips", f"{len(clips)} clips for {len(sb.scenes)} storyboard scenes: "
                                   "connect MotionClip (or a video node) fed by StoryboardSplit's scenes")
        folder, filename, counter, subfolder, _ = save_path(filename_prefix[0], sb.width, sb.height)
        file = f"{filename}_{counter:05}_.mp4"
        out_path = os.path.join(folder, file)
        node_id = cls.hidden.unique_id if cls.hidden else None
        bar = Progress(sb.total_frames, node_id)
        with tempfile.TemporaryDirectory(prefix="adreel_", dir=temp_directory()) as work:
            sources = [frame_source(v, sc, sb, work) for v, sc in zip(clips, sb.scenes)]
            result = assemble(sb, sources, out_path, work, encode=encode, font=(font or [""])[0] or None,
                              progress=lambda d, t: bar.update(d, f"encoding frame {d}/{t}"),
                              cancelled=lambda: raise_if_interrupted() or False)
        write_manifest(sb, result, encode, os.path.splitext(out_path)[0] + ".json")
        return io.NodeOutput(InputImpl.VideoFromFile(out_path), out_path,
                             ui=ui.PreviewVideo([ui.SavedResult(file, subfolder, io.FolderType.output)]))
