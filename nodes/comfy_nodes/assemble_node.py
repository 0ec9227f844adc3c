"""FFmpegAssemble: storyboard + one VIDEO per scene (+ narration, music, logo) →
the finished ad in every asked format and aspect, each encoded once."""
from __future__ import annotations

import os
import shutil
import tempfile

from ..engine import limits
from ..engine.assembly.encode import PRESETS
from ..engine.audio.mix import decode_audio_file
from ..engine.assembly.cards import LOGO_POSITIONS
from ..engine.motion.clip_sources import VideoFileSource
from ..engine.motion.frame_batch import BatchFit, FrameBatchClip
from ..engine.models import AdReelInputError
from ..engine.assembly.metadata import workflow_tags
from ..engine.providers.request import provider_records
from ..engine.assembly.render import (FRAMINGS, SUBTITLE_MODES, AdMedia, AssembleWidgets, RenderHooks,
                                      render_ad)
from .api import (CATEGORY, InputImpl, Progress, StoryboardType, io, metadata_disabled,
                  private_directory, prompt_allowance, raise_if_interrupted, save_path, ui)
from .convert import audio_to_clip, image_to_pil, open_image_file
from .video import RenderOnDemandVideo


def shows_less_than_its_stream(video) -> bool:
    """Whether ``get_stream_source()`` holds more than the VIDEO shows: a trim window (ComfyUI 0.33 on) or
    crops not yet applied (newer cores). Asked only of cores that have these methods."""
    window = getattr(video, "get_active_trim_window", None)
    pending = getattr(video, "has_pending_frame_edits", None)
    return bool((window is not None and any(float(v) for v in window())) or (pending is not None and pending()))


def scene_clip(video, sc, sb, work_dir: str, media_seconds=None):
    """Any VIDEO → the engine clip behind it (a recipe: render_ad refits it to each aspect and timing).

    ``media_seconds``: the prompt's share of ADREEL_MAX_MEDIA_SECONDS; a clip decoded from a file reserves
    the scene's length there (and the decode never reads past it, plus a second)."""
    if isinstance(video, RenderOnDemandVideo):
        return video.clip
    if isinstance(video, InputImpl.VideoFromComponents):
        comp = video.get_components()
        imgs = comp.images
        return FrameBatchClip(lambda i: (imgs[i, ..., :3].clamp(0, 1) * 255).round().byte().numpy(),
                              int(imgs.shape[0]), source_fps=float(comp.frame_rate), frame_count=sc.frame_count,
                              fps=sb.fps, width=sb.width, height=sb.height,
                              how=BatchFit(fit="native", interpolation="blend"))
    if media_seconds is not None:
        media_seconds.reserve(sc.frame_count / sb.fps + 1.0, f"clips[{sc.index}]: decoding a video file")
    if shows_less_than_its_stream(video):  # a trimmed or cropped core VIDEO: its own save_to applies the edits
        path = os.path.join(work_dir, f"clip_{sc.index:03d}.mp4")
        video.save_to(path)
        return VideoFileSource(path, sc.frame_count, sb.fps, sb.width, sb.height, field=f"clips[{sc.index}]")
    src = video.get_stream_source()
    if not isinstance(src, str):
        path = os.path.join(work_dir, f"clip_{sc.index:03d}.bin")
        if hasattr(src, "seek"):
            src.seek(0)
        with open(path, "wb") as f:
            shutil.copyfileobj(src, f, 1 << 20)
        src = path
    # probed and decoded only as a known video container (engine: clip_sources)
    return VideoFileSource(src, sc.frame_count, sb.fps, sb.width, sb.height, field=f"clips[{sc.index}]")


def _first(v, default=None):
    if isinstance(v, list):
        return v[0] if v else default
    return default if v is None else v


class FFmpegAssemble(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FFmpegAssemble",
            display_name="FFmpeg Assemble",
            category=CATEGORY,
            description="Assembles the finished ad in one pass: scenes in order with transitions, on-screen text, "
                        "narration and subtitles, a music bed ducked under the voice (-14 LUFS), logo and end card. "
                        "MP4 (H.264 High yuv420p BT.709, AAC 48 kHz, faststart) plus optional WebM / MOV / HLS, "
                        "a thumbnail, SRT/VTT sidecars and a manifest; extra aspects from the same storyboard.",
            is_input_list=True,
            is_output_node=True,
            inputs=[
                StoryboardType.Input("storyboard"),
                io.Video.Input("clips", tooltip="One VIDEO per storyboard scene, in scene order."),
                io.String.Input("filename_prefix", default="AdReel/ad"),
                io.Combo.Input("preset", options=list(PRESETS), default="medium", tooltip="x264 speed/size trade-off."),
                io.Int.Input("crf", default=20, min=0, max=51, tooltip="x264 quality: lower is better and bigger."),
                io.Combo.Input("subtitles", options=list(SUBTITLE_MODES), default="burn + sidecar"),
                io.Combo.Input("subtitle_style", options=["box", "outline"], default="box"),
                io.Float.Input("music_volume_db", default=-6.0, min=-40.0, max=6.0, step=0.5,
                               tooltip="Music level under the voice before ducking."),
                io.Combo.Input("logo_position", options=list(LOGO_POSITIONS), default="top-right"),
                io.Float.Input("logo_size", default=0.22, min=0.0, max=0.6, step=0.01,
                               tooltip="Logo width as a fraction of the frame; 0 hides it."),
                io.Float.Input("logo_opacity", default=0.9, min=0.0, max=1.0, step=0.05),
                io.Float.Input("end_card_seconds", default=2.0, min=0.0, max=10.0, step=0.1,
                               tooltip="Last seconds show the end card (brand colours, logo, CTA); 0 for none."),
                io.Float.Input("intro_seconds", default=0.0, min=0.0, max=5.0, step=0.1),
                io.Boolean.Input("webm", default=False, tooltip="Also VP9/Opus WebM."),
                io.Boolean.Input("mov", default=False, tooltip="Also ProRes 422 MOV for editing."),
                io.Boolean.Input("hls", default=False, tooltip="Also an HLS playlist + segments (cut from the MP4, no re-encode)."),
                io.String.Input("extra_aspects", default="", tooltip="e.g. '1:1, 16:9': more aspects from the same storyboard."),
                io.Combo.Input("framing", options=list(FRAMINGS), default="cover",
                               tooltip="Extra aspects: cover (crop) or contain (bars in the brand colour)."),
                io.Audio.Input("narration", optional=True,
                               tooltip="One AUDIO per scene (SceneNarration), or one track for the whole ad."),
                io.Audio.Input("music", optional=True, tooltip="A music bed (MusicBed, LoadAudio …)."),
                io.Image.Input("logo", optional=True, tooltip="The brand's logo; default: the brief's, else a wordmark."),
                io.String.Input("font", default="", optional=True,
                                tooltip="Font family (fontconfig) or font file for text and subtitles; empty: Noto Sans CJK."),
                io.String.Input("provider_report", optional=True, force_input=True,
                                tooltip="ProviderRender's provider_report: its jobs and costs go into the manifest."),
                io.Boolean.Input("embed_workflow", default=True, optional=True,
                                 tooltip="Carry the workflow (and prompt) inside every MP4/WebM/MOV, as ComfyUI's "
                                         "SaveVideo does: drop the file on the editor to get the graph back. Values "
                                         "that look like keys or secrets are masked."),
            ],
            outputs=[io.Video.Output(display_name="video"), io.String.Output(display_name="path")],
            hidden=[io.Hidden.unique_id, io.Hidden.prompt, io.Hidden.extra_pnginfo],
        )

    @classmethod
    def workflow_metadata(cls, embed: bool) -> dict[str, str] | None:
        """The prompt and the editor's workflow as container tags (redacted), unless turned off
        here or by ComfyUI's ``--disable-metadata``."""
        if not embed or metadata_disabled() or not cls.hidden:
            return None
        return workflow_tags(cls.hidden.prompt, cls.hidden.extra_pnginfo) or None

    @classmethod
    def execute(cls, storyboard, clips, narration=None, music=None, logo=None, provider_report=None,
                **widgets) -> io.NodeOutput:
        if len(storyboard) != 1:
            raise AdReelInputError("storyboard", f"connect exactly one storyboard (got {len(storyboard)})")
        sb = storyboard[0]
        kit = sb.brief.brand_kit  # the brand kit's font (unless font is set here) and music (over the music input)
        values = {name: _first(v) for name, v in widgets.items()}
        if kit and kit.font and not values.get("font"):
            values["font"] = kit.font
        w = AssembleWidgets.from_values(values)
        if len(clips) != len(sb.scenes):
            raise AdReelInputError("clips", f"{len(clips)} clips for {len(sb.scenes)} storyboard scenes: "
                                   "connect MotionClip (or a video node) fed by StoryboardSplit's scenes")
        options = w.render_options(cls.workflow_metadata(w.embed_workflow))
        voices = None
        if narration:
            clips_audio = [audio_to_clip(a, f"narration[{i}]") for i, a in enumerate(narration)]
            if len(clips_audio) == len(sb.scenes):
                voices = clips_audio
            elif len(clips_audio) == 1:  # one track for the whole ad: it plays from the start
                voices = [clips_audio[0]] + [None] * (len(sb.scenes) - 1)
            else:
                raise AdReelInputError("narration", f"{len(clips_audio)} narration clips for {len(sb.scenes)} scenes")
        music_clip = audio_to_clip(music[0], "music") if music else None
        if kit and kit.music_path:
            music_clip = decode_audio_file(kit.music_path, "brand_kit.music",
                                           allowance=prompt_allowance(limits.MAX_MEDIA_SECONDS))
        logo_img = None
        if logo:
            logo_img = image_to_pil(logo[0], "logo").convert("RGBA")
        elif sb.brief.logo_path:
            logo_img = open_image_file(sb.brief.logo_path, "brief.logo").convert("RGBA")

        providers = provider_records(provider_report or [])  # checked before anything is rendered
        folder, filename, counter, subfolder, _ = save_path(w.filename_prefix, sb.width, sb.height)
        file = f"{filename}_{counter:05}_.mp4"
        out_path = os.path.join(folder, file)
        node_id = cls.hidden.unique_id if cls.hidden else None
        bar = Progress(100, node_id)
        # per prompt, all its nodes together: the seconds decoded from files, the pixel-frames encoded
        media_seconds = prompt_allowance(limits.MAX_MEDIA_SECONDS)
        pixel_frames = prompt_allowance(limits.MAX_PIXEL_FRAMES)
        with tempfile.TemporaryDirectory(prefix="assemble_", dir=private_directory()) as work:
            render_ad(
                sb, [scene_clip(v, sc, sb, work, media_seconds) for v, sc in zip(clips, sb.scenes)],
                out_path, work, options,
                AdMedia(narration=voices, music=music_clip, logo=logo_img, providers=providers),
                RenderHooks(progress=lambda text, d, t: bar.update(int(100 * d / max(1, t)), text),
                            cancelled=lambda: raise_if_interrupted() or False, allowance=pixel_frames))
        return io.NodeOutput(InputImpl.VideoFromFile(out_path), out_path,
                             ui=ui.PreviewVideo([ui.SavedResult(file, subfolder, io.FolderType.output)]))
