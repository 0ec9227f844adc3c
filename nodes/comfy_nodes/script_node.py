"""ScriptLLM: brief (+ reference pacing) → timed script, by Ollama, an OpenAI-compatible LLM or the template.

The LLM's answer must meet the quality bar (engine/script/quality.py); what
misses it goes back to the LLM with the errors (bounded tries), then the
template writes the script and the node says so. An edited script (JSON)
replaces the generation. Same brief + seed → same script (ComfyUI caches it).
"""
from __future__ import annotations

import itertools
import json

from ..engine.cloud.llm_policy import widget_problem
from ..engine.cloud.redaction import redact
from ..engine.models import AdReelInputError, AdScript
from ..engine.script.backends import LLMConfigError, LLMError
from ..engine.script.generate import BACKENDS, generate_script, parse_edited_script, raise_for_user, script_summary
from ..engine.script.llm import GenerationCancelled, ScriptOptions
from ..engine.script.ollama_backend import DEFAULT_MODEL, OllamaBackend, known_models, refresh_in_background
from ..engine.script.openai_backend import DEFAULT_KEY_ENV, DEFAULT_MODEL as DEFAULT_OPENAI_MODEL, OpenAIBackend
from ..engine.script.plan import plan_for
from . import api
from .api import CATEGORY, BriefType, ReferenceType, ScriptType, io, ui

def model_options() -> list[str]:
    """The Ollama models to list: the configured OLLAMA_HOST's, as last fetched (no request here; a stale
    list is refreshed in the background, so the next refresh of the node definitions shows it)."""
    refresh_in_background()
    return sorted(set(known_models())) or [DEFAULT_MODEL]



# widget values that decide whether an earlier fallback is retried (see fingerprint_inputs)
WIDGET_DEFAULTS = dict(backend="ollama", seed=0, model=DEFAULT_MODEL, ollama_host="", openai_model=DEFAULT_OPENAI_MODEL,
                       openai_base_url="", api_key_env=DEFAULT_KEY_ENV, temperature=0.8, context_size=8192,
                       keep_alive="10m", timeout_seconds=180.0, max_attempts=3, shot_seconds=0.0, edited_script="")
_RETRY_STATE: dict[str, dict] = {}
_TOKENS = itertools.count(1)


def _state_key(values: dict) -> str:
    merged = {k: values.get(k, v) for k, v in WIDGET_DEFAULTS.items()}
    return json.dumps(merged, sort_keys=True, default=str)


class ScriptLLM(io.ComfyNode):
    OPEN_COMBOS = ("model",)  # an API prompt may name any model the server has (api.guard_combos)

    @classmethod
    def define_schema(cls):
        models = model_options()
        return io.Schema(
            node_id="ScriptLLM",
            display_name="Script (LLM)",
            category=CATEGORY,
            description=("Writes the ad's timed script from the brief with Ollama, an OpenAI-compatible LLM or the "
                         "deterministic template. Checked against the brief (durations, pacing, brand, CTA, "
                         "language, speaking rate); a miss goes back to the LLM with the errors, then the template "
                         "takes over and the node says why. Paste an edited script JSON into edited_script to "
                         "replace the generation."),
            inputs=[
                BriefType.Input("brief"),
                io.Combo.Input("backend", options=list(BACKENDS), default="ollama",
                               tooltip="ollama / openai: an LLM writes the script (template when none answers); "
                                       "template: the deterministic writer, no LLM."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFF, control_after_generate=True,
                             tooltip="Same brief + seed → same script; another seed → another variant."),
                ReferenceType.Input("reference", optional=True,
                                    tooltip="Pacing and structure from ReferenceAnalyze: the script follows them."),
                io.Combo.Input("model", options=models, default=DEFAULT_MODEL if DEFAULT_MODEL in models else models[0],
                               optional=True,
                               tooltip="Ollama model. Listed from the server (refresh node definitions to update); "
                                       "any name works in an API prompt."),
                io.String.Input("ollama_host", default="", optional=True,
                                tooltip="Ollama URL; empty: OLLAMA_HOST, else http://127.0.0.1:11434. Loopback, public "
                                        "or operator-configured hosts only (see the README's Security section)."),
                io.String.Input("openai_model", default=DEFAULT_OPENAI_MODEL, optional=True,
                                tooltip="Model name for the OpenAI-compatible endpoint."),
                io.String.Input("openai_base_url", default="", optional=True,
                                tooltip="e.g. http://127.0.0.1:8000/v1 (vLLM), http://127.0.0.1:1234/v1 (LM Studio); "
                                        "empty: OPENAI_BASE_URL, else https://api.openai.com/v1."),
                io.String.Input("api_key_env", default=DEFAULT_KEY_ENV, optional=True,
                                tooltip="NAME of the key variable (never the key): OPENAI_API_KEY, GROQ_API_KEY, … "
                                        "ADREEL_LLM_KEY_<NAME>, or none. The key only goes to the host the "
                                        "server's environment configures for it."),
                io.Float.Input("temperature", default=0.8, min=0.0, max=2.0, step=0.05, optional=True),
                io.Int.Input("context_size", default=8192, min=0, max=262144, step=512, optional=True,
                             tooltip="The model's context in tokens, prompt + answer: Ollama's num_ctx; for an "
                                     "OpenAI-compatible server the context it runs with (llama-server -c). A "
                                     "small one gets the compact prompt and repairs that never grow. 0: the "
                                     "model's default (no budget). Never above the server's ADREEL_LLM_MAX_CONTEXT."),
                io.String.Input("keep_alive", default="10m", optional=True,
                                tooltip="How long Ollama keeps the model loaded: 10m, 1h, 0 (unload after this "
                                        "answer); -1 or longer: the server's ADREEL_LLM_MAX_KEEP_ALIVE (1 h)."),
                io.Float.Input("timeout_seconds", default=180.0, min=1.0, max=3600.0, step=1.0, optional=True,
                               tooltip="Per request, connect to last byte; loading a model on CPU can take a "
                                       "while. Never above the server's ADREEL_HTTP_TOTAL_SECONDS (120 s)."),
                io.Int.Input("max_attempts", default=3, min=1, max=8, optional=True,
                             tooltip="Tries (each gets the previous answer's errors) before the template takes over."),
                io.Float.Input("shot_seconds", default=0.0, min=0.0, max=60.0, step=0.1, optional=True,
                               tooltip="Pacing: mean shot length wanted (0: from the reference, else the standard "
                                       "structure for the ad's length)."),
                io.String.Input("edited_script", default="", multiline=True, optional=True,
                                tooltip="An edited script (this node's script_json): replaces the generation after "
                                        "the same checks."),
            ],
            outputs=[ScriptType.Output(display_name="script"), io.String.Output(display_name="script_json")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, backend, model=None, api_key_env=None, openai_base_url=None, ollama_host=None):
        # ``model`` is listed here so ComfyUI never checks it against the editor's list:
        # an API prompt may name any model the server has.
        # refused at /prompt (so never stored in the history), never echoed: a pasted key, credentials in a
        # URL, or a variable that is not an LLM key
        return widget_problem(backend, api_key_env, openai_base_url, ollama_host) or True

    @classmethod
    def fingerprint_inputs(cls, **values):
        """Unchanged (cached) unless the last run with these widgets fell back: then ask the LLM again."""
        if len(_RETRY_STATE) > 512:  # widget combinations seen long ago
            _RETRY_STATE.clear()
        state = _RETRY_STATE.setdefault(_state_key(values), {"retry": False, "token": ""})
        if state["retry"]:
            state["token"] = f"retry-{next(_TOKENS)}"
        return state["token"]

    @classmethod
    async def execute(cls, brief, backend, seed, reference=None, **widgets) -> io.NodeOutput:
        node_id = cls.hidden.unique_id if cls.hidden else None
        w = {**WIDGET_DEFAULTS, **widgets, "backend": backend, "seed": seed}
        if backend not in BACKENDS:
            raise AdReelInputError("backend", f"is not one of {', '.join(BACKENDS)}")
        ref = reference if reference is not None else brief.reference_style
        if ref is not None:
            brief = brief.model_copy(update={"reference_style": ref})

        if (w["edited_script"] or "").strip():
            script = parse_edited_script(w["edited_script"], brief, plan_for(brief, ref, w["shot_seconds"]))
            fell_back = False
        else:
            options = ScriptOptions(
                seed=seed, temperature=w["temperature"], max_attempts=w["max_attempts"], reference=ref,
                shot_seconds=w["shot_seconds"], cancelled=api.interrupted,
                progress=(lambda msg: api.send_progress_text(msg, node_id)) if node_id else None)
            gen = await cls._generate(brief, w, options)
            script, fell_back = gen.script, gen.fell_back
            if fell_back and node_id:
                api.send_progress_text(f"fell back to the template: {gen.reason}", node_id)
        _RETRY_STATE.setdefault(_state_key(w), {"retry": False, "token": ""})["retry"] = fell_back

        ad = AdScript(brief=brief, script=script)
        return io.NodeOutput(ad, script.model_dump_json(indent=2), ui={**ui.PreviewText(script_summary(ad)).as_dict(), "adreel_script": [script.model_dump(mode="json")]})

    @classmethod
    async def _generate(cls, brief, w: dict, options: ScriptOptions):
        """The LLM's (or the template's) script; what only the user can fix is an error naming the widget,
        and no error text carries a secret."""
        try:
            return await generate_script(brief, cls._backend(w), options)
        except GenerationCancelled:
            api.raise_if_interrupted()
            raise
        except LLMError as e:
            raise_for_user(e)
        except Exception as e:  # an unexpected failure: its text still never carries a secret
            if api.is_interrupt(e) or redact(str(e)) == str(e):
                raise
            raise RuntimeError(redact(str(e))) from None

    @staticmethod
    def _backend(w: dict):
        try:
            if w["backend"] == "ollama":
                return OllamaBackend(w["model"], w["ollama_host"], keep_alive=w["keep_alive"],
                                     context_size=w["context_size"], timeout=w["timeout_seconds"])
            if w["backend"] == "openai":
                return OpenAIBackend(w["openai_model"], w["openai_base_url"], w["api_key_env"],
                                     timeout=w["timeout_seconds"], context_size=w["context_size"])
        except LLMConfigError as e:
            raise AdReelInputError(e.field, str(e)) from None
        return None
