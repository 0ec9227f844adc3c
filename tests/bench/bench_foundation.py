#!/usr/bin/env python3
"""`make bench`: the demo through a real ComfyUI, measured in one run.

For 9:16 1080p ads from the shipped demo workflow (duration and pacing
changed): 15 s and 60 s with five scenes each (what grows is the length), 60 s
with 20 scenes (what grows is the number of key images) and 180 s, the most a
brief allows, with its natural number of scenes:
  * wall time of the whole prompt (brief → MP4) through ComfyUI;
  * FFmpegAssemble's own time (its manifest) and, as the limit, ONE libx264
    encode with the same settings of the finished ad's own frames (decode the
    output, encode it once) — reported as a ratio;
  * peak memory added while the prompt runs: ComfyUI's process tree (Python +
    ffmpeg children), sampled every 50 ms, above its idle level.
Speeds are ratios taken in the same run: this machine is shared and noisy.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import threading
import time

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from harness import ComfyServer, load_api_workflow, node_by_type, output_files  # noqa: E402


class TreeMemory:
    """Peak RSS of a process and its descendants, sampled in a thread."""

    def __init__(self, pid: int):
        self.proc = psutil.Process(pid)
        self.peak = 0
        self.peak_children = 0
        self._stop = threading.Event()

    def rss(self) -> tuple[int, int]:
        own = self.proc.memory_info().rss
        kids = 0
        for c in self.proc.children(recursive=True):
            try:
                kids += c.memory_info().rss
            except psutil.Error:
                pass
        return own, kids

    def __enter__(self):
        self.base = self.rss()[0]
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            try:
                own, kids = self.rss()
                self.peak = max(self.peak, own + kids)
                self.peak_children = max(self.peak_children, kids)
            except psutil.Error:
                pass
            time.sleep(0.05)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def limit_encode(path: str, preset: str, crf: int) -> float:
    """One libx264 encode, same settings, of the finished ad's own frames."""
    out = path + ".limit.mp4"
    cmd = ["ffmpeg", "-v", "error", "-y", "-i", path, "-map", "0:v", "-map", "0:a",
           "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-profile:v", "high", "-x264-params", "8x8dct=1",
           "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "192k", "-movflags", "+faststart", out]
    t0 = time.monotonic()
    subprocess.run(cmd, check=True)
    took = time.monotonic() - t0
    os.remove(out)
    return took


CASES = {"15x5": (15.0, 5), "60x5": (60.0, 5), "60x20": (60.0, 20), "180": (180.0, 0)}


def rss(pid: int) -> int:
    proc = psutil.Process(pid)
    return proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="15x5,60x5,60x20,180",
                    help="comma list of " + ", ".join(CASES) + " (seconds x scenes; 180 = natural scene count)")
    ap.add_argument("--limit", default="five", choices=["five", "all", "none"],
                    help="measure the one-encode limit for five-scene cases, all or none")
    args = ap.parse_args()
    results = []
    for case in [c.strip() for c in args.cases.split(",") if c.strip()]:
        seconds, scenes = CASES[case]
        # a fresh ComfyUI per case: its cache holds the previous prompt's outputs, which would
        # otherwise count in the next case's idle level
        with ComfyServer() as server:
            warm = copy.deepcopy(load_api_workflow("brief_to_ad.json"))
            node_by_type(warm, "BrandBrief")[1]["inputs"]["duration_seconds"] = 1.0
            server.run(warm)  # import / first-call costs out of the way
            prompt = copy.deepcopy(load_api_workflow("brief_to_ad.json"))
            node_by_type(prompt, "BrandBrief")[1]["inputs"]["duration_seconds"] = seconds
            # a fixed scene count: shot_seconds sets the pacing; 0 leaves the template's natural count
            node_by_type(prompt, "ScriptLLM")[1]["inputs"]["shot_seconds"] = seconds / scenes if scenes else 0.0
            asm_id, asm = node_by_type(prompt, "FFmpegAssemble")
            with TreeMemory(server.proc.pid) as mem:
                result = server.run(prompt, timeout=3600)
            held = rss(server.proc.pid) - mem.base
            path = output_files(server, result, asm_id)[0]
            manifest = json.load(open(os.path.splitext(path)[0] + ".json", encoding="utf-8"))
            assemble_s = manifest["timings_seconds"]["render"]  # the whole FFmpegAssemble: audio, subtitles, encode
            measure = args.limit == "all" or (args.limit == "five" and scenes == 5)
            limit_s = limit_encode(path, asm["inputs"]["preset"], asm["inputs"]["crf"]) if measure else None
            results.append(dict(seconds=seconds, scenes=len(manifest["storyboard"]["scenes"]),
                                wall=result.elapsed, assemble=assemble_s, limit=limit_s,
                                ratio=assemble_s / limit_s if limit_s else None,
                                added_mb=(mem.peak - mem.base) / 2**20, held_mb=held / 2**20,
                                ffmpeg_mb=mem.peak_children / 2**20, base_mb=mem.base / 2**20))
            print(f"[bench] {case}: {results[-1]}", flush=True)
    print()
    print("AdReel demo through ComfyUI (9:16 1080p 30 fps; template script; composed key images, camera moves, "
          "narration, subtitles, music, end card)")
    print(f"{'ad':>5} {'scenes':>6} {'wall':>8} {'assemble':>9} {'1 encode':>9} {'ratio':>6} {'peak added':>11} "
          f"{'held after':>11} {'ffmpeg':>8} {'ComfyUI idle':>13}")
    for r in results:
        lim = f"{r['limit']:>8.1f}s" if r["limit"] else f"{'-':>9}"
        rat = f"{r['ratio']:>5.2f}x" if r["ratio"] else f"{'-':>6}"
        print(f"{r['seconds']:>4.0f}s {r['scenes']:>6} {r['wall']:>7.1f}s {r['assemble']:>8.1f}s {lim} {rat} "
              f"{r['added_mb']:>9.0f}MB {r['held_mb']:>9.0f}MB {r['ffmpeg_mb']:>6.0f}MB {r['base_mb']:>11.0f}MB")
    print("ratio = FFmpegAssemble time / one libx264 encode (same preset/crf) of the finished ad's frames; target ≤ 1.3x")
    print("peak added = ComfyUI process tree (Python + ffmpeg) above its idle RSS while the prompt ran; "
          "target ≤ 800 MB, flat in length and scene count")
    print("held after = the same, once the prompt is done (ComfyUI's output cache and whatever Python keeps)")


if __name__ == "__main__":
    main()
