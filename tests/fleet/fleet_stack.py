"""A whole fleet on loopback, for the fleet's tests, `make fleet-demo`, `make bench-fleet` and `make studio`.

Real parts only: Debian's ``redis-server`` (its own folder, AOF on with
``appendfsync always``, a password: ``--requirepass``), SeaweedFS (the real ``weed``), real ComfyUI servers
with AdReel (``harness.ComfyServer``), and ``python -m fleet`` processes —
workers, the command line and the job API — run from the pack's folder as a user would.
"""
from __future__ import annotations

import base64
import copy
from concurrent.futures import ThreadPoolExecutor
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
sys.path[:0] = [str(TESTS)]

from fakes.seaweedfs import SeaweedFS  # noqa: E402
from harness import ComfyServer, free_port, load_api_workflow, node_by_type  # noqa: E402

BUCKET = "adreel-fleet"
PYTHON = os.environ.get("ADREEL_PYTHON") or sys.executable
# settings a developer's shell may hold: blanked so that only the MINIO_* variables below apply
HERMETIC = {name: "" for name in ("ADREEL_S3_BUCKET", "ADREEL_S3_PREFIX", "ADREEL_S3_URL_MODE", "ADREEL_S3_URL_EXPIRY",
                                  "ADREEL_S3_PUBLIC_BASE_URL", "MINIO_SECURE", "ADREEL_REDIS_URL",
                                  "ADREEL_FLEET_NAMESPACE", "ADREEL_FLEET_MAX_QUEUED", "ADREEL_FLEET_SECRET",
                                  "ADREEL_FLEET_COMFY_URLS")}


class RedisServer:
    """``redis-server`` on 127.0.0.1:<free port>, persisting to its own folder (AOF, fsync on every write), with a
    password (``--requirepass``; ``password=""`` runs one without, for the tests that show it is refused)."""

    def __init__(self, base_dir, port: int | None = None, password: str | None = None):
        self.dir = Path(base_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.password = secrets.token_hex(16) if password is None else password
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self, **kw) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password or None, **kw)

    def start(self, timeout: float = 30) -> "RedisServer":
        exe = shutil.which("redis-server")
        if not exe:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server; `make setup` does it)")
        cmd = [exe, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.dir),
               "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
               "--protected-mode", "yes", "--logfile", str(self.dir / "redis.log")]
        if self.password:
            cmd += ["--requirepass", self.password]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        client = self.client(socket_connect_timeout=1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                if client.ping():
                    return self
            except redis.RedisError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"redis-server did not answer within {timeout:.0f}s: {self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: nothing is flushed beyond what the AOF already holds."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return (self.dir / "redis.log").read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class Worker:
    """``python -m fleet worker --comfy URL`` as its own process (group)."""

    def __init__(self, name: str, comfy_url: str, redis_url: str, env: dict, log_dir: Path):
        self.name, self.comfy_url, self.redis_url, self.env = name, comfy_url, redis_url, env
        self.log_path = Path(log_dir) / f"worker-{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> "Worker":
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([PYTHON, "-m", "fleet", "--redis", self.redis_url, "worker", "--comfy",
                                      self.comfy_url, "--name", self.name], cwd=ROOT, env=self.env,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if f"worker {self.name}: consuming" in self.log_text():
                return self
            time.sleep(0.2)
        raise RuntimeError(f"worker {self.name} did not start within {timeout:.0f}s:\n{self.log_tail()}")

    def alive(self) -> bool:
        return bool(self.proc) and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def stop(self, timeout: float = 60) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if getattr(self, "_log", None):
            self._log.close()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_text()[-chars:]


@dataclass
class CliResult:
    rc: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


@dataclass
class Fleet:
    base: Path
    redis: RedisServer
    s3: SeaweedFS
    comfies: list = field(default_factory=list)
    workers: list = field(default_factory=list)
    fleet_env: dict = field(default_factory=dict)

    def cli(self, *args, timeout: float = 120, env: dict | None = None) -> CliResult:
        p = subprocess.run([PYTHON, "-m", "fleet", "--redis", self.redis.url, *map(str, args)], cwd=ROOT,
                           env={**self.fleet_env, **(env or {})}, capture_output=True, text=True, timeout=timeout)
        return CliResult(p.returncode, p.stdout, p.stderr)

    def add_worker(self, name: str, comfy: ComfyServer) -> Worker:
        w = Worker(name, comfy.url, self.redis.url, self.fleet_env, self.base).start()
        self.workers.append(w)
        return w

    def keys(self, prefix: str = "") -> list[str]:
        return [o["Key"] for o in self.s3.list_keys(BUCKET, prefix)]

    def close(self) -> None:
        for w in self.workers:
            w.stop(timeout=20)
        for c in self.comfies:
            c.cleanup()
        self.redis.stop()
        self.s3.stop()


def storage_env(s3: SeaweedFS, base: Path) -> dict:
    return {**HERMETIC, **s3.env(BUCKET), "ADREEL_SPOOL_DIR": str(base / "spool"),
            "ADREEL_STORAGE_CONFIG": str(base / "no-storage-config.json"), "ADREEL_SPOOL_RETRY_SECONDS": "3"}


def fleet_secret() -> str:
    return secrets.token_hex(32)


def start_fleet(base: Path | None = None, comfies: int = 2, workers: bool = True, heartbeat: float = 5,
                retry: float = 2, comfy_env: dict | None = None, log=print) -> Fleet:
    base = Path(base or tempfile.mkdtemp(prefix="adreel-fleet-"))
    base.mkdir(parents=True, exist_ok=True)
    red = RedisServer(base / "redis").start()
    s3 = SeaweedFS(base / "s3")
    s3.start()
    s3.create_bucket(BUCKET)
    env = storage_env(s3, base)
    fleet = Fleet(base=base, redis=red, s3=s3)
    fleet.fleet_env = {**os.environ, **env, "ADREEL_FLEET_HEARTBEAT_SECONDS": str(heartbeat),
                       "ADREEL_FLEET_RETRY_SECONDS": str(retry), "PYTHONUNBUFFERED": "1",
                       "ADREEL_FLEET_SECRET": fleet_secret()}
    try:
        log(f"[fleet] starting {comfies} ComfyUI server(s) …")
        fleet.comfies = [ComfyServer(env={**env, **(comfy_env or {})}) for _ in range(comfies)]
        with ThreadPoolExecutor(comfies) as pool:  # side by side: each start is mostly waiting on imports
            for f in [pool.submit(c.start) for c in fleet.comfies]:
                f.result()
        # each worker may stop an orphaned prompt on the fleet's other ComfyUI servers: the operator lists them
        fleet.fleet_env["ADREEL_FLEET_COMFY_URLS"] = ",".join(c.url for c in fleet.comfies)
        if workers:
            for i, c in enumerate(fleet.comfies):
                fleet.add_worker(f"w{i + 1}", c)
    except BaseException:
        fleet.close()
        raise
    return fleet


def fast_workflow(duration: float = 6.0, resolution: str = "360p", **brief) -> dict:
    """The shipped upload workflow, short and fast: template script, 1:1 at the 360p draft size (a headline still
    reads by OCR), 24 fps, ultrafast."""
    prompt = copy.deepcopy(load_api_workflow("brief_to_ad_upload.json"))
    node_by_type(prompt, "BrandBrief")[1]["inputs"].update(duration_seconds=duration, aspect_ratio="1:1", **brief)
    node_by_type(prompt, "ScriptLLM")[1]["inputs"]["backend"] = "template"
    node_by_type(prompt, "StoryboardSplit")[1]["inputs"].update(resolution=resolution, fps="24")
    node_by_type(prompt, "FFmpegAssemble")[1]["inputs"]["preset"] = "ultrafast"
    return prompt


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


class ApiServer:
    """``python -m fleet api`` as its own process (group), answering on 127.0.0.1:<port>."""

    def __init__(self, fleet: Fleet, keys: list[str], port: int | None = None, env: dict | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = fleet.base / "api.log"
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([PYTHON, "-m", "fleet", "--redis", fleet.redis.url, "api", "--port",
                                      str(self.port)], cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**fleet.fleet_env, "ADREEL_API_KEYS": ",".join(keys), **(env or {})},
                                     start_new_session=True)

    def wait_healthy(self, timeout: float = 60) -> "ApiServer":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the API exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(self.url + "/api/v2/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the API did not answer within {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(20)
        self._log.close()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop_and_report(self, fleet: Fleet, worker_chars: int = 3000) -> None:
        """Stop the API, and print its log's tail and each worker's (what a failed test needs to be read)."""
        self.stop()
        print("--- api log tail ---\n" + self.log_tail())
        for w in fleet.workers:
            print(f"--- {w.name} log tail ---\n{w.log_tail(worker_chars)}")


def whsec(api_key: str) -> str:
    """A key's webhook secret as the README tells a receiver to derive it (``standardwebhooks``' form)."""
    return "whsec_" + base64.b64encode(hashlib.sha256(("adreel-webhook:" + api_key).encode()).digest()).decode()


def wait_for(pred, timeout: float, what: str, every: float = 0.5):
    """``pred()``'s first true value, asked every ``every`` seconds; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def assert_first_headline_reads(path, storyboard: dict, edited: str, written: str) -> None:
    """The first scene's headline in the video at ``path`` reads ``edited`` (OCR, half and 70 % into the scene),
    not ``written``: the words an approval put in place of the script's."""
    from media import frame_at, ocr, similarity
    from nodes.engine.media.layout import frame_layout

    W, H, fps = storyboard["width"], storyboard["height"], storyboard["fps"]
    s0 = storyboard["scenes"][0]
    box = frame_layout(W, H).headline
    reads = [ocr(frame_at(str(path), (s0["start_frame"] + s0["frame_count"] * at) / fps, W, H)
                 [box.y:box.y + box.h, box.x:box.x + box.w]) for at in (0.5, 0.7)]
    assert max(similarity(r, edited) for r in reads) >= 0.8, (reads, written)
    assert max(similarity(r, written) for r in reads) < 0.8, (reads, written)
