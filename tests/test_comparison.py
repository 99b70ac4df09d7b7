"""Comparisons with the average experience: baselines in event time, a run compares each session
with what came before it, the min-sample rule (aggregates/comparison.py `compare_batch`)."""
from __future__ import annotations

import asyncio

import orjson

from replaylens.aggregates.comparison import compare_batch
from replaylens.aggregates.store import AggregateStore
from replaylens.aggregates.urls import UrlNormalizer
from replaylens.config.settings import Settings
from replaylens.schemas.sessions import Comparison
from replaylens.streams.embedded import EmbeddedPipeline
from replaylens.streams.simulator import simulate_bytes
from tests.sessions_factory import make_session

DAY_MS = 86_400_000
LAST_MONTH = 1_700_000_000_000  # Nov 2023: far older than any 7-day window around the wall clock
MIN_SESSIONS = 20
NORMALIZER = UrlNormalizer()


def visit(n: int, start: int, lcp: float = 1500.0) -> dict:
    return make_session([
        {"timestamp": start, "type": "navigate", "url": "https://shop.test/checkout"},
        {"timestamp": start + 1_000, "type": "web-vitals", "metrics": {"lcp": lcp}},
        {"timestamp": start + 30_000, "type": "click", "target": {"selector": "button#pay", "text": "Pay"}},
    ], session_id=f"s-{n}")


def test_a_batch_of_last_months_sessions_is_compared_with_what_came_before_each(tmp_path):
    with AggregateStore(tmp_path / "a.duckdb", 7, 30) as store:
        sessions = [visit(n, LAST_MONTH + n * 60_000) for n in range(30)]
        sessions[-1] = visit(29, LAST_MONTH + 29 * 60_000, lcp=5_000)
        deltas = compare_batch(list(reversed(sessions)), store.url_stats, NORMALIZER, MIN_SESSIONS, 7)
        with_comparisons = [s["session_id"] for s in sessions if s["comparisons"]]
        # the first 20 build the baseline (min-sample rule); each later one is compared with them
        assert with_comparisons == [f"s-{n}" for n in range(MIN_SESSIONS, 30)]
        lcp = next(c for c in sessions[-1]["comparisons"] if c["metric"] == "lcp")
        assert lcp["worse"] and lcp["sample_size"] == 29 and lcp["baseline_value"] == 1500.0
        assert lcp["text"] == "LCP 5.0 s vs p75 1.5 s on /checkout"
        store.apply(deltas)
        # a later batch, still last month: the store's figures (in event time) are its baseline
        later = visit(99, LAST_MONTH + DAY_MS)
        compare_batch([later], store.url_stats, NORMALIZER, MIN_SESSIONS, 7)
        assert later["comparisons"] and later["comparisons"][0]["sample_size"] == 30


def test_the_window_ends_at_the_sessions_time_not_later(tmp_path):
    with AggregateStore(tmp_path / "a.duckdb", 7, 3650) as store:
        old = [visit(n, LAST_MONTH + n * 60_000) for n in range(25)]
        store.apply(compare_batch(old, store.url_stats, NORMALIZER, MIN_SESSIONS, 7))
        too_late = visit(100, LAST_MONTH + 8 * DAY_MS)  # past the 7-day window of those sessions
        compare_batch([too_late], store.url_stats, NORMALIZER, MIN_SESSIONS, 7)
        assert too_late["comparisons"] == []
        before = visit(101, LAST_MONTH - DAY_MS)  # before them: they are not its past
        compare_batch([before], store.url_stats, NORMALIZER, MIN_SESSIONS, 7)
        assert before["comparisons"] == []


def test_batch_sessions_outside_the_window_leave_it():
    sessions = [visit(n, LAST_MONTH + n * 60_000) for n in range(25)]
    late = visit(200, LAST_MONTH + 10 * DAY_MS)
    compare_batch(sessions + [late], lambda urls, at: {}, NORMALIZER, MIN_SESSIONS, 7)
    assert late["comparisons"] == [] and sessions[-1]["comparisons"]


def test_batch_comparisons_are_exactly_what_the_comparison_model_dumps():
    # built as dicts for speed: they must stay what Comparison(...).model_dump() gives
    sessions = [visit(n, LAST_MONTH + n * 60_000, lcp=1000.0 + n) for n in range(30)]
    compare_batch(sessions, lambda urls, at: {}, NORMALIZER, MIN_SESSIONS, 7)
    found = [c for s in sessions for c in s["comparisons"]]
    assert found and {c["metric"] for c in found} >= {"lcp", "bounce_rate"}
    for c in found:
        assert Comparison(**c).model_dump() == c and list(Comparison(**c).model_dump()) == list(c)
        assert type(c["session_value"]) is float and type(c["baseline_value"]) is float


def test_most_sessions_of_a_fresh_run_have_comparisons(tmp_path):
    settings = Settings(data_dir=tmp_path, duckdb_path=tmp_path / "r.duckdb",
                        summaries_path=tmp_path / "summaries.ndjson")
    pipeline = EmbeddedPipeline(settings, examples=0)
    messages = (value for _key, value in simulate_bytes(400, seed=3))
    report = asyncio.run(pipeline.run(messages, progress=False))
    closed = [orjson.loads(line) for line in (tmp_path / "closed-sessions.ndjson").read_bytes().splitlines()]
    assert len(closed) == report.counters["sessions_closed"] == 400
    share = sum(1 for s in closed if s["comparisons"]) / len(closed)
    assert share >= 0.9, share
