"""Object keys, content types and content hashes.

Keys are derived from content, so that uploading the same file twice maps to
the same object::

    <prefix><stem>-<sha256[:12]><ext>                e.g. acme/2025-05-01/3f2a9c1b4d5e/ad_9x16-3f2a9c1b4d5e.mp4
    <prefix><playlist stem>-hls-<hash[:12]>/<name>   an HLS playlist and its segments, names kept
                                                     (the playlist refers to them by name)

The prefix comes from a pattern with placeholders — ``{brand}``, ``{product}``,
``{date}`` (YYYY-MM-DD, UTC: the day the video was rendered, i.e. its file's
modification time, so a later re-upload keeps its keys), ``{year}``,
``{month}``, ``{day}``, ``{run}`` (default: the video's sha256[:12]),
``{aspect}`` (e.g. ``9x16``), ``{language}`` — each value reduced to safe
characters (letters, digits, ``-``, ``_``, ``.``); the pattern itself may not
contain ``..`` segments or backslashes, and a leading ``/`` is dropped.
"""
from __future__ import annotations

import hashlib
import re
import string
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Mapping, Optional
from urllib.parse import unquote, urlsplit

from ..models import AdReelInputError

CONTENT_TYPES: dict[str, str] = {
    ".mp4": "video/mp4",
    ".m4v": "video/x-m4v",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".gif": "image/gif",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".srt": "application/x-subrip; charset=utf-8",
    ".vtt": "text/vtt; charset=utf-8",
    ".ass": "text/x-ssa; charset=utf-8",
    ".json": "application/json",
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".m4s": "video/iso.segment",
    ".aac": "audio/aac",
    ".m4a": "audio/mp4",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".opus": "audio/ogg",
    ".ogg": "audio/ogg",
    ".txt": "text/plain; charset=utf-8",
}
KINDS: dict[str, str] = {
    **{ext: "video" for ext in (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".gif")},
    **{ext: "thumbnail" for ext in (".jpg", ".jpeg", ".png", ".webp")},
    **{ext: "subtitles" for ext in (".srt", ".vtt", ".ass")},
    **{ext: "audio" for ext in (".aac", ".m4a", ".mp3", ".wav", ".opus", ".ogg")},
    ".m3u8": "hls",
    ".json": "json",
}
PLACEHOLDERS = ("brand", "product", "date", "year", "month", "day", "run", "aspect", "language")
MAX_KEY_BYTES = 1024
_SAFE = re.compile(r"[^\w.\-]+", re.UNICODE)
_HLS_NAME = re.compile(r"^[A-Za-z0-9._\-]+$")


# What AssetUpload may send from a render's folder: media, images, subtitles, HLS parts and the manifest.
# Never markup or scripts (.html, .svg, .js, …): an object on the operator's public CDN must not become a page.
UPLOAD_EXTS = frozenset(CONTENT_TYPES) - {".txt", ".json"}  # (the manifest itself goes up on its own)
HLS_MEMBER_EXTS = frozenset({".m3u8", ".ts", ".m4s", ".mp4", ".m4a", ".aac", ".vtt"})
# Key prefixes AdReel writes itself: a workflow's prefix_pattern may not lead there.
RESERVED_PREFIXES = ("history/", "key-images/")


def content_type_for(path) -> str:
    """The Content-Type of an upload, from a fixed table. Anything else is ``application/octet-stream``:
    never a type a browser renders as a page (``text/html``, ``image/svg+xml``, ``application/xhtml+xml``)."""
    return CONTENT_TYPES.get(Path(path).suffix.lower(), "application/octet-stream")


def check_not_reserved(prefix: str, reserved=RESERVED_PREFIXES) -> str:
    """``prefix`` unless it lies under one of AdReel's own key prefixes (history records, key images)."""
    head = prefix.split("/", 1)[0].lower() + "/"
    for r in reserved:
        if head == r.lower():
            raise AdReelInputError(
                "prefix_pattern", f"starts with {r!r}, which AdReel reserves for its own "
                                  "records; choose another prefix (e.g. {brand}/{date}/{run}/)")
    return prefix


def kind_for(path) -> str:
    return KINDS.get(Path(path).suffix.lower(), "file")


def slug(value, fallback: str = "untitled", max_len: int = 64) -> str:
    """``value`` reduced to letters (any script), digits, ``-``, ``_`` and ``.`` — never ``.``/``..``."""
    text = unicodedata.normalize("NFKC", str(value or "")).strip().lower()
    text = _SAFE.sub("-", text)
    text = re.sub(r"[-.]{2,}", "-", text).strip("-.")
    text = text[:max_len].strip("-.")
    return text or fallback


def safe_filename(name: str, max_len: int = 96) -> tuple[str, str]:
    """(stem, ext) of a file name, both reduced to safe characters."""
    p = PurePosixPath(str(name).replace("\\", "/")).name
    stem, ext = Path(p).stem, Path(p).suffix.lower()
    ext = ext if re.fullmatch(r"\.[a-z0-9]{1,8}", ext) else ""
    return slug(stem, "file", max_len), ext


def render_prefix(pattern: str, values: Mapping[str, object]) -> str:
    """The key prefix for ``pattern``: placeholders filled with sanitised values; ends with ``/`` or is empty.

    Raises ``AdReelInputError`` (field ``prefix``) for an unknown placeholder, a
    ``..`` segment, a backslash or a control character.
    """
    pattern = str(pattern or "")
    if "\\" in pattern or any(unicodedata.category(c).startswith("C") for c in pattern):
        raise AdReelInputError("prefix", "must not contain backslashes or control characters")
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(pattern) if f is not None]
    except ValueError as exc:
        raise AdReelInputError("prefix", f"is not a valid pattern ({exc}); use placeholders like {{brand}}/{{date}}/") from None
    for name in fields:
        if name not in PLACEHOLDERS:
            raise AdReelInputError(
                "prefix", f"unknown placeholder {{{name}}}; use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
            )
    segments = []
    for raw in pattern.split("/"):
        if raw in ("..", "."):
            raise AdReelInputError("prefix", "must not contain '.' or '..' segments")
        if not raw:
            continue
        # fill placeholders segment by segment, each value slugged
        out = []
        for literal, name, _spec, _conv in string.Formatter().parse(raw):
            out.append(_SAFE.sub("-", unicodedata.normalize("NFKC", literal)))
            if name is not None:
                out.append(slug(values.get(name), fallback="unknown"))
        seg = re.sub(r"[-.]{2,}", "-", "".join(out)).strip("-.")
        if seg in ("", ".", ".."):
            continue
        segments.append(seg)
    prefix = "/".join(segments)
    return prefix + "/" if prefix else ""


def aspect_slug(aspect: Optional[str]) -> str:
    return str(aspect or "").replace(":", "x") or "unknown"


@dataclass(frozen=True)
class FileDigest:
    """sha256 and md5 of a file, plus the md5 of each ``part_size`` part (for a multipart ETag)."""

    size: int
    sha256: str
    md5: str
    part_size: int
    part_md5s: tuple[bytes, ...] = field(repr=False, default=())

    def expected_etag(self, multipart_threshold: int) -> str:
        """The ETag S3 gives an unencrypted object uploaded by boto3 with these settings."""
        if self.size < multipart_threshold or not self.part_md5s:
            return self.md5
        combined = hashlib.md5(b"".join(self.part_md5s)).hexdigest()
        return f"{combined}-{len(self.part_md5s)}"


def digest_file(path, part_size: int) -> FileDigest:
    sha, md5 = hashlib.sha256(), hashlib.md5()
    parts: list[bytes] = []
    size = 0
    with open(path, "rb") as fh:
        while True:
            block = fh.read(part_size)
            if not block:
                break
            size += len(block)
            sha.update(block)
            md5.update(block)
            parts.append(hashlib.md5(block).digest())
    return FileDigest(size=size, sha256=sha.hexdigest(), md5=md5.hexdigest(), part_size=part_size, part_md5s=tuple(parts))


_SAVE_COUNTER = re.compile(r"_\d{5}_?(?=$|_)")


def content_key(prefix: str, name: str, sha256: str) -> str:
    """``prefix + name-<sha12>.ext``. ComfyUI's save counter (``_00003_``) is left out:
    the same bytes saved again under a new counter are the same object."""
    stem, ext = safe_filename(name)
    stem = _SAVE_COUNTER.sub("", stem) or stem
    key = f"{prefix}{stem}-{sha256[:12]}{ext}"
    check_key(key)
    return key


def check_key(key: str) -> str:
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise AdReelInputError("prefix", f"the object key would be longer than {MAX_KEY_BYTES} bytes; use a shorter prefix")
    if key.startswith("/") or any(seg in ("", ".", "..") for seg in key.split("/")):
        raise AdReelInputError("prefix", "makes an unsafe object key (empty, '.' or '..' parts, or a leading /)")
    return key


_URI_ATTR = re.compile(r'URI="([^"]+)"')


def hls_references(playlist: Path) -> list[str]:
    """Relative URIs a playlist refers to (segments, variant playlists, init maps, keys)."""
    try:
        text = playlist.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise AdReelInputError("files", f"cannot read HLS playlist {playlist.name}: {type(exc).__name__}") from None
    if not text.lstrip().startswith("#EXTM3U"):
        raise AdReelInputError("files", f"{playlist.name} is not an HLS playlist (no #EXTM3U header)")
    refs: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            refs.extend(_URI_ATTR.findall(line))
        else:
            refs.append(line)
    local = []
    for ref in refs:
        parts = urlsplit(ref)
        if parts.scheme or parts.netloc:
            continue  # an absolute URL: not a local file
        local.append(unquote(parts.path))
    return list(dict.fromkeys(local))


def hls_members(playlist: Path) -> list[tuple[Path, str]]:
    """The playlist and every local file it needs (recursively), as (path, path relative to its folder)."""
    root = playlist.parent.resolve()
    stem, ext = safe_filename(playlist.name)
    seen: dict[Path, str] = {playlist.resolve(): stem + ext}
    queue = [playlist.resolve()]
    while queue:
        current = queue.pop()
        if current.suffix.lower() != ".m3u8":
            continue
        for ref in hls_references(current):
            target = (current.parent / ref).resolve()
            try:
                rel = target.relative_to(root).as_posix()
            except ValueError:
                raise AdReelInputError(
                    "files", f"HLS playlist {current.name} refers to a file outside the playlist's folder"
                ) from None
            if not all(_HLS_NAME.match(seg) for seg in rel.split("/")):
                raise AdReelInputError(
                    "files", f"HLS playlist {current.name} refers to a file by a name that is not plain: use names of letters, digits, '.', '-', '_'"
                )
            if target.suffix.lower() not in HLS_MEMBER_EXTS:
                raise AdReelInputError(
                    "files", f"HLS playlist {current.name} refers to a file that is not an HLS segment or playlist")
            if not target.is_file():
                raise AdReelInputError("files", f"HLS playlist {current.name} refers to a file that does not exist")
            if target not in seen:
                seen[target] = rel
                queue.append(target)
    return [(p, rel) for p, rel in seen.items()]
