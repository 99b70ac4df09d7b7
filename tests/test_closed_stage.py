"""The closed-session stage: comparisons and deltas once per flush; one session's failure never
fails the others."""
from __future__ import annotations

from replaylens.aggregates.store import AggregateStore
from replaylens.aggregates.urls import UrlNormalizer
from replaylens.config.settings import Settings
from replaylens.sinks.builtin import BuiltinSummarizer
from replaylens.sinks.closed_stage import ClosedSessionStage
from replaylens.sinks.summarize import build_sink
from replaylens.streams.simulator import simulate_bytes
from replaylens.streams.stage import Origin, SessionStage, now_ms


def closed_sessions(n: int) -> list[dict]:
    stage = SessionStage.from_settings(Settings())
    for i, (_k, raw) in enumerate(simulate_bytes(n, seed=8)):
        stage.process(0, raw, Origin("t", 0, i), now_ms())
    return stage.flush([0], close_all=True, with_state=False).closed


def test_one_session_that_breaks_comparisons_is_published_without_them(tmp_path):
    s = Settings()
    store = AggregateStore(tmp_path / "a.duckdb")
    try:
        stage = ClosedSessionStage(store, UrlNormalizer(), build_sink(s, [], BuiltinSummarizer.from_settings(s)), 1)
        good = closed_sessions(2)
        bad = {"session_id": "x", "window_id": "x@1", "pages": [{"url": "https://shop.example.com/"}],
               "events": "not a list of events"}
        at = max(g["ended_at"] for g in good)  # the simulator's time: the baseline window is around it
        deltas = stage.enrich([good[0], bad, good[1]], at)
        assert stage.failed == 1 and bad["comparisons"] == []
        assert deltas and all("comparisons" in g for g in good)
        store.apply(deltas)  # the good sessions' deltas are whole: they apply
        assert store.url_stats(None, at)["*"].visits == 2
    finally:
        store.close()
