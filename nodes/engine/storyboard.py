"""The storyboard stage: a Script resolved for rendering.

Frame counts are allotted on the cumulative timeline, so the scenes' frames add
up to exactly ``round(total_duration * fps)`` whatever the individual lengths.
"""
from __future__ import annotations

from .channels import notes as channel_notes
from .models import ASPECT_RATIOS, RESOLUTIONS, AdReelInputError, Brief, Script, Storyboard, StoryboardScene
from .speech.fit import BREATH_SECONDS, LEAD_IN_SECONDS

FPS_CHOICES = (24, 25, 30)
# draft sizes (short side) for previews and quick checks of timing, sound and text, before the real render
DRAFT_RESOLUTIONS: dict[str, int] = {"180p": 180, "360p": 360}
RESOLUTION_CHOICES: dict[str, int] = {**RESOLUTIONS, **DRAFT_RESOLUTIONS}


def output_size(aspect_ratio: str, resolution: str = "1080p") -> tuple[int, int]:
    """Frame size for an aspect at a resolution (short side), always even."""
    if aspect_ratio not in ASPECT_RATIOS:
        raise AdReelInputError("aspect_ratio", f"is not one of {', '.join(ASPECT_RATIOS)}")
    if resolution not in RESOLUTION_CHOICES:
        raise AdReelInputError("resolution", f"is not one of {', '.join(RESOLUTION_CHOICES)}")
    return size_for_short_side(aspect_ratio, RESOLUTION_CHOICES[resolution])


def size_for_short_side(aspect_ratio: str, short: int) -> tuple[int, int]:
    """Frame size of an aspect whose short side is ``short`` pixels, always even."""
    w, h = ASPECT_RATIOS[aspect_ratio]
    scale = short / min(w, h)
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
            **sc.content(), index=sc.index, start=sc.start, duration=sc.duration,
            start_frame=start_frame, frame_count=end_frame - start_frame,
            palette=scene_palette(brief.brand_colors, sc.index),
        ))
    return Storyboard(
        brief=brief, title=script.title, language=script.language, width=width, height=height,
        fps=fps, total_duration=script.total_duration, total_frames=total_frames, scenes=scenes,
        script_source=script.source, notes=list(dict.fromkeys([*script.notes, *channel_notes(brief)])),
    )


def retime_for_narration(sb: Storyboard, speech_seconds: list[float], lead_in: float = LEAD_IN_SECONDS,
                         breath: float = BREATH_SECONDS) -> Storyboard:
    """Scene lengths follow the voice: each scene lasts at least its narration plus a
    breath; the time left is shared in proportion to the script's lengths (a scene that
    says less lends its time to one that says more), so the total (and the frame count)
    never changes.

    A script that passed the quality bar always fits (the bar measures with the same
    voice and margins). What cannot fit is narration the user supplied — a line given
    to SceneNarration, or AUDIO from another pack — and the error names the scene and
    the seconds."""
    if len(speech_seconds) != len(sb.scenes):
        raise AdReelInputError("narration", f"{len(speech_seconds)} narration clips for {len(sb.scenes)} scenes")
    fps, total = sb.fps, sb.total_frames
    need = [0 if s <= 0 else int(-(-(s + lead_in + breath) * fps // 1)) for s in speech_seconds]
    if sum(need) > total:
        order = sorted(range(len(need)), key=lambda i: need[i] - sb.scenes[i].frame_count, reverse=True)
        over = [i for i in order if need[i] > sb.scenes[i].frame_count][:3] or order[:1]
        detail = ", ".join(f"scene {i} has {speech_seconds[i]:.1f}s of speech for a {sb.scenes[i].frame_count / fps:.1f}s "
                           f"scene (needs {need[i] / fps:.1f}s with lead-in and breath)" for i in over)
        raise AdReelInputError(
            "narration", f"the narration needs {sum(need) / fps:.1f}s but the ad lasts {sb.total_duration:g}s: "
            f"{detail}. A script that passed ScriptLLM's bar fits with SceneNarration's default voice; this "
            f"narration is longer (other text, a slower voice, or audio from another node): shorten it by "
            f"{(sum(need) - total) / fps:.1f}s, or lengthen the ad")
    frames = [s.frame_count for s in sb.scenes]
    fixed = [False] * len(frames)
    # water-filling: scenes short of their need get it, the rest share what is left
    while True:
        free_total = total - sum(max(need[i], 0) for i in range(len(frames)) if fixed[i])
        weights = [sb.scenes[i].frame_count for i in range(len(frames)) if not fixed[i]]
        wsum = sum(weights) or 1
        share = {i: free_total * sb.scenes[i].frame_count / wsum for i in range(len(frames)) if not fixed[i]}
        short = [i for i, v in share.items() if v < need[i]]
        if not short:
            break
        for i in short:
            fixed[i] = True
    alloc = [float(need[i]) if fixed[i] else share[i] for i in range(len(frames))]
    # integer frames, cumulative rounding, at least the need and one frame
    out, acc, prev = [], 0.0, 0
    for i, a in enumerate(alloc):
        acc += a
        end = total if i == len(alloc) - 1 else round(acc)
        out.append(max(end - prev, 1))
        prev += out[-1]
    for i in range(len(out)):  # rounding can leave a scene one frame short of its need
        while out[i] < need[i]:
            j = max((k for k in range(len(out)) if out[k] > need[k] and k != i), key=lambda k: out[k] - need[k])
            out[j] -= 1
            out[i] += 1
    scenes, start = [], 0
    for sc, n in zip(sb.scenes, out):
        scenes.append(sc.model_copy(update={"start_frame": start, "frame_count": n,
                                            "start": start / fps, "duration": n / fps}))
        start += n
    return sb.model_copy(update={"scenes": scenes})
