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


def test_dead_click_on_contract_events_needs_silence_and_a_retry():
    # Without DOM information the stream must show that nothing answered: silence past the
    # window, then the user clicks the same target again (issue 10: a click on "Pay now" followed
    # 5.5 s later by the confirmation is slow, not dead; a lone click on a tab proves nothing).
    events = [e(0, "navigate"), e(1000, "click", "#tab"), e(5000, "scroll"), e(6000, "click", "#tab"),
              e(9000, "click", "#last"), e(20000, "scroll")]
    assert kinds(detect_signals(events)) == [("dead-click", 1000)]
    lone = [e(0, "navigate"), e(1000, "click", "#tab"), e(5000, "scroll"), e(9000, "click", "#last")]
    assert detect_signals(lone) == []


def test_slow_answer_is_not_a_dead_click():
    events = [e(0, "navigate"), e(1000, "click", "#pay", target={"selector": "button#pay", "text": "Pay now"}),
              e(6500, "navigate", url="https://x.test/confirmation"), e(9000, "scroll")]
    assert detect_signals(events) == []


def response(after=None, none_within=None):
    return {"response": {"kind": "mutation", "after_ms": after} if after is not None
            else {"none_within_ms": none_within}}


def test_recorded_clicks_are_dead_only_when_the_page_did_not_respond():
    events = [e(0, "navigate"), e(1000, "click", "#a", properties={"node_id": 5, **response(after=120)}),
              e(2000, "click", "#b", properties={"node_id": 6, **response(none_within=2500)}),
              e(3000, "click", "#c", properties={"node_id": 7, **response(none_within=900)}),  # recording ended
              e(20000, "scroll")]
    assert kinds(detect_signals(events)) == [("dead-click", 2000)]


def test_toggles_are_never_dead_and_rage_needs_one_element():
    toggle = {"selector": "input.switch", "tag": "input", "type": "checkbox"}
    events = [e(0, "navigate"), e(1000, "click", properties={"node_id": 8, **response(none_within=2500)},
                                  target=toggle), e(20000, "scroll")]
    assert detect_signals(events) == []
    # three clicks with the same (unreadable) selector on three different rrweb nodes: not rage
    spread = [e(0, "navigate")] + [e(100 + 100 * k, "click", "div", properties={"node_id": 20 + k, **response(after=50)})
                                   for k in range(3)] + [e(9000, "scroll")]
    assert detect_signals(spread) == []
    same = [e(0, "navigate")] + [e(100 + 100 * k, "click", "div", properties={"node_id": 20, **response(after=50)})
                                 for k in range(3)] + [e(9000, "scroll")]
    assert kinds(detect_signals(same)) == [("rage-click", 100)]


def test_a_multi_click_that_selects_text_is_not_rage():
    words = [e(100 + 80 * k, "click", "p.intro") for k in range(3)] + [e(400, "highlight", "p.intro"), e(9000, "navigate")]
    assert detect_signals(words) == []
    field = {"selector": "input#search", "tag": "input", "type": "search"}
    in_field = [e(100 + 80 * k, "click", target=field) for k in range(3)] + [e(9000, "navigate")]
    assert detect_signals(in_field) == []


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


def test_hidden_and_idle_time_is_not_time_on_page():
    marker = lambda ts, name: e(ts, "custom", name=name)  # noqa: E731 - posthog-js recorder tags
    events = [e(0, "navigate", url="https://x.test/feed"), e(1000, "click", "#a", url="https://x.test/feed"),
              marker(2000, "window hidden"), marker(62000, "window visible"), e(63000, "scroll"),
              marker(70000, "sessionIdle"), e(190000, "click", "#b"),  # activity ends the idle stretch
              e(191000, "navigate", url="https://x.test/post"), e(195000, "scroll", url="https://x.test/post")]
    feed, post = page_visits(events)
    assert (feed["hidden_ms"], feed["idle_ms"], feed["time_on_page_ms"]) == (60000, 120000, 191000 - 180000)
    assert (post["hidden_ms"], post["idle_ms"], post["time_on_page_ms"]) == (0, 0, 4000)
