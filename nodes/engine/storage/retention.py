"""Retention: remove leftovers older than a given age, in folders AdReel created — and nothing else.

``clean_retention(folders, max_age_hours)`` looks only inside the folders it is
given and never follows a symbolic link out of them (a link is removed as a
link, its target untouched). The folders themselves are kept. The age must be
at least ``MIN_RETENTION_HOURS`` (24 h): a shorter one would race a copy or an
upload in progress.

* A **spool folder** (it holds the ``.adreel-spool`` marker, which AdReel only
  writes into a new or empty folder) is cleaned under the spool lock (a retry
  in progress: skipped this time). A file that waits for upload is **never**
  removed, however old: its record stays until the store holds it. What goes
  is what is left over: partial copies (``.part``),
  copies whose record is gone (the record goes first once a file is
  uploaded), and empty batch folders.
* Any **other folder** is cleaned only when it holds the ``.adreel-owned``
  marker (``claim_folder``: written only into a new or empty folder): it loses
  every file older than the age, and every subfolder that is empty afterwards
  and was old itself. A folder without a marker is refused (the report says
  so): retention never cleans a folder AdReel did not create.

Nothing is removed from the filesystem root or the home folder itself.
Returns a ``RetentionReport`` listing what was removed (or, with
``dry_run=True``, what would be).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable, Optional, Union

from ..media.files import is_inside
from .errors import logger
from .spool import SPOOL_MARKER, list_spooled, spool_lock
MIN_RETENTION_HOURS = 24.0
OWNED_MARKER = ".adreel-owned"


def claim_folder(folder) -> Path:
    """Create ``folder`` (or take an empty one) as AdReel's own, so that retention may clean it. A folder that
    already holds something and no marker is refused (``ValueError``): it may be someone else's."""
    root = Path(folder).expanduser()
    marker = root / OWNED_MARKER
    if marker.is_file() and not marker.is_symlink():
        return root
    if root.is_dir() and any(True for _ in root.iterdir()):
        raise ValueError(f"{root} already holds files and is not AdReel's: choose a new or empty folder")
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    marker.write_text("Created by AdReel: retention may remove files in here older than ADREEL_RETENTION_HOURS.\n",
                      encoding="utf-8")
    return root


@dataclass
class RetentionReport:
    removed: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    kept: int = 0
    errors: list[str] = field(default_factory=list)
    dry_run: bool = False

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        return f"{verb} {len(self.removed)} item(s), {self.bytes_freed} bytes; kept {self.kept}"


def _refuse(root: Path) -> Optional[str]:
    home = Path.home().resolve()
    if root == Path(root.anchor):
        return "the filesystem root"
    if root == home or home.is_relative_to(root):
        return "the home folder (or a folder above it)"
    return None


def _size(path: Path) -> int:
    try:
        st = path.lstat()
        return st.st_size if not os.path.isdir(path) or os.path.islink(path) else 0
    except OSError:
        return 0


class _Cleaner:
    def __init__(self, root: Path, cutoff: float, report: RetentionReport):
        self.root, self.cutoff, self.report = root, cutoff, report
        self.removed: set[str] = set(report.removed)

    def remove(self, path: Path) -> bool:
        if not is_inside(path.parent, self.root) or path == self.root:  # the last component is not followed
            self.report.errors.append(f"refused to remove {path}: outside {self.root}")
            return False
        size = _size(path)
        if not self.report.dry_run:
            try:
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()
                else:
                    path.unlink()
            except FileNotFoundError:
                return False
            except OSError as exc:
                self.report.errors.append(f"{path}: {type(exc).__name__}")
                return False
        self.report.removed.append(str(path))
        self.removed.add(str(path))
        self.report.bytes_freed += size
        return True

    def old(self, path: Path) -> bool:
        try:
            return path.lstat().st_mtime < self.cutoff
        except OSError:
            return False

    def clean_tree(self) -> None:
        root = self.root
        for dirpath, dirnames, filenames in os.walk(root, topdown=False, followlinks=False):
            here = Path(dirpath)
            for name in filenames + [d for d in dirnames if (here / d).is_symlink()]:
                path = here / name
                if here == root and name == OWNED_MARKER:
                    continue
                if self.old(path):
                    self.remove(path)
                else:
                    self.report.kept += 1
            if here != root:
                was_old = self.old(here)  # note: removing children updates the folder's mtime on disk
                self._maybe_rmdir(here, was_old)

    def _maybe_rmdir(self, folder: Path, was_old: bool) -> None:
        try:
            empty = not any(True for p in folder.iterdir() if str(p) not in self.removed)
        except OSError:
            return
        if empty and (was_old or self._children_removed(folder)):
            self.remove(folder)

    def _children_removed(self, folder: Path) -> bool:
        prefix = str(folder) + os.sep
        return any(r.startswith(prefix) for r in self.removed)

    def clean_spool(self) -> None:
        root = self.root
        entries = list_spooled(root)
        named: dict[str, set[str]] = {}  # batch folder -> the names its entries use (their copies)
        for entry in entries:
            names = named.setdefault(entry.batch, set())
            names.add(entry.name)
            if entry.local_path:
                names.add(Path(entry.local_path).name)
        self.report.kept += len(entries)
        for batch in sorted(p for p in root.iterdir()):
            if batch.is_symlink() or not batch.is_dir():
                continue  # top-level files (the marker, the table, the lock) are not batches: left alone
            for leftover in sorted(batch.iterdir()):
                if leftover.name in named.get(batch.name, ()) or (leftover.is_dir() and not leftover.is_symlink()):
                    continue
                if self.old(leftover):
                    self.remove(leftover)  # a partial copy, or the copy of an uploaded file
                else:
                    self.report.kept += 1
            self._maybe_rmdir(batch, self.old(batch))
        if entries:
            logger.info("retention: %d spooled item(s) wait for upload and are kept (never removed before the "
                        "store holds them)", len(entries))


def clean_retention(
    folders: Iterable[Union[str, Path]],
    max_age_hours: float = 72.0,
    *,
    now: Optional[datetime] = None,
    dry_run: bool = False,
) -> RetentionReport:
    """Remove what is older than ``max_age_hours`` inside each folder (see the module docstring)."""
    if not (max_age_hours >= MIN_RETENTION_HOURS):
        raise ValueError(f"max_age_hours must be at least {MIN_RETENTION_HOURS:g} (got {max_age_hours!r})")
    now = now or datetime.now(timezone.utc)
    cutoff = (now - timedelta(hours=float(max_age_hours))).timestamp()
    report = RetentionReport(dry_run=dry_run)
    for folder in folders:
        root = Path(folder).expanduser()
        if not root.is_dir():
            continue
        root = root.resolve()
        why = _refuse(root)
        if why:
            report.errors.append(f"refused to clean {root}: it is {why}")
            continue
        cleaner = _Cleaner(root, cutoff, report)
        if (root / SPOOL_MARKER).is_file():
            with spool_lock(root) as locked:
                if not locked:
                    report.errors.append(f"{root}: a spool retry is running; cleaned next time")
                    continue
                cleaner.clean_spool()
        elif (root / OWNED_MARKER).is_file() and not (root / OWNED_MARKER).is_symlink():
            cleaner.clean_tree()
        else:
            report.errors.append(f"refused to clean {root}: AdReel did not create it (no {OWNED_MARKER} marker)")
    return report
