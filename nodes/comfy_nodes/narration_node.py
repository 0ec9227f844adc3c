"""SceneNarration: a scene's narration text → AUDIO (offline espeak-ng, or a cloud TTS)."""
from __future__ import annotations

from ..engine.narration import DEFAULT_RATE_WPM
from ..engine.speech.fit import speak_line
from ..engine.speech.voice import VOICE_BACKENDS, voice_for
from .api import CATEGORY, SceneType, check_combo_inputs, io
from .convert import clip_to_audio

BACKENDS = list(VOICE_BACKENDS)


class SceneNarration(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SceneNarration",
            display_name="Scene Narration",
            category=CATEGORY,
            description="Speaks the scene's narration in the brief's language: offline with espeak-ng (default), "
                        "or OpenAI / ElevenLabs TTS with the key from OPENAI_API_KEY / ELEVENLABS_API_KEY. "
                        "The voice says the line's spoken form (numbers, prices, URLs, symbols as words; emoji "
                        "not read out); subtitles keep what was written. With fit_to_scene, a line that overruns "
                        "its scene is spoken faster (up to a natural limit); FFmpegAssemble then times the scenes "
                        "to the voice. Any other pack's AUDIO works as narration too.",
            inputs=[
                SceneType.Input("scene"),
                io.Combo.Input("backend", options=BACKENDS, default="espeak-ng"),
                io.Int.Input("rate_wpm", default=DEFAULT_RATE_WPM, min=80, max=260,
                             tooltip="espeak-ng speaking rate, words per minute. ScriptLLM's bar measures lines "
                                     f"at the default {DEFAULT_RATE_WPM}."),
                io.Boolean.Input("fit_to_scene", default=True),
                io.String.Input("text", optional=True, force_input=True,
                                tooltip="Narration text to speak instead of the scene's (e.g. an edited line)."),
                io.String.Input("voice", default="", optional=True,
                                tooltip="Cloud voice (OpenAI: alloy, nova …; ElevenLabs: a voice id); empty: the default."),
                io.String.Input("tts_model", default="", optional=True,
                                tooltip="Cloud model (OpenAI: gpt-4o-mini-tts, tts-1; ElevenLabs: eleven_multilingual_v2)."),
            ],
            outputs=[io.Audio.Output(display_name="audio")],
        )

    @classmethod
    def validate_inputs(cls, backend):
        return check_combo_inputs(cls, backend=backend)

    @classmethod
    def execute(cls, scene, backend, rate_wpm, fit_to_scene, text=None, voice="", tts_model="") -> io.NodeOutput:
        line = scene.scene.narration if text is None else text
        speaker = voice_for(backend, scene.language, rate_wpm, voice or "", tts_model or "")
        fit = speak_line(line, scene.language, speaker, scene.scene.frame_count / scene.fps, fit=fit_to_scene)
        return io.NodeOutput(clip_to_audio(fit.speech.samples, fit.speech.sample_rate))
