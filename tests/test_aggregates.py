"""Aggregates: URL normalization, per-session deltas, exact arithmetic, the DuckDB store
(incremental == recompute, idempotence, window, retention, persistence, export) and the
comparison of a session with its pages' baselines."""
from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replaylens.aggregates.arithmetic import UrlStats, VitalStats, median, p75, quantile, recompute, window_start
from replaylens.aggregates.comparison import compare_session, format_duration, session_urls
from replaylens.aggregates.deltas import (COUNTERS, HOUR_MS, SITE_URL, UrlDelta, decode_delta_record,
                                          encode_delta_records, hour_bucket, session_deltas)
from replaylens.aggregates.store import AggregateStore
from replaylens.aggregates.sketch import RELATIVE_ACCURACY, bin_value, sketch_bin
from replaylens.aggregates.urls import UrlNormalizer
from replaylens.schemas.sessions import ClosedSession

DAY_MS = 24 * HOUR_MS
T0 = 1_700_000_000_000 - 1_700_000_000_000 % HOUR_MS  # an hour start
SITE = "https://shop.example"
NORM = UrlNormalizer()


def sketched(samples, p75, median):
    """The VitalStats a baseline gives when the exact nearest-rank p75 and median are these: the
    values of their sketch bins, each within RELATIVE_ACCURACY of the exact one."""
    stats = VitalStats(samples, bin_value(sketch_bin(p75)), bin_value(sketch_bin(median)))
    assert abs(stats.p75 - p75) <= RELATIVE_ACCURACY * p75 and abs(stats.median - median) <= RELATIVE_ACCURACY * median
    return stats


def make_session(sid, pages, start=T0, events=(), signals=(), close_reason="inactivity", previous=None):
    """A closed session; pages are (url, time_on_page_ms), visited back to back from start."""
    visits, at = [], start
    for url, spent in pages:
        visits.append({"url": url, "entered_at": at, "left_at": at + spent, "time_on_page_ms": spent, "event_count": 1})
        at += spent
    events = sorted(events, key=lambda e: e["timestamp"])
    return {
        "session_id": sid, "window_id": f"{sid}@{start}", "part": 2 if previous else 1,
        "previous_window_id": previous, "close_reason": close_reason, "started_at": start,
        "ended_at": at, "duration_ms": at - start, "event_count": len(events), "events": events,
        "signals": list(signals), "pages": visits, "context": {}, "comparisons": [],
    }


def vitals_event(ts, url, **metrics):
    return {"event_id": f"v{ts}{url}", "session_id": "x", "timestamp": ts, "type": "web-vitals", "url": url, "metrics": metrics}


def error_event(ts, url, kind):
    return {"event_id": f"e{ts}{kind}", "session_id": "x", "timestamp": ts, "type": kind, "url": url,
            "error": {"message": "boom"}}


def signal(ts, url, kind="rage-click"):
    return {"type": kind, "timestamp": ts, "url": url, "count": 4, "derived": True}


# -- URL normalization -------------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    ("https://Shop.Example:443/product/123/?utm_source=x#reviews", "https://shop.example/product/:id"),
    ("https://shop.example/product/987", "https://shop.example/product/:id"),
    ("http://shop.example:80/", "http://shop.example/"),
    ("http://shop.example:8080//cart//", "http://shop.example:8080/cart"),
    ("https://user:pw@shop.example/a", "https://shop.example/a"),
    ("https://shop.example", "https://shop.example/"),
    ("/checkout/?step=2", "/checkout"),
    ("https://s.example/o/550e8400-e29b-41d4-a716-446655440000/x", "https://s.example/o/:id/x"),
    ("https://s.example/u/5f2b6c1e9d3a4b7c8e0f1a2b", "https://s.example/u/:id"),
    ("https://s.example/t/aZ3kL9qP0xYt7RwB", "https://s.example/t/:id"),
    ("https://s.example/blog/internationalization", "https://s.example/blog/internationalization"),
    ("https://s.example/blog/how-to-cook-2024", "https://s.example/blog/how-to-cook-2024"),
    ("https://s.example/Blog/Post", "https://s.example/Blog/Post"),
])
def test_default_normalization(raw, expected):
    assert UrlNormalizer().normalize(raw) == expected


def test_kept_query_params_are_sorted_and_others_dropped():
    normalizer = UrlNormalizer(keep_query_params=["q", "page"])
    assert normalizer.normalize("https://s.example/search?utm=1&q=shoes&page=2#top") == "https://s.example/search?page=2&q=shoes"
    assert normalizer.normalize("https://s.example/search?page=2&q=shoes") == "https://s.example/search?page=2&q=shoes"
    assert normalizer.normalize("https://s.example/search?utm=1") == "https://s.example/search"


def test_configured_id_patterns():
    normalizer = UrlNormalizer(id_patterns=[r"sku-\d+", r"[a-z]+-[a-z]+-\d{4}"])
    assert normalizer.normalize("https://s.example/p/sku-991/reviews") == "https://s.example/p/:id/reviews"
    assert normalizer.normalize("https://s.example/blog/how-to-2024") == "https://s.example/blog/:id"
    with pytest.raises(ValueError, match="not a valid regex"):
        UrlNormalizer(id_patterns=["("])


# -- Exact arithmetic on crafted sessions ---------------------------------------------------------

def crafted_sessions():
    home, product, checkout = f"{SITE}/", f"{SITE}/product/1", f"{SITE}/checkout"
    s1 = make_session("s1", [(home, 10_000), (product, 20_000), (checkout, 30_000)], events=[
        vitals_event(T0 + 500, home, lcp=1000.0, ttfb=100.0),
        vitals_event(T0 + 900, home, lcp=1200.0),  # a later report for the same view wins
        vitals_event(T0 + 10_500, home, cls=0.3),  # sent on unload, after leaving: its url decides
        error_event(T0 + 31_000, checkout, "network-error"),
        error_event(T0 + 32_000, checkout, "network-error"),
        error_event(T0 + 33_000, None, "console-error"),  # no url: the page open at that time
    ])
    s2 = make_session("s2", [(home + "?utm_source=mail#x", 4_000)], start=T0 + 60_000,
                      events=[vitals_event(T0 + 61_000, home, lcp=2500.0, cls=0.1)])
    s3 = make_session("s3", [(f"{SITE}/product/2", 5_000), (checkout + "/", 15_000)], start=T0 + 120_000,
                      signals=[signal(T0 + 126_000, checkout), signal(T0 + 127_000, checkout, "dead-click")])
    s4 = make_session("s4", [(home, 6_000), (f"{SITE}/product/3", 8_000)], start=T0 + 180_000,
                      events=[vitals_event(T0 + 181_000, home, lcp=900.0)])
    return [s1, s2, s3, s4]


def test_crafted_sessions_exact_figures():
    stats = recompute(crafted_sessions(), NORM, now_ms=T0, window_days=7)
    home, product, checkout, site = (stats[u] for u in (f"{SITE}/", f"{SITE}/product/:id", f"{SITE}/checkout", SITE_URL))

    assert (home.visits, home.pageviews, home.entries, home.exits, home.bounces) == (3, 3, 3, 1, 1)
    assert home.bounce_rate == 1 / 3 and home.exit_rate == 1 / 3
    assert home.avg_time_on_page_ms == (10_000 + 4_000 + 6_000) / 3
    assert home.vitals["lcp"] == sketched(samples=3, p75=2500.0, median=1200.0)  # sorted 900, 1200, 2500
    assert home.vitals["cls"] == sketched(samples=2, p75=0.3, median=0.1)
    assert home.vitals["ttfb"] == sketched(samples=1, p75=100.0, median=100.0)

    assert (product.visits, product.pageviews, product.entries, product.exits, product.bounces) == (3, 3, 1, 1, 0)
    assert product.bounce_rate == 0.0 and product.exit_rate == 1 / 3
    assert product.avg_time_on_page_ms == (20_000 + 5_000 + 8_000) / 3

    assert (checkout.visits, checkout.entries, checkout.exits, checkout.bounce_rate, checkout.exit_rate) == (2, 0, 2, None, 1.0)
    assert (checkout.api_errors, checkout.js_errors, checkout.api_errors_per_visit) == (2, 1, 1.0)
    assert (checkout.rage_clicks, checkout.dead_clicks, checkout.sessions_with_frustration) == (1, 1, 1)
    assert checkout.frustration_share == 0.5
    assert home.api_errors == home.js_errors == home.rage_clicks == 0

    assert (site.visits, site.entries, site.exits, site.bounces, site.pageviews) == (4, 4, 4, 1, 8)
    assert site.bounce_rate == 0.25 and site.exit_rate == 4 / 8
    assert site.vitals["lcp"].samples == 3 and site.sessions_with_frustration == 1 and site.api_errors == 2


def test_nearest_rank_quantiles():
    assert p75([4.0, 1.0, 3.0, 2.0]) == 3.0 and median([4.0, 1.0, 3.0, 2.0]) == 2.0
    assert p75([5.0]) == median([5.0]) == 5.0
    assert p75([]) is None
    assert quantile([float(i) for i in range(1, 101)], 0.75) == 75.0
    assert quantile([float(i) for i in range(1, 8)], 0.75) == 6.0  # rank ceil(5.25) = 6


def test_nearest_rank_equals_duckdb_quantile_disc():
    rng = random.Random(7)
    con = duckdb.connect()
    for _ in range(200):
        values = [rng.uniform(0, 10_000) for _ in range(rng.randint(1, 40))]
        got = con.execute("SELECT quantile_disc(v, 0.75), quantile_disc(v, 0.5) FROM (SELECT unnest(?::DOUBLE[]) v)", [values]).fetchone()
        assert got == (p75(values), median(values))


def test_split_sessions_count_entries_and_exits_once():
    first = make_session("long", [(f"{SITE}/a", 1000)], close_reason="max-duration")
    second = make_session("long", [(f"{SITE}/a", 1000), (f"{SITE}/b", 1000)], start=T0 + 5000, previous=first["window_id"])
    stats = recompute([first, second], NORM, now_ms=T0, window_days=1)
    a, site = stats[f"{SITE}/a"], stats[SITE_URL]
    assert (a.entries, a.exits, a.bounces, a.pageviews) == (1, 0, 0, 2)
    assert (stats[f"{SITE}/b"].exits, site.entries, site.exits, site.bounces) == (1, 1, 1, 0)


def test_session_without_pages_counts_on_the_site_row_only():
    session = make_session("np", [], events=[error_event(T0 + 1, f"{SITE}/x", "console-error")])
    deltas = session_deltas(session, NORM)
    assert [d.url for d in deltas] == [SITE_URL]
    assert (deltas[0].visits, deltas[0].entries, deltas[0].js_errors, deltas[0].bounces) == (1, 1, 1, 0)


def test_delta_round_trips_through_json():
    for delta in session_deltas(crafted_sessions()[0], NORM):
        wire = json.loads(json.dumps(delta.to_dict()))
        assert UrlDelta.from_dict(wire) == delta
    with pytest.raises(ValueError, match="missing 'url'"):
        UrlDelta.from_dict({"delta_id": "x", "bucket": 0})


def test_url_delta_records_hold_batches_and_the_one_delta_format_is_still_read():
    deltas = [d for s in crafted_sessions() for d in session_deltas(s, NORM)]
    records = encode_delta_records(deltas, max_bytes=1_000_000, per_record=3)
    assert len(records) == -(-len(deltas) // 3)
    assert [d for r in records for d in decode_delta_record(r)] == deltas
    wire = json.loads(records[0])
    assert wire["v"] == 2 and "v" not in wire["deltas"][0]
    # A record larger than the limit is cut in two, down to one delta per record.
    small = encode_delta_records(deltas, max_bytes=len(records[0]) - 1, per_record=3)
    assert len(small) > len(records) and [d for r in small for d in decode_delta_record(r)] == deltas
    # Format 1: one delta per record, as `to_dict` writes it.
    assert decode_delta_record(json.dumps(deltas[0].to_dict()).encode()) == [deltas[0]]


@pytest.mark.parametrize("value", [
    b"not json", b"[1, 2]", b'{"v": 2}', b'{"v": 2, "deltas": [{"delta_id": "x", "bucket": 1.5, "url": "u"}]}',
    b'{"v": 2, "deltas": [{"delta_id": "x", "bucket": 0, "url": "u", "vitals": {"fid": [1.0]}}]}',
    b'{"v": 2, "deltas": [{"delta_id": "x", "bucket": 0, "url": "u", "vitals": {"lcp": []}}]}',
    b'{"v": 1, "delta_id": "x", "bucket": 0}',
])
def test_a_malformed_url_delta_record_is_a_value_error(value):
    with pytest.raises(ValueError):
        decode_delta_record(value)


def test_delta_ids_are_stable_and_distinct():
    session = crafted_sessions()[0]
    ids = [d.delta_id for d in session_deltas(session, NORM)]
    assert ids == [d.delta_id for d in session_deltas(dict(session), NORM)]
    assert len(set(ids)) == len(ids)
    assert all(d.bucket == hour_bucket(session["started_at"]) for d in session_deltas(session, NORM))


# -- Store: incremental apply == recompute ---------------------------------------------------------

PATHS = ["/", "/product/{id}", "/cart", "/checkout", "/blog/post-{id}", "/u/{id}/orders"]
KINDS = ["network-error", "console-error", "web-vitals", "click"]


@st.composite
def sessions_strategy(draw):
    count = draw(st.integers(1, 12))
    out = []
    for n in range(count):
        start = T0 + draw(st.integers(0, 12 * DAY_MS // 60_000)) * 60_000
        npages = draw(st.integers(0, 4))
        pages = []
        for _ in range(npages):
            path = draw(st.sampled_from(PATHS)).format(id=draw(st.integers(1, 999)))
            pages.append((SITE + path, draw(st.integers(0, 90_000))))
        end = start + sum(p[1] for p in pages) + 1
        events = []
        for _ in range(draw(st.integers(0, 6))):
            kind = draw(st.sampled_from(KINDS))
            url = SITE + draw(st.sampled_from(PATHS)).format(id=draw(st.integers(1, 999)))
            ts = draw(st.integers(start, end))
            if kind == "web-vitals":
                metrics = draw(st.dictionaries(st.sampled_from(["lcp", "inp", "cls", "fcp", "ttfb"]),
                                               st.floats(0, 20_000, allow_nan=False), max_size=5))
                events.append(vitals_event(ts, url, **metrics))
            else:
                events.append({**error_event(ts, url, kind), "type": kind})
        signals = [signal(draw(st.integers(start, end)), SITE + draw(st.sampled_from(PATHS)).format(id=1),
                          draw(st.sampled_from(["rage-click", "dead-click", "error-click", "mouse-thrash", "other"])))
                   for _ in range(draw(st.integers(0, 3)))]
        reason = draw(st.sampled_from(["inactivity", "session-end", "max-duration", "end-of-input"]))
        previous = f"s{n - 1}@0" if n and draw(st.booleans()) else None
        out.append(make_session(f"s{n}", pages, start, events, signals, reason, previous))
    return out


def apply_in_random_batches(store, deltas, rng):
    deltas = list(deltas) + rng.sample(deltas, k=len(deltas) // 3)  # redeliveries
    rng.shuffle(deltas)
    while deltas:
        cut = rng.randint(1, len(deltas))
        batch, deltas = deltas[:cut], deltas[cut:]
        store.apply([d.to_dict() if rng.random() < 0.5 else d for d in batch])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sessions=sessions_strategy(), seed=st.integers(0, 2**32), now_offset_h=st.integers(0, 14 * 24))
def test_incremental_apply_equals_recompute_on_every_worker(sessions, seed, now_offset_h):
    rng = random.Random(seed)
    now_ms = T0 + now_offset_h * HOUR_MS
    deltas = [d for s in sessions for d in session_deltas(s, NORM)]
    expected = recompute(sessions, NORM, now_ms, window_days=7)
    with tempfile.TemporaryDirectory() as tmp:
        worker_a = AggregateStore(Path(tmp) / "a.duckdb", window_days=7)
        worker_b = AggregateStore(Path(tmp) / "b.duckdb", window_days=7)
        apply_in_random_batches(worker_a, deltas, rng)
        apply_in_random_batches(worker_b, deltas, rng)
        assert worker_a.url_stats(None, now_ms) == expected
        assert worker_b.url_stats(None, now_ms) == expected
        assert worker_a.url_stats([SITE_URL], now_ms) == {k: v for k, v in expected.items() if k == SITE_URL}
        table = "SELECT * FROM url_hourly ORDER BY bucket, url"
        assert worker_a.query(table) == worker_b.query(table)
        worker_a.close()
        worker_b.close()


def test_apply_is_idempotent_and_counts_new_deltas(tmp_path):
    deltas = [d for s in crafted_sessions() for d in session_deltas(s, NORM)]
    with AggregateStore(tmp_path / "agg.duckdb") as store:
        assert store.apply(deltas) == len(deltas)
        assert store.apply(deltas) == 0
        assert store.apply(deltas[:2] + deltas[:2]) == 0
        assert store.url_stats(None, T0) == recompute(crafted_sessions(), NORM, T0, 7)


def test_persistence_across_reopen(tmp_path):
    path = tmp_path / "agg.duckdb"
    sessions = crafted_sessions()
    store = AggregateStore(path)
    store.apply([d for s in sessions[:2] for d in session_deltas(s, NORM)])
    before = store.url_stats(None, T0)
    store.close()

    store = AggregateStore(path)
    assert store.url_stats(None, T0) == before
    assert store.apply([d for s in sessions for d in session_deltas(s, NORM)]) == sum(
        len(session_deltas(s, NORM)) for s in sessions[2:])
    assert store.url_stats(None, T0) == recompute(sessions, NORM, T0, 7)
    store.close()

    reader = AggregateStore(path, read_only=True)
    assert reader.url_stats(None, T0) == recompute(sessions, NORM, T0, 7)
    reader.close()


def test_rolling_window_and_retention(tmp_path):
    old = make_session("old", [(f"{SITE}/a", 1000)], start=T0)
    recent = make_session("recent", [(f"{SITE}/a", 1000), (f"{SITE}/b", 1000)], start=T0 + 20 * DAY_MS)
    old_deltas, recent_deltas = session_deltas(old, NORM), session_deltas(recent, NORM)
    path = tmp_path / "agg.duckdb"
    store = AggregateStore(path, window_days=7, retention_days=10)
    store.apply(old_deltas + recent_deltas)

    assert store.url_stats([f"{SITE}/a"], T0 + 6 * DAY_MS)[f"{SITE}/a"].visits == 1  # recent: after now
    assert store.url_stats([f"{SITE}/a"], T0 - 1) == {}  # before the data
    assert store.url_stats([f"{SITE}/a"], T0 + 7 * DAY_MS - 1)[f"{SITE}/a"].visits == 1  # last hour of the window
    assert f"{SITE}/a" not in store.url_stats([f"{SITE}/a"], T0 + 7 * DAY_MS)  # the old hour left the window
    now = T0 + 20 * DAY_MS
    assert store.url_stats(None, now)[f"{SITE}/a"].bounces == 0  # only the recent session
    assert window_start(now, 7) == hour_bucket(now) - (7 * 24 - 1) * HOUR_MS

    deleted = store.prune(now)
    assert deleted == {"url_hourly": 2, "vital_samples": 0, "vital_sketches": 0, "applied_deltas": 2}
    assert store.query("SELECT count(*) FROM url_hourly")[1] == [(3,)]
    assert store.apply(old_deltas) == 0  # a late redelivery of a pruned hour is not counted again
    store.close()

    store = AggregateStore(path, window_days=7, retention_days=10)
    assert store.apply(old_deltas) == 0  # the pruning horizon survives a restart
    assert store.url_stats(None, T0 + 40 * DAY_MS) == {}
    store.close()
    with pytest.raises(ValueError, match="must cover the window"):
        AggregateStore(tmp_path / "x.duckdb", window_days=7, retention_days=3)


def test_views_and_parquet_export(tmp_path):
    sessions = crafted_sessions()
    with AggregateStore(tmp_path / "agg.duckdb") as store:
        store.apply([d for s in sessions for d in session_deltas(s, NORM)])
        columns, rows = store.query("SELECT * FROM url_stats ORDER BY url")
        by_url = {row[columns.index("url")]: dict(zip(columns, row)) for row in rows}
        home = by_url[f"{SITE}/"]
        lcp = sketched(3, 2500.0, 1200.0)
        assert home["bounce_rate"] == 1 / 3 and home["lcp_p75"] == lcp.p75 and home["lcp_median"] == lcp.median
        assert home["lcp_samples"] == 3 and home["inp_samples"] == 0 and home["inp_p75"] is None
        assert SITE_URL not in by_url
        site_columns, site_rows = store.query("SELECT url, visits, bounce_rate FROM site_stats")
        assert site_rows == [(SITE_URL, 4, 0.25)]

        paths = store.export_parquet(tmp_path / "export")
        assert sorted(p.name for p in paths) == ["site_stats.parquet", "url_hourly.parquet", "url_stats.parquet",
                                                 "vital_samples.parquet", "vital_sketches.parquet"]
        with pytest.raises(ValueError, match="cannot export"):
            store.export_parquet(tmp_path / "export", ["meta; DROP TABLE url_hourly"])
    con = duckdb.connect()
    exported = con.execute(f"SELECT url, visits, exit_rate FROM read_parquet('{tmp_path}/export/url_stats.parquet') ORDER BY url").fetchall()
    assert exported == [(r[columns.index("url")], r[columns.index("visits")], r[columns.index("exit_rate")]) for r in rows]
    assert con.execute(f"SELECT count(*) FROM read_parquet('{tmp_path}/export/vital_samples.parquet')").fetchone() == (12,)  # 6 on / and the same 6 site-wide


def test_second_writer_gets_a_clear_error(tmp_path):
    import subprocess
    import sys
    path = tmp_path / "agg.duckdb"
    with AggregateStore(path):
        code = ("import sys; from aggregates.store import AggregateStore, StoreLockedError\n"
                f"try:\n    AggregateStore({str(path)!r})\nexcept StoreLockedError as e:\n    print(e); sys.exit(3)\n")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parents[1], env={"PYTHONPATH": "."})
    assert result.returncode == 3, result.stderr
    assert "Each worker needs its own duckdb_path" in result.stdout


# -- Comparison -----------------------------------------------------------------------------------

def baseline_sessions(n=20):
    """n sessions: home then checkout, LCP on checkout 1000..1900 ms, one API error in 10 sessions."""
    out = []
    for i in range(n):
        start = T0 + i * 60_000
        checkout = f"{SITE}/checkout"
        events = [vitals_event(start + 11_000, checkout, lcp=1000.0 + 100 * (i % 10))]
        if i % 10 == 0:
            events.append(error_event(start + 12_000, checkout, "network-error"))
        pages = [(f"{SITE}/", 10_000), (checkout, 30_000)] + ([(f"{SITE}/thanks", 5_000)] if i % 4 else [])
        out.append(make_session(f"b{i}", pages, start, events))
    return out


def slow_session():
    start = T0 + 3 * HOUR_MS
    checkout = f"{SITE}/checkout?coupon=1"
    return make_session("slow", [(f"{SITE}/", 12_000), (checkout, 200_000)], start, events=[
        vitals_event(start + 13_000, checkout, lcp=4100.0),
        *[error_event(start + 14_000 + i, checkout, "network-error") for i in range(3)],
    ], signals=[signal(start + 20_000, checkout)])


def test_comparison_texts():
    stats = recompute(baseline_sessions(), NORM, T0 + 3 * HOUR_MS, 7)
    checkout = stats[f"{SITE}/checkout"]
    p75 = sketched(20, 1700.0, 1400.0).p75  # exact: 1700 ms, the sketch's bin: 1,686 ms
    assert checkout.vitals["lcp"].p75 == p75 and checkout.exit_rate == 5 / 20
    comparisons = compare_session(slow_session(), stats, NORM, min_sessions=20)
    texts = {c.metric: c for c in comparisons}
    assert texts["lcp"].text == "LCP 4.1 s vs p75 1.7 s on /checkout"
    assert (texts["lcp"].session_value, texts["lcp"].baseline_value, texts["lcp"].worse) == (4100.0, p75, True)
    assert texts["lcp"].sample_size == 20 and texts["lcp"].baseline == "p75"
    assert texts["api_errors"].text == "3 API errors on /checkout where the average session sees 0.1"
    assert texts["api_errors"].worse and texts["api_errors"].baseline_value == 0.1
    assert texts["exit_rate"].text == "left from /checkout, a page whose exit rate is 25%"
    assert texts["exit_rate"].worse
    assert texts["frustration"].text == "1 frustration signal on /checkout, where 0% of sessions show frustration"
    assert texts["time_on_page_ms"].text == "3 min 20 s on /checkout vs an average of 30 s"
    assert all(c.url == f"{SITE}/checkout" for c in comparisons)  # home: unremarkable, no errors, no vitals
    ClosedSession.model_validate({**slow_session(), "comparisons": [c.model_dump() for c in comparisons]})


def test_no_comparison_below_the_minimum_sample():
    stats = recompute(baseline_sessions(19), NORM, T0 + 3 * HOUR_MS, 7)
    assert compare_session(slow_session(), stats, NORM, min_sessions=20) == []
    assert compare_session(slow_session(), stats, NORM, min_sessions=19) != []


def test_bounce_and_better_than_usual():
    stats = recompute(baseline_sessions(), NORM, T0 + 3 * HOUR_MS, 7)
    bounce = make_session("bounce", [(f"{SITE}/", 9_000)], T0 + HOUR_MS)
    [only] = compare_session(bounce, stats, NORM, min_sessions=20)
    assert only.text == "bounced from /, a page whose bounce rate is 0%" and only.worse
    fast = make_session("fast", [(f"{SITE}/checkout", 30_000)], T0 + HOUR_MS,
                        events=[vitals_event(T0 + HOUR_MS + 1, f"{SITE}/checkout", lcp=800.0)])
    lcp = [c for c in compare_session(fast, stats, NORM, min_sessions=20) if c.metric == "lcp"]
    assert lcp[0].text == "LCP 800 ms vs p75 1.7 s on /checkout" and not lcp[0].worse


def test_store_stats_feed_comparisons(tmp_path):
    with AggregateStore(tmp_path / "agg.duckdb") as store:
        store.apply([d for s in baseline_sessions() for d in session_deltas(s, NORM)])
        session = slow_session()
        urls = session_urls(session, NORM)
        assert urls == [f"{SITE}/", f"{SITE}/checkout"]
        from_store = compare_session(session, store.url_stats(urls, session["ended_at"]), NORM, 20)
    oracle = recompute(baseline_sessions(), NORM, session["ended_at"], 7)
    from_oracle = compare_session(session, oracle, NORM, 20, deltas=session_deltas(session, NORM))
    assert from_store == from_oracle and from_store


def test_format_duration():
    assert [format_duration(x) for x in (450, 1900, 4100, 45_000, 130_000, 120_000)] == [
        "450 ms", "1.9 s", "4.1 s", "45 s", "2 min 10 s", "2 min"]


def test_url_stats_is_a_plain_value():
    stats = UrlStats("u", visits=2, entries=2, bounces=1)
    assert stats.to_dict()["bounce_rate"] == 0.5 and set(COUNTERS) <= set(stats.to_dict())


def test_delta_and_stats_fields_follow_counter_order():
    from dataclasses import fields
    assert UrlDelta.__struct_fields__[3:-1] == COUNTERS  # merge_rows and the comparisons rely on it
    assert tuple(f.name for f in fields(UrlStats))[1:-1] == COUNTERS
