"""The one ComfyUI client: a server driven over its HTTP API and followed on its websocket.

The fleet's workers and the tests' harness (``tests/harness.py``) both talk to ComfyUI through
``ComfyClient``: ``get`` / ``post`` (JSON), ``call`` (any request, the status and the answer, errors
included), ``upload``, ``queue``, ``history_entry``, ``interrupt`` / ``interrupt_running``.

``ComfyClient.check`` is the worker's start-up check (reachable, AdReel
loaded). ``run_prompt`` queues one prompt under the id the runner derives (a
canonical lowercase UUID: ComfyUI 0.25 and later refuse any other spelling),
with this worker's ``client_id``, follows ``executing`` / ``progress`` /
``executed`` / ``execution_*`` events for it, and returns its end as a
``/history`` entry — or raises one of the errors below, each saying whether a
retry can help.

Where the server has the jobs API (``GET /api/jobs/{id}``, ``POST
/api/jobs/{id}/cancel``: ComfyUI 0.33 and later) the worker asks it for the
prompt's end and cancels through it; elsewhere (0.3.75) it reads
``/history/{id}`` and uses ``/queue`` + ``/interrupt``. The server is asked
which it has (``jobs_api``), never its version. Progress is monotonic and
needs no particular event: core 0.33 sends a node's ``progress`` at most every
100 ms (the first and last always), and nodes done count the rest.

Plain HTTP goes through the standard library (``urllib``); the websocket
through aiohttp.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Callable, Optional

import urllib.error
import urllib.request
from urllib.parse import quote

import aiohttp

from .config import FleetError

ADREEL_NODES = ("BrandBrief", "ScriptLLM", "FFmpegAssemble", "AssetUpload")

# exception types (last dotted part) that a retry can cure; any other error of a node is the input's fault
TRANSIENT_TYPES = {
    "ConnectionError", "ConnectionRefusedError", "ConnectionResetError", "ConnectionAbortedError", "BrokenPipeError",
    "TimeoutError", "ReadTimeout", "ConnectTimeout", "ReadTimeoutError", "ServerDisconnectedError",
    "ClientConnectorError", "ClientOSError", "StorageUnavailable", "OutOfMemoryError", "RemoteProtocolError",
}


class JobError(Exception):
    transient = False

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class PromptRejected(JobError):
    """ComfyUI refused the prompt at /prompt (HTTP 400): bad input, never retried."""


class PromptFailed(JobError):
    def __init__(self, message: str, transient: bool):
        super().__init__(message)
        self.transient = transient


class ComfyGone(JobError):
    """The ComfyUI server went away (killed, restarting, unreachable): retried elsewhere."""
    transient = True


class Transient(JobError):
    transient = True


class Stopped(Exception):
    """The job was cancelled or deleted (``reason``), or this worker is shutting down."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class HttpError(OSError):
    """The server could not be reached, or answered with an error status or a body that is not JSON.
    An ``OSError``, as the standard library's own URL errors are."""

    def __init__(self, message: str, status: int = 0, answer=None):
        super().__init__(message)
        self.status = status
        self.answer = answer  # an error status's parsed answer (None when there was none)


MAX_ANSWER_BYTES = 64 << 20


def http_call(method: str, url: str, body=None, *, data: Optional[bytes] = None,
              content_type: str = "application/json", timeout: float = 10) -> tuple[int, object]:
    """One request with the standard library: ``(status, answer)``, error statuses included. ``body`` is sent
    as JSON, or ``data`` as it is (with ``content_type``). The answer is the parsed JSON (None when empty; an
    error status's text that is not JSON as ``{"error": text}``); ``HttpError`` when the server cannot be
    reached or a successful answer is not JSON."""
    if data is None and body is not None:
        data = json.dumps(body).encode("utf-8")
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": content_type} if data is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read(MAX_ANSWER_BYTES)
    except urllib.error.HTTPError as exc:
        try:
            status, raw = exc.code, exc.read(MAX_ANSWER_BYTES)
        except OSError:
            status, raw = exc.code, b""
        finally:
            exc.close()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise HttpError(type(getattr(exc, "reason", exc)).__name__) from None
    try:
        return status, (json.loads(raw) if raw.strip() else None)
    except ValueError:
        if status < 400:
            raise HttpError("not JSON", status) from None
        return status, {"error": raw.decode("utf-8", "replace")}


def http_json(method: str, url: str, body=None, timeout: float = 10):
    """One JSON request: the parsed answer; ``HttpError`` for an error status too."""
    status, answer = http_call(method, url, body, timeout=timeout)
    if status >= 400:
        raise HttpError(f"HTTP {status}", status, answer)
    return answer


class ComfyClient:
    def __init__(self, url: str):
        url = (url or "").strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise FleetError(f"--comfy: {url!r} is not an http(s) URL (e.g. http://127.0.0.1:8188)")
        self.url = url
        self._jobs_api: Optional[bool] = None

    def get(self, path: str, timeout: float = 10):
        return http_json("GET", self.url + path, timeout=timeout)

    def post(self, path: str, body, timeout: float = 10):
        return http_json("POST", self.url + path, body, timeout=timeout)

    def call(self, method: str, path: str, body=None, *, data: Optional[bytes] = None,
             content_type: str = "application/json", timeout: float = 60) -> tuple[int, object]:
        """Any request: ``(status, answer)``, error statuses included (see ``http_call``)."""
        return http_call(method, self.url + path, body, data=data, content_type=content_type, timeout=timeout)

    def upload(self, name: str, data: bytes, kind: str = "input", subfolder: str = "",
               timeout: float = 60) -> tuple[int, object]:
        """ComfyUI's own upload route (``/upload/image``, multipart, overwrite on): ``(status, answer)``."""
        boundary = uuid.uuid4().hex
        fields = [("type", kind), ("subfolder", subfolder), ("overwrite", "true")]
        body = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
                        for k, v in fields)
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
                 "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        return self.call("POST", "/upload/image", data=body, content_type=f"multipart/form-data; boundary={boundary}",
                         timeout=timeout)

    def queue(self, prompt: dict, *, client_id: str, prompt_id: Optional[str] = None,
              extra_data: Optional[dict] = None, timeout: float = 120) -> tuple[int, object]:
        """``POST /prompt``: ``(status, answer)`` — 200 with its ``prompt_id``, or 400 with ComfyUI's reasons
        (``describe_rejection``)."""
        payload: dict = {"prompt": prompt, "client_id": client_id}
        if prompt_id:
            payload["prompt_id"] = prompt_id
        if extra_data:
            payload["extra_data"] = extra_data
        return self.call("POST", "/prompt", payload, timeout=timeout)

    def healthy(self, timeout: float = 10) -> bool:
        try:
            self.get("/system_stats", timeout=timeout)
            return True
        except HttpError:
            self._jobs_api = None  # asked again once it is back: it may come back as another core
            return False

    def jobs_api(self, refresh: bool = False) -> bool:
        """Whether this server has ComfyUI's jobs API (asked once, and again after it was unreachable)."""
        if self._jobs_api is None or refresh:
            try:
                listing = self.get("/api/jobs?limit=1")
                self._jobs_api = isinstance(listing, dict) and isinstance(listing.get("jobs"), list)
            except HttpError as exc:
                if not exc.status:
                    return False  # unreachable: unknown, asked again next time
                self._jobs_api = False
        return bool(self._jobs_api)

    def check(self, wait_seconds: float = 0) -> dict:
        """Reachable, and AdReel's nodes are loaded; else a FleetError saying which."""
        deadline = time.monotonic() + max(0.0, wait_seconds)
        while True:
            try:
                stats = self.get("/system_stats")
                break
            except HttpError as exc:
                if time.monotonic() >= deadline:
                    raise FleetError(f"ComfyUI at {self.url} is not reachable ({exc}); "
                                     "start it first (or give --wait-comfy SECONDS)") from None
                time.sleep(1)
        missing = []
        for node in ADREEL_NODES:
            try:
                info = self.get(f"/object_info/{node}", timeout=30)
                if not isinstance(info, dict) or node not in info:
                    missing.append(node)
            except HttpError:
                missing.append(node)
        if missing:
            raise FleetError(f"ComfyUI at {self.url} answers but AdReel is not loaded there (no {', '.join(missing)} "
                             "node): install the pack in its custom_nodes and restart it")
        self.jobs_api(refresh=True)
        return stats

    def interrupt(self, prompt_id: str) -> None:
        """Stop ``prompt_id`` on this server: drop it from the queue, or interrupt it if it is the one running;
        any other prompt is left alone. The jobs API's cancel where the server has it, else ``/queue`` delete
        and ``/interrupt`` with the ``prompt_id``."""
        if not prompt_id:
            return
        if self.jobs_api():
            calls = ((f"/api/jobs/{quote(prompt_id, safe='')}/cancel", {}),)
        else:
            calls = (("/queue", {"delete": [prompt_id]}), ("/interrupt", {"prompt_id": prompt_id}))
        for path, body in calls:
            try:
                self.post(path, body)
            except HttpError:
                pass

    def interrupt_running(self) -> None:
        """Interrupt whatever prompt runs now (``/interrupt`` without an id): for a test's own server only —
        the fleet always names its prompt (``interrupt``)."""
        self.post("/interrupt", {})

    def history_entry(self, prompt_id: str, timeout: float = 60):
        """The prompt's ``/history`` entry once it has ended (``status.completed`` set), else None."""
        hist = self.get(f"/history/{quote(prompt_id, safe='')}", timeout=timeout)
        entry = (hist or {}).get(prompt_id) if isinstance(hist, dict) else None
        if entry and (entry.get("status") or {}).get("completed") is not None:
            return entry
        return None

    def finished_entry(self, prompt_id: str):
        """The prompt's end as a ``/history`` entry (``outputs``, ``status``), or None while it is queued or
        running (or unknown)."""
        if self.jobs_api():
            try:
                job = self.get(f"/api/jobs/{quote(prompt_id, safe='')}", timeout=60)
            except HttpError as exc:
                if exc.status == 404:
                    return None
                raise
            if not isinstance(job, dict) or job.get("status") in ("pending", "in_progress", None):
                return None
            status = job.get("execution_status") or {}
            if not status:  # a finished job always carries it; be safe with what the server sent
                status = {"status_str": "success" if job.get("status") == "completed" else "error",
                          "completed": job.get("status") == "completed", "messages": []}
            return {"outputs": job.get("outputs") or {}, "status": status}
        return self.history_entry(prompt_id)


def describe_rejection(body) -> str:
    if not isinstance(body, dict):
        return str(body)[:2000]
    parts = []
    for node_id, info in (body.get("node_errors") or {}).items():
        for e in info.get("errors", []) if isinstance(info, dict) else []:
            details = e.get("details") or ""
            parts.append(f"node {node_id} ({info.get('class_type')}): {e.get('message')}"
                         + (f": {details}" if details else ""))
    err = body.get("error")
    if not parts and isinstance(err, dict):
        parts.append(f"{err.get('message', '')} {err.get('details', '')}".strip())
    return "; ".join(p for p in parts if p)[:4000] or json.dumps(body)[:2000]


def describe_execution_error(data: dict) -> tuple[str, bool]:
    etype = str(data.get("exception_type") or "")
    short = etype.rsplit(".", 1)[-1]
    msg = f"node {data.get('node_id')} ({data.get('node_type')}): {data.get('exception_message', '').strip()}"
    return msg[:4000], short in TRANSIENT_TYPES


async def run_prompt(server: ComfyClient, prompt: dict, *, on_queued: Callable[[str], None],
                     on_progress: Callable[[float, str], None], should_stop: Callable[[], Optional[str]],
                     deadline_s: float, prompt_id: Optional[str] = None) -> dict:
    """Queue ``prompt`` (as ``prompt_id``, a canonical UUID; a fresh one when not given) and follow it to its
    end; the ``/history``-shaped entry of a successful run."""
    prompt_id = str(uuid.UUID(prompt_id)) if prompt_id else str(uuid.uuid4())
    client_id = "adreel-fleet-" + uuid.uuid4().hex
    await asyncio.to_thread(server.jobs_api)  # asked before the run: polls and cancels then know which to use
    progress = Progress(total=max(1, len(prompt)), on_progress=on_progress)
    timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=None)
    t_end = time.monotonic() + deadline_s
    try:
        async with aiohttp.ClientSession(timeout=timeout) as s:
            ws = await s.ws_connect(f"{server.url}/ws?clientId={client_id}", heartbeat=30, max_msg_size=64 << 20)
            # an unreachable server is an HttpError, an OSError: ComfyGone below
            status, body = await asyncio.to_thread(server.queue, prompt, client_id=client_id, prompt_id=prompt_id)
            if status == 400:
                raise PromptRejected(f"ComfyUI rejected the prompt: {describe_rejection(body)}")
            if status != 200 or not isinstance(body, dict) or body.get("prompt_id") != prompt_id:
                raise Transient(f"ComfyUI at {server.url} answered /prompt with HTTP {status}")
            on_queued(prompt_id)
            last_poll = time.monotonic()
            while True:
                reason = should_stop()
                if reason:
                    await asyncio.to_thread(server.interrupt, prompt_id)
                    raise Stopped(reason)
                if time.monotonic() > t_end:
                    await asyncio.to_thread(server.interrupt, prompt_id)
                    raise Transient(f"the prompt ran longer than {deadline_s:g}s (ADREEL_FLEET_JOB_SECONDS) "
                                    "and was interrupted")
                try:
                    msg = await ws.receive(timeout=1.0)
                except asyncio.TimeoutError:
                    msg = None
                if msg is not None:
                    if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                                    aiohttp.WSMsgType.ERROR):
                        raise ComfyGone(f"lost ComfyUI at {server.url} while it ran the prompt (its websocket closed)")
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        try:
                            event = json.loads(msg.data)
                        except ValueError:
                            event = {}
                        if isinstance(event, dict) and progress.handle(event, prompt_id):
                            return await _finished(server, prompt_id)
                if time.monotonic() - last_poll > 5:  # a missed websocket event never hangs the job
                    last_poll = time.monotonic()
                    entry = await _finished(server, prompt_id, final=False)
                    if entry is not None:
                        return entry
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, ConnectionError, OSError,
            asyncio.TimeoutError) as exc:
        raise ComfyGone(f"lost ComfyUI at {server.url} ({type(exc).__name__})") from None


class Progress:
    """A prompt's progress from its websocket events: nodes done (cached, executed, or left for the next one)
    plus the running node's last ``progress`` value. It never goes back and needs no particular event:
    throttled ``progress`` events (core 0.33 sends at most one per 100 ms) only make it coarser."""

    def __init__(self, total: int, on_progress: Callable[[float, str], None]):
        self.total, self.on_progress = max(1, total), on_progress
        self.done: set[str] = set()
        self.node: Optional[str] = None
        self.frac = 0.0
        self.value = 0.0

    def handle(self, event: dict, prompt_id: str) -> bool:
        """Take one event; True when it says the prompt ended well (an error raises)."""
        kind, data = event.get("type"), event.get("data") or {}
        if not isinstance(data, dict) or data.get("prompt_id") not in (prompt_id, None):
            return False
        if data.get("prompt_id") is None and kind != "progress":
            return False
        if kind == "execution_cached":
            self.done.update(str(n) for n in data.get("nodes") or [])
        elif kind == "executing":
            node = data.get("node")
            if node is None:
                return True  # the prompt's end (success; an error comes as execution_error first)
            if self.node is not None:
                self.done.add(self.node)
            self.node, self.frac = str(node), 0.0
        elif kind == "executed":
            self.done.add(str(data.get("node")))
        elif kind == "progress":
            try:
                value = float(data.get("value", 0)) / max(1.0, float(data.get("max", 1)))
            except (TypeError, ValueError):
                return False
            if value == value:  # NaN is no progress
                self.frac = max(self.frac, min(1.0, max(0.0, value)))
        elif kind == "execution_error":
            message, transient = describe_execution_error(data)
            raise PromptFailed(message, transient)
        elif kind == "execution_interrupted":
            raise Transient(f"the prompt was interrupted on its ComfyUI at node {data.get('node_id')} "
                            f"({data.get('node_type')}) by someone else")
        elif kind == "execution_success":
            return True
        else:
            return False
        share = self.frac if self.node is not None and self.node not in self.done else 0.0
        self.value = max(self.value, min(0.99, (len(self.done) + share) / self.total))
        self.on_progress(self.value, self.node or "")
        return False


async def _finished(server: ComfyClient, prompt_id: str, final: bool = True):
    """The prompt's end (``/api/jobs/{id}`` or ``/history/{id}``, whichever the server has); with ``final``,
    asked for up to 10 s after the websocket said it ended."""
    for _ in range(20 if final else 1):
        try:
            entry = await asyncio.to_thread(server.finished_entry, prompt_id)
        except HttpError as exc:
            raise ComfyGone(f"lost ComfyUI at {server.url} ({exc})") from None
        if entry is not None:
            st = entry.get("status") or {}
            if st.get("status_str") == "error" or not st.get("completed"):
                for item in st.get("messages") or []:
                    kind, data = (item[0], item[1]) if isinstance(item, (list, tuple)) and len(item) >= 2 else (None, None)
                    if kind == "execution_error" and isinstance(data, dict):
                        message, transient = describe_execution_error(data)
                        raise PromptFailed(message, transient)
                    if kind == "execution_interrupted":
                        raise Transient("the prompt was interrupted on its ComfyUI")
                raise Transient("the prompt ended without completing")
            return entry
        if not final:
            return None
        await asyncio.sleep(0.5)
    raise Transient(f"ComfyUI at {server.url} finished the prompt but has no record of it (restarted?)")
