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
