"""Server ceilings come from the environment; no value can make them unlimited."""
import math

import pytest

from nodes.engine import limits


def test_defaults_apply_when_unset():
    assert limits.MAX_COST_USD.read({}) == 5.0
    assert limits.MAX_LLM_ANSWER_BYTES.read({}) == 262144
    assert not limits.paid_providers_enabled({})


@pytest.mark.parametrize("raw", ["nan", "inf", "-1", "abc", "1e999"])
def test_bad_values_fall_back_to_the_safe_default(raw):
    assert limits.MAX_DOWNLOAD_BYTES.read({"ADREEL_MAX_DOWNLOAD_BYTES": raw}) == 512 * 1024 * 1024
    assert limits.MAX_COST_USD.read({"ADREEL_MAX_COST_USD": raw}) == 5.0


def test_zero_is_refused_where_it_would_mean_nothing_allowed_by_accident():
    assert limits.MAX_MEDIA_SECONDS.read({"ADREEL_MAX_MEDIA_SECONDS": "0"}) == 600.0
    assert limits.MAX_COST_USD.read({"ADREEL_MAX_COST_USD": "0"}) == 0.0


@pytest.mark.parametrize("widget,expected", [(0, 2.0), (math.nan, 2.0), (-5, 2.0), (math.inf, 2.0),
                                             (1.5, 1.5), (100, 2.0)])
def test_a_widget_budget_can_only_lower_the_ceiling(widget, expected):
    assert limits.effective_budget(widget, {"ADREEL_MAX_COST_USD": "2"}) == expected


def test_paid_providers_need_an_explicit_yes():
    assert limits.paid_providers_enabled({"ADREEL_PAID_PROVIDERS": "yes"})
    assert not limits.paid_providers_enabled({"ADREEL_PAID_PROVIDERS": "maybe"})


def test_require_finite_names_the_field():
    with pytest.raises(ValueError, match="end_card_seconds: must be a finite number"):
        limits.require_finite(math.nan, "end_card_seconds")
    assert limits.require_finite("2.5", "x") == 2.5
