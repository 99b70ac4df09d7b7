"""Profile filters, slices and context selection, checked event by event."""
from __future__ import annotations

import copy

import pytest
from pydantic import ValidationError

from replaylens.schemas.profiles import DEFAULT_PROFILE, SummaryProfile
from replaylens.sinks.links import md_link, replay_link
from replaylens.sinks.profile_view import build_view
from tests.sessions_factory import at, make_session

USER = {"id": "u-7", "email": "jane@example.com"}
DEVICE = {"type": "mobile", "os": "iOS", "browser": "Safari"}


def shop_session() -> dict:
    """12 events, one per second; ids e1..e12 in time order."""
    events = [
        {"timestamp": at(0), "type": "navigate", "url": "https://shop.test/", "user": USER, "device": DEVICE},
        {"timestamp": at(1), "type": "click", "target": {"text": "Shoes"}},
        {"timestamp": at(2), "type": "scroll"},
        {"timestamp": at(3), "type": "navigate", "url": "https://shop.test/product/7"},
        {"timestamp": at(4), "type": "click", "target": {"text": "Add"}},
        {"timestamp": at(5), "type": "custom", "name": "Added to Cart"},
        {"timestamp": at(6), "type": "custom", "name": "Newsletter Shown"},
        {"timestamp": at(7), "type": "scroll"},
        {"timestamp": at(8), "type": "navigate", "url": "https://shop.test/cart"},
        {"timestamp": at(9), "type": "click", "target": {"text": "Checkout"}},
        {"timestamp": at(10), "type": "rage-click", "target": {"text": "Checkout"}},
        {"timestamp": at(11), "type": "scroll"},
    ]
    signals = [
        {"type": "dead-click", "timestamp": at(1), "event_id": "e2", "derived": True},
        {"type": "rage-click", "timestamp": at(9), "event_id": "e10", "derived": True},
    ]
    return make_session(events, signals=signals)


def profile(**fields) -> SummaryProfile:
    return SummaryProfile(id="p", **fields)


def ids(view) -> list[str]:
    return [e["event_id"] for e in view.events]


def test_default_profile_keeps_everything():
    session = shop_session()
    view = build_view(session, DEFAULT_PROFILE)
    assert ids(view) == [f"e{i}" for i in range(1, 13)]
    assert (view.started_at, view.ended_at) == (session["started_at"], session["ended_at"])
    assert len(view.signals) == 2 and len(view.pages) == 3
    assert view.total_events == 12
    assert view.window_id == session["window_id"]


def test_first_event_limit_keeps_earliest():
    view = build_view(shop_session(), profile(slice={"mode": "FIRST", "event_limit": 3}))
    assert ids(view) == ["e1", "e2", "e3"]
    assert (view.started_at, view.ended_at) == (at(0), at(2))
    assert [s["type"] for s in view.signals] == ["dead-click"]
    assert [p["url"] for p in view.pages] == ["https://shop.test/"]


def test_last_event_limit_keeps_latest():
    view = build_view(shop_session(), profile(slice={"mode": "LAST", "event_limit": 3}))
    assert ids(view) == ["e10", "e11", "e12"]
    assert (view.started_at, view.ended_at) == (at(9), at(11))
    assert [s["type"] for s in view.signals] == ["rage-click"]
    assert [p["url"] for p in view.pages] == ["https://shop.test/cart"]


def test_timestamp_mode_starts_at_start_timestamp():
    view = build_view(shop_session(), profile(
        slice={"mode": "TIMESTAMP", "start_timestamp": at(3.5), "event_limit": 2}))
    assert ids(view) == ["e5", "e6"]
    assert view.started_at == at(3.5)
    assert [p["url"] for p in view.pages] == ["https://shop.test/product/7"]


def test_duration_limit_first_measures_from_first_kept_event():
    view = build_view(shop_session(), profile(slice={"mode": "FIRST", "duration_limit_ms": 2500}))
    assert ids(view) == ["e1", "e2", "e3"]


def test_duration_limit_last_measures_back_from_last_event():
    view = build_view(shop_session(), profile(slice={"mode": "LAST", "duration_limit_ms": 2000}))
    assert ids(view) == ["e10", "e11", "e12"]


def test_duration_limit_timestamp_measures_from_first_event_after_start():
    view = build_view(shop_session(), profile(
        slice={"mode": "TIMESTAMP", "start_timestamp": at(6.5), "duration_limit_ms": 1000}))
    assert ids(view) == ["e8", "e9"]  # 7 s and 8 s: within 1 s of the first kept event


def test_both_limits_apply_together():
    tight_count = build_view(shop_session(), profile(
        slice={"mode": "FIRST", "event_limit": 2, "duration_limit_ms": 5000}))
    assert ids(tight_count) == ["e1", "e2"]
    tight_time = build_view(shop_session(), profile(
        slice={"mode": "LAST", "event_limit": 10, "duration_limit_ms": 1000}))
    assert ids(tight_time) == ["e11", "e12"]


def test_filter_runs_before_slice_last_relevant_events():
    view = build_view(shop_session(), profile(
        events={"include_types": ["click"]}, slice={"mode": "LAST", "event_limit": 2}))
    # The last 2 *clicks*, not the clicks among the last 2 events.
    assert ids(view) == ["e5", "e10"]
    assert view.signals == []  # rage-click and dead-click types are not included


def test_include_custom_event_by_name():
    view = build_view(shop_session(), profile(events={"include_types": ["Added to Cart", "navigate"]}))
    assert ids(view) == ["e1", "e4", "e6", "e9"]


def test_include_custom_matches_all_custom_events():
    view = build_view(shop_session(), profile(events={"include_types": ["custom"]}))
    assert ids(view) == ["e6", "e7"]


def test_exclude_types_and_custom_names():
    view = build_view(shop_session(), profile(events={"exclude_types": ["scroll", "Newsletter Shown"]}))
    assert ids(view) == ["e1", "e2", "e4", "e5", "e6", "e9", "e10", "e11"]


def test_signal_kept_only_when_its_type_passes():
    view = build_view(shop_session(), profile(events={"exclude_types": ["dead-click"]}))
    assert [s["type"] for s in view.signals] == ["rage-click"]


def test_type_filter_alone_keeps_the_whole_span():
    session = shop_session()
    view = build_view(session, profile(events={"include_types": ["custom"]}))
    assert (view.started_at, view.ended_at) == (session["started_at"], session["ended_at"])
    assert len(view.pages) == 3


def test_include_and_exclude_together_rejected():
    with pytest.raises(ValidationError, match="set include_types or exclude_types, not both"):
        profile(events={"include_types": ["click"], "exclude_types": ["scroll"]})


def test_context_selection():
    view = build_view(shop_session(), profile(context={"include": ["device"]}))
    assert view.context == {"device": DEVICE}
    assert all("user" not in e for e in view.events)  # per-event copies must not leak it
    assert view.events[0]["device"] == DEVICE

    view = build_view(shop_session(), profile(context={"exclude_user_context": True}))
    assert "user" not in view.context and view.context["device"] == DEVICE

    view = build_view(shop_session(), DEFAULT_PROFILE)
    assert view.context["user"] == USER


def test_build_view_does_not_mutate_the_session():
    session = shop_session()
    before = copy.deepcopy(session)
    build_view(session, profile(context={"include": ["org"]}, slice={"mode": "LAST", "event_limit": 2}))
    assert session == before


def test_replay_link_encodes_session_and_time():
    link = replay_link("{replay_base_url}/sessions/{session_id}?t={timestamp_ms}",
                       "http://replay.test/", "user:sess", 1_700_000_000_123)
    assert link == "http://replay.test/sessions/user%3Asess?t=1700000000123"


def test_replay_link_unknown_placeholder():
    with pytest.raises(ValueError, match=r"unknown placeholder\(s\) \{recording\}"):
        replay_link("{replay_base_url}/{recording}", "http://x", "s", 1)


def test_md_link_escapes_brackets():
    assert md_link("clicked [Pay]", "http://x/a(b)") == r"[clicked \[Pay\]](http://x/a%28b%29)"
