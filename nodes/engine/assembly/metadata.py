"""The workflow that made a video, carried inside it — and never a secret with it.

ComfyUI's own SaveVideo (and VideoHelperSuite) write the prompt and the
editor's workflow into the container as metadata tags ``prompt`` and
``workflow`` (JSON text). The editor reads them back when a user drops the
file on the canvas: for MP4/MOV it looks for ``moov/udta/meta`` with
``keys`` + ``ilst`` (what ffmpeg writes with ``-movflags use_metadata_tags``)
in the first 64 MiB, so the ``moov`` must come first (``+faststart``); for
WebM it reads the Matroska tags (ffmpeg writes them as ``PROMPT`` /
``WORKFLOW``).

``workflow_tags`` turns ComfyUI's hidden ``prompt`` (as queued: without the
executor's ``is_changed`` fingerprints, which name files on the server) and
``extra_pnginfo`` into those tags; ``metadata_tags`` does the same for any ``{name: value}`` a caller
hands to ``save_to``. Every string in them (values and keys, at any depth)
passes through the one redaction layer (``cloud.redaction``): registered
secrets and credential shapes (``sk-…``, ``Bearer …``, ``api_key=…``) are
masked. The values of the server's secret-named environment variables (``*_KEY``,
``*_TOKEN``, ``*_SECRET``, ``*PASSWORD*`` …) are registered there first: a
widget holding one of them — pasted by a user, or put there by whoever wrote a
shared workflow — is masked as well. Non-finite numbers become ``null`` (the
editor's JSON parser refuses NaN). ``write_ffmetadata`` writes the tags as an
ffmetadata file: a workflow is easily larger than one command-line argument
may be (128 KiB on Linux).
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
from typing import Any, Mapping, Optional

from ..cloud.redaction import redact
from ..cloud.secrets import register_environment_secrets

logger = logging.getLogger("adreel")

MAX_TAG_BYTES = 16 * 1024 * 1024   # one tag's JSON; the editor reads the first 64 MiB of a file
MAX_TAGS = 16                      # extra_pnginfo entries carried (ComfyUI's editor sends one: workflow)
MAX_DEPTH = 128                    # nesting of a value (a workflow with subgraphs is ~20 deep)
TAG_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


class _TooDeep(ValueError):
    pass


def scrub(value: Any, depth: int = 0) -> Any:
    """``value`` (JSON-like) with every string redacted and every non-finite number ``None``."""
    if depth > MAX_DEPTH:
        raise _TooDeep(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {redact(str(k)): scrub(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v, depth + 1) for v in value]
    return redact(str(value))  # anything else is carried as its text, redacted


def _tag_text(name: str, value: Any) -> Optional[str]:
    """One tag's text: JSON (a string that is JSON is parsed first, so its inside is redacted too)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return redact(value)
    try:
        text = json.dumps(scrub(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (_TooDeep, RecursionError) as exc:
        logger.warning("AdReel: the %s metadata was not embedded: %s", name, exc)
        return None
    if len(text.encode("utf-8")) > MAX_TAG_BYTES:
        logger.warning("AdReel: the %s metadata was not embedded: %.1f MiB is more than %d MiB", name,
                       len(text.encode("utf-8")) / 2**20, MAX_TAG_BYTES // 2**20)
        return None
    return text


def metadata_tags(values: Optional[Mapping[str, Any]]) -> dict[str, str]:
    """``{name: value}`` → ``{name: redacted JSON text}``: names that are plain identifiers only, at most
    ``MAX_TAGS`` of them (``prompt`` and ``workflow`` first; ``prompt`` as queued, see ``as_sent``)."""
    if not isinstance(values, Mapping) or not values:
        return {}
    register_environment_secrets()
    names = [n for n in ("prompt", "workflow") if n in values] + \
        [n for n in values if n not in ("prompt", "workflow")]
    tags: dict[str, str] = {}
    for name in names:
        if not isinstance(name, str) or not TAG_NAME.match(name):
            logger.warning("AdReel: a metadata entry with the name %r was not embedded (names are letters, "
                           "digits, '_', '.', '-')", redact(str(name))[:80])
            continue
        if len(tags) >= MAX_TAGS:
            logger.warning("AdReel: only %d metadata entries are embedded; the rest were dropped", MAX_TAGS)
            break
        text = _tag_text(name, as_sent(values[name]) if name == "prompt" else values[name])
        if text is not None:
            tags[name] = text
    return tags


def workflow_tags(prompt: Any = None, extra_pnginfo: Any = None) -> dict[str, str]:
    """ComfyUI's hidden ``prompt`` and ``extra_pnginfo`` → the tags SaveVideo writes: each entry of
    ``extra_pnginfo`` (the editor's ``workflow``) and ``prompt`` (which wins over an entry of that name)."""
    values: dict[str, Any] = {}
    if isinstance(extra_pnginfo, Mapping):
        values.update(extra_pnginfo)
    if prompt is not None:
        values["prompt"] = prompt
    return metadata_tags(values)


def as_sent(prompt: Any) -> Any:
    """The prompt as it was queued: without the ``is_changed`` ComfyUI's executor adds to each node
    (node fingerprints, e.g. a file's path on the server and its modification time)."""
    if not isinstance(prompt, Mapping):
        return prompt
    return {k: ({n: v for n, v in node.items() if n != "is_changed"} if isinstance(node, Mapping) else node)
            for k, node in prompt.items()}


def _escape(text: str) -> str:
    """ffmetadata escaping: ``=``, ``;``, ``#``, ``\\`` and newlines take a backslash."""
    return re.sub(r"([=;#\\\n])", r"\\\1", text)


def write_ffmetadata(tags: Mapping[str, str], path: str) -> str:
    """Write ``tags`` as an ffmetadata file (read with ``-f ffmetadata -i path``, ``-map_metadata``)."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(";FFMETADATA1\n")
        for name, text in tags.items():
            if not TAG_NAME.match(name):
                raise ValueError(f"metadata tag name {name!r} is not an identifier")
            f.write(f"{name}={_escape(text)}\n")
    return path
