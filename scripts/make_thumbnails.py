#!/usr/bin/env python3
"""The template browser's thumbnails: a frame of the ad each shipped workflow makes.

Renders the shipped demo (example_workflows/api/brief_to_ad.json) in a real headless ComfyUI, reads the
scene times from the render's own manifest, and writes example_workflows/TITLE.jpg (512×512) for every
shipped workflow: the frame in the middle of one of the ad's scenes, fitted on a blurred copy of itself.
The offline workflows (the demo, Ollama falling back to the template, the upload) make this very ad. The
model and cloud workflows make the same layout (headline, corner logo, subtitles, end card) around key
images or scenes their model draws; their card shows the demo's frame with a strip naming what draws it.

    $ADREEL_PYTHON scripts/make_thumbnails.py      (after `make setup`)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from harness import ComfyServer, load_api_workflow, node_by_type, output_files  # noqa: E402
from media import frame_at  # noqa: E402
from workflow_format import shipped_workflows  # noqa: E402

SIZE = 512
# which scene each workflow's card shows (variety in the browser), and what draws its pictures when it is
# not the offline demo
CARDS = {
    "brief_to_ad.json": (1, None),
    "brief_to_ad_ollama.json": (2, None),
    "brief_to_ad_upload.json": (4, None),
    "brief_to_ad_sdxl.json": (1, "key images: your SDXL checkpoint"),
    "brief_to_ad_i2v.json": (2, "motion: SVD image-to-video"),
    "brief_to_ad_cloud.json": (3, "scenes: a cloud video API"),
}


def card(frame: Image.Image, strip: str | None) -> Image.Image:
    k = SIZE / min(frame.size)
    bg = frame.resize((round(frame.width * k), round(frame.height * k)))
    top = (bg.height - SIZE) // 2
    thumb = bg.crop((0, top, SIZE, top + SIZE)).filter(ImageFilter.GaussianBlur(18))
    thumb = Image.eval(thumb, lambda v: int(v * 0.55))
    fg = frame.copy()
    fg.thumbnail((SIZE, SIZE - 24))
    thumb.paste(fg, ((SIZE - fg.width) // 2, (SIZE - fg.height) // 2))
    if strip:
        draw = ImageDraw.Draw(thumb)
        file = subprocess.run(["fc-match", "-f", "%{file}", "Noto Sans CJK KR:bold"], capture_output=True,
                              text=True).stdout
        font = ImageFont.truetype(file, 24) if file else ImageFont.load_default(24)
        draw.rectangle((0, SIZE - 48, SIZE, SIZE), fill=(20, 20, 24))
        draw.text((SIZE // 2, SIZE - 24), strip, font=font, fill=(255, 255, 255), anchor="mm")
    return thumb


def main() -> int:
    prompt = load_api_workflow("brief_to_ad.json")
    with ComfyServer() as server:
        result = server.run(prompt, timeout=1800)
        (path,) = output_files(server, result, node_by_type(prompt, "FFmpegAssemble")[0])[:1]
        manifest = json.load(open(os.path.splitext(path)[0] + ".json", encoding="utf-8"))
        scenes = manifest["storyboard"]["scenes"]
        w, h = manifest["storyboard"]["width"], manifest["storyboard"]["height"]
        for title, api_name in shipped_workflows(ROOT).items():
            if api_name not in CARDS:  # a workflow that makes another ad keeps the card its own tests render
                continue
            scene_no, strip = CARDS[api_name]
            sc = scenes[min(scene_no, len(scenes) - 1)]
            t = sc["start"] + sc["duration"] / 2
            frame = Image.fromarray(frame_at(path, t, w // 2, h // 2))
            out = os.path.join(ROOT, "example_workflows", f"{title}.jpg")
            card(frame, strip).save(out, quality=88)
            print(f"wrote {os.path.relpath(out, ROOT)} (scene {scene_no + 1} at {t:.2f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
