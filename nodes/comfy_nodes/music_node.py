"""MusicBed: a bundled music bed (or any audio file in ComfyUI's input folder) → AUDIO."""
from __future__ import annotations

import os

from ..engine.audio.mix import decode_audio_file
from ..engine import limits
from .api import CATEGORY, io, prompt_allowance
from .choices import file_fingerprint, input_choices, resolve_choice
from .convert import clip_to_audio

PACK_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MUSIC_DIR = os.path.join(PACK_ROOT, "assets", "music")
AUDIO_EXT = (".ogg", ".opus", ".mp3", ".wav", ".flac", ".m4a", ".aac")


def bundled_tracks() -> list[str]:
    return sorted(f for f in os.listdir(MUSIC_DIR) if f.lower().endswith(AUDIO_EXT)) if os.path.isdir(MUSIC_DIR) else []


def music_choices() -> list[str]:
    return bundled_tracks() + input_choices(AUDIO_EXT)


def resolve_track(track: str) -> str:
    return resolve_choice(track, "track", MUSIC_DIR, bundled_tracks(), "a music file")


class MusicBed(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        choices = music_choices()
        return io.Schema(
            node_id="MusicBed",
            display_name="Music Bed",
            category=CATEGORY,
            description="A music bed for the ad: AdReel's bundled tracks (CC0, see assets/music/LICENSE.md) or an "
                        "audio file from ComfyUI's input folder. FFmpegAssemble loops or trims it, fades it and ducks it under the voice.",
            inputs=[io.Combo.Input("track", options=choices, default=choices[0] if choices else None)],
            outputs=[io.Audio.Output(display_name="audio")],
        )

    @classmethod
    def fingerprint_inputs(cls, track):
        return file_fingerprint(resolve_track(track))

    @classmethod
    def execute(cls, track) -> io.NodeOutput:
        # probed, read only as a known audio container, at most the longest ad + a margin (engine)
        clip = decode_audio_file(resolve_track(track), "track", allowance=prompt_allowance(limits.MAX_MEDIA_SECONDS))
        return io.NodeOutput(clip_to_audio(clip.samples, clip.sample_rate))
