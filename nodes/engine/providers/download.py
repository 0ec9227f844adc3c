"""Download a provider's result video: https only, size-capped, content-checked.

- Every URL, including each redirect target, must be https. Redirects are
  followed by hand (Veo answers 302 to storage) so that the provider's
  credential header is sent only to the provider's own origin, never to the
  storage host it redirects to.
- The size is capped (``max_bytes``) from ``Content-Length`` and while streaming.
- The file must start like an MP4 / MOV (``ftyp``) or WebM (EBML + ``webm``),
  and ffprobe (``$ADREEL_FFPROBE`` or ``ffprobe`` on PATH) must find a video
  stream in it. Without ffprobe only the magic bytes are checked, and the
  result says so.
- The file appears under its final name only when complete and checked.
- Bounded in time and space: the whole download — every
  redirect and retry — must finish within ``ADREEL_MAX_DOWNLOAD_SECONDS`` (and
  the job's own timeout), and stops within ~50 ms on Interrupt, however slowly
  the server drips its bytes; one prompt's clips together may not exceed
  ``ADREEL_MAX_RUN_DOWNLOAD_BYTES`` (a ``ByteBudget`` shared by the run's
  downloads). A stopped download leaves no ``.part`` behind.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional
from urllib.parse import urljoin, urlsplit

import aiohttp

from .. import limits
from .cancellation import JobStop, Overtime, RunSignal
from .errors import ProviderDownloadError
from .http import RETRY_IDEMPOTENT, RetryPolicy, parse_retry_after
from .log import logger
from ..cloud.redaction import redact_url

DEFAULT_MAX_BYTES = 512 * 1024 * 1024
MAX_REDIRECTS = 5
_CHUNK = 256 * 1024
PART_SUFFIX = ".part"
_active_parts: set[str] = set()  # .part files this process is writing now (never swept)


class ByteBudget:
    """Bytes the downloads of one run may still write (shared by its concurrent downloads)."""

    def __init__(self, total: Optional[int] = None):
        self.total = int(limits.MAX_RUN_DOWNLOAD_BYTES.read() if total is None else total)
        self.used = 0

    def take(self, n: int, label: str) -> None:
        self.used += n
        if self.used > self.total:
            raise ProviderDownloadError(
                f"{label}: this prompt's provider clips passed {self.total / 1e6:.0f} MB together, the server's cap "
                f"({limits.MAX_RUN_DOWNLOAD_BYTES.env}); download stopped and the partial file removed"
            )

    def give_back(self, n: int) -> None:
        self.used = max(0, self.used - n)


def sweep_parts(folder: Path) -> list[str]:
    """Remove ``*.part`` files a stopped or killed run left in ``folder`` (not those being written now).

    Only plain files named like AdReel's own downloads (``scene###_….part``) are touched.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith("scene") and name.endswith(PART_SUFFIX)) or entry.path in _active_parts:
            continue
        try:
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(name)
        except OSError:
            continue
    if removed:
        logger.info("removed %d partial download(s) left by an earlier run: %s", len(removed), ", ".join(removed))
    return removed


def sniff_video(head: bytes) -> Optional[str]:
    """'mp4', 'mov' or 'webm' from the first bytes, else None."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "mov" if head[8:12] == b"qt  " else "mp4"
    if len(head) >= 8 and head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "mov"
    if head.startswith(b"\x1a\x45\xdf\xa3") and b"webm" in head[:64]:
        return "webm"
    return None


@dataclass
class ProbeInfo:
    duration: Optional[float]
    width: Optional[int]
    height: Optional[int]
    codec: Optional[str]


@dataclass
class DownloadedFile:
    path: Path
    bytes: int
    sha256: str
    container: str
    host: str
    probe: Optional[ProbeInfo]
    seconds: float
    notes: list = field(default_factory=list)


def ffprobe_binary() -> Optional[str]:
    return os.environ.get("ADREEL_FFPROBE") or shutil.which("ffprobe")


async def probe_video(path: Path, label: str) -> Optional[ProbeInfo]:
    """ffprobe facts, after demuxing every packet: a truncated or corrupt file is an error."""
    exe = ffprobe_binary()
    if not exe:
        return None
    proc = await asyncio.create_subprocess_exec(
        exe, "-v", "error", "-count_packets",
        "-show_entries", "stream=codec_type,codec_name,width,height,nb_read_packets:format=duration",
        "-of", "json", str(path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await proc.communicate()
    except BaseException:  # stopped (Interrupt, timeout) while probing: leave no ffprobe behind
        if proc.returncode is None:
            proc.kill()
            await asyncio.shield(proc.wait())
        raise
    problem = err.decode("utf-8", "replace").strip()
    if proc.returncode != 0 or problem:
        first = problem.splitlines()[0] if problem else f"exit code {proc.returncode}"
        raise ProviderDownloadError(f"{label}: the downloaded result is not a playable video (ffprobe: {first[:200]}); nothing was saved")
    data = json.loads(out or b"{}")
    video = [s for s in data.get("streams", []) if s.get("codec_type") == "video"]
    if not video:
        raise ProviderDownloadError(f"{label}: the downloaded result has no video stream; nothing was saved")
    v = video[0]
    packets = v.get("nb_read_packets")
    if v.get("codec_name") in (None, "unknown") or not v.get("width") or not v.get("height") or packets in (None, "N/A", "0"):
        raise ProviderDownloadError(f"{label}: the downloaded result is not a playable video (no decodable frames); nothing was saved")
    dur = data.get("format", {}).get("duration")
    return ProbeInfo(
        duration=float(dur) if dur not in (None, "N/A") else None,
        width=int(v["width"]), height=int(v["height"]), codec=v.get("codec_name"),
    )


def _is_same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, (pa.hostname or "").lower(), pa.port or 443) == (pb.scheme, (pb.hostname or "").lower(), pb.port or 443)


@dataclass
class Download:
    """How a result is fetched: by whom, with which key for which origin, and within which limits.

    Call it with the URL, the destination stem and the time allowed; see the module doc.
    """

    session: aiohttp.ClientSession
    label: str  # names the job in every message
    auth: Optional[Mapping[str, str]] = None  # the provider's key headers, sent only to ``auth_origin``
    auth_origin: Optional[str] = None
    max_bytes: int = DEFAULT_MAX_BYTES
    policy: Optional[RetryPolicy] = None
    stop: Optional[JobStop] = None  # ends the download at once with ``cancellation.Stopped``
    read_timeout: float = 120.0
    budget: Optional[ByteBudget] = None  # the run's shared byte cap

    async def __call__(self, url: str, dest_stem: Path, total_seconds: Optional[float] = None) -> DownloadedFile:
        """Fetch ``url`` to ``dest_stem`` + the container's extension, within ``total_seconds`` (default
        ``ADREEL_MAX_DOWNLOAD_SECONDS``) for the whole download."""
        stop = self.stop or JobStop(RunSignal(), None)
        total = limits.MAX_DOWNLOAD_SECONDS.read() if total_seconds is None else float(total_seconds)
        try:
            return await stop.run(self._with_retries(url, dest_stem, stop, total), total)
        except Overtime:
            raise ProviderDownloadError(
                f"{self.label}: downloading the result did not finish within {total:g} s (the server's "
                f"{limits.MAX_DOWNLOAD_SECONDS.env}); stopped, and the partial file was removed"
            ) from None

    async def _with_retries(self, url: str, dest_stem: Path, stop: JobStop, total: float) -> DownloadedFile:
        label, policy = self.label, self.policy or RetryPolicy()
        start = time.monotonic()
        attempt = 0
        while True:
            try:
                left = max(1.0, total - (time.monotonic() - start))
                return await self._once(url, dest_stem, start, left)
            except _Retryable as exc:
                if attempt >= policy.max_retries:
                    raise ProviderDownloadError(f"{label}: downloading the result failed ({exc.reason}) after {attempt + 1} attempts; queue again to retry") from None
                delay = exc.retry_after if exc.retry_after is not None else min(policy.max_delay, policy.base_delay * 2 ** attempt)
                if delay > policy.max_retry_after:
                    raise ProviderDownloadError(f"{label}: downloading the result failed ({exc.reason}); the server asks to wait {delay:.0f} s") from None
                logger.info("%s download: %s; retrying in %.2fs", label, exc.reason, delay)
                await stop.sleep(delay)
                attempt += 1

    async def _once(self, url: str, dest_stem: Path, start: float, total_left: float) -> DownloadedFile:
        label, max_bytes = self.label, self._max_bytes()
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            parts = urlsplit(current)
            if parts.scheme != "https" or not parts.hostname:
                raise ProviderDownloadError(
                    f"{label}: refusing to download the result from a non-https URL ({redact_url(current)}); "
                    "only https downloads are allowed"
                )
            headers = {}
            if self.auth and self.auth_origin and _is_same_origin(current, self.auth_origin):
                headers.update(self.auth)
            timeout = aiohttp.ClientTimeout(total=total_left, sock_connect=30,
                                            sock_read=min(self.read_timeout, total_left))
            try:
                async with self.session.get(current, headers=headers, allow_redirects=False, timeout=timeout) as resp:
                    if resp.status in (301, 302, 303, 307, 308):
                        loc = resp.headers.get("Location")
                        if not loc:
                            raise ProviderDownloadError(f"{label}: the result URL redirected without a Location")
                        current = urljoin(current, loc)
                        continue
                    if resp.status in RETRY_IDEMPOTENT:
                        raise _Retryable(f"HTTP {resp.status}", parse_retry_after(resp.headers))
                    if resp.status != 200:
                        hint = " (presigned result URLs expire; queue the scene again)" if resp.status in (401, 403, 404, 410) else ""
                        raise ProviderDownloadError(
                            f"{label}: downloading the result from {redact_url(current)} failed with HTTP {resp.status}{hint}"
                        )
                    length = resp.headers.get("Content-Length")
                    if length and length.isdigit() and int(length) > max_bytes:
                        raise ProviderDownloadError(
                            f"{label}: the result is {int(length) / 1e6:.1f} MB, above the {max_bytes / 1e6:.0f} MB download cap"
                        )
                    return await _stream_to_file(resp, current, dest_stem, label, max_bytes, start, self.budget)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                raise _Retryable(f"connection failed ({type(exc).__name__})") from None
        raise ProviderDownloadError(f"{label}: the result URL redirected more than {MAX_REDIRECTS} times")

    def _max_bytes(self) -> int:
        return min(int(self.max_bytes), limits.MAX_DOWNLOAD_BYTES.read())


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: Optional[float] = None):
        self.reason = reason
        self.retry_after = retry_after


async def _stream_to_file(resp, url, dest_stem: Path, label, max_bytes, start, budget=None) -> DownloadedFile:
    dest_stem.parent.mkdir(parents=True, exist_ok=True)
    part = dest_stem.with_name(dest_stem.name + PART_SUFFIX)
    digest = hashlib.sha256()
    size = 0
    head = b""
    _active_parts.add(str(part))
    try:
        with part.open("wb") as fh:
            async for chunk in resp.content.iter_chunked(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise ProviderDownloadError(f"{label}: the result exceeds the {max_bytes / 1e6:.0f} MB download cap; download stopped")
                if budget is not None:
                    budget.take(len(chunk), label)
                if len(head) < 64:
                    head = (head + chunk)[:64]
                digest.update(chunk)
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())  # the journal records this clip as downloaded: its bytes are on disk first
        container = sniff_video(head)
        if container is None:
            ctype = resp.headers.get("Content-Type", "?")
            raise ProviderDownloadError(
                f"{label}: the result is not an MP4, MOV or WebM video (Content-Type {ctype}, {size} bytes); nothing was saved"
            )
        final = dest_stem.with_name(dest_stem.name + "." + container)
        probe = await probe_video(part, label)
        os.replace(part, final)
    except BaseException:
        part.unlink(missing_ok=True)
        if budget is not None:
            budget.give_back(size)  # nothing of it stays on disk
        raise
    finally:
        _active_parts.discard(str(part))
    notes = [] if probe is not None else ["ffprobe not found: the result was checked by its magic bytes only"]
    return DownloadedFile(
        path=final, bytes=size, sha256=digest.hexdigest(), container=container,
        host=urlsplit(url).hostname or "", probe=probe, seconds=time.monotonic() - start, notes=notes,
    )
