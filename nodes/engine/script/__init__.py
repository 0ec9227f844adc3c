"""The script stage: brief → timed Script.

``generate`` is the flow: ``plan`` makes the brief's plan, the ``template``
writes it or ``llm`` asks an LLM (``ollama_backend`` / ``openai_backend``) for
it in the JSON of ``schema``; the bar in ``quality`` checks the script, and the
template takes over when the LLM cannot meet it.
"""
from .generate import write_template_script

__all__ = ["write_template_script"]
