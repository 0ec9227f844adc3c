"""AssetUpload: the finished ad (and the files its manifest lists) → S3-compatible storage → URLs.

Settings and credentials: ``engine.storage.config`` (never a widget). Files that cannot be uploaded wait in
the spool for ``engine.storage.background``'s retry thread. Only the render's own files are uploaded (the
video and what its manifest lists beside it: ``engine.storage.manifest``); what the node shows names files
relative to ComfyUI's folders (``engine.storage.local``), never by an absolute server path.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

from ..engine.models import AdReelInputError
from ..engine.storage import (
    DEFAULT_PREFIX,
    PLACEHOLDERS,
    URL_MODES,
    ensure_retry_thread,
    load_storage_config,
    progress_line,
    render_prefix,
    resume_waiting_uploads,
    upload_ad,
)
from ..engine.storage.keys import check_not_reserved, kind_for
from ..engine.media.files import is_inside
from ..engine.storage.local import given_video, shown_path
from ..engine.storage.manifest import manifest_beside
from ..engine.storage.spool import check_spool_dir
from .api import (
    CATEGORY,
    Input,
    Progress,
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

MAX_EXPIRY_HOURS = 168.0  # SigV4 presigned URLs live at most 7 days


def comfy_folders() -> dict[str, str]:
    """ComfyUI's folders by name; the first (output) is where a relative ``path`` points."""
    return {"output": output_directory(), "temp": temp_directory(), "input": input_directory()}


def as_shown(path) -> str:
    return shown_path(path, comfy_folders())


def video_file(video, path: str | None) -> Path:
    """The video's file. The ``path`` input wins; else the VIDEO's own file when it is a video file inside
    ComfyUI's folders; any other VIDEO (frames, a lazy clip, a file elsewhere) is encoded once into the
    output folder (``AdReel/upload_00001_.mp4``)."""
    if path and path.strip():
        return given_video(path, comfy_folders())
    if video is None:
        raise AdReelInputError("video", "connect a VIDEO (or FFmpegAssemble's path)")
    if type(video).get_stream_source is not Input.Video.get_stream_source:  # it has a real source
        src = video.get_stream_source()
        if isinstance(src, str) and os.path.isfile(src):
            p = Path(src).resolve()
            if is_inside(p, *comfy_folders().values()) and kind_for(p) == "video":
                return p
    width, height = video.get_dimensions()
    folder, filename, counter, _subfolder, _ = save_path("AdReel/upload", width, height)
    out = Path(folder) / f"{filename}_{counter:05}_.mp4"
    video.save_to(str(out))
    return out.resolve()


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
    def validate_inputs(cls, prefix_pattern):
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
        check_spool_dir(config.spool_dir, list(comfy_folders().values()))  # never where network users write
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
        seen = None
        while not task.done():
            await asyncio.wait({task}, timeout=0.25)
            if interrupted():
                logger.info("AssetUpload interrupted: the upload of %s finishes in the background "
                            "(anything it cannot upload is spooled)", video_path.name)
                raise_if_interrupted()
            event = latest.get("event")
            if event is not None and event is not seen:
                seen = event
                fraction, line = progress_line(event)
                bar.update(int(1000 * fraction), line)
        result = task.result()  # StorageCredentialsError etc. propagate with a redacted, clear message

        main = result.url or str(video_path)
        text = result.describe(video_path, interval, as_shown)
        bar.update(1000)
        if node_id:
            send_progress_text(text, node_id)
        if result.status == "uploaded":
            logger.info("AssetUpload: %d file(s) in s3://%s/%s", len(result.uploaded), result.bucket, result.prefix)
        payload = result.payload(video_path, as_shown)
        urls_json = json.dumps(payload, ensure_ascii=False)
        shown_ui = ui.PreviewText(text).as_dict()
        shown_ui["adreel_upload"] = [payload]
        return io.NodeOutput(main, urls_json, ui=shown_ui)


resume_waiting_uploads(comfy_folders().values())

__all__ = ["AssetUpload", "video_file"]
