"""Read a RenderManifest file and write the uploaded URLs into it, in place."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Mapping, Optional

from ..models import AdReelInputError, RenderManifest, parse_model

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


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def write_manifest(path, manifest: RenderManifest) -> None:
    """Atomically replace ``path`` with ``manifest`` (a reader never sees half a file)."""
    path = Path(path)
    text = manifest.model_dump_json(indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.chmod(tmp, path.stat().st_mode & 0o777)
        except OSError:
            pass
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


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
    the URL they had. Returns the updated manifest. The file is left untouched
    when nothing changes.
    """
    manifest = load_manifest(manifest_path)
    if set_manifest_urls(manifest, manifest_path, urls):
        write_manifest(manifest_path, manifest)
    return manifest
