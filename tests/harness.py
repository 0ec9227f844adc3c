"""A real ComfyUI server with AdReel loaded, for tests, the demo and benchmarks.

Starts ``main.py --cpu`` on 127.0.0.1 with its own base directory (custom_nodes
holding only a link to this checkout; fresh input / output / temp / user
folders), submits API-format prompts to ``/prompt`` and waits for the result
through ``/history``. A failing prompt raises with ComfyUI's own error text.

One server per environment for the whole test session
-----------------------------------------------------
Starting ComfyUI costs 30-60 s on a small machine, so tests share servers:
``ComfyServers`` (the session fixture ``comfy_servers`` in tests/conftest.py)
keeps one server for each distinct environment (extra env vars + extra
command-line arguments) and hands the same one to every module that asks
for that environment::

    @pytest.fixture(scope="module")
    def server(comfy_servers):
        return comfy_servers.get(env={"ADREEL_MAX_MEDIA_SECONDS": "30"})

A module whose environment is known when it is imported names it ``COMFY_ENV``
(a dict) and asks ``comfy_servers.get(env=COMFY_ENV)``: the session then starts
that server in the background while the modules without ComfyUI run.
``comfy`` (the plain fixture) is ``comfy_servers.get(env=PLAIN_ENV)``. The
servers stop at the end of the session; each one's canary check runs then.
A module that kills, restarts or re-configures its server, or needs fresh
folders of its own, still makes a ``ComfyServer(...)`` itself.
"""
from __future__ import annotations

import atexit
import copy
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # the fleet's ComfyUI client is the harness's too
    sys.path.insert(0, ROOT)
from fleet.comfy import ComfyClient, describe_rejection  # noqa: E402
PACK_LINK_NAME = "ComfyUI-AdReel"
ADREEL_NODES = ("BrandBrief", "ScriptLLM", "StoryboardSplit", "SceneKeyImage", "MotionClip", "FFmpegAssemble")

# Every test ComfyUI runs with canary secrets in its environment, under names an
# attacker would try (a storage secret, hub tokens, a variable of AdReel's own).
# No workflow may make AdReel send them anywhere or write them anywhere: when a
# server stops, its log, every file under its folders and its /history are
# searched for the canary (``ComfyServer.canary_leaks``), and the fakes record
# what they receive (``fakes.received``) for the same check.
CANARY = "adreel-canary-" + uuid.uuid4().hex
CANARY_ENV = {name: f"{CANARY}-{name.lower()}" for name in
              ("MINIO_SECRET_KEY", "HF_TOKEN", "GITHUB_TOKEN", "ADREEL_CANARY_SECRET")}


class CanaryLeak(AssertionError):
    """A canary secret appeared where a network user could read it."""


class PromptError(RuntimeError):
    """ComfyUI rejected or failed a prompt; ``details`` holds its JSON."""

    def __init__(self, message: str, details: dict | None = None, status: int | None = None):
        super().__init__(message)
        self.details = details or {}
        self.status = status


def comfyui_dir() -> str:
    env = os.environ.get("ADREEL_COMFYUI") or os.environ.get("COMFYUI_PATH")
    path = env or os.path.join(ROOT, ".runtime", "ComfyUI")
    if not os.path.isfile(os.path.join(path, "main.py")):
        raise RuntimeError(f"no ComfyUI at {path}: run `make setup` (or set COMFYUI_PATH)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PromptResult:
    prompt_id: str
    history: dict
    elapsed: float

    @property
    def outputs(self) -> dict:
        return self.history.get("outputs", {})

    def ui(self, node_id: str) -> dict:
        return self.outputs.get(str(node_id), {})


class ForkedProcess:
    """A ComfyUI process the launcher forked: what ``subprocess.Popen`` offers the tests (pid, poll, wait,
    returncode), with the exit code the launcher, its parent, wrote when it reaped it."""

    def __init__(self, pid: int, exit_path: str, launcher: "ComfyLauncher"):
        self.pid, self.exit_path, self.launcher = pid, exit_path, launcher
        self.returncode: int | None = None
        self.args = ["main.py"]

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                with open(self.exit_path, encoding="ascii") as f:
                    self.returncode = int(f.read())
            except FileNotFoundError:
                if not self.launcher.alive() and not os.path.exists(f"/proc/{self.pid}"):
                    self.returncode = -signal.SIGKILL  # its parent is gone, so no one recorded how it ended
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(0.05)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ComfyLauncher:
    """One ``tests/comfy_launcher.py`` process per Python and core in this test process: it imports torch and
    the other heavy libraries once and forks each test ComfyUI from there (5 of a start's 8.5 s of CPU,
    saved on every start after the first). Only where ``ADREEL_TEST_FORK_COMFYUI=1``, which the test session
    sets (tests/conftest.py): the demo, the benchmarks and the scripts start ComfyUI the ordinary way."""

    SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "comfy_launcher.py")
    _launchers: dict[tuple, "ComfyLauncher"] = {}
    _lock = threading.Lock()

    def __init__(self, python: str, comfy: str):
        self.folder = tempfile.mkdtemp(prefix="adreel-launcher-")
        self.lock = threading.Lock()
        with open(os.path.join(self.folder, "launcher.log"), "ab") as log:
            self.proc = subprocess.Popen([python, self.SCRIPT], cwd=comfy, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=log, start_new_session=True, text=True)
        self.count = 0
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the ComfyUI launcher did not start:\n{self.log_tail()}")

    @classmethod
    def for_python(cls, python: str, comfy: str) -> "ComfyLauncher | None":
        if os.environ.get("ADREEL_TEST_FORK_COMFYUI") != "1":
            return None
        key = (os.path.realpath(python), os.path.realpath(comfy), os.getpid())
        with cls._lock:
            launcher = cls._launchers.get(key)
            if launcher is None or not launcher.alive():
                launcher = cls._launchers[key] = cls(python, comfy)
        return launcher

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            with open(os.path.join(self.folder, "launcher.log"), encoding="utf-8", errors="replace") as f:
                return f.read()[-chars:]
        except OSError:
            return ""

    def spawn(self, argv: list[str], env: dict, cwd: str, log: str) -> ForkedProcess:
        with self.lock:
            self.count += 1
            exit_path = os.path.join(self.folder, f"{self.count}.exit")
            self.proc.stdin.write(json.dumps({"argv": argv, "env": env, "cwd": cwd, "log": log,
                                              "exit": exit_path}) + "\n")
            self.proc.stdin.flush()
            answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError(f"the ComfyUI launcher exited:\n{self.log_tail()}")
        return ForkedProcess(json.loads(answer)["pid"], exit_path, self)

    @classmethod
    def close_all(cls) -> None:
        with cls._lock:
            launchers, cls._launchers = list(cls._launchers.values()), {}
        for launcher in launchers:
            launcher.proc.stdin.close()
            try:
                launcher.proc.wait(10)
            except subprocess.TimeoutExpired:
                launcher.proc.kill()
            shutil.rmtree(launcher.folder, ignore_errors=True)


atexit.register(ComfyLauncher.close_all)


class ComfyServer:
    def __init__(self, base_dir: str | None = None, port: int | None = None, python: str | None = None,
                 extra_args: list[str] | None = None, env: dict | None = None):
        self.comfy = comfyui_dir()
        self.own_base = base_dir is None
        self.base = base_dir or tempfile.mkdtemp(prefix="adreel-comfy-")
        self.port = port or free_port()
        self.python = python or os.environ.get("ADREEL_PYTHON") or sys.executable
        self.extra_args = extra_args or []
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(self.base, "comfyui.log")
        self.client_id = uuid.uuid4().hex

    # folders -------------------------------------------------------------
    def folder(self, name: str) -> str:
        return os.path.join(self.base, name)

    def _prepare(self) -> None:
        for name in ("custom_nodes", "input", "output", "temp", "user", "models"):
            os.makedirs(self.folder(name), exist_ok=True)
        link = os.path.join(self.folder("custom_nodes"), PACK_LINK_NAME)
        if not os.path.islink(link):
            os.symlink(ROOT, link)

    def private_folder(self, *parts: str) -> str:
        """AdReel's private folder of the running server (a 0700 ``adreel-private-*`` under ADREEL_PRIVATE_DIR),
        which no HTTP route reaches: for tests to look at, never for attacks."""
        roots = glob.glob(os.path.join(self.env.get("ADREEL_PRIVATE_DIR") or self.folder("private"), "adreel-private-*"))
        if not roots:
            raise FileNotFoundError("the server has made no private folder yet")
        return os.path.join(max(roots, key=os.path.getmtime), *parts)

    # lifecycle -------------------------------------------------------------
    def start(self, timeout: float = 240) -> "ComfyServer":
        self.launch()
        return self.wait_ready(timeout)

    def launch(self) -> "ComfyServer":
        """Start the process and return at once (``wait_ready`` waits until AdReel's nodes are served)."""
        self._prepare()
        cmd = [self.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
               "--base-directory", self.base, "--disable-auto-launch", "--log-stdout",
               "--database-url", f"sqlite:///{os.path.join(self.folder('user'), 'comfyui.db')}", *self.extra_args]
        env = dict(os.environ, PYTHONUNBUFFERED="1", **CANARY_ENV)
        env["ADREEL_PRIVATE_DIR"] = self.folder("private")  # AdReel's own files, where tests can look
        env.update(self.env)
        launcher = ComfyLauncher.for_python(self.python, self.comfy)
        if launcher is not None:  # the forked server opens its log itself
            self._log = None
            self.proc = launcher.spawn(cmd[1:], env, self.comfy, self.log_path)
        else:
            self._log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(cmd, cwd=self.comfy, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        return self

    def wait_ready(self, timeout: float = 240) -> "ComfyServer":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode} while starting:\n{self.log_tail()}")
            try:
                info = self.get_json("/object_info/FFmpegAssemble")
                if "FFmpegAssemble" in info:
                    missing = [n for n in ADREEL_NODES if n not in self.get_json(f"/object_info/{n}")]
                    if missing:
                        raise RuntimeError(f"AdReel nodes missing: {missing}\n{self.log_tail()}")
                    return self
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"ComfyUI did not serve AdReel within {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self, check_canary: bool = True) -> None:
        """Stop the server; then fail loudly if a canary secret leaked anywhere it wrote."""
        history = None
        if check_canary and self.proc and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(self.url + "/history?max_items=100000", timeout=30) as r:
                    history = r.read().decode("utf-8", "replace")
            except Exception:
                history = None
        self._kill()
        if check_canary and self.proc is not None and not getattr(self, "_canary_checked", False):
            self._canary_checked = True
            leaks = self.canary_leaks(history)
            if leaks:
                raise CanaryLeak("a canary secret leaked: " + "; ".join(leaks[:20]))

    def canary_leaks(self, history: str | None = None) -> list[str]:
        """Where the canary appears: the log, any file under the server's folders, the history."""
        needle = CANARY.encode()
        found = []
        if history and CANARY in history:
            found.append("GET /history")
        for top in (self.base,):
            for dirpath, _dirs, files in os.walk(top):
                for name in files:
                    path = os.path.join(dirpath, name)
                    try:
                        if os.path.islink(path) or os.path.getsize(path) > 512 * 1024 * 1024:
                            continue
                        with open(path, "rb") as f:
                            if needle in f.read():
                                found.append(os.path.relpath(path, self.base))
                    except OSError:
                        continue
        return found

    def _kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()

    def kill(self) -> None:
        """SIGKILL the server's whole process group (a crash: nothing is flushed, its queue is lost)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()

    def cleanup(self) -> None:
        self.stop()
        if self.own_base:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    def alive(self) -> bool:
        try:
            self.get_json("/system_stats")
            return True
        except Exception:
            return False

    def log_tail(self, chars: int = 4000) -> str:
        try:
            with open(self.log_path, "r", encoding="utf-8", errors="replace") as f:
                return f.read()[-chars:]
        except OSError:
            return ""

    def log_text(self) -> str:
        with open(self.log_path, "r", encoding="utf-8", errors="replace") as f:
            return f.read()

    # HTTP --------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def client(self) -> ComfyClient:
        """This server through the one ComfyUI client (fleet/comfy.py); its errors are ``OSError``s."""
        return ComfyClient(self.url)

    def get_json(self, path: str):
        return self.client.get(path, timeout=30)

    def post_json(self, path: str, payload, data: bytes | None = None,
                  content_type: str = "application/json") -> tuple[int, dict]:
        status, body = self.client.call("POST", path, payload, data=data, content_type=content_type)
        return status, ({} if body is None else body)

    def upload(self, name: str, data: bytes, kind: str = "input", subfolder: str = "") -> tuple[int, dict]:
        """ComfyUI's own upload route, as any network user calls it (multipart, overwrite on)."""
        status, body = self.client.upload(name, data, kind, subfolder)
        return status, ({} if body is None else body)

    def queue(self, prompt: dict, extra_data: dict | None = None) -> str:
        status, body = self.client.queue(prompt, client_id=self.client_id, extra_data=extra_data)
        if status != 200:
            raise PromptError(f"ComfyUI rejected the prompt ({status}): {describe_rejection(body)}", body, status)
        return body["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 600) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.client.history_entry(prompt_id)
            if entry:
                st = entry["status"]
                if st.get("status_str") == "error" or not st.get("completed"):
                    raise PromptError(f"the prompt failed: {describe_execution_error(entry)}", entry)
                return entry
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI died while running the prompt:\n{self.log_tail()}")
            time.sleep(0.25)
        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout:.0f}s")

    def run(self, prompt: dict, timeout: float = 600) -> PromptResult:
        t0 = time.monotonic()
        pid = self.queue(prompt)
        entry = self.wait(pid, timeout)
        return PromptResult(pid, entry, time.monotonic() - t0)

    def interrupt(self) -> None:
        self.client.interrupt_running()


# The plain test server's environment: its operator allows LLM servers on loopback (the fake LLMs and
# llama-server listen there).
PLAIN_ENV = {"ADREEL_LLM_ALLOWED_HOSTS": "127.0.0.1"}


class ComfyServers:
    """The session's ComfyUI servers: one per environment (extra env vars + extra arguments), started on
    first use (or ahead of it with ``launch``) and shared by every test that asks for the same one."""

    def __init__(self):
        self._servers: dict[tuple, ComfyServer] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(env: dict | None = None, extra_args: list[str] | tuple = ()) -> tuple:
        return tuple(sorted((str(k), str(v)) for k, v in (env or {}).items())), tuple(extra_args or ())

    def launch(self, env: dict | None = None, extra_args: list[str] | tuple = ()) -> ComfyServer:
        """The server for this environment, its process started but perhaps not serving yet."""
        key = self.key(env, extra_args)
        with self._lock:
            server = self._servers.get(key)
            if server is None:
                server = ComfyServer(env=dict(env or {}), extra_args=list(extra_args or ()))
                self._servers[key] = server
                server.launch()
            elif server.proc is not None and server.proc.poll() is not None:
                # a shared server must not be killed by a test; if one was, serve the rest on a fresh process
                server.stop(check_canary=False)
                server.launch()
        return server

    def get(self, env: dict | None = None, extra_args: list[str] | tuple = (), timeout: float = 240) -> ComfyServer:
        """The server for this environment, serving AdReel."""
        return self.launch(env, extra_args).wait_ready(timeout)

    def __len__(self) -> int:
        return len(self._servers)

    def close(self, keep_folders: bool = False, check_canary: bool = True) -> None:
        """Stop every server (each one's canary check runs); then remove their folders."""
        leaks = []
        with self._lock:
            servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            try:
                server.stop(check_canary=check_canary)
            except CanaryLeak as e:
                leaks.append(f"{server.base}: {e}")
            if not keep_folders:
                shutil.rmtree(server.base, ignore_errors=True)
        if leaks:
            raise CanaryLeak("; ".join(leaks))


def describe_execution_error(entry: dict) -> str:
    for kind, data in entry.get("status", {}).get("messages", []):
        if kind == "execution_error":
            tb = "".join(data.get("traceback", []))[-3000:]
            return (f"node {data.get('node_id')} ({data.get('node_type')}): "
                    f"{data.get('exception_type')}: {data.get('exception_message')}\n{tb}")
        if kind == "execution_interrupted":
            return f"interrupted at node {data.get('node_id')} ({data.get('node_type')})"
    return json.dumps(entry.get("status"))[:2000]


def load_api_workflow(name: str) -> dict:
    with open(os.path.join(ROOT, "example_workflows", "api", name), encoding="utf-8") as f:
        return json.load(f)


def short_cloud_prompt(**provider_inputs) -> dict:
    """The shipped cloud workflow, short and fast: 9 s (3 scenes) at 720p, ultrafast; ``provider_inputs``
    set on its ProviderRender."""
    prompt = copy.deepcopy(load_api_workflow("brief_to_ad_cloud.json"))
    node_by_type(prompt, "BrandBrief")[1]["inputs"]["duration_seconds"] = 9.0
    node_by_type(prompt, "StoryboardSplit")[1]["inputs"]["resolution"] = "720p"
    node_by_type(prompt, "FFmpegAssemble")[1]["inputs"]["preset"] = "ultrafast"
    node_by_type(prompt, "ProviderRender")[1]["inputs"].update(provider_inputs)
    return prompt


def node_by_type(prompt: dict, class_type: str) -> tuple[str, dict]:
    matches = [(k, v) for k, v in prompt.items() if v.get("class_type") == class_type]
    if len(matches) != 1:
        raise KeyError(f"{len(matches)} {class_type} nodes in the workflow")
    return matches[0]


def output_files(server: ComfyServer, result: PromptResult, node_id: str, key: str = "images") -> list[str]:
    """Paths of the files a node's UI output names (e.g. the saved MP4)."""
    ui = result.ui(node_id)
    paths = []
    for item in ui.get(key, []):
        folder = server.folder(item.get("type", "output"))
        paths.append(os.path.join(folder, item.get("subfolder", ""), item["filename"]))
    return paths


# a key for every provider, of a plausible length (planning reads that a key is there, never sends it)
PLANNING_KEYS = {"LUMA_API_KEY": "k" * 12, "RUNWAY_API_KEY": "k" * 12, "HEYGEN_API_KEY": "k" * 12, "FAL_KEY": "k" * 12,
                 "REPLICATE_API_TOKEN": "k" * 12, "GEMINI_API_KEY": "k" * 12}


def provider_planning_env(monkeypatch, tmp_path) -> str:
    """Every provider planable, nothing reachable: fake keys in the environment, paid providers enabled, no
    secrets file; returns a 720x1280 key-image PNG to plan with."""
    from PIL import Image
    for k, v in PLANNING_KEYS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("ADREEL_PAID_PROVIDERS", "1")
    monkeypatch.setenv("ADREEL_SECRETS_FILE", str(tmp_path / "none.json"))
    img = tmp_path / "key.png"
    Image.new("RGB", (720, 1280), (40, 90, 200)).save(img)
    return str(img)
