"""Narration, scene retiming, the audio mix and subtitles — engine level, real tools."""
import os
import re
import subprocess

import numpy as np
import pytest

from media import loudness
from nodes.engine.audio.mix import SAMPLE_RATE, AudioClip, mix_audio, narration_track
from nodes.engine.models import AdReelInputError, Brief
from nodes.engine.audio.narration import speak_espeak
from nodes.engine.speech.fit import speak_to_fit
from nodes.engine.script import write_template_script
from nodes.engine.storyboard import BREATH_SECONDS, LEAD_IN_SECONDS, build_storyboard, retime_for_narration
from nodes.engine.audio.subtitles import ass_escape, make_cues, write_ass, write_srt, write_vtt


def storyboard(duration=15.0, language="en"):
    b = Brief(brand="Acme", product="RoboVac X2", cta="Shop now", duration_seconds=duration, language=language)
    return build_storyboard(b, write_template_script(b, 1))


@pytest.mark.parametrize("lang,text", [("en", "Meet the new RoboVac."), ("ko", "로보청소기를 만나보세요.")])
def test_espeak_speaks_korean_and_english(lang, text):
    s = speak_espeak(text, lang)
    assert 0.8 < s.duration < 5 and np.abs(s.samples).max() > 0.1


def test_a_long_line_is_spoken_faster_to_fit():
    line = "This is a rather long narration line that would not fit in two seconds at a normal pace."
    slow = speak_espeak(line, "en")
    fitted, rate = speak_to_fit(line, "en", 4.0)
    assert rate > 165 and fitted.duration < slow.duration


def test_scenes_follow_the_voice_and_the_total_holds():
    sb = storyboard()
    speech = [0.5, 4.2, 1.0, 0.5, 1.0]  # scene 1 needs more than the script gave it
    out = retime_for_narration(sb, speech)
    assert sum(s.frame_count for s in out.scenes) == sb.total_frames
    for s, sp in zip(out.scenes, speech):
        assert s.frame_count / sb.fps >= sp + LEAD_IN_SECONDS + BREATH_SECONDS - 1 / sb.fps
    assert out.scenes[1].frame_count > sb.scenes[1].frame_count
    assert [s.start_frame for s in out.scenes] == list(np.cumsum([0] + [s.frame_count for s in out.scenes[:-1]]))


def test_narration_longer_than_the_ad_is_a_clear_error():
    """Audio from another pack (or a slower voice) the ad cannot hold: the scenes and seconds are named."""
    sb = storyboard(duration=5.0)
    with pytest.raises(AdReelInputError) as exc:
        retime_for_narration(sb, [3.0, 3.0])
    msg = str(exc.value)
    assert exc.value.field == "narration" and "lengthen the ad" in msg and "shorten it by" in msg
    assert "the narration needs 6.7s but the ad lasts 5s" in msg
    short = min(range(2), key=lambda i: sb.scenes[i].frame_count)
    assert f"scene {short} has 3.0s of speech for a {sb.scenes[short].frame_count / sb.fps:.1f}s scene" in msg


def test_the_voice_speaks_the_spoken_form_and_the_subtitles_show_the_text():
    """SceneNarration's speech for a line with emoji and a URL is the speech of its spoken form;
    the subtitle cue keeps the words and shows the URL without its query string."""
    from nodes.engine.assembly.render import subtitle_cues
    line = "Shop now at https://acme.example/sale?utm=ad&ref=1 🎉"
    fitted, _ = speak_to_fit(line, "en", 6.0)
    assert fitted.duration == pytest.approx(speak_espeak("Shop now at acme dot example", "en").duration, abs=0.02)
    assert fitted.duration < speak_espeak(line, "en").duration - 1.0
    sb = storyboard(duration=8.0)
    sb = sb.model_copy(update={"scenes": [sb.scenes[0].model_copy(update={"narration": line})] + sb.scenes[1:]})
    cues = subtitle_cues(sb, [(0.1, 3.0)] + [(0.0, 0.0)] * (len(sb.scenes) - 1))
    text = " ".join(c.text.replace("\n", " ") for c in cues)
    assert "acme.example/sale" in text and "utm" not in text and "https" not in text and "🎉" in text


def test_literal_text_survives_libass(tmp_path):
    """Braces, backslashes (even \\N), quotes, % and Hangul are shown as typed."""
    text = 'A {b} C:\\path\\N 50% "q": 한국어'
    ass = tmp_path / "s.ass"
    write_ass(make_cues(text, 0.0, 2.0, 80), 640, 360, str(ass))
    png = tmp_path / "f.png"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=gray:s=640x360:d=1",
                    "-vf", f"subtitles=f={ass.name}", "-frames:v", "1", str(png)], check=True, cwd=tmp_path)
    read = subprocess.run(["tesseract", str(png), "stdout", "-l", "kor+eng", "--psm", "6"],
                          capture_output=True, text=True).stdout
    for piece in ["{b}", "C:\\path\\N", "50%", '"', "한국어"]:
        assert piece in read, (piece, read)
    assert "\\{" in ass_escape("{") and "\\N" in ass_escape("a\nb")


def test_cues_share_the_voice_in_proportion_and_wrap():
    cues = make_cues("One two three four five six seven eight nine ten. Short.", 1.0, 5.0, max_units=20)
    assert cues[0].start == 1.0 and cues[-1].end == 5.0
    assert all(a.end == pytest.approx(b.start) for a, b in zip(cues, cues[1:]))
    assert all(len(line) <= 20 for c in cues for line in c.text.split("\n"))
    assert cues[-1].text == "Short." and (cues[-1].end - cues[-1].start) < (cues[0].end - cues[0].start)


def test_sidecars_are_readable_by_ffmpeg(tmp_path):
    cues = make_cues("Hello <world> & friends.", 0.5, 2.0, 40)
    write_srt(cues, str(tmp_path / "a.srt"))
    write_vtt(cues, str(tmp_path / "a.vtt"))
    assert "&lt;world&gt; &amp;" in (tmp_path / "a.vtt").read_text()
    for name in ("a.srt", "a.vtt"):
        out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type", "-of", "csv",
                              str(tmp_path / name)], capture_output=True, text=True)
        assert "subtitle" in out.stdout


def test_mix_is_normalised_and_ducked(tmp_path):
    sb = storyboard(duration=8.0)
    clips = [AudioClip.mono(*(lambda s: (s.samples, s.sample_rate))(speak_espeak(sc.narration, "en")))
             for sc in sb.scenes]
    sb = retime_for_narration(sb, [c.duration for c in clips])
    voice, spans = narration_track(sb, clips, LEAD_IN_SECONDS)
    assert all(b > a for a, b in spans)
    t = np.arange(int(3.3 * SAMPLE_RATE)) / SAMPLE_RATE  # loops to 8 s
    music = AudioClip(np.stack([0.3 * np.sin(2 * np.pi * 6000 * t)] * 2).astype(np.float32), SAMPLE_RATE)
    out = str(tmp_path / "mix.wav")
    facts = mix_audio(8.0, voice, music, out, str(tmp_path))
    assert not facts["silent"]
    # the encode applies the returned gain / limiter; do the same here and measure
    final = str(tmp_path / "final.wav")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", out, "-af", facts["filter"], "-c:a", "pcm_s16le", final],
                   check=True)
    out = final
    lv = loudness(out)
    assert abs(lv["integrated"] + 14) <= 1.0 and lv["true_peak"] <= -1.0
    from media import band_levels_db, decode_audio
    x = decode_audio(out)
    tone = band_levels_db(x, SAMPLE_RATE, 5900, 6100, 0.05)
    (a, b) = spans[0]
    during = np.median(tone[int((a + 0.3) / 0.05): int((b - 0.2) / 0.05)])
    # after the last line (past the compressor's release), before the fade-out
    after = spans[-1][1] + 0.5
    between = np.median(tone[int(after / 0.05): int((8.0 - 1.6) / 0.05)])
    assert between - during >= 8.0, (between, during)


def test_music_too_short_to_loop_is_refused(tmp_path):
    with pytest.raises(AdReelInputError, match="music"):
        mix_audio(5.0, None, AudioClip.mono(np.zeros(100, np.float32), 48000), str(tmp_path / "m.wav"), str(tmp_path))
