"""Profiles loaded from a directory of JSON files."""
from __future__ import annotations

import json

import pytest

from replaylens.schemas.profiles import DEFAULT_PROFILE, SummaryProfile
from replaylens.sinks.profiles_store import ProfileError, ProfileStore


def write(folder, name, data):
    path = folder / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_no_directory_has_only_the_default():
    store = ProfileStore(None)
    assert store.all() == [DEFAULT_PROFILE]
    assert store.get("default") is DEFAULT_PROFILE and store.get("nope") is None


def test_loads_profiles_and_streaming_subset(tmp_path):
    write(tmp_path, "support.json", {"id": "support", "llm": {"output_schema": '{"type": "object"}'}})
    write(tmp_path, "adhoc.json", {"id": "adhoc", "streaming": False})
    write(tmp_path, "notes.txt", "ignored")
    store = ProfileStore(tmp_path)
    assert [p.id for p in store.all()] == ["default", "adhoc", "support"]
    assert [p.id for p in store.streaming()] == ["default", "support"]
    assert store.get("support").llm.output_schema == {"type": "object"}


def test_default_can_be_overridden(tmp_path):
    write(tmp_path, "default.json", {"id": "default", "description": "ours", "streaming": False})
    store = ProfileStore(tmp_path)
    assert store.get("default").description == "ours" and store.streaming() == []


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('[{"id": "a"}]', "one JSON object"),
    ('{"id": "a", "events": {"include_types": ["click"], "exclude_types": ["scroll"]}}', "not both"),
    ('{"id": "a", "colour": "red"}', "colour"),
])
def test_invalid_file_names_the_file(tmp_path, content, message):
    path = write(tmp_path, "broken.json", content)
    with pytest.raises(ProfileError, match=message) as info:
        ProfileStore(tmp_path)
    assert str(path) in str(info.value)


def test_duplicate_ids_rejected(tmp_path):
    write(tmp_path, "a.json", {"id": "same"})
    write(tmp_path, "b.json", {"id": "same"})
    with pytest.raises(ProfileError, match="already defined in .*a.json"):
        ProfileStore(tmp_path)


def test_missing_directory(tmp_path):
    with pytest.raises(ProfileError, match="does not exist"):
        ProfileStore(tmp_path / "absent")


def test_add_persists_and_reloads(tmp_path):
    store = ProfileStore(tmp_path)
    store.add(SummaryProfile(id="checkout", description="checkout focus", slice={"mode": "LAST", "event_limit": 50}))
    assert (tmp_path / "checkout.json").exists()
    reloaded = ProfileStore(tmp_path).get("checkout")
    assert reloaded.slice.event_limit == 50 and reloaded.description == "checkout focus"
    store.add(SummaryProfile(id="checkout", description="v2"))
    assert ProfileStore(tmp_path).get("checkout").description == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkout.json"]


def test_add_rejects_unsafe_file_name(tmp_path):
    with pytest.raises(ProfileError, match="cannot be a file name"):
        ProfileStore(tmp_path).add(SummaryProfile(id="../evil"))
    memory = ProfileStore(None)
    memory.add(SummaryProfile(id="../fine-in-memory"))
    assert memory.get("../fine-in-memory") is not None
