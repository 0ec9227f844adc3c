"""The per-prompt ledger (engine/budget.py): the server ceilings are a prompt's, shared by all its nodes.

What an operator relies on: however many nodes (or threads) of one prompt ask, no more than the ceiling
is reserved; a refusal names the variable and what the prompt has used; another prompt starts afresh.
"""
from __future__ import annotations

import threading

import pytest

from nodes.engine import limits
from nodes.engine.budget import Allowance, PromptLedger
from nodes.engine.limits import LimitExceeded
from nodes.engine.models import StoryboardScene
from nodes.engine.providers.errors import BudgetExceededError
from nodes.engine.providers.request import RenderWidgets, plan_run


def test_nodes_of_one_prompt_share_the_ceiling_and_the_refusal_says_how_much_is_used(monkeypatch):
    monkeypatch.setenv("ADREEL_MAX_COST_USD", "1.00")
    ledger = PromptLedger()
    nodes = [Allowance(limits.MAX_COST_USD, "p1", ledger=ledger) for _ in range(5)]
    for a in nodes[:4]:
        a.reserve(0.25, "ProviderRender")
    with pytest.raises(LimitExceeded) as err:
        nodes[4].reserve(0.25, "ProviderRender's estimate of $0.25")
    text = str(err.value)
    assert "ADREEL_MAX_COST_USD" in text and "$1.00 of its $1.00 allowance" in text and "$0.00 left" in text
    assert ledger.used("p1", limits.MAX_COST_USD) == pytest.approx(1.0)
    # another prompt has its own allowance
    Allowance(limits.MAX_COST_USD, "p2", ledger=ledger).reserve(1.0, "ProviderRender")


def test_released_work_can_be_used_again_and_ended_prompts_are_forgotten(monkeypatch):
    monkeypatch.setenv("ADREEL_MAX_PIXEL_FRAMES", "100")
    ledger = PromptLedger()
    a = Allowance(limits.MAX_PIXEL_FRAMES, "p1", ledger=ledger)
    a.reserve(80, "assembly")
    a.release(30)
    a.reserve(50, "assembly")
    with pytest.raises(LimitExceeded, match="ADREEL_MAX_PIXEL_FRAMES"):
        a.reserve(1, "assembly")
    # the next prompt's first reservation forgets prompts ComfyUI no longer runs
    Allowance(limits.MAX_PIXEL_FRAMES, "p2", running={"p2"}, ledger=ledger).reserve(1, "assembly")
    assert ledger.prompts() == ["p2"]


def test_the_ledger_holds_a_bounded_number_of_prompts():
    ledger = PromptLedger(max_prompts=3)
    for n in range(10):
        ledger.reserve(f"p{n}", limits.MAX_MEDIA_SECONDS, 1.0, "music")
    assert ledger.prompts() == ["p7", "p8", "p9"]


def test_concurrent_reservations_never_pass_the_ceiling(monkeypatch):
    monkeypatch.setenv("ADREEL_MAX_MEDIA_SECONDS", "100")
    ledger = PromptLedger()
    granted, refused = [], []
    start = threading.Barrier(40)

    def worker():
        a = Allowance(limits.MAX_MEDIA_SECONDS, "p1", ledger=ledger)
        start.wait()
        for _ in range(25):
            try:
                granted.append(a.reserve(1.0, "narration"))
            except LimitExceeded:
                refused.append(1)

    threads = [threading.Thread(target=worker) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 100 and len(refused) == 900


def test_nan_or_negative_reservations_are_refused():
    ledger = PromptLedger()
    for bad in (float("nan"), -1.0):
        with pytest.raises(LimitExceeded):
            ledger.reserve("p", limits.MAX_COST_USD, bad, "x")


def test_without_an_executor_each_allowance_is_its_own_prompt(monkeypatch):
    monkeypatch.setenv("ADREEL_MAX_COST_USD", "1")
    ledger = PromptLedger()
    Allowance(limits.MAX_COST_USD, None, ledger=ledger).reserve(1.0, "x")
    Allowance(limits.MAX_COST_USD, None, ledger=ledger).reserve(1.0, "x")


# ---- ProviderRender's planning draws on the prompt's allowance (no network: plans only)

@pytest.fixture
def runway_env(monkeypatch, tmp_path):
    from PIL import Image
    monkeypatch.setenv("RUNWAY_API_KEY", "k" * 12)
    monkeypatch.setenv("ADREEL_SECRETS_FILE", str(tmp_path / "none.json"))
    monkeypatch.setenv("ADREEL_PAID_PROVIDERS", "1")
    monkeypatch.setenv("ADREEL_MAX_COST_USD", "1.00")
    path = tmp_path / "key.png"
    Image.new("RGB", (576, 1024), (200, 40, 40)).save(path)
    return str(path)


def _scenes(n):
    return [StoryboardScene(index=i, segment="hook", start=5.0 * i, duration=5.0, start_frame=150 * i,
                            frame_count=150, narration="Meet the sneaker.", image_prompt="a red sneaker",
                            camera="zoom_in") for i in range(n)]


def _plan(key, allowance, **kw):
    values = dict(provider="runway", model="gen4_turbo", fallback="error", quality="best",
                  chain="", max_cost_usd=0.0, options_json="")
    values.update(kw)
    return plan_run(_scenes(1), [key], RenderWidgets(**values), aspect_ratio="9:16", allowance=allowance)


def test_five_provider_nodes_of_one_prompt_plan_no_more_than_the_ceiling(runway_env):
    ledger = PromptLedger()
    planned = []
    for _ in range(4):  # runway gen4_turbo, 5 s: $0.25 a scene
        plan, _ = _plan(runway_env, Allowance(limits.MAX_COST_USD, "p", ledger=ledger))
        planned.append(plan.total_usd)
    assert planned == [0.25] * 4
    with pytest.raises(BudgetExceededError) as err:
        _plan(runway_env, Allowance(limits.MAX_COST_USD, "p", ledger=ledger))
    assert "ADREEL_MAX_COST_USD" in str(err.value) and "this prompt has already used $1.00 of $1.00" in str(err.value)
    assert ledger.used("p", limits.MAX_COST_USD) == pytest.approx(1.0)


def test_auto_routes_the_rest_of_a_prompt_to_the_camera_move(runway_env):
    ledger = PromptLedger()
    Allowance(limits.MAX_COST_USD, "p", ledger=ledger).reserve(0.9, "an earlier ProviderRender")
    plan, _ = _plan(runway_env, Allowance(limits.MAX_COST_USD, "p", ledger=ledger), provider="auto",
                    fallback="camera move", chain="runway:gen4_turbo, camera")
    assert plan.total_usd == 0.0 and not plan.paid
    assert ledger.used("p", limits.MAX_COST_USD) == pytest.approx(0.9)


# ---- media seconds: decodes of one prompt add up, and the refusal comes before the decode

def test_music_decodes_of_one_prompt_share_the_media_seconds(monkeypatch, tmp_path):
    import subprocess

    from nodes.engine.audio.mix import decode_audio_file
    track = tmp_path / "bed.ogg"
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", "sine=f=440:d=20",
                    "-c:a", "libvorbis", str(track)], check=True)
    monkeypatch.setenv("ADREEL_MAX_MEDIA_SECONDS", "50")
    ledger = PromptLedger()
    for _ in range(2):
        clip = decode_audio_file(str(track), "track", allowance=Allowance(limits.MAX_MEDIA_SECONDS, "p", ledger=ledger))
        assert abs(clip.duration - 20.0) < 0.1
    with pytest.raises(LimitExceeded, match=r"track: decoding the file needs 20 s, but this prompt has already "
                                            r"used 40 s of its 50 s allowance \(ADREEL_MAX_MEDIA_SECONDS"):
        decode_audio_file(str(track), "track", allowance=Allowance(limits.MAX_MEDIA_SECONDS, "p", ledger=ledger))
    # the same track in another prompt decodes
    decode_audio_file(str(track), "track", allowance=Allowance(limits.MAX_MEDIA_SECONDS, "q", ledger=ledger))
