"""rrweb ingestion: real third-party recordings plus one crafted recording per mapping rule."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replaylens.schemas.events import Event
from replaylens.streams.rrweb import (
    RrwebError,
    RrwebOptions,
    ingest_recording,
    load_recording,
    recording_session_id,
    rrweb_to_events,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "rrweb"
FIXTURE_FILES = sorted(FIXTURES.glob("*.json"))
# Page loads per recording, as SOURCES.md describes them.
PAGE_LOADS = {
    "rrweb-player_demoit-app_2018.json": 1,
    "posthog-docs.json": 5,  # 9 Meta events: 4 re-snapshots of the page already shown
    "posthog-homepage.json": 1,
    "posthog-mobile-homepage.json": 2,
    "posthog-broken-recording.json": 2,
}


def ingest_fixture(name: str) -> list[dict]:
    return ingest_recording((FIXTURES / name).read_bytes(), session_id=Path(name).stem)


def of_type(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["type"] == kind]


def named(target):
    """What a person reads of a target (selector and text); tag/type/role are compared apart."""
    return None if target is None else {k: target[k] for k in ("selector", "text") if k in target}


# ---------------------------------------------------------------------------------------------
# Real recordings


def test_every_fixture_is_known():
    assert len(FIXTURE_FILES) >= 5, f"rrweb fixtures missing under {FIXTURES}"
    assert {p.name for p in FIXTURE_FILES} >= set(PAGE_LOADS)


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_fixture_ingests_into_a_valid_ordered_session(path: Path):
    events = ingest_recording(path.read_bytes(), session_id=path.stem)
    assert events, "a real recording yields events"
    for event in events:
        Event.model_validate(event)
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps)
    assert len({e["event_id"] for e in events}) == len(events)
    assert len({e["session_id"] for e in events}) == 1
    navigations = of_type(events, "navigate")
    if path.name in PAGE_LOADS:
        assert len(navigations) == PAGE_LOADS[path.name]
    # after the first page load every event sits on the page last loaded
    current = None
    for event in events:
        if event["type"] == "navigate":
            current = event["url"]
        elif current is not None:
            assert event["url"] == current
    raw_scrolls = sum(1 for e in load_recording(path.read_bytes())
                      if e["type"] == 3 and e["data"].get("source") == 3)
    assert len(of_type(events, "scroll")) <= max(12, raw_scrolls // 5)


def test_fixture_conversion_is_deterministic():
    assert ingest_fixture("posthog-docs.json") == ingest_fixture("posthog-docs.json")


def test_posthog_docs_clicks_inputs_and_scrolls():
    events = ingest_fixture("posthog-docs.json")
    clicks = of_type(events, "click")
    assert len(clicks) == 34 + 5
    assert sum(1 for c in clicks if c["properties"].get("double_click")) == 5
    resolved = [c for c in clicks if c.get("target", {}).get("selector") and c["target"].get("text")]
    assert len(resolved) >= 0.8 * len(clicks)
    assert {"selector": "a.keySelectedLink", "text": "Segment Integration"} in [named(c.get("target")) for c in clicks]

    inputs = of_type(events, "input-change")
    assert 8 <= len(inputs) <= 10, "43 keystrokes on 8 fields collapse to about one change per field edit"
    assert len({(e["url"], e["properties"]["node_id"]) for e in inputs}) == 8
    assert sum(e["properties"]["keystrokes"] for e in inputs) == 37  # the 6 keystrokes on id -1 are unattributable
    searches = [e for e in inputs if "doc-search" in e["target"]["selector"]]
    assert searches and all(e["value"].lower() == "utm" for e in searches)

    assert 20 <= len(of_type(events, "scroll")) <= 60  # 501 raw scroll events


def test_posthog_docs_keeps_search_field_label_not_its_value():
    search_clicks = [c for c in of_type(ingest_fixture("posthog-docs.json"), "click")
                     if c["target"]["selector"].startswith("input#doc-search")]
    assert search_clicks
    assert all(c["target"]["text"] in ("search input", "Search our Docs", "Search our Docs (⌘K)") for c in search_clicks)


def test_mobile_taps_become_one_click_each_and_swipes_none():
    events = ingest_fixture("posthog-mobile-homepage.json")
    clicks = of_type(events, "click")
    # 40 touch start/end pairs: 9 taps (each echoed by a browser click), the rest swipes.
    assert len(clicks) == 9
    assert all(c["properties"]["pointer"] == "touch" for c in clicks)
    assert {"selector": "a.responsive-menu-item-meta", "text": "Docs"} in [named(c["target"]) for c in clicks]
    assert len(of_type(events, "navigate")) == 2


def test_homepage_and_demoit_and_broken_recordings():
    homepage = ingest_fixture("posthog-homepage.json")
    assert len(of_type(homepage, "click")) == 6
    assert len(of_type(homepage, "input-change")) == 2  # the two toggles

    demo = ingest_fixture("rrweb-player_demoit-app_2018.json")
    assert {e["session_id"] for e in demo} == {"8dda0c07-b950-47ec-a5ea-3d25746042bf"}  # the events' own sessionId
    assert [c["target"]["selector"] for c in of_type(demo, "click")] == ["pre.CodeMirror-line", "pre.CodeMirror-line", "a.active"]

    broken = ingest_fixture("posthog-broken-recording.json")
    assert [c["target"] for c in of_type(broken, "click")] == [{"selector": "p > a", "text": "Docker deployment", "tag": "a"}]


# ---------------------------------------------------------------------------------------------
# Crafted recordings

T0 = 1_700_000_000_000


def element(node_id, tag, attrs=None, children=()):
    return {"type": 2, "tagName": tag, "attributes": attrs or {}, "childNodes": list(children), "id": node_id}


def text(node_id, content):
    return {"type": 3, "textContent": content, "id": node_id}


def page(href="https://shop.example.com/cart", t=T0, body=()):
    """Meta + full snapshot of <html><body>…</body></html>."""
    document = {"type": 0, "id": 1, "childNodes": [
        element(2, "html", {}, [element(3, "body", {}, list(body))])]}
    return [{"type": 4, "data": {"href": href, "width": 1280, "height": 800}, "timestamp": t},
            {"type": 2, "data": {"node": document, "initialOffset": {"top": 0, "left": 0}}, "timestamp": t + 5}]


def inc(t, **data):
    return {"type": 3, "data": data, "timestamp": t}


def click(t, node_id, x=10, y=10, kind=2):
    return inc(t, source=2, type=kind, id=node_id, x=x, y=y)


def keystroke(t, node_id, value):
    return inc(t, source=5, text=value, isChecked=False, id=node_id)


BODY = [
    element(10, "button", {"id": "buy", "class": "btn primary"}, [text(11, "  Buy   now ")]),
    element(12, "input", {"id": "email", "type": "email", "placeholder": "Your email", "value": "secret@x.io"}),
    element(13, "input", {"name": "card", "type": "text"}),
    element(14, "div", {"class": "menu"}, [element(15, "a", {"href": "/help"}, [
        element(16, "svg", {}, [element(17, "path", {})]), text(18, "Help")])]),
    element(19, "div", {}, [text(20, "x" * 200)]),
]


def convert(events, **kwargs):
    out = rrweb_to_events(events, session_id="s1", **kwargs)
    for event in out:
        Event.model_validate(event)
    return out


def test_meta_becomes_navigate_and_sets_url():
    out = convert(page() + [click(T0 + 100, 10)] + page("https://shop.example.com/checkout", T0 + 200))
    assert [(e["type"], e["url"]) for e in out] == [
        ("navigate", "https://shop.example.com/cart"), ("click", "https://shop.example.com/cart"),
        ("navigate", "https://shop.example.com/checkout")]
    assert out[0]["event_id"] == "rr-s1-0" and out[0]["session_id"] == "s1"


def test_click_targets_resolve_from_the_snapshot():
    out = convert(page(body=BODY) + [click(T0 + 100, 10), click(T0 + 200, 11), click(T0 + 300, 17),
                                     click(T0 + 400, 20), click(T0 + 500, 999)])
    targets = [named(e.get("target")) for e in of_type(out, "click")]
    assert of_type(out, "click")[0]["target"]["tag"] == "button"
    assert targets[0] == {"selector": "button#buy.btn.primary", "text": "Buy now"}
    assert targets[1] == targets[0]                      # a click on the text node is on its element
    assert targets[2] == {"selector": "div.menu > a", "text": "Help"}  # svg path → its link
    assert targets[3]["selector"] == "div" and len(targets[3]["text"]) <= 80
    assert targets[4] is None                            # unknown id: the click is kept, untargeted


def test_click_on_an_input_never_reads_its_value():
    out = convert(page(body=BODY) + [click(T0 + 100, 12), click(T0 + 200, 13)])
    assert [e["target"] for e in of_type(out, "click")] == [
        {"selector": "input#email", "text": "Your email", "tag": "input", "type": "email"},
        {"selector": "input[name=card]", "tag": "input", "type": "text"}]


def test_double_click_is_a_click_marked_double():
    out = convert(page(body=BODY) + [click(T0 + 100, 10), click(T0 + 150, 10), click(T0 + 151, 10, kind=4)])
    clicks = of_type(out, "click")
    assert len(clicks) == 3 and [bool(c["properties"].get("double_click")) for c in clicks] == [False, False, True]


def test_mutation_added_node_resolves_and_mutations_apply():
    added = inc(T0 + 50, source=0, texts=[], attributes=[], removes=[], adds=[
        {"parentId": 3, "nextId": None, "node": element(40, "button", {"class": "late"}, [text(41, "Pay")])}])
    changed = inc(T0 + 60, source=0, adds=[], removes=[{"parentId": 3, "id": 19}],
                  texts=[{"id": 41, "value": "Pay now"}],
                  attributes=[{"id": 40, "attributes": {"id": "pay", "class": "late btn"}}])
    out = convert(page(body=BODY) + [added, click(T0 + 55, 40), changed, click(T0 + 100, 40), click(T0 + 110, 20)])
    targets = [named(e["target"]) for e in of_type(out, "click")]
    assert targets[0] == {"selector": "button.late", "text": "Pay"}
    assert targets[1] == {"selector": "button#pay.late.btn", "text": "Pay now"}
    assert targets[2]["selector"] == "div"  # removed from the page, still known by id
    assert BODY[0]["attributes"] == {"id": "buy", "class": "btn primary"}  # the snapshot is never modified


def test_attribute_removal_mutation_drops_the_attribute():
    removed = inc(T0 + 60, source=0, adds=[], removes=[], texts=[], attributes=[{"id": 10, "attributes": {"id": None}}])
    out = convert(page(body=BODY) + [removed, click(T0 + 100, 10)])
    assert of_type(out, "click")[0]["target"]["selector"] == "button.btn.primary"


def test_inputs_collapse_to_one_change_per_field_edit():
    typing = [keystroke(T0 + 100 + i * 50, 12, "ann@shop.io"[: i + 1]) for i in range(11)]
    card = [keystroke(T0 + 2000 + i * 50, 13, "4242 4242"[: i + 1]) for i in range(9)]
    out = convert(page(body=BODY) + typing + [click(T0 + 1500, 10)] + card)
    inputs = of_type(out, "input-change")
    assert [(e["target"]["selector"], e["value"], e["properties"]["keystrokes"]) for e in inputs] == [
        ("input#email", "ann@shop.io", 11), ("input[name=card]", "4242 4242", 9)]
    assert inputs[0]["timestamp"] == T0 + 600  # when the value became final
    assert inputs[1]["timestamp"] == T0 + 2400  # flushed at the end of the recording


def test_input_edit_continues_through_clicks_on_the_same_field_and_ends_on_focus_change():
    events = page(body=BODY) + [
        keystroke(T0 + 100, 12, "a"), click(T0 + 200, 12), keystroke(T0 + 300, 12, "ab"),
        inc(T0 + 400, source=2, type=5, id=13),  # focus moves to another field
        keystroke(T0 + 500, 12, "abc"), inc(T0 + 600, source=2, type=6, id=12),  # blur
        keystroke(T0 + 700, -1, ""),  # rrweb's unattributable input
    ]
    inputs = of_type(convert(events), "input-change")
    assert [(e["value"], e["properties"]["keystrokes"]) for e in inputs] == [("ab", 2), ("abc", 1)]


def test_input_masked_by_the_recorder_is_flagged():
    out = convert(page(body=BODY) + [keystroke(T0 + 100, 13, "****"), keystroke(T0 + 150, 13, "*****")])
    (change,) = of_type(out, "input-change")
    assert change["value"] == "*****" and change["properties"]["masked_by_recorder"] is True


def test_checkbox_input_records_checked_state():
    box = element(30, "input", {"type": "checkbox", "id": "agree"})
    out = convert(page(body=[box]) + [inc(T0 + 100, source=5, text="on", isChecked=True, id=30)])
    (change,) = of_type(out, "input-change")
    assert change["properties"]["checked"] is True


def test_touch_tap_swipe_and_synthetic_click():
    events = page(body=BODY) + [
        click(T0 + 100, 11, 50, 60, kind=7), click(T0 + 160, 11, 51, 61, kind=9),   # tap
        click(T0 + 200, 10, 52, 62, kind=2),                                       # its synthetic click
        click(T0 + 1000, 19, 50, 500, kind=7), click(T0 + 1100, 19, 60, 300, kind=9),  # swipe
        click(T0 + 3000, 18, 5, 5, kind=9),                                        # lone touch end
        click(T0 + 5000, 12, 5, 5, kind=7), click(T0 + 7000, 12, 5, 5, kind=9),     # long press
    ]
    clicks = of_type(convert(events), "click")
    assert [(c["timestamp"], c["target"]["selector"], c["properties"]["pointer"]) for c in clicks] == [
        (T0 + 160, "button#buy.btn.primary", "touch"), (T0 + 3000, "div.menu > a", "touch")]


def test_scroll_bursts_collapse_per_target():
    burst = [inc(T0 + 100 + i * 100, source=3, id=1, x=0, y=i * 40) for i in range(20)]
    later = [inc(T0 + 5000, source=3, id=1, x=0, y=900), inc(T0 + 5050, source=3, id=19, x=0, y=10)]
    scrolls = of_type(convert(page(body=BODY) + burst + later), "scroll")
    assert len(scrolls) == 3
    first = scrolls[0]
    assert first["timestamp"] == T0 + 100 and "target" not in first  # the document itself
    assert first["properties"]["scroll_count"] == 20 and first["properties"]["y"] == 760
    assert first["properties"]["from_y"] == 0 and first["properties"]["duration_ms"] == 1900
    assert scrolls[2]["target"]["selector"] == "div"


def test_mouse_thrash_from_zigzag_moves_but_not_from_calm_moves():
    zigzag = [inc(T0 + 1000 + k * 100, source=1, positions=[{"x": 100 + (k % 2) * 300, "y": 200, "id": 3,
                                                              "timeOffset": 0}]) for k in range(12)]
    calm = [inc(T0 + 10_000 + k * 400, source=1, positions=[{"x": 100 + k * 50, "y": 200, "id": 3,
                                                             "timeOffset": -50}]) for k in range(12)]
    thrash = of_type(convert(page(body=BODY) + zigzag + calm), "mouse-thrash")
    assert len(thrash) == 1 and T0 + 1000 <= thrash[0]["timestamp"] <= T0 + 2200
    strict = RrwebOptions(thrash_min_reversals=20)
    assert of_type(convert(page(body=BODY) + zigzag, options=strict), "mouse-thrash") == []


def test_selection_becomes_one_highlight():
    events = page(body=BODY) + [
        inc(T0 + 100, source=14, ranges=[{"start": 11, "startOffset": 2, "end": 11, "endOffset": 5}]),
        inc(T0 + 300, source=14, ranges=[{"start": 11, "startOffset": 2, "end": 11, "endOffset": 11}]),
        inc(T0 + 5000, source=14, ranges=[{"start": 11, "startOffset": 3, "end": 11, "endOffset": 3}]),  # caret
    ]
    (highlight,) = of_type(convert(events), "highlight")
    assert highlight["value"] == "Buy now" and highlight["target"]["selector"] == "button#buy.btn.primary"
    assert highlight["properties"]["changes"] == 2


def test_console_errors_from_plugin_and_log_source():
    plugin = {"type": 6, "timestamp": T0 + 100, "data": {"plugin": "rrweb/console@1", "payload": {
        "level": "error", "trace": ["at pay (app.js:10:5)"], "payload": ['"Uncaught TypeError: x is undefined"', "42"]}}}
    info = {"type": 6, "timestamp": T0 + 200, "data": {"plugin": "rrweb/console@1",
                                                        "payload": {"level": "info", "payload": ['"hello"']}}}
    legacy = inc(T0 + 300, source=11, level="assert", payload=['"cart total mismatch"'], trace=[])
    errors = of_type(convert(page() + [plugin, info, legacy]), "console-error")
    assert [e["error"]["message"] for e in errors] == ["Uncaught TypeError: x is undefined 42", "cart total mismatch"]
    assert errors[0]["properties"] == {"level": "error", "trace": ["at pay (app.js:10:5)"]}


def test_network_failures_become_network_errors():
    requests = [
        {"url": "https://shop.example.com/api/checkout", "method": "post", "status": 500, "initiatorType": "fetch"},
        {"url": "https://shop.example.com/api/cart", "method": "GET", "status": 200},
        {"url": "https://cdn.example.com/a.js", "status": 0},
        {"name": "https://shop.example.com/api/track", "error": "net::ERR_BLOCKED_BY_CLIENT"},
    ]
    network = {"type": 6, "timestamp": T0 + 100, "data": {"plugin": "rrweb/network@1", "payload": {"requests": requests}}}
    errors = of_type(convert(page() + [network]), "network-error")
    # a request without a method has none (not an invented "GET")
    assert [(e["error"]["status"], e["error"].get("method"), e["error"]["request_url"]) for e in errors] == [
        (500, "POST", "https://shop.example.com/api/checkout"), (0, None, "https://cdn.example.com/a.js"),
        (0, None, "https://shop.example.com/api/track")]
    assert errors[0]["error"]["message"] == "POST https://shop.example.com/api/checkout failed with status 500"
    assert "ERR_BLOCKED_BY_CLIENT" in errors[2]["error"]["message"]
    assert [e["event_id"] for e in errors] == ["rr-s1-2", "rr-s1-2-1", "rr-s1-2-2"]


def test_custom_events():
    events = page() + [
        {"type": 5, "timestamp": T0 + 100, "data": {"tag": "Added to Cart", "payload": {"sku": "A1", "price": 9.5}}},
        {"type": 5, "timestamp": T0 + 200, "data": {"tag": "plan", "payload": "pro"}},
        {"type": 5, "timestamp": T0 + 300, "data": {"payload": {"no": "tag"}}},
        {"type": 5, "timestamp": T0 + 400, "data": {"tag": "copy", "payload": {"text": "SAVE10"}}},
    ]
    out = convert(events)
    customs = of_type(out, "custom")
    assert [(e["name"], e.get("properties")) for e in customs] == [
        ("Added to Cart", {"sku": "A1", "price": 9.5}), ("plan", {"payload": "pro"})]
    assert of_type(out, "copy")[0]["properties"] == {"text": "SAVE10"}


def test_user_and_session_id_choice():
    events = page() + [click(T0 + 100, 3)]
    out = rrweb_to_events(events, user={"id": "u1", "email": "a@b.co"})
    assert {e["session_id"] for e in out} == {f"rrweb-{T0}"}
    assert all(e["user"] == {"id": "u1", "email": "a@b.co"} for e in out)
    tagged = [dict(e, sessionId="rec-9") for e in events]
    assert {e["session_id"] for e in rrweb_to_events(tagged, session_id="param")} == {"rec-9"}
    assert rrweb_to_events([]) == []


def test_events_out_of_order_in_the_recording_come_out_sorted():
    events = page(body=BODY) + [click(T0 + 500, 10), click(T0 + 300, 10)]
    stamps = [e["timestamp"] for e in convert(events)]
    assert stamps == sorted(stamps)


# ---------------------------------------------------------------------------------------------
# Unwrapping and errors


@pytest.mark.parametrize("wrap", [
    lambda ev: ev,
    lambda ev: {"result": ev},
    lambda ev: {"events": ev},
    lambda ev: {"snapshots": ev},
    lambda ev: {"result": {"snapshots": ev}},
    lambda ev: {"sessionId": "w-1", "events": ev},
    lambda ev: {"session_id": "w-1", "data": {"events": ev}},
    lambda ev: {"snapshot_data_by_window_id": {"w1": ev[:1], "w2": ev[1:]}},
])
def test_load_recording_unwraps_common_wrappers(wrap):
    events = page() + [click(T0 + 100, 3)]
    wrapped = wrap(events)
    for form in (wrapped, json.dumps(wrapped), json.dumps(wrapped).encode()):
        loaded = [{k: v for k, v in e.items() if k != "windowId"} for e in load_recording(form)]
        assert loaded == events
    out = ingest_recording(wrapped, session_id="fallback")
    expected = "w-1" if isinstance(wrapped, dict) and ("sessionId" in wrapped or "session_id" in wrapped) else "fallback"
    assert {e["session_id"] for e in out} == {expected}
    assert recording_session_id(wrapped) == (expected if expected != "fallback" else None)


@pytest.mark.parametrize("bad", [b"not json {", "{\"foo\": 1}", [1, 2, 3], {"events": [{"kind": "click"}]}, 42, "\"text\""])
def test_things_that_are_not_recordings_raise_rrweb_error(bad):
    with pytest.raises(RrwebError, match="not an rrweb recording"):
        ingest_recording(bad)
    assert issubclass(RrwebError, ValueError)


def test_rrweb_to_events_rejects_non_lists():
    with pytest.raises(RrwebError):
        rrweb_to_events({"type": 4})  # type: ignore[arg-type]


def test_broken_events_are_skipped_not_raised():
    events = page(body=BODY) + [
        None, {"type": 3}, {"type": 3, "timestamp": T0 + 1, "data": "compressed"},
        inc(T0 + 2, source=2, type=2, id="x"), inc(T0 + 3, source=1, positions="nope"),
        inc(T0 + 4, source=1, positions=[{"x": "a"}]), inc(T0 + 5, source=0, adds=[{"node": None}], removes="x"),
        inc(T0 + 6, source=3), inc(T0 + 7, source=5, id=12, text=None), inc(T0 + 8, source=14, ranges=[{}]),
        {"type": 4, "timestamp": T0 + 9, "data": {"href": None}}, {"type": 6, "timestamp": T0 + 10, "data": {}},
        {"type": 6, "timestamp": T0 + 11, "data": {"plugin": "rrweb/network@1", "payload": {"requests": [None, 3]}}},
        {"type": 2, "timestamp": T0 + 12, "data": {"node": {"childNodes": "x"}}}, click(T0 + 13, 10),
        {"type": 3, "timestamp": "yesterday", "data": {}},
    ]
    out = convert(events)
    assert of_type(out, "navigate") and all(isinstance(e["timestamp"], int) for e in out)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 20) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["type", "data", "timestamp", "source", "id", "x", "y", "positions", "adds", "removes",
                         "texts", "attributes", "node", "childNodes", "tagName", "href", "plugin", "payload",
                         "level", "requests", "status", "tag", "text", "ranges", "start", "parentId"]),
        inner, max_size=6),
    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.fixed_dictionaries({"type": st.integers(0, 7), "timestamp": st.integers(0, 10**13),
                                       "data": json_values}), max_size=15))
def test_arbitrary_rrweb_shaped_input_never_crashes(events):
    for event in rrweb_to_events(events, session_id="fuzz"):
        Event.model_validate(event)
