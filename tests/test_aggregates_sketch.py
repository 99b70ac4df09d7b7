"""Baselines from web-vital sketches (aggregates/sketch.py, aggregates/baselines.py, the store's
read side): quantiles within the stated relative error of the exact nearest-rank ones, sketches
that merge and subtract exactly, the DuckDB tables and macro agreeing with memory, a window kept
current without reading DuckDB again, the schema 1 -> 2 migration, and comparison texts with
realistic numbers."""
from __future__ import annotations

import math
import random

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replaylens.aggregates.arithmetic import UrlStats, VitalStats, quantile, recompute
from replaylens.aggregates.comparison import compare_batch, compare_session, format_vital, vital_worse
from replaylens.aggregates.deltas import HOUR_MS, SITE_URL, UrlDelta, session_deltas
from replaylens.aggregates.sketch import (MAX_VALUE, MIN_VALUE, RELATIVE_ACCURACY, ZERO_BIN, VitalSketch, bin_value,
                                          sketch_bin)
from replaylens.aggregates.store import AggregateStore
from replaylens.aggregates.urls import UrlNormalizer
from tests.test_aggregates import T0, make_session, vitals_event

NORM = UrlNormalizer()
SITE = "https://shop.example"
# Float rounding at a bin's edge (log, division, ceil) may put a value in the neighbouring bin:
# the bound holds up to a few ulps of slack.
SLACK = 1e-12
QS = (0.01, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)

vital_values = st.one_of(
    st.just(0.0),
    st.floats(min_value=MIN_VALUE, max_value=MAX_VALUE, allow_nan=False, allow_infinity=False),
    st.floats(min_value=MIN_VALUE, max_value=1.0, allow_nan=False),  # CLS-like
    st.floats(min_value=10.0, max_value=60_000.0, allow_nan=False),  # ms-like
)


def within(estimate: float, exact: float) -> bool:
    return abs(estimate - exact) <= (RELATIVE_ACCURACY + SLACK) * exact


# -- the sketch ---------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.lists(vital_values, min_size=1, max_size=300))
def test_every_quantile_is_within_the_relative_accuracy_of_the_exact_nearest_rank(values):
    sketch = VitalSketch.of(values)
    ordered = sorted(values)
    assert sketch.n == len(values)
    for q in QS:
        exact = quantile(ordered, q)
        estimate = sketch.quantile(q)
        assert within(estimate, exact), (q, exact, estimate)
        assert (estimate == 0.0) == (exact == 0.0)  # zero is exact
        assert sketch_bin(estimate) == sketch_bin(exact)  # the estimate reads back the sample's bin


def test_quantiles_of_realistic_large_samples():
    rng = random.Random(3)
    for median, spread in ((2400.0, 0.6), (180.0, 0.9), (0.05, 1.2), (600.0, 0.4)):
        values = [rng.lognormvariate(0, spread) * median for _ in range(20_000)] + [0.0] * 500
        sketch, ordered = VitalSketch.of(values), sorted(values)
        for q in QS:
            assert within(sketch.quantile(q), quantile(ordered, q))


def test_values_outside_the_clamp_range_count_at_its_edges():
    assert sketch_bin(1e300) == sketch_bin(MAX_VALUE) and sketch_bin(1e-300) == sketch_bin(MIN_VALUE)
    assert sketch_bin(0.0) == ZERO_BIN and bin_value(ZERO_BIN) == 0.0
    assert math.isfinite(bin_value(sketch_bin(1e300)))
    assert VitalSketch.of([5e-324, 1e300]).quantile(1.0) == pytest.approx(MAX_VALUE, rel=RELATIVE_ACCURACY)


@settings(max_examples=150, deadline=None)
@given(st.lists(vital_values, max_size=80), st.lists(vital_values, max_size=80), st.randoms())
def test_sketches_merge_and_subtract_exactly_in_any_order(a, b, rnd):
    whole = VitalSketch.of(a + b)
    merged = VitalSketch.of(a)
    merged.add_bins(VitalSketch.of(b).counts)
    assert merged == whole and merged.n == len(a) + len(b)
    shuffled = a + b
    rnd.shuffle(shuffled)
    one_by_one = VitalSketch()
    for value in shuffled:
        one_by_one.add_values([value])
    assert one_by_one == whole
    whole.add_bins(VitalSketch.of(b).counts, sign=-1)
    assert whole == VitalSketch.of(a) and whole.n == len(a)


def test_bins_hold_a_relative_range():
    for value in (0.001, 0.37, 1.0, 999.0, 1830.5, 45_000.0):
        index = sketch_bin(value)
        gamma = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
        assert gamma ** (index - 1) < value * (1 + SLACK) and value <= gamma ** index * (1 + SLACK)


# -- the store: DuckDB tables, macro and the windows in memory ---------------------------------

def sessions_with_vitals(n: int, seed: int, hours: int = 30) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        start = T0 + rng.randrange(hours) * HOUR_MS + rng.randrange(HOUR_MS - 60_000)
        page = f"{SITE}/{rng.choice(['', 'cart', 'checkout', 'product/1'])}"
        events = [vitals_event(start + 500, page, lcp=round(rng.lognormvariate(0, 0.6) * 2400, 1),
                               cls=rng.choice([0.0, 0.0, round(rng.random() * 0.4, 3)]),
                               inp=float(rng.randrange(40, 900)))]
        out.append(make_session(f"s{seed}-{i}", [(page, 20_000)], start, events))
    return out


def test_sql_macro_and_memory_give_the_same_baselines(tmp_path):
    sessions = sessions_with_vitals(300, seed=1)
    now = T0 + 29 * HOUR_MS
    with AggregateStore(tmp_path / "a.duckdb", window_days=1, retention_days=30) as store:
        store.apply([d for s in sessions for d in session_deltas(s, NORM)])
        memory = store.url_stats(None, now)
        assert memory == recompute(sessions, NORM, now, 1)
        columns, rows = store.query("SELECT * FROM url_stats_at(?)", [now])
        assert len(rows) == len(memory) == 5  # four pages and the site
        for row in rows:
            sql = dict(zip(columns, row))
            stats = memory[sql["url"]]
            assert sql["visits"] == stats.visits
            for metric, vital in stats.vitals.items():
                assert (sql[f"{metric}_samples"], sql[f"{metric}_p75"], sql[f"{metric}_median"]) == (
                    vital.samples, vital.p75, vital.median)
        bins = list(range(sketch_bin(MIN_VALUE), sketch_bin(MAX_VALUE) + 1)) + [ZERO_BIN]
        _, values = store.query("SELECT b, sketch_value(b) FROM unnest(?::INTEGER[]) AS t(b)", [bins])
        assert all(value == bin_value(b) for b, value in values)  # SQL and Python read bins alike


def test_vital_sketches_table_is_what_analytics_jobs_read(tmp_path):
    sessions = sessions_with_vitals(200, seed=2)
    with AggregateStore(tmp_path / "a.duckdb") as store:
        store.apply([d for s in sessions for d in session_deltas(s, NORM)])
        columns, _ = store.query("SELECT * FROM vital_sketches LIMIT 0")
        assert columns == ["bucket", "url", "metric", "bin", "count"]
        # one row per (hour, url, metric, bin); the counts add up to the samples, hour by hour
        _, by_table = store.query("SELECT metric, sum(count) FROM vital_sketches WHERE url = '*' GROUP BY 1 ORDER BY 1")
        _, by_samples = store.query("SELECT metric, count(*) FROM vital_samples WHERE url = '*' GROUP BY 1 ORDER BY 1")
        assert by_table == by_samples and by_table
        # applies append rows; pruning compacts them to one row per (bucket, url, metric, bin)
        _, before = store.query("SELECT bucket, url, metric, bin, sum(count) FROM vital_sketches GROUP BY ALL ORDER BY ALL")
        store.apply([d for s in sessions_with_vitals(50, seed=9) for d in session_deltas(s, NORM)])
        store.prune(T0)
        _, dupes = store.query("SELECT count(*) FROM (SELECT bucket, url, metric, bin FROM vital_sketches GROUP BY ALL HAVING count(*) > 1)")
        assert dupes == [(0,)]
        _, after = store.query("SELECT bucket, url, metric, bin, count FROM vital_sketches ORDER BY ALL")
        assert sum(row[4] for row in after) == sum(row[4] for row in before) + 2 * 3 * 50  # 3 vitals, page and site
        # a p75 by hand, as SCHEMA.md shows it, from the table alone
        _, [(p75,)] = store.query("""
            SELECT sketch_value(min(bin) FILTER (WHERE upto >= ceil(0.75 * total))) FROM (
                SELECT bin, sum(n) OVER (ORDER BY bin) AS upto, sum(n) OVER () AS total
                FROM (SELECT bin, sum(count) AS n FROM vital_sketches WHERE url = '*' AND metric = 'lcp' GROUP BY bin))""")
        assert p75 == store.url_stats([SITE_URL], T0 + 29 * HOUR_MS)[SITE_URL].vitals["lcp"].p75


def test_a_window_is_loaded_once_then_kept_current_by_apply(tmp_path):
    first, later = sessions_with_vitals(200, seed=3), sessions_with_vitals(100, seed=4)
    now = T0 + 29 * HOUR_MS
    checkout = f"{SITE}/checkout"
    with AggregateStore(tmp_path / "a.duckdb", window_days=7, retention_days=30) as store:
        store.apply([d for s in first for d in session_deltas(s, NORM)])
        store.url_stats([checkout], now)
        loads = store.baselines.loads
        for applied in (later[:50], later):
            store.apply([d for s in applied for d in session_deltas(s, NORM)])  # the first 50 again: skipped
            # read from memory: no query of DuckDB, and the figures of everything applied
            assert store.url_stats([checkout], now) == {checkout: recompute(first + applied, NORM, now, 7)[checkout]}
            assert store.baselines.loads == loads
        # another URL, another hour: loaded from the file, equal to the recompute too
        assert store.url_stats(None, now + 2 * HOUR_MS) == recompute(first + later, NORM, now + 2 * HOUR_MS, 7)
        fresh = store.url_stats(None, now)
    with AggregateStore(tmp_path / "a.duckdb", window_days=7, retention_days=30) as reopened:
        assert reopened.url_stats(None, now) == fresh


def test_a_url_first_seen_after_its_window_was_read_is_counted(tmp_path):
    now = T0 + HOUR_MS
    new_page = f"{SITE}/new"
    with AggregateStore(tmp_path / "a.duckdb") as store:
        assert store.url_stats([new_page], now) == {}
        assert store.url_stats(None, now) == {}
        session = make_session("n", [(new_page, 5_000)], T0, [vitals_event(T0 + 10, new_page, lcp=900.0)])
        store.apply(session_deltas(session, NORM))
        got = store.url_stats([new_page], now)[new_page]
        assert got.visits == 1 and got.vitals["lcp"].samples == 1
        assert store.url_stats(None, now) == recompute([session], NORM, now, 7)


def test_pruning_forgets_the_windows_in_memory(tmp_path):
    old = make_session("old", [(f"{SITE}/a", 1000)], T0, [vitals_event(T0 + 1, f"{SITE}/a", lcp=800.0)])
    now = T0 + 5 * 24 * HOUR_MS
    with AggregateStore(tmp_path / "a.duckdb", window_days=7, retention_days=7) as store:
        store.apply(session_deltas(old, NORM))
        assert store.url_stats(None, now)[f"{SITE}/a"].visits == 1
        store.prune(now + 3 * 24 * HOUR_MS)  # the old hour is past retention
        assert store.url_stats(None, now) == {}


def test_raw_samples_can_be_left_out_without_changing_the_baselines(tmp_path):
    sessions = sessions_with_vitals(150, seed=5)
    deltas = [d for s in sessions for d in session_deltas(s, NORM)]
    now = T0 + 29 * HOUR_MS
    with AggregateStore(tmp_path / "with.duckdb") as kept, \
            AggregateStore(tmp_path / "without.duckdb", keep_vital_samples=False) as lean:
        kept.apply(deltas)
        lean.apply(deltas)
        assert lean.query("SELECT count(*) FROM vital_samples")[1] == [(0,)]
        assert kept.query("SELECT count(*) FROM vital_samples")[1][0][0] > 0
        assert lean.url_stats(None, now) == kept.url_stats(None, now) == recompute(sessions, NORM, now, 7)
        ordered = "SELECT * FROM url_stats ORDER BY ALL"  # DuckDB scans in parallel: no order without this
        assert lean.query(ordered)[1] == kept.query(ordered)[1]


_SCHEMA_1 = """
CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE TABLE url_hourly (bucket TIMESTAMP NOT NULL, url VARCHAR NOT NULL, {counters}, PRIMARY KEY (bucket, url));
CREATE TABLE vital_samples (bucket TIMESTAMP NOT NULL, url VARCHAR NOT NULL, metric VARCHAR NOT NULL, value DOUBLE NOT NULL);
CREATE TABLE applied_deltas (delta_id VARCHAR PRIMARY KEY, bucket TIMESTAMP NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1'), ('window_days', '7'), ('retention_days', '30');
"""


def test_a_schema_1_file_gets_its_sketches_from_its_samples(tmp_path):
    from replaylens.aggregates.deltas import COUNTERS
    sessions = sessions_with_vitals(120, seed=6)
    now = T0 + 29 * HOUR_MS
    path = tmp_path / "old.duckdb"
    with AggregateStore(tmp_path / "scratch.duckdb") as scratch:  # the rows a schema-1 file held
        scratch.apply([d for s in sessions for d in session_deltas(s, NORM)])
        _, hourly = scratch.query("SELECT * FROM url_hourly")
        _, samples = scratch.query("SELECT * FROM vital_samples")
    con = duckdb.connect(str(path))
    con.execute(_SCHEMA_1.format(counters=", ".join(f"{c} BIGINT NOT NULL DEFAULT 0" for c in COUNTERS)))
    con.executemany(f"INSERT INTO url_hourly VALUES ({', '.join('?' * (2 + len(COUNTERS)))})", hourly)
    con.executemany("INSERT INTO vital_samples VALUES (?, ?, ?, ?)", samples)
    con.close()
    with AggregateStore(path) as migrated:
        assert migrated.query("SELECT value FROM meta WHERE key = 'schema_version'")[1] == [("2",)]
        assert migrated.url_stats(None, now) == recompute(sessions, NORM, now, 7)


# -- comparisons reading the sketches ------------------------------------------------------------

def test_comparison_texts_with_realistic_numbers(tmp_path):
    """A checkout page whose LCP is lognormal around 2.4 s over 2,000 sessions: the text a
    person reads is the exact p75's text, and the sketch's p75 is within 1% of it."""
    rng = random.Random(12)
    checkout = f"{SITE}/checkout"
    sessions = []
    for i in range(2_000):
        start = T0 + i * 60_000
        lcp = round(rng.lognormvariate(0, 0.5) * 2400, 1)
        sessions.append(make_session(f"r{i}", [(checkout, 30_000)], start, [vitals_event(start + 900, checkout, lcp=lcp)]))
    exact_p75 = quantile(sorted(s["events"][0]["metrics"]["lcp"] for s in sessions), 0.75)
    slow_start = T0 + 40 * HOUR_MS
    slow = make_session("slow", [(checkout, 30_000)], slow_start, [vitals_event(slow_start + 900, checkout, lcp=7_250.0)])
    with AggregateStore(tmp_path / "a.duckdb") as store:
        store.apply([d for s in sessions for d in session_deltas(s, NORM)])
        compare_batch([slow], store.url_stats, NORM, 20, 7)
        baseline = store.url_stats([checkout], slow_start)[checkout].vitals["lcp"]
    [lcp] = [c for c in slow["comparisons"] if c["metric"] == "lcp"]
    assert within(baseline.p75, exact_p75) and baseline.samples == 2_000
    assert lcp["text"] == f"LCP 7.2 s vs p75 {format_vital('lcp', exact_p75)} on /checkout" == "LCP 7.2 s vs p75 3.4 s on /checkout"
    assert lcp["worse"] and lcp["sample_size"] == 2_000 and lcp["baseline_value"] == baseline.p75


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.floats(min_value=20.0, max_value=1_200.0), st.floats(min_value=1_000.0, max_value=20_000.0)),
                min_size=20, max_size=200),
       st.floats(min_value=20.0, max_value=20_000.0))
def test_worse_is_true_of_the_exact_p75_and_the_text_is_within_one_percent_and_its_rounding(samples, value):
    exact = quantile(sorted(samples), 0.75)
    approx = VitalStats.of_sketch(VitalSketch.of(samples)).p75
    if vital_worse(value, approx):
        assert value > exact  # "worse" never comes from the approximation
    if value > exact * (1 + 2 * RELATIVE_ACCURACY) + SLACK:
        assert vital_worse(value, approx)  # clearly slower is always said
    shown, should = _ms(format_vital("lcp", approx)), _ms(format_vital("lcp", exact))
    step = max(_display_step(exact), _display_step(approx))
    assert abs(shown - should) <= RELATIVE_ACCURACY * exact + step, (shown, should)


def _display_step(ms: float) -> float:
    """What the text's last digit stands for: '850 ms', '4.1 s', '12 s'."""
    return 1.0 if ms < 1_000 else 100.0 if ms < 10_000 else 1_000.0


def _ms(text: str) -> float:
    number, unit = text.split()
    return float(number) * (1 if unit == "ms" else 1000)


def test_a_value_in_the_p75s_own_bin_is_not_called_worse():
    stats = {f"{SITE}/p": UrlStats(f"{SITE}/p", visits=30, vitals={"lcp": VitalStats(30, 2000.0, 1500.0)})}
    session = make_session("x", [(f"{SITE}/p", 5_000)], T0, [vitals_event(T0 + 1, f"{SITE}/p", lcp=2005.0)])
    [lcp] = [c for c in compare_session(session, stats, NORM, 20) if c.metric == "lcp"]
    assert sketch_bin(2005.0) == sketch_bin(2000.0) and not lcp.worse
    assert lcp.text == "LCP 2.0 s vs p75 2.0 s on /p"
    slower = make_session("y", [(f"{SITE}/p", 5_000)], T0, [vitals_event(T0 + 1, f"{SITE}/p", lcp=2100.0)])
    [lcp] = [c for c in compare_session(slower, stats, NORM, 20) if c.metric == "lcp"]
    assert lcp.worse and lcp.text == "LCP 2.1 s vs p75 2.0 s on /p"


def test_deltas_applied_in_any_order_give_every_worker_the_same_baselines(tmp_path):
    sessions = sessions_with_vitals(200, seed=8)
    deltas = [d for s in sessions for d in session_deltas(s, NORM)]
    now = T0 + 29 * HOUR_MS
    shuffled = deltas[:]
    random.Random(1).shuffle(shuffled)
    with AggregateStore(tmp_path / "a.duckdb") as a, AggregateStore(tmp_path / "b.duckdb") as b:
        a.url_stats(None, now)  # a has its window in memory before the deltas come
        for start in range(0, len(deltas), 37):
            a.apply(deltas[start:start + 37])
        b.apply(shuffled + shuffled[:50])  # b gets them at once, some twice
        assert a.url_stats(None, now) == b.url_stats(None, now) == recompute(sessions, NORM, now, 7)
        summed = "SELECT bucket, url, metric, bin, sum(count) FROM vital_sketches GROUP BY ALL ORDER BY ALL"
        assert a.query(summed)[1] == b.query(summed)[1]


def test_a_delta_record_round_trip_feeds_the_same_sketch(tmp_path):
    from replaylens.aggregates.deltas import decode_delta_record, encode_delta_records
    delta = UrlDelta("d1", T0, f"{SITE}/x", visits=1, vitals={"lcp": [1830.5], "cls": [0.0]})
    [record] = encode_delta_records([delta], 1_000_000)
    with AggregateStore(tmp_path / "a.duckdb") as store:
        store.apply(decode_delta_record(record))
        vitals = store.url_stats([f"{SITE}/x"], T0)[f"{SITE}/x"].vitals
    assert vitals["cls"] == VitalStats(1, 0.0, 0.0)
    assert vitals["lcp"].p75 == bin_value(sketch_bin(1830.5)) and within(vitals["lcp"].p75, 1830.5)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(vital_values, min_size=1, max_size=40), min_size=1, max_size=12))
def test_quantiles_stay_exact_to_the_bin_as_samples_keep_coming(batches):
    """The remembered quantile bins (stepped from, after each add) give what a fresh sketch of
    all the samples gives, and stay within the relative accuracy of the exact quantiles."""
    running, seen = VitalSketch(), []
    for batch in batches:
        running.add_values(batch)
        seen += batch
        fresh = VitalSketch.of(seen)
        assert running.quantile_bins(QS) == fresh.quantile_bins(QS)
        ordered = sorted(seen)
        for q in QS:
            assert within(running.quantile(q), quantile(ordered, q))
    taken_back = batches[-1]
    running.add_bins(VitalSketch.of(taken_back).counts, sign=-1)
    rest = seen[:len(seen) - len(taken_back)]
    if rest:
        assert running.quantile_bins(QS) == VitalSketch.of(rest).quantile_bins(QS)
