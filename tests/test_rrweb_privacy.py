"""The rrweb translator's measurements under the DEFAULT privacy settings, end to end.

What the translator puts on mapped events (node ids, counts, durations, coordinates, a click's
response, the pointer kind, double_click, ...) says how the page was used, not what the user
typed: it must survive ingest masking, or rage clicks per node, dead clicks and text selections
silently change (and a masked highlight duration once made closing fail the whole session).
Here the real recordings go through the stage the worker builds from default settings, as bytes,
as the events topic carries them; a toggle's `checked`, typed values and console traces stay
masked. And no property value, of any type, may make closing raise.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replaylens.config.privacy import MASK, Masker, PrivacyPolicy
from replaylens.config.settings import Settings
from replaylens.streams.ingest import EventDecoder, encode_event
from replaylens.streams.rrweb import load_recording, map_recording
from replaylens.streams.sessionizer import SessionRules
from replaylens.streams.signals import SignalRules, detect_signals
from replaylens.streams.stage import Origin, SessionStage

RRWEB = Path(__file__).resolve().parent / "fixtures" / "rrweb"
REAL_RECORDINGS = sorted(RRWEB.glob("*.json"))
T0 = 1_700_000_000_000
WALL = 2_000_000_000_000  # the pipeline clock: after every recording
EVERYTHING = PrivacyPolicy(allowed_property_keys=("*",))  # no property masked: the translator's output
ORIGIN = Origin("replay-events", 0)


def default_stage() -> SessionStage:
    """The sessionizing stage the worker builds from the default settings (default Masker)."""
    return SessionStage.from_settings(Settings())


def unmasked_stage() -> SessionStage:
    s = Settings()
    return SessionStage(SessionRules.from_settings(s), SignalRules.from_settings(s),
                        EventDecoder(EVERYTHING, s.future_tolerance_ms, s.max_event_bytes))


def closed(stage: SessionStage, events: list[dict]) -> list[dict]:
    """Mapped events through the stage as bytes; the closed sessions. Nothing may be lost."""
    for event in events:
        stage.process(0, encode_event(event, stage.decoder.max_event_bytes), ORIGIN, WALL, clock_ms=WALL)
    flush = stage.flush([0], close_all=True)
    assert flush.dead_letters == [] and stage.counters.internal_errors == 0
    assert sum(s["event_count"] for s in flush.closed) == len(events)
    return flush.closed


def signals(sessions: list[dict]) -> list[tuple]:
    return [(s["type"], s["event_id"], s["count"], s["detail"]) for c in sessions for s in c["signals"]]


def mapped(path: Path) -> list[dict]:
    return map_recording(path.read_bytes(), session_id=path.stem).events


def of_type(events, kind):
    return [e for e in events if e["type"] == kind]


def test_default_masking_keeps_the_translators_measurements_and_masks_checked():
    kept = masked = 0
    decoder = EventDecoder(Masker())
    for path in REAL_RECORDINGS:
        for event in mapped(path):
            out = orjson.loads(decoder.decode(orjson.dumps(event), WALL).json)
            for key, value in (event.get("properties") or {}).items():
                if key == "checked":  # the user's choice on a toggle: masked like a typed value
                    assert out["properties"][key] == MASK
                    masked += 1
                else:
                    assert out["properties"][key] == value, (path.name, event["type"], key)
                    kept += 1
    assert kept > 1_000 and masked == 12


def test_every_kind_of_mapped_property_survives_and_user_content_does_not():
    document = {"type": 0, "id": 1, "childNodes": [{"type": 2, "id": 2, "tagName": "html", "attributes": {},
                "childNodes": [{"type": 2, "id": 3, "tagName": "body", "attributes": {}, "childNodes": [
                    {"type": 2, "id": 10, "tagName": "p", "attributes": {}, "childNodes": [
                        {"type": 3, "id": 11, "textContent": "Free shipping over 50 EUR"}]},
                    {"type": 2, "id": 12, "tagName": "input", "attributes": {"type": "password"}, "childNodes": []},
                    {"type": 2, "id": 13, "tagName": "input", "attributes": {"type": "checkbox"}, "childNodes": []}]}]}]}

    def inc(t, **data):
        return {"type": 3, "timestamp": T0 + t, "data": data}

    recording = [
        {"type": 4, "timestamp": T0, "data": {"href": "https://shop.example.com/", "width": 1280, "height": 800}},
        {"type": 2, "timestamp": T0 + 1, "data": {"node": document}},
        inc(100, source=2, type=2, id=10, x=5, y=6),
        inc(200, source=14, ranges=[{"start": 11, "startOffset": 0, "end": 11, "endOffset": 13}]),
        inc(300, source=5, text="******", id=12, userTriggered=False),
        inc(400, source=5, text="on", isChecked=True, id=13),
        inc(500, source=3, id=1, x=0, y=400), inc(700, source=3, id=1, x=0, y=900),
        {"type": 6, "timestamp": T0 + 800, "data": {"plugin": "rrweb/console@1", "payload": {
            "level": "error", "trace": ["at pay (https://shop.example.com/app.js?token=abc:1:1)"],
            "payload": ['"boom"']}}},
        {"type": 6, "timestamp": T0 + 900, "data": {"plugin": "rrweb/network@1", "payload": {"requests": [
            {"url": "https://shop.example.com/api/pay", "method": "POST", "status": 500, "initiatorType": "fetch",
             "duration": 120}]}}},
        {"type": 5, "timestamp": T0 + 1_000, "data": {"tag": "$pageview", "payload": {"href": "https://shop.example.com/cart"}}},
        inc(4_000, source=2, type=4, id=10, x=5, y=6),
    ]
    events = map_recording(recording, session_id="s1").events
    decoder = EventDecoder(Masker())
    out = {e["event_id"]: orjson.loads(decoder.decode(orjson.dumps(e), WALL).json) for e in events}
    user_content = {("input-change", "checked"), ("console-error", "trace")}
    seen = set()
    for event in events:
        for key, value in (event.get("properties") or {}).items():
            seen.add((event["type"], key))
            expected = MASK if (event["type"], key) in user_content else value
            assert out[event["event_id"]]["properties"][key] == expected, (event["type"], key)
    assert {("click", "response"), ("click", "double_click"), ("highlight", "duration_ms"), ("highlight", "changes"),
            ("input-change", "masked_by_recorder"), ("input-change", "user_triggered"), ("input-change", "keystrokes"),
            ("scroll", "scroll_count"), ("navigate", "width"), ("navigate", "source"), ("console-error", "level"),
            ("network-error", "initiatorType"), ("network-error", "duration")} <= seen
    assert all(out[e["event_id"]]["value"] == MASK for e in of_type(events, "input-change"))


def test_real_recordings_give_the_same_signals_at_default_settings_as_unmasked():
    totals: dict[str, int] = {}
    for path in REAL_RECORDINGS:
        events = mapped(path)
        at_default = signals(closed(default_stage(), events))
        assert at_default == signals(closed(unmasked_stage(), events)), path.name
        assert [s[:3] for s in at_default] == [(s["type"], s["event_id"], s["count"]) for s in detect_signals(events)]
        for kind, *_ in at_default:
            totals[kind] = totals.get(kind, 0) + 1
    assert totals == {"dead-click": 9, "mouse-thrash": 2}


def test_clicks_keep_node_pointer_and_response_through_the_default_stage():
    for name, pointer, clicks in (("posthog-docs.json", "mouse", 39), ("rrweb-player_demoit-app_2018.json", "mouse", 3),
                                  ("posthog-mobile-homepage.json", "touch", 9)):
        events = [e for s in closed(default_stage(), mapped(RRWEB / name)) for e in s["events"]]
        taps = of_type(events, "click")
        assert len(taps) == clicks and all(type(c["properties"]["node_id"]) is int for c in taps), name
        assert {c["properties"]["pointer"] for c in taps} == {pointer}
        assert all(set(c["properties"]["response"]) in ({"kind", "after_ms"}, {"none_within_ms"}) for c in taps)


def test_rage_clicks_are_per_node_at_default_settings():
    events = mapped(RRWEB / "posthog-homepage.json")
    # Three images sharing one selector, clicked within a second: three elements, not rage.
    burst = [e for e in events if e["event_id"] in ("rr-posthog-homepage-148", "rr-posthog-homepage-152",
                                                     "rr-posthog-homepage-156")]
    assert len({e["target"]["selector"] for e in burst}) == 1 and len({e["properties"]["node_id"] for e in burst}) == 3
    assert "rage-click" not in {s[0] for s in signals(closed(default_stage(), events))}
    # The same image clicked three times: rage.
    again = [dict(burst[0], event_id=f"again-{k}", timestamp=events[-1]["timestamp"] + 100 * k,
                  properties=dict(burst[0]["properties"], response={"kind": "mutation", "after_ms": 50}))
             for k in range(1, 4)]
    rage = [s for s in signals(closed(default_stage(), events + again)) if s[0] == "rage-click"]
    assert rage == [("rage-click", "again-1", 3, "3 clicks within 1000 ms")]


def test_a_text_selection_around_a_click_closes_and_is_no_dead_click_at_default_settings():
    raw = load_recording((RRWEB / "rrweb-player_demoit-app_2018.json").read_bytes())
    events = map_recording(raw, session_id="sel").events
    click = of_type(events, "click")[0]
    node = click["properties"]["node_id"]
    t = raw[-1]["timestamp"] + 10_000
    later = [{"type": 3, "timestamp": t, "data": {"source": 2, "type": 2, "id": node, "x": 1, "y": 1}},
             {"type": 3, "timestamp": t + 200, "data": {"source": 14, "ranges": [
                 {"start": node, "startOffset": 0, "end": node, "endOffset": 1}]}},
             {"type": 3, "timestamp": t + 900, "data": {"source": 14, "ranges": [
                 {"start": node, "startOffset": 0, "end": node, "endOffset": 2}]}},
             # the pointer moves on: the recording covers the dead-click window, and nothing answered
             {"type": 3, "timestamp": t + 4_000, "data": {"source": 1, "positions": [{"x": 5, "y": 5, "id": node,
                                                                                   "timeOffset": 0}]}}]
    events = map_recording(raw + later, session_id="sel").events
    highlight = of_type(events, "highlight")[-1]
    assert highlight["properties"] == {"changes": 2, "duration_ms": 700}
    (session,) = closed(default_stage(), events)
    kept = next(e for e in session["events"] if e["event_id"] == highlight["event_id"])
    assert kept["properties"] == {"changes": 2, "duration_ms": 700}
    selecting = of_type(events, "click")[-1]
    assert selecting["properties"]["response"] == {"none_within_ms": 2_500}  # nothing answered it...
    assert selecting["event_id"] not in {s[1] for s in signals([session])}  # ...but it selected text
    without = [e for e in events if e["type"] != "highlight"]
    assert ("dead-click", selecting["event_id"]) in {s[:2] for s in signals(closed(default_stage(), without))}


# -- no property value makes closing fail -------------------------------------------------------

_KEYS = ["node_id", "duration_ms", "double_click", "response", "after_ms", "none_within_ms", "kind", "count",
         "changes", "scroll_count", "x", "y", "pointer", "checked", "other"]
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([MASK, "mouse", "mutation", "12", "", "abc"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_KEYS), inner, max_size=4),
    max_leaves=8)
_target = st.fixed_dictionaries({"selector": st.sampled_from(["p", "button#buy", "input#q", "textarea"])},
                                optional={"tag": _json, "type": _json, "role": _json, "text": st.just("Buy")})
_event = st.fixed_dictionaries(
    {"type": st.sampled_from(["click", "click", "highlight", "scroll", "navigate", "network-error", "rage-click"]),
     "dt": st.sampled_from([0, 10, 300, 900, 2_600, 12_000]),
     "properties": st.one_of(st.none(), st.dictionaries(st.sampled_from(_KEYS), _json, max_size=5))},
    optional={"target": _target})


def _contract_events(drafts: list[dict]) -> list[dict]:
    events, t = [], T0
    for n, draft in enumerate(drafts):
        t += draft["dt"]
        event = {"event_id": f"e{n}", "session_id": "fuzz", "timestamp": t, "type": draft["type"],
                 "url": "https://shop.example.com/"}
        for key in ("target", "properties"):
            if draft.get(key) is not None:
                event[key] = draft[key]
        events.append(event)
    return events


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_event, min_size=1, max_size=25))
def test_no_property_value_makes_closing_raise(drafts):
    events = _contract_events(drafts)
    for stage in (default_stage(), unmasked_stage()):  # masked values, and raw ones reaching closing
        sessions = closed(stage, events)
        assert all(isinstance(s["signals"], list) for s in sessions)


def test_a_masked_or_odd_highlight_duration_near_a_click_closes():
    base = {"session_id": "h", "url": "https://shop.example.com/"}
    for duration in (MASK, "300", [1], {"ms": 1}, True, None, -5, 2.5):
        events = [dict(base, event_id="c", timestamp=T0, type="click", target={"selector": "p", "tag": "p"},
                       properties={"node_id": 4}),
                  dict(base, event_id="h", timestamp=T0 + 100, type="highlight", target={"selector": "p"},
                       properties={"duration_ms": duration, "changes": 1})]
        for stage in (default_stage(), unmasked_stage()):
            (session,) = closed(stage, events)
            assert session["event_count"] == 2
