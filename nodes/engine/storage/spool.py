"""The local spool: files that could not be uploaded wait here, and are retried later.

Layout (``spool_dir`` defaults to ``~/.local/state/adreel/spool``, see config)::

    <spool_dir>/.adreel-spool              marker: retention treats this folder as a spool
    <spool_dir>/spool.sqlite3              the records: one row per waiting file (table ``entries``)
    <spool_dir>/.lock                      one retry at a time (also across processes)
    <spool_dir>/<batch>/3f9a1c-ad_9x16.mp4 a copy of the file (the original stays where it was)

A batch is one run's upload. Its rows are written **before** the upload
starts (a write-ahead intent: ``state == "intent"``, no copy yet, the source
path and sha256 recorded); an item's row is deleted once the store holds it.
Each write is one ``BEGIN IMMEDIATE`` transaction of SQLite (``synchronous =
FULL``): committed means on disk. So a crash or ``kill -9`` at any point leaves
rows that the next retry cycle finishes: from the spooled copy, or — when the
copy is missing or does not match its sha256 — from a fresh copy of the intact
source. A copy is flushed to disk (fsync of the file and its folder) before its
row says it is there. Incomplete multipart uploads AdReel left for a key it
retries are aborted first.

``retry_spooled`` uploads the outputs of each batch first, then its manifest
(with the URLs filled in, also in the original manifest file when it is
unchanged), then its history record. Keys are derived from content and every
upload is HEAD-first, so a retry never makes a second object; an entry leaves
the spool only after the store reports the same size and sha256 (and MD5 ETag
where it has one). A failed attempt keeps the entry and records the error.
"""
from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import sqlite3
import threading
import uuid
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Optional

from ..media.files import fsync_dir
from .config import StorageConfig, load_storage_config
from .errors import StorageCredentialsError, StorageError, StorageUnavailable, logger
from ..cloud.redaction import redact
from .keys import digest_file

SPOOL_MARKER = ".adreel-spool"
DB_NAME = "spool.sqlite3"
LOCK_NAME = ".lock"
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


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class SpoolEntry:
    """One spooled file (or, for ``role == "history"``, one index record with no file): one row.

    A caller fills in what the upload is (``batch``, ``role``, ``key``, ``kind``, ``content_type``,
    ``sha256``, ``bytes``, …); the spool names it and keeps the rest (state, attempts, errors)."""

    batch: str
    role: str  # "output" | "manifest" | "history"
    key: str
    name: str = ""  # unique in its batch; also the copy's file name. Given by the spool
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
    state: str = "intent"  # "intent": recorded before the upload, no copy yet | "spooled": the copy is on disk
    owner_pid: Optional[int] = None
    bad_copy: Optional[str] = None  # "size:mtime" of a copy found corrupt (not re-hashed while unchanged)
    spool: str = field(default="", repr=False, compare=False)  # the spool folder (not stored)

    @property
    def folder(self) -> Path:
        return Path(self.spool) / self.batch

    def save(self) -> None:
        """Write this row (insert or replace), in one transaction."""
        with _transaction(self.spool) as db:
            _put(db, self)

    def created_at(self) -> datetime:
        try:
            t = datetime.fromisoformat(self.created)
            return t if t.tzinfo else t.replace(tzinfo=timezone.utc)
        except (TypeError, ValueError):
            return _now()

    def copy_path(self) -> Optional[Path]:
        """The spooled copy, only when the row names a file directly inside its own batch folder.

        A row (forged, or from a spool someone else can write to) that points anywhere else gets
        ``None``: nothing outside the batch folder is ever read, uploaded or deleted through it."""
        if not self.local_path:
            return None
        p = Path(self.local_path)
        batch = Path(os.path.realpath(self.folder))
        if p.name in ("", ".", "..") or Path(os.path.realpath(p.parent)) != batch or p.is_symlink():
            return None
        if p.name.startswith(".") or p.name.endswith(".part"):
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
        """Delete the row first, then the copy (a crash between leaves an orphan copy of an uploaded
        file, never a dangling row). Only the copy inside its own batch folder is ever unlinked."""
        with _transaction(self.spool) as db:
            db.execute("DELETE FROM entries WHERE batch = ? AND name = ?", (self.batch, self.name))
        copy = self.copy_path()
        if copy is not None:
            try:
                copy.unlink()
            except FileNotFoundError:
                pass
        elif self.local_path:
            logger.warning("spool record %s named %s, outside its batch folder: not deleted", self.name, self.local_path)
        try:
            self.folder.rmdir()  # only when empty
        except OSError:
            pass


# ---------------------------------------------------------------- the table
_FIELDS = [f.name for f in dataclasses.fields(SpoolEntry) if f.name != "spool"]
_JSON_FIELDS = ("output_keys", "payload")
_SCHEMA = ("CREATE TABLE IF NOT EXISTS entries (" + ", ".join(_FIELDS) + ", PRIMARY KEY (batch, name))")


def _connect(spool) -> sqlite3.Connection:
    path = Path(spool) / DB_NAME
    new = not path.exists()
    db = sqlite3.connect(str(path), timeout=60, isolation_level=None)  # transactions are explicit
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA synchronous = FULL")  # a commit is on disk before it returns
    db.execute(_SCHEMA)
    if new:
        os.chmod(path, 0o600)
        _import_json_records(db, Path(spool))
    return db


@contextmanager
def _transaction(spool) -> Iterator[sqlite3.Connection]:
    """One write transaction, taken up front (``BEGIN IMMEDIATE``): no other writer in between."""
    with closing(_connect(spool)) as db:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def _put(db: sqlite3.Connection, entry: SpoolEntry) -> None:
    values = [getattr(entry, f) for f in _FIELDS]
    for f in _JSON_FIELDS:
        values[_FIELDS.index(f)] = json.dumps(getattr(entry, f), ensure_ascii=False)
    db.execute(f"INSERT OR REPLACE INTO entries ({', '.join(_FIELDS)}) VALUES ({', '.join('?' * len(_FIELDS))})",
               values)


def _row_entry(row: sqlite3.Row, spool) -> SpoolEntry:
    data = {f: row[f] for f in _FIELDS}
    for f in _JSON_FIELDS:
        data[f] = json.loads(data[f]) if data[f] else None
    data["output_keys"] = data["output_keys"] or {}
    return SpoolEntry(**data, spool=str(spool))


def _import_json_records(db: sqlite3.Connection, spool: Path) -> None:
    """A spool from before the table kept one ``*.spool.json`` record per file: its rows, once."""
    for record in sorted(spool.glob("*/*.spool.json")):
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
            entry = SpoolEntry(**{k: v for k, v in data.items() if k in _FIELDS})
            _put(db, entry)
            record.unlink()
        except (OSError, ValueError, TypeError) as exc:
            logger.warning("unreadable spool record %s (%s): left in place", record, type(exc).__name__)


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
    """Every spool entry, in the order they were recorded."""
    spool = Path(spool_dir).expanduser()
    if not (spool / DB_NAME).is_file() and not any(spool.glob("*/*.spool.json")):
        return []
    with closing(_connect(spool)) as db:
        _import_json_records(db, spool)
        return [_row_entry(row, spool) for row in db.execute("SELECT * FROM entries ORDER BY rowid")]


def _copy_durably(source: Path, folder: Path, name: str, size: int, sha256: Optional[str] = None) -> Path:
    """Copy ``source`` to ``folder/name`` through a ``.part`` file, fsynced before the rename and the folder
    fsynced after it: once this returns, the copy is on disk, whatever happens next."""
    target = folder / name
    part = folder / (name + ".part")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # (a batch folder goes when its last copy does)
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


def _insert_new(entry: SpoolEntry, spool: Path) -> SpoolEntry:
    """Name ``entry`` (unique in its batch, never a file already there), create its batch folder and insert it."""
    entry.spool = str(spool)
    entry.created = entry.created or _now().isoformat()
    entry.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    base = "history" if entry.role == "history" else Path(entry.key).name
    with _transaction(spool) as db:
        while True:
            entry.name = f"{secrets.token_hex(3)}-{base}"
            taken = db.execute("SELECT 1 FROM entries WHERE batch = ? AND name = ?", (entry.batch, entry.name)).fetchone()
            if not taken and not (entry.folder / entry.name).exists():
                break
        if entry.role != "history":
            entry.local_path = str((entry.folder / entry.name).resolve())
        _put(db, entry)
    return entry


def record_intent(spool_dir, entry: SpoolEntry, source: Optional[Path]) -> SpoolEntry:
    """Record an upload that is about to start (no copy yet): if the process dies before the store holds
    the file, the next retry cycle finds this row and finishes the upload from ``source``."""
    spool = ensure_spool_dir(spool_dir)
    entry.source_path = str(Path(source).resolve()) if source else None
    entry.state, entry.owner_pid, entry.reason = "intent", os.getpid(), "upload in progress"
    return _insert_new(entry, spool)


def find_spooled(spool_dir, key: str, sha256: str) -> Optional[SpoolEntry]:
    """An output with this key and content already spooled (its copy on disk), if any."""
    with closing(_connect(spool_dir)) as db:
        rows = db.execute("SELECT * FROM entries WHERE role = 'output' AND state = 'spooled' AND key = ? AND sha256 = ? "
                          "ORDER BY rowid", (key, sha256)).fetchall()
    entries = (_row_entry(row, spool_dir) for row in rows)
    return next((e for e in entries if e.copy_path() is not None and e.copy_path().is_file()), None)


def spool_file(spool_dir, entry: SpoolEntry, source: Path, *, reason: str, attempts: int) -> SpoolEntry:
    """Copy ``source`` into the spool and record it as ``entry`` (an intent already recorded by
    ``record_intent``, or a new entry). The copy is on disk (fsynced) before the row says so. An identical
    output already spooled by another run is reused (and ``entry`` is dropped: that one covers it)."""
    spool = ensure_spool_dir(spool_dir)
    if entry.role == "output":
        existing = find_spooled(spool, entry.key, entry.sha256)
        if existing is not None and (existing.batch, existing.name) != (entry.batch, entry.name):
            if entry.name:
                entry.remove()
            return existing  # (not rewritten: a retry may be removing it right now, after its upload)
    entry.source_path = str(Path(source).resolve())
    if not entry.name:
        _insert_new(entry, spool)
    target = _copy_durably(Path(source), entry.folder, entry.name, entry.bytes,
                           entry.sha256 if entry.role == "output" else None)
    entry.local_path = str(target.resolve())
    entry.attempts, entry.last_error, entry.reason = attempts, redact(reason), redact(reason)
    entry.last_attempt = _now().isoformat() if attempts else None
    entry.state, entry.owner_pid = "spooled", None
    entry.save()
    crash_point("spool-recorded")
    return entry


def spool_record(spool_dir, entry: SpoolEntry, reason: str) -> SpoolEntry:
    """Spool an index object (no file): the run's history record, ``entry.payload``."""
    spool = ensure_spool_dir(spool_dir)
    entry.last_error = entry.reason = redact(reason)
    entry.state, entry.owner_pid = "spooled", None
    if entry.name:
        entry.save()
    else:
        _insert_new(entry, spool)
    return entry


def _good_copy(entry: SpoolEntry, copy: Path, chunk: int) -> bool:
    """The copy is there and (for an output) has its size and sha256; a copy found bad is remembered by
    its size and mtime, so a broken file is not re-hashed every cycle."""
    if not copy.is_file():
        return False
    if entry.role != "output":
        return True
    st = copy.stat()
    stamp = f"{st.st_size}:{st.st_mtime_ns}"
    if entry.bad_copy == stamp:
        return False
    if st.st_size == entry.bytes and digest_file(copy, chunk).sha256 == entry.sha256:
        return True
    entry.bad_copy = stamp
    return False


def materialize(entry: SpoolEntry, chunk: int) -> Path:
    """The entry's spooled copy, verified; re-copied from its intact source when the copy is missing, cut
    short or corrupt (a power loss, a crash mid-copy, an intent whose upload never finished).

    Raises ``StorageError`` (``spool-corrupt`` / ``spool-missing``) when neither copy nor source is good."""
    copy = entry.copy_path()
    if entry.local_path and copy is None:
        raise StorageError(f"the spool record {entry.name} points outside its batch folder: refused", reason="spool-forged")
    if copy is None:
        copy = entry.folder / entry.name
    if _good_copy(entry, copy, chunk):
        return copy
    src = Path(entry.source_path or "")
    if entry.source_path and src.is_file() and not src.is_symlink():
        if entry.role != "output" or (src.stat().st_size == entry.bytes and digest_file(src, chunk).sha256 == entry.sha256):
            target = _copy_durably(src, entry.folder, copy.name, src.stat().st_size,
                                   entry.sha256 if entry.role == "output" else None)
            entry.bad_copy = None
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
    """Yield True when this caller holds the spool lock, False when another retry is running (in this
    process or another). The lock is an exclusive SQLite transaction on ``.lock``: the operating system
    drops it when its holder dies, however it dies."""
    spool = ensure_spool_dir(spool_dir)
    with closing(sqlite3.connect(str(spool / LOCK_NAME), timeout=0, isolation_level=None)) as lock:
        try:
            lock.execute("BEGIN EXCLUSIVE")
        except sqlite3.OperationalError:  # "database is locked"
            yield False
            return
        try:
            yield True
        finally:
            lock.execute("ROLLBACK")


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


def _upload_entry(store, entry: SpoolEntry, report: RetryReport) -> dict:
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
                    report.manifests_updated.append(str(src))
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
        except (OSError, sqlite3.Error):
            pass


@dataclass
class _RetryRun:
    """One ``retry_spooled`` call: the store, what it reports, which output keys still wait (a manifest or
    history record never goes up before the objects it names) and the entries tried so far (each at most
    once per call: id → uploaded)."""

    store: object
    report: RetryReport
    pending: set
    tried: dict = field(default_factory=dict)

    def run_pass(self, ordered: list[list[SpoolEntry]]) -> tuple[bool, bool]:
        """One pass over every batch, oldest first: (anything uploaded, stop)."""
        moved = False
        for items in ordered:
            batch_moved, stop = self.run_batch(items)
            moved = moved or batch_moved
            if stop:
                return moved, True
        return moved, False

    def run_batch(self, items: list[SpoolEntry]) -> tuple[bool, bool]:
        """One pass over one batch's entries (outputs first): (anything uploaded, stop every batch).

        The manifest and history record wait for every output of their run, here and in other batches."""
        batch_ok, moved = True, False
        for entry in items:
            if id(entry) in self.tried:  # done in an earlier pass: uploaded or failed
                batch_ok = batch_ok and (entry.role != "output" or self.tried[id(entry)])
                continue
            if entry.role != "output" and (not batch_ok or _names(entry) & self.pending):
                break  # an output of this run has not gone up (or waits in another batch: the same file spooled twice)
            self.tried[id(entry)] = False
            try:
                result = _retry_entry(entry, self.store, self.report)
            except StorageError as exc:
                _attempt_failed(entry, exc, self.report)
                batch_ok = False
                if isinstance(exc, (StorageUnavailable, StorageCredentialsError)) or exc.reason == "bucket-missing":
                    self.report.error = exc.message
                    return moved, True
                continue
            except Exception as exc:  # noqa: BLE001 - a bad record must not stop the others
                _attempt_failed(entry, exc, self.report)
                batch_ok = False
                continue
            entry.remove()
            self.tried[id(entry)] = True
            self.pending.discard(entry.key)
            moved = True
            self.report.uploaded.append(result)
            logger.info("uploaded spooled %s (%s)", entry.key, result["status"])
        return moved, False


def _names(entry: SpoolEntry) -> set:
    """The object keys a manifest or history record names."""
    if entry.role == "manifest":
        return set(entry.output_keys.values())
    return {o.get("key") for o in (entry.payload or {}).get("outputs", []) if isinstance(o, dict)}


def _retry_entry(entry: SpoolEntry, store, report: RetryReport) -> dict:
    """Upload one spooled entry; a history record is written once, never over another run's."""
    if entry.role != "history":
        return _upload_entry(store, entry, report)
    payload = dict(entry.payload or {})
    payload["status"] = "uploaded"
    payload["uploaded_at"] = _now().isoformat()
    payload["spooled_reason"] = entry.reason
    outcome = store.put_json(entry.key, payload, if_absent=True)
    return {"key": entry.key, "url": None, "source_path": None, "status": outcome.status, "role": "history"}


_ROLE_ORDER = {"output": 0, "manifest": 1, "history": 2}


def _batches(entries: list[SpoolEntry], max_batches: Optional[int]) -> list[list[SpoolEntry]]:
    """The entries by batch, oldest batch first, each batch's outputs first (in their recorded order)."""
    batches: dict[str, list[SpoolEntry]] = {}
    for entry in entries:
        batches.setdefault(entry.batch, []).append(entry)
    ordered = sorted(batches.values(), key=lambda items: min(e.created for e in items))
    if max_batches is not None:
        ordered = ordered[: max(0, int(max_batches))]
    for items in ordered:
        items.sort(key=lambda e: _ROLE_ORDER.get(e.role, 3))  # (a stable sort: the recorded order stays)
    return ordered


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
        everything = list_spooled(spool)
        entries = [e for e in everything if e.abandoned()] if locked else []  # a running upload keeps its rows
        report.busy = not locked
        report.remaining = len(everything)
        if not entries:
            return report
        store = S3Store(config)
        try:
            store.probe()
        except StorageError as exc:
            report.error = exc.message
            report.remaining = len(entries)
            _record_attempt(entries, exc.message)
            return report
        run = _RetryRun(store, report, {e.key for e in everything if e.role == "output"})
        ordered = _batches(entries, max_batches)
        progress, stop = True, False
        while progress and not stop:  # passes: a run's records may wait for a file spooled by a later run
            progress, stop = run.run_pass(ordered)
        report.manifests_updated[:] = dict.fromkeys(report.manifests_updated)
        report.remaining = len(list_spooled(spool))
        return report
