#!/usr/bin/env python3
"""`make demo`: render the shipped demo workflow in a real, headless ComfyUI.

Starts ComfyUI with AdReel on a free loopback port (base directory
.runtime/demo), POSTs workflows/api/brief_to_ad.json to /prompt, waits, stops
the server and prints the path of the finished MP4.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from harness import ComfyServer, PromptError, load_api_workflow, node_by_type, output_files  # noqa: E402


def main() -> int:
    name = sys.argv[1] if len(sys.argv) > 1 else "brief_to_ad.json"
    base = os.path.join(ROOT, ".runtime", "demo")
    os.makedirs(base, exist_ok=True)
    prompt = load_api_workflow(name)
    server = ComfyServer(base_dir=base)
    print(f"[demo] starting ComfyUI ({server.comfy}) on {server.url} …", flush=True)
    server.start()
    try:
        result = server.run(prompt)
    except PromptError as exc:
        print(f"[demo] {exc}", file=sys.stderr)
        return 1
    finally:
        server.stop()
    node_id, _ = node_by_type(prompt, "FFmpegAssemble")
    files = output_files(server, result, node_id)
    print(f"[demo] rendered in {result.elapsed:.1f}s")
    for path in files:
        print(os.path.abspath(path))
    return 0 if files else 1


if __name__ == "__main__":
    sys.exit(main())
