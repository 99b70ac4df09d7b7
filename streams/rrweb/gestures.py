"""Gestures read from raw pointer data: mouse thrash, taps, and whether the page answered a click.

Pure helpers of the mapping (mapping.py); none of them emits events itself.
"""
from __future__ import annotations

from collections import deque
from typing import Optional

from replaylens.streams.rrweb.options import RrwebOptions


class Thrash:
    """Counts pointer direction reversals per axis; a reversal needs `min_travel` px of travel
    back from the furthest point, so jitter does not count."""

    def __init__(self, options: RrwebOptions) -> None:
        self.window = options.thrash_window_ms
        self.needed = options.thrash_min_reversals
        self.travel = options.thrash_min_travel_px
        self.reset()

    def reset(self) -> None:
        # Per axis: [furthest point, direction (+1/-1/0), reversal times].
        self.axes = [[None, 0, deque()], [None, 0, deque()]]
        self.quiet_until = -1

    def feed(self, t: int, x: float, y: float) -> bool:
        """True when this point completes a thrash burst (enough reversals on one axis)."""
        burst = False
        for axis, value in ((self.axes[0], x), (self.axes[1], y)):
            extreme, direction, reversals = axis
            if extreme is None:
                axis[0] = value
                continue
            delta = value - extreme
            if (direction >= 0 and delta > 0) or (direction <= 0 and delta < 0):
                if direction == 0 and abs(delta) < self.travel:
                    continue
                axis[0], axis[1] = value, (1 if delta > 0 else -1)
            elif abs(delta) >= self.travel:
                axis[0], axis[1] = value, -direction
                reversals.append(t)
            while reversals and t - reversals[0] > self.window:
                reversals.popleft()
            burst = burst or len(reversals) >= self.needed
        if burst and t >= self.quiet_until:
            for axis in self.axes:
                axis[2].clear()
            self.quiet_until = t + self.window
            return True
        return False


def is_tap(options: RrwebOptions, start: Optional[tuple[int, float, float]], timestamp: int,
           x: Optional[float], y: Optional[float]) -> bool:
    """A touch that ended soon and near where it started (or a lone touch end) is a tap."""
    if start is None:
        return True  # a lone touch end: the start was not recorded
    started, x0, y0 = start
    limit = options.tap_max_move_px
    return (timestamp - started <= options.tap_max_duration_ms
            and abs((x or 0.0) - x0) <= limit and abs((y or 0.0) - y0) <= limit)


class ClickResponses:
    """Watches what the page did after each click, for the dead-click rule.

    A click is answered by the first DOM mutation, navigation, input, scroll or network request
    within `response_window_ms`. Each click event gets `properties.response`:
    `{"kind": "mutation", "after_ms": 120}` when answered, `{"none_within_ms": W}` when the
    recording shows nothing for W ms after it (W < window when the recording ends first).
    """

    def __init__(self, options: RrwebOptions) -> None:
        self.window = options.response_window_ms
        self.waiting: deque[dict] = deque()  # click events in time order, not yet answered

    def click(self, event: dict) -> None:
        self.waiting.append(event)

    def respond(self, kind: str, timestamp: int, exclude: Optional[dict] = None) -> None:
        """Something happened at `timestamp`: it answers every waiting click before it."""
        self.expire(timestamp)
        kept: deque[dict] = deque()
        while self.waiting:
            event = self.waiting.popleft()
            if event is exclude or event["timestamp"] > timestamp:
                kept.append(event)
                continue
            event["properties"]["response"] = {"kind": kind, "after_ms": timestamp - event["timestamp"]}
        self.waiting = kept

    def expire(self, now: int) -> None:
        """Clicks whose window passed before `now` with no answer."""
        while self.waiting and now - self.waiting[0]["timestamp"] > self.window:
            event = self.waiting.popleft()
            event["properties"]["response"] = {"none_within_ms": self.window}

    def finish(self, last_timestamp: int) -> None:
        """End of the recording: what is still waiting saw nothing until the last event."""
        self.expire(last_timestamp)
        for event in self.waiting:
            event["properties"]["response"] = {"none_within_ms": max(last_timestamp - event["timestamp"], 0)}
        self.waiting.clear()
