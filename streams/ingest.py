"""Decode and validate each raw message exactly once, at the edge of the pipeline.

Fast path: msgspec decodes and type-checks the common, already-normalized shape in one pass (a
strict mirror of the contract); such an event is kept as its original bytes unless masking or a
missing event id must change it. Anything else goes through the pydantic model
(`schemas.events.Event`), which is the authority: the fast path may only accept what the model
accepts (property tests hold it to that), and every rejection carries the model's own message.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Optional, Union

import msgspec
import orjson
from pydantic import ValidationError

from replaylens.schemas.events import EVENT_TYPES, Event
from replaylens.config.privacy import Masker
from replaylens.config.settings import setting_default

_EventType = Literal[tuple(sorted(EVENT_TYPES))]  # type: ignore[valid-type]
_NonNeg = Annotated[float, msgspec.Meta(ge=0)]


class _Ctx(msgspec.Struct):
    # Union of the context objects' string fields; extra keys are ignored here and kept in the JSON.
    id: Optional[str] = None
    email: Optional[str] = None
    name: Optional[str] = None
    type: Optional[str] = None
    os: Optional[str] = None
    browser: Optional[str] = None
    country: Optional[str] = None
    region: Optional[str] = None
    city: Optional[str] = None
    selector: Optional[str] = None
    text: Optional[str] = None


class _Error(msgspec.Struct):
    message: Optional[str] = None
    status: Optional[int] = None
    method: Optional[str] = None
    request_url: Optional[str] = None


class _Metrics(msgspec.Struct):
    lcp: Optional[_NonNeg] = None
    inp: Optional[_NonNeg] = None
    cls: Optional[_NonNeg] = None
    fcp: Optional[_NonNeg] = None
    ttfb: Optional[_NonNeg] = None


class _FastEvent(msgspec.Struct):
    """Strict mirror of schemas.events.Event for the common shape (epoch-ms integer timestamps)."""

    session_id: Annotated[str, msgspec.Meta(min_length=1)]
    timestamp: int
    type: _EventType
    event_id: Optional[Annotated[str, msgspec.Meta(min_length=1)]] = None
    url: Optional[str] = None
    value: Optional[str] = None
    name: Optional[str] = None
    user: Optional[_Ctx] = None
    org: Optional[_Ctx] = None
    device: Optional[_Ctx] = None
    location: Optional[_Ctx] = None
    target: Optional[_Ctx] = None
    error: Optional[_Error] = None
    metrics: Optional[_Metrics] = None
    properties: Optional[dict] = None


_fast_decoder = msgspec.json.Decoder(_FastEvent)


@dataclass(slots=True)
class Accepted:
    """A valid, normalized, masked event, ready for the sessionizer."""

    session_id: str
    event_id: str
    timestamp: int
    type: str
    json: str  # the normalized event as compact JSON: what is buffered and persisted


@dataclass(slots=True)
class Rejected:
    reason: str  # DeadLetterReason
    error: str
    session_id: Optional[str] = None


def _satisfies_contract_rules(ev: _FastEvent) -> bool:
    """The model's cross-field rules, which the struct's types cannot say."""
    return not ((ev.type == "navigate" and not ev.url) or (ev.type == "custom" and not ev.name))


def _fast_valid(obj: dict) -> bool:
    """True when the model would surely accept `obj` unchanged (no coercion needed)."""
    try:
        ev = msgspec.convert(obj, _FastEvent)
    except msgspec.ValidationError:
        return False
    return _satisfies_contract_rules(ev)


def _first_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "event"
        parts.append(f"{loc}: {err.get('msg')}")
    return "; ".join(parts)


class EventDecoder:
    """bytes -> Accepted | Rejected. One instance per worker; holds no per-event state."""

    __slots__ = ("masker", "future_tolerance_ms")

    def __init__(self, masker: Optional[Masker] = None, future_tolerance_ms: Optional[int] = None) -> None:
        self.masker = masker or Masker()
        self.future_tolerance_ms = (future_tolerance_ms if future_tolerance_ms is not None
                                    else setting_default("future_tolerance_ms"))

    def decode(self, raw: Union[bytes, str], now_ms: int) -> Union[Accepted, Rejected]:
        try:
            ev = _fast_decoder.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError):
            ev = None
        if ev is not None and _satisfies_contract_rules(ev):
            if self._unchanged(ev, now_ms):  # the hot path: one pass, the original bytes kept
                return Accepted(ev.session_id, ev.event_id, ev.timestamp, ev.type,
                                raw.decode() if isinstance(raw, bytes) else raw)
            # valid already; the check above found what needs masking (or the future timestamp)
            return self._normalize(orjson.loads(raw), now_ms, raw, changed=False)
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return Rejected("invalid-json", f"not JSON: {exc}")
        if type(obj) is not dict:
            return Rejected("invalid-event", f"an event must be a JSON object, not {type(obj).__name__}")
        return self._validated(obj, now_ms, raw)

    def accept(self, obj: dict, now_ms: int) -> Union[Accepted, Rejected]:
        """Validate an already-decoded object (rrweb mapping, simulator, tests)."""
        return self._validated(obj, now_ms, None)

    def _unchanged(self, ev: _FastEvent, now_ms: int) -> bool:
        """A valid event that needs no event id, no masking and is not from the future."""
        error = ev.error
        return (ev.event_id is not None and ev.timestamp <= now_ms + self.future_tolerance_ms
                and not self.masker.event_needs_masking(
                    ev.value, ev.url, ev.target.text if ev.target is not None else None,
                    error.message if error is not None else None,
                    error.request_url if error is not None else None, ev.properties,
                    ev.user.email if ev.user is not None else None,
                    ev.org.name if ev.org is not None else None))

    def _validated(self, obj: dict, now_ms: int, raw: Union[bytes, str, None]) -> Union[Accepted, Rejected]:
        if _fast_valid(obj):
            return self._normalize(obj, now_ms, raw, changed=False)
        try:
            model = Event.model_validate(obj)
        except ValidationError as exc:
            sid = obj.get("session_id")
            return Rejected("invalid-event", _first_error(exc), sid if type(sid) is str else None)
        return self._normalize(model.model_dump(exclude_unset=True), now_ms, raw, changed=True)

    def _normalize(self, obj: dict, now_ms: int, raw: Union[bytes, str, None],
                   changed: bool) -> Union[Accepted, Rejected]:
        """Future check, derived event id and masking of a valid event; re-encode if changed."""
        ts = obj["timestamp"]
        if ts > now_ms + self.future_tolerance_ms:
            return Rejected(
                "future-timestamp",
                f"timestamp {ts} is {(ts - now_ms) // 1000} s ahead of the pipeline clock "
                f"(tolerance {self.future_tolerance_ms // 1000} s)",
                obj["session_id"],
            )
        if not obj.get("event_id"):
            source = raw if raw is not None else orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
            if isinstance(source, str):
                source = source.encode()
            obj["event_id"] = "h-" + hashlib.blake2b(source, digest_size=10).hexdigest()
            changed = True
        if self.masker.event_needs_masking(
                obj.get("value"), obj.get("url"), _sub(obj, "target", "text"), _sub(obj, "error", "message"),
                _sub(obj, "error", "request_url"), obj.get("properties"), _sub(obj, "user", "email"),
                _sub(obj, "org", "name")):
            # Masking may rewrite text: keep the re-encoded form (never the raw one) then.
            self.masker.mask_event(obj)
            changed = True
        if changed or raw is None:
            text = orjson.dumps(obj).decode()
        else:
            text = raw.decode() if isinstance(raw, bytes) else raw
        return Accepted(obj["session_id"], obj["event_id"], ts, obj["type"], text)


def _sub(obj: dict, name: str, field: str) -> Any:
    sub = obj.get(name)
    return sub.get(field) if type(sub) is dict else None
