"""ReferenceAnalyze's engine on real clips made with ffmpeg, with cuts at known frames."""
from __future__ import annotations

import asyncio
import statistics
import subprocess

import pytest

from nodes.engine.models import AdReelInputError, Brief
from nodes.engine.script.reference import analyze_reference
from nodes.engine.script.generate import generate_script
from nodes.engine.script.llm import ScriptOptions

FPS = 25
# shots of known frame counts, each a different picture with motion of its own
SHOTS = [("testsrc2=s={s}:r={r}", 30), ("mandelbrot=s={s}:r={r}", 50), ("smptebars=s={s}:r={r}", 20),
         ("cellauto=s={s}:r={r}:rule=110", 75), ("rgbtestsrc=s={s}:r={r}", 38)]


def make_clip(path: str, shots, size="180x320", fps=FPS, sar=None) -> str:
    cmd = ["ffmpeg", "-v", "error", "-y"]
    for src, _ in shots:
        cmd += ["-f", "lavfi", "-i", src.format(s=size, r=fps)]
    chains = [f"[{i}:v]trim=end_frame={n},setpts=PTS-STARTPTS,setsar=1,format=yuv420p[v{i}]"
              for i, (_, n) in enumerate(shots)]
    concat = "".join(f"[v{i}]" for i in range(len(shots))) + f"concat=n={len(shots)}:v=1:a=0"
    concat += f",setsar={sar}[out]" if sar else "[out]"
    cmd += ["-filter_complex", ";".join(chains) + ";" + concat, "-map", "[out]", "-c:v", "libx264",
            "-pix_fmt", "yuv420p", "-r", str(fps), path]
    subprocess.run(cmd, check=True, timeout=120)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(str(tmp_path_factory.mktemp("ref") / "reference.mp4"), SHOTS)


def expected_cuts(shots, fps=FPS):
    cuts, n = [], 0
    for _, frames in shots[:-1]:
        n += frames
        cuts.append(n / fps)
    return cuts


def test_cuts_are_found_within_one_frame(clip):
    ref = analyze_reference(clip)
    want = expected_cuts(SHOTS)
    assert ref.shot_count == len(SHOTS)
    assert len(ref.shot_boundaries) == len(want)
    for found, cut in zip(ref.shot_boundaries, want):
        assert abs(found - cut) <= 1.0 / FPS + 1e-6, (ref.shot_boundaries, want)
    total = sum(n for _, n in SHOTS) / FPS
    lengths = [n / FPS for _, n in SHOTS]
    assert ref.duration_seconds == pytest.approx(total, abs=1.0 / FPS)
    assert ref.mean_shot_seconds == pytest.approx(statistics.fmean(lengths), abs=1.0 / FPS)
    assert ref.median_shot_seconds == pytest.approx(statistics.median(lengths), abs=1.0 / FPS)
    assert ref.aspect_ratio == "9:16"


def test_motion_inside_a_shot_is_not_a_cut(tmp_path):
    path = make_clip(str(tmp_path / "one.mp4"), [("testsrc2=s={s}:r={r}", 100)], size="320x180")
    ref = analyze_reference(path)
    assert ref.shot_count == 1 and ref.shot_boundaries == []
    assert ref.aspect_ratio == "16:9"
    assert ref.duration_seconds == pytest.approx(4.0, abs=0.04)


def test_display_aspect_uses_the_pixel_aspect(tmp_path):
    # 240x180 stored, pixels 4:3 wide → displayed 320x180 = 16:9
    path = make_clip(str(tmp_path / "anamorphic.mp4"), SHOTS[:2], size="240x180", sar="4/3")
    assert analyze_reference(path).aspect_ratio == "16:9"


def test_structure_given_with_the_reference(clip):
    ref = analyze_reference(clip, structure="hook, problem, solution, proof, cta", tone="playful")
    assert ref.structure == ["hook", "problem", "solution", "proof", "cta"] and ref.tone == "playful"
    with pytest.raises(AdReelInputError) as exc:
        analyze_reference(clip, structure="hook, cta")
    assert exc.value.field == "structure" and "5 shots" in str(exc.value)
    with pytest.raises(AdReelInputError) as exc:
        analyze_reference(clip, structure="hook, middle, cta, x, y")
    assert "is not a segment" in str(exc.value) and "middle" not in str(exc.value)


def test_not_a_video(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video")
    with pytest.raises((AdReelInputError, ValueError)):
        analyze_reference(str(bad))


def test_a_script_follows_the_reference_pacing(clip):
    """Same length as the reference: one scene per shot, each as long as its shot (within a frame)."""
    ref = analyze_reference(clip, structure="hook, problem, solution, proof, cta")
    brief = Brief(brand="Acme", product="RoboVac X2", cta="Shop now", duration_seconds=ref.duration_seconds,
                  reference_style=ref)
    gen = asyncio.run(generate_script(brief, None, ScriptOptions(seed=3, reference=ref)))
    scenes = gen.script.scenes
    assert [sc.segment for sc in scenes] == ref.structure
    shots = [n / FPS for _, n in SHOTS]
    for sc, shot in zip(scenes, shots):
        assert abs(sc.duration - shot) <= 1.0 / FPS + 0.01, ([sc.duration for sc in scenes], shots)
    cuts = [sc.start for sc in scenes[1:]]
    for cut, want in zip(cuts, expected_cuts(SHOTS)):
        assert abs(cut - want) <= 1.0 / FPS + 0.01
    assert gen.bar.check(gen.script) == []


def test_a_longer_ad_keeps_the_reference_shot_length(clip):
    ref = analyze_reference(clip)
    brief = Brief(brand="Acme", product="RoboVac X2", cta="Shop now", duration_seconds=round(ref.duration_seconds * 2, 2))
    gen = asyncio.run(generate_script(brief, None, ScriptOptions(seed=1, reference=ref)))
    n = len(gen.script.scenes)
    assert n == round(brief.duration_seconds / ref.mean_shot_seconds) == 2 * ref.shot_count
    mean = brief.duration_seconds / n
    assert mean == pytest.approx(ref.mean_shot_seconds, rel=0.05)
    assert gen.bar.check(gen.script) == []
