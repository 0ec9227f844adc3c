"""The server's own files as an upload sees them: which file a ``path`` may name, and how a file is shown.

Everything under ComfyUI's input/output/temp folders may have been put there by anyone who can reach the
server, and what a node shows (its UI, which ``/history`` hands to every client) must carry no absolute
server path. The node layer passes its folders by name, e.g.
``{"output": "/srv/ComfyUI/output", "temp": …, "input": …}``; nothing here knows ComfyUI.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Union

from ..media.files import is_inside
from ..models import AdReelInputError
from .keys import kind_for

PathLike = Union[str, os.PathLike]


def given_video(raw: str, folders: Mapping[str, PathLike], field: str = "path") -> Path:
    """A ``path`` input: an existing video file inside one of ``folders``; a relative path is taken from the
    first folder (the output folder). Refused with an error naming ``field`` otherwise."""
    roots = list(folders.values())
    p = Path(os.path.expanduser(raw.strip()))
    if not p.is_absolute():
        p = Path(roots[0]) / p
    p = p.resolve()
    if not is_inside(p, *roots):
        names = list(folders)
        where = ", ".join(names[:-1]) + (" or " if len(names) > 1 else "") + names[-1]
        raise AdReelInputError(field, f"must be a file inside the server's {where} folder "
                                      "(connect FFmpegAssemble's path output)")
    if not p.is_file():
        raise AdReelInputError(field, f"{p.name} does not exist (was it deleted or moved?)")
    if kind_for(p) != "video":
        raise AdReelInputError(field, f"{p.name} is not a video file (.mp4, .webm, .mov, …)")
    return p


def shown_path(path, folders: Mapping[str, PathLike]) -> str:
    """A file as a network user may see it: relative to its folder's name (``output/AdReel/ad.mp4``), else its
    name only. Never an absolute server path."""
    if not path:
        return ""
    p = Path(path)
    for name, root in folders.items():
        try:
            return f"{name}/{p.resolve().relative_to(Path(root).resolve()).as_posix()}"
        except ValueError:
            continue
    return p.name
