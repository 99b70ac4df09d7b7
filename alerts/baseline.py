"""Baselines: how many occurrences of a signal a URL usually has in one window.

From the hourly aggregates (the adapter reads them): the same hour of day over the rolling
window when it holds enough days, else the recent hourly average; each scaled from an hour to
the window. When the aggregates have nothing (a new install, or a signal they do not count),
the engine falls back on its own recent windows (alerts/engine.py).
"""
from __future__ import annotations

import math
from statistics import median
from dataclasses import dataclass
from typing import Mapping, Optional

HOUR_MS = 3_600_000
HOURS_PER_DAY = 24

# The aggregates' counter behind each signal; signals without one use the engine's own history.
AGGREGATE_COUNTER = {
    "rage-click": "rage_clicks",
    "dead-click": "dead_clicks",
    "error-click": "error_clicks",
    "mouse-thrash": "mouse_thrashes",
    "js-error": "js_errors",
}


@dataclass(frozen=True)
class Baseline:
    value: float   # expected occurrences per window
    basis: str     # same-hour-of-day, recent-hours or recent-windows
    sample: int    # days, hours or windows it rests on

    def describe(self) -> str:
        unit = {"same-hour-of-day": "days", "recent-hours": "hours", "recent-windows": "windows"}[self.basis]
        return f"{self.basis.replace('-', ' ')}, {self.sample} {unit}"


def hourly_baseline(hours: Mapping[int, float], now_ms: int, window_ms: int, min_days: int,
                    recent_hours: int) -> Optional[Baseline]:
    """Baseline from hourly counts {bucket start ms: count} of one URL and signal.

    Only complete hours count (the current hour is still filling). Hours without a row after the
    first row are quiet hours (zero), not missing data. None when there is no complete hour.
    """
    current = now_ms - now_ms % HOUR_MS
    past = [b for b in hours if b < current]
    if not past:
        return None
    first = min(past)
    scale = window_ms / HOUR_MS
    day_ms = HOURS_PER_DAY * HOUR_MS
    days = (current - first) // day_ms
    same_hour = [current - day * day_ms for day in range(1, days + 1)]
    if len(same_hour) >= min_days:
        mean = sum(hours.get(b, 0.0) for b in same_hour) / len(same_hour)
        return Baseline(mean * scale, "same-hour-of-day", len(same_hour))
    recent = [current - h * HOUR_MS for h in range(1, recent_hours + 1)]
    recent = [b for b in recent if b >= first]
    mean = sum(hours.get(b, 0.0) for b in recent) / len(recent)
    return Baseline(mean * scale, "recent-hours", len(recent))


TRIMMED_SHARE = 0.75  # the recent-windows baseline ignores the busiest quarter of them


def history_baseline(history: list[int], min_windows: int) -> Optional[Baseline]:
    """The engine's own recent windows, once there are enough of them: the median, or the mean of
    the quieter three quarters when higher (sparse signals have a median of 0). Both ignore the
    start of a spike seen before there was a baseline to call it one."""
    if len(history) < min_windows:
        return None
    ordered = sorted(history)
    kept = ordered[: max(1, math.ceil(len(ordered) * TRIMMED_SHARE))]
    return Baseline(max(float(median(ordered)), sum(kept) / len(kept)), "recent-windows", len(history))


# Beyond this many standard deviations above the mean, a Poisson tail is far below any useful
# p-value: no need to sum it.
_TAIL_SIGMAS = 8.0


def poisson_tail(count: int, mean: float) -> float:
    """P(X >= count) for X ~ Poisson(mean): how likely a window at least this full is by chance
    at the baseline rate (an upper bound of 1e-9-ish is returned as 0 far out in the tail)."""
    if count <= 0:
        return 1.0
    if mean <= 0:
        return 0.0
    if count > mean + _TAIL_SIGMAS * math.sqrt(mean) + _TAIL_SIGMAS:
        return 0.0
    log_mean = math.log(mean)
    below = sum(math.exp(k * log_mean - mean - math.lgamma(k + 1)) for k in range(count))
    return max(0.0, 1.0 - below)
