"""Thresholds of the rrweb mapping, and the error every entry point raises on non-recordings."""
from __future__ import annotations

from dataclasses import dataclass


class RrwebError(ValueError):
    """The input is not an rrweb recording (not JSON, no event list, no rrweb-shaped events)."""


@dataclass(frozen=True)
class RrwebOptions:
    """Thresholds of the mapping. Defaults match replaylens Settings where a twin exists."""

    scroll_gap_ms: int = 1_000          # scrolls of one target closer than this form one burst
    selection_gap_ms: int = 1_000       # selection changes closer than this are one highlight
    text_max_chars: int = 80            # target.text is trimmed to this
    tap_max_move_px: float = 15.0       # a touch that moved further is a swipe, not a tap
    tap_max_duration_ms: int = 800      # a longer touch is a press or a drag, not a tap
    tap_click_merge_ms: int = 1_000     # a click this soon after a tap, nearby, is the tap's echo
    tap_click_merge_px: float = 40.0
    thrash_window_ms: int = 1_500       # Settings.thrash_window_ms
    thrash_min_reversals: int = 6       # Settings.thrash_min_direction_changes
    thrash_min_travel_px: float = 30.0  # smaller wiggles are hand jitter, not a reversal
    # How long after a click the mapper watches the page for a response (DOM mutation,
    # navigation, input, scroll, network request): Settings.dead_click_window_ms.
    response_window_ms: int = 2_500


DEFAULT_OPTIONS = RrwebOptions()


def options_from_settings(settings) -> RrwebOptions:
    """The mapping thresholds that are pipeline settings."""
    return RrwebOptions(thrash_window_ms=settings.thrash_window_ms,
                        thrash_min_reversals=settings.thrash_min_direction_changes,
                        response_window_ms=settings.dead_click_window_ms)
