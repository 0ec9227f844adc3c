"""One ComfyUI server, driven over its HTTP API and followed on its websocket.

``ComfyServer.check`` is the worker's start-up check (reachable, AdReel
loaded). ``run_prompt`` queues one prompt with this worker's ``client_id``,
follows ``executing`` / ``progress`` / ``executed`` / ``execution_*`` events
for it, and returns its ``/history`` entry — or raises one of the errors
below, each saying whether a retry can help.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Callable, Optional

import aiohttp
import requests

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


class ComfyServer:
    def __init__(self, url: str):
        url = (url or "").strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise FleetError(f"--comfy: {url!r} is not an http(s) URL (e.g. http://127.0.0.1:8188)")
        self.url = url

    def get(self, path: str, timeout: float = 10):
        r = requests.get(self.url + path, timeout=timeout)
        r.raise_for_status()
        return r.json()

    def healthy(self, timeout: float = 10) -> bool:
        try:
            self.get("/system_stats", timeout=timeout)
            return True
        except (requests.RequestException, ValueError):
            return False

    def check(self, wait_seconds: float = 0) -> dict:
        """Reachable, and AdReel's nodes are loaded; else a FleetError saying which."""
        deadline = time.monotonic() + max(0.0, wait_seconds)
        while True:
            try:
                stats = self.get("/system_stats")
                break
            except (requests.RequestException, ValueError) as exc:
                if time.monotonic() >= deadline:
                    raise FleetError(f"ComfyUI at {self.url} is not reachable ({type(exc).__name__}); "
                                     "start it first (or give --wait-comfy SECONDS)") from None
                time.sleep(1)
        missing = []
        for node in ADREEL_NODES:
            try:
                if node not in self.get(f"/object_info/{node}", timeout=30):
                    missing.append(node)
            except (requests.RequestException, ValueError):
                missing.append(node)
        if missing:
            raise FleetError(f"ComfyUI at {self.url} answers but AdReel is not loaded there (no {', '.join(missing)} "
                             "node): install the pack in its custom_nodes and restart it")
        return stats

    def interrupt(self, prompt_id: str) -> None:
        """Stop ``prompt_id`` on this server: drop it from the queue, and interrupt it if it is the one running.
        (``/interrupt`` with a ``prompt_id`` leaves any other prompt alone.)"""
        if not prompt_id:
            return
        for path, body in (("/queue", {"delete": [prompt_id]}), ("/interrupt", {"prompt_id": prompt_id})):
            try:
                requests.post(self.url + path, json=body, timeout=10)
            except requests.RequestException:
                pass

    def holds(self, prompt_id: str) -> bool:
        """Whether ``prompt_id`` is queued or running here (False when unreachable)."""
        try:
            q = self.get("/queue")
        except (requests.RequestException, ValueError):
            return False
        return any(item[1] == prompt_id for item in q.get("queue_running", []) + q.get("queue_pending", []))


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


async def run_prompt(server: ComfyServer, prompt: dict, *, on_queued: Callable[[str], None],
                     on_progress: Callable[[float, str], None], should_stop: Callable[[], Optional[str]],
                     deadline_s: float) -> dict:
    """Queue ``prompt`` and follow it to its end; the ``/history`` entry of a successful run."""
    client_id = "adreel-fleet-" + uuid.uuid4().hex
    total = max(1, len(prompt))
    done: set[str] = set()
    current = {"node": None, "frac": 0.0}
    timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=None)
    t_end = time.monotonic() + deadline_s
    prompt_id = None
    try:
        async with aiohttp.ClientSession(timeout=timeout) as s:
            ws = await s.ws_connect(f"{server.url}/ws?clientId={client_id}", heartbeat=30, max_msg_size=64 << 20)
            async with s.post(f"{server.url}/prompt", json={"prompt": prompt, "client_id": client_id},
                              timeout=aiohttp.ClientTimeout(total=120)) as r:
                text = await r.text()
                try:
                    body = json.loads(text)
                except ValueError:
                    body = text
                if r.status == 400:
                    raise PromptRejected(f"ComfyUI rejected the prompt: {describe_rejection(body)}")
                if r.status != 200 or not isinstance(body, dict) or "prompt_id" not in body:
                    raise Transient(f"ComfyUI at {server.url} answered /prompt with HTTP {r.status}")
                prompt_id = body["prompt_id"]
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
                        finished = _handle(event, prompt_id, done, current, total, on_progress)
                        if finished:
                            return await _history(s, server, prompt_id)
                if time.monotonic() - last_poll > 5:  # a missed websocket event never hangs the job
                    last_poll = time.monotonic()
                    entry = await _history(s, server, prompt_id, final=False)
                    if entry is not None:
                        return entry
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, ConnectionError, OSError,
            asyncio.TimeoutError) as exc:
        raise ComfyGone(f"lost ComfyUI at {server.url} ({type(exc).__name__})") from None


def _handle(event: dict, prompt_id: str, done: set, current: dict, total: int, on_progress) -> bool:
    kind, data = event.get("type"), event.get("data") or {}
    if not isinstance(data, dict) or data.get("prompt_id") not in (prompt_id, None):
        return False
    if data.get("prompt_id") is None and kind != "progress":
        return False
    if kind == "execution_cached":
        done.update(str(n) for n in data.get("nodes") or [])
    elif kind == "executing":
        node = data.get("node")
        if node is None:
            return True  # the prompt's end (success; an error comes as execution_error first)
        if current["node"] is not None:
            done.add(str(current["node"]))
        current.update(node=str(node), frac=0.0)
    elif kind == "executed":
        done.add(str(data.get("node")))
    elif kind == "progress":
        try:
            current["frac"] = max(0.0, min(1.0, float(data.get("value", 0)) / max(1.0, float(data.get("max", 1)))))
        except (TypeError, ValueError):
            pass
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
    frac = (len(done) + (current["frac"] if current["node"] not in done else 0)) / total
    on_progress(min(0.99, frac), current["node"] or "")
    return False


async def _history(s: aiohttp.ClientSession, server: ComfyServer, prompt_id: str, final: bool = True):
    for _ in range(20 if final else 1):
        async with s.get(f"{server.url}/history/{prompt_id}", timeout=aiohttp.ClientTimeout(total=60)) as r:
            hist = await r.json(content_type=None) if r.status == 200 else {}
        entry = (hist or {}).get(prompt_id)
        if entry and entry.get("status", {}).get("completed") is not None:
            st = entry["status"]
            if st.get("status_str") == "error" or not st.get("completed"):
                for kind, data in st.get("messages", []):
                    if kind == "execution_error":
                        message, transient = describe_execution_error(data)
                        raise PromptFailed(message, transient)
                    if kind == "execution_interrupted":
                        raise Transient("the prompt was interrupted on its ComfyUI")
                raise Transient("the prompt ended without completing")
            return entry
        if not final:
            return None
        await asyncio.sleep(0.5)
    raise Transient(f"ComfyUI at {server.url} finished the prompt but has no history for it (restarted?)")
