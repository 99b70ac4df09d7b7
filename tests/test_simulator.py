"""The traffic simulator: deterministic, valid contract events, flows in the intended proportions."""
from __future__ import annotations

from collections import defaultdict
from itertools import islice

import orjson
import pytest

from replaylens.schemas.events import Event
from replaylens.config.privacy import mask_text
from replaylens.streams.simulator import (
    CHECKOUT_API_PATH,
    DEAD_CLICK_SELECTORS,
    DEFAULT_START_MS,
    FLOW_WEIGHTS,
    simulate,
    simulate_bytes,
)

SESSIONS = 500


@pytest.fixture(scope="module")
def stream() -> list[dict]:
    return list(simulate(SESSIONS, seed=7))


@pytest.fixture(scope="module")
def by_session(stream) -> dict[str, list[dict]]:
    sessions: dict[str, list[dict]] = defaultdict(list)
    for event in stream:
        sessions[event["session_id"]].append(event)
    return sessions


def in_time_order(events: list[dict]) -> list[dict]:
    return sorted(events, key=lambda e: e["timestamp"])


def share(by_session: dict, predicate) -> float:
    return sum(1 for events in by_session.values() if predicate(in_time_order(events))) / len(by_session)


def has_rage_burst(events: list[dict], count: int = 3, window_ms: int = 1_000) -> bool:
    clicks = [e for e in events if e["type"] == "click"]
    for i in range(len(clicks) - count + 1):
        group = clicks[i: i + count]
        if (len({c["target"]["selector"] for c in group}) == 1
                and group[-1]["timestamp"] - group[0]["timestamp"] <= window_ms):
            return True
    return False


def is_frustrated(events: list[dict]) -> bool:
    dead = {selector for selector, _ in DEAD_CLICK_SELECTORS}
    return (has_rage_burst(events) or any(e["type"] == "mouse-thrash" for e in events)
            or any(e["type"] == "click" and e["target"]["selector"] in dead for e in events)
            or any(e["type"] == "web-vitals" and e["metrics"]["lcp"] > 4_000 for e in events))


def checkout_failed(events: list[dict]) -> bool:
    return any(e["type"] == "network-error" and e["error"]["request_url"].endswith(CHECKOUT_API_PATH)
               and e["error"]["status"] == 500 for e in events)


def custom_named(name: str):
    return lambda events: any(e["type"] == "custom" and e["name"] == name for e in events)


def test_same_seed_same_events_other_seed_other_events():
    first = list(simulate(40, seed=3))
    assert first == list(simulate(40, seed=3))
    assert first != list(simulate(40, seed=4))


def test_every_event_validates_and_ids_are_unique(stream):
    for event in stream:
        Event.model_validate(event)
    assert len({e["event_id"] for e in stream}) == len(stream)
    assert len({e["session_id"] for e in stream}) == SESSIONS


def test_sessions_start_with_navigate_and_carry_context(by_session):
    for events in by_session.values():
        ordered = in_time_order(events)
        assert ordered[0]["type"] == "navigate"
        assert all(e.get("device") and e.get("location") for e in events)
        pages = sum(1 for e in events if e["type"] == "navigate")
        assert sum(1 for e in events if e["type"] == "web-vitals") == pages
    identified = share(by_session, lambda ev: bool(ev[0].get("user")))
    assert 0.3 <= identified <= 0.5
    assert all(e["user"]["email"].count("@") == 1 for ev in by_session.values() for e in ev if e.get("user"))


def test_stream_is_in_time_order_but_for_a_few_late_events(stream, by_session):
    late = 0
    newest = stream[0]["timestamp"]
    for event in stream:
        assert event["timestamp"] >= newest - 4_000, "late events are at most a few seconds late"
        late += event["timestamp"] < newest
        newest = max(newest, event["timestamp"])
    assert 0 < late <= 0.03 * len(stream)
    out_of_order = 0
    for events in by_session.values():
        stamps = [e["timestamp"] for e in events]
        out_of_order += sum(1 for a, b in zip(stamps, stamps[1:]) if b < a)
        assert stamps[0] >= DEFAULT_START_MS
    assert 0 < out_of_order <= 0.02 * len(stream)
    assert list(simulate(30, seed=1, disorder_rate=0.0)) == sorted(simulate(30, seed=1, disorder_rate=0.0),
                                                                    key=lambda e: e["timestamp"])


def test_sessions_overlap_in_time(by_session):
    spans = sorted((ev[0]["timestamp"], max(e["timestamp"] for e in ev)) for ev in map(in_time_order, by_session.values()))
    overlapping = sum(1 for (s1, e1), (s2, _) in zip(spans, spans[1:]) if s2 < e1)
    assert overlapping > 0.5 * len(spans)


def test_flow_proportions(by_session):
    tolerance = 0.06  # about 3 standard deviations at 500 sessions
    bounce = share(by_session, lambda ev: sum(e["type"] == "navigate" for e in ev) == 1)
    assert abs(bounce - FLOW_WEIGHTS["bounce"]) < tolerance
    carts = share(by_session, custom_named("Added to Cart"))
    assert abs(carts - (FLOW_WEIGHTS["abandon"] + FLOW_WEIGHTS["purchase"])) < tolerance
    attempts = share(by_session, lambda ev: any(e["type"] == "click" and e["target"]["selector"] == "button#place-order"
                                                for e in ev))
    assert abs(attempts - FLOW_WEIGHTS["purchase"]) < tolerance
    orders = share(by_session, custom_named("Order Completed"))
    assert FLOW_WEIGHTS["purchase"] * 0.7 < orders < attempts
    searches = share(by_session, lambda ev: any(e["type"] == "input-change" and e["target"]["selector"] == "input#search"
                                                for e in ev))
    assert 0.15 < searches < 0.4
    assert share(by_session, lambda ev: any("/search?q=" in e["url"] for e in ev)) == searches
    assert 0.03 < share(by_session, checkout_failed) < 0.09  # 25% purchase × 20% failure
    assert 0.1 < share(by_session, is_frustrated) < 0.5
    ended = share(by_session, lambda ev: ev[-1]["type"] == "session-end")
    assert abs(ended - 0.5) < 0.08


def test_pages_look_like_a_shop(stream):
    urls = {e["url"] for e in stream}
    assert any(u.startswith("https://shop.example.com/product/") and u.rsplit("/", 1)[1].isdigit() for u in urls)
    assert any(u.startswith("https://shop.example.com/category/") for u in urls)
    assert "https://shop.example.com/cart" in urls and "https://shop.example.com/checkout" in urls
    assert any(u.endswith("/confirmation") for u in urls)
    vitals = [e["metrics"] for e in stream if e["type"] == "web-vitals"]
    assert all(set(m) == {"lcp", "inp", "cls", "fcp", "ttfb"} for m in vitals)
    assert all(m["ttfb"] < m["fcp"] < m["lcp"] for m in vitals)


def test_typed_values_include_personal_data_for_masking(stream):
    typed = [e["value"] for e in stream if e["type"] == "input-change"]
    assert any("@" in v for v in typed) and any(mask_text(v) == "[card]" for v in typed)


def test_checkout_failure_knob_and_its_aftermath():
    sessions: dict[str, list[dict]] = defaultdict(list)
    for event in simulate(300, seed=11, checkout_failure_rate=1.0, frustration_rate=0.0):
        sessions[event["session_id"]].append(event)
    attempted = [in_time_order(ev) for ev in sessions.values()
                 if any(e["type"] == "click" and e["target"]["selector"] == "button#place-order" for e in ev)]
    assert attempted and all(checkout_failed(ev) for ev in attempted)
    for events in attempted:
        failure = next(e for e in events if e["type"] == "network-error")
        assert failure["error"]["method"] == "POST" and failure["url"].endswith("/checkout")
        assert any(e["type"] == "console-error" and e["timestamp"] >= failure["timestamp"] for e in events)
    rage_after_failure = sum(has_rage_burst(ev) for ev in attempted) / len(attempted)
    assert 0.45 < rage_after_failure < 0.85
    recovered = sum(custom_named("Order Completed")(ev) for ev in attempted) / len(attempted)
    assert 0.25 < recovered < 0.55


def test_clean_traffic_has_no_frustration_or_failures():
    sessions: dict[str, list[dict]] = defaultdict(list)
    for event in simulate(200, seed=5, frustration_rate=0.0, checkout_failure_rate=0.0, slow_page_rate=0.0):
        sessions[event["session_id"]].append(event)
    assert not any(is_frustrated(in_time_order(ev)) or checkout_failed(ev) for ev in sessions.values())


def test_frustration_knob_drives_frustrated_sessions():
    sessions: dict[str, list[dict]] = defaultdict(list)
    for event in simulate(400, seed=9, frustration_rate=0.5, checkout_failure_rate=0.0, slow_page_rate=0.0):
        sessions[event["session_id"]].append(event)
    frustrated = share(sessions, is_frustrated)
    assert abs(frustrated - 0.5) < 0.1


def test_simulate_bytes_gives_session_keys_and_json_values():
    pairs = list(islice(simulate_bytes(20, seed=2, start_ms=1_000_000), 50))
    assert [orjson.loads(v) for _, v in pairs] == list(islice(simulate(20, seed=2, start_ms=1_000_000), 50))
    assert all(k == orjson.loads(v)["session_id"].encode() for k, v in pairs)


def test_start_site_and_argument_checks():
    events = list(simulate(3, seed=1, start_ms=5_000, site="https://store.test/"))
    assert min(e["timestamp"] for e in events) == 5_000
    assert all(e["url"].startswith("https://store.test/") for e in events)
    assert list(simulate(0)) == []
    with pytest.raises(ValueError, match="frustration_rate"):
        list(simulate(1, frustration_rate=1.5))
    with pytest.raises(ValueError, match="sessions"):
        list(simulate(-1))
