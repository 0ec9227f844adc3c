"""The ad formats: every aspect a brief may choose has its frame size and a layout whose boxes lie inside
its safe zone; 4:5 is the feed's 1080×1350."""
from __future__ import annotations

import pytest

from nodes.engine.media.layout import frame_layout
from nodes.engine.models import ASPECT_RATIOS
from nodes.engine.storyboard import output_size


def test_four_five_is_a_choice_at_1080_by_1350():
    assert list(ASPECT_RATIOS) == ["9:16", "4:5", "1:1", "16:9"]
    assert output_size("4:5", "1080p") == (1080, 1350)
    assert output_size("4:5", "720p") == (720, 900)
    assert output_size("4:5", "360p") == (360, 450)


@pytest.mark.parametrize("aspect", list(ASPECT_RATIOS))
@pytest.mark.parametrize("resolution", ["180p", "720p", "1080p", "4k"])
def test_every_box_a_viewer_reads_lies_inside_the_safe_zone(aspect, resolution):
    W, H = output_size(aspect, resolution)
    lay = frame_layout(W, H)
    assert (lay.width, lay.height) == (W, H)
    for name in ("brand_bar", "hero", "headline", "subtitles"):
        assert lay.safe.contains(getattr(lay, name)), (aspect, resolution, name)
    # the boxes do not overlap vertically in a portrait or feed frame (photo above headline above subtitles)
    if H >= W:
        assert lay.brand_bar.bottom <= lay.hero.y and lay.hero.bottom <= lay.headline.y \
            and lay.headline.bottom <= lay.subtitles.y


def test_the_four_five_layout_uses_the_taller_frame():
    square, feed = frame_layout(1080, 1080), frame_layout(1080, 1350)
    assert feed.hero.h > square.hero.h * 1.2  # the extra height goes to the product, not to empty margins
    assert abs(feed.safe.y - 1350 * 0.05) <= 1 and abs(feed.safe.bottom - 1350 * 0.95) <= 2
