"""The script stage: brief → timed Script (template now; LLM backends build on it)."""
from .template import write_template_script, segment_plan, split_duration, template_languages

__all__ = ["write_template_script", "segment_plan", "split_duration", "template_languages"]
