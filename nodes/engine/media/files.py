"""Files, the one way for the whole pack: replace a file atomically, and tell whether a path lies inside a folder.

* ``write_atomic(path, content)`` — ``content`` (text, bytes, or a function that writes to the open binary
  file) goes to a temporary file beside ``path``, which is then renamed over it: a reader never sees half
  a file, and a crash leaves the old one. ``durable`` (the default) also fsyncs the file and the folder, so
  the new content survives a power cut; a cache that can be rebuilt passes ``durable=False``.
* ``is_inside(path, *folders)`` — the path, with every link resolved, is one of the folders (resolved too)
  or below it: a link or a ``..`` cannot lead out.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Union

PathLike = Union[str, os.PathLike]


def fsync_dir(folder: PathLike) -> None:
    """Make a rename or a new file in ``folder`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(str(folder), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: PathLike, content: Union[str, bytes, Callable[[BinaryIO], None]], *,
                 keep_mode: bool = False, durable: bool = True) -> None:
    """Replace ``path`` with ``content`` (UTF-8 text, bytes, or ``write(file)`` called with the open binary
    file) in one rename. ``keep_mode``: the new file keeps the old one's permissions."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(content):
                content(fh)
            else:
                fh.write(content.encode("utf-8") if isinstance(content, str) else content)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        if keep_mode:
            try:
                os.chmod(tmp, path.stat().st_mode & 0o777)
            except OSError:
                pass
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def is_inside(path: PathLike, *folders: PathLike) -> bool:
    """True when ``path``, links resolved, is one of ``folders`` (links resolved too) or lies below one."""
    real = os.path.realpath(path)
    for folder in folders:
        if not folder:
            continue
        root = os.path.realpath(folder)
        try:
            if os.path.commonpath([real, root]) == root:
                return True
        except ValueError:  # another drive (Windows), or one path relative and one absolute
            continue
    return False
