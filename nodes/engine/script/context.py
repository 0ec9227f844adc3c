"""What fits in the model's context: token counts, the answer's room, when to go compact.

``context_size`` (the ScriptLLM widget; Ollama's ``num_ctx``, and for an
OpenAI-compatible server such as llama-server the ``-c`` it runs with) is the
whole window: prompt + answer. 0 means "unknown": no budget, the full prompt.

The rule, kept conservative on purpose (too high an estimate only makes the
prompt compact sooner; too low gets the request refused):

* a text counts ``ceil(ascii_letters_and_spaces / 2.5) + digits_and_punctuation
  + 3 * non_ascii_chars`` tokens (English prose is about 4 characters a token,
  ``a|b|c`` lists about 2.5; SmolLM2 spends a token on every digit, so a
  model's ``14.6000000000000000`` or dense JSON runs near one token a
  character — a letters-only rate undercounted such an answer, found against
  the real tokenizer; a byte-level tokenizer never spends more than a token a UTF-8
  byte, and a Hangul syllable is 3 bytes — SmolLM2's English-centred one
  spends up to 2.2 on a long Korean name. Measured with SmolLM2's tokenizer
  through llama-server's ``/tokenize`` on the bench's 20 briefs: AdReel's
  prompts count 0.67–0.93 of this estimate; with a weight of 2 a long Korean
  name reached 1.05, hence 3), plus
  ``MESSAGE_OVERHEAD`` per chat message for the template's role markers —
  unless the server counts them itself (llama-server's ``/tokenize``: then the
  exact count plus the same overhead);
* the answer needs room for every scene the schema allows:
  ``ANSWER_BASE + ANSWER_PER_SCENE * max_scenes`` tokens at least, and is
  capped (``max_tokens``) at ``answer_cap`` (the longest script the schema
  allows: ``max(2048, 600 + 250 * max_scenes)``) or at what the prompt leaves
  of the context, whichever is less;
* the full prompt (long instructions + the JSON Schema) is sent when
  prompt + answer room fit; else the compact one (short rules, a one-line
  skeleton instead of the schema — the server's grammar still enforces the
  schema); else nothing is sent and the template writes the script.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .. import limits
from .backends import LLMConfigError

MESSAGE_OVERHEAD = 8        # <|im_start|>role\n … <|im_end|>\n and the like
PROMPT_OVERHEAD = 16        # the template's preamble and the assistant's opening
ANSWER_BASE = 120           # {"title": …, "scenes": [ … ]}
ANSWER_PER_SCENE = 200      # eleven fields, short texts


def estimate_tokens(text: str) -> int:
    """A conservative token count for ``text`` (see the module's rule)."""
    text = text or ""
    words = symbols = other = 0
    for ch in text:
        if ord(ch) >= 128:
            other += 1
        elif ch.isalpha() or ch.isspace():
            words += 1
        else:  # digits and punctuation: about a token each
            symbols += 1
    return math.ceil(words / 2.5) + symbols + 3 * other


def estimate_messages(messages: list[dict]) -> int:
    return PROMPT_OVERHEAD + sum(MESSAGE_OVERHEAD + estimate_tokens(str(m.get("content", ""))) for m in messages)


def max_scenes(schema: dict) -> int:
    return int(((schema.get("properties") or {}).get("scenes") or {}).get("maxItems") or 12)


def answer_cap(scenes: int) -> int:
    """Output enough for the longest script the schema allows (about 250 tokens a scene), no runaway."""
    return max(2048, 600 + 250 * scenes)


@dataclass
class Budget:
    """The token budget of one model context (``context_size`` > 0)."""

    context_size: int
    scenes: int

    @property
    def answer_need(self) -> int:
        return ANSWER_BASE + ANSWER_PER_SCENE * self.scenes


    def fits(self, prompt_tokens: int) -> bool:
        return prompt_tokens + self.answer_need <= self.context_size

    def max_tokens(self, prompt_tokens: int) -> int:
        """The answer's limit: what the context has left after the prompt, at most ``answer_cap``."""
        return max(1, min(answer_cap(self.scenes), self.context_size - prompt_tokens))

    def describe(self, prompt_tokens: int) -> str:
        return (f"about {prompt_tokens} prompt tokens + {self.answer_need} for the answer "
                f"({self.scenes} scenes) > context_size {self.context_size}")


def budget_for(context_size: int | None, schema: dict) -> Budget | None:
    n = int(context_size or 0)
    return Budget(n, max_scenes(schema)) if n > 0 else None


__all__ = ["Budget", "answer_cap", "budget_for", "estimate_messages", "estimate_tokens", "max_scenes"]


def cap_context(value) -> int:
    """``context_size`` (0: the model's default), never above ``ADREEL_LLM_MAX_CONTEXT``."""
    try:
        n = int(value or 0)
    except (TypeError, ValueError):
        raise LLMConfigError("context_size", "must be a whole number of tokens") from None
    return max(0, min(n, limits.MAX_LLM_CONTEXT.read()))
