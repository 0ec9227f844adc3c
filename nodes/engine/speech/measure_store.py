"""Measured lines kept on disk, so that another process (a restarted ComfyUI, a second fleet server, the
script's bar in one server and the render in another) does not say a line again only to measure it.

Measuring a Piper line means saying it with no noise (see ``piper_voice``): the same voice file, text, speed
and Piper give the same samples everywhere, so the result can be kept. The store is one SQLite table in
``$ADREEL_CACHE/speech-measures.sqlite3`` (the folder the set-up caches its builds in, default
``~/.cache/adreel``; ``ADREEL_CACHE=off`` turns the store off):

* a row is a SHA-256 of (Piper and onnxruntime versions, voice file and stamp, pace, text, speed) and three
  sample counts: no line's text is written anywhere;
* the folder is made private (0700) and the file 0600; at most ``MAX_ROWS`` rows are kept, the oldest go;
* a row is used only when its numbers can be a measurement (0 ≤ start ≤ end ≤ length ≤ ``most``);
* the store is a help, never a need: any error (a read-only home, a locked or damaged file) means the line
  is measured as if there were no store, and the server goes on.
"""
from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
from functools import lru_cache

logger = logging.getLogger("adreel.speech")

ENV = "ADREEL_CACHE"
FILE_NAME = "speech-measures.sqlite3"
MAX_ROWS = 200_000          # ~20 MB at most
_OFF = ("off", "0", "none", "no")


def store_path() -> str | None:
    """The store's file, or None when it is turned off."""
    chosen = os.environ.get(ENV)
    if chosen is not None:
        chosen = chosen.strip()
        if not chosen or chosen.lower() in _OFF:
            return None
        folder = chosen
    else:
        folder = os.path.join(os.path.expanduser("~"), ".cache", "adreel")
    return os.path.join(os.path.abspath(folder), FILE_NAME)


@lru_cache(maxsize=1)
def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version
    found = []
    for name in ("piper-tts", "onnxruntime"):
        try:
            found.append(f"{name}={version(name)}")
        except PackageNotFoundError:
            found.append(f"{name}=?")
    return ",".join(found)


def row_key(voice_key: str, text: str, speed: float) -> str:
    raw = "\0".join((_versions(), voice_key, f"{float(speed):.4f}", text))
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def _connect(path: str, create: bool) -> sqlite3.Connection | None:
    if not os.path.exists(path):
        if not create:
            return None
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    db = sqlite3.connect(path, timeout=2.0, isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")  # a cache: a row lost to a power cut is measured again
    db.execute("CREATE TABLE IF NOT EXISTS edges (key TEXT PRIMARY KEY, start INTEGER NOT NULL, "
               "stop INTEGER NOT NULL, length INTEGER NOT NULL)")
    return db


def _warn(what: str, exc: Exception) -> None:
    logger.debug("AdReel: the speech measure store could not %s (%s: %s); measuring instead",
                 what, type(exc).__name__, exc)


def load(key: str, most: int) -> tuple[int, int, int] | None:
    """The kept (start, end, length) of a line, if there is one that can be a measurement."""
    path = store_path()
    if not path:
        return None
    try:
        db = _connect(path, create=False)
        if db is None:
            return None
        try:
            row = db.execute("SELECT start, stop, length FROM edges WHERE key = ?", (key,)).fetchone()
        finally:
            db.close()
    except (sqlite3.Error, OSError) as exc:
        _warn("be read", exc)
        return None
    if not row or not all(isinstance(v, int) for v in row):
        return None
    start, stop, length = row
    return (start, stop, length) if 0 <= start <= stop <= length <= most else None


def save(key: str, edges: tuple[int, int, int]) -> None:
    path = store_path()
    if not path:
        return
    try:
        db = _connect(path, create=True)
        try:
            row = db.execute("INSERT OR REPLACE INTO edges (key, start, stop, length) VALUES (?, ?, ?, ?)",
                             (key, *(int(v) for v in edges))).lastrowid
            if row and row % 1024 == 0:  # now and then, the oldest rows past MAX_ROWS go
                db.execute("DELETE FROM edges WHERE rowid <= ?", (row - MAX_ROWS,))
        finally:
            db.close()
    except (sqlite3.Error, OSError) as exc:
        _warn("be written", exc)
