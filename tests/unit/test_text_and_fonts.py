"""Text renders as real glyphs — Latin, Hangul, emoji — or fails clearly."""
import numpy as np
import pytest

from nodes.engine.fonts import font_chain, split_runs
from nodes.engine.models import AdReelInputError
from nodes.engine.text_render import render_text_card


def pixels(text, **kw):
    return np.asarray(render_text_card(text, 900, 64, box_rgb=(30, 58, 138), **kw))


def test_two_hangul_lines_give_different_pixels():
    a, b = pixels("안녕하세요 여러분"), pixels("감사합니다 고객님")
    assert a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).sum() > 0


def test_hangul_is_drawn_with_a_font_that_has_it():
    runs = split_runs("Hi 한국어", font_chain(None))
    from nodes.engine.fonts import covers
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


def test_long_text_shrinks_to_fit():
    card = render_text_card("A very long headline " * 6, 600, 80, max_lines=3)
    assert card.width <= 600


def test_unknown_font_file_is_a_clear_error():
    with pytest.raises(AdReelInputError) as exc:
        render_text_card("x", 400, 40, font="/nope/missing.ttf")
    assert "missing.ttf" in str(exc.value)
