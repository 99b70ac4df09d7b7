"""What comparing a closed session with its pages' baselines costs, at 10 thousand and at 200+
thousand stored web-vital samples: before (exact nearest-rank quantiles read with DuckDB's
`quantile_disc` over every raw sample of the window, the reader until issue 12's second pass) and
after (the hourly sketches kept in memory per window, `AggregateStore.url_stats`).

    python bench/baseline_bench.py [--small 10000] [--large 210000] [--batch 100] [--flushes 12]
                                   [--largest 1000000]

Each size gets a fresh DuckDB file filled with that many samples (synthetic per-URL deltas over
the 7-day window, on the URLs of the simulator's sessions, lognormal web vitals), then the same
simulated closed sessions are compared flush by flush (`compare_batch`, as `enrich` does), each
flush's deltas applied afterwards (outside the timing, so every flush reads a changed baseline).
CPU time (process_time: the machine is shared), best of 3. Prints µs per session for each reader
and size, the ratio before/after and the flatness (after at the small size / after at the large
one: 1.0 is flat), and a RESULT line.
"""
from __future__ import annotations

import argparse
import copy
import itertools
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from replaylens.aggregates.arithmetic import UrlStats, VitalStats  # noqa: E402
from replaylens.aggregates.comparison import compare_batch  # noqa: E402
from replaylens.aggregates.deltas import COUNTERS, HOUR_MS, SITE_URL, VITALS, UrlDelta  # noqa: E402
from replaylens.aggregates.store import AggregateStore  # noqa: E402
from replaylens.aggregates.urls import UrlNormalizer  # noqa: E402
from replaylens.config.settings import Settings  # noqa: E402
from replaylens.streams.simulator import simulate_bytes  # noqa: E402
from replaylens.streams.stage import Origin, SessionStage, now_ms  # noqa: E402

SEED = 5
WINDOW_DAYS = 7
MIN_SESSIONS = 20
REPEATS = 3
# Lognormal web vitals (median, spread): LCP ~2.4 s, INP ~180 ms, CLS ~0.05, FCP ~1.5 s, TTFB ~600 ms.
VITAL_SHAPES = {"lcp": (2400.0, 0.6), "inp": (180.0, 0.7), "cls": (0.05, 1.0), "fcp": (1500.0, 0.5),
                "ttfb": (600.0, 0.6)}

_FLUSH_IDS = itertools.count()

# The reader before: url_hourly sums and exact quantile_disc over every raw sample of the window.
_EXACT_MACRO = f"""
CREATE OR REPLACE MACRO exact_stats_at(now_ms, window_days) AS TABLE
WITH counters AS (
    SELECT url, {", ".join(f"sum({c})::BIGINT AS {c}" for c in COUNTERS)} FROM url_hourly
    WHERE bucket BETWEEN epoch_ms(now_ms - now_ms % {HOUR_MS} - (window_days * 24 - 1) * {HOUR_MS})
        AND epoch_ms(now_ms - now_ms % {HOUR_MS}) GROUP BY url
), vitals AS (
    SELECT url, metric, count(*) AS samples, quantile_disc(value, [0.75, 0.5]) AS q FROM vital_samples
    WHERE bucket BETWEEN epoch_ms(now_ms - now_ms % {HOUR_MS} - (window_days * 24 - 1) * {HOUR_MS})
        AND epoch_ms(now_ms - now_ms % {HOUR_MS}) GROUP BY url, metric
)
SELECT c.*, v.metric, v.samples, v.q FROM counters c LEFT JOIN vitals v USING (url)
"""


def exact_reader(store: AggregateStore) -> Callable[[list[str], int], dict[str, UrlStats]]:
    store.query(_EXACT_MACRO)

    def read(urls: list[str], at_ms: int) -> dict[str, UrlStats]:
        _, rows = store.query("SELECT * FROM exact_stats_at(?, ?) WHERE url IN (SELECT unnest(?::VARCHAR[]))",
                              [at_ms, WINDOW_DAYS, list(urls)])
        out: dict[str, UrlStats] = {}
        for url, *rest in rows:
            counters, (metric, samples, q) = rest[:len(COUNTERS)], rest[len(COUNTERS):]
            stats = out.get(url) or out.setdefault(url, UrlStats(url, *counters))
            if metric is not None:
                stats.vitals[metric] = VitalStats(int(samples), q[0], q[1])
        return out

    return read


def closed_sessions(count: int) -> list[dict[str, Any]]:
    stage = SessionStage.from_settings(Settings())
    origin, wall = Origin("bench", 0), now_ms()
    for _key, value in simulate_bytes(count, seed=SEED):
        stage.process(0, value, origin, wall)
    return stage.flush([0], close_all=True, with_state=False).closed


def fill(store: AggregateStore, urls: list[str], samples: int, end_hour: int) -> None:
    """`samples` web-vital samples (5 per synthetic visit) over the window's hours."""
    rng = random.Random(SEED)
    hours = WINDOW_DAYS * 24
    deltas = []
    for n in range(samples // len(VITALS)):
        url = urls[n % len(urls)]
        bucket = end_hour - rng.randrange(hours) * HOUR_MS
        vitals = {m: [rng.lognormvariate(0, spread) * median] for m, (median, spread) in VITAL_SHAPES.items()}
        deltas.append(UrlDelta(f"fill-{n}", bucket, url, visits=1, pageviews=1, entries=1, exits=1,
                               time_on_page_ms=rng.randrange(1_000, 60_000), time_on_page_count=1,
                               vitals=vitals))
    for start in range(0, len(deltas), 20_000):
        store.apply(deltas[start:start + 20_000])


def shifted(sessions: list[dict[str, Any]], to_ms: int) -> list[dict[str, Any]]:
    """The sessions moved so that the first starts at to_ms (their window: the filled one)."""
    offset = to_ms - min(int(s["started_at"]) for s in sessions)
    out = []
    for s in sessions:
        s = copy.deepcopy(s)
        for key in ("started_at", "ended_at"):
            s[key] = int(s[key]) + offset
        for page in s.get("pages") or ():
            page["entered_at"] = int(page["entered_at"]) + offset
            if page.get("left_at") is not None:
                page["left_at"] = int(page["left_at"]) + offset
        for e in s.get("events") or ():
            e["timestamp"] = int(e["timestamp"]) + offset
        for sig in s.get("signals") or ():
            sig["timestamp"] = int(sig["timestamp"]) + offset
        s["window_id"] = f"{s['window_id']}+{offset}"
        out.append(s)
    return out


def run_flushes(store: AggregateStore, reader, sessions: list[dict[str, Any]], batch: int, flushes: int,
                normalizer: UrlNormalizer, urls: list[str], end_hour: int) -> tuple[float, float]:
    """CPU µs per session of comparing `flushes` batches, and of the baseline reads in it. After
    each, one new visit with web vitals is applied to every URL (outside the timing), so every
    flush reads changed baselines (the worst case for a cache) while the stored samples hardly grow."""
    spent = reading = 0.0

    def timed_reader(wanted: list[str], at_ms: int) -> dict[str, UrlStats]:
        nonlocal reading
        t = time.process_time()
        try:
            return reader(wanted, at_ms)
        finally:
            reading += time.process_time() - t

    for f in range(flushes):
        chunk = [dict(s) for s in sessions[(f * batch) % len(sessions):][:batch]]
        t = time.process_time()
        compare_batch(chunk, timed_reader, normalizer, MIN_SESSIONS, WINDOW_DAYS)
        spent += time.process_time() - t
        tag = next(_FLUSH_IDS)
        store.apply([UrlDelta(f"flush-{tag}-{url}", end_hour, url, visits=1, pageviews=1,
                              vitals={m: [median] for m, (median, _) in VITAL_SHAPES.items()}) for url in urls])
    per_session = 1e6 / (flushes * batch)
    return spent * per_session, reading * per_session


def measure(samples: int, sessions: list[dict[str, Any]], batch: int, flushes: int,
            with_before: bool = True) -> dict[str, float]:
    normalizer = UrlNormalizer()
    urls = sorted({normalizer.normalize(p["url"]) for s in sessions for p in s.get("pages") or () if p.get("url")})
    end_hour = max(int(s["started_at"]) for s in sessions) // HOUR_MS * HOUR_MS
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as d:
        store = AggregateStore(Path(d) / "bench.duckdb", WINDOW_DAYS, 30)
        fill(store, urls + [SITE_URL], samples, end_hour)
        stored = store.query("SELECT count(*) FROM vital_samples")[1][0][0]
        t = time.process_time()
        store.url_stats(urls + [SITE_URL], end_hour)  # the window's one load into memory
        out["load_ms"] = (time.process_time() - t) * 1e3
        readers = {"before": exact_reader(store), "after": store.url_stats} if with_before else {"after": store.url_stats}
        for name, reader in readers.items():
            runs = [run_flushes(store, reader, sessions, batch, flushes, normalizer, urls, end_hour)
                    for _ in range(REPEATS)]
            out[name] = min(r[0] for r in runs)
            out[f"{name}_read"] = min(r[1] for r in runs)
        out["stored"] = stored
        out["stored_end"] = store.query("SELECT count(*) FROM vital_samples")[1][0][0]
        store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=210_000)
    parser.add_argument("--batch", type=int, default=100, help="closed sessions per flush")
    parser.add_argument("--flushes", type=int, default=12)
    parser.add_argument("--largest", type=int, default=0,
                        help="also this many samples, the sketch reader only (the exact one takes seconds a read)")
    args = parser.parse_args()
    base = closed_sessions(args.batch * 4)
    sessions = shifted(base, now_ms() - now_ms() % HOUR_MS)
    results = {size: measure(size, sessions, args.batch, args.flushes) for size in (args.small, args.large)}
    print(f"{args.flushes} flushes of {args.batch} closed sessions, CPU µs per session, best of {REPEATS}")
    for size, r in results.items():
        print(f"{int(r['stored']):>8,} samples stored: baseline read: before (quantile_disc over raw samples) "
              f"{r['before_read']:7.1f}, after (sketches in memory) {r['after_read']:5.1f}, ratio "
              f"{r['before_read'] / r['after_read']:6.1f}x | whole comparison: before {r['before']:6.1f}, after "
              f"{r['after']:6.1f} | window load {r['load_ms']:.1f} ms once")
    if args.largest:
        r = measure(args.largest, sessions, args.batch, args.flushes, with_before=False)
        print(f"{int(r['stored']):>8,} samples stored: baseline read after {r['after_read']:5.1f} "
              f"(flatness from {args.small:,}: {results[args.small]['after_read'] / r['after_read']:.2f}) | whole "
              f"comparison after {r['after']:6.1f} | window load {r['load_ms']:.1f} ms once")
    small, large = results[args.small], results[args.large]
    print(f"flatness of the read from {args.small:,} to {args.large:,} samples (1.0 = flat): "
          f"after {small['after_read'] / large['after_read']:.2f}, before {small['before_read'] / large['before_read']:.2f}")
    print(f"RESULT baseline_read_us={large['after_read']:.2f} baseline_flatness={small['after_read'] / large['after_read']:.2f} "
          f"before_read_us={large['before_read']:.1f} ratio={large['before_read'] / large['after_read']:.1f} "
          f"before_flatness={small['before_read'] / large['before_read']:.2f} "
          f"compare_us={large['after']:.1f} before_compare_us={large['before']:.1f}")


if __name__ == "__main__":
    main()
