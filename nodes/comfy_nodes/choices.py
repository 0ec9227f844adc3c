"""File choices of the pack's own combo widgets: bundled assets, then ComfyUI's input folder.

One rule for BrandImage and MusicBed: a choice is a bundled file by its exact name,
or ``input/<file>`` for a regular file directly in ComfyUI's input folder; the path
behind it must stay inside its folder (no ``..``, no link out).
"""
from __future__ import annotations

import os
from typing import Iterable

from ..engine.media.files import is_inside
from ..engine.models import AdReelInputError
from .api import input_directory

INPUT_PREFIX = "input/"


def input_choices(extensions: tuple[str, ...]) -> list[str]:
    """``input/<file>`` for each file in ComfyUI's input folder with one of ``extensions`` (sorted)."""
    try:
        folder = input_directory()
        return sorted(f"{INPUT_PREFIX}{f}" for f in os.listdir(folder)
                      if f.lower().endswith(extensions) and os.path.isfile(os.path.join(folder, f)))
    except OSError:
        return []


def resolve_choice(name: str, field: str, bundled_dir: str, bundled: Iterable[str], what: str) -> str:
    """The file behind ``name``: one of ``bundled`` (relative to ``bundled_dir``) or ``input/<file>``;
    else an AdReelInputError naming ``field`` and where AdReel looks."""
    bundled = list(bundled)
    if name.startswith(INPUT_PREFIX):
        base, rel = input_directory(), name[len(INPUT_PREFIX):]
    elif name in bundled:
        base, rel = bundled_dir, name
    else:
        base, rel = None, None
    path = os.path.realpath(os.path.join(base, rel)) if base else ""
    if not base or not is_inside(path, base) or not os.path.isfile(path):
        raise AdReelInputError(field, f"is not {what} AdReel can see (bundled: "
                                      f"{', '.join(bundled) or 'none'}; or input/<file> from ComfyUI's input folder)")
    return path


def file_fingerprint(path: str) -> str:
    """What ComfyUI compares to decide a chosen file changed (a file replaced under the same name)."""
    st = os.stat(path)
    return f"{path}:{st.st_mtime_ns}:{st.st_size}"
