#!/usr/bin/env python3
"""`make demo`: render the shipped demo workflow in a real, headless ComfyUI.

Starts ComfyUI with AdReel on a free loopback port (base directory
.runtime/demo), POSTs example_workflows/api/brief_to_ad.json to /prompt, waits, stops
the server and prints the path of the finished MP4.

``--contact-sheet PATH`` renders the demo at every aspect (9:16 as shipped,
then 1:1 and 16:9) and writes a contact sheet of them to PATH (one frame per
scene, then the end card): how docs/demo-contact-sheet.jpg is made.
"""
import argparse
import copy
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from harness import ComfyServer, PromptError, load_api_workflow, node_by_type, output_files  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description="Render the shipped demo workflow in a headless ComfyUI.")
    ap.add_argument("workflow", nargs="?", default="brief_to_ad.json", help="an API workflow in example_workflows/api/")
    ap.add_argument("--contact-sheet", metavar="PATH", help="render every aspect and write their contact sheet")
    args = ap.parse_args()
    base = os.path.join(ROOT, ".runtime", "demo")
    os.makedirs(base, exist_ok=True)
    shipped = load_api_workflow(args.workflow)
    prompts = [shipped]
    if args.contact_sheet:
        for aspect in ("1:1", "16:9"):
            p = copy.deepcopy(shipped)
            node_by_type(p, "BrandBrief")[1]["inputs"]["aspect_ratio"] = aspect
            prompts.append(p)
    server = ComfyServer(base_dir=base)
    print(f"[demo] starting ComfyUI ({server.comfy}) on {server.url} …", flush=True)
    server.start()
    rendered = []
    try:
        for prompt in prompts:
            result = server.run(prompt, timeout=1800)
            node_id, _ = node_by_type(prompt, "FFmpegAssemble")
            files = output_files(server, result, node_id)
            print(f"[demo] rendered in {result.elapsed:.1f}s")
            for path in files:
                print(os.path.abspath(path))
            if not files:
                return 1
            rendered.append(files[0])
    except PromptError as exc:
        print(f"[demo] {exc}", file=sys.stderr)
        return 1
    finally:
        server.stop()
    if args.contact_sheet:
        sys.path.insert(0, os.path.join(ROOT, "scripts"))
        from contact_sheet import contact_sheet
        print(f"[demo] contact sheet: {contact_sheet(args.contact_sheet, rendered)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
