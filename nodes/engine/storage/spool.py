"""The local spool: files that could not be uploaded wait here, and are retried later.

Layout (``spool_dir`` defaults to ``~/.local/state/adreel/spool``, see config)::

    <spool_dir>/.adreel-spool                 marker: retention treats this folder as a spool
    <spool_dir>/.lock                         one retry at a time (also across processes)
    <spool_dir>/<batch>/03-ad_9x16.mp4        a copy of the file (the original stays where it was)
    <spool_dir>/<batch>/03-ad_9x16.mp4.spool.json
                                              its record: source and spool paths, intended key,
                                              content type, sha256, bytes, attempts, last error
    <spool_dir>/<batch>/90-history.spool.json the run's history index, written once its files are up

A batch is one run's upload. ``retry_spooled`` uploads the outputs of each
batch first, then its manifest (with the URLs filled in, also in the original
manifest file when it is unchanged), then its history record. Keys are derived
from content and every upload is HEAD-first, so a retry never makes a second
object; an entry leaves the spool only after the store reports the same size
and sha256 (and MD5 ETag where it has one). A failed attempt keeps the entry
and records the error.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Optional

from .config import StorageConfig, load_storage_config
from .errors import StorageCredentialsError, StorageError, StorageUnavailable, logger, redact
from .keys import digest_file

SPOOL_MARKER = ".adreel-spool"
RECORD_SUFFIX = ".spool.json"
RECORD_VERSION = 1
_locks_guard = threading.Lock()
_dir_locks: dict[str, threading.Lock] = {}


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class SpoolEntry:
    """One spooled file (or, for ``role == "history"``, one index record with no file)."""

    batch: str
    name: str  # record file name without the suffix, unique in its batch
    role: str  # "output" | "manifest" | "history"
    key: str
    kind: str = "file"
    content_type: str = "application/octet-stream"
    cache_control: Optional[str] = None
    sha256: str = ""
    bytes: int = 0
    source_path: Optional[str] = None
    local_path: Optional[str] = None
    bucket: str = ""
    created: str = ""
    attempts: int = 0
    last_error: Optional[str] = None
    last_attempt: Optional[str] = None
    reason: Optional[str] = None
    url_mode: Optional[str] = None
    url_expiry_seconds: Optional[int] = None
    output_keys: dict = field(default_factory=dict)  # manifest: sha256 -> key of each output of the run
    manifest_identity: Optional[str] = None
    payload: Optional[dict] = None  # history: the index object
    version: int = RECORD_VERSION

    @property
    def record_path(self) -> Path:
        return Path(self._dir) / (self.name + RECORD_SUFFIX)

    _dir: str = field(default="", repr=False)

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("_dir", None)
        return data

    @classmethod
    def from_file(cls, path: Path) -> "SpoolEntry":
        data = json.loads(path.read_text(encoding="utf-8"))
        known = {f for f in cls.__dataclass_fields__ if f != "_dir"}
        entry = cls(**{k: v for k, v in data.items() if k in known})
        entry._dir = str(path.parent)
        return entry

    def save(self) -> None:
        _write_json_atomic(self.record_path, self.to_json())

    def created_at(self) -> datetime:
        try:
            t = datetime.fromisoformat(self.created)
            return t if t.tzinfo else t.replace(tzinfo=timezone.utc)
        except (TypeError, ValueError):
            return datetime.fromtimestamp(self.record_path.stat().st_mtime, tz=timezone.utc)

    def remove(self) -> None:
        """Delete the record first, then the copy (a crash between leaves an orphan copy, never a dangling record)."""
        try:
            self.record_path.unlink()
        except FileNotFoundError:
            pass
        if self.local_path:
            try:
                Path(self.local_path).unlink()
            except FileNotFoundError:
                pass
        try:
            Path(self._dir).rmdir()  # only when empty
        except OSError:
            pass


def _write_json_atomic(path: Path, data) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, ensure_ascii=False, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def ensure_spool_dir(spool_dir) -> Path:
    spool = Path(spool_dir).expanduser()
    spool.mkdir(parents=True, exist_ok=True)
    marker = spool / SPOOL_MARKER
    if not marker.exists():
        marker.write_text("AdReel upload spool: files waiting for upload. See retry_spooled().\n", encoding="utf-8")
    return spool


def new_batch_id(run: str, now: Optional[datetime] = None) -> str:
    now = now or _now()
    return f"{now.strftime('%Y%m%dT%H%M%S')}-{run}-{uuid.uuid4().hex[:8]}"


def list_spooled(spool_dir) -> list[SpoolEntry]:
    """Every spool record, oldest batch first. Unreadable records are logged and skipped (never deleted)."""
    spool = Path(spool_dir).expanduser()
    if not spool.is_dir():
        return []
    entries = []
    for batch in sorted(p for p in spool.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")):
        for record in sorted(batch.glob("*" + RECORD_SUFFIX)):
            try:
                entries.append(SpoolEntry.from_file(record))
            except (OSError, ValueError, TypeError) as exc:
                logger.warning("unreadable spool record %s (%s): left in place", record, type(exc).__name__)
    return entries


def find_spooled(spool_dir, key: str, sha256: str) -> Optional[SpoolEntry]:
    for entry in list_spooled(spool_dir):
        if entry.role == "output" and entry.key == key and entry.sha256 == sha256 and entry.local_path and Path(entry.local_path).is_file():
            return entry
    return None


def spool_file(
    spool_dir,
    batch: str,
    index: int,
    source: Path,
    *,
    role: str,
    key: str,
    kind: str,
    content_type: str,
    cache_control: Optional[str],
    sha256: str,
    size: int,
    bucket: str,
    reason: str,
    attempts: int,
    url_mode: Optional[str] = None,
    url_expiry_seconds: Optional[int] = None,
    output_keys: Optional[dict] = None,
    manifest_identity: Optional[str] = None,
    dedupe: bool = True,
) -> SpoolEntry:
    """Copy ``source`` into the spool with its record. An identical output already spooled is reused."""
    spool = ensure_spool_dir(spool_dir)
    if dedupe and role == "output":
        existing = find_spooled(spool, key, sha256)
        if existing is not None:
            return existing  # (not rewritten: a retry may be removing it right now, after its upload)
    folder = spool / batch
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{index:02d}-{Path(key).name}"
    target = folder / name
    if target.exists() or (folder / (name + RECORD_SUFFIX)).exists():
        name = f"{index:02d}-{uuid.uuid4().hex[:6]}-{Path(key).name}"  # never overwrite a waiting file
        target = folder / name
    part = folder / (name + ".part")
    shutil.copyfile(source, part)
    if part.stat().st_size != size:
        part.unlink()
        raise OSError(f"{Path(source).name} changed while it was being spooled")
    os.replace(part, target)
    entry = SpoolEntry(
        batch=batch, name=name, role=role, key=key, kind=kind, content_type=content_type, cache_control=cache_control,
        sha256=sha256, bytes=size, source_path=str(Path(source).resolve()), local_path=str(target.resolve()), bucket=bucket,
        created=_now().isoformat(), attempts=attempts, last_error=redact(reason),
        last_attempt=_now().isoformat() if attempts else None, reason=redact(reason), url_mode=url_mode,
        url_expiry_seconds=url_expiry_seconds, output_keys=dict(output_keys or {}), manifest_identity=manifest_identity,
    )
    entry._dir = str(folder)
    entry.save()
    return entry


def spool_record(spool_dir, batch: str, index: int, *, role: str, key: str, bucket: str, reason: str, payload: dict) -> SpoolEntry:
    """Spool an index object (no file): the run's history record."""
    spool = ensure_spool_dir(spool_dir)
    folder = spool / batch
    folder.mkdir(parents=True, exist_ok=True)
    entry = SpoolEntry(
        batch=batch, name=f"{index:02d}-{role}", role=role, key=key, kind=role, content_type="application/json",
        bucket=bucket, created=_now().isoformat(), last_error=redact(reason), reason=redact(reason), payload=payload,
    )
    entry._dir = str(folder)
    entry.save()
    return entry


@contextmanager
def spool_lock(spool_dir) -> Iterator[bool]:
    """Yield True when this caller holds the spool lock, False when another retry is running."""
    spool = ensure_spool_dir(spool_dir)
    with _locks_guard:
        thread_lock = _dir_locks.setdefault(str(spool.resolve()), threading.Lock())
    if not thread_lock.acquire(blocking=False):
        yield False
        return
    fh = None
    try:
        fh = open(spool / ".lock", "a+")
        try:
            if os.name == "nt":
                import msvcrt

                msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        yield True
    finally:
        if fh is not None:
            fh.close()  # releases the lock
        thread_lock.release()


@dataclass
class RetryReport:
    uploaded: list[dict] = field(default_factory=list)  # key, url, source_path, status (uploaded | exists)
    failed: list[dict] = field(default_factory=list)  # key, local_path, error
    remaining: int = 0
    busy: bool = False
    error: Optional[str] = None
    manifests_updated: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and self.error is None and not self.busy

    def summary(self) -> str:
        if self.busy:
            return "spool retry skipped: another retry is running"
        text = f"spool retry: {len(self.uploaded)} uploaded, {len(self.failed)} failed, {self.remaining} waiting"
        return text + (f" ({self.error})" if self.error else "")


def _attempt_failed(entry: SpoolEntry, error: BaseException, report: RetryReport) -> None:
    entry.attempts += 1
    entry.last_error = redact(error)
    entry.last_attempt = _now().isoformat()
    entry.save()
    report.failed.append({"key": entry.key, "local_path": entry.local_path, "error": entry.last_error})


def _upload_entry(store, entry: SpoolEntry, url_cache: dict) -> dict:
    """Upload one output or manifest entry; raise StorageError on failure."""
    from .manifest import load_manifest, manifest_identity, set_manifest_urls, update_manifest_urls, write_manifest

    local = Path(entry.local_path or "")
    if not local.is_file():
        raise StorageError(f"the spooled copy {local} is missing", reason="spool-missing")
    mode, expiry = entry.url_mode, entry.url_expiry_seconds
    if entry.role == "manifest":
        urls = {sha: store.url_for(key, mode, expiry) for sha, key in entry.output_keys.items()}
        manifest = load_manifest(local)
        set_manifest_urls(manifest, local, urls)
        write_manifest(local, manifest)
        # the original manifest gets the URLs too, when it is still the same render
        src = Path(entry.source_path or "")
        if src.is_file():
            try:
                original = load_manifest(src)
                if manifest_identity(original) == entry.manifest_identity:
                    update_manifest_urls(src, urls)
                    url_cache.setdefault("_manifests", []).append(str(src))
            except Exception as exc:  # noqa: BLE001 - the store copy is what matters here
                logger.warning("could not update %s with URLs: %s", src, redact(exc))
    digest = digest_file(local, store.config.multipart_chunksize)
    if entry.role == "output" and digest.sha256 != entry.sha256:
        raise StorageError(f"the spooled copy {local.name} no longer matches its sha256: kept for inspection", reason="spool-corrupt")
    outcome = store.upload_file(local, entry.key, digest, content_type=entry.content_type, cache_control=entry.cache_control)
    return {"key": entry.key, "url": store.url_for(entry.key, mode, expiry), "source_path": entry.source_path,
            "status": outcome.status, "role": entry.role}


def retry_spooled(
    config: Optional[StorageConfig] = None,
    spool_dir=None,
    *,
    max_batches: Optional[int] = None,
) -> RetryReport:
    """Upload what waits in the spool; remove each entry only after a verified upload.

    Stops at the first sign that the store is down or the credentials are wrong
    (the entries stay, with the error recorded). Returns a ``RetryReport``; it
    raises only ``StorageNotConfigured`` / ``StorageConfigError`` when no
    configuration is available.
    """
    from .store import S3Store

    config = config or load_storage_config(spool_dir=spool_dir)
    spool = Path(spool_dir).expanduser() if spool_dir else config.spool_dir
    report = RetryReport()
    if not spool.is_dir():
        return report
    with spool_lock(spool) as locked:
        if not locked:
            report.busy = True
            report.remaining = len(list_spooled(spool))
            return report
        entries = list_spooled(spool)
        if not entries:
            return report
        store = S3Store(config)
        try:
            store.probe()
        except StorageError as exc:
            report.error = exc.message
            report.remaining = len(entries)
            for entry in entries:  # record the attempt on each waiting entry
                entry.attempts += 1
                entry.last_error = exc.message
                entry.last_attempt = _now().isoformat()
                try:
                    entry.save()
                except OSError:
                    pass
            return report
        batches: dict[str, list[SpoolEntry]] = {}
        for entry in entries:
            batches.setdefault(entry.batch, []).append(entry)
        ordered = sorted(batches.values(), key=lambda items: min(e.created for e in items))
        if max_batches is not None:
            ordered = ordered[: max(0, int(max_batches))]
        order = {"output": 0, "manifest": 1, "history": 2}
        for items in ordered:
            items.sort(key=lambda e: (order.get(e.role, 3), e.name))
        # keys still waiting: a manifest or history record never goes up before the objects it names
        pending = {e.key for e in entries if e.role == "output"}
        tried: set[int] = set()  # each entry is attempted at most once per call
        cache: dict = {}
        stop, progress = False, True
        while progress and not stop:  # passes: a run's records may wait for a file spooled by a later run
            progress = False
            for items in ordered:
                if stop:
                    break
                batch_ok = True
                for entry in items:
                    if id(entry) in tried:  # done in an earlier pass: uploaded (record gone) or failed
                        if entry.role == "output" and entry.record_path.exists():
                            batch_ok = False
                        continue
                    if entry.role != "output" and not batch_ok:
                        break  # the manifest and history wait for every output of their run
                    named = set(entry.output_keys.values()) if entry.role == "manifest" else {
                        o.get("key") for o in (entry.payload or {}).get("outputs", []) if isinstance(o, dict)}
                    if entry.role != "output" and named & pending:
                        break  # an output of this run waits in another batch (the same file spooled twice)
                    tried.add(id(entry))
                    try:
                        if entry.role == "history":
                            payload = dict(entry.payload or {})
                            payload["status"] = "uploaded"
                            payload["uploaded_at"] = _now().isoformat()
                            payload["spooled_reason"] = entry.reason
                            store.put_json(entry.key, payload)
                            result = {"key": entry.key, "url": None, "source_path": None, "status": "uploaded", "role": "history"}
                        else:
                            result = _upload_entry(store, entry, cache)
                    except StorageError as exc:
                        _attempt_failed(entry, exc, report)
                        batch_ok = False
                        if isinstance(exc, (StorageUnavailable, StorageCredentialsError)) or exc.reason == "bucket-missing":
                            report.error = exc.message
                            stop = True
                            break
                        continue
                    except Exception as exc:  # noqa: BLE001 - a bad record must not stop the others
                        _attempt_failed(entry, exc, report)
                        batch_ok = False
                        continue
                    entry.remove()
                    pending.discard(entry.key)
                    progress = True
                    report.uploaded.append(result)
                    logger.info("uploaded spooled %s (%s)", entry.key, result["status"])
        report.manifests_updated.extend(dict.fromkeys(cache.get("_manifests", [])))
        report.remaining = len(list_spooled(spool))
        return report


class SpoolRetryThread(threading.Thread):
    """Retries the spool every ``interval_seconds`` until ``stop_event`` is set. Never raises."""

    def __init__(self, interval_seconds: float = 300.0, *, stop_event: Optional[threading.Event] = None,
                 config: Optional[StorageConfig] = None, spool_dir=None,
                 retention_hours: Optional[float] = None, retention_folders=()):
        super().__init__(name="adreel-spool-retry", daemon=True)
        # retention: with an age set, spool entries and temporary files older than it are removed
        self.retention_hours = retention_hours
        self.retention_folders = list(retention_folders)
        self.interval = max(0.05, float(interval_seconds))
        self.stop_event = stop_event or threading.Event()
        self.config = config
        self.spool_dir = spool_dir
        self.last_report: Optional[RetryReport] = None
        self.runs = 0

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.last_report = retry_spooled(self.config, self.spool_dir)
                if self.last_report.uploaded or self.last_report.failed:
                    logger.info("%s", self.last_report.summary())
            except StorageError as exc:
                logger.debug("spool retry skipped: %s", exc.message)
            except Exception as exc:  # noqa: BLE001 - keep the thread alive
                logger.warning("spool retry failed: %s: %s", type(exc).__name__, redact(exc))
            if self.retention_hours is not None:
                self._clean()
            self.runs += 1
            self.stop_event.wait(self.interval)

    def _clean(self) -> None:
        from .retention import clean_retention
        try:
            spool = self.spool_dir or (self.config.spool_dir if self.config else None)
            folders = ([spool] if spool else []) + self.retention_folders
            report = clean_retention(folders, self.retention_hours)
            if report.removed:
                logger.info("retention: removed %d item(s) older than %gh", len(report.removed), self.retention_hours)
        except Exception as exc:  # noqa: BLE001 - keep the thread alive
            logger.warning("retention failed: %s: %s", type(exc).__name__, redact(exc))

    def stop(self, timeout: Optional[float] = 10.0) -> None:
        self.stop_event.set()
        self.join(timeout)


def start_retry_thread(interval_seconds: float = 300.0, *, stop_event: Optional[threading.Event] = None,
                       config: Optional[StorageConfig] = None, spool_dir=None,
                       retention_hours: Optional[float] = None, retention_folders=()) -> SpoolRetryThread:
    """Start a daemon thread that calls ``retry_spooled`` now and then every ``interval_seconds``
    (and, with ``retention_hours``, cleans what is older than that)."""
    thread = SpoolRetryThread(interval_seconds, stop_event=stop_event, config=config, spool_dir=spool_dir,
                              retention_hours=retention_hours, retention_folders=retention_folders)
    thread.start()
    return thread
