"""Alerts: what the alerting agent publishes to the alerts topic (README 'Alerts').

The engine (alerts/engine.py) builds plain dicts; this model documents and validates the shape
(`replaylens schema alert`, consumers, tests).
"""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field


class AlertWindow(BaseModel):
    start: int = Field(description="Epoch ms, inclusive")
    end: int = Field(description="Epoch ms, exclusive: when the window was evaluated")
    ms: int


class AffectedSession(BaseModel):
    session_id: str
    count: int = Field(description="Occurrences in the window (sessions are listed worst first)")
    timestamp: int = Field(description="The first occurrence in the window, epoch ms")
    link: str = Field(description="Time-coded replay link at that moment")


class MessageCount(BaseModel):
    message: str = Field(description="A masked error message (or failing request)")
    count: int


class PageCount(BaseModel):
    url: str
    count: int


class Alert(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["spike", "all-clear", "new-error", "digest"]
    alert_id: str = Field(description="Deterministic: a re-sent alert has the same id")
    url: str = Field(description="Normalized URL, or * for the whole site")
    signal: str = Field(description="rage-click, js-error, api-error-5xx, ... (digest: 'digest')")
    at: int = Field(description="When it was evaluated, epoch ms")
    text: str = Field(description="Markdown: headline, sessions as links, top messages")
    window: Optional[AlertWindow] = None
    current: Optional[int] = Field(default=None, description="Occurrences in the window")
    baseline: Optional[float] = Field(default=None, description="Usual occurrences per window")
    baseline_basis: Optional[Literal["same-hour-of-day", "recent-hours", "recent-windows"]] = None
    baseline_sample: Optional[int] = Field(default=None, description="Days, hours or windows it rests on")
    ratio: Optional[float] = Field(default=None, description="current / baseline (none when the baseline is 0)")
    windows_over: Optional[int] = None
    windows_considered: Optional[int] = None
    sessions_affected: Optional[int] = None
    sessions: list[AffectedSession] = Field(default_factory=list)
    top_messages: list[MessageCount] = Field(default_factory=list)
    pages: list[PageCount] = Field(default_factory=list, description="Site-wide and new-error alerts: where")
    spike_id: Optional[str] = Field(default=None, description="all-clear: the spike it ends")
    spike_started_at: Optional[int] = None
    peak: Optional[int] = None
    error_key: Optional[str] = Field(default=None, description="new-error: the masked message or endpoint")
    first_seen: Optional[int] = None
    count: Optional[int] = Field(default=None, description="digest: alerts held in quiet hours")
    alerts: list["Alert"] = Field(default_factory=list, description="digest: the held alerts")
