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
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Optional, Union

from ..models import AdReelInputError, Brief, RenderManifest
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
    SpoolEntry,
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
    config: Optional[StorageConfig] = None,
    write_history: bool = True,
    progress: Optional[ProgressFn] = None,
) -> UploadResult:
    """Upload a finished ad and its companion files; see the module docstring.

    ``config`` defaults to ``load_storage_config()``; the caller's non-secret choices (prefix pattern,
    URL mode and expiry, spool folder: they may come from node widgets) go in through
    ``load_storage_config(prefix_pattern=…, …)`` or ``config.with_choices(…)``. The run id is the first
    12 hex digits of the video's sha256 and ``{date}`` is the video's render date (file modification
    time, UTC), so the same video maps to the same keys whenever it is uploaded. A successful upload then
    retries whatever waits in the spool (``result.retry``). ``progress`` receives dicts with ``stage``,
    ``file``, ``files_done``, ``files_total``, ``bytes_done``, ``bytes_total``.

    Raises ``AdReelInputError`` for a missing file or a bad prefix pattern,
    ``StorageNotConfigured`` / ``StorageConfigError`` when the store is not set
    up, ``StorageCredentialsError`` (after spooling) for rejected credentials.
    """
    cfg = config or load_storage_config()
    files = collect_files(video_path, extra_files, manifest_path)
    plan = plan_upload(files, files.manifest, cfg)
    store = S3Store(cfg)
    store.client  # a configuration problem (unknown profile, …) raises here, before anything is spooled
    return execute_upload(plan, store, progress=progress, write_history=write_history)


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


def plan_upload(files: UploadFiles, manifest: Optional[RenderManifest], cfg: StorageConfig) -> UploadPlan:
    """The upload's objects and keys, from local files only (no store is asked): each file hashed and
    checked against what ``manifest`` records, HLS playlists grouped with their segments, the prefix
    rendered from ``cfg.prefix_pattern``. The manifest file is rewritten in its public form here."""
    paths, primary, manifest_path, listed = list(files.paths), files.primary, files.manifest_path, files.listed
    notes = list(files.notes)
    if manifest is None:
        manifest_path = None
    brief_obj = manifest.brief if manifest is not None else None

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

    run = run_id_for(digests[primary].sha256)
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
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    upload = _Upload(plan, store, new_batch_id(plan.run, now), progress)
    mark_active(upload.batch, True)
    try:
        upload.prepare(now, write_history)
        upload.send_outputs()
        upload.send_manifest()
        upload.send_history()
        return upload.finish(retry_spool)
    finally:
        mark_active(upload.batch, False)


class _Upload:
    """One ``execute_upload``: its plan, the store, the spool batch, the result as it grows, the
    write-ahead records still open and what is left for the spool (item, attempts made)."""

    def __init__(self, plan: UploadPlan, store: S3Store, batch: str, progress: Optional[ProgressFn]):
        cfg = plan.cfg
        self.plan, self.cfg, self.store, self.batch = plan, cfg, store, batch
        self.emit = _progress_sink(progress, len(plan.items) + (1 if plan.manifest is not None else 0),
                                   sum(it.digest.size for it in plan.items))
        self.result = UploadResult(
            status="uploaded", bucket=cfg.bucket, endpoint=store.endpoint or "AWS S3", run=plan.run,
            prefix=plan.prefix, manifest_path=str(plan.manifest_path) if plan.manifest_path else None,
            manifest_key=plan.manifest_key, spool_dir=str(cfg.spool_dir), notes=list(plan.notes))
        self.intents: dict = {}  # id(item) or "manifest" / "history" -> its spool entry
        self.to_spool: list[tuple[_Item, int]] = []
        self.failure: Optional[StorageError] = None
        self.manifest = plan.manifest
        self.output_keys = {it.digest.sha256: it.key for it in plan.items}
        self.hist_key: Optional[str] = None
        self.payload: Optional[dict] = None

    def entry(self, it: _Item, role: str) -> SpoolEntry:
        """The spool entry ``it`` becomes (recorded as an intent now, spooled if its upload fails)."""
        cfg, manifest = self.cfg, role == "manifest"
        return SpoolEntry(
            batch=self.batch, role=role, key=it.key, kind=it.kind, content_type=it.content_type,
            cache_control=it.cache_control, sha256="" if manifest else it.digest.sha256,
            bytes=0 if manifest else it.digest.size, bucket=cfg.bucket, url_mode=cfg.url_mode,
            url_expiry_seconds=cfg.url_expiry_seconds, output_keys=dict(self.output_keys) if manifest else {},
            manifest_identity=manifest_identity(self.manifest) if manifest else None)

    def history_entry(self) -> SpoolEntry:
        return SpoolEntry(batch=self.batch, role="history", key=self.hist_key, kind="history",
                          content_type="application/json", cache_control="no-cache", bucket=self.cfg.bucket,
                          payload=self.payload)

    def manifest_item(self, digest: Optional[FileDigest] = None) -> _Item:
        plan = self.plan
        return _Item(plan.manifest_path, "manifest", "manifest", digest or FileDigest(0, "", "", 0),
                     plan.manifest_key, "application/json", cache_control="no-cache")

    def prepare(self, now: datetime, write_history: bool) -> None:
        """The history record to write, and the batch's write-ahead records (``spool.record_intent``)."""
        plan, spool_dir = self.plan, self.cfg.spool_dir
        if write_history:
            self.hist_key = history_key(self.cfg, plan.run)
            outputs = [{"kind": it.kind, "name": it.path.name, "key": it.key, "bytes": it.digest.size,
                        "sha256": it.digest.sha256, "content_type": it.content_type}
                       for it in plan.items if it.role == "output"]
            self.payload = history_payload(run=plan.run, brief=plan.brief, manifest=plan.manifest, outputs=outputs,
                                           manifest_key=plan.manifest_key, status="uploaded", created=now)
        try:
            for it in plan.items:
                self.intents[id(it)] = record_intent(spool_dir, self.entry(it, "output"), it.path)
            if plan.manifest_path is not None:
                self.intents["manifest"] = record_intent(spool_dir, self.entry(self.manifest_item(), "manifest"),
                                                         plan.manifest_path)
            if self.hist_key is not None:
                self.intents["history"] = record_intent(spool_dir, self.history_entry(), None)
        except (OSError, sqlite3.Error) as exc:
            self.result.notes.append(f"could not record the upload in the spool first ({type(exc).__name__}): a "
                                     "crash now would need a re-queue")
        crash_point("intents-recorded")
        try:
            note = self.store.probe()
            if note:
                self.result.notes.append(note)
        except StorageError as exc:
            self.failure = exc
        cfg = self.cfg
        if plan.groups and (cfg.url_mode == "presigned" or (cfg.url_mode == "auto" and not cfg.public_base_url)):
            self.result.notes.append("HLS playback needs public URLs: a presigned playlist URL does not sign its segments")

    def send_outputs(self) -> None:
        """Each output HEAD-first, until an error that every further request would hit too."""
        for it in self.plan.items:
            attempted = 0
            if self.failure is None:
                try:
                    self._send(it)
                    continue
                except StorageError as exc:
                    attempted = 1
                    if _fatal(exc):
                        self.failure = exc
                    else:
                        self._keep(it, attempted, exc)
                        self.result.notes.append(exc.message)
                        continue
            self._keep(it, attempted, self.failure)

    def _send(self, it: _Item) -> None:
        outcome = self.store.upload_file(
            it.path, it.key, it.digest, content_type=it.content_type, cache_control=it.cache_control,
            progress=lambda n, _name=it.path.name: self.emit("upload", _name, n),
        )
        crash_point("uploaded")
        url = self.store.url_for(it.key) if it.role == "output" else None
        self.result.files.append(UploadedFile(str(it.path), it.key, it.kind, it.role, it.content_type, it.digest.size,
                                              it.digest.sha256, outcome.status, url=url, etag=outcome.etag))
        _done(self.intents.pop(id(it), None))
        self.emit("file_done", it.path.name, 0, True)

    def _keep(self, it: _Item, attempted: int, error: Optional[StorageError]) -> None:
        """``it`` waits for the spool (copied there at the end)."""
        self.to_spool.append((it, attempted))
        self.result.files.append(_spooled_placeholder(it, error))
        if it.role != "manifest":
            self.emit("file_done", it.path.name, 0, True)

    def send_manifest(self) -> None:
        """The URLs of what is up (durable ones only) into the manifest, then the manifest itself."""
        plan = self.plan
        if self.manifest is None:
            return
        urls = {f.path: durable_url(self.store, f.key) for f in self.result.files if f.url and f.role == "output"}
        if urls:
            self.manifest = update_manifest_urls(plan.manifest_path, urls)
        mitem = self.manifest_item(digest_file(plan.manifest_path, self.cfg.multipart_chunksize))
        if self.failure is None and not self.to_spool:
            try:
                outcome = self.store.upload_file(mitem.path, mitem.key, mitem.digest, content_type=mitem.content_type,
                                                 cache_control=mitem.cache_control)
                self.result.files.append(UploadedFile(
                    str(mitem.path), mitem.key, "manifest", "manifest", mitem.content_type, mitem.digest.size,
                    mitem.digest.sha256, outcome.status, url=self.store.url_for(mitem.key), etag=outcome.etag))
                crash_point("manifest-uploaded")
                _done(self.intents.pop("manifest", None))
            except StorageError as exc:
                self.failure = self.failure or exc
                self._keep(mitem, 1, exc)
        else:
            self._keep(mitem, 0, self.failure or _first_error(self.result))
        self.emit("file_done", mitem.path.name, 0, True)

    def send_history(self) -> None:
        """The run's history record: written once, never over another run's record of the same video."""
        if self.hist_key is None:
            return
        if self.failure is not None or self.to_spool:
            self.payload["status"] = "spooled"
            return
        try:
            self.payload["uploaded_at"] = datetime.now(timezone.utc).isoformat()
            outcome = self.store.put_json(self.hist_key, self.payload, if_absent=True)
            self.result.history_key = self.hist_key
            if outcome.status == "exists":
                self.result.notes.append(f"the history record {self.hist_key} already exists (an earlier upload of "
                                         "this video): left unchanged")
            crash_point("history-written")
            _done(self.intents.pop("history", None))
        except StorageError as exc:
            self.failure = exc

    def finish(self, retry_spool: bool) -> UploadResult:
        """Spool what is left (and say why), or — all is up — retry what earlier runs left in the spool."""
        result, failure = self.result, self.failure
        if failure is not None or self.to_spool:
            self.spool_rest()
        main = next((f for f in result.files if Path(f.path) == self.plan.primary), None)
        result.url = main.url if main else None
        if result.status == "spooled":
            logger.warning("upload to %s incomplete: %s", self.store.where(), result.reason)
            if isinstance(failure, StorageCredentialsError):
                raise StorageCredentialsError(
                    f"{failure.message}. {len(result.spooled)} file(s) were kept in the local spool (ADREEL_SPOOL_DIR) "
                    "and will be uploaded by retry_spooled() once the credentials are fixed",
                    reason=failure.reason, result=result,
                )
            return result
        mark_active(self.batch, False)  # this batch is done: the retry below may take whatever it left
        if retry_spool and list_spooled(self.cfg.spool_dir):
            try:
                result.retry = retry_spooled(self.cfg)
                if result.retry.uploaded:
                    result.notes.append(result.retry.summary())
            except StorageError as exc:
                result.notes.append(f"spool retry: {exc.message}")
        return result

    def spool_rest(self) -> None:
        """Copy what did not go up into the spool (each intent becomes its spooled entry)."""
        result, spool_dir = self.result, self.cfg.spool_dir
        reason_exc = self.failure or _first_error(result) or StorageError("upload failed")
        reason = reason_exc.message
        result.status, result.reason, result.reason_code = "spooled", reason, reason_exc.reason
        by_path = {(f.path, f.key): f for f in result.files if f.status == "spooled"}
        try:
            for it, attempted in self.to_spool:
                role = "manifest" if it.role == "manifest" else "output"
                entry = self.intents.pop("manifest" if role == "manifest" else id(it), None) or self.entry(it, role)
                if role == "manifest":  # the URLs written since the intent: its size and sha256 now
                    entry.sha256, entry.bytes = it.digest.sha256, it.digest.size
                entry = spool_file(spool_dir, entry, it.path, reason=reason, attempts=attempted)
                placeholder = by_path.get((str(it.path), it.key))
                if placeholder is not None:
                    placeholder.spool_path = entry.local_path
            if self.hist_key is not None and result.history_key is None:
                entry = self.intents.pop("history", None) or self.history_entry()
                entry.payload = self.payload
                spool_record(spool_dir, entry, reason)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(
                f"could not upload ({reason}) and could not spool the files either ({type(exc).__name__}); "
                "the original files were left where they are, and their upload records stay in the spool"
            ) from None


def _done(entry) -> None:
    """The store holds this item: its write-ahead record goes."""
    if entry is not None:
        try:
            entry.remove()
        except (OSError, sqlite3.Error) as exc:
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
