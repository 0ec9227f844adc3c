"""SceneNarration: a scene's narration text → AUDIO (offline Piper / espeak-ng, or a cloud TTS)."""
from __future__ import annotations

from ..engine.audio.narration import DEFAULT_RATE_WPM
from ..engine.speech.bounds import SpeechStopped, speech_bounds
from ..engine.speech.fit import speak_line
from ..engine.speech.piper_voice import piper_voice_names
from ..engine.speech.voice import VOICE_BACKENDS, voice_for
from ..engine import limits
from ..engine.brand.kit import voice_settings as kit_voice_settings
from .api import (CATEGORY, SceneType, interrupted, io, prompt_allowance,
                  raise_if_interrupted)
from .convert import clip_to_audio

BACKENDS = list(VOICE_BACKENDS)


def piper_voice_options() -> list[str]:
    """``default`` (the language's own voice) and every Piper voice here: the bundled
    en_US-joe-medium and what lies in ComfyUI's models/tts (read again on each /object_info)."""
    return ["default", *piper_voice_names()]


class SceneNarration(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SceneNarration",
            display_name="Scene Narration",
            category=CATEGORY,
            description="Speaks the scene's narration in the brief's language. auto (default): English with the "
                        "Piper neural voice en_US-joe-medium (piper-tts; without it, espeak-ng), Korean and other "
                        "languages with espeak-ng — the voices ScriptLLM measures its lines with. piper: a Piper "
                        "voice from piper_voice (the bundled one or NAME.onnx + NAME.onnx.json in ComfyUI's "
                        "models/tts). openai / elevenlabs: cloud TTS with the key from OPENAI_API_KEY / "
                        "ELEVENLABS_API_KEY. The voice says the line's spoken form (numbers, prices, URLs, symbols "
                        "as words; emoji not read out); subtitles keep what was written. With fit_to_scene, a line "
                        "that overruns its scene is spoken faster (up to a natural limit); FFmpegAssemble then "
                        "times the scenes to the voice. Any other pack's AUDIO works as narration too.",
            inputs=[
                SceneType.Input("scene"),
                io.Combo.Input("backend", options=BACKENDS, default="auto",
                               tooltip="auto: the language's default voice (Piper for English, espeak-ng for "
                                       "Korean and the rest), or piper_voice where it speaks the scene's language."),
                io.Int.Input("rate_wpm", default=DEFAULT_RATE_WPM, min=80, max=260,
                             tooltip=f"Speaking pace in words per minute; {DEFAULT_RATE_WPM} is each voice's normal "
                                     "pace (espeak-ng's rate; Piper speaks at rate_wpm / "
                                     f"{DEFAULT_RATE_WPM} of its own pace). ScriptLLM's bar measures lines at "
                                     f"{DEFAULT_RATE_WPM}."),
                io.Boolean.Input("fit_to_scene", default=True),
                io.String.Input("text", optional=True, force_input=True,
                                tooltip="Narration text to speak instead of the scene's (e.g. an edited line)."),
                io.String.Input("voice", default="", optional=True,
                                tooltip="Cloud voice (OpenAI: alloy, nova …; ElevenLabs: a voice id); empty: the default."),
                io.String.Input("tts_model", default="", optional=True,
                                tooltip="Cloud model (OpenAI: gpt-4o-mini-tts, tts-1; ElevenLabs: eleven_multilingual_v2)."),
                io.Combo.Input("piper_voice", options=piper_voice_options(), default="default", optional=True,
                               tooltip="A Piper voice speaks the language of its .onnx.json. backend piper: this "
                                       "voice, refused (naming both languages) for a scene in another language; "
                                       "default: the language's bundled voice. backend auto: this voice where it "
                                       "speaks the scene's language, else the language's default voice. Add voices "
                                       "as NAME.onnx + NAME.onnx.json in ComfyUI's models/tts."),
            ],
            outputs=[io.Audio.Output(display_name="audio")],
        )

    @classmethod
    def execute(cls, scene, backend, rate_wpm, fit_to_scene, text=None, voice="", tts_model="",
                piper_voice="default") -> io.NodeOutput:
        line = scene.scene.narration if text is None else text
        if scene.voice and backend == "auto" and (piper_voice or "default") == "default" and not voice:
            # the brand kit's voice, unless this node chose one (engine/brand/kit.py: BrandKit.voice_settings)
            kit_voice = kit_voice_settings(scene.voice)
            backend, voice, piper_voice = kit_voice["backend"], kit_voice["voice"], kit_voice["piper_voice"]
        speaker = voice_for(backend, scene.language, rate_wpm, voice or "", tts_model or "", piper_voice or "default")
        seconds = scene.scene.frame_count / scene.fps
        # the prompt's media seconds (all its nodes): the scene's length before synthesis, any overrun after
        allowance = prompt_allowance(limits.MAX_MEDIA_SECONDS)
        allowance.reserve(seconds, f"narration of scene {scene.scene.index}")
        try:  # Interrupt stops the voice between chunks; time, memory and length are bounded (speech/bounds.py)
            with speech_bounds(interrupted):
                fit = speak_line(line, scene.language, speaker, seconds, fit=fit_to_scene)
        except SpeechStopped:
            raise_if_interrupted()
            raise
        if fit.speech.duration > seconds:
            allowance.reserve(fit.speech.duration - seconds, f"narration of scene {scene.scene.index} (past the scene)")
        voice = speaker.describe()
        info = (f"scene {scene.scene.index}: {voice}, {fit.speech.duration:.2f} s of speech "
                f"for a {seconds:.2f} s scene at {fit.speed:.2f}× its pace")
        return io.NodeOutput(clip_to_audio(fit.speech.samples, fit.speech.sample_rate, voice), ui={"text": [info]})
