#!/usr/bin/env python3
"""`make studio`: AdReel's job API on loopback, with everything behind it, until Ctrl-C.

Starts a local redis-server (AOF on, in .runtime/studio/redis), SeaweedFS, one
ComfyUI with AdReel and its `python -m fleet worker`, and `python -m fleet api`
on http://127.0.0.1:$STUDIO_PORT (default 8189). It prints an API key (or uses
ADREEL_API_KEYS when set) and how to point `comfy-sdk` or curl at it.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet_stack import ROOT, ApiServer, start_fleet  # noqa: E402


def main() -> int:
    base = ROOT / ".runtime" / "studio"
    shutil.rmtree(base, ignore_errors=True)
    keys = [k.strip() for k in (os.environ.get("ADREEL_API_KEYS") or "").split(",") if k.strip()]
    keys = keys or [secrets.token_urlsafe(32)]
    port = int(os.environ.get("STUDIO_PORT") or 8189)
    print("[studio] starting redis-server, SeaweedFS, a ComfyUI with its worker, and the job API …", flush=True)
    fleet = start_fleet(base, comfies=1, heartbeat=15, retry=5, log=lambda m: print(m, flush=True))
    api = None
    try:
        api = ApiServer(fleet, keys, port=port).wait_healthy()
        print(f"""
[studio] the job API (Comfy API v2) answers at {api.url}/api/v2 (log: {api.log_path.relative_to(ROOT)})
  key:       {keys[0]}
  comfy-sdk: COMFY_BASE_URL={api.url} COMFY_API_KEY=<key>, then Comfy().submit(…)
  curl:      curl -H 'Authorization: Bearer <key>' {api.url}/api/v2/jobs
  a brief:   curl -H 'Authorization: Bearer <key>' -H 'Content-Type: application/json' {api.url}/api/v2/jobs \\
               -d '{{"workflow_name": "brief_to_ad_upload", "brief": {{"brand": "Acme", "product": "RoboVac X2"}},
                    "node_inputs": {{"ScriptLLM": {{"backend": "template"}}}}}}'
Ctrl-C stops it all.""", flush=True)
        stop = {"now": False}
        signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
        while not stop["now"] and api.proc.poll() is None:
            time.sleep(1)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        print("[studio] stopping …", flush=True)
        if api:
            api.stop()
        fleet.close()


if __name__ == "__main__":
    sys.exit(main())
