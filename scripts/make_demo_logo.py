#!/usr/bin/env python3
"""Draw the demo brand's logo, deterministically, with Pillow and a system font.

assets/demo/acme_logo.png: "ACME COFFEE" — a crema-gold coffee bean in a cream
roundel and the wordmark, on an espresso-brown pill, transparent around it
(RGBA, 360 px high). Drawn by this script from nothing but shapes and Noto Sans CJK
Bold (fonts-noto-cjk, SIL OFL 1.1, which allows rendering text with it into an
image); released under CC0 1.0 (see assets/demo/LICENSE.md). The pill keeps
the logo readable over any scene, as a brand's own lock-up does.
"""
import os
import subprocess

from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "assets", "demo", "acme_logo.png")
ESPRESSO, CREMA, CREAM = (46, 26, 18), (214, 160, 84), (246, 236, 216)
SS = 4  # supersampling: drawn 4x, then reduced, for smooth edges


def bold_font(px: int) -> ImageFont.FreeTypeFont:
    spec = subprocess.run(["fc-match", "-f", "%{file}\t%{index}", "Noto Sans CJK KR:style=Bold"],
                          capture_output=True, text=True, check=True).stdout
    path, index = spec.split("\t")
    return ImageFont.truetype(path, px, index=int(index or 0))


def main() -> None:
    H = 360 * SS
    big, small = bold_font(150 * SS), bold_font(50 * SS)
    pad = 18 * SS
    r = (H - 2 * pad) // 2 - 26 * SS
    text_w = max(big.getlength("ACME"), small.getlength("COFFEE ROASTERS") + 6 * SS)
    W = int(pad + 26 * SS + 2 * r + 44 * SS + text_w + 70 * SS + pad)
    img = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((pad, pad, W - pad, H - pad), radius=(H - 2 * pad) // 2, fill=ESPRESSO + (255,))
    # roundel with a coffee bean
    cx, cy = pad + 26 * SS + r, H // 2
    d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=CREAM + (255,))
    bean = Image.new("RGBA", (2 * r, 2 * r), (0, 0, 0, 0))
    b = ImageDraw.Draw(bean)
    bw, bh = int(r * 0.62), int(r * 0.86)
    b.ellipse((r - bw, r - bh, r + bw, r + bh), fill=CREMA + (255,))
    b.arc((r - bw * 1.05, r - bh * 1.02, r + bw * 0.35, r + bh * 1.02), start=-70, end=70,
          fill=ESPRESSO + (255,), width=int(r * 0.13))
    bean = bean.rotate(-32, resample=Image.BICUBIC)
    img.alpha_composite(bean, (cx - r, cy - r))
    # wordmark
    x0 = cx + r + 44 * SS
    d.text((x0, cy - 12 * SS), "ACME", font=big, fill=CREAM + (255,), anchor="ls")
    d.text((x0 + 6 * SS, cy + 62 * SS), "COFFEE ROASTERS", font=small, fill=CREMA + (255,), anchor="ls")
    img = img.resize((W // SS, H // SS), Image.LANCZOS)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    img.save(OUT, optimize=True)
    print(OUT)


if __name__ == "__main__":
    main()
