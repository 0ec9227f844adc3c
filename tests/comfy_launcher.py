"""Starts test ComfyUI servers by forking one process that has already imported the heavy libraries.

Every ComfyUI start imports torch, torchvision, transformers, scipy, sympy, kornia, spandrel, SQLAlchemy
and alembic before it reads a single node: about 5 of its 8.5 s of CPU on the test machine, the same
work each of the suite's thirty-odd starts. This program does that work once. It is started by the
harness (``tests/harness.py``, ``ComfyLauncher``) with the Python of the core under test, imports those
libraries, and then reads one request a line from its stdin: ``{"argv", "env", "cwd", "log", "exit"}``.
For each it forks a child that

* becomes the leader of a session of its own (the harness stops a server by its process group);
* writes stdout and stderr to ``log`` and reads nothing;
* takes ``env`` as its whole environment and ``cwd`` as its directory;
* runs ComfyUI's own ``main.py`` with ``argv``, as ``python main.py ...`` would.

ComfyUI itself (``comfy``, ``nodes``, ``server``, every custom node, AdReel too) is imported fresh in each
child, after its arguments and environment are set: only libraries that read neither are loaded here,
after the two variables ComfyUI's ``main.py`` sets before it imports them. The launcher answers each
request with the child's pid, reaps its children, and writes each one's exit code (as ``subprocess``
reports it: negative for a signal) to that request's ``exit`` file. It exits when its stdin closes.

ComfyUI logs "Torch already imported, torch should never be imported before this point": its start sets
the GPU variables (CUDA_VISIBLE_DEVICES and the like) before torch reads them, and the test servers run
with ``--cpu`` and set none. A test harness part only: a user's ComfyUI starts the ordinary way.
"""
import importlib
import json
import os
import signal
import sys
import threading
import traceback

# what ComfyUI's main.py sets before it imports anything heavy (the hub client reads them at import)
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["DO_NOT_TRACK"] = "1"

# imported once, here; each is a library ComfyUI's start imports (a missing one is simply skipped)
PRELOAD = ("numpy", "PIL.Image", "torch", "torch._dynamo", "torchvision", "torchvision.ops", "torchvision.models",
           "torchaudio", "torchsde", "einops", "safetensors.torch", "tokenizers", "transformers", "scipy",
           "scipy.integrate", "scipy.special", "scipy.stats", "sympy", "kornia", "kornia.filters",
           "kornia.augmentation", "spandrel", "av", "aiohttp", "yarl", "sqlalchemy", "alembic", "pydantic",
           "psutil", "tqdm", "yaml", "requests")


def preload() -> None:
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - not in this core's environment: the child imports what it needs
            pass


def write_exit(path: str, code: int) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(code))
    os.replace(tmp, path)


def run_child(req: dict) -> int:
    """In the forked child: become ``python main.py *argv`` in ``cwd`` with ``env``; its exit code."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    os.setsid()
    log = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.close(null)
    # new standard streams on the new descriptors, unbuffered as PYTHONUNBUFFERED makes them; the __std*__
    # names hold them too, as at a normal start (ComfyUI's log interceptor wraps their buffers)
    sys.stdin = sys.__stdin__ = open(0, encoding="utf-8", closefd=False)
    sys.stdout = sys.__stdout__ = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
    sys.stderr = sys.__stderr__ = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True, write_through=True)
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    sys.dont_write_bytecode = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
    sys.argv = list(req["argv"])
    sys.path[0] = req["cwd"]
    import runpy
    try:
        runpy.run_path(req["argv"][0], run_name="__main__")
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 - reported in the server's log, as an uncaught error would be
        traceback.print_exc()
        code = 1
    try:
        import atexit
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        pass
    return code


def main() -> None:
    preload()
    if threading.active_count() != 1:  # a fork copies only the calling thread: refuse to fork a threaded process
        raise SystemExit(f"the launcher has {threading.active_count()} threads after its imports; cannot fork")
    exits: dict[int, str] = {}

    def reap(_signum, _frame):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            path = exits.pop(pid, None)
            if path:
                write_exit(path, os.waitstatus_to_exitcode(status))

    signal.signal(signal.SIGCHLD, reap)
    reply = sys.stdout
    reply.write("ready\n")
    reply.flush()
    for line in sys.stdin:
        req = json.loads(line)
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD])  # the pid is recorded before it can be reaped
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = run_child(req)
            except BaseException:  # noqa: BLE001 - before ComfyUI ran (a folder or the log could not be opened)
                traceback.print_exc()
            finally:
                os._exit(code)
        exits[pid] = req["exit"]
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGCHLD])
        reply.write(json.dumps({"pid": pid}) + "\n")
        reply.flush()


if __name__ == "__main__":
    main()
