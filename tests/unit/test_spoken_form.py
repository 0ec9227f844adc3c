"""The spoken form of narration, checked against what espeak-ng actually says.

For each rule and language, the voice saying AdReel's spoken form of a written
line must say what a person reading it aloud says: the same phonemes (from
espeak-ng itself, ``-x``) and the same length of synthesised audio. Where the
voice left to itself says something else (an emoji's name, a query string,
"one billion seven hundred …" for a phone number, "backslash"), the audio of
the written text is measurably longer than the spoken form's.
"""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from nodes.engine.models import AdReelInputError, Brief
from nodes.engine.audio.narration import espeak_voice, speak_espeak
from nodes.engine.script import write_template_script
from nodes.engine.script.generate import bar_for, parse_edited_script
from nodes.engine.script.plan import plan_for
from nodes.engine.speech.fit import (BREATH_SECONDS, LEAD_IN_SECONDS, fit_speed, narration_fits, speak_line,
                                     speech_room)
from nodes.engine.speech.spoken import display_form, spoken_form
from nodes.engine.speech.voice import (CloudVoice, EspeakVoice, EstimateVoice, default_voice, estimate_seconds,
                                       voice_for)
from nodes.engine.storyboard import build_storyboard, retime_for_narration

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def phonemes(text: str, lang: str) -> str:
    """What espeak-ng says for ``text``: its phoneme transcription, clause breaks as spaces."""
    out = subprocess.run(["espeak-ng", "-q", "-x", "-v", espeak_voice(lang), text], capture_output=True,
                         text=True, check=True).stdout
    return " ".join(out.split())


def seconds(text: str, lang: str) -> float:
    return speak_espeak(text, lang).duration


# (language, what the user wrote, what a person reads aloud, whether espeak-ng alone says more)
RULES = [
    # numbers, prices, percentages, offers
    ("en", "Only 3 left", "Only three left", False),
    ("en", "Now $19.99", "Now nineteen dollars ninety-nine", False),
    ("en", "Just €5 or £1.50", "Just five euros or one pound fifty", False),
    ("en", "Up to 70% off", "Up to seventy percent off", False),
    ("en", "1+1 on every order", "one plus one on every order", False),
    ("en", "Over 1,000,000 users", "Over one million users", False),
    ("ko", "단돈 19,900원", "단돈 만 구천구백 원", False),
    ("ko", "최대 70% 할인", "최대 칠십 퍼센트 할인", False),
    ("ko", "1+1 이벤트", "원 플러스 원 이벤트", False),
    ("ko", "주말 특가 2+1", "주말 특가 투 플러스 원", False),
    ("ko", "해외직구 $19.99", "해외직구 십구 달러 구십구 센트", False),
    ("ko", "크루아상 3개와 커피 2잔", "크루아상 세 개와 커피 두 잔", False),
    ("es", "Solo 50% hoy", "Solo 50 por ciento hoy", False),
    ("es", "Pizza 1+1", "Pizza 1 más 1", False),
    # dates and times
    ("en", "Sale ends 2026-12-31", "Sale ends December thirty-first, twenty twenty-six", True),
    ("en", "Only on 12/25", "Only on December twenty-fifth", True),
    ("en", "Doors open at 7:30pm", "Doors open at seven thirty P M", False),
    ("ko", "2026.03.01 오픈", "이천이십육년 삼월 일일 오픈", False),
    ("ko", "6월 10일까지", "유월 십 일까지", False),
    ("ko", "오후 3시까지", "오후 세 시까지", False),
    # phone numbers and long digit runs
    ("en", "Order now — 1796190515", "Order now, one seven nine, six one nine, zero five one five", True),
    ("en", "Call +1 (555) 123-4567", "Call plus one, five five five, one two three, four five six seven", True),
    ("ko", "010-1234-5678로 전화주세요", "공일공, 일이삼사, 오육칠팔 로 전화주세요", True),
    ("ko", "상담 1588-1234", "상담 일오팔팔, 일이삼사", True),
    ("es", "Llama al 612 345 678", "Llama al 6 1 2, 3 4 5, 6 7 8", True),
    # URLs and e-mail: a domain as a domain, never a query string
    ("en", "Shop now at acme.com", "Shop now at acme dot com", False),
    ("en", "Visit https://shop.acme.example/sale?utm_source=tiktok&utm_medium=paid#top",
     "Visit shop dot acme dot example", True),
    ("en", "Write to orders@acme.com", "Write to orders at acme dot com", False),
    ("ko", "https://k.example/event?ref=ad&utm=1", "k 닷 example", True),
    ("ko", "문의: help@smartrental.co.kr", "문의, help 골뱅이 smartrental 닷 co 닷 kr", False),
    ("es", "Visita https://libreria.example/faro?utm=ig", "Visita libreria punto example", True),
    ("de", "Jetzt auf www.acme.de/angebot?x=1", "Jetzt auf acme Punkt de", True),
    # symbols and emoji
    ("en", "Party time 🎉🔥", "Party time", True),
    ("en", 'Get "50% off": C:\\deals\\', "Get fifty percent off, C, deals", True),
    ("en", "Salt & Pepper", "Salt and Pepper", False),
    ("en", "The #1 pick", "The number one pick", False),
    ("ko", '콜드브루 "Night Shift" 50% — 오늘만: 1+1 \\ 🎉', "콜드브루 Night Shift 오십 퍼센트, 오늘만, 원 플러스 원", True),
    ("ko", "지금 주문 🎉🎉", "지금 주문", False),
    ("es", "¡Apúntate ya! 🎉", "¡Apúntate ya!", True),
    ("fr", "Soldes -50% 🎉", "Soldes, 50 pour cent", False),
]


@pytest.mark.parametrize("lang,written,reading,voice_alone_says_more", RULES,
                         ids=[f"{r[0]}:{r[1][:28]}" for r in RULES])
def test_the_voice_says_what_a_reader_says(lang, written, reading, voice_alone_says_more):
    spoken = spoken_form(written, lang)
    assert phonemes(spoken, lang) == phonemes(reading, lang), (spoken, reading)
    said, read = seconds(spoken, lang), seconds(reading, lang)
    assert abs(said - read) <= max(0.15, 0.08 * read), (said, read)
    if voice_alone_says_more:
        assert seconds(written, lang) >= said + 0.3, "espeak-ng alone says no more than the spoken form"


def test_emoji_and_pictographs_alone_say_nothing():
    for lang in ("en", "ko", "es", "sw"):
        assert spoken_form("🎉🔥✨👍🏽 ™ ®", lang) == ""
    assert speak_line("🎉🎉🎉", "en", EspeakVoice("en"), 3.0).speech.duration == 0.0


def test_every_espeak_language_gets_the_structural_rules():
    """A language without its own words (Swahili here): no emoji, no query string, no quotes or
    backslashes; phone numbers digit by digit; symbols left for the voice to say in its language."""
    s = spoken_form('Piga 0712 345 678 au tembelea https://duka.example/ofa?utm=x "leo" \\ 🎉 50%', "sw")
    assert "utm" not in s and "🎉" not in s and '"' not in s and "\\" not in s and "https" not in s
    assert "0 7 1 2, 3 4 5, 6 7 8" in s and "duka.example" in s and "50%" in s
    assert seconds(s, "sw") < seconds('Piga 0712 345 678 au tembelea https://duka.example/ofa?utm=x "leo" \\ 🎉 50%',
                                      "sw") - 1.0


def test_subtitles_keep_the_text_and_shorten_urls():
    assert display_form("Visit https://k.example/event?ref=ad&utm=1.") == "Visit k.example/event."
    assert display_form("www.acme.com/?x=1 now") == "acme.com now"
    text = 'Get "50% off": C:\\deals\\ 🎉 1+1'
    assert display_form(text) == text


# ------------------------------------------------------------------ one measure everywhere
ISSUE_BRIEFS = [
    dict(brand="카페온", product='콜드브루 "Night Shift" 50% — 오늘만: 1+1 \\ 🎉', cta="지금 주문하세요", language="ko",
         duration_seconds=20),
    dict(brand="Acme", product="RoboVac X2", cta="Order now — 1796190515", language="en", duration_seconds=8),
    dict(brand="케이마켓", product="1+1 이벤트 🎉 100% 환불 보장", cta="https://k.example/event?ref=ad&utm=1",
         language="ko", duration_seconds=20),
]


@pytest.mark.parametrize("kw", ISSUE_BRIEFS, ids=["ko_coldbrew", "en_phone_cta", "ko_url_cta"])
def test_the_bar_the_narration_node_and_the_assembler_agree(kw):
    """The issue's three briefs: the template's script passes the bar; each scene's audio, spoken
    as SceneNarration speaks it, fits its scene; the assembler needs no retiming."""
    b = Brief(**kw)
    script = write_template_script(b, seed=0)
    assert bar_for(b).check(script) == []
    sb = build_storyboard(b, script, fps=24)
    voice = voice_for("auto", b.language)  # SceneNarration's default: Piper for English, espeak-ng for Korean
    durations = []
    for sc in sb.scenes:
        fit = speak_line(sc.narration, b.language, voice, sc.frame_count / sb.fps)
        assert fit.fits and fit.speed <= voice.speed_for_pace(1.15) + 1e-9, (sc.index, fit.speech.duration, fit.room)
        durations.append(fit.speech.duration)
        assert fit.speech.duration + LEAD_IN_SECONDS + BREATH_SECONDS < sc.frame_count / sb.fps
    assert any(durations)
    timed = retime_for_narration(sb, durations)
    assert [(s.start_frame, s.frame_count) for s in timed.scenes] == [(s.start_frame, s.frame_count) for s in sb.scenes]


def test_the_template_never_writes_what_it_cannot_say():
    """Short ads, long names, numbers everywhere, in three languages: every template script passes."""
    products = ["RoboVac X2", '콜드브루 "Night Shift" 50% — 오늘만: 1+1 \\ 🎉', "A" * 60 + " 2026-12-31 $19.99 🎉",
                "Ultra Premium Deluxe Robotic Vacuum Cleaner X2000 Pro Max with Self-Emptying Dock and "
                "HEPA-13 Filter, 5,000 Pa Suction, 180-Minute Battery (2026 Edition)"]
    ctas = ["Shop now", "Call +1 (555) 123-4567 or visit https://acme.example.com/deals?utm=x&ref=y",
            "지금 010-1234-5678로 전화주세요 🎉", "Escríbenos a hola@libreria.example"]
    for lang in ("en", "ko", "es"):
        for duration in (0.5, 3, 5, 8, 12.3):
            for i, (product, cta) in enumerate(zip(products, ctas)):
                b = Brief(brand="The Extraordinarily Long Brand Name Company" if i % 2 else "Acme", product=product,
                          cta=cta, language=lang, duration_seconds=duration)
                s = write_template_script(b, seed=i)
                issues = [str(x) for x in bar_for(b).check(s) if "write it in" not in str(x)]
                assert issues == [], (lang, duration, product, cta, issues)


def test_a_scene_without_narration_lends_its_time_before_anything_is_cut():
    """8 s, a CTA that takes over 4 s to say with espeak-ng (which reads digits slowly): the hook gives
    the CTA its time; the CTA is said in full."""
    espeak = EspeakVoice("en")
    b = Brief(brand="Acme", product="RoboVac X2", cta="Order now — 1796190515", duration_seconds=8)
    s = write_template_script(b, seed=0, voice=espeak)
    plain = write_template_script(Brief(brand="Acme", product="RoboVac X2", cta="Shop now", duration_seconds=8),
                                  seed=0, voice=espeak)
    assert "1796190515" in s.scenes[-1].narration
    assert s.scenes[-1].duration > plain.scenes[-1].duration + 0.5
    said = espeak.measure(spoken_form(s.scenes[-1].narration, "en"))
    assert said <= speech_room(s.scenes[-1].duration)


def test_a_brief_too_short_to_say_it_all_drops_optional_lines_and_shows_the_names():
    b = Brief(brand="The Extraordinarily Long Brand Name Company", product="Ultra Deluxe Robot X2000 Pro Max",
              cta="Call +1 (555) 123-4567 or visit https://acme.example.com", duration_seconds=3)
    s = write_template_script(b, seed=0)
    assert bar_for(b).check(s) == []
    screen = " ".join(sc.on_screen_text for sc in s.scenes)
    assert b.brand in screen + " ".join(sc.narration for sc in s.scenes) and b.product in screen
    assert s.scenes[-1].on_screen_text.startswith(b.cta)


def test_an_llm_line_that_does_not_fit_is_sent_back_with_the_scene_and_the_measured_seconds():
    b = Brief(brand="Acme", product="RoboVac X2", cta="Shop now", duration_seconds=10)
    s = write_template_script(b, seed=0).model_copy(deep=True)
    s.scenes[1].narration = "Call 1796190515 today and hear all about RoboVac X2, the vacuum that does it all."
    (issue,) = [i for i in bar_for(b).check(s) if i.field == "scenes[1].narration"]
    voice = default_voice("en")
    measured = voice.measure(spoken_form(s.scenes[1].narration, "en"))
    assert "scene 1" in issue.message and f"{measured:.1f} s to say (measured with {voice.describe()}" in issue.message
    assert f"lasts {s.scenes[1].duration:.2f} s" in issue.message and "shorten it by" in issue.message


def test_an_edited_line_that_cannot_fit_names_the_scene_and_the_seconds():
    b = Brief(brand="Acme", product="RoboVac X2", cta="Shop now", duration_seconds=8)
    data = write_template_script(b, seed=0).model_dump()
    data["scenes"][0]["narration"] = "Call 1796190515 or 1796190516 or 1796190517 now for RoboVac X2, from Acme."
    import json
    with pytest.raises(AdReelInputError) as exc:
        parse_edited_script(json.dumps(data), b, plan_for(b))
    assert exc.value.field == "edited_script.scenes[0].narration"
    msg = str(exc.value)
    measured = default_voice("en").measure(spoken_form(data["scenes"][0]["narration"], "en"))
    assert "scene 0" in msg and f"{measured:.1f} s to say" in msg and "shorten it by" in msg


def test_a_line_a_little_long_is_said_a_little_faster_by_the_bar_and_the_node_alike():
    voice = EspeakVoice("en")
    line = "Shop now at acme dot com"
    need = voice.measure(line)
    scene = need + 0.45 - 0.1  # 0.1 s too little room at the normal pace
    speed = fit_speed(voice, line, speech_room(scene), 1.15)
    assert speed is not None and 1.0 < speed <= 1.15
    assert narration_fits("Shop now at acme.com", "en", scene)
    fit = speak_line("Shop now at acme.com", "en", voice, scene)
    assert fit.fits and fit.speech.duration <= speech_room(scene) and fit.speed >= speed - 1e-9
    assert not narration_fits("Shop now at acme.com", "en", need * 0.7)


def test_the_estimate_errs_long_against_the_voice():
    """The estimate (cloud voices, a machine without espeak-ng) is never shorter than espeak-ng."""
    lines = [(lang, spoken_form(w, lang)) for lang, w, _, _ in RULES if spoken_form(w, lang)]
    for lang in ("en", "ko", "es"):
        b = Brief(brand="Acme", product="RoboVac X2", cta="Shop now", language=lang, duration_seconds=60)
        lines += [(lang, spoken_form(sc.narration, lang)) for sc in write_template_script(b, 1).scenes if sc.narration]
    for lang, line in lines:
        assert estimate_seconds(line, lang) >= EspeakVoice(lang).measure(line), (lang, line)
    assert EstimateVoice("en").measured is False and CloudVoice("openai", "en").measured is False


def test_measuring_is_cached_and_fast():
    voice = EspeakVoice("ko")
    line = "캐시 확인용 문장입니다 " + str(np.random.default_rng().integers(1e9))
    first = voice.measure(line)
    assert voice.measure(line) == first and first > 0.5


def test_the_default_voice_is_the_narration_node_default():
    """ScriptLLM's bar measures with default_voice; SceneNarration's default backend is auto."""
    from nodes.engine.speech.piper_voice import PiperVoice, piper_available
    assert default_voice("ko").key == voice_for("auto", "ko").key == voice_for("espeak-ng", "ko").key
    assert default_voice("en").key == voice_for("auto", "en").key
    assert isinstance(default_voice("en"), PiperVoice if piper_available() else EspeakVoice)
    assert isinstance(default_voice("zz"), EstimateVoice)  # no voice for it: the estimate, no crash


def test_a_cloud_voice_gets_the_spoken_form_and_is_asked_again_faster_when_it_overruns(monkeypatch):
    """OpenAI TTS (a fake that follows the contract and speaks with espeak-ng): the request carries
    the spoken form — no query string, no emoji — and an overrun is asked for again at a higher speed."""
    from fakes.tts_servers import FakeTTS
    key = "sk-test-Zq8mN4vR7tLp2xWc"
    with FakeTTS(key) as fake:
        monkeypatch.setenv("OPENAI_API_KEY", key)
        monkeypatch.setenv("OPENAI_BASE_URL", fake.url + "/v1")
        voice = voice_for("openai", "en")
        line = "Shop now at https://acme.example/sale?utm=ad&ref=1 🎉"
        fit = speak_line(line, "en", voice, 6.0)
        assert [r["body"]["input"] for r in fake.requests] == ["Shop now at acme dot example"]
        assert fit.fits and fake.requests[0]["body"]["speed"] == 1.0
        long_line = "This sentence is far too long to be spoken in the two seconds this scene allows, 1796190515."
        fake.requests.clear()
        speak_line(long_line, "en", voice, 2.0)
        speeds = [r["body"]["speed"] for r in fake.requests]
        assert speeds[-1] > 1.0 and all("1796190515" not in r["body"]["input"] for r in fake.requests)
