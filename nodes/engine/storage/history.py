"""Generation history: what was made, when, for which brief, where it went, what it cost.

Two sources:

* **the store** — each upload writes one small JSON index object per run at
  ``<history_prefix><run>.json`` (default ``history/``). It holds object *keys*,
  not URLs, so listing it gives fresh URLs (a presigned URL written at upload
  time would have expired).
* **a local folder** — every RenderManifest JSON file under it (rendered runs,
  uploaded or not).

Both give ``HistoryEntry`` objects, newest first.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from ..models import Brief, RenderManifest
from .config import StorageConfig, load_storage_config
from .errors import StorageError, logger
from .manifest import MAX_MANIFEST_BYTES, output_path, try_load_manifest
from .spool import SPOOL_MARKER

HISTORY_SCHEMA = "adreel.history/1"


@dataclass
class HistoryEntry:
    run: str
    timestamp: datetime
    status: str
    summary: str
    brand: str = ""
    product: str = ""
    title: str = ""
    outputs: list[dict] = field(default_factory=list)  # kind, name, url, bytes, sha256, key / path
    costs_usd: float = 0.0
    source: str = "store"  # "store" | "local"
    location: str = ""  # the index key, or the manifest path

    def to_dict(self) -> dict:
        data = asdict(self)
        data["timestamp"] = self.timestamp.isoformat()
        return data


def brief_summary(brief: Optional[Brief], title: str = "") -> str:
    if brief is None:
        return title or "(no brief)"
    text = f"{brief.brand} — {brief.product}: {brief.duration_seconds:g}s {brief.aspect_ratio} {brief.language}"
    if brief.cta:
        text += f", CTA “{brief.cta}”"
    return f"{title} · {text}" if title else text


def run_id_for(sha256: str) -> str:
    """The default run id: the first 12 hex digits of the main video's sha256."""
    return sha256[:12]


def history_key(config: StorageConfig, run: str) -> str:
    return f"{config.history_prefix}{run}.json"


def history_payload(
    *,
    run: str,
    brief: Optional[Brief],
    manifest: Optional[RenderManifest],
    outputs: list[dict],
    manifest_key: Optional[str],
    status: str,
    created: datetime,
) -> dict:
    """The index object of one run (keys only — URLs are made when it is listed)."""
    title = manifest.storyboard.title if manifest is not None else ""
    return {
        "schema": HISTORY_SCHEMA,
        "run": run,
        "created_at": created.astimezone(timezone.utc).isoformat(),
        "uploaded_at": None,
        "status": status,
        "title": title,
        "summary": brief_summary(brief, title),
        "brief": (
            {k: getattr(brief, k) for k in ("brand", "product", "cta", "duration_seconds", "aspect_ratio", "language", "goal")}
            if brief is not None
            else None
        ),
        "costs_usd": float(manifest.costs_usd) if manifest is not None else 0.0,
        "manifest_key": manifest_key,
        "outputs": outputs,
    }


_HEX12 = re.compile(r"^[0-9a-f]{12}$")


def made_by_adreel(key, sha256, config: StorageConfig) -> bool:
    """Whether ``key`` is one AdReel's uploader derives for content ``sha256``: ``<prefix><stem>-<sha12><ext>``
    or a file in an HLS group folder ``<prefix><stem>-hls-<hash12>/<name>``, never under AdReel's own
    record prefixes. A record naming anything else (another object of the bucket) gets no URL for it."""
    from .keys import RESERVED_PREFIXES, check_key

    if not isinstance(key, str) or not isinstance(sha256, str) or len(sha256) != 64:
        return False
    try:
        check_key(key)
    except Exception:  # noqa: BLE001
        return False
    head = key.split("/", 1)[0] + "/"
    if head in (config.history_prefix, *RESERVED_PREFIXES):
        return False
    parts = key.split("/")
    name = parts[-1]
    stem = name.rsplit(".", 1)[0] if "." in name else name
    if stem.endswith("-" + sha256[:12].lower()):
        return True
    return any("-hls-" in p and _HEX12.match(p.rsplit("-hls-", 1)[1]) for p in parts[:-1])


def _parse_time(value) -> Optional[datetime]:
    if not value:
        return None
    try:
        t = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def list_history_from_store(
    config: Optional[StorageConfig] = None,
    *,
    limit: int = 50,
    url_mode: Optional[str] = None,
    url_expiry_seconds: Optional[int] = None,
) -> list[HistoryEntry]:
    """The newest ``limit`` runs recorded in the store, each with fresh URLs for its outputs."""
    from .store import S3Store

    config = (config or load_storage_config()).with_choices(url_mode=url_mode, url_expiry_seconds=url_expiry_seconds)
    store = S3Store(config)
    objects = [o for o in store.list_objects(config.history_prefix) if str(o.get("Key", "")).endswith(".json")]
    objects.sort(key=lambda o: o.get("LastModified") or datetime.min.replace(tzinfo=timezone.utc), reverse=True)
    entries: list[HistoryEntry] = []
    for obj in objects[: max(0, int(limit))]:
        key = obj["Key"]
        try:
            data = json.loads(store.get_bytes(key, max_bytes=2 * 1024 * 1024))
            if not isinstance(data, dict) or data.get("schema") != HISTORY_SCHEMA:
                raise ValueError("not an AdReel history record")
        except StorageError:
            raise
        except ValueError as exc:
            logger.warning("skipping %s in the history: %s", key, type(exc).__name__)
            continue
        if key != history_key(config, str(data.get("run") or "")):
            logger.warning("skipping %s in the history: its run does not match its key", key)
            continue
        outputs = []
        for out in data.get("outputs") or []:
            if not isinstance(out, dict) or not out.get("key"):
                continue
            item = dict(out)
            if made_by_adreel(out.get("key"), out.get("sha256"), config):
                item["url"] = store.url_for(out["key"], url_mode, url_expiry_seconds)
            else:
                item["url"] = None
                logger.warning("history %s names %r, not a key AdReel made for it: no URL", key, out.get("key"))
            outputs.append(item)
        brief = data.get("brief") or {}
        entries.append(
            HistoryEntry(
                run=str(data.get("run") or key.rsplit("/", 1)[-1][:-5]),
                timestamp=_parse_time(data.get("uploaded_at")) or _parse_time(data.get("created_at")) or obj.get("LastModified"),
                status=str(data.get("status") or "unknown"),
                summary=str(data.get("summary") or ""),
                brand=str(brief.get("brand") or ""),
                product=str(brief.get("product") or ""),
                title=str(data.get("title") or ""),
                outputs=outputs,
                costs_usd=float(data.get("costs_usd") or 0.0),
                source="store",
                location=key,
            )
        )
    entries.sort(key=lambda e: e.timestamp, reverse=True)
    return entries


def _local_status(manifest: RenderManifest, missing: int) -> str:
    with_url = sum(1 for o in manifest.outputs if o.url)
    if manifest.outputs and with_url == len(manifest.outputs):
        status = "uploaded"
    elif with_url:
        status = "partially uploaded"
    else:
        status = "rendered"
    if missing:
        status += f", {missing} output file(s) missing"
    return status


def list_history_local(folder, *, limit: Optional[int] = None, max_depth: int = 6) -> list[HistoryEntry]:
    """Every RenderManifest JSON file under ``folder`` (not following symlinks), newest first.

    Other JSON files, hidden folders and spool folders are skipped. The timestamp is the manifest file's modification time.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        return []
    root_depth = len(root.resolve().parts)
    entries: list[HistoryEntry] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        if (here / SPOOL_MARKER).exists():
            dirnames[:] = []  # spooled copies are not runs of their own
            continue
        if len(here.resolve().parts) - root_depth >= max_depth:
            dirnames[:] = []
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.lower().endswith(".json") or name.startswith(".") or name.endswith(".spool.json"):
                continue
            path = here / name
            try:
                st = path.lstat()
            except OSError:
                continue
            if not os.path.isfile(path) or os.path.islink(path) or st.st_size > MAX_MANIFEST_BYTES:
                continue
            manifest = try_load_manifest(path)
            if manifest is None:
                continue
            outputs, missing = [], 0
            for out in manifest.outputs:
                local = output_path(path, out.path)
                exists = local.is_file()
                missing += 0 if exists else 1
                outputs.append({"kind": out.kind, "name": Path(out.path).name, "path": str(local), "exists": exists,
                                "url": out.url, "bytes": out.bytes, "sha256": out.sha256})
            videos = [o for o in manifest.outputs if o.kind in ("video", "mp4") or o.path.lower().endswith((".mp4", ".mov", ".webm"))]
            main = (videos or manifest.outputs or [None])[0]
            run = run_id_for(main.sha256) if main is not None else path.stem
            title = manifest.storyboard.title
            entries.append(
                HistoryEntry(
                    run=run,
                    timestamp=datetime.fromtimestamp(st.st_mtime, tz=timezone.utc),
                    status=_local_status(manifest, missing),
                    summary=brief_summary(manifest.brief, title),
                    brand=manifest.brief.brand,
                    product=manifest.brief.product,
                    title=title,
                    outputs=outputs,
                    costs_usd=float(manifest.costs_usd),
                    source="local",
                    location=str(path),
                )
            )
    entries.sort(key=lambda e: e.timestamp, reverse=True)
    return entries[:limit] if limit is not None else entries
