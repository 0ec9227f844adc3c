"""Benchmark: five scenes against a fake provider whose jobs take 2 s each.

Run: ``python tests/bench/bench_providers_concurrency.py [--scenes 5] [--latency 2.0]``

Renders the scenes through the real engine (``plan_routes`` + ``render_routes``: submit, poll,
download, ffprobe check) against the local HTTPS Runway fake, once with the
default concurrency and once with ``concurrency=1``, and prints both wall
times. Concurrent rendering should take about one job's time, not N.
Exits non-zero when the concurrent run is not clearly faster.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
REPO = HERE.parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from PIL import Image  # noqa: E402

from fakes.provider_servers import FakeTLS, RunwayFake, make_sample_mp4  # noqa: E402
from nodes.engine.models import StoryboardScene  # noqa: E402
from nodes.engine.providers import RenderJob, RenderSettings, SceneRequest, plan_routes, render_routes  # noqa: E402


def jobs(n: int, image: Path) -> list[RenderJob]:
    out = []
    for i in range(n):
        scene = StoryboardScene(index=i, segment="scene", start=3.0 * i, duration=3.0, start_frame=90 * i,
                                frame_count=90, image_prompt=f"product shot {i}", visual_direction="slow push in")
        out.append(RenderJob(scene=scene, provider="runway", model="gen4_turbo", image_path=str(image)))
    return out


async def timed(batch, out_dir: Path, concurrency) -> tuple[float, list]:
    t0 = time.perf_counter()
    plan = plan_routes([SceneRequest.for_job(j) for j in batch], strict=True)
    outcomes = await render_routes(plan, RenderSettings(output_dir=out_dir, poll_interval=0.1, concurrency=concurrency,
                                                        timeout=120))
    return time.perf_counter() - t0, [o.result for o in outcomes]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=5)
    ap.add_argument("--latency", type=float, default=2.0, help="seconds each fake job takes")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="adreel-bench-") as tmp:
        d = Path(tmp)
        tls = FakeTLS(d)
        media = make_sample_mp4(d / "sample.mp4").read_bytes()
        image = d / "key.png"
        Image.new("RGB", (720, 1280), (30, 60, 200)).save(image)
        fake = RunwayFake(tls, media).start()
        try:
            fake.job_latency = args.latency
            os.environ.update({"ADREEL_CA_BUNDLE": str(tls.ca_path), "RUNWAY_BASE_URL": fake.base_url,
                               "RUNWAY_API_KEY": fake.valid_key, "ADREEL_PAID_PROVIDERS": "1",
                               "XDG_STATE_HOME": str(d / "state")})  # the operator's opt-in; the jobs journal
            batch = jobs(args.scenes, image)
            concurrent_s, results = asyncio.run(timed(batch, d / "concurrent", {"runway": args.scenes}))
            assert [r.scene_index for r in results] == list(range(args.scenes))
            fake.reset()
            fake.job_latency = args.latency
            sequential_s, _ = asyncio.run(timed(batch, d / "sequential", 1))
        finally:
            fake.stop()

    print(f"scenes: {args.scenes}, fake job latency: {args.latency:.1f} s")
    print(f"concurrent wall time: {concurrent_s:6.2f} s")
    print(f"sequential wall time: {sequential_s:6.2f} s")
    print(f"speed-up:             {sequential_s / concurrent_s:6.2f}x (ideal {args.scenes}x)")
    ok = concurrent_s < sequential_s / 2 and concurrent_s < args.latency * 2 + 1.0
    print("OK: concurrent ≈ one job's time" if ok else "SLOW: scenes did not render concurrently")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
