"""The render manifest: everything needed to audit or reproduce an output."""
from __future__ import annotations

import json
import os

from .assemble import AssembleResult, EncodeSettings, describe_file
from .models import RenderManifest, Storyboard


def write_manifest(sb: Storyboard, result: AssembleResult, encode: EncodeSettings, path: str,
                   timings: dict[str, float] | None = None, notes: list[str] | None = None) -> RenderManifest:
    manifest = RenderManifest(
        brief=sb.brief, storyboard=sb,
        timings_seconds={"assemble": round(result.seconds, 3), **(timings or {})},
        encode={"container": "mp4", "video": "h264 high yuv420p bt709", "preset": encode.preset,
                "crf": encode.crf, "audio": f"aac 48kHz stereo {encode.audio_bitrate}",
                "width": result.width, "height": result.height, "fps": result.fps, "frames": result.frames},
        outputs=[describe_file("video", result.path)],
        notes=list(sb.notes) + list(notes or []),
    )
    tmp = path + ".part"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(json.loads(manifest.model_dump_json()), f, ensure_ascii=False, indent=2)
    os.replace(tmp, path)
    return manifest
