"""The storyboard stage: a Script resolved for rendering.

Frame counts are allotted on the cumulative timeline, so the scenes' frames add
up to exactly ``round(total_duration * fps)`` whatever the individual lengths.
"""
from __future__ import annotations

from .models import ASPECT_RATIOS, RESOLUTIONS, AdReelInputError, Brief, Script, Storyboard, StoryboardScene

FPS_CHOICES = (24, 25, 30)


def output_size(aspect_ratio: str, resolution: str = "1080p") -> tuple[int, int]:
    """Frame size for an aspect at a resolution (short side), always even."""
    if aspect_ratio not in ASPECT_RATIOS:
        raise AdReelInputError("aspect_ratio", f"{aspect_ratio!r} is not one of {', '.join(ASPECT_RATIOS)}")
    if resolution not in RESOLUTIONS:
        raise AdReelInputError("resolution", f"{resolution!r} is not one of {', '.join(RESOLUTIONS)}")
    w, h = ASPECT_RATIOS[aspect_ratio]
    scale = RESOLUTIONS[resolution] / min(w, h)
    return int(round(w * scale / 2)) * 2, int(round(h * scale / 2)) * 2


def scene_palette(colors: list[str], index: int) -> list[str]:
    """Rotate the brand palette per scene so consecutive scenes look distinct."""
    if len(colors) == 1:
        return colors * 2
    k = index % len(colors)
    return colors[k:] + colors[:k]


def build_storyboard(brief: Brief, script: Script, fps: int = 30, resolution: str = "1080p") -> Storyboard:
    if fps not in FPS_CHOICES:
        raise AdReelInputError("fps", f"{fps} is not one of {', '.join(map(str, FPS_CHOICES))}")
    width, height = output_size(brief.aspect_ratio, resolution)
    total_frames = round(script.total_duration * fps)
    scenes = []
    for sc in script.scenes:
        start_frame = round(sc.start * fps)
        end_frame = total_frames if sc.index == len(script.scenes) - 1 else round(sc.end * fps)
        if end_frame - start_frame < 1:
            raise AdReelInputError(f"script.scenes[{sc.index}]",
                                   f"lasts {sc.duration:g}s, shorter than one frame at {fps} fps")
        scenes.append(StoryboardScene(
            index=sc.index, segment=sc.segment, start=sc.start, duration=sc.duration,
            start_frame=start_frame, frame_count=end_frame - start_frame,
            narration=sc.narration, on_screen_text=sc.on_screen_text,
            visual_direction=sc.visual_direction, image_prompt=sc.image_prompt,
            negative_prompt=sc.negative_prompt, camera=sc.camera, transition=sc.transition,
            music_mood=sc.music_mood, brand_elements=sc.brand_elements,
            palette=scene_palette(brief.brand_colors, sc.index),
        ))
    return Storyboard(
        brief=brief, title=script.title, language=script.language, width=width, height=height,
        fps=fps, total_duration=script.total_duration, total_frames=total_frames, scenes=scenes,
        script_source=script.source, notes=list(script.notes),
    )
