"""BrandKnowledge: a brand's documents → passages → a BM25 index (``bm25s``) → the passages relevant to
a brief, and how many of them fit the LLM's context.

* **Documents** are the ``.md``, ``.markdown``, ``.txt`` and ``.pdf`` files in the kit's folder (and its
  ``docs/`` folder): at most ``MAX_DOCUMENTS`` files of ``MAX_DOCUMENT_BYTES`` each; a PDF's text is read
  with ``pypdf``, at most ``MAX_PDF_PAGES`` pages; at most ``MAX_TEXT_CHARS`` characters in all, within
  ``READ_SECONDS`` (checked between pages and files). A file that cannot be read is skipped with a note
  naming it, never an error that stops the ad.
* **Passages**: paragraphs (blank lines, Markdown headings), long ones cut at sentence ends, short ones
  joined, up to ``PASSAGE_CHARS`` characters.
* **Tokens** (no model, no download): Latin-script words lower-cased, a few English stop words dropped;
  Korean (and other Hangul/kana/Han) words as the word without its particle (``커피를`` → ``커피``) plus
  its character bigrams, so ``원두`` finds ``원두는`` and ``원두커피``.
* **Retrieval**: BM25 over the passages for the brief's product, description, audience, goal and tone;
  the best ``TOP_K`` with a score above zero, best first.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Optional

from ..media.files import is_inside

DOC_EXT = (".md", ".markdown", ".txt", ".pdf")
MAX_DOCUMENTS = 32
MAX_DOCUMENT_BYTES = 8 * 1024 * 1024
MAX_PDF_PAGES = 200
MAX_TEXT_CHARS = 2_000_000
READ_SECONDS = 30.0          # reading all of a kit's documents: what is not read by then is left out
PASSAGE_CHARS = 400
TOP_K = 4

_HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
_WIDE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
_WORD = re.compile(r"\w+", re.UNICODE)
# Korean particles and copulas a word ends with, longest first (josa stripping; the bigrams catch the rest)
_JOSA = sorted("은 는 이 가 을 를 에 의 로 와 과 도 만 께 으로 에서 에게 한테 까지 부터 보다 처럼 이나 "
               "이며 이고 하고 에는 에도 으로는 입니다 이다 이에요 예요 인 며 고".split(), key=len, reverse=True)
_STOP = frozenset("a an the and or of to in on for with is are be by at as it its this that from your our you "
                  "we they their not no can will do does".split())


def tokens(text: str) -> list[str]:
    """BM25 terms of ``text`` (see the module's rule)."""
    out: list[str] = []
    for word in _WORD.findall(text.casefold()):
        if _WIDE.search(word):
            stem = word
            if _HANGUL.search(word):
                for josa in _JOSA:
                    if len(word) > len(josa) and word.endswith(josa):
                        stem = word[: -len(josa)]
                        break
            out.append(stem)
            out += [stem[i:i + 2] for i in range(len(stem) - 1)]
        elif word not in _STOP:
            out.append(word)
    return out


def split_passages(text: str, size: int = PASSAGE_CHARS) -> list[str]:
    """``text`` as passages of at most ``size`` characters: paragraphs, long ones cut at sentence ends."""
    paras = []
    for block in re.split(r"\n\s*\n|\n(?=#{1,6}\s)", text.replace("\r\n", "\n")):
        block = re.sub(r"\s+", " ", block).strip()
        if block:
            paras.append(block)
    pieces: list[str] = []
    for para in paras:
        if len(para) <= size:
            pieces.append(para)
            continue
        sentence = ""
        for part in re.split(r"(?<=[.!?。！？])\s+|(?<=다\.)\s*", para):
            while len(part) > size:  # one endless sentence: cut it at a space, else anywhere
                cut = part.rfind(" ", 0, size)
                cut = cut if cut > size // 2 else size
                pieces.append(part[:cut].strip())
                part = part[cut:].strip()
            if sentence and len(sentence) + 1 + len(part) > size:
                pieces.append(sentence)
                sentence = part
            else:
                sentence = f"{sentence} {part}".strip()
        if sentence:
            pieces.append(sentence)
    # join neighbours that are short (a heading and its first line)
    out: list[str] = []
    for piece in pieces:
        if out and len(out[-1]) < size // 4 and len(out[-1]) + 1 + len(piece) <= size:
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
    return out


def _pdf_text(path: str, budget: int, deadline: float) -> str:
    from pypdf import PdfReader
    reader = PdfReader(path)
    parts, n = [], 0
    for i, page in enumerate(reader.pages):
        if i >= MAX_PDF_PAGES or time.monotonic() > deadline:
            break
        text = page.extract_text() or ""
        parts.append(text)
        n += len(text)
        if n >= budget:
            break
    return "\n\n".join(parts)[:budget]


def document_files(folder: str) -> list[str]:
    """The kit's documents: regular files with a document extension in ``folder`` and ``folder/docs``,
    inside the folder (links resolved), sorted, at most ``MAX_DOCUMENTS``."""
    found = []
    for sub in (folder, os.path.join(folder, "docs")):
        try:
            names = sorted(os.listdir(sub))
        except OSError:
            continue
        for name in names:
            path = os.path.join(sub, name)
            if name.lower().endswith(DOC_EXT) and os.path.isfile(path) and is_inside(path, folder):
                found.append(path)
    return found[:MAX_DOCUMENTS]


@dataclass
class Knowledge:
    """A kit's passages and their BM25 index."""

    passages: list[str]
    notes: list[str] = field(default_factory=list)
    _index: object = None

    def __post_init__(self):
        if self.passages:
            import bm25s
            self._index = bm25s.BM25()
            self._index.index([tokens(p) or ["\u2400"] for p in self.passages], show_progress=False)

    def search(self, query: str, k: int = TOP_K) -> list[str]:
        """The passages most relevant to ``query``, best first (only those that share a term with it)."""
        terms = tokens(query)
        if not self.passages or not terms:
            return []
        k = min(k, len(self.passages))
        ids, scores = self._index.retrieve([terms], k=k, show_progress=False)
        return [self.passages[int(i)] for i, s in zip(ids[0], scores[0]) if s > 0]


def read_knowledge(folder: str) -> Knowledge:
    """Every document of the kit in ``folder``, split into passages and indexed."""
    passages, notes, left = [], [], MAX_TEXT_CHARS
    deadline = time.monotonic() + READ_SECONDS
    for path in document_files(folder):
        name = os.path.basename(path)
        if time.monotonic() > deadline:
            notes.append(f"documents from {name} on were left out: reading took more than {READ_SECONDS:g} s")
            break
        try:
            if os.path.getsize(path) > MAX_DOCUMENT_BYTES:
                notes.append(f"{name}: skipped, larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB")
                continue
            if name.lower().endswith(".pdf"):
                text = _pdf_text(path, left, deadline)
            else:
                with open(path, "rb") as f:
                    text = f.read(min(left * 4, MAX_DOCUMENT_BYTES)).decode("utf-8", errors="replace")[:left]
        except Exception as exc:  # a broken PDF or an unreadable file: the others still count
            notes.append(f"{name}: skipped, cannot be read ({type(exc).__name__})")
            continue
        left -= len(text)
        passages += split_passages(text)
        if left <= 0:
            notes.append(f"documents past {MAX_TEXT_CHARS} characters were left out")
            break
    return Knowledge(passages, notes)


_CACHE: dict[tuple, Knowledge] = {}


def knowledge_for(folder: str) -> Knowledge:
    """``read_knowledge(folder)``, kept while no document changed (name, size and time of each)."""
    key_parts = []
    for path in document_files(folder):
        try:
            st = os.stat(path)
            key_parts.append((path, st.st_size, st.st_mtime_ns))
        except OSError:
            continue
    key = (os.path.realpath(folder), tuple(key_parts))
    found = _CACHE.get(key)
    if found is None:
        if len(_CACHE) > 32:
            _CACHE.clear()
        found = _CACHE[key] = read_knowledge(folder)
    return found


def brief_query(brief) -> str:
    """What a brief asks the brand's documents: its product, description, audience, goal and tone."""
    return " ".join(str(getattr(brief, k, "") or "") for k in ("product", "description", "audience", "goal", "tone"))


# ------------------------------------------------------------------ the context budget
async def fit_passages(brief, build: Callable[[object, bool], list[dict]], budget,
                       count: Callable[[list[dict]], Awaitable[int]]):
    """``brief`` with as many of its kit's passages (best first) as let the prompt fit ``budget``: the full
    prompt when it fits with at least one passage or with none, else the compact one with as many as fit.
    ``build(brief, compact)`` makes the messages; ``count`` their tokens. Without a budget: all of them."""
    kit = getattr(brief, "brand_kit", None)
    if budget is None or kit is None or not kit.passages:
        return brief

    def keep(n: int):
        return brief.model_copy(update={"brand_kit": kit.model_copy(update={"passages": kit.passages[:n]})})

    async def largest(compact: bool) -> Optional[int]:
        for n in range(len(kit.passages), -1, -1):
            if budget.fits(await count(build(keep(n), compact))):
                return n
        return None

    full = await largest(False)
    if full:
        return keep(full)
    return keep((await largest(True)) or 0)


def passages_note(before, after) -> Optional[str]:
    """A note when the context budget left some of the kit's passages out."""
    a = len(before.brand_kit.passages) if before.brand_kit else 0
    b = len(after.brand_kit.passages) if after.brand_kit else 0
    if a > b:
        return f"context: {b} of the brand's {a} relevant passages fit context_size with the answer's room"
    return None
