"""A corpus of real-world briefs: every one becomes an ad whose narration fits its scenes.

Marketers paste product names, prices, percentages, phone numbers, URLs,
e-mail addresses, quotes, backslashes and emoji; every such brief that
BrandBrief accepts must become an ad. Every brief of the corpus goes through
the engine as the shipped workflow runs it (the template script, the
storyboard at the 180p draft size and 24 fps, each scene's line spoken by
SceneNarration's default voice, the assembler's retiming, narration track
and subtitles), without the video encode:

* the storyboard lasts exactly the asked length at the asked aspect;
* the voice needs no retiming (the bar's measure is the assembler's);
* in every scene the narration ends before the scene does, measured on the
  narration track: voice activity per scene, silence around every scene
  boundary and at the end of the ad; scenes with a line are heard, scenes
  without one are silent;
* the call to action stays on screen as written; subtitles keep what was
  written, with URLs shortened (no query string).

A handful of the briefs (Korean, Spanish and English; 5 s to 180 s; every
aspect) are also rendered by the shipped workflow in a real ComfyUI and
checked the same way from the files (ffprobe, the decoded audio, the
manifest, the .srt): the renders show the engine's plan is what ComfyUI
makes, and the MP4 lasts the asked length (±0.1 s, container, video and audio).
They are queued when the module starts and render while the engine checks run.
"""
from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field

import numpy as np
import pytest

from harness import PromptError, load_api_workflow, node_by_type
from media import decode_audio, ffprobe, stream
from nodes.engine.assembly.render import subtitle_cues
from nodes.engine.audio.mix import SAMPLE_RATE, AudioClip, narration_track
from nodes.engine.audio.narration import DEFAULT_RATE_WPM
from nodes.engine.audio.subtitles import write_srt
from nodes.engine.models import Brief
from nodes.engine.script import write_template_script
from nodes.engine.speech.fit import LEAD_IN_SECONDS, speak_line
from nodes.engine.speech.voice import voice_for
from nodes.engine.storyboard import build_storyboard, output_size, retime_for_narration

FPS = 24
RESOLUTION = "180p"
SR = SAMPLE_RATE
WINDOW = 0.01          # seconds per voice-activity window
VOICE_RMS = 0.006      # a window louder than this (about -44 dBFS) holds voice; the track is silent otherwise


@dataclass
class Case:
    name: str
    language: str
    duration: float
    aspect: str
    brand: str
    product: str
    cta: str
    audience: str = ""
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def brief(self) -> Brief:
        return Brief(brand=self.brand, product=self.product, cta=self.cta, audience=self.audience,
                     duration_seconds=self.duration, aspect_ratio=self.aspect, language=self.language)


LONG_BRAND = "The Extraordinarily Long-Named Cold Brew & Roastery Company of Greater Seoul Ltd."[:80]
LONG_PRODUCT = ("Ultra Premium Deluxe Robotic Vacuum Cleaner X2000 Pro Max with Self-Emptying Dock, "
                "HEPA-13 Filter, 5,000 Pa Suction, 180-Minute Battery and LiDAR Mapping (2026 Edition)")[:200]
LONG_KO_PRODUCT = ("초고성능 프리미엄 디럭스 로봇청소기 X2000 프로 맥스 — 자동 먼지 비움 스테이션, 헤파13 필터, "
                   "5,000Pa 흡입력, 180분 배터리, 라이다 매핑 (2026년형) 🎉")

CASES = [
    # the three briefs of issue 12
    Case("issue12_ko_coldbrew", "ko", 20, "9:16", "카페온", '콜드브루 "Night Shift" 50% — 오늘만: 1+1 \\ 🎉',
         "지금 주문하세요"),
    Case("issue12_en_phone_cta", "en", 8, "9:16", "Acme", "RoboVac X2", "Order now — 1796190515"),
    Case("issue12_ko_url_cta", "ko", 20, "9:16", "케이마켓", "1+1 이벤트 🎉 100% 환불 보장",
         "https://k.example/event?ref=ad&utm=1"),
    # English
    Case("en_price", "en", 5, "1:1", "Acme", "RoboVac X2 — now $199.99 (was $299)", "Buy today"),
    Case("en_percent", "en", 6, "16:9", "Brightside", "Solar Lamp", "Up to 70% off — this week only!"),
    Case("en_url_query", "en", 10, "9:16", "Northwind", "Trail Shoes",
         "Shop https://shop.northwind.example/sale?utm_source=tiktok&utm_medium=paid#top"),
    Case("en_email", "en", 12, "1:1", "Acme", "Support Plan", "Write to orders@acme.com"),
    Case("en_us_phone", "en", 15, "16:9", "Dial-a-Ride", "Airport Shuttle", "Call +1 (555) 123-4567 24/7"),
    Case("en_date", "en", 9, "9:16", "Winter Co.", "Down Jacket", "Sale ends 2026-12-31 — don't miss it"),
    Case("en_quotes_backslash", "en", 7, "1:1", "Slash & Co", 'The "Backslash\\Edition" 🎉🔥✨',
         'Get "50% off": C:\\deals\\ 🎉'),
    Case("en_long_names_short", "en", 5, "9:16", LONG_BRAND, LONG_PRODUCT, "Order now at acme.example.com"),
    Case("en_long_names_30", "en", 30, "16:9", LONG_BRAND, LONG_PRODUCT,
         "Visit https://www.acme-robotics.example.co.uk/products/x2000?ref=ad&utm=spring or call 0800 123 4567"),
    Case("en_emoji_cta", "en", 6, "1:1", "Party Time", "Confetti Cannon 🎉", "🎉🎉🎉"),
    Case("en_1plus1_hashtag", "en", 11, "9:16", "FreshMart", "Buy 1+1 Avocados #1 in town", "Tap to order & save 20%"),
    Case("en_ordinal_time", "en", 13, "16:9", "CineMax", "3rd Anniversary Screening", "Doors open at 7:30pm, 12/25"),
    Case("en_handle", "en", 8, "9:16", "Glow", "Serum 2.0", "Follow @glow_official for 15% off", seed=3),
    Case("en_45", "en", 45, "9:16", "Acme", "RoboVac X2", "Shop now at acme.com", audience="busy parents", seed=5),
    Case("en_60_numbers", "en", 60, "1:1", "Ledger+", "Budget App 3.1 — 1,000,000 users",
         "Download free: ledgerplus.example/app?campaign=q4 — 4.9★ rating", seed=2),
    Case("en_180", "en", 180, "16:9", "Acme", "RoboVac X2 — $19.99/month", "Call 1-800-555-0199 or visit acme.com",
         audience="busy parents", seed=1),
    # Korean
    Case("ko_price_won", "ko", 5, "9:16", "아크미", "로보청소기 X2 단돈 19,900원!", "지금 구매"),
    Case("ko_phone", "ko", 8, "1:1", "한빛치과", "임플란트 상담", "010-1234-5678로 전화주세요"),
    Case("ko_email", "ko", 10, "16:9", "스마트렌탈", "정수기 렌탈 월 9,900원", "문의: help@smartrental.co.kr"),
    Case("ko_date_percent", "ko", 12, "9:16", "봄날", "봄맞이 세일 최대 70% 할인", "2026.03.01 - 03.15 단 2주!"),
    Case("ko_counters", "ko", 6, "1:1", "베이커리 단", "크루아상 3개 + 아메리카노 2잔 세트", "오늘 오후 3시까지"),
    Case("ko_url_www", "ko", 15, "16:9", "케이마켓", "주말 특가 2+1", "www.kmarket.example/sale?utm=ad 에서 확인"),
    Case("ko_long_product", "ko", 20, "9:16", "아크미 로보틱스 코리아 주식회사", LONG_KO_PRODUCT,
         "지금 1588-1234로 상담하세요"),
    Case("ko_quotes_emoji", "ko", 7, "1:1", "“달빛” 커피", '콜드브루 "Night Shift" 🌙☕', "지금 주문 🎉🎉"),
    Case("ko_backslash", "ko", 9, "9:16", "코드랩", "C:\\\\ 없이 쓰는 코딩 강의 \\ 50% 할인", "수강 신청 → https://code.example/k?id=7"),
    Case("ko_english_brand", "ko", 11, "16:9", "Acme", "RoboVac X2 로봇청소기", "Shop now 🎉", audience="바쁜 부모"),
    Case("ko_dollar", "ko", 13, "9:16", "글로벌샵", "해외직구 $19.99 무료배송", "지금 주문하세요!"),
    Case("ko_30", "ko", 30, "1:1", "아크미", "로보청소기 X2", "지금 구매하세요", audience="바쁜 부모", seed=4),
    Case("ko_60", "ko", 60, "9:16", "카페온", "콜드브루 1L 2+1 🎉", "https://cafeon.example/order?ref=ad 주문", seed=6),
    Case("ko_90", "ko", 90, "16:9", "한빛은행", "연 3.5% 적금", "1599-0000 또는 hanbit.example", seed=8),
    # Spanish
    Case("es_basic", "es", 8, "9:16", "Acme", "Aspiradora X2", "Compra ya en acme.es"),
    Case("es_price_percent", "es", 10, "1:1", "Sol y Mar", "Crema solar 50% de descuento", "Solo 19,99 € hoy"),
    Case("es_phone", "es", 12, "16:9", "Taxi Rápido", "Traslado al aeropuerto", "Llama al 612 345 678"),
    Case("es_email_url", "es", 15, "9:16", "Librería Luz", "Novela «El Faro» 📚",
         "Escríbenos a hola@libreria.example o visita https://libreria.example/faro?utm=ig"),
    Case("es_quotes_backslash", "es", 6, "1:1", "Código", 'Curso "Python \\ Pro" 🎉', "¡Apúntate ya!"),
    Case("es_long", "es", 20, "16:9", "La Extraordinaria Compañía de Café de Especialidad de Madrid",
         "Café de especialidad 100% arábica, tostado artesanal, 1 kg, envío gratis 24/48h ☕", "Pide el tuyo"),
    Case("es_1plus1", "es", 5, "9:16", "Pizzería Roma", "Pizza 2x1 y 1+1 en bebidas", "Pide hoy"),
    Case("es_30", "es", 30, "9:16", "Acme", "Aspiradora X2", "Visita acme.es", audience="familias ocupadas", seed=2),
    # shortest and odd lengths
    Case("en_5_url_only_cta", "en", 5, "16:9", "Q", "Q1", "https://q.example/?a=1&b=2&c=3"),
    Case("ko_5_long_cta", "ko", 5, "1:1", "가나다", "라마바사 아자차카 타파하 🎉",
         "지금 바로 https://ganada.example/event?ref=ad 에서 010-9876-5432 로 문의하세요 🎉"),
    Case("en_7_5", "en", 7.5, "9:16", "Acme", "RoboVac X2", "Order at acme.com — 2 for $300", seed=9),
]

# rendered in a real ComfyUI too: three languages, 5 s to 180 s, every aspect, a URL and emoji
RENDERED = ("issue12_ko_coldbrew", "en_price", "en_180", "ko_5_long_cta", "es_email_url")


def workflow(case: Case, index: int) -> dict:
    prompt = copy.deepcopy(load_api_workflow("brief_to_ad.json"))
    _, b = node_by_type(prompt, "BrandBrief")
    b["inputs"].update(brand=case.brand, product=case.product, cta=case.cta, audience=case.audience,
                       duration_seconds=float(case.duration), aspect_ratio=case.aspect, language=case.language,
                       goal="", channels="")
    _, s = node_by_type(prompt, "ScriptLLM")
    s["inputs"].update(backend="template", seed=case.seed)
    _, sp = node_by_type(prompt, "StoryboardSplit")
    sp["inputs"].update(fps=str(FPS), resolution=RESOLUTION)
    _, asm = node_by_type(prompt, "FFmpegAssemble")
    asm["inputs"].update(preset="ultrafast", subtitles="sidecar only", filename_prefix=f"AdReel/corpus_{index:02d}")
    asm["inputs"].pop("music", None)  # narration only: the voice is all there is to hear
    music_id, _ = node_by_type(prompt, "MusicBed")
    del prompt[music_id]
    return prompt


def brief_of(prompt: dict) -> Brief:
    """The brief BrandBrief makes of the workflow's widgets (tone, colours … as shipped)."""
    _, b = node_by_type(prompt, "BrandBrief")
    i = b["inputs"]
    return Brief(brand=i["brand"], product=i["product"], audience=i["audience"], goal=i["goal"],
                 duration_seconds=i["duration_seconds"], tone=i["tone"], aspect_ratio=i["aspect_ratio"],
                 language=i["language"], brand_colors=i["brand_colors"], cta=i["cta"], channels=[])


def expected_storyboard(case: Case):
    """The storyboard StoryboardSplit shows for the case, planned here from the brief."""
    b = brief_of(workflow(case, 0))
    return build_storyboard(b, write_template_script(b, case.seed), fps=FPS, resolution=RESOLUTION)


@pytest.fixture(scope="module", autouse=True)
def queued(request):
    """The rendered cases, queued when the module starts (when this run includes their test), so ComfyUI
    renders them while the engine checks run here: prompt ids by case name."""
    if not any(item.module is request.module and "rendered" in item.fixturenames for item in request.session.items):
        return {}
    comfy = request.getfixturevalue("comfy")
    return {c.name: comfy.queue(workflow(c, i)) for i, c in enumerate(CASES) if c.name in RENDERED}


@pytest.fixture(scope="module")
def rendered(comfy, queued):
    """Each rendered case's MP4 path, or the error."""
    out = {}
    for i, case in enumerate(CASES):
        if case.name not in queued:
            continue
        try:
            entry = comfy.wait(queued[case.name], timeout=1200)
            asm_id, _ = node_by_type(workflow(case, i), "FFmpegAssemble")
            items = entry["outputs"][asm_id]["images"]
            out[case.name] = os.path.join(comfy.folder("output"), items[0]["subfolder"], items[0]["filename"])
        except (PromptError, KeyError, IndexError) as e:
            out[case.name] = e
    return out


def spoken(case: Case, plan):
    """Each scene's line as SceneNarration says it (its defaults: the language's voice, fitted to the
    scene), trimmed as FFmpegAssemble trims it."""
    speaker = voice_for("auto", case.language, DEFAULT_RATE_WPM)
    clips = []
    for sc in plan.scenes:
        fit = speak_line(sc.narration, case.language, speaker, sc.frame_count / plan.fps, fit=True)
        clips.append(AudioClip.mono(fit.speech.samples, fit.speech.sample_rate).trimmed())
    return clips


def voice_activity(x: np.ndarray) -> np.ndarray:
    n = int(SR * WINDOW)
    frames = x[: len(x) // n * n].reshape(-1, n)
    return np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1)) > VOICE_RMS


def active(act: np.ndarray, a: float, b: float) -> np.ndarray:
    return act[max(0, int(a / WINDOW)): max(0, int(np.ceil(b / WINDOW)))]


def test_the_corpus_covers_what_marketers_write():
    langs = {c.language for c in CASES}
    assert len(CASES) >= 40 and {"ko", "en", "es"} <= langs
    assert {c.aspect for c in CASES} == {"9:16", "1:1", "16:9"}
    assert min(c.duration for c in CASES) == 5 and max(c.duration for c in CASES) == 180
    text = " ".join(c.product + " " + c.cta for c in CASES)
    for needle in ("$", "%", "1+1", "@", "https://", "?", "\\", '"', "🎉", "010-", "2026-"):
        assert needle in text, needle
    assert any(len(c.brand) >= 60 for c in CASES) and any(len(c.product) >= 150 for c in CASES)
    for c in CASES:
        c.brief()  # BrandBrief accepts every one


def assert_narration_fits(act: np.ndarray, plan, case: Case) -> None:
    """Voice activity (``WINDOW`` s windows) against the storyboard's scenes: heard in the scenes that
    have a line, silent around every scene boundary (the voice ends a breath before its scene does),
    silent where no line is."""
    total = case.duration
    spoken_scenes = 0
    for sc in plan.scenes:
        start, end = sc.start_frame / FPS, (sc.start_frame + sc.frame_count) / FPS
        tail = active(act, end - 0.15, min(end + 0.05, total))
        assert not tail.any(), (f"scene {sc.index} ({start:.2f}-{end:.2f} s): voice at its end "
                                f"({np.flatnonzero(tail).size * WINDOW:.2f} s heard in the last 0.15 s)")
        inside = active(act, start + 0.05, end - 0.15)
        if sc.narration.strip() and any(ch.isalnum() for ch in sc.narration):
            spoken_scenes += 1
            assert inside.sum() * WINDOW >= 0.2, f"scene {sc.index}: its line {sc.narration!r} is not heard"
            assert not active(act, start, start + 0.05).any(), f"scene {sc.index}: voice before its lead-in"
        else:
            assert not active(act, start + 0.05, end).any(), f"scene {sc.index} has no line but voice is heard"
    assert spoken_scenes >= 1, "an ad with no narration at all"


def assert_subtitles_as_written(srt_text: str) -> None:
    """Subtitles keep what was written, with URLs shortened to host and path."""
    assert "utm" not in srt_text and "ref=ad" not in srt_text and "https://" not in srt_text


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_brief_becomes_an_ad_whose_narration_fits(case, tmp_path):
    plan = expected_storyboard(case)
    # the asked length and aspect
    assert plan.total_frames == round(case.duration * FPS) and plan.total_duration == pytest.approx(case.duration)
    assert (plan.width, plan.height) == output_size(case.aspect, RESOLUTION)
    # what the user wrote is kept on screen, as written (the brand may join the CTA's card)
    assert plan.scenes[-1].on_screen_text.startswith(case.cta)

    # the voice fits the scenes the user saw in StoryboardSplit: the assembler has nothing to retime
    speech = spoken(case, plan)
    retimed = retime_for_narration(plan, [c.duration for c in speech])
    assert [(s.start_frame, s.frame_count) for s in retimed.scenes] == \
        [(s.start_frame, s.frame_count) for s in plan.scenes]

    # the narration track the assembler mixes, measured
    track, spans = narration_track(retimed, speech, LEAD_IN_SECONDS)
    assert len(track) == round(case.duration * SR)
    assert_narration_fits(voice_activity(track), plan, case)

    # the .srt sidecar the assembler writes
    srt = tmp_path / "ad.srt"
    write_srt(subtitle_cues(retimed, spans), str(srt))
    assert_subtitles_as_written(srt.read_text(encoding="utf-8"))


@pytest.mark.comfy
@pytest.mark.parametrize("name", RENDERED)
def test_rendered_briefs_last_their_length_and_their_narration_fits(rendered, name):
    case = next(c for c in CASES if c.name == name)
    path = rendered[case.name]
    assert not isinstance(path, Exception), f"{case.name} did not render: {path}"
    plan = expected_storyboard(case)

    # the asked length and aspect, from the file
    info = ffprobe(path)
    v, a = stream(info, "video"), stream(info, "audio")
    for d in (info["format"]["duration"], v["duration"], a["duration"]):
        assert abs(float(d) - case.duration) <= 0.1, (d, case.duration)
    assert (v["width"], v["height"]) == output_size(case.aspect, RESOLUTION)

    # the scenes the user saw in StoryboardSplit are the scenes rendered: nothing had to be retimed
    manifest = json.load(open(os.path.splitext(path)[0] + ".json", encoding="utf-8"))
    timed = [(s["start_frame"], s["frame_count"]) for s in manifest["storyboard"]["scenes"]]
    assert timed == [(s.start_frame, s.frame_count) for s in plan.scenes]
    assert manifest["storyboard"]["scenes"][-1]["on_screen_text"].startswith(case.cta)

    # the narration, measured from the decoded audio of the MP4
    assert_narration_fits(voice_activity(decode_audio(path, SR)), plan, case)

    srt = os.path.splitext(path)[0] + ".srt"
    assert os.path.exists(srt), "no .srt sidecar"
    assert_subtitles_as_written(open(srt, encoding="utf-8").read())


def test_the_rendered_briefs_cover_every_aspect_language_and_the_extreme_lengths():
    rendered = [c for c in CASES if c.name in RENDERED]
    assert len(rendered) == len(RENDERED)
    assert {c.aspect for c in rendered} == {"9:16", "1:1", "16:9"}
    assert {c.language for c in rendered} == {"ko", "en", "es"}
    assert {5, 180} <= {c.duration for c in rendered}


@pytest.mark.comfy
def test_an_edited_line_that_cannot_fit_fails_before_anything_renders(comfy):
    case = CASES[1]
    prompt = workflow(case, 99)
    b = case.brief()
    script = json.loads(write_template_script(b, case.seed).model_dump_json())
    script["scenes"][0]["narration"] = ("Call 1796190515 now, or 1796190516, or visit https://acme.example/a?b=c "
                                        "and tell us what you think of RoboVac X2 from Acme. ") * 2
    _, s = node_by_type(prompt, "ScriptLLM")
    s["inputs"]["edited_script"] = json.dumps(script)
    before = set(os.listdir(os.path.join(comfy.folder("output"), "AdReel"))) \
        if os.path.isdir(os.path.join(comfy.folder("output"), "AdReel")) else set()
    with pytest.raises(PromptError) as exc:
        comfy.run(prompt, timeout=300)
    msg = str(exc.value)
    assert "(ScriptLLM)" in msg and "edited_script.scenes[0].narration" in msg and "scene 0" in msg
    assert " s to say (measured with Piper en_US-joe-medium" in msg and "shorten it by" in msg
    after = set(os.listdir(os.path.join(comfy.folder("output"), "AdReel"))) \
        if os.path.isdir(os.path.join(comfy.folder("output"), "AdReel")) else set()
    assert not {f for f in after - before if f.startswith("corpus_99")}, "something was rendered"
    assert comfy.alive()
