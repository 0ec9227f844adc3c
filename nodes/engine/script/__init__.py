"""The script stage: brief → timed Script.

``template`` writes the deterministic script; ``generate`` asks an LLM
(``ollama_backend`` / ``openai_backend``) with the JSON schema of ``schema``,
checks the answer against the bar in ``quality`` and falls back to the template.
"""
from .template import write_template_script, segment_plan, split_duration, template_languages

__all__ = ["write_template_script", "segment_plan", "split_duration", "template_languages"]
