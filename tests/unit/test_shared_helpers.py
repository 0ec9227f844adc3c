"""The pack's one helper for each of: credential shapes, numbers from the environment, atomic writes and
path containment. Each is checked by what its callers' users see: a refused option, a masked log line, a
warning naming the variable, a file that is whole or untouched, a link that cannot lead out."""
from __future__ import annotations

import logging
import os
import stat

import pytest

from nodes.engine.cloud.credentials import looks_like_key
from nodes.engine.cloud.llm_policy import PolicyError, check_key_name
from nodes.engine.cloud.redaction import MASK, redact
from nodes.engine.limits import env_number
from nodes.engine.media.files import is_inside, write_atomic
from nodes.engine.models import AdReelInputError
from nodes.engine.providers.request import parse_options

# --- credentials: one table of shapes for what is refused in a workflow and what is masked in any text ---
# Each of these was known to only one of the three former detectors; all three uses know them all now.
SHAPES_ONCE_KNOWN_TO_ONE = [
    "pplx-" + "Ab3dE6gH9jK2mN5pQ8sT",                       # was refused only as an LLM key name
    "nvapi-" + "Ab3dE6gH9jK2mN5pQ8sT1vW4",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZHJlZWwtdGVzdCJ9",    # a JWT: was refused only in provider options
    "xoxb-" + "1234567890-abcdefghij",
    "key_" + "0f1e2d3c4b5a69788796a5b4c3d2e1f0",            # a Runway key
    "hf_" + "Ab3dE6gH9jK2mN5pQ8",                           # 18 characters: masked, but not refused, before
]


@pytest.mark.parametrize("key", SHAPES_ONCE_KNOWN_TO_ONE)
def test_a_key_shape_is_masked_in_text_and_refused_in_options_and_as_a_key_name(key):
    assert redact(f"the provider said: bad key {key}, try again") == f"the provider said: bad key {MASK}, try again"
    with pytest.raises(AdReelInputError) as err:
        parse_options('{"style": "cinematic %s"}' % key)
    assert key not in str(err.value) and key[:6] not in str(err.value)
    with pytest.raises(PolicyError) as err:
        check_key_name(key)
    assert "looks like an API key" in str(err.value) and key[:6] not in str(err.value)


@pytest.mark.parametrize("text", [
    "2d5b0e6c1f4a4b8e9c7d6e5f4a3b2c1d",                    # a hex id (an avatar, a voice)
    "8f14e45f-ceea-467f-a0e6-1b2c3d4e5f60",                # a UUID
    "Angela-inblackskirt-20220820", "kling-v2-master", "SceneKeyImageFallbackCamera",
    "/out/still_5e8b2d7c91f04a6b3c2d1e0f_1080x1920.png",   # the pack's own key-image file name
    "/tmp/pytest-7/test_key_lookup_order_and_mess0/secrets.json", "key_name_from_widget",
])
def test_ids_and_names_in_options_are_not_keys(text):
    assert not looks_like_key(text)
    assert parse_options('{"avatar_id": "%s"}' % text).shared["avatar_id"] == text
    assert redact(f"file {text} done") == f"file {text} done"


def test_where_a_variable_name_belongs_a_hex_string_or_a_bare_prefix_is_a_key():
    for value in ("0123456789abcdef0123456789abcdef", "sk_live_abcdef", "Bearer abc"):
        assert looks_like_key(value, name_expected=True) and not looks_like_key(value)
    for name in ("OPENAI_API_KEY", "ADREEL_LLM_KEY_LOCAL", "QWERTYUIOPASDFGHJKLZXCVB"):
        assert not looks_like_key(name, name_expected=True)


# --- numbers from the environment ---------------------------------------------------------------------
@pytest.mark.parametrize("raw, expected, warned", [
    ("", 7.0, False), ("  ", 7.0, False), ("3", 3.0, False), ("10", 10.0, False), ("1", 1.0, False),
    ("0.5", 7.0, True), ("11", 7.0, True), ("nan", 7.0, True), ("inf", 7.0, True), ("soon", 7.0, True),
])
def test_env_number_takes_a_finite_number_in_range_or_warns_and_keeps_the_default(monkeypatch, caplog, raw,
                                                                                   expected, warned):
    monkeypatch.setenv("ADREEL_TEST_NUMBER", raw)
    with caplog.at_level(logging.WARNING):
        assert env_number("ADREEL_TEST_NUMBER", 7.0, 1, 10) == expected
    assert ("ADREEL_TEST_NUMBER" in caplog.text) is warned
    if warned:
        assert "between 1 and 10" in caplog.text and "using the default 7" in caplog.text


def test_env_number_bounds_kinds_and_what_happens_instead(caplog):
    assert env_number("N", None, 0, above=True, environ={"N": "0.25"}) == 0.25
    with caplog.at_level(logging.WARNING):
        assert env_number("N", None, 0, above=True, otherwise="each provider's own", environ={"N": "0"}) is None
    assert "N must be a number above 0, not '0': each provider's own" in caplog.text
    assert env_number("N", 5, 0, kind=int, environ={"N": "12.0"}) == 12
    assert isinstance(env_number("N", 5, 0, kind=int, environ={"N": "12.0"}), int)
    assert env_number("N", 5, 0, environ={"N": "0"}) == 0.0


# --- atomic writes --------------------------------------------------------------------------------------
def test_write_atomic_writes_text_bytes_or_through_a_function(tmp_path):
    target = tmp_path / "f"
    write_atomic(target, "héllo\n")
    assert target.read_text(encoding="utf-8") == "héllo\n"
    write_atomic(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    write_atomic(target, lambda fh: fh.write(b"streamed"), durable=False)
    assert target.read_bytes() == b"streamed"
    assert os.listdir(tmp_path) == ["f"]  # no temporary file left behind


def test_a_failed_write_leaves_the_old_file_whole_and_no_temporary_file(tmp_path):
    target = tmp_path / "manifest.json"
    target.write_text("old")

    def half_then_fail(fh):
        fh.write(b"half of the new")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, half_then_fail)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["manifest.json"]


def test_keep_mode_keeps_the_old_permissions(tmp_path):
    target = tmp_path / "f"
    target.write_text("old")
    target.chmod(0o640)
    write_atomic(target, "new", keep_mode=True)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640 and target.read_text() == "new"


# --- path containment -----------------------------------------------------------------------------------
def test_is_inside_resolves_links_and_dots_and_is_not_fooled_by_a_shared_prefix(tmp_path):
    folder, sibling = tmp_path / "fonts", tmp_path / "fonts-evil"
    folder.mkdir()
    sibling.mkdir()
    (folder / "a.ttf").write_bytes(b"x")
    (sibling / "b.ttf").write_bytes(b"x")
    os.symlink(sibling / "b.ttf", folder / "link.ttf")
    assert is_inside(folder / "a.ttf", folder) and is_inside(folder, folder)
    assert not is_inside(sibling / "b.ttf", folder)                 # "fonts-evil" starts like "fonts"
    assert not is_inside(folder / "link.ttf", folder)               # a link out
    assert not is_inside(f"{folder}/../fonts-evil/b.ttf", folder)   # dots out
    assert is_inside(sibling / "b.ttf", folder, sibling)            # any of several folders
    assert not is_inside(folder / "a.ttf") and not is_inside(folder / "a.ttf", "")


def test_the_provider_journal_compacts_to_its_open_jobs_in_one_private_file(tmp_path, monkeypatch):
    from nodes.engine.providers import journal
    monkeypatch.setattr(journal, "MAX_JOURNAL_BYTES", 4096)
    jr = journal.JobJournal(tmp_path / "state" / "jobs.jsonl")
    for i in range(60):
        jr.append("submitting", f"done{i}", provider="runway", model="gen4_turbo", scene_index=i)
        jr.append("failed", f"done{i}", provider="runway", model="gen4_turbo", scene_index=i)
    jr.append("submitted", "open", provider="luma", model="ray-2", scene_index=3, job_id="job-7")
    before = jr.path.stat().st_size
    jr.compact()
    assert jr.path.stat().st_size < before // 10
    (entry,) = jr.entries().values()
    assert (entry.key, entry.event, entry.job_id, entry.scene_index) == ("open", "submitted", "job-7", 3)
    assert os.listdir(jr.path.parent) == ["jobs.jsonl"] and stat.S_IMODE(jr.path.stat().st_mode) == 0o600
