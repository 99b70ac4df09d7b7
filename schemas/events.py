"""The event contract: one JSON object per Kafka message, keyed by session id.

Decoded and validated exactly once, at the edge (`streams/ingest.py`); everything downstream
trusts these shapes. Unknown extra fields are kept (`extra="allow"`), never rejected.
"""
from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class EventType(str, Enum):
    navigate = "navigate"
    click = "click"
    dead_click = "dead-click"
    error_click = "error-click"
    rage_click = "rage-click"
    input_change = "input-change"
    network_error = "network-error"
    console_error = "console-error"
    mouse_thrash = "mouse-thrash"
    highlight = "highlight"
    copy = "copy"
    paste = "paste"
    element_seen = "element-seen"
    scroll = "scroll"
    web_vitals = "web-vitals"
    session_end = "session-end"
    custom = "custom"


EVENT_TYPES = frozenset(t.value for t in EventType)
# Signals the sessionizer may derive itself when a source sends only raw clicks.
FRUSTRATION_TYPES = frozenset({"rage-click", "dead-click", "error-click", "mouse-thrash"})
ERROR_TYPES = frozenset({"network-error", "console-error"})

# Integers must survive every JSON library on the way (JavaScript's safe range): a timestamp
# beyond int64 or a float such as -1e+23 is rejected here rather than crashing an encoder later.
MAX_SAFE_INT = 2**53 - 1
# Nesting deeper than this is rejected: a closed session wraps events two levels deeper, and JSON
# encoders refuse deep documents (orjson: 254 levels; Python's json: the recursion limit).
EVENT_MAX_DEPTH = 64
# Session and event ids are Kafka keys and parts of window ids: never truncated, so bounded here.
ID_MAX_LENGTH = 1024


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class User(_Open):
    id: Optional[str] = None
    email: Optional[str] = None


class Org(_Open):
    id: Optional[str] = None
    name: Optional[str] = None


class Device(_Open):
    type: Optional[str] = None
    os: Optional[str] = None
    browser: Optional[str] = None


class Location(_Open):
    country: Optional[str] = None
    region: Optional[str] = None
    city: Optional[str] = None


class Target(_Open):
    selector: Optional[str] = None
    text: Optional[str] = None


class ErrorInfo(_Open):
    message: Optional[str] = None
    status: Optional[int] = Field(default=None, ge=-MAX_SAFE_INT, le=MAX_SAFE_INT)
    method: Optional[str] = None
    request_url: Optional[str] = None


class Metrics(_Open):
    """Core Web Vitals in milliseconds, except CLS (unitless)."""

    lcp: Optional[float] = Field(default=None, ge=0, allow_inf_nan=False)
    inp: Optional[float] = Field(default=None, ge=0, allow_inf_nan=False)
    cls: Optional[float] = Field(default=None, ge=0, allow_inf_nan=False)
    fcp: Optional[float] = Field(default=None, ge=0, allow_inf_nan=False)
    ttfb: Optional[float] = Field(default=None, ge=0, allow_inf_nan=False)


def to_epoch_ms(value: Any) -> int:
    """Epoch milliseconds from an integer or an ISO-8601 string (naive means UTC)."""
    if isinstance(value, bool):
        raise ValueError("timestamp must be epoch milliseconds or an ISO-8601 string")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"timestamp {value!r} is not ISO-8601") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return int(parsed.timestamp() * 1000)
    raise ValueError("timestamp must be epoch milliseconds or an ISO-8601 string")


class Event(BaseModel):
    """One replay event. See README 'Event contract'."""

    model_config = ConfigDict(extra="allow", use_enum_values=True)

    event_id: Optional[str] = Field(
        default=None,
        min_length=1,
        max_length=ID_MAX_LENGTH,
        description="Unique per event; duplicates are dropped. Derived from the content when absent.",
    )
    session_id: str = Field(min_length=1, max_length=ID_MAX_LENGTH, description='Session id; "userId:sessionId" is allowed.')
    timestamp: int = Field(ge=-MAX_SAFE_INT, le=MAX_SAFE_INT,
                           description="Epoch milliseconds, or an ISO-8601 string on input.")
    type: EventType
    url: Optional[str] = None
    user: Optional[User] = None
    org: Optional[Org] = None
    device: Optional[Device] = None
    location: Optional[Location] = None
    target: Optional[Target] = None
    value: Optional[str] = None
    error: Optional[ErrorInfo] = None
    metrics: Optional[Metrics] = None
    name: Optional[str] = None
    properties: Optional[dict[str, Any]] = None

    @field_validator("timestamp", mode="before")
    @classmethod
    def _epoch_ms(cls, value: Any) -> int:
        return to_epoch_ms(value)

    @model_validator(mode="after")
    def _navigate_needs_url(self) -> "Event":
        if self.type == EventType.navigate.value and not self.url:
            raise ValueError("a navigate event needs a url")
        if self.type == EventType.custom.value and not self.name:
            raise ValueError("a custom event needs a name")
        return self
