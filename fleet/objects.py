"""The objects a job stored, in the S3-compatible store the workflows' AssetUpload nodes write to.

A job's outputs live under ``fleet/<job id>/`` (see ``jobs.prepare_prompt``),
plus the run's history record (``history/<run>.json``) that AssetUpload
writes. The settings are the engine's (``MINIO_*`` / ``AWS_*`` / the storage
config file, as for ComfyUI), read from this process's environment.
"""
from __future__ import annotations

import re
from typing import Iterable, Optional

from .config import FleetError
from .jobs import JOB_ID_OK, key_prefix


def _store():
    from nodes.engine.storage import S3Store, StorageError, load_storage_config
    from nodes.engine.cloud.redaction import redact

    try:
        return S3Store(load_storage_config()), StorageError, redact
    except StorageError as exc:
        raise FleetError(f"storage: {redact(str(exc))}") from None


def configured() -> bool:
    try:
        _store()
        return True
    except FleetError:
        return False


_VIDEO_KEY = re.compile(r"-([0-9a-f]{12})\.(mp4|m4v|mov|webm|mkv)$")


def remove(job_id: str, keys: Iterable[str], *, keep: Iterable[str] = (), runs: Iterable[str] = (),
           keep_runs: Iterable[str] = (), keep_prefixes: Iterable[str] = (), bucket: Optional[str] = None) -> list[str]:
    """Delete every object under the job's prefix (``fleet/<job id>/``) and the history records of the runs
    whose videos are found there, except ``keep``; the keys deleted.

    Nothing outside the prefix is ever deleted on a record's word: ``keys`` (a job record's outputs, a
    tombstone) count only where they lie under the prefix, and ``runs`` only where that run's video is under
    it too (``runs`` is kept for callers; the listing decides). A history record is removed only for a video the listing finds under the prefix."""
    from nodes.engine.storage.history import history_key

    if not JOB_ID_OK.match(job_id or ""):
        raise FleetError(f"{job_id!r} is not a job id")
    prefix = key_prefix(job_id)
    store, StorageError, redact = _store()
    if bucket and bucket != store.config.bucket:
        raise FleetError(f"storage: the job's objects are in bucket {bucket!r} but this environment's storage "
                         f"settings name {store.config.bucket!r}; run this with the workers' storage settings")
    keep = set(keep) | {history_key(store.config, r) for r in keep_runs if r}
    try:
        found = {o["Key"] for o in store.list_objects(prefix)}
        named = {k for k in keys if isinstance(k, str) and k.startswith(prefix) and "/../" not in k}
        doomed = (found | named) - keep
        videos = {m.group(1) for k in doomed if (m := _VIDEO_KEY.search(k))}
        doomed |= {history_key(store.config, r) for r in videos}
        prefixes = tuple(p for p in keep_prefixes if isinstance(p, str) and p.startswith(prefix))
        doomed = sorted(k for k in doomed - keep if not (prefixes and k.startswith(prefixes)))
        for start in range(0, len(doomed), 1000):
            chunk = doomed[start:start + 1000]
            res = store.client.delete_objects(Bucket=store.config.bucket,
                                              Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True})
            errors = res.get("Errors") or []
            if errors:
                raise FleetError(f"storage: could not delete {len(errors)} object(s), e.g. {errors[0].get('Key')}: "
                                 f"{errors[0].get('Code')}")
        return doomed
    except StorageError as exc:
        raise FleetError(f"storage: {redact(str(exc))}") from None
    except FleetError:
        raise
    except Exception as exc:  # noqa: BLE001 — botocore's errors, redacted
        raise FleetError(f"storage: {redact(f'{type(exc).__name__}: {exc}')}") from None


def delete_job(records, job_id: str) -> Optional[list[str]]:
    """Delete a job: cancel it if it waits or runs, remove its objects from the store, then drop its record
    (its tombstone tells a worker still running it to remove what it stores). The keys removed; None when
    there is no such job."""
    job = records.job(job_id)
    if job is None:
        return None
    if job["state"] in ("queued", "running"):
        records.cancel(job_id)
    out = job["outputs"] or {}
    keys = out.get("keys") or []
    removed: list[str] = []
    if keys or configured():
        removed = remove(job_id, keys, runs=out.get("runs") or [], bucket=out.get("bucket"))
    records.delete(job_id, removed or keys)
    return removed
