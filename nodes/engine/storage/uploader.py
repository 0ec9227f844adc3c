"""Upload a finished ad and the files that came with it; spool what cannot be uploaded.

``upload_ad`` is the one call the ``AssetUpload`` node makes:

1. collect the files — the video, the extras the caller names, the manifest
   and, by default, the outputs the manifest lists, **confined** to the
   manifest's folder and named after the video (see ``manifest``: a manifest
   is untrusted input; one that does not list the video is not this render's
   and is ignored), each checked against the sha256 the manifest records;
2. hash them and derive content keys under the rendered prefix (see ``keys``);
3. upload each one HEAD-first (an identical object is not uploaded again),
   multipart above the configured threshold, with its Content-Type, and verify
   what the store holds;
4. write the URLs into the manifest file (in place, in its public form: no
   absolute path, no presigned URL), upload the manifest, then the run's
   history record (written once: never over another run's record);
5. before the first request, the batch's records are written into the spool
   as intents, so that a crash or ``kill -9`` at any point is finished by the
   next retry cycle; each record goes once the store holds its object;
6. on any failure — store down, timeout, 5xx, bucket missing, refused — copy the
   files not yet uploaded into the spool and return ``status == "spooled"`` with
   the reason; wrong credentials raise ``StorageCredentialsError`` *after* the
   files were spooled. The original files are never moved or deleted.
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Optional, Union

from ..models import AdReelInputError, Brief, RenderManifest, parse_model
from .config import StorageConfig, load_storage_config
from .errors import StorageCredentialsError, StorageError, StorageUnavailable, logger
from ..cloud.redaction import redact
from .history import history_key, history_payload, run_id_for
from .keys import (
    RESERVED_PREFIXES,
    FileDigest,
    aspect_slug,
    check_key,
    check_not_reserved,
    content_key,
    content_type_for,
    digest_file,
    hls_members,
    kind_for,
    render_prefix,
    safe_filename,
    slug,
)
from .manifest import (
    confined_outputs,
    durable_url,
    load_manifest,
    manifest_identity,
    normalize_manifest_file,
    try_load_manifest,
    update_manifest_urls,
)
from .spool import (
    RetryReport,
    crash_point,
    list_spooled,
    mark_active,
    new_batch_id,
    record_intent,
    retry_spooled,
    spool_file,
    spool_record,
)
from .store import IMMUTABLE, S3Store

ProgressFn = Callable[[dict], None]


@dataclass
class UploadedFile:
    path: str
    key: str
    kind: str
    role: str  # "output" | "hls-member" | "manifest"
    content_type: str
    bytes: int
    sha256: str
    status: str  # "uploaded" | "exists" | "spooled"
    url: Optional[str] = None
    etag: Optional[str] = None
    spool_path: Optional[str] = None
    error: Optional[str] = None


def progress_line(event: dict) -> tuple[float, str]:
    """An ``upload_ad`` progress event → (fraction done 0..1, one line for a progress display)."""
    mb = lambda n: f"{n / 1e6:.1f} MB"  # noqa: E731
    total = max(1, event["bytes_total"])
    return (min(1.0, event["bytes_done"] / total),
            f"uploading {event['file']} · {event['files_done']}/{event['files_total']} files · "
            f"{mb(event['bytes_done'])} / {mb(event['bytes_total'])}")


@dataclass
class UploadResult:
    status: str  # "uploaded" (everything is in the store) | "spooled" (some files wait in the spool)
    bucket: str
    endpoint: str
    run: str
    prefix: str
    files: list[UploadedFile] = field(default_factory=list)
    url: Optional[str] = None  # the main video's URL
    reason: Optional[str] = None
    reason_code: Optional[str] = None
    manifest_path: Optional[str] = None
    manifest_key: Optional[str] = None
    history_key: Optional[str] = None
    spool_dir: Optional[str] = None
    notes: list[str] = field(default_factory=list)
    retry: Optional[RetryReport] = None

    @property
    def uploaded(self) -> list[UploadedFile]:
        return [f for f in self.files if f.status in ("uploaded", "exists")]

    @property
    def spooled(self) -> list[UploadedFile]:
        return [f for f in self.files if f.status == "spooled"]

    @property
    def urls(self) -> dict[str, str]:
        """File name → URL for every uploaded output (HLS: the playlist only)."""
        return {Path(f.path).name: f.url for f in self.files if f.url and f.role != "hls-member"}

    def describe(self, video, retry_seconds: float, shown: Callable[[str], str]) -> str:
        """The upload as a user reads it: where the files went, or why they wait in the spool and when they
        are retried. ``video``: the local video; ``shown``: path → how a network user may see it (never an
        absolute server path, e.g. ``local.shown_path``)."""
        up = self.uploaded
        already = sum(1 for f in up if f.status == "exists")
        where = f"s3://{self.bucket}/{self.prefix}"
        if self.status == "uploaded":
            lines = [f"Uploaded {len(up)} file(s) to {where}" + (f" ({already} already there)" if already else "")]
            lines.append(f"video: {self.url}")
        else:
            lines = [
                f"Spooled: {len(self.spooled)} file(s) kept in the local spool (ADREEL_SPOOL_DIR)",
                f"why: {redact(self.reason)}",
                f"They will be uploaded by the background retry (every {retry_seconds:g}s while ComfyUI runs) "
                "or by the next AssetUpload run, exactly once.",
                f"local: {shown(str(video))}",
            ]
            if up:
                lines.insert(1, f"{len(up)} file(s) did reach {where}")
        # notes are redacted already; again here, but never the URLs (a presigned URL carries the access key
        # id — not a secret — and masking it would break the link)
        lines += [redact(n) for n in self.notes if n]
        return "\n".join(lines)

    def payload(self, video, shown: Callable[[str], str]) -> dict:
        """JSON-ready: keys, URLs (presigned ones included: the operator asked for them), files as ``shown``
        gives them; no absolute path, no spool location."""
        files = []
        for f in self.files:
            if f.role == "hls-member":
                continue
            files.append({"name": Path(f.path).name, "kind": f.kind, "role": f.role, "status": f.status,
                          "key": f.key, "url": f.url, "local": shown(f.path), "spooled": bool(f.spool_path),
                          "content_type": f.content_type, "bytes": f.bytes, "sha256": f.sha256})
        return {
            "status": self.status, "url": self.url or shown(str(video)), "video": shown(str(video)),
            "bucket": self.bucket, "prefix": self.prefix, "run": self.run, "urls": self.urls,
            "manifest_key": self.manifest_key, "reason": redact(self.reason) if self.reason else None,
            "reason_code": self.reason_code, "files": files, "notes": [redact(n) for n in self.notes if n],
        }


@dataclass
class _Item:
    path: Path
    kind: str
    role: str
    digest: FileDigest
    key: str = ""
    content_type: str = ""
    cache_control: Optional[str] = IMMUTABLE
    rel: Optional[str] = None  # HLS: path inside the group folder


def _progress_sink(progress: Optional[ProgressFn], total_files: int, total_bytes: int):
    state = {"bytes": 0, "files": 0}
    lock = threading.Lock()

    def emit(stage: str, name: str, add_bytes: int = 0, file_done: bool = False):
        if progress is None:
            return
        with lock:
            state["bytes"] = max(0, min(total_bytes, state["bytes"] + add_bytes))
            state["files"] += 1 if file_done else 0
            event = {"stage": stage, "file": name, "files_done": state["files"], "files_total": total_files,
                     "bytes_done": state["bytes"], "bytes_total": total_bytes}
        try:
            progress(event)
        except Exception as exc:  # noqa: BLE001 - a UI callback must not break an upload
            logger.debug("progress callback failed: %s", type(exc).__name__)

    return emit


def _as_brief(brief) -> Optional[Brief]:
    if brief is None or isinstance(brief, Brief):
        return brief
    return parse_model(Brief, brief, "brief")


def _collect(video_path, extra_files, manifest_path, include_manifest_outputs):
    """Validated local files (resolved, deduplicated), the primary one, the manifest, and what the manifest
    says each listed file is (kind, sha256). Manifest outputs are confined (``manifest.confined_outputs``)."""
    given: list[Path] = []
    for raw in ([video_path] if video_path else []) + [p for p in (extra_files or []) if p]:
        p = Path(str(raw)).expanduser()
        if not p.is_file():
            raise AdReelInputError("files", f"{p.name} does not exist or is not a file")
        given.append(p.resolve())
    notes: list[str] = []
    manifest: Optional[RenderManifest] = None
    if manifest_path:
        manifest_path = Path(str(manifest_path)).expanduser().resolve()
        manifest = load_manifest(manifest_path)
    else:
        for p in given:
            if p.suffix.lower() == ".json":
                manifest = try_load_manifest(p)
                if manifest is not None:
                    manifest_path = p
                    break
    files = [p for p in dict.fromkeys(given) if p != manifest_path]
    if not files:
        raise AdReelInputError("files", "nothing to upload: give the video path (and any extra files)")
    if video_path:
        primary = Path(str(video_path)).expanduser().resolve()
    else:
        videos = [p for p in files if kind_for(p) == "video"]
        primary = (videos or files)[0]
    listed: dict[Path, tuple[str, str]] = {}  # path -> (kind, sha256 the manifest records)
    if manifest is not None:
        stem = primary.stem if primary.parent == manifest_path.parent else None
        kept, skipped = confined_outputs(manifest, manifest_path, stem)
        names_primary = any(p == primary for p, _ in kept)
        if not names_primary:
            primary_sha = _sha256(primary)
            names_primary = any(out.sha256.lower() == primary_sha for out in manifest.outputs)
        if not names_primary:
            notes.append(f"{manifest_path.name} does not list {primary.name}: it is not this render's manifest, "
                         "so neither it nor the files it names were uploaded")
            manifest, manifest_path = None, None
        else:
            if skipped:
                notes.append(f"{manifest_path.name} names {len(skipped)} file(s) that are not this render's and "
                             f"were not uploaded ({'; '.join(skipped[:5])})")
            for p, out in kept:
                listed[p] = (out.kind, out.sha256.lower())
                if include_manifest_outputs and p not in files:
                    files.append(p)
    return files, primary, manifest, manifest_path, listed, notes


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def upload_ad(
    video_path: Union[str, Path, None],
    extra_files: Iterable[Union[str, Path]] = (),
    *,
    manifest_path: Union[str, Path, None] = None,
    brief: Union[Brief, dict, None] = None,
    run_id: Optional[str] = None,
    prefix_pattern: Optional[str] = None,
    url_mode: Optional[str] = None,
    url_expiry_seconds: Optional[int] = None,
    config: Optional[StorageConfig] = None,
    spool_dir: Union[str, Path, None] = None,
    include_manifest_outputs: bool = True,
    write_history: bool = True,
    retry_spool: bool = True,
    now: Optional[datetime] = None,
    progress: Optional[ProgressFn] = None,
) -> UploadResult:
    """Upload a finished ad and its companion files; see the module docstring.

    ``prefix_pattern``, ``url_mode``, ``url_expiry_seconds`` and ``spool_dir`` are
    the caller's non-secret choices (they may come from node widgets); endpoint,
    bucket and credentials come from ``config`` or ``load_storage_config()``.
    ``run_id`` defaults to the first 12 hex digits of the video's sha256 and
    ``{date}`` is the video's render date (file modification time, UTC), so the
    same video maps to the same keys whenever it is uploaded (a caller that
    passes a per-queue ``run_id`` gets a new prefix, and new objects, per run).
    With ``retry_spool`` a successful upload then retries whatever waits in the
    spool (``result.retry``). ``progress`` receives dicts with ``stage``,
    ``file``, ``files_done``, ``files_total``, ``bytes_done``, ``bytes_total``.

    Raises ``AdReelInputError`` for a missing file or a bad prefix pattern,
    ``StorageNotConfigured`` / ``StorageConfigError`` when the store is not set
    up, ``StorageCredentialsError`` (after spooling) for rejected credentials.
    """
    cfg = (config or load_storage_config(spool_dir=spool_dir)).with_choices(
        prefix_pattern=prefix_pattern, url_mode=url_mode, url_expiry_seconds=url_expiry_seconds, spool_dir=spool_dir
    )
    files = collect_files(video_path, extra_files, manifest_path, include_manifest_outputs)
    plan = plan_upload(files, files.manifest, cfg, brief=brief, run_id=run_id)
    store = S3Store(cfg)
    store.client  # a configuration problem (unknown profile, …) raises here, before anything is spooled
    return execute_upload(plan, store, now=now, progress=progress, write_history=write_history,
                          retry_spool=retry_spool)


@dataclass
class UploadFiles:
    """What ``collect_files`` found: the local files (the video first), the manifest that is this
    render's (or None), and what it records for each listed file (kind, sha256)."""

    paths: list[Path]
    primary: Path
    manifest: Optional[RenderManifest]
    manifest_path: Optional[Path]
    listed: dict[Path, tuple[str, str]]
    notes: list[str]


@dataclass
class UploadPlan:
    """Every object one upload writes — its local file, kind, role and content key — decided before
    any request: ``plan_upload`` makes it from local files alone, ``execute_upload`` sends it."""

    cfg: StorageConfig
    items: list[_Item]
    primary: Path
    manifest: Optional[RenderManifest]
    manifest_path: Optional[Path]
    manifest_key: Optional[str]
    groups: dict[Path, list[tuple[Path, str]]]
    brief: Optional[Brief]
    run: str
    prefix: str
    notes: list[str]

    @property
    def keys(self) -> list[str]:
        return [it.key for it in self.items] + ([self.manifest_key] if self.manifest_key else [])


def collect_files(video_path, extra_files=(), manifest_path=None, include_manifest_outputs=True) -> UploadFiles:
    """The files of one upload (see ``_collect``)."""
    return UploadFiles(*_collect(video_path, extra_files, manifest_path, include_manifest_outputs))


def plan_upload(files: UploadFiles, manifest: Optional[RenderManifest], cfg: StorageConfig, *,
                brief: Union[Brief, dict, None] = None, run_id: Optional[str] = None) -> UploadPlan:
    """The upload's objects and keys, from local files only (no store is asked): each file hashed and
    checked against what ``manifest`` records, HLS playlists grouped with their segments, the prefix
    rendered from ``cfg.prefix_pattern``. The manifest file is rewritten in its public form here."""
    paths, primary, manifest_path, listed = list(files.paths), files.primary, files.manifest_path, files.listed
    notes = list(files.notes)
    if manifest is None:
        manifest_path = None
    brief_obj = _as_brief(brief) or (manifest.brief if manifest is not None else None)

    chunk = cfg.multipart_chunksize
    digests = {p: digest_file(p, chunk) for p in paths}
    # a listed file whose bytes are not what the render recorded is not the render's any more
    changed = [p for p in paths if p in listed and p != primary and digests[p].sha256 != listed[p][1]]
    if changed:
        notes.append(f"{len(changed)} file(s) differ from what {manifest_path.name} records and were not uploaded "
                     f"({', '.join(p.name for p in changed[:5])})")
        paths = [p for p in paths if p not in changed]
    kinds = {p: kind for p, (kind, _sha) in listed.items()}

    # HLS playlists pull in their segments; those then travel as a group.
    groups: dict[Path, list[tuple[Path, str]]] = {p: hls_members(p) for p in paths if p.suffix.lower() == ".m3u8"}
    # a variant playlist that a master playlist (also given) refers to travels inside the master's group
    nested = {t for t in groups if any(t != top and t in {m for m, _ in g} for top, g in groups.items())}
    for t in nested:
        groups.pop(t)
    members = {m for g in groups.values() for m, _ in g}
    for m in members - set(digests):
        digests[m] = digest_file(m, chunk)

    run = slug(run_id, fallback="run", max_len=48) if run_id else run_id_for(digests[primary].sha256)
    # {date} is the day the video was rendered (its modification time, UTC), not the upload day:
    # uploading the same file again — or from the spool days later — gives the same keys.
    made = datetime.fromtimestamp(primary.stat().st_mtime, tz=timezone.utc)
    values = {
        "brand": brief_obj.brand if brief_obj else "unbranded",
        "product": brief_obj.product if brief_obj else "product",
        "aspect": aspect_slug(brief_obj.aspect_ratio if brief_obj else None),
        "language": brief_obj.language if brief_obj else "und",
        "date": made.strftime("%Y-%m-%d"), "year": made.strftime("%Y"), "month": made.strftime("%m"), "day": made.strftime("%d"),
        "run": run,
    }
    prefix = check_not_reserved(render_prefix(cfg.prefix_pattern, values),
                                (cfg.history_prefix, *RESERVED_PREFIXES))

    items: list[_Item] = []
    singles = [p for p in paths if p not in members]
    singles.sort(key=lambda p: (p != primary))  # the video first
    for p in singles:
        items.append(_Item(p, kinds.get(p, kind_for(p)), "output", digests[p], content_key(prefix, p.name, digests[p].sha256)))
    for top, group in groups.items():
        items += _group_items(prefix, top, group, digests, kinds)
    for it in items:
        it.content_type = content_type_for(it.path)

    manifest_key = None
    if manifest is not None:
        try:
            manifest = normalize_manifest_file(manifest_path)  # no absolute path in a file anyone can /view
        except OSError as exc:  # a read-only folder: upload it as it is
            notes.append(f"could not rewrite {manifest_path.name} without server paths ({type(exc).__name__})")
        manifest_key = content_key(prefix, manifest_path.name, manifest_identity(manifest))
    return UploadPlan(cfg, items, primary, manifest, manifest_path, manifest_key, groups, brief_obj, run, prefix, notes)


def _group_items(prefix, top, group, digests, kinds) -> list[_Item]:
    """An HLS playlist and its segments under one folder named after their contents."""
    blob = "\n".join(sorted(f"{rel}:{digests[m].sha256}" for m, rel in group)).encode()
    stem, _ = safe_filename(top.name)
    folder = f"{prefix}{stem}-hls-{hashlib.sha256(blob).hexdigest()[:12]}/"
    # segments first, playlists last: a playlist never points at something not yet there
    return [_Item(m, kinds.get(m, "hls" if m == top else kind_for(m)), "output" if m == top else "hls-member",
                  digests[m], check_key(folder + rel), rel=rel, cache_control=IMMUTABLE)
            for m, rel in sorted(group, key=lambda mr: (mr[0].suffix.lower() == ".m3u8", mr[0] == top, mr[1]))]


def execute_upload(plan: UploadPlan, store: S3Store, *, now: Optional[datetime] = None,
                   progress: Optional[ProgressFn] = None, write_history: bool = True,
                   retry_spool: bool = True) -> UploadResult:
    """Send ``plan`` to ``store``: intents first, each object HEAD-first, the manifest, the history
    record; whatever fails is spooled (see the module docstring)."""
    cfg = plan.cfg
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    total_bytes = sum(it.digest.size for it in plan.items)
    emit = _progress_sink(progress, len(plan.items) + (1 if plan.manifest is not None else 0), total_bytes)
    result = UploadResult(status="uploaded", bucket=cfg.bucket, endpoint=cfg.endpoint_url or "AWS S3", run=plan.run,
                          prefix=plan.prefix, manifest_path=str(plan.manifest_path) if plan.manifest_path else None,
                          manifest_key=plan.manifest_key, spool_dir=str(cfg.spool_dir), notes=list(plan.notes))
    batch = new_batch_id(plan.run, now)
    mark_active(batch, True)
    try:
        return _run_upload(cfg, store, batch, result, plan.items, plan.primary, plan.manifest, plan.manifest_path,
                           plan.manifest_key, plan.groups, plan.brief, plan.run, now, emit, cfg.multipart_chunksize,
                           write_history, retry_spool)
    finally:
        mark_active(batch, False)


def _write_intents(cfg, batch, items, manifest_path, manifest_key, identity, output_keys, hist_key, payload):
    """The batch's write-ahead records (see ``spool.record_intent``): {id(item) or "manifest"/"history": entry}."""
    intents: dict = {}
    for index, it in enumerate(items):
        intents[id(it)] = record_intent(
            cfg.spool_dir, batch, index, it.path, role="output", key=it.key, kind=it.kind, content_type=it.content_type,
            cache_control=it.cache_control, sha256=it.digest.sha256, size=it.digest.size, bucket=cfg.bucket,
            url_mode=cfg.url_mode, url_expiry_seconds=cfg.url_expiry_seconds)
    if manifest_path is not None:
        intents["manifest"] = record_intent(
            cfg.spool_dir, batch, 80, manifest_path, role="manifest", key=manifest_key, kind="manifest",
            content_type="application/json", cache_control="no-cache", bucket=cfg.bucket, url_mode=cfg.url_mode,
            url_expiry_seconds=cfg.url_expiry_seconds, output_keys=output_keys, manifest_identity=identity)
    if hist_key is not None:
        intents["history"] = record_intent(
            cfg.spool_dir, batch, 90, None, role="history", key=hist_key, kind="history",
            content_type="application/json", cache_control="no-cache", bucket=cfg.bucket, payload=payload)
    return intents


def _run_upload(cfg, store, batch, result, items, primary, manifest, manifest_path, manifest_key, groups, brief_obj,
                run, now, emit, chunk, write_history, retry_spool):
    output_keys = {it.digest.sha256: it.key for it in items}
    hist_key = history_key(cfg, run) if write_history else None
    payload = None
    if write_history:
        outputs = [{"kind": it.kind, "name": it.path.name, "key": it.key, "bytes": it.digest.size,
                    "sha256": it.digest.sha256, "content_type": it.content_type} for it in items if it.role == "output"]
        payload = history_payload(run=run, brief=brief_obj, manifest=manifest, outputs=outputs, manifest_key=manifest_key,
                                  status="uploaded", created=now)
    identity = manifest_identity(manifest) if manifest is not None else None
    try:
        intents = _write_intents(cfg, batch, items, manifest_path, manifest_key, identity, output_keys, hist_key, payload)
    except OSError as exc:
        intents = {}
        result.notes.append(f"could not record the upload in the spool first ({type(exc).__name__}): a crash now "
                            "would need a re-queue")
    crash_point("intents-recorded")
    failure: Optional[StorageError] = None
    try:
        note = store.probe()
        if note:
            result.notes.append(note)
    except StorageError as exc:
        failure = exc
    if groups and (cfg.url_mode == "presigned" or (cfg.url_mode == "auto" and not cfg.public_base_url)):
        result.notes.append("HLS playback needs public URLs: a presigned playlist URL does not sign its segments")

    to_spool: list[tuple[_Item, int]] = []
    for it in items:
        attempted = 0
        if failure is None:
            try:
                outcome = store.upload_file(
                    it.path, it.key, it.digest, content_type=it.content_type, cache_control=it.cache_control,
                    progress=lambda n, _name=it.path.name: emit("upload", _name, n),
                )
                crash_point("uploaded")
                url = store.url_for(it.key) if it.role == "output" else None
                result.files.append(UploadedFile(str(it.path), it.key, it.kind, it.role, it.content_type, it.digest.size,
                                                 it.digest.sha256, outcome.status, url=url, etag=outcome.etag))
                _done(intents.pop(id(it), None))
                emit("file_done", it.path.name, 0, True)
                continue
            except StorageError as exc:
                attempted = 1
                if _fatal(exc):
                    failure = exc
                else:
                    to_spool.append((it, attempted))
                    result.files.append(_spooled_placeholder(it, exc))
                    result.notes.append(exc.message)
                    emit("file_done", it.path.name, 0, True)
                    continue
        to_spool.append((it, attempted))
        result.files.append(_spooled_placeholder(it, failure))
        emit("file_done", it.path.name, 0, True)

    # URLs into the manifest (for what is up; durable ones only), then the manifest itself
    if manifest is not None:
        urls: dict[str, str] = {}
        for f in result.files:
            if f.url and f.role == "output":
                urls[f.path] = durable_url(store, f.key)
        if urls:
            manifest = update_manifest_urls(manifest_path, urls)
        mdigest = digest_file(manifest_path, chunk)
        mitem = _Item(manifest_path, "manifest", "manifest", mdigest, manifest_key, "application/json", cache_control="no-cache")
        if failure is None and not to_spool:
            try:
                outcome = store.upload_file(manifest_path, manifest_key, mdigest, content_type="application/json",
                                            cache_control="no-cache")
                result.files.append(UploadedFile(str(manifest_path), manifest_key, "manifest", "manifest", "application/json",
                                                 mdigest.size, mdigest.sha256, outcome.status, url=store.url_for(manifest_key),
                                                 etag=outcome.etag))
                crash_point("manifest-uploaded")
                _done(intents.pop("manifest", None))
            except StorageError as exc:
                failure = failure or exc
                to_spool.append((mitem, 1))
                result.files.append(_spooled_placeholder(mitem, exc))
        else:
            to_spool.append((mitem, 0))
            result.files.append(_spooled_placeholder(mitem, failure or _first_error(result)))
        emit("file_done", manifest_path.name, 0, True)

    # the run's history record: written once, never over another run's record of the same video
    if write_history:
        if failure is None and not to_spool:
            try:
                payload["uploaded_at"] = datetime.now(timezone.utc).isoformat()
                outcome = store.put_json(hist_key, payload, if_absent=True)
                result.history_key = hist_key
                if outcome.status == "exists":
                    result.notes.append(f"the history record {hist_key} already exists (an earlier upload of this "
                                        "video): left unchanged")
                crash_point("history-written")
                _done(intents.pop("history", None))
            except StorageError as exc:
                failure = exc
        else:
            payload["status"] = "spooled"

    if failure is not None or to_spool:
        _spool_all(cfg, batch, to_spool, result, failure, output_keys, manifest, write_history, hist_key, payload,
                   intents)

    main = next((f for f in result.files if Path(f.path) == primary), None)
    result.url = main.url if main else None
    if result.status == "spooled":
        logger.warning("upload to %s incomplete: %s", store.where(), result.reason)
        if isinstance(failure, StorageCredentialsError):
            raise StorageCredentialsError(
                f"{failure.message}. {len(result.spooled)} file(s) were kept in the local spool (ADREEL_SPOOL_DIR) and will be "
                "uploaded by retry_spooled() once the credentials are fixed",
                reason=failure.reason, result=result,
            )
        return result

    mark_active(batch, False)  # this batch is done: the retry below may take whatever it left
    if retry_spool and list_spooled(cfg.spool_dir):
        try:
            result.retry = retry_spooled(cfg)
            if result.retry.uploaded:
                result.notes.append(result.retry.summary())
        except StorageError as exc:
            result.notes.append(f"spool retry: {exc.message}")
    return result


def _done(entry) -> None:
    """The store holds this item: its write-ahead record goes."""
    if entry is not None:
        try:
            entry.remove()
        except OSError as exc:
            logger.warning("could not remove the spool record %s: %s", entry.name, type(exc).__name__)


def _fatal(exc: StorageError) -> bool:
    """Errors after which no further upload of this run is tried (they would fail the same way)."""
    return isinstance(exc, (StorageUnavailable, StorageCredentialsError)) or exc.reason in (
        "bucket-missing", "access-denied", "local-io"
    )


def _first_error(result: UploadResult) -> Optional[StorageError]:
    for f in result.files:
        if f.error:
            return StorageError(f.error)
    return None


def _spooled_placeholder(it: _Item, error: Optional[StorageError]) -> UploadedFile:
    return UploadedFile(str(it.path), it.key, it.kind, it.role, it.content_type, it.digest.size, it.digest.sha256, "spooled",
                        error=error.message if error is not None else None)


def _spool_all(cfg, batch, to_spool, result, failure, output_keys, manifest, write_history, hist_key, payload,
               intents=None):
    intents = intents if intents is not None else {}
    reason_exc = failure or _first_error(result) or StorageError("upload failed")
    reason = reason_exc.message
    result.status = "spooled"
    result.reason = reason
    result.reason_code = reason_exc.reason
    by_path = {(f.path, f.key): f for f in result.files if f.status == "spooled"}
    identity = manifest_identity(manifest) if manifest is not None else None
    try:
        for index, (it, attempted) in enumerate(to_spool):
            entry = spool_file(
                cfg.spool_dir, batch, index, it.path, role="manifest" if it.role == "manifest" else "output", key=it.key,
                kind=it.kind, content_type=it.content_type, cache_control=it.cache_control,
                sha256=it.digest.sha256, size=it.digest.size, bucket=cfg.bucket, reason=reason, attempts=attempted,
                url_mode=cfg.url_mode, url_expiry_seconds=cfg.url_expiry_seconds,
                output_keys=output_keys if it.role == "manifest" else None,
                manifest_identity=identity if it.role == "manifest" else None,
                intent=intents.pop("manifest" if it.role == "manifest" else id(it), None),
            )
            placeholder = by_path.get((str(it.path), it.key))
            if placeholder is not None:
                placeholder.spool_path = entry.local_path
        if write_history and payload is not None and result.history_key is None:
            spool_record(cfg.spool_dir, batch, 90, role="history", key=hist_key, bucket=cfg.bucket, reason=reason,
                         payload=payload, intent=intents.pop("history", None))
    except OSError as exc:
        raise StorageError(
            f"could not upload ({reason}) and could not spool the files either ({type(exc).__name__}); "
            "the original files were left where they are, and their upload records stay in the spool"
        ) from None
