"""Brand kits and BrandKnowledge in the engine: a kit file checked field by field (hostile names, paths,
sizes, JSON and types refused, naming the field); the kit's rules in the script stage (a banned word in an
LLM answer repaired, naming the word, against the contract-faithful fake; the template honouring the kit
when the repair fails); the brand's documents (Markdown, text, PDF) indexed with BM25, Korean included, and
the relevant passage reaching the LLM within the context budget.

The kit applied to a real render (palette, logo, voice, CTA) and the HTTP routes are
tests/integration/test_brand_kit_workflow.py.
"""
from __future__ import annotations

import asyncio
import json
import os
import zlib

import pytest

from nodes.engine.brand.apply import brief_values, rules_for
from nodes.engine.brand.kit import (MAX_KIT_BYTES, BrandKit, kit_file, list_kits, load_kit, parse_kit, save_kit,
                                    voice_settings)
from nodes.engine.brand.knowledge import brief_query, knowledge_for, read_knowledge, split_passages, tokens
from nodes.engine.models import AdReelInputError, Brief
from nodes.engine.script import write_template_script
from nodes.engine.script.context import estimate_messages
from nodes.engine.script.generate import bar_for, generate_script
from nodes.engine.script.llm import ScriptOptions
from nodes.engine.script.openai_backend import OpenAIBackend

EN = dict(brand="Acme", product="RoboVac X2", cta="Shop now at acme.com", audience="busy parents",
          duration_seconds=15)


@pytest.fixture(autouse=True)
def loopback_llms_allowed(monkeypatch):
    monkeypatch.setenv("ADREEL_LLM_ALLOWED_HOSTS", "127.0.0.1")


def llm(fake, **kw) -> OpenAIBackend:
    return OpenAIBackend("local-model", fake.url + "/v1", "none", timeout=10, **kw)


def kit_brief(kit: BrandKit, passages=(), **over) -> Brief:
    values = brief_values({**EN, **over}, kit, "Shop now at acme.com")
    return Brief(**values, brand_kit=rules_for(kit, passages=list(passages)))


def answer_saying(b: Brief, index: int, narration: str) -> str:
    data = json.loads(write_template_script(b.model_copy(update={"brand_kit": None}), seed=3)
                      .model_dump_json(include={"title", "scenes"}))
    for sc in data["scenes"]:  # the LLM's shape: a duration, no times or index
        sc["duration"] = round(sc.pop("end") - sc.pop("start"), 3)
        sc.pop("index")
    data["scenes"][index]["narration"] = narration
    return json.dumps(data, ensure_ascii=False)


def all_text(script) -> str:
    return " ".join(f"{sc.on_screen_text} {sc.narration}" for sc in script.scenes).casefold()


# ------------------------------------------------------------------ the kit file
def test_a_kit_round_trips_through_its_folder(tmp_path):
    kit = BrandKit(name="Acme", palette=["#112233", "c0ffee"], logo="logo.png", fonts=["DejaVu Sans"],
                   voice="espeak-ng", tone="warm", cta="Order at acme.com", words_never=["cheap"],
                   legal_lines=["Terms apply."])
    save_kit(str(tmp_path), kit)
    assert json.loads((tmp_path / "Acme" / "brand.json").read_text())["palette"] == ["#112233", "#C0FFEE"]
    assert list_kits([str(tmp_path)]) == ["Acme"]
    loaded, folder = load_kit([str(tmp_path)], "Acme")
    assert loaded == kit.model_copy(update={"palette": ["#112233", "#C0FFEE"]}) and folder.endswith("Acme")
    assert voice_settings("espeak-ng")["backend"] == "espeak-ng"
    assert voice_settings("piper:en_US-joe-medium") == {"backend": "piper", "voice": "",
                                                         "piper_voice": "en_US-joe-medium"}
    assert BrandKit(name="커피하우스").name == "커피하우스"  # a Korean brand name is a plain name


@pytest.mark.parametrize("raw, field", [
    (b'{"name": "Acme", "logo": "../../etc/passwd"}', "brand_kit.logo"),
    (b'{"name": "Acme", "logo": "/etc/passwd"}', "brand_kit.logo"),
    (b'{"name": "Acme", "music": "input/../secrets.json"}', "brand_kit.music"),
    (b'{"name": "Acme", "fonts": ["sub/dir/font.ttf"]}', "brand_kit.fonts"),
    (b'{"name": "Acme", "palette": "red"}', "brand_kit.palette"),
    (b'{"name": "Acme", "palette": ["#12345G"]}', "brand_kit.palette.0"),
    (b'{"name": "Acme", "words_never": 5}', "brand_kit.words_never"),
    (b'{"name": "Acme", "cta": {"a": 1}}', "brand_kit.cta"),
    (b'{"name": "Acme", "voice": "festival"}', "brand_kit.voice"),
    (b'{"name": "Acme", "colour": "#112233"}', "brand_kit.colour"),
    (b'{"name": "Acme", "legal_lines": ["a", "b", "c", "d"]}', "brand_kit.legal_lines"),
    (b'{"name": "Acme"', "brand_kit"),
    (b'["Acme"]', "brand_kit"),
    (b'\xff\xfe{}', "brand_kit"),
    (b"[" * 100000, "brand_kit"),
    (b'{"name": "Acme", "tone": "' + b"x" * MAX_KIT_BYTES + b'"}', "brand_kit"),
    (b'{"name": "Other"}', "brand_kit.name"),
])
def test_hostile_kits_are_refused_naming_the_field(raw, field):
    with pytest.raises(AdReelInputError) as err:
        parse_kit(raw, "Acme")
    assert err.value.field == field
    assert "passwd" not in str(err.value) and "secrets" not in str(err.value)  # what was sent is not repeated


@pytest.mark.parametrize("name", ["../Acme", "..", ".hidden", "a/b", "a\\b", "", " ", "x" * 65, "Acme\x00",
                                  "Acme\n", "Acme."])
def test_hostile_kit_names_are_refused(tmp_path, name):
    with pytest.raises(AdReelInputError) as err:
        load_kit([str(tmp_path)], name)
    assert err.value.field == "brand"
    with pytest.raises((AdReelInputError, ValueError)):
        save_kit(str(tmp_path), BrandKit.model_construct(name=name))
    assert list(tmp_path.iterdir()) == []


def test_a_kit_file_leads_nowhere_outside_its_folder(tmp_path):
    root = tmp_path / "brands"
    (root / "Acme").mkdir(parents=True)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not yours")
    os.symlink(secret, root / "Acme" / "logo.png")
    with pytest.raises(AdReelInputError) as err:
        kit_file(str(root / "Acme"), "logo.png", str(tmp_path / "input"), "brand_kit.logo")
    assert err.value.field == "brand_kit.logo"
    # a kit file over the size cap on disk is refused too, reading no more than the cap
    (root / "Acme" / "brand.json").write_bytes(b'{"name": "Acme", "tone": "' + b"x" * (2 * MAX_KIT_BYTES) + b'"}')
    with pytest.raises(AdReelInputError, match="at most 65536 bytes"):
        load_kit([str(root)], "Acme")
    assert list_kits([str(root)]) == ["Acme"] and load_kit.__name__  # still listed: the error says what to fix


def test_the_kit_fills_the_brief_by_one_rule():
    kit = BrandKit(name="Acme", palette=["#0A7E3D"], tone="calm", cta="Book a demo at acme.com",
                   words_never=["cheap"])
    b = kit_brief(kit)  # cta left at the widget's default: the kit's
    assert (b.brand_colors, b.tone, b.cta) == (["#0A7E3D"], "calm", "Book a demo at acme.com")
    typed = kit_brief(kit, cta="Order now — ₩12,900")  # a cta typed or linked (ProductPage's) wins
    assert typed.cta == "Order now — ₩12,900" and typed.brand_colors == ["#0A7E3D"]
    with pytest.raises(AdReelInputError) as err:
        kit_brief(kit, product="Cheap Vac")
    assert err.value.field == "product" and '"cheap"' in str(err.value)


# ------------------------------------------------------------------ the rules in the script stage
def test_a_banned_word_in_the_llm_answer_is_repaired_naming_the_word(oai):
    kit = BrandKit(name="Acme", words_never=["miracle"])
    b = kit_brief(kit)
    oai.script(answer_saying(b, 2, "A miracle for busy parents."))  # then PlanModel answers the repair
    gen = asyncio.run(generate_script(b, llm(oai, context_size=8192), ScriptOptions(seed=3)))
    sent = [r.body for r in oai.chats()]
    assert len(sent) == 2
    assert "Never use these words anywhere in narration or on_screen_text: miracle." in \
        sent[0]["messages"][1]["content"]
    repair = sent[1]["messages"][-1]["content"]
    assert 'scenes[2].narration: uses "miracle", a word the brand never uses (brand kit Acme)' in repair
    assert not gen.fell_back and "miracle" not in all_text(gen.script)
    assert any('uses "miracle"' in n for n in gen.script.notes)


def test_when_the_repair_fails_the_template_honours_the_kit(oai):
    kit = BrandKit(name="Acme", words_never=["trust", "thousands", "changes"],
                   legal_lines=["Terms apply. See acme.com/terms"])
    b = kit_brief(kit)
    oai.model = lambda body: answer_saying(b, 1, "Thousands trust Acme.")  # never learns
    gen = asyncio.run(generate_script(b, llm(oai, context_size=8192), ScriptOptions(seed=3, max_attempts=2)))
    assert gen.fell_back and "a word the brand never uses (brand kit Acme)" in gen.reason
    repair = oai.chats()[1].body["messages"][-1]["content"]
    assert 'leaves out the required legal line "Terms apply. See acme.com/terms"' in repair
    text = all_text(gen.script)
    assert not any(w in text for w in ("trust", "thousands", "changes"))
    assert "terms apply. see acme.com/terms" in gen.script.scenes[-1].on_screen_text.casefold()
    assert b.cta.casefold() in gen.script.scenes[-1].on_screen_text.casefold()
    assert bar_for(b).check(gen.script) == []
    # every seed: the template never writes a banned word and always shows the legal line
    for seed in range(6):
        s = write_template_script(b, seed=seed)
        assert not any(w in all_text(s) for w in ("trust", "thousands", "changes")), seed
        assert bar_for(b).check(s) == [], seed


def test_korean_banned_words_match_inside_a_word_with_its_particle():
    kit = BrandKit(name="한빛커피", words_never=["최저가"])
    b = kit_brief(kit, brand="한빛커피", product="콜드브루", cta="지금 주문하세요", language="ko", audience="직장인")
    s = write_template_script(b, seed=1)
    bad = s.model_copy(update={"scenes": [s.scenes[0].model_copy(update={"narration": "최저가로 만나는 콜드브루."}),
                                          *s.scenes[1:]]})
    issues = [str(i) for i in bar_for(b).check(bad)]
    assert any(i.startswith('scenes[0].narration: uses "최저가"') for i in issues), issues


# ------------------------------------------------------------------ BrandKnowledge
def tiny_pdf(text: str) -> bytes:
    """A one-page PDF whose page says ``text`` (Helvetica), written by hand: pypdf must read it back."""
    stream = zlib.compress(f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1"))
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> "
            b"/Contents 5 0 R >>", b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


GUIDE_EN = """# Acme voice guide

## Logo
Never stretch or recolour the logo. Leave clear space around it.

## Vacuum claims
When talking about RoboVac, always say it maps every room in one pass and empties itself for 60 days.
Busy parents care about quiet: mention the 55 dB night mode.

## Coffee line
Our espresso beans are roasted every Monday in Portland.
"""
GUIDE_KO = """# 한빛커피 브랜드 가이드

## 원두
콜드브루 원두는 에티오피아 예가체프만 사용하며 매주 월요일 직접 로스팅합니다. 광고에서는 반드시 "12시간 저온 추출"을 언급하세요.

## 가격
가격은 항상 원화로 표기하고 할인율을 과장하지 않습니다.

## 로고
로고의 색을 바꾸거나 늘리지 마세요.
"""


@pytest.fixture
def kit_folder(tmp_path):
    folder = tmp_path / "brands" / "Acme"
    (folder / "docs").mkdir(parents=True)
    (folder / "guide.md").write_text(GUIDE_EN)
    (folder / "docs" / "ko.txt").write_text(GUIDE_KO)
    (folder / "docs" / "legal.pdf").write_bytes(tiny_pdf("Warranty: two years on every RoboVac motor."))
    (folder / "docs" / "broken.pdf").write_bytes(b"%PDF-1.4 nonsense")
    (folder / "notes.exe").write_bytes(b"MZ")
    with open(folder / "docs" / "huge.txt", "wb") as f:  # sparse: 9 MiB on paper, nothing on disk
        f.truncate(9 * 1024 * 1024)
    (tmp_path / "elsewhere.md").write_text("The server's secret plans for RoboVac.")
    os.symlink(tmp_path / "elsewhere.md", folder / "docs" / "linked.md")
    return folder


def test_documents_are_split_indexed_and_searched(kit_folder):
    k = read_knowledge(str(kit_folder))
    assert any("Warranty: two years" in p for p in k.passages)          # the PDF's text, read with pypdf
    assert any("broken.pdf: skipped" in n for n in k.notes)              # a broken file is skipped, named
    assert any("huge.txt: skipped, larger than 8 MiB" in n for n in k.notes)
    assert not any("secret plans" in p for p in k.passages)               # a link out of the kit leads nowhere
    assert all(len(p) <= 400 for p in k.passages)
    b = Brief(**EN, description="a robot vacuum that maps the house")
    found = k.search(brief_query(b))
    assert found and "maps every room in one pass" in found[0]
    assert knowledge_for(str(kit_folder)) is knowledge_for(str(kit_folder))  # cached while nothing changed


def test_a_korean_brief_retrieves_the_korean_passage(kit_folder):
    k = read_knowledge(str(kit_folder))
    b = Brief(brand="한빛커피", product="콜드브루 원두", description="에티오피아 원두로 만든 콜드브루",
              audience="커피를 좋아하는 직장인", cta="지금 주문하세요", language="ko")
    found = k.search(brief_query(b))
    assert found and "저온 추출" in found[0], found
    assert "원두" in tokens("원두는") and "콜드" in tokens("콜드브루를")  # particle stripped, bigrams
    assert split_passages("가" * 1000) and all(len(p) <= 400 for p in split_passages("가" * 1000))


def test_the_relevant_passage_reaches_the_llm_within_the_context_budget(oai, kit_folder):
    kit = BrandKit(name="Acme")
    k = knowledge_for(str(kit_folder))
    passages = k.search(brief_query(Brief(**EN, description="a robot vacuum that maps the house")))
    b = kit_brief(kit, passages, description="a robot vacuum that maps the house")
    gen = asyncio.run(generate_script(b, llm(oai, context_size=4096), ScriptOptions(seed=3)))
    body = oai.chats()[0].body
    prompt = "\n".join(m["content"] for m in body["messages"])
    assert "maps every room in one pass" in prompt
    assert estimate_messages(body["messages"]) + body["max_tokens"] <= 4096
    assert not gen.fell_back


def test_passages_that_do_not_fit_are_left_out_best_kept(oai):
    kit = BrandKit(name="Acme")
    best = "RoboVac maps every room in one pass and empties itself for sixty days. " * 5
    filler = [f"Guideline {i}: " + "keep sentences short and friendly, and show the product in use. " * 5
              for i in range(7)]
    b = kit_brief(kit, [best[:1200], *[f[:1200] for f in filler]])
    gen = asyncio.run(generate_script(b, llm(oai, context_size=4096), ScriptOptions(seed=3)))
    body = oai.chats()[0].body
    prompt = "\n".join(m["content"] for m in body["messages"])
    assert "empties itself for sixty days" in prompt and "Guideline 6" not in prompt
    assert estimate_messages(body["messages"]) + body["max_tokens"] <= 4096
    assert any("relevant passages fit context_size" in n for n in gen.script.notes)


def test_an_english_legal_line_on_a_korean_ad_is_not_a_language_problem():
    kit = BrandKit(name="한빛커피", legal_lines=["Terms and conditions apply to every order."])
    b = kit_brief(kit, brand="한빛커피", product="콜드브루", cta="지금 주문하세요", language="ko", audience="직장인")
    s = write_template_script(b, seed=2)
    assert "Terms and conditions apply to every order." in s.scenes[-1].on_screen_text
    assert bar_for(b).check(s) == []
