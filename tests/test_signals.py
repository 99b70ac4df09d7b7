"""Signal detection on raw clicks: rage, dead, error clicks; source-sent signals kept once."""
from replaylens.streams.pages import page_visits
from replaylens.streams.signals import SignalRules, detect_signals

T0 = 1_700_000_000_000


def e(ts, etype, sel=None, **kw):
    ev = {"event_id": f"e{ts}", "timestamp": T0 + ts, "type": etype, "url": "https://x.test/p"}
    if sel:
        ev["target"] = {"selector": sel, "text": sel}
    ev.update(kw)
    return ev


def kinds(signals):
    return [(s["type"], s["timestamp"] - T0) for s in signals]


def test_rage_click_burst_is_one_signal_with_count():
    events = [e(0, "navigate"), e(100, "click", "#buy"), e(300, "click", "#buy"), e(500, "click", "#buy"),
              e(700, "click", "#buy"), e(9000, "scroll")]
    sig = detect_signals(events)
    assert kinds(sig) == [("rage-click", 100)] and sig[0]["count"] == 4


def test_two_clicks_are_not_rage_and_spread_clicks_are_not_a_burst():
    events = [e(0, "click", "#a"), e(2000, "navigate"), e(3000, "click", "#b"), e(4500, "click", "#b"),
              e(6000, "click", "#b"), e(6100, "navigate")]
    assert not [s for s in detect_signals(events) if s["type"] == "rage-click"]


def test_dead_click_needs_silence_and_a_session_that_goes_on():
    events = [e(0, "navigate"), e(1000, "click", "#tab"), e(5000, "scroll"), e(9000, "click", "#last")]
    assert kinds(detect_signals(events)) == [("dead-click", 1000)]


def test_click_answered_by_navigation_or_custom_event_is_not_dead():
    events = [e(0, "click", "#a"), e(500, "navigate"), e(1000, "click", "#b"),
              e(1200, "custom", name="Added to Cart"), e(9000, "scroll")]
    assert detect_signals(events) == []


def test_focus_click_on_a_field_is_not_dead():
    events = [e(0, "click", "input#search"), e(9000, "scroll")]
    assert detect_signals(events) == []


def test_error_click_names_the_error():
    err = {"status": 500, "method": "POST", "request_url": "/api/checkout"}
    events = [e(0, "click", "#pay"), e(800, "network-error", error=err), e(9000, "scroll")]
    sig = detect_signals(events)
    assert kinds(sig) == [("error-click", 0)] and "500" in sig[0]["detail"]


def test_source_sent_signal_kept_and_not_derived_twice():
    events = [e(0, "click", "#x"), e(100, "click", "#x"), e(200, "click", "#x"),
              e(250, "rage-click", "#x"), e(5000, "navigate")]
    sig = detect_signals(events)
    assert [(s["type"], s["derived"]) for s in sig] == [("rage-click", False)]


def test_thresholds_are_settings():
    events = [e(0, "click", "#a"), e(100, "click", "#a"), e(5000, "navigate")]
    assert detect_signals(events, SignalRules(rage_count=2))[0]["type"] == "rage-click"


def test_pages_time_on_page_and_exit_page():
    events = [e(0, "click", "#a", url="https://x.test/a"), e(1000, "navigate", url="https://x.test/b"),
              e(4000, "click", "#b", url="https://x.test/b"), e(6000, "navigate", url="https://x.test/c"),
              e(6500, "scroll", url="https://x.test/c")]
    pages = page_visits(events)
    assert [(p["url"][-1], p["time_on_page_ms"], p["event_count"]) for p in pages] == \
        [("a", 1000, 1), ("b", 5000, 2), ("c", 500, 2)]
