"""Retention: remove temporary and failed-run files older than a given age.

``clean_retention(folders, max_age_hours)`` looks only inside the folders it is
given and never follows a symbolic link out of them (a link is removed as a
link, its target untouched). The folders themselves are kept.

* A **spool folder** (it holds the ``.adreel-spool`` marker) is cleaned entry by
  entry: a spooled file and its record go together once the record is older
  than the age — that file was never uploaded, so choose the age with care
  (the log says what was dropped). Leftover partial copies go too.
* Any **other folder** (temp renders, failed runs) loses every file older than
  the age, and every subfolder that is empty afterwards and was old itself.

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

from .errors import logger
from .spool import RECORD_SUFFIX, SPOOL_MARKER, SpoolEntry

_KEEP_IN_SPOOL = {SPOOL_MARKER, ".lock"}


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


def _inside(root: Path, path: Path) -> bool:
    """``path``'s folder, with links resolved, is ``root`` or below it (the last component itself is not followed)."""
    parent = Path(os.path.realpath(path.parent))
    return parent == root or parent.is_relative_to(root)


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
        if not _inside(self.root, path) or path == self.root:
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
        for batch in sorted(p for p in root.iterdir()):
            if batch.name in _KEEP_IN_SPOOL:
                continue
            if batch.is_symlink() or not batch.is_dir():
                if self.old(batch):
                    self.remove(batch)
                else:
                    self.report.kept += 1
                continue
            accounted: set[str] = set()
            for record in sorted(batch.glob("*" + RECORD_SUFFIX)):
                try:
                    entry = SpoolEntry.from_file(record)
                    created = entry.created_at().timestamp()
                except (OSError, ValueError, TypeError):
                    entry, created = None, record.lstat().st_mtime
                copy = Path(entry.local_path) if entry is not None and entry.local_path else None
                accounted.add(record.name)
                if copy is not None:
                    accounted.add(copy.name)
                if created < self.cutoff:
                    logger.warning("retention: %s spooled %s (never uploaded, spooled at %s)",
                                   "would drop" if self.report.dry_run else "dropping",
                                   entry.key if entry else record.name, entry.created if entry else "?")
                    self.remove(record)
                    if copy is not None and copy.parent == batch and (copy.exists() or copy.is_symlink()):
                        self.remove(copy)
                else:
                    self.report.kept += 1
            for leftover in batch.iterdir():
                if leftover.name in accounted:
                    continue
                if self.old(leftover) and not leftover.is_dir():
                    self.remove(leftover)  # a partial copy or a copy whose record is gone
            self._maybe_rmdir(batch, True)


def clean_retention(
    folders: Iterable[Union[str, Path]],
    max_age_hours: float = 72.0,
    *,
    now: Optional[datetime] = None,
    dry_run: bool = False,
) -> RetentionReport:
    """Remove what is older than ``max_age_hours`` inside each folder (see the module docstring)."""
    if not (max_age_hours >= 0):
        raise ValueError("max_age_hours must be 0 or more")
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
            cleaner.clean_spool()
        else:
            cleaner.clean_tree()
    return report
