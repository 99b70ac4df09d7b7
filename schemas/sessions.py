"""Closed sessions: what the sessionizer publishes to the closed-sessions topic.

Built as plain dicts on the hot path (`streams/sessionizer.py`); this model documents and
validates the shape (JSON Schema export, consumers, tests).
"""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

CloseReason = Literal["inactivity", "session-end", "max-duration", "max-events", "max-bytes", "end-of-input"]


def window_id(session_id: str, started_at: int) -> str:
    """The stable id of one closed window: `<session_id>@<started_at>`."""
    return f"{session_id}@{started_at}"


def window_id_of(session: dict[str, Any]) -> str:
    """A closed-session dict's window id (built from its start when the dict lacks one)."""
    return session.get("window_id") or window_id(str(session.get("session_id")), int(session.get("started_at") or 0))


class Signal(BaseModel):
    """A frustration signal, sent by the source or derived from raw clicks and errors."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="rage-click, dead-click, error-click or mouse-thrash")
    timestamp: int
    event_id: Optional[str] = Field(default=None, description="The event that starts the signal")
    url: Optional[str] = None
    selector: Optional[str] = None
    text: Optional[str] = None
    count: int = 1
    derived: bool = Field(default=True, description="False when the source sent the signal itself")
    detail: Optional[str] = None


class PageVisit(BaseModel):
    url: str
    entered_at: int
    left_at: int
    time_on_page_ms: int = Field(description="Time on the page, without the time hidden or idle")
    event_count: int = 0
    hidden_ms: int = Field(default=0, description="Time the tab was hidden while on this page")
    idle_ms: int = Field(default=0, description="Time the session was idle (no user activity) on this page")


class Comparison(BaseModel):
    """How one page of this session compares with that page's baseline (see aggregates/)."""

    url: str = Field(description="Normalized URL")
    metric: str
    session_value: float
    baseline_value: float
    baseline: str = Field(description="What the baseline is: p75, median, rate, mean")
    sample_size: int
    worse: bool
    text: str


class SessionContext(BaseModel):
    model_config = ConfigDict(extra="allow")

    user: Optional[dict[str, Any]] = None
    org: Optional[dict[str, Any]] = None
    device: Optional[dict[str, Any]] = None
    location: Optional[dict[str, Any]] = None


class ClosedSession(BaseModel):
    session_id: str
    window_id: str = Field(description="session_id@started_at: stable id of this closed window")
    part: int = Field(default=1, description="1 unless the session was split by a limit")
    previous_window_id: Optional[str] = Field(default=None, description="The part before this one")
    close_reason: CloseReason
    started_at: int
    ended_at: int
    duration_ms: int
    event_count: int
    events: list[dict[str, Any]] = Field(description="Contract-shaped events in time order")
    signals: list[Signal] = Field(default_factory=list)
    pages: list[PageVisit] = Field(default_factory=list)
    context: SessionContext = Field(default_factory=SessionContext)
    comparisons: list[Comparison] = Field(default_factory=list)
    automated: Optional[str] = Field(default=None, description=(
        "Why the session looks automated (headless or webdriver user agent, automation markers in "
        "console output); absent for sessions that show no sign of it"))
    trimmed: Optional[dict[str, int]] = Field(
        default=None, description="Pages and signals left out to keep the record under max_record_bytes (rare)")
