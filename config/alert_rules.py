"""The typed alert rules (README 'Alerts'): what is counted, what makes a spike, when to speak.

They live in the config layer so that Settings can hold them (`REPLAYLENS_ALERT_RULES`, JSON, or
`REPLAYLENS_ALERT_RULES_FILE`); the pure engine in `alerts/` applies them.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

MINUTE_MS = 60_000
HOUR_MS = 3_600_000

# The signals counted per URL and site-wide (README 'Alerts' says where each comes from).
SIGNALS = (
    "rage-click", "dead-click", "error-click", "mouse-thrash", "js-error",
    "api-error-4xx", "api-error-5xx", "api-error-network", "slow-page", "abandoned-goal",
    "sessions-affected",
)


class QuietHours(BaseModel):
    """Alerts evaluated from `start` (inclusive) to `end` (exclusive), local hours of `timezone`,
    are held and sent as one digest when quiet hours end. start > end spans midnight."""

    model_config = ConfigDict(extra="forbid")

    start: int = Field(ge=0, le=23, description="First quiet hour (0-23)")
    end: int = Field(ge=0, le=23, description="First hour that is not quiet (0-23)")
    timezone: str = Field(default="UTC", description="IANA time zone of the hours")

    @model_validator(mode="after")
    def _known_zone(self) -> "QuietHours":
        ZoneInfo(self.timezone)  # raises on an unknown zone: a clear error at start-up
        return self

    def quiet_at(self, epoch_ms: int) -> bool:
        hour = datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc).astimezone(ZoneInfo(self.timezone)).hour
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= hour < self.end
        return hour >= self.start or hour < self.end


class AlertRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Run the alerting agent at all")
    signals: list[str] = Field(default_factory=lambda: list(SIGNALS), description="Signals that may alert")
    window_ms: int = Field(default=5 * MINUTE_MS, gt=0, description="Sliding window length")
    step_ms: int = Field(default=MINUTE_MS, gt=0, description="How often the window slides (divides window_ms)")
    ratio: float = Field(default=3.0, gt=1.0, description="A window is over when current >= ratio x baseline")
    min_count: int = Field(default=5, ge=1, description="...and at least this many occurrences")
    min_count_by_signal: dict[str, int] = Field(default_factory=dict, description="Per-signal minimums")
    min_sessions: int = Field(default=3, ge=1, description="...and at least this many distinct sessions")
    max_p_value: float = Field(default=0.001, gt=0, le=1, description="...and unlikely as chance: the Poisson probability of at least that count at the baseline rate is at most this (low counts)")
    n: int = Field(default=2, ge=1, description="Fire when n of the last m disjoint windows (ending now) are over")
    m: int = Field(default=3, ge=1)
    clear_windows: int = Field(default=3, ge=1, description="Consecutive windows not over that end a spike (all-clear)")
    cooldown_ms: int = Field(default=30 * MINUTE_MS, ge=0, description="No new alert for a URL and signal this long after the last one ended")
    evaluation_delay_ms: int = Field(default=2_000, ge=0, description="On Kafka, a window is evaluated this long after it ends (observations cross two topics)")
    quiet_hours: Optional[QuietHours] = None
    new_error_min_sessions: int = Field(default=3, ge=1, description="A new error alerts when it hits this many sessions in a window")
    new_error_learning_ms: int = Field(default=30 * MINUTE_MS, ge=0, description="Errors seen in this first stretch are the baseline, not new")
    known_error_ttl_ms: int = Field(default=7 * 24 * HOUR_MS, gt=0, description="An error unseen this long is new again")
    baseline_min_days: int = Field(default=3, ge=1, description="Days of history for the same-hour-of-day baseline")
    baseline_recent_hours: int = Field(default=24, ge=1, description="Hours of aggregates for the recent-average baseline")
    history_windows: int = Field(default=120, ge=1, description="Own past windows kept for the recent-average baseline")
    min_history_windows: int = Field(default=30, ge=1, description="Own past windows needed before a spike can fire without aggregates")
    max_sessions_linked: int = Field(default=5, ge=0, description="Sessions linked in an alert, worst first")
    max_messages: int = Field(default=3, ge=0, description="Most common (masked) error messages in an alert")

    @model_validator(mode="after")
    def _consistent(self) -> "AlertRules":
        if self.window_ms % self.step_ms:
            raise ValueError(f"alert rules: step_ms ({self.step_ms}) must divide window_ms ({self.window_ms})")
        if self.n > self.m:
            raise ValueError(f"alert rules: n ({self.n}) cannot exceed m ({self.m})")
        unknown = (set(self.signals) | set(self.min_count_by_signal)) - set(SIGNALS)
        if unknown:
            raise ValueError(f"alert rules: unknown signal(s) {sorted(unknown)}; known: {', '.join(SIGNALS)}")
        return self

    def minimum(self, signal: str) -> int:
        return self.min_count_by_signal.get(signal, self.min_count)

    @classmethod
    def load(cls, inline: Optional["AlertRules"], path: Optional[Path]) -> "AlertRules":
        """The rules file when one is set, else the inline setting, else the defaults."""
        if path is not None:
            return cls.model_validate(json.loads(Path(path).read_text()))
        return inline or cls()


# The layout of the counted windows: running workers keep them, so they change only at a restart.
WINDOW_LAYOUT_FIELDS = ("window_ms", "step_ms")


def rules_over(base: AlertRules, changes: dict) -> AlertRules:
    """`base` with `changes` applied (keys not given keep `base`'s values), validated: how rules
    set through the API sit on top of the ones in settings."""
    return AlertRules.model_validate({**base.model_dump(), **changes})


def live_change_refused(running: AlertRules, wanted: AlertRules) -> Optional[str]:
    """Why `wanted` cannot replace `running` on live workers, or None when it can."""
    changed = [name for name in WINDOW_LAYOUT_FIELDS if getattr(running, name) != getattr(wanted, name)]
    if not changed:
        return None
    return (f"{' and '.join(changed)} cannot change on running workers (their counted windows are laid out "
            f"by them): set REPLAYLENS_ALERT_RULES and restart the workers")


class WebhookTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    format: str = Field(default="json", pattern="^(json|slack)$", description="slack: {'text': ...}; json: the alert")
