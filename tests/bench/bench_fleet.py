"""Benchmark: the fleet's scaling, measured in one run (`make bench-fleet`).

1. CPU-bound: the same batch (four 6 s ads, template script, 720p, the
   upload workflow) on one worker, then on two (each with its own ComfyUI).
   The second run uses other product names, so that no ComfyUI answers it
   from its cache; the work is the same.
2. Wait-bound: a batch of ProviderRender ads against the local fake Runway
   (each remote job takes ``--latency`` seconds) on one worker, then on three.
   Here the time is spent waiting on the provider, not on the CPU, so more
   workers help even on a small machine.

Everything is real but the provider (a local HTTPS fake following Runway's
contract): redis-server, SeaweedFS, ComfyUI servers with AdReel, `python -m
fleet` workers and command line. Prints wall times and the ratios; on a
machine with fewer cores than ComfyUI servers the CPU-bound ratio is bounded
by the cores, the wait-bound one is not.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
REPO = HERE.parents[2]
sys.path[:0] = [str(REPO / "tests" / "fleet"), str(REPO / "tests")]

from fakes.provider_servers import FakeTLS, RunwayFake, make_sample_mp4  # noqa: E402
from fleet_stack import fast_workflow, start_fleet, write_json  # noqa: E402
from harness import load_api_workflow, node_by_type  # noqa: E402

RUNWAY_KEY = "key_bench-runway-0123456789abcdef"


def cloud_workflow(duration: float) -> dict:
    prompt = copy.deepcopy(load_api_workflow("brief_to_ad_cloud.json"))
    node_by_type(prompt, "BrandBrief")[1]["inputs"].update(duration_seconds=duration, aspect_ratio="1:1")
    node_by_type(prompt, "ScriptLLM")[1]["inputs"]["backend"] = "template"
    node_by_type(prompt, "StoryboardSplit")[1]["inputs"].update(resolution="720p", fps="24")
    node_by_type(prompt, "FFmpegAssemble")[1]["inputs"].update(preset="ultrafast", end_card_seconds=0.0)
    return prompt


def run_batch(fleet, workflow: Path, brands: list[str], product: str, name: str) -> float:
    briefs = fleet.base / f"{name}.csv"
    briefs.write_text("brand,product\n" + "".join(f"{b},{product}\n" for b in brands), encoding="utf-8")
    sub = fleet.cli("submit", workflow, "--briefs", briefs, "--json")
    if sub.rc != 0:
        raise SystemExit(f"submit failed: {sub.stderr}")
    batch = sub.json()["batch"]
    t0 = time.monotonic()
    done = fleet.cli("wait", batch, "--timeout", 3000, timeout=3100)
    wall = time.monotonic() - t0
    st = fleet.cli("status", batch, "--json").json()
    if done.rc != 0:
        raise SystemExit(f"batch {name} did not complete:\n{done.stderr}")
    workers = sorted({j["worker"] for j in st["jobs"]})
    print(f"  {name}: {len(brands)} jobs in {wall:.1f}s on {', '.join(workers)}", flush=True)
    return wall


def use_workers(fleet, n: int) -> None:
    for w in fleet.workers:
        w.stop()
    fleet.workers.clear()
    for i in range(n):
        fleet.add_worker(f"w{i + 1}", fleet.comfies[i])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=4, help="ads in the CPU-bound batch")
    ap.add_argument("--cloud-jobs", type=int, default=6, help="ads in the wait-bound batch")
    ap.add_argument("--latency", type=float, default=20.0, help="seconds each fake Runway job takes")
    args = ap.parse_args()

    base = REPO / ".runtime" / "bench-fleet"
    import shutil
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    tls = FakeTLS(base)
    runway = RunwayFake(tls, make_sample_mp4(base / "sample.mp4").read_bytes(), valid_key=RUNWAY_KEY).start()
    runway.job_latency = args.latency
    closed = "https://127.0.0.1:9"
    provider_env = {"RUNWAY_API_KEY": RUNWAY_KEY, "RUNWAY_BASE_URL": runway.base_url, "ADREEL_CA_BUNDLE": str(tls.ca_path),
                    "ADREEL_SECRETS_FILE": str(base / "no-secrets.json"), "ADREEL_PROVIDER_POLL_SECONDS": "0.5",
                    "ADREEL_PAID_PROVIDERS": "1", "LUMA_BASE_URL": closed, "HEYGEN_BASE_URL": closed,
                    "FAL_BASE_URL": closed, "REPLICATE_BASE_URL": closed, "GEMINI_BASE_URL": closed + "/v1beta"}
    t0 = time.monotonic()
    fleet = start_fleet(base, comfies=3, workers=False, comfy_env=provider_env)
    print(f"[bench-fleet] redis-server, SeaweedFS and 3 ComfyUI servers up in {time.monotonic() - t0:.0f}s", flush=True)
    results = {}
    try:
        upload = write_json(base / "upload.json", fast_workflow(6.0))
        brands = [f"Brand{i}" for i in range(args.jobs)]
        print("[bench-fleet] CPU-bound: the upload workflow, 6 s ads", flush=True)
        use_workers(fleet, 1)
        one = run_batch(fleet, upload, brands, "Vacuum", "cpu-1-worker")
        use_workers(fleet, 2)
        two = run_batch(fleet, upload, brands, "Blender", "cpu-2-workers")
        results["cpu"] = {"jobs": args.jobs, "one_worker_s": round(one, 1), "two_workers_s": round(two, 1),
                          "speedup": round(one / two, 2)}

        cloud = write_json(base / "cloud.json", cloud_workflow(6.0))
        brands = [f"Cloud{i}" for i in range(args.cloud_jobs)]
        print(f"[bench-fleet] wait-bound: ProviderRender against the fake Runway ({args.latency:g} s per job)", flush=True)
        use_workers(fleet, 1)
        one = run_batch(fleet, cloud, brands, "Kettle", "wait-1-worker")
        use_workers(fleet, 3)
        three = run_batch(fleet, cloud, brands, "Toaster", "wait-3-workers")
        results["wait"] = {"jobs": args.cloud_jobs, "latency_s": args.latency, "one_worker_s": round(one, 1),
                           "three_workers_s": round(three, 1), "speedup": round(one / three, 2)}
    finally:
        fleet.close()
        runway.stop()
    print(json.dumps(results, indent=1))
    print(f"[bench-fleet] CPU-bound: 2 workers {results['cpu']['speedup']:.2f}x faster than 1; "
          f"wait-bound: 3 workers {results['wait']['speedup']:.2f}x faster than 1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
