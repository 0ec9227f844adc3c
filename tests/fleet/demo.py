#!/usr/bin/env python3
"""`make fleet-demo`: a whole fleet on loopback, four briefs through it, their URLs printed.

Starts a local redis-server (AOF on, in .runtime/fleet-demo/redis), SeaweedFS,
two ComfyUI servers with AdReel and one `python -m fleet worker` per server;
submits fleet/examples/briefs.csv with the upload workflow (template script,
short 720p ads, so it runs on a CPU in a few minutes), waits, prints each
job's URL and copies the MP4s to .runtime/fleet-demo/out/, then stops it all.
"""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet_stack import ROOT, fast_workflow, start_fleet, write_json  # noqa: E402


def main() -> int:
    base = ROOT / ".runtime" / "fleet-demo"
    shutil.rmtree(base, ignore_errors=True)
    t0 = time.monotonic()
    print("[fleet-demo] starting redis-server, SeaweedFS, two ComfyUI servers and two workers …", flush=True)
    fleet = start_fleet(base, comfies=2, heartbeat=15, retry=5, log=lambda m: print(m, flush=True))
    try:
        wf = write_json(base / "workflow.json", fast_workflow(10.0, resolution="720p"))
        briefs = ROOT / "fleet" / "examples" / "briefs.csv"
        print(f"[fleet-demo] up in {time.monotonic() - t0:.0f}s; Redis 127.0.0.1:{fleet.redis.port} (with a password), "
              f"S3 {fleet.s3.endpoint}; jobs signed with a fresh ADREEL_FLEET_SECRET", flush=True)
        print(f"[fleet-demo] $ python -m fleet submit {wf.relative_to(ROOT)} --briefs {briefs.relative_to(ROOT)}",
              flush=True)
        sub = fleet.cli("submit", wf, "--briefs", briefs)
        if sub.rc != 0:
            print(sub.stderr, file=sys.stderr)
            return 1
        batch = sub.stdout.strip()
        print(f"[fleet-demo] batch {batch}; {sub.stderr.strip()}", flush=True)
        t1 = time.monotonic()
        done = fleet.cli("wait", batch, "--timeout", 1800, timeout=1900)
        print(fleet.cli("status", batch).stdout, flush=True)
        if done.rc != 0:
            print(done.stderr, file=sys.stderr)
            return 1
        out = base / "out"
        out.mkdir()
        st = fleet.cli("status", batch, "--json").json()
        print(f"[fleet-demo] {len(st['jobs'])} ads in {time.monotonic() - t1:.0f}s on two workers:")
        for j in st["jobs"]:
            path = out / f"{j['brand']}-{j['id']}.mp4"
            path.write_bytes(requests.get(j["url"], timeout=60).content)
            print(f"  {j['brand']:<6} {j['worker']}  {j['url']}\n         → {path.relative_to(ROOT)}")
        print("[fleet-demo] (the URLs point at this demo's SeaweedFS, which stops now; the copies stay)")
        return 0
    finally:
        fleet.close()


if __name__ == "__main__":
    sys.exit(main())
