"""AssetUpload: the finished ad (and the files that came with it) → S3-compatible storage → URLs.

Endpoint, bucket and credentials come from the environment or the storage
config file (see ``engine.storage.config``), never from a widget: the widgets
hold only non-secret choices (key prefix pattern, URL mode, URL expiry). When
the store is down or refuses, the files wait in the local spool; a background
thread (one per ComfyUI process, started on first use) and every later run
upload them, once.

Everything under input/output/temp may have been uploaded by anyone who can
reach ComfyUI, so the node uploads only the render's own files: the video, and
what its manifest (found by exact name, ``<stem>.json``) lists inside the
video's folder — see ``engine.storage.manifest``. What the node shows (its UI,
which ``/history`` hands to every client) carries no absolute server path:
files are named relative to ComfyUI's folders.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from pathlib import Path

from ..engine.models import AdReelInputError
from ..engine.storage import (
    DEFAULT_PREFIX,
    PLACEHOLDERS,
    URL_MODES,
    load_storage_config,
    redact,
    render_prefix,
    start_retry_thread,
    upload_ad,
)
from ..engine.storage.keys import check_not_reserved, kind_for
from ..engine.storage.manifest import manifest_beside
from ..engine.storage.retention import MIN_RETENTION_HOURS
from ..engine.storage.spool import check_spool_dir, list_spooled
from .api import (
    CATEGORY,
    Input,
    Progress,
    check_combo_inputs,
    input_directory,
    interrupted,
    io,
    output_directory,
    raise_if_interrupted,
    save_path,
    send_progress_text,
    temp_directory,
    ui,
)

logger = logging.getLogger("adreel.upload")

RETRY_INTERVAL_ENV = "ADREEL_SPOOL_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 300.0
MAX_EXPIRY_HOURS = 168.0  # SigV4 presigned URLs live at most 7 days

# ------------------------------------------------------------------ background retry
_retry_lock = threading.Lock()
_retry_thread = None


def retry_interval() -> float:
    raw = os.environ.get(RETRY_INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_RETRY_SECONDS
    try:
        value = float(raw)
        if not value >= 1:
            raise ValueError
        return value
    except ValueError:
        logger.warning("%s must be a number of seconds ≥ 1 (got %r); using %g", RETRY_INTERVAL_ENV, raw,
                       DEFAULT_RETRY_SECONDS)
        return DEFAULT_RETRY_SECONDS


RETENTION_ENV = "ADREEL_RETENTION_HOURS"


def retention_hours() -> float | None:
    """``ADREEL_RETENTION_HOURS``: age after which the spool's leftovers (partial copies, copies of uploaded
    files) are removed. Files waiting for upload are never removed. Unset: nothing is ever removed; below
    24 h (a copy or upload could still be running): refused, retention stays off."""
    raw = os.environ.get(RETENTION_ENV, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
        if not value >= MIN_RETENTION_HOURS:  # also NaN
            raise ValueError
        return value
    except ValueError:
        logger.warning("%s must be a number of hours ≥ %g (got %r); retention is off", RETENTION_ENV,
                       MIN_RETENTION_HOURS, raw)
        return None


def comfy_folders() -> list[str]:
    return [output_directory(), temp_directory(), input_directory()]


def ensure_retry_thread():
    """The one spool-retry daemon thread of this ComfyUI process, started on first use.

    Retention covers the spool only. ``temp/adreel_inputs`` (the Brief's logo and product images) is never
    cleaned by AdReel: ComfyUI's cache keeps handing out Brief outputs that point there, and ComfyUI empties
    its temp folder at every start anyway."""
    global _retry_thread
    with _retry_lock:
        if _retry_thread is None or not _retry_thread.is_alive():
            interval = retry_interval()
            _retry_thread = start_retry_thread(interval, retention_hours=retention_hours())
            logger.info("AdReel: spool retry runs every %gs in the background", interval)
        return _retry_thread


def resume_waiting_uploads() -> None:
    """At load: when uploads wait in the spool (spooled, or interrupted by a crash or a restart), start the
    retry thread now rather than on the next AssetUpload run. Never raises."""
    try:
        config = load_storage_config()
        retention_hours()  # a bad ADREEL_RETENTION_HOURS is reported at start, not only on first use
        spool = check_spool_dir(config.spool_dir, comfy_folders())
        if spool.is_dir() and list_spooled(spool):
            ensure_retry_thread()
    except Exception as exc:  # noqa: BLE001 - storage not configured, a bad spool: the node says so when used
        logger.debug("no spool resume at load: %s", redact(exc))


# ------------------------------------------------------------------ files
def _inside(path: Path, roots: list[str]) -> bool:
    for root in roots:
        try:
            path.relative_to(Path(root).resolve())
            return True
        except ValueError:
            continue
    return False


def _given_path(raw: str) -> Path:
    """The ``path`` input: an existing video file inside ComfyUI's output, temp or input folder."""
    p = Path(os.path.expanduser(raw.strip()))
    if not p.is_absolute():
        p = Path(output_directory()) / p
    p = p.resolve()
    roots = [output_directory(), temp_directory(), input_directory()]
    if not _inside(p, roots):
        raise AdReelInputError("path", "must be a file inside ComfyUI's output, temp or input folder "
                               "(connect FFmpegAssemble's path output)")
    if not p.is_file():
        raise AdReelInputError("path", f"{p.name} does not exist (was it deleted or moved?)")
    if kind_for(p) != "video":
        raise AdReelInputError("path", f"{p.name} is not a video file (.mp4, .webm, .mov, …)")
    return p


def video_file(video, path: str | None) -> Path:
    """The video's file. The ``path`` input wins; else the VIDEO's own file when it is a video file inside
    ComfyUI's folders; any other VIDEO (frames, a lazy clip, a file elsewhere) is encoded once into the
    output folder (``AdReel/upload_00001_.mp4``)."""
    if path and path.strip():
        return _given_path(path)
    if video is None:
        raise AdReelInputError("video", "connect a VIDEO (or FFmpegAssemble's path)")
    if type(video).get_stream_source is not Input.Video.get_stream_source:  # it has a real source
        src = video.get_stream_source()
        if isinstance(src, str) and os.path.isfile(src):
            p = Path(src).resolve()
            if _inside(p, comfy_folders()) and kind_for(p) == "video":
                return p
    width, height = video.get_dimensions()
    folder, filename, counter, _subfolder, _ = save_path("AdReel/upload", width, height)
    out = Path(folder) / f"{filename}_{counter:05}_.mp4"
    video.save_to(str(out))
    return out.resolve()


def shown_path(path) -> str:
    """A file as a network user may see it: relative to ComfyUI's folder (``output/AdReel/ad.mp4``), else
    its name only. Never an absolute server path."""
    if not path:
        return ""
    p = Path(path)
    for name, root in (("output", output_directory()), ("temp", temp_directory()), ("input", input_directory())):
        try:
            return f"{name}/{p.resolve().relative_to(Path(root).resolve()).as_posix()}"
        except ValueError:
            continue
    return p.name


# ------------------------------------------------------------------ text
def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def describe(result, video: Path, interval: float) -> str:
    up = result.uploaded
    already = sum(1 for f in up if f.status == "exists")
    where = f"s3://{result.bucket}/{result.prefix}"
    if result.status == "uploaded":
        lines = [f"Uploaded {len(up)} file(s) to {where}" + (f" ({already} already there)" if already else "")]
        lines.append(f"video: {result.url}")
    else:
        lines = [
            f"Spooled: {len(result.spooled)} file(s) kept in the local spool (ADREEL_SPOOL_DIR)",
            f"why: {redact(result.reason)}",
            f"They will be uploaded by the background retry (every {interval:g}s while ComfyUI runs) "
            "or by the next AssetUpload run, exactly once.",
            f"local: {shown_path(video)}",
        ]
        if up:
            lines.insert(1, f"{len(up)} file(s) did reach {where}")
    # engine messages are redacted already; again here, but never the URLs (a presigned URL carries the
    # access key id — not a secret — and masking it would break the link)
    lines += [redact(n) for n in result.notes if n]
    return "\n".join(lines)


def urls_payload(result, video: Path) -> dict:
    """What the node shows and outputs: keys, URLs (presigned ones included: the operator asked for them),
    files relative to ComfyUI's folders; no absolute path, no spool location."""
    files = []
    for f in result.files:
        if f.role == "hls-member":
            continue
        files.append({"name": Path(f.path).name, "kind": f.kind, "role": f.role, "status": f.status,
                      "key": f.key, "url": f.url, "local": shown_path(f.path), "spooled": bool(f.spool_path),
                      "content_type": f.content_type, "bytes": f.bytes, "sha256": f.sha256})
    return {
        "status": result.status, "url": result.url or shown_path(video), "video": shown_path(video),
        "bucket": result.bucket, "prefix": result.prefix, "run": result.run, "urls": result.urls,
        "manifest_key": result.manifest_key, "reason": redact(result.reason) if result.reason else None,
        "reason_code": result.reason_code, "files": files, "notes": [redact(n) for n in result.notes if n],
    }


def _consume(task) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.debug("background upload ended with %s", type(task.exception()).__name__)


# ------------------------------------------------------------------ node
class AssetUpload(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="AssetUpload",
            display_name="Asset Upload (S3)",
            category=CATEGORY,
            description="Uploads the finished ad and the files its render listed (manifest, thumbnail, subtitles, "
                        "other formats, HLS) to S3-compatible storage (AWS S3, MinIO, R2, SeaweedFS) and returns URLs. "
                        "Endpoint, bucket and keys come from the environment (MINIO_* / AWS_*) or the storage "
                        "config file, never from widgets. If the store is unreachable the files wait in a local "
                        "spool and are uploaded later, once.",
            is_output_node=True,
            inputs=[
                io.Video.Input("video", tooltip="The finished ad (FFmpegAssemble's video, or any VIDEO)."),
                io.String.Input("prefix_pattern", default=DEFAULT_PREFIX,
                                tooltip="Object key prefix. Placeholders: "
                                        + ", ".join("{" + p + "}" for p in PLACEHOLDERS)
                                        + ". Empty: ADREEL_S3_PREFIX or the config file."),
                io.Combo.Input("url_mode", options=list(URL_MODES), default="auto",
                               tooltip="auto: the public/CDN base URL when one is configured, else a presigned "
                                       "URL; presigned; public (needs ADREEL_S3_PUBLIC_BASE_URL); s3 (s3://…)."),
                io.Float.Input("url_expiry_hours", default=24.0, min=0.0, max=MAX_EXPIRY_HOURS, step=0.25,
                               tooltip="Lifetime of presigned URLs (at most 7 days). 0: ADREEL_S3_URL_EXPIRY or "
                                       "the config file (default 24 h)."),
                io.String.Input("path", optional=True, force_input=True,
                                tooltip="The finished ad's file (FFmpegAssemble's path output). Preferred over "
                                        "the VIDEO: the files its manifest lists (thumbnail, subtitles, other "
                                        "formats, HLS) are uploaded too."),
            ],
            outputs=[
                io.String.Output(display_name="url", tooltip="The video's URL, or its local path while it waits in the spool."),
                io.String.Output(display_name="urls_json", tooltip="Every file: key, URL or local path, status."),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, url_mode, prefix_pattern):
        ok = check_combo_inputs(cls, url_mode=url_mode)
        if ok is not True:
            return ok
        if isinstance(prefix_pattern, str):
            try:
                check_not_reserved(render_prefix(prefix_pattern, {p: "x" for p in PLACEHOLDERS}))
            except AdReelInputError as exc:
                return f"prefix_pattern: {exc.message}"
        return True

    @classmethod
    def fingerprint_inputs(cls, **kwargs):
        # Always run: a re-queue retries what waits in the spool and hands out fresh presigned URLs
        # (uploads are idempotent: an object already in the store is not sent again).
        return float("nan")

    @classmethod
    async def execute(cls, video, prefix_pattern, url_mode, url_expiry_hours, path=None) -> io.NodeOutput:
        raise_if_interrupted()
        node_id = cls.hidden.unique_id if cls.hidden else None
        expiry = None if not url_expiry_hours else max(1, round(float(url_expiry_hours) * 3600))
        # settings first: a missing or bad configuration is a clear error before anything is touched
        config = load_storage_config(prefix_pattern=prefix_pattern or None, url_mode=url_mode,
                                     url_expiry_seconds=expiry)
        check_spool_dir(config.spool_dir, comfy_folders())  # never a spool where network users write files
        interval = ensure_retry_thread().interval

        video_path = await asyncio.to_thread(video_file, video, path)
        manifest = manifest_beside(video_path)  # by exact name; what it lists is confined by the engine

        bar = Progress(1000, node_id)
        latest: dict = {}

        def on_progress(event: dict) -> None:  # called from upload threads: only remember it
            latest["event"] = event

        task = asyncio.ensure_future(asyncio.to_thread(
            upload_ad, str(video_path), (), manifest_path=str(manifest) if manifest else None,
            config=config, progress=on_progress))
        task.add_done_callback(_consume)  # if the node is interrupted, the upload still ends (or spools) quietly
        shown = None
        while not task.done():
            await asyncio.wait({task}, timeout=0.25)
            if interrupted():
                logger.info("AssetUpload interrupted: the upload of %s finishes in the background "
                            "(anything it cannot upload is spooled)", video_path.name)
                raise_if_interrupted()
            event = latest.get("event")
            if event is not None and event is not shown:
                shown = event
                total = max(1, event["bytes_total"])
                bar.update(int(1000 * event["bytes_done"] / total),
                           f"uploading {event['file']} · {event['files_done']}/{event['files_total']} files · "
                           f"{_mb(event['bytes_done'])} / {_mb(event['bytes_total'])}")
        result = task.result()  # StorageCredentialsError etc. propagate with a redacted, clear message

        main = result.url or str(video_path)
        text = describe(result, video_path, interval)
        bar.update(1000)
        if node_id:
            send_progress_text(text, node_id)
        if result.status == "uploaded":
            logger.info("AssetUpload: %d file(s) in s3://%s/%s", len(result.uploaded), result.bucket, result.prefix)
        payload = urls_payload(result, video_path)
        urls_json = json.dumps(payload, ensure_ascii=False)
        shown_ui = ui.PreviewText(text).as_dict()
        shown_ui["adreel_upload"] = [payload]
        return io.NodeOutput(main, urls_json, ui=shown_ui)


resume_waiting_uploads()

__all__ = ["AssetUpload", "ensure_retry_thread", "resume_waiting_uploads", "video_file"]
