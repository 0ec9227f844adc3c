"""Read a RenderManifest file, find what it lists (confined to its own folder), write URLs into it.

Every manifest under ComfyUI's input/output is untrusted: anyone who can reach
ComfyUI can upload one (any name, any content, ``overwrite=true``). So:

* ``manifest_beside(video)`` is the render's manifest by **exact name**
  (``<video stem>.json`` in the video's folder, a regular file, not a link);
* ``confined_outputs`` keeps only the outputs that are the render's own files:
  inside the manifest's folder (real path, no link anywhere on the way), named
  after the video (``<stem>…``), with an extension AdReel uploads
  (``keys.UPLOAD_EXTS``) — never ``/etc/passwd``, ``~/.aws/credentials``,
  ``../storage.json`` or an ``.html``/``.svg`` page;
* what AdReel writes back into a manifest file carries no absolute server
  path and no presigned URL (``public_form``, ``durable_urls``): paths relative
  to the manifest's folder, input images by file name, and for each output its
  public/CDN URL or ``s3://bucket/key``. Presigned URLs go only to the node's
  own output.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path, PurePosixPath
from typing import Mapping, Optional

from ..models import AdReelInputError, RenderManifest, parse_model
from ..media.files import write_atomic
from .keys import UPLOAD_EXTS

MAX_MANIFEST_BYTES = 20 * 1024 * 1024


def load_manifest(path) -> RenderManifest:
    """The manifest at ``path``; ``AdReelInputError`` (field ``manifest``) when it is not one."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise AdReelInputError("manifest", f"{path.name} is larger than {MAX_MANIFEST_BYTES // (1024 * 1024)} MiB")
        data = json.loads(path.read_text(encoding="utf-8"))
    except AdReelInputError:
        raise
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise AdReelInputError("manifest", f"cannot read {path}: {type(exc).__name__}") from None
    return parse_model(RenderManifest, data, "manifest")


def try_load_manifest(path) -> Optional[RenderManifest]:
    try:
        return load_manifest(path)
    except AdReelInputError:
        return None


def manifest_identity(manifest: RenderManifest) -> str:
    """sha256 of the manifest with every URL removed: the same render gives the same identity
    whatever URLs (presigned ones change each time) were written into it."""
    data = manifest.model_dump(mode="json")
    for out in data.get("outputs", []):
        out["url"] = None
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def output_path(manifest_path: Path, recorded: str) -> Path:
    """An output's path as recorded in the manifest; a relative one is relative to the manifest's folder."""
    p = Path(recorded).expanduser()
    return p if p.is_absolute() else (Path(manifest_path).parent / p)


def manifest_beside(video) -> Optional[Path]:
    """The render's manifest: exactly ``<stem>.json`` beside ``video`` (a regular file, not a link), else None.
    Look-alikes (``<stem>.a.json``, ``<stem>.x.json``) are never considered."""
    video = Path(video)
    candidate = video.parent / (video.stem + ".json")
    try:
        st = os.lstat(candidate)
    except OSError:
        return None
    return candidate if stat.S_ISREG(st.st_mode) else None


def confined_path(folder: Path, recorded: str, stem: Optional[str] = None) -> tuple[Optional[Path], str]:
    """``(path, "")`` when ``recorded`` names a regular file inside ``folder`` with no link on the way, an
    extension AdReel uploads and (with ``stem``) a first path component starting with the video's stem;
    else ``(None, why)``."""
    root = Path(os.path.realpath(folder))
    raw = Path(os.path.expanduser(str(recorded))) if str(recorded).startswith("~") else Path(str(recorded))
    candidate = Path(os.path.normpath(raw if raw.is_absolute() else root / raw))
    if not candidate.is_relative_to(root) or candidate == root:
        # a manifest written before the folder was moved or renamed names the old absolute path: same folder name
        return None, "outside the render's folder"
    rel = candidate.relative_to(root)
    if stem is not None and not rel.parts[0].startswith(stem):
        return None, "not one of this render's files"
    if candidate.suffix.lower() not in UPLOAD_EXTS:
        return None, f"a {candidate.suffix or 'file without extension'} is not uploaded"
    if os.path.realpath(candidate) != str(candidate):
        return None, "a symbolic link"
    try:
        st = os.lstat(candidate)
    except OSError:
        return None, "missing"
    if not stat.S_ISREG(st.st_mode):
        return None, "not a regular file"
    return candidate, ""


def confined_outputs(manifest: RenderManifest, manifest_path, stem: Optional[str] = None) -> tuple[list, list[str]]:
    """``([(path, OutputFile), …], notes)``: the manifest's outputs that pass ``confined_path``."""
    folder = Path(manifest_path).parent
    kept, notes = [], []
    for out in manifest.outputs:
        path, why = confined_path(folder, out.path, stem)
        if path is None:
            notes.append(f"{PurePosixPath(str(out.path).replace(chr(92), '/')).name or '?'}: {why}")
        else:
            kept.append((path, out))
    return kept, notes


def public_form(manifest: RenderManifest, manifest_path) -> RenderManifest:
    """A copy fit for a file anyone may read (ComfyUI's ``/view``, the bucket, a CDN): output paths relative to
    the manifest's folder, the brief's input images by file name only, no presigned URL."""
    data = manifest.model_dump(mode="python")
    root = Path(os.path.realpath(Path(manifest_path).parent))
    for out in data.get("outputs", []):
        p = Path(str(out.get("path") or ""))
        full = Path(os.path.normpath(p if p.is_absolute() else root / p))
        out["path"] = full.relative_to(root).as_posix() if full.is_relative_to(root) and full != root else p.name
        if out.get("url") and is_presigned(out["url"]):
            out["url"] = None
    holders = [data.get("brief"), (data.get("storyboard") or {}).get("brief"), data.get("storyboard")]
    holders += list((data.get("storyboard") or {}).get("scenes") or [])
    for brief in holders:
        if isinstance(brief, dict):
            for k in ("logo_path", "product_image_path"):
                if brief.get(k):
                    brief[k] = PurePosixPath(str(brief[k]).replace("\\", "/")).name
    return RenderManifest.model_validate(data)


_SIGNATURE_PARAMS = ("x-amz-signature=", "x-amz-credential=", "signature=", "x-goog-signature=", "sig=")


def is_presigned(url: str) -> bool:
    low = str(url).lower()
    return "?" in low and any(p in low.split("?", 1)[1] for p in _SIGNATURE_PARAMS)


def durable_url(store, key: str, mode: Optional[str] = None) -> str:
    """What a manifest file records for an object: its public/CDN URL where the store has one (URL mode
    ``public``, or ``auto`` with a public base URL), else ``s3://bucket/key`` — never a presigned URL
    (it expires, and it hands read access to whoever can read the file)."""
    cfg = store.config
    mode = (mode or cfg.url_mode or "auto").lower()
    if mode == "public" or (mode == "auto" and cfg.public_base_url):
        return store.url_for(key, "public")
    return store.url_for(key, "s3")


def durable_urls(store, keys: Mapping[str, str], mode: Optional[str] = None) -> dict[str, str]:
    return {sha: durable_url(store, key, mode) for sha, key in keys.items()}


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def write_manifest(path, manifest: RenderManifest) -> None:
    """Atomically replace ``path`` with ``manifest`` (a reader never sees half a file)."""
    path = Path(path)
    write_atomic(path, manifest.model_dump_json(indent=2) + "\n", keep_mode=True)


def set_manifest_urls(manifest: RenderManifest, manifest_path, urls: Mapping[str, str]) -> int:
    """Set ``OutputFile.url`` on ``manifest`` (in memory) for each output found in ``urls``.

    ``urls`` maps a local file path, or a sha256 hex digest, to the URL. An output
    matches by path first, then by checksum. Returns how many outputs changed.
    """
    by_sha = {k.lower(): v for k, v in urls.items() if len(k) == 64 and all(c in "0123456789abcdefABCDEF" for c in k)}
    by_path = [(Path(k), v) for k, v in urls.items() if k.lower() not in by_sha]
    changed = 0
    for out in manifest.outputs:
        url = None
        recorded = output_path(Path(manifest_path), out.path)
        for p, u in by_path:
            if _same_file(p, recorded):
                url = u
                break
        if url is None:
            url = by_sha.get(out.sha256.lower())
        if url is not None and out.url != url:
            out.url = url
            changed += 1
    return changed


def update_manifest_urls(manifest_path, urls: Mapping[str, str]) -> RenderManifest:
    """Write uploaded URLs into the manifest file at ``manifest_path``, in place (atomically).

    ``urls`` maps a local output path or a sha256 to its URL; outputs not in it keep
    the URL they had. Presigned URLs are never written; the file is saved in its
    public form (``public_form``). Returns the updated manifest. The file is left
    untouched when nothing changes.
    """
    original = load_manifest(manifest_path)
    manifest = public_form(original, manifest_path)
    set_manifest_urls(manifest, manifest_path, {k: v for k, v in urls.items() if not is_presigned(v)})
    if manifest != original:
        write_manifest(manifest_path, manifest)
    return manifest


def normalize_manifest_file(manifest_path) -> RenderManifest:
    """Rewrite the manifest file in its public form (``public_form``) when it is not already; return it."""
    return update_manifest_urls(manifest_path, {})
