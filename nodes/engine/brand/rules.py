"""The brand kit's rules in the script stage: what the prompt tells the LLM, what the checker enforces,
and how the template writer honours them.

* **Words never to use** (``words_never``): none may appear in any scene's narration or on-screen text.
  Latin-script words match as whole words, case-insensitively (``cheap`` is not in ``cheapest``…
  but ``Cheap!`` is); a word in Hangul, kana or Han matches anywhere (Korean attaches particles:
  ``저렴한`` is in ``저렴한데요``).
* **Required legal lines** (``legal_lines``): each appears word for word (spaces and case aside) in some
  scene's on-screen text or narration.
* **Words to use** (``words_to_use``) guide the writer; they are not enforced.

Each problem is a ``quality.Issue`` naming the scene and field and the word or line, so a repair request
tells the LLM exactly what to change.
"""
from __future__ import annotations

import re
from typing import Optional

from ..models import Brief, Script

_WIDE = re.compile(r"[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u9fff\uac00-\ud7af]")


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s.casefold()).strip()


def _pattern(word: str) -> re.Pattern:
    w = re.escape(_norm(word))
    if _WIDE.search(word):
        return re.compile(w)
    return re.compile(rf"(?<![\w]){w}(?![\w])")


def banned_word(text: str, words: list[str]) -> Optional[str]:
    """The first of ``words`` (never to be used) in ``text`` (None when there is none)."""
    t = _norm(text or "")
    return next((w for w in words if _pattern(w).search(t)), None) if t else None


def banned_in(text: str, brief: Brief) -> Optional[str]:
    """The first of the kit's never-used words in ``text`` (None when there is none)."""
    return banned_word(text, brief.brand_kit.words_never) if brief.brand_kit else None


def kit_issues(script: Script, brief: Brief) -> list[tuple[str, str]]:
    """Everything in ``script`` that breaks the brief's brand-kit rules, as (field, message) pairs (the
    checker makes them its Issues); empty without a kit."""
    kit = brief.brand_kit
    if not kit:
        return []
    issues = []
    for i, sc in enumerate(script.scenes):
        for fname in ("narration", "on_screen_text"):
            word = banned_in(getattr(sc, fname), brief)
            if word:
                issues.append((f"scenes[{i}].{fname}",
                                    f'uses "{word}", a word the brand never uses (brand kit {kit.name}): '
                                    "rewrite it without that word"))
    everything = _norm(" ".join(f"{sc.on_screen_text} {sc.narration}" for sc in script.scenes))
    for line in kit.legal_lines:
        if _norm(line) not in everything:
            issues.append((f"scenes[{len(script.scenes) - 1}].on_screen_text",
                                f'leaves out the required legal line "{line}" (brand kit {kit.name}): '
                                "put it word for word in the last scene's on_screen_text"))
    return issues


def prompt_lines(brief: Brief, compact: bool = False) -> list[str]:
    """The kit's rules and the relevant passages of its documents, for the LLM's prompt."""
    kit = brief.brand_kit
    if not kit:
        return []
    lines = []
    if kit.words_to_use:
        lines.append(f"Words the brand likes to use: {', '.join(kit.words_to_use)}.")
    if kit.words_never:
        lines.append(f"Never use these words anywhere in narration or on_screen_text: {', '.join(kit.words_never)}.")
    if kit.legal_lines:
        shown = "; ".join(f'"{line}"' for line in kit.legal_lines)
        lines.append(f"Required legal line(s), word for word, in the last scene's on_screen_text: {shown}.")
    if kit.passages:
        lines.append("From the brand's own guidelines (follow them):" if not compact else "Brand guidelines:")
        lines += [f"- {p}" for p in kit.passages]
    return lines


# ------------------------------------------------------------------ the template
def allowed(text: str, brief: Brief) -> bool:
    """Whether the template may write ``text`` (no never-used word)."""
    return banned_in(text, brief) is None


def scrub(text: str, brief: Brief) -> str:
    """``text`` without the kit's never-used words (the template's last resort), tidied."""
    kit = brief.brand_kit
    if not kit or not text:
        return text
    out = text
    for w in kit.words_never:
        flags = re.IGNORECASE
        pat = re.escape(w) if _WIDE.search(w) else rf"(?<![\w]){re.escape(w)}(?![\w])"
        out = re.sub(pat, "", out, flags=flags)
    out = re.sub(r"\s+([,.!?;:])", r"\1", re.sub(r"\s{2,}", " ", out)).strip(" ,;:")
    return out


def honour_kit(script: Script, brief: Brief) -> Script:
    """The template's script with the kit's rules met: never-used words taken out of every line (the
    template already chose phrasings without them where it could) and each required legal line shown on
    the last card (or the latest card with room: on-screen text is at most 200 characters)."""
    kit = brief.brand_kit
    if not kit:
        return script
    scenes = [sc.model_copy(update={"narration": scrub(sc.narration, brief),
                                    "on_screen_text": scrub(sc.on_screen_text, brief)}) for sc in script.scenes]
    for line in kit.legal_lines:
        if _norm(line) in _norm(" ".join(f"{sc.on_screen_text} {sc.narration}" for sc in scenes)):
            continue
        for sc in reversed(scenes):
            joined = f"{sc.on_screen_text} · {line}" if sc.on_screen_text else line
            if len(joined) <= 200:
                sc.on_screen_text = joined
                break
    return script.model_copy(update={"scenes": scenes})
