"""The provider jobs journal: a restart never pays twice for a job.

Every paid job is recorded before and after it is submitted — an append-only
JSON-lines file, flushed and fsynced at each step:

    submitting → submitted (job id, how to cancel it) → downloaded | failed | cancelled

The events are ``JobEvent``'s. ``base.JobRun`` does not write them itself: it
tells its observers each change of the remote job's state, and a
``JournalRecorder`` (one per run, made by ``JournalRecorder.open``) is the
observer that writes them here.

A ComfyUI restart (or kill -9) during ProviderRender leaves ``submitted``
entries with no end. The next run then:

- **resumes** a job whose request is the same as one of its own scenes (the
  same provider, model, prompt, key image, duration, ratio, seed and options,
  the same scene): it polls the recorded job id instead of creating a new
  job, and downloads the result when it is done — also when an earlier run
  already downloaded it, since a clip in ComfyUI's output folder cannot be
  trusted (anyone can overwrite it through ``/upload/image``);
- **cancels** the other unfinished jobs of a dead process where the provider
  has a cancel endpoint (where it has none, the entry is closed and the log
  says the job may still be billed). "Dead" means: written on this host by a
  pid that no longer exists; the jobs of another live ComfyUI sharing the
  folder, or of another host, are never cancelled from here;
- removes ``.part`` files left by the stopped downloads (``download.sweep_parts``).

Where it lives: not in ComfyUI's output folder (every file there is writable by
any network user), but in AdReel's state folder — ``$XDG_STATE_HOME/adreel``
(``~/.local/state/adreel``; ``%LOCALAPPDATA%\\adreel`` on Windows) — one file
per clips folder: ``provider_jobs/<hash of the folder>.jsonl``. It holds job
ids, provider names and cancel URLs (the provider's base URL and the job id),
never a key; a key is only ever attached to a recorded cancel URL whose origin
is the provider's configured base URL.

A create that failed without a clear answer (a 5xx, a dropped connection) has
no job id: it is recorded as ``create_unknown`` and cannot be resumed or
cancelled — the error message says to check the provider's dashboard.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from ..media.files import write_atomic
from .log import logger

try:  # POSIX: an advisory lock so two processes sharing a clips folder do not interleave lines
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

PROCESS_ID = uuid.uuid4().hex  # this ComfyUI process: entries of another one whose job is unfinished are orphans
HOST = socket.gethostname()
RESUME_MAX_AGE_S = 48 * 3600  # result URLs and tasks expire after about this long (Runway 24–48 h)
MAX_JOURNAL_BYTES = 8 * 1024 * 1024  # read at most this much; compacted when larger


class JobEvent(str, Enum):
    """A change in what is known about one paid job; the journal's record of it carries the value."""

    SUBMITTING = "submitting"  # the create request is about to go out
    SUBMITTED = "submitted"  # the provider answered with a job id
    REFUSED = "refused"  # the create request was refused, or never got through: nothing exists remotely
    CREATE_UNKNOWN = "create_unknown"  # the create request failed without a clear answer: a job may exist
    RESUMED = "resumed"  # a job recorded by an earlier run is polled instead of a new one created
    STALE = "stale"  # a recorded job the provider no longer knows (or that ended badly): not resumed
    DOWNLOADED = "downloaded"
    DOWNLOAD_FAILED = "download_failed"  # done and paid, not delivered: a re-queue downloads it again
    FAILED = "failed"
    CANCELLED = "cancelled"  # the provider confirmed the cancel
    STOPPED = "stopped"  # stopped here, but the remote job could not be cancelled: left open to resume
    ABANDONED = "abandoned"  # an orphan nobody could cancel; closed, it may still be billed


OPEN = tuple(e.value for e in (JobEvent.SUBMITTING, JobEvent.SUBMITTED, JobEvent.RESUMED, JobEvent.STOPPED))
"""Events after which the job may still be running (and billed) remotely."""
RESUMABLE = tuple(e.value for e in (JobEvent.SUBMITTED, JobEvent.RESUMED, JobEvent.STOPPED, JobEvent.DOWNLOADED,
                                    JobEvent.DOWNLOAD_FAILED))
_active: set[str] = set()  # job keys being run in this process right now
_lock = threading.Lock()


def state_dir(environ: Optional[Mapping[str, str]] = None) -> Path:
    env = os.environ if environ is None else environ
    if os.name == "nt":
        base = env.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
    else:
        base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base).expanduser() / "adreel"


def journal_path(output_dir: os.PathLike, environ: Optional[Mapping[str, str]] = None) -> Path:
    folder = os.path.realpath(os.fspath(output_dir))
    digest = hashlib.sha256(folder.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return state_dir(environ) / "provider_jobs" / f"{digest}.jsonl"


def _file_sha256(path: Optional[os.PathLike]) -> Optional[str]:
    if not path:
        return None
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


def job_key(plan) -> str:
    """What identifies "the same paid request": a re-queue of the same scene maps to the same key."""
    job = plan.job
    image = plan.image
    material = {
        "provider": plan.provider.name, "model": plan.spec.id, "base_url": plan.base_url,
        "scene_index": job.scene.index, "duration": plan.duration, "aspect_ratio": job.aspect_ratio,
        "prompt": job.text_prompt(), "negative": job.negative(), "seed": job.seed, "options": job.options,
        "params": plan.params, "image": None if image is None else _file_sha256(image.path),
        "image_mode": plan.image_mode,
    }
    blob = json.dumps(material, sort_keys=True, default=str, allow_nan=True)
    return hashlib.sha256(blob.encode("utf-8", "surrogateescape")).hexdigest()[:32]


@dataclass
class Entry:
    """The folded state of one job key."""

    key: str
    event: str
    provider: str = ""
    model: str = ""
    scene_index: Optional[int] = None
    job_id: Optional[str] = None
    handle_data: dict = field(default_factory=dict)
    cancel: Optional[dict] = None
    proc: str = ""
    pid: Optional[int] = None
    host: str = ""
    t: float = 0.0
    submitted_at: float = 0.0

    def owner_gone(self) -> bool:
        """True when the process that wrote the entry is known to be dead (same host, its pid is gone).

        Another ComfyUI on this machine sharing the clips folder, or one on another host (a shared
        disk), may still be running the job: it is never cancelled from here.
        """
        if self.proc == PROCESS_ID:
            return False
        if self.host != HOST or not self.pid:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except (PermissionError, OSError):
            return False
        return self.pid == os.getpid()  # our pid, but an earlier process (a restart that got the same pid)

    @property
    def open(self) -> bool:
        return self.event in OPEN

    @property
    def resumable(self) -> bool:
        """A job id to poll, from a job that did not fail or get cancelled, and not too old."""
        if not (self.job_id and self.event in RESUMABLE and time.time() - (self.submitted_at or self.t) < RESUME_MAX_AGE_S):
            return False
        # A clip this process delivered is not fetched again: queueing the same request again here asks for
        # a new take. Delivered by a process that died before its prompt finished: fetched, not paid again.
        return not (self.event == JobEvent.DOWNLOADED.value and self.proc == PROCESS_ID)


class JobJournal:
    def __init__(self, path: os.PathLike):
        self.path = Path(path)

    @classmethod
    def for_output(cls, output_dir: os.PathLike) -> "JobJournal":
        return cls(journal_path(output_dir))

    # ---- writing
    def append(self, event: JobEvent, key: str, **fields: Any) -> None:
        """One record, on disk (fsynced) before this returns. A journal that cannot be written is logged,
        never a reason to lose a paid job."""
        event = JobEvent(event)
        record = {"t": round(time.time(), 3), "proc": PROCESS_ID, "pid": os.getpid(), "host": HOST,
                  "event": event.value, "key": key,
                  **{k: v for k, v in fields.items() if v is not None}}
        line = json.dumps(record, sort_keys=True, default=str, allow_nan=False) + "\n"
        try:
            with _lock:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    if fcntl is not None:
                        fcntl.flock(fd, fcntl.LOCK_EX)
                    os.write(fd, line.encode("utf-8"))
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except (OSError, ValueError) as exc:
            logger.warning("provider jobs journal %s: cannot record %s (%s)", self.path, event.value,
                           type(exc).__name__)

    # ---- reading
    def entries(self) -> dict[str, Entry]:
        out: dict[str, Entry] = {}
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size > MAX_JOURNAL_BYTES:
                    f.seek(size - MAX_JOURNAL_BYTES)
                    f.readline()  # skip a partial line
                raw = f.read()
        except FileNotFoundError:
            return out
        except OSError as exc:
            logger.warning("provider jobs journal %s cannot be read (%s)", self.path, type(exc).__name__)
            return out
        for line in raw.decode("utf-8", "replace").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line torn by a crash mid-write
            if not isinstance(rec, dict) or not isinstance(rec.get("key"), str) or not isinstance(rec.get("event"), str):
                continue
            e = out.get(rec["key"]) or Entry(key=rec["key"], event=rec["event"])
            e.event = rec["event"]
            e.t = float(rec.get("t") or 0.0)
            e.proc = str(rec.get("proc") or "")
            e.pid = rec["pid"] if isinstance(rec.get("pid"), int) else None
            e.host = str(rec.get("host") or "")
            for name in ("provider", "model"):
                if isinstance(rec.get(name), str):
                    setattr(e, name, rec[name])
            if isinstance(rec.get("scene_index"), int):
                e.scene_index = rec["scene_index"]
            if isinstance(rec.get("job_id"), str) and rec["job_id"]:
                e.job_id = rec["job_id"]
            if isinstance(rec.get("handle_data"), dict):
                e.handle_data = rec["handle_data"]
            if isinstance(rec.get("cancel"), dict):
                e.cancel = rec["cancel"]
            if rec["event"] == JobEvent.SUBMITTED.value:
                e.submitted_at = e.t
            if rec["event"] == JobEvent.SUBMITTING.value:  # a new attempt for this key: forget the previous job
                e.job_id, e.handle_data, e.cancel, e.submitted_at = None, {}, None, 0.0
            out[e.key] = e
        return out

    def lookup(self, key: str) -> Optional[Entry]:
        return self.entries().get(key)

    def orphans(self, keep: Iterable[str]) -> list[Entry]:
        """Unfinished jobs of another (dead) process that this run will not resume."""
        keep = set(keep)
        return [e for e in self.entries().values()
                if e.open and e.key not in keep and e.key not in _active and e.owner_gone()]

    def compact(self) -> None:
        """Rewrite the journal keeping only what can still matter (open or resumable entries)."""
        try:
            if self.path.stat().st_size <= MAX_JOURNAL_BYTES // 2:
                return
        except OSError:
            return
        keep = [e for e in self.entries().values() if e.open or e.resumable]
        text = "".join(json.dumps({"t": e.t, "proc": e.proc, "pid": e.pid, "host": e.host,
                                   "event": e.event, "key": e.key,
                                   "provider": e.provider, "model": e.model, "scene_index": e.scene_index,
                                   "job_id": e.job_id, "handle_data": e.handle_data, "cancel": e.cancel},
                                  sort_keys=True, default=str) + "\n" for e in keep)
        try:
            with _lock:
                write_atomic(self.path, text)
        except OSError as exc:
            logger.warning("provider jobs journal %s: compaction failed (%s)", self.path, type(exc).__name__)


def claim(key: str) -> bool:
    """Mark ``key`` as running in this process; False when it already is."""
    with _lock:
        if key in _active:
            return False
        _active.add(key)
        return True


def release(key: str) -> None:
    with _lock:
        _active.discard(key)


class JournalRecorder:
    """Observes one ``JobRun`` and writes each change of its job's state to the journal.

    Made only for a run that holds its job key (``claim``): the same request run twice at once in this
    process is neither recorded nor resumed by the second run. ``close`` gives the key back.
    """

    def __init__(self, journal: JobJournal, plan, key: str):
        self.journal, self.key = journal, key
        self.about = {"provider": plan.provider.name, "model": plan.spec.id, "scene_index": plan.scene_index}

    @classmethod
    def open(cls, journal: Optional[JobJournal], plan) -> Optional["JournalRecorder"]:
        if journal is None:
            return None
        key = job_key(plan)
        return cls(journal, plan, key) if claim(key) else None

    def earlier_job(self) -> Optional[Entry]:
        """What an earlier run recorded for this very request, if its job can still be resumed."""
        entry = self.journal.lookup(self.key)
        return entry if entry is not None and entry.resumable else None

    def __call__(self, event: JobEvent, **fields: Any) -> None:
        self.journal.append(event, self.key, **self.about, **fields)

    def close(self) -> None:
        release(self.key)
