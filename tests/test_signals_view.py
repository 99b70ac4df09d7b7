"""sinks/signals_view.py: each frustration moment once, derived dead clicks on fields dropped."""
from __future__ import annotations

from replaylens.schemas.profiles import DEFAULT_PROFILE
from replaylens.sinks.profile_view import build_view
from replaylens.sinks.signals_view import frustration_signals
from tests.labelled_sessions import click, nav
from tests.sessions_factory import at, make_session


def test_a_source_signal_and_its_derived_twin_are_one_moment():
    events = [nav(0, "/"), click(1, "Go"), {"timestamp": at(1.5), "type": "rage-click",
                                              "target": {"selector": "button", "text": "Go"}}]
    signals = [{"type": "rage-click", "timestamp": at(1), "selector": "button", "count": 4, "derived": True},
               {"type": "dead-click", "timestamp": at(2), "selector": "input#q", "derived": True}]
    found = frustration_signals(build_view(make_session(events, signals=signals), DEFAULT_PROFILE))
    assert [(s["type"], s["derived"], s["count"]) for s in found] == [("rage-click", False, 4)]


def test_a_source_signals_count_is_read_defensively():
    """A source's own `properties.count` may be masked, a text or an object: 1 then, never a failure."""
    counts = []
    for count in (5, "7", 2.0, "[masked]", [3], {"n": 3}, None, True):
        events = [nav(0, "/"), {"timestamp": at(1), "type": "rage-click", "target": {"selector": "button"},
                                "properties": {"count": count}}]
        (found,) = frustration_signals(build_view(make_session(events), DEFAULT_PROFILE))
        counts.append(found["count"])
    assert counts == [5, 7, 2, 1, 1, 1, 1, 1]
