"""Key images for providers: checked locally before any paid call.

A key image must be a PNG, JPEG or WebP file (recognised by its magic bytes,
not its name), decodable, and within ``MAX_IMAGE_BYTES``. Each provider then
gets the form it accepts: a ``data:`` URI (Runway ≤5 MB, fal, Replicate), raw
base64 (Veo) or a hosted https URL (Luma; Runway above 5 MB).
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..models import AdReelInputError

MAX_IMAGE_BYTES = 20 * 1024 * 1024  # AdReel's own cap for an image sent inline in a JSON request
MAX_IMAGE_PIXELS = 8192 * 8192


def sniff_image_type(head: bytes) -> Optional[str]:
    """The MIME type from magic bytes, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


@dataclass(frozen=True)
class ImageInfo:
    path: Path
    mime: str
    width: int
    height: int
    size: int

    @property
    def aspect(self) -> float:
        return self.width / self.height

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()

    def base64(self) -> str:
        return base64.b64encode(self.read_bytes()).decode("ascii")

    def data_uri(self) -> str:
        return f"data:{self.mime};base64,{self.base64()}"

    def data_uri_length(self) -> int:
        """Length of ``data_uri()`` without building it."""
        return len(f"data:{self.mime};base64,") + 4 * ((self.size + 2) // 3)


def load_image(path, field: str = "image") -> ImageInfo:
    """Check ``path`` is a real PNG/JPEG/WebP image within limits; AdReelInputError otherwise."""
    if path is None or str(path).strip() == "":
        raise AdReelInputError(field, "no image file given")
    p = Path(path).expanduser()
    if not p.is_file():
        raise AdReelInputError(field, f"image file {p} does not exist")
    size = p.stat().st_size
    if size == 0:
        raise AdReelInputError(field, f"image file {p} is empty")
    if size > MAX_IMAGE_BYTES:
        raise AdReelInputError(
            field, f"image file {p} is {size / 1e6:.1f} MB; the limit is {MAX_IMAGE_BYTES / 1e6:.0f} MB — resize or re-encode it as JPEG"
        )
    with p.open("rb") as fh:
        head = fh.read(16)
    mime = sniff_image_type(head)
    if mime is None:
        raise AdReelInputError(field, f"{p} is not a PNG, JPEG or WebP image (by its content, whatever its name)")
    try:
        from PIL import Image

        with Image.open(p) as im:
            width, height = im.size
            im.verify()
    except Exception as exc:  # PIL raises many kinds for broken files
        raise AdReelInputError(field, f"{p} cannot be decoded as {mime} ({type(exc).__name__}: {exc})") from None
    if width * height > MAX_IMAGE_PIXELS:
        raise AdReelInputError(field, f"{p} is {width}×{height}; at most {MAX_IMAGE_PIXELS // 1_000_000} Mpx is accepted")
    if width < 16 or height < 16:
        raise AdReelInputError(field, f"{p} is {width}×{height}; a key image needs at least 16×16 pixels")
    return ImageInfo(path=p, mime=mime, width=width, height=height, size=size)
