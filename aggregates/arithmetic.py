"""Aggregate arithmetic: rates, quantiles, rolling windows, and the pure recompute oracle.

Quantiles are NEAREST-RANK: the q-quantile of n sorted values is the value of rank
ceil(q * n) (1-based), always an observed value: exactly DuckDB's `quantile_disc`. The median
of an even count is the lower middle value. A baseline's web-vital quantiles (`UrlStats.vitals`)
come from a sketch of the samples (aggregates/sketch.py): the bin of that same nearest-rank
sample, read back within 1% of it; the store (SQL and memory) and the pure recompute build the
same sketches, so they agree bit for bit. `quantile` here is the exact one (the batch's own
samples, tests).

Rates: bounce rate = bounces / entries, exit rate = exits / pageviews, average time on page
= time_on_page_ms / time_on_page_count, errors per session = errors / visits, frustration
share = sessions_with_frustration / visits. Each is None when its denominator is 0.

Rolling window: the `window_days * 24` hourly buckets ending with the hour of `now_ms`,
both ends included. Buckets after the hour of now are not in the window: pass the pipeline's
clock (wall clock live, the newest event time when replaying old data).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

from replaylens.aggregates.deltas import COUNTERS, HOUR_MS, SITE_URL, VITALS, hour_bucket, merge_deltas, session_deltas
from replaylens.aggregates.sketch import QUANTILES, VitalSketch, bin_value
from replaylens.aggregates.urls import UrlNormalizer
from replaylens.schemas.sessions import window_id_of


def quantile(sorted_values: Sequence[float], q: float) -> Optional[float]:
    """Nearest-rank quantile of already sorted values (DuckDB quantile_disc)."""
    if not sorted_values:
        return None
    rank = max(math.ceil(q * len(sorted_values)), 1)
    return sorted_values[rank - 1]


def p75(values: Iterable[float]) -> Optional[float]:
    return quantile(sorted(values), 0.75)


def median(values: Iterable[float]) -> Optional[float]:
    return quantile(sorted(values), 0.5)


def ratio(numerator: float, denominator: float) -> Optional[float]:
    return numerator / denominator if denominator else None


def bounce_rate(bounces: int, entries: int) -> Optional[float]:
    return ratio(bounces, entries)


def exit_rate(exits: int, pageviews: int) -> Optional[float]:
    return ratio(exits, pageviews)


def window_start(now_ms: int, window_days: int) -> int:
    """Epoch ms of the first hourly bucket of the rolling window that ends at `now_ms`."""
    return hour_bucket(now_ms) - (window_days * 24 - 1) * HOUR_MS


@dataclass(frozen=True)
class VitalStats:
    samples: int
    p75: float
    median: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Optional["VitalStats"]:
        ordered = sorted(values)
        if not ordered:
            return None
        return cls(len(ordered), quantile(ordered, 0.75), quantile(ordered, 0.5))

    @classmethod
    def of_sketch(cls, sketch: VitalSketch) -> Optional["VitalStats"]:
        """p75 and median of a sketch (within its relative accuracy of the exact ones)."""
        if not sketch.n:
            return None
        p75_bin, median_bin = sketch.quantile_bins(QUANTILES)
        return cls(sketch.n, bin_value(p75_bin), bin_value(median_bin))


@dataclass
class UrlStats:
    """A URL's (or the site's, url `*`) figures over a rolling window."""

    url: str
    visits: int = 0
    pageviews: int = 0
    entries: int = 0
    exits: int = 0
    bounces: int = 0
    time_on_page_ms: int = 0
    time_on_page_count: int = 0
    js_errors: int = 0
    api_errors: int = 0
    rage_clicks: int = 0
    dead_clicks: int = 0
    error_clicks: int = 0
    mouse_thrashes: int = 0
    sessions_with_frustration: int = 0
    vitals: dict[str, VitalStats] = field(default_factory=dict)

    @property
    def bounce_rate(self) -> Optional[float]:
        return bounce_rate(self.bounces, self.entries)

    @property
    def exit_rate(self) -> Optional[float]:
        return exit_rate(self.exits, self.pageviews)

    @property
    def avg_time_on_page_ms(self) -> Optional[float]:
        return ratio(self.time_on_page_ms, self.time_on_page_count)

    @property
    def js_errors_per_visit(self) -> Optional[float]:
        return ratio(self.js_errors, self.visits)

    @property
    def api_errors_per_visit(self) -> Optional[float]:
        return ratio(self.api_errors, self.visits)

    @property
    def frustration_share(self) -> Optional[float]:
        return ratio(self.sessions_with_frustration, self.visits)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"url": self.url}
        for name in COUNTERS:
            out[name] = getattr(self, name)
        for name in ("bounce_rate", "exit_rate", "avg_time_on_page_ms", "js_errors_per_visit",
                     "api_errors_per_visit", "frustration_share"):
            out[name] = getattr(self, name)
        out["vitals"] = {m: {"samples": v.samples, "p75": v.p75, "median": v.median} for m, v in self.vitals.items()}
        return out


def stats_from_totals(url: str, counters: dict[str, int], samples: dict[str, list[float]]) -> UrlStats:
    """A URL's baseline from its totals and raw samples, vitals through the sketch (as the store)."""
    stats = UrlStats(url, **{name: int(counters.get(name, 0)) for name in COUNTERS})
    for metric in VITALS:
        vital = VitalStats.of_sketch(VitalSketch.of(samples.get(metric) or ()))
        if vital is not None:
            stats.vitals[metric] = vital
    return stats


def recompute(
    sessions: Iterable[dict[str, Any]],
    normalizer: UrlNormalizer,
    now_ms: int,
    window_days: int,
) -> dict[str, UrlStats]:
    """From-scratch rolling-window stats of every URL (and `*`) over these closed sessions.

    The oracle for the incremental store: same sessions, same window, same figures. Sessions
    with the same window_id count once (as redelivered deltas do).
    """
    start, end = window_start(now_ms, window_days), hour_bucket(now_ms)
    seen: dict[str, dict[str, Any]] = {}
    for session in sessions:
        seen.setdefault(window_id_of(session), session)
    deltas = [d for s in seen.values() for d in session_deltas(s, normalizer) if start <= d.bucket <= end]
    per_url = merge_deltas(deltas)
    counters: dict[str, dict[str, int]] = {}
    samples: dict[str, dict[str, list[float]]] = {}
    for (_, url), delta in per_url.items():
        totals = counters.setdefault(url, dict.fromkeys(COUNTERS, 0))
        for name in COUNTERS:
            totals[name] += getattr(delta, name)
        for metric, values in delta.vitals.items():
            samples.setdefault(url, {}).setdefault(metric, []).extend(values)
    return {url: stats_from_totals(url, totals, samples.get(url, {})) for url, totals in counters.items()}


__all__ = [
    "SITE_URL",
    "UrlStats",
    "VitalStats",
    "bounce_rate",
    "exit_rate",
    "median",
    "p75",
    "quantile",
    "recompute",
    "stats_from_totals",
    "window_start",
]
