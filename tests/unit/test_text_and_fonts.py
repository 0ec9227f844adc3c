"""Text renders as real glyphs — Latin, Hangul, emoji — or fails clearly."""
import numpy as np
import pytest

from nodes.engine.media.fonts import font_chain, split_runs
from nodes.engine.models import AdReelInputError
from nodes.engine.media.text import CardLook, render_text_card


def pixels(text, **kw):
    return np.asarray(render_text_card(text, 900, 64, CardLook((30, 58, 138)), **kw))


def test_two_hangul_lines_give_different_pixels():
    a, b = pixels("안녕하세요 여러분"), pixels("감사합니다 고객님")
    assert a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).sum() > 0


def test_hangul_is_drawn_with_a_font_that_has_it():
    runs = split_runs("Hi 한국어", font_chain(None))
    from nodes.engine.media.fonts import covers
    for face, s in runs:
        for ch in s.strip():
            assert covers(face, ch), (face, ch)


def test_emoji_are_drawn_in_colour():
    card = pixels("🎉")
    rgb = card[..., :3].astype(int)
    # the box is blue and the text white: an emoji brings other hues (yellow/red)
    warm = (rgb[..., 0] > 180) & (rgb[..., 2] < 120)
    assert warm.sum() > 50


def test_missing_glyph_is_a_clear_error_naming_the_field():
    with pytest.raises(AdReelInputError) as exc:
        render_text_card("ok \U0010FFFD", 600, 40, field="scenes[2].on_screen_text")
    assert "scenes[2].on_screen_text" in str(exc.value) and "U+10FFFD" in str(exc.value)


def _text_rows(card) -> int:
    """How many separate bands of white glyph pixels the card has (its lines of text)."""
    rgb = np.asarray(card)[..., :3].astype(int)
    inked = (rgb.min(axis=2) > 200).any(axis=1)
    return int(np.count_nonzero(inked[1:] & ~inked[:-1]) + inked[0])


def test_long_text_shrinks_to_fit_three_lines_and_keeps_every_word():
    text = "Fresh roasted espresso beans delivered to your door every single Monday morning"
    short = render_text_card("Fresh", 600, 80, max_lines=3)
    card = render_text_card(text, 600, 80, max_lines=3)
    assert card.width <= 600
    assert 2 <= _text_rows(card) <= 3  # wrapped, never past the limit
    # the font shrank: at 80 px three lines would be about 3 × 102 px tall plus padding
    assert card.height < 3 * short.height * 0.9
    from media import normalise_text, ocr
    big = np.asarray(card.resize((card.width * 2, card.height * 2)))[..., :3]
    read = normalise_text(ocr(255 - big.max(axis=2, keepdims=True).repeat(3, axis=2)))
    missing = [w for w in normalise_text(text).split() if w not in read]
    assert not missing, (missing, read)  # no word dropped


def test_unknown_font_file_is_a_clear_error():
    with pytest.raises(AdReelInputError) as exc:
        render_text_card("x", 400, 40, font="/nope/missing.ttf")
    assert str(exc.value).startswith("font: names a font file AdReel may not read") and "missing" not in str(exc.value)
