"""Server ceilings come from the environment; no value can make them unlimited."""
import math
import os
import re

import pytest

from nodes.engine import limits


def documented_ceilings() -> dict[str, str]:
    """The README's table of server ceilings: variable → the default it documents."""
    readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md"), encoding="utf-8").read()
    table = readme[readme.index("**Server ceilings.**"):]
    table = table[:table.index("\n\n", table.index("| variable |"))]
    out = {}
    for row in table.splitlines():
        cells = [c.strip() for c in row.strip("|").split("|")]
        names = re.findall(r"`(ADREEL_[A-Z_]+)`", cells[0])
        if names:
            out.update(zip(names, [v.strip() for v in cells[1].split(",")], strict=True))
    return out


def documented_value(text: str) -> float:
    number, _, unit = text.partition(" ")
    return float(number) * {"GiB": 1024 ** 3, "MiB": 1024 ** 2, "s": 1, "": 1}[unit]


def test_an_unset_ceiling_is_the_default_the_readme_documents():
    documented = documented_ceilings()
    ceilings = {c.env: c for c in vars(limits).values() if isinstance(c, limits.Ceiling)}
    assert set(ceilings) == set(documented) - {limits.PAID_PROVIDERS_ENV}, "a ceiling the README does not list"
    for env, ceiling in ceilings.items():
        assert ceiling.read({}) == documented_value(documented[env]), env
    assert documented[limits.PAID_PROVIDERS_ENV] == "off" and not limits.paid_providers_enabled({})


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
