"""ScriptLLM: brief → timed script."""
from __future__ import annotations

from ..engine.models import AdScript
from ..engine.script import write_template_script
from .api import CATEGORY, BriefType, ScriptType, check_combos, io, ui


def script_summary(ad: AdScript) -> str:
    s = ad.script
    lines = [f"{s.title} — {s.total_duration:g}s, {len(s.scenes)} scenes, {s.language}, source: {s.source}"]
    lines += [f"note: {n}" for n in s.notes]
    for sc in s.scenes:
        lines.append(f"[{sc.start:5.2f}–{sc.end:5.2f}] {sc.segment:<8} {sc.on_screen_text} | {sc.narration}")
    return "\n".join(lines)


class ScriptLLM(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ScriptLLM",
            display_name="Script (LLM)",
            category=CATEGORY,
            description="Writes the ad's timed script from the brief.",
            inputs=[
                BriefType.Input("brief"),
                io.Combo.Input("backend", options=["template"], default="template",
                               tooltip="template: the deterministic writer, no LLM needed."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFF, control_after_generate=True,
                             tooltip="Same brief + seed → same script; another seed → another variant."),
            ],
            outputs=[ScriptType.Output(display_name="script"), io.String.Output(display_name="script_json")],
        )

    @classmethod
    def validate_inputs(cls, backend):
        return check_combos({"backend": backend}, {"backend": ["template"]})

    @classmethod
    def execute(cls, brief, backend, seed) -> io.NodeOutput:
        script = write_template_script(brief, seed=seed)
        ad = AdScript(brief=brief, script=script)
        return io.NodeOutput(ad, script.model_dump_json(indent=2), ui=ui.PreviewText(script_summary(ad)))
