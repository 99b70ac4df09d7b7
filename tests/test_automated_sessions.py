"""Likely automated sessions: marked on the closed session, kept out of the per-URL baselines."""
from __future__ import annotations

import orjson

from replaylens.aggregates.deltas import session_deltas
from replaylens.aggregates.store import AggregateStore
from replaylens.aggregates.urls import UrlNormalizer
from replaylens.config.settings import Settings
from replaylens.schemas.sessions import ClosedSession
from replaylens.sinks.closed_stage import ClosedSessionStage
from replaylens.streams.sessionizer import Closed, Window, build_closed_session
from replaylens.streams.signals import automation_evidence

T0 = 1_700_000_000_000
HEADLESS = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0 Safari/537.36"
CHROME = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/133.0 Safari/537.36"


def closed(session_id: str, user_agent: str, console: str = "") -> dict:
    events = [{"event_id": f"{session_id}-1", "session_id": session_id, "timestamp": T0, "type": "navigate",
               "url": "https://shop.example.com/checkout", "device": {"user_agent": user_agent}},
              {"event_id": f"{session_id}-2", "session_id": session_id, "timestamp": T0 + 5000, "type": "console-error",
               "url": "https://shop.example.com/checkout", "error": {"message": console or "TypeError: x"}}]
    window = Window(T0, T0 + 5000)
    for k, ev in enumerate(events):
        window.add((ev["timestamp"], k, ev["event_id"], ev["type"], orjson.dumps(ev).decode()))
    session = build_closed_session(Closed(session_id, window, "end-of-input"))
    ClosedSession.model_validate(session)
    return session


def test_headless_user_agent_and_console_markers_mark_the_session():
    assert closed("bot", HEADLESS)["automated"] == "user agent names HeadlessChrome"
    assert closed("cy", CHROME, "Cypress could not find element")["automated"] == "console output mentions Cypress"
    assert closed("human", CHROME)["automated"] is None
    assert automation_evidence([{"type": "click", "device": {"browser": "Chrome"}}]) is None  # nothing guessed


def test_automated_sessions_stay_out_of_baselines_by_default(tmp_path):
    settings = Settings()
    assert settings.baselines_exclude_automated is True
    store = AggregateStore(tmp_path / "a.duckdb")
    try:
        normalizer = UrlNormalizer.from_settings(settings)
        stage = ClosedSessionStage(store, normalizer, sink=None, min_sessions=1)
        sessions = [closed("human", CHROME), closed("bot", HEADLESS)]
        own = {s["session_id"]: {d.delta_id for d in session_deltas(s, normalizer)} for s in sessions}
        deltas = stage.enrich(sessions, T0 + 10_000)
        assert {d.delta_id for d in deltas} == own["human"]
        assert all("comparisons" in s for s in sessions)  # still compared and summarized
        both = ClosedSessionStage(store, normalizer, sink=None, min_sessions=1, exclude_automated=False)
        assert {d.delta_id for d in both.enrich(sessions, T0 + 10_000)} == own["human"] | own["bot"]
    finally:
        store.close()
