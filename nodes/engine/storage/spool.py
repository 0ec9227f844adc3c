"""The local spool: files that could not be uploaded wait here, and are retried later.

Layout (``spool_dir`` defaults to ``~/.local/state/adreel/spool``, see config)::

    <spool_dir>/.adreel-spool                 marker: retention treats this folder as a spool
    <spool_dir>/.lock                         one retry at a time (also across processes)
    <spool_dir>/<batch>/03-ad_9x16.mp4        a copy of the file (the original stays where it was)
    <spool_dir>/<batch>/03-ad_9x16.mp4.spool.json
                                              its record: source and spool paths, intended key,
                                              content type, sha256, bytes, attempts, last error
    <spool_dir>/<batch>/90-history.spool.json the run's history index, written once its files are up

A batch is one run's upload. Its records are written **before** the upload
starts (a write-ahead intent: ``state == "intent"``, no copy yet, the source
path and sha256 recorded); an item's record is removed once the store holds it.
So a crash or ``kill -9`` at any point leaves records that the next retry
cycle finishes: from the spooled copy, or — when the copy is missing or does
not match its sha256 — from a fresh copy of the intact source. A copy is
flushed to disk (fsync of the file and its folder) before its record says it
is there. Incomplete multipart uploads AdReel left for a key it retries are
aborted first.

``retry_spooled`` uploads the outputs of each
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
import threading
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Optional

from .atomic import fsync_dir, write_text_atomic  # noqa: F401  (fsync_dir: spool's callers)
from .config import StorageConfig, load_storage_config
from .errors import StorageCredentialsError, StorageError, StorageUnavailable, logger
from ..cloud.redaction import redact
from .keys import digest_file

SPOOL_MARKER = ".adreel-spool"
RECORD_SUFFIX = ".spool.json"
RECORD_VERSION = 2
# an intent of another live process is left to it for this long (then it is taken as abandoned)
FOREIGN_INTENT_GRACE_SECONDS = 6 * 3600
_active_lock = threading.Lock()
_active_batches: set[str] = set()  # batches whose upload_ad is running in this process

# Tests replace this to simulate a crash (raise a BaseException) at a named step of an upload.
CRASH_HOOK = None


def crash_point(step: str) -> None:
    if CRASH_HOOK is not None:
        CRASH_HOOK(step)


def mark_active(batch: str, active: bool) -> None:
    with _active_lock:
        (_active_batches.add if active else _active_batches.discard)(batch)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True
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
    state: str = "spooled"  # "intent": recorded before the upload, no copy yet | "spooled": the copy is on disk
    owner_pid: Optional[int] = None
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

    def copy_path(self) -> Optional[Path]:
        """The spooled copy, only when the record names a file directly inside its own batch folder.

        A record (forged, or from a spool someone else can write to) that points anywhere else gets
        ``None``: nothing outside the batch folder is ever read, uploaded or deleted through it."""
        if not self.local_path:
            return None
        p = Path(self.local_path)
        batch = Path(os.path.realpath(self._dir))
        if p.name in ("", ".", "..") or Path(os.path.realpath(p.parent)) != batch or p.is_symlink():
            return None
        if p.name.endswith(RECORD_SUFFIX) or p.name.startswith("."):
            return None
        return batch / p.name

    def abandoned(self, now: Optional[datetime] = None) -> bool:
        """An intent whose upload is no longer running (its process died or finished without clearing it)."""
        if self.state != "intent":
            return True
        pid = self.owner_pid
        if pid is None or pid == os.getpid():
            with _active_lock:
                return self.batch not in _active_batches
        if not _pid_alive(pid):
            return True
        age = ((now or _now()) - self.created_at()).total_seconds()
        return age > FOREIGN_INTENT_GRACE_SECONDS

    def remove(self) -> None:
        """Delete the record first, then the copy (a crash between leaves an orphan copy of an uploaded
        file, never a dangling record). Only the copy inside its own batch folder is ever unlinked."""
        try:
            self.record_path.unlink()
        except FileNotFoundError:
            pass
        copy = self.copy_path()
        if copy is not None:
            try:
                copy.unlink()
            except FileNotFoundError:
                pass
        elif self.local_path:
            logger.warning("spool record %s named %s, outside its batch folder: not deleted", self.name, self.local_path)
        try:
            Path(self._dir).rmdir()  # only when empty
        except OSError:
            pass


def _write_json_atomic(path: Path, data) -> None:
    write_text_atomic(path, json.dumps(data, ensure_ascii=False, indent=2))


def _refused_location(spool: Path) -> Optional[str]:
    home = Path.home().resolve()
    if spool == Path(spool.anchor):
        return "the filesystem root"
    if spool == home or home.is_relative_to(spool):
        return "the home folder (or a folder above it)"
    return None


def check_spool_dir(spool_dir, forbidden=(), source: str = "ADREEL_SPOOL_DIR") -> Path:
    """Refuse a spool folder AdReel must not use (see ``ensure_spool_dir``), without creating anything.

    ``forbidden``: folders the spool may not be in, contain or equal (ComfyUI's input, output and temp:
    anyone who can reach ComfyUI can write files there)."""
    spool = Path(os.path.realpath(Path(spool_dir).expanduser()))
    why = _refused_location(spool)
    if why is None:
        for root in forbidden:
            r = Path(os.path.realpath(root))
            if spool == r or spool.is_relative_to(r) or r.is_relative_to(spool):
                why = f"inside (or around) ComfyUI's folder {r.name}/, where anyone who can reach ComfyUI can write"
                break
    if why is None and spool.is_dir():
        if not (spool / SPOOL_MARKER).is_file():
            try:
                foreign = [p.name for p in spool.iterdir()]
            except OSError:
                foreign = ["?"]
            if foreign:
                why = ("an existing folder that holds other files and is not an AdReel spool "
                       f"(e.g. {sorted(foreign)[0]!r}); AdReel only uses an empty or new folder")
        if why is None:
            try:
                mode = spool.stat().st_mode
                if mode & 0o022:
                    why = f"writable by other users (mode {oct(mode & 0o777)}); run: chmod 700 {spool}"
            except OSError:
                pass
    if why is not None:
        from .errors import StorageConfigError
        raise StorageConfigError(f"{source} points at {spool}, which is {why}. Set it to an empty or new folder "
                                 "that only you can write to (default ~/.local/state/adreel/spool)")
    return spool


def ensure_spool_dir(spool_dir, forbidden=()) -> Path:
    """The spool folder, created (mode 700) with its marker if new. An existing folder is used only when it
    already is an AdReel spool or is empty: the marker is never dropped into someone else's folder, so
    retention can never clean a folder AdReel did not create (``StorageConfigError`` otherwise)."""
    spool = Path(spool_dir).expanduser()
    marker = spool / SPOOL_MARKER
    if marker.is_file() and not marker.is_symlink() and not forbidden:
        return spool
    check_spool_dir(spool, forbidden)
    spool.mkdir(mode=0o700, parents=True, exist_ok=True)
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
        if (entry.role == "output" and entry.state == "spooled" and entry.key == key and entry.sha256 == sha256
                and entry.copy_path() is not None and entry.copy_path().is_file()):
            return entry
    return None


def _copy_durably(source: Path, folder: Path, name: str, size: int, sha256: Optional[str] = None) -> Path:
    """Copy ``source`` to ``folder/name`` through a ``.part`` file, fsynced before the rename and the folder
    fsynced after it: once this returns, the copy is on disk, whatever happens next."""
    target = folder / name
    part = folder / (name + ".part")
    with open(source, "rb") as src, open(part, "wb") as dst:
        shutil.copyfileobj(src, dst, 1024 * 1024)
        dst.flush()
        os.fsync(dst.fileno())
    crash_point("spool-copied")
    if part.stat().st_size != size or (sha256 and digest_file(part, 8 * 1024 * 1024).sha256 != sha256):
        part.unlink()
        raise OSError(f"{Path(source).name} changed while it was being spooled")
    os.replace(part, target)
    fsync_dir(folder)
    crash_point("spool-replaced")
    return target


def _record_name(folder: Path, index: int, key: str) -> str:
    name = f"{index:02d}-{Path(key).name}"
    if (folder / name).exists() or (folder / (name + RECORD_SUFFIX)).exists():
        name = f"{index:02d}-{uuid.uuid4().hex[:6]}-{Path(key).name}"  # never overwrite a waiting file
    return name


def record_intent(
    spool_dir,
    batch: str,
    index: int,
    source: Optional[Path],
    *,
    role: str,
    key: str,
    kind: str,
    content_type: str,
    cache_control: Optional[str],
    sha256: str = "",
    size: int = 0,
    bucket: str,
    url_mode: Optional[str] = None,
    url_expiry_seconds: Optional[int] = None,
    output_keys: Optional[dict] = None,
    manifest_identity: Optional[str] = None,
    payload: Optional[dict] = None,
) -> SpoolEntry:
    """Write the record of an upload that is about to start (no copy yet): if the process dies before the
    store holds the file, the next retry cycle finds this record and finishes the upload from the source."""
    spool = ensure_spool_dir(spool_dir)
    folder = spool / batch
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = f"{index:02d}-{role}" if role == "history" else _record_name(folder, index, key)
    entry = SpoolEntry(
        batch=batch, name=name, role=role, key=key, kind=kind, content_type=content_type, cache_control=cache_control,
        sha256=sha256, bytes=size, source_path=str(Path(source).resolve()) if source else None,
        local_path=str((folder / name).resolve()) if role != "history" else None, bucket=bucket,
        created=_now().isoformat(), url_mode=url_mode, url_expiry_seconds=url_expiry_seconds,
        output_keys=dict(output_keys or {}), manifest_identity=manifest_identity, payload=payload,
        state="intent", owner_pid=os.getpid(), reason="upload in progress",
    )
    entry._dir = str(folder)
    entry.save()
    return entry


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
    intent: Optional[SpoolEntry] = None,
) -> SpoolEntry:
    """Copy ``source`` into the spool and record it (turning ``intent``, when given, into the spooled entry).

    The copy is on disk (fsynced) before the record says so. An identical output already spooled by another
    run is reused (and ``intent`` is dropped: that entry covers it)."""
    spool = ensure_spool_dir(spool_dir)
    if dedupe and role == "output":
        existing = find_spooled(spool, key, sha256)
        if existing is not None and (intent is None or existing.record_path != intent.record_path):
            if intent is not None:
                intent.remove()
            return existing  # (not rewritten: a retry may be removing it right now, after its upload)
    if intent is not None:
        entry = intent
        folder = Path(entry._dir)
        name = entry.name
    else:
        folder = spool / batch
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = _record_name(folder, index, key)
        entry = SpoolEntry(batch=batch, name=name, role=role, key=key, bucket=bucket, created=_now().isoformat())
        entry._dir = str(folder)
    target = _copy_durably(Path(source), folder, name, size, sha256 if role == "output" else None)
    entry.kind, entry.content_type, entry.cache_control = kind, content_type, cache_control
    entry.sha256, entry.bytes = sha256, size
    entry.source_path, entry.local_path = str(Path(source).resolve()), str(target.resolve())
    entry.attempts, entry.last_error, entry.reason = attempts, redact(reason), redact(reason)
    entry.last_attempt = _now().isoformat() if attempts else None
    entry.url_mode, entry.url_expiry_seconds = url_mode, url_expiry_seconds
    entry.output_keys, entry.manifest_identity = dict(output_keys or {}), manifest_identity
    entry.state, entry.owner_pid = "spooled", None
    entry.save()
    crash_point("spool-recorded")
    return entry


def spool_record(spool_dir, batch: str, index: int, *, role: str, key: str, bucket: str, reason: str, payload: dict,
                 intent: Optional[SpoolEntry] = None) -> SpoolEntry:
    """Spool an index object (no file): the run's history record."""
    if intent is not None:
        entry = intent
    else:
        spool = ensure_spool_dir(spool_dir)
        folder = spool / batch
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        entry = SpoolEntry(batch=batch, name=f"{index:02d}-{role}", role=role, key=key, kind=role,
                           content_type="application/json", bucket=bucket, created=_now().isoformat())
        entry._dir = str(folder)
    entry.payload = payload
    entry.last_error = entry.reason = redact(reason)
    entry.state, entry.owner_pid = "spooled", None
    entry.save()
    return entry


def materialize(entry: SpoolEntry, chunk: int) -> Path:
    """The entry's spooled copy, verified; re-copied from its intact source when the copy is missing, cut
    short or corrupt (a power loss, a crash mid-copy, an intent whose upload never finished).

    Raises ``StorageError`` (``spool-corrupt`` / ``spool-missing``) when neither copy nor source is good;
    the verdict on an unchanged copy is remembered, so a broken file is not re-hashed every cycle."""
    copy = entry.copy_path()
    if entry.local_path and copy is None:
        raise StorageError(f"the spool record {entry.name} points outside its batch folder: refused", reason="spool-forged")
    if copy is None:
        copy = Path(entry._dir) / entry.name
    good = False
    if copy.is_file():
        if entry.role != "output":
            good = True
        else:
            st = copy.stat()
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
            if entry.payload and entry.payload.get("bad_copy") == stamp:
                good = False
            elif st.st_size == entry.bytes and digest_file(copy, chunk).sha256 == entry.sha256:
                good = True
            else:
                entry.payload = {**(entry.payload or {}), "bad_copy": stamp}
    if good:
        return copy
    src = Path(entry.source_path or "")
    if entry.source_path and src.is_file() and not src.is_symlink():
        if entry.role != "output" or (src.stat().st_size == entry.bytes and digest_file(src, chunk).sha256 == entry.sha256):
            target = _copy_durably(src, Path(entry._dir), copy.name, src.stat().st_size,
                                   entry.sha256 if entry.role == "output" else None)
            if entry.payload:
                entry.payload.pop("bad_copy", None)
            entry.local_path, entry.state, entry.owner_pid = str(target.resolve()), "spooled", None
            entry.save()
            logger.info("spool: %s re-copied from its source %s", entry.key, src.name)
            return target
    if copy.is_file():
        raise StorageError(f"the spooled copy {copy.name} no longer matches its sha256 and its source {src.name or '?'} "
                           "is gone or changed: kept for inspection", reason="spool-corrupt")
    raise StorageError(f"the spooled copy of {entry.key} is missing and its source {src.name or '?'} is gone or "
                       "changed", reason="spool-missing")


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
    from .manifest import durable_urls, load_manifest, manifest_identity, set_manifest_urls, update_manifest_urls, write_manifest

    chunk = store.config.multipart_chunksize
    if entry.attempts or entry.state == "intent":
        store.abort_incomplete_uploads(entry.key)  # parts a crashed attempt left in the bucket
    local = materialize(entry, chunk)
    mode, expiry = entry.url_mode, entry.url_expiry_seconds
    if entry.role == "manifest":
        urls = durable_urls(store, entry.output_keys, mode)
        manifest = load_manifest(local)
        if entry.manifest_identity and manifest_identity(manifest) != entry.manifest_identity:
            raise StorageError(f"the manifest {Path(entry.source_path or local).name} changed since its upload began "
                               "(not this render's any more): kept for inspection", reason="manifest-changed")
        set_manifest_urls(manifest, local, urls)
        write_manifest(local, manifest)
        # the original manifest gets the URLs too, when it is still the same render
        src = Path(entry.source_path or "")
        if src.is_file() and not src.is_symlink():
            try:
                original = load_manifest(src)
                if manifest_identity(original) == entry.manifest_identity:
                    update_manifest_urls(src, urls)
                    url_cache.setdefault("_manifests", []).append(str(src))
            except Exception as exc:  # noqa: BLE001 - the store copy is what matters here
                logger.warning("could not update %s with URLs: %s", src.name, redact(exc))
    digest = digest_file(local, chunk)
    if entry.role == "output" and digest.sha256 != entry.sha256:
        raise StorageError(f"the spooled copy {local.name} no longer matches its sha256: kept for inspection", reason="spool-corrupt")
    outcome = store.upload_file(local, entry.key, digest, content_type=entry.content_type, cache_control=entry.cache_control)
    crash_point("retry-uploaded")
    return {"key": entry.key, "url": store.url_for(entry.key, mode, expiry), "source_path": entry.source_path,
            "status": outcome.status, "role": entry.role}


def _record_attempt(entries: list[SpoolEntry], message: str) -> None:
    """The store could not be reached: each waiting entry records the attempt and why."""
    for entry in entries:
        entry.attempts += 1
        entry.last_error = message
        entry.last_attempt = _now().isoformat()
        try:
            entry.save()
        except OSError:
            pass


def _retry_pass(ordered: list[list[SpoolEntry]], store, pending: set, report: RetryReport, tried: set[int],
                cache: dict) -> tuple[bool, bool]:
    """One pass over every batch, oldest first: (anything uploaded, stop)."""
    moved = False
    for items in ordered:
        batch_moved, stop = _retry_batch(items, store, pending, report, tried, cache)
        moved = moved or batch_moved
        if stop:
            return moved, True
    return moved, False


def _retry_batch(items: list[SpoolEntry], store, pending: set, report: RetryReport, tried: set[int],
                 cache: dict) -> tuple[bool, bool]:
    """One pass over one batch's entries (outputs first): (anything uploaded, stop every batch).

    The manifest and history record wait for every output of their run, here and in other batches
    (``pending``); each entry is tried at most once per retry call (``tried``)."""
    batch_ok, moved = True, False
    for entry in items:
        if id(entry) in tried:  # done in an earlier pass: uploaded (record gone) or failed
            batch_ok = batch_ok and not (entry.role == "output" and entry.record_path.exists())
            continue
        if entry.role != "output" and (not batch_ok or _names(entry) & pending):
            break  # an output of this run has not gone up (or waits in another batch: the same file spooled twice)
        tried.add(id(entry))
        try:
            result = _retry_entry(entry, store, cache)
        except StorageError as exc:
            _attempt_failed(entry, exc, report)
            batch_ok = False
            if isinstance(exc, (StorageUnavailable, StorageCredentialsError)) or exc.reason == "bucket-missing":
                report.error = exc.message
                return moved, True
            continue
        except Exception as exc:  # noqa: BLE001 - a bad record must not stop the others
            _attempt_failed(entry, exc, report)
            batch_ok = False
            continue
        entry.remove()
        pending.discard(entry.key)
        moved = True
        report.uploaded.append(result)
        logger.info("uploaded spooled %s (%s)", entry.key, result["status"])
    return moved, False


def _names(entry: SpoolEntry) -> set:
    """The object keys a manifest or history record names."""
    if entry.role == "manifest":
        return set(entry.output_keys.values())
    return {o.get("key") for o in (entry.payload or {}).get("outputs", []) if isinstance(o, dict)}


def _retry_entry(entry: SpoolEntry, store, cache: dict) -> dict:
    """Upload one spooled entry; a history record is written once, never over another run's."""
    if entry.role != "history":
        return _upload_entry(store, entry, cache)
    payload = dict(entry.payload or {})
    payload["status"] = "uploaded"
    payload["uploaded_at"] = _now().isoformat()
    payload["spooled_reason"] = entry.reason
    outcome = store.put_json(entry.key, payload, if_absent=True)
    return {"key": entry.key, "url": None, "source_path": None, "status": outcome.status, "role": "history"}


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
        entries = [e for e in list_spooled(spool) if e.abandoned()]  # an upload still running keeps its records
        if not entries:
            report.remaining = len(list_spooled(spool))
            return report
        store = S3Store(config)
        try:
            store.probe()
        except StorageError as exc:
            report.error = exc.message
            report.remaining = len(entries)
            _record_attempt(entries, exc.message)
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
        pending = {e.key for e in list_spooled(spool) if e.role == "output"}
        tried: set[int] = set()  # each entry is attempted at most once per call
        cache: dict = {}
        progress, stop = True, False
        while progress and not stop:  # passes: a run's records may wait for a file spooled by a later run
            progress, stop = _retry_pass(ordered, store, pending, report, tried, cache)
        report.manifests_updated.extend(dict.fromkeys(cache.get("_manifests", [])))
        report.remaining = len(list_spooled(spool))
        return report
