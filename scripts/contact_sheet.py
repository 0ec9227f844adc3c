#!/usr/bin/env python3
"""A contact sheet of finished ads: one frame per scene (the middle of its camera
move) plus the end card, one row per MP4 (each beside its manifest JSON).

    python scripts/contact_sheet.py docs/demo-contact-sheet.jpg ad_9x16.mp4 ad_1x1.mp4 ad_16x9.mp4
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from PIL import Image, ImageDraw, ImageFont

ROW_H = 240          # thumbnail height of every row (px)
GAP = 8


def frame(path: str, k: int, fps: float, w: int, h: int) -> Image.Image:
    """Frame ``k`` of ``path`` (ffmpeg's accurate seek: the first frame at or after the time)."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-ss", f"{max(0.0, (k - 0.5) / fps):.4f}", "-i", path,
                          "-frames:v", "1", "-vf", f"scale={w}:{h}:flags=area", "-f", "rawvideo", "-pix_fmt", "rgb24",
                          "pipe:1"], capture_output=True, check=True).stdout
    return Image.frombytes("RGB", (w, h), raw[: w * h * 3])


def row(path: str) -> tuple[str, list[Image.Image]]:
    manifest = json.load(open(os.path.splitext(path)[0] + ".json", encoding="utf-8"))
    sb = manifest["storyboard"]
    fps, W, H = sb["fps"], sb["width"], sb["height"]
    w = round(ROW_H * W / H)
    picks = [s["start_frame"] + s["frame_count"] // 2 for s in sb["scenes"]]
    end_card = sb["total_frames"] - 3
    picks = [min(k, end_card - round(0.6 * fps)) for k in picks] + [end_card]
    label = f"{manifest['brief']['aspect_ratio']}  {W}x{H}  {sb['total_duration']:g} s"
    return label, [frame(path, k, fps, w, ROW_H) for k in picks]


def contact_sheet(out: str, paths: list[str]) -> str:
    rows = [row(p) for p in paths]
    font = ImageFont.load_default()
    label_h = 22
    width = max(sum(im.width for im in ims) + GAP * (len(ims) + 1) for _, ims in rows)
    height = sum(ROW_H + label_h + GAP for _ in rows) + GAP
    sheet = Image.new("RGB", (width, height), (24, 24, 24))
    d = ImageDraw.Draw(sheet)
    y = GAP
    for label, ims in rows:
        d.text((GAP, y + 4), label + "   (one frame per scene, then the end card)", fill=(230, 230, 230), font=font)
        y += label_h
        x = GAP
        for im in ims:
            sheet.paste(im, (x, y))
            x += im.width + GAP
        y += ROW_H + GAP
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    sheet.save(out, quality=82, optimize=True)
    return out


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    print(contact_sheet(sys.argv[1], sys.argv[2:]))
