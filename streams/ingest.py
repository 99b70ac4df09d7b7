"""Decode and validate each raw message exactly once, at the edge of the pipeline.

Fast path: msgspec decodes and type-checks the common, already-normalized shape in one pass (a
strict mirror of the contract); such an event is kept as its original bytes unless masking or a
missing event id must change it. Anything else goes through the pydantic model
(`schemas.events.Event`), which is the authority: the fast path may only accept what the model
accepts (property tests hold it to that), and every rejection carries the model's own message.

Isolation: no input can make `decode` or `accept` raise. Whatever a message holds (invalid UTF-8,
nesting past any parser's limit, numbers no encoder can write back) ends as a `Rejected` with a
reason, and what is accepted can always be encoded and decoded again (state, re-key topic,
closed sessions). An accepted event larger than `max_event_bytes` is capped: long strings and
lists are cut with a marker and the event says so in `_truncated` (original size, values cut).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Optional, Union

import msgspec
import orjson
from pydantic import ValidationError

from replaylens.schemas.events import EVENT_MAX_DEPTH, EVENT_TYPES, ID_MAX_LENGTH, MAX_SAFE_INT, Event
from replaylens.config.privacy import Masker

_EventType = Literal[tuple(sorted(EVENT_TYPES))]  # type: ignore[valid-type]
_NonNeg = Annotated[float, msgspec.Meta(ge=0)]
_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=ID_MAX_LENGTH)]
_SafeInt = Annotated[int, msgspec.Meta(ge=-MAX_SAFE_INT, le=MAX_SAFE_INT)]

# Number literals that some decoder on the way may refuse (orjson: a double that overflows to
# infinity) or turn into integers no encoder writes back. msgspec skips unknown fields without
# reading their numbers, so the fast path checks the bytes for them (a rare false alarm only
# sends an event down the slow path, which is authoritative).
_RISKY_NUMBER = re.compile(rb"[0-9][eE][+-]?[0-9]{3}|[0-9]{17}")
DEFAULT_MAX_EVENT_BYTES = 64 * 1024
TRUNCATED_FIELD = "_truncated"
TRUNCATION_MARK = "…[truncated]"
_UNCUT_FIELDS = frozenset({"session_id", "event_id", "timestamp", "type"})
_CORE_FIELDS = ("session_id", "event_id", "timestamp", "type", "url", "name")
_MIN_KEEP = 64  # characters of a string, or items of a list, that a cut always keeps


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
    status: Optional[_SafeInt] = None
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

    session_id: _Id
    timestamp: _SafeInt
    type: _EventType
    event_id: Optional[_Id] = None
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


def _may_need_masking(text: Optional[str]) -> bool:
    """Cheap pre-check mirroring mask_text: only emails and digit runs are ever rewritten."""
    return bool(text) and ("@" in text or any(c.isdigit() for c in text))


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

    __slots__ = ("masker", "future_tolerance_ms", "max_event_bytes")

    def __init__(self, masker: Optional[Masker] = None, future_tolerance_ms: int = 600_000,
                 max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.masker = masker or Masker()
        self.future_tolerance_ms = future_tolerance_ms
        self.max_event_bytes = max_event_bytes

    def decode(self, raw: Union[bytes, str], now_ms: int) -> Union[Accepted, Rejected]:
        """Never raises: any failure of one message is that message's rejection."""
        try:
            return self._decode(raw, now_ms)
        except Exception as exc:  # noqa: BLE001 - isolation: one message must not stop a batch
            return _unprocessable(exc)

    def _decode(self, raw: Union[bytes, str], now_ms: int) -> Union[Accepted, Rejected]:
        if isinstance(raw, str):
            try:
                raw = raw.encode()
            except UnicodeEncodeError as exc:  # lone surrogates
                return Rejected("invalid-json", f"not JSON: text is not valid UTF-8 ({exc.reason})")
        try:
            ev = _fast_decoder.decode(raw)
            # msgspec skips unknown fields without checking their UTF-8 or their depth.
            text = raw.decode() if _bytes_safe(raw) else None
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            ev = None  # the slow path says precisely what is wrong
        if ev is not None and text is not None and _satisfies_contract_rules(ev):
            if self._unchanged(ev, now_ms) and len(raw) <= self.max_event_bytes:
                # The hot path: one pass, the original bytes kept.
                return Accepted(ev.session_id, ev.event_id, ev.timestamp, ev.type, text)
            return self._normalize(orjson.loads(raw), now_ms, raw, changed=False)  # valid already
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return Rejected("invalid-json", f"not JSON: {exc}")
        if type(obj) is not dict:
            return Rejected("invalid-event", f"an event must be a JSON object, not {type(obj).__name__}")
        return self._validated(obj, now_ms, raw)

    def accept(self, obj: dict, now_ms: int) -> Union[Accepted, Rejected]:
        """Validate an already-decoded object (rrweb mapping, simulator, tests). Never raises."""
        try:
            if type(obj) is not dict:
                return Rejected("invalid-event", f"an event must be a JSON object, not {type(obj).__name__}")
            return self._validated(obj, now_ms, None)
        except Exception as exc:  # noqa: BLE001 - isolation, as in decode()
            return _unprocessable(exc)

    def _unchanged(self, ev: _FastEvent, now_ms: int) -> bool:
        """A valid event that needs no event id, no masking and is not from the future."""
        return (ev.event_id is not None and ev.timestamp <= now_ms + self.future_tolerance_ms
                and ev.value is None
                and not (ev.target is not None and _may_need_masking(ev.target.text))
                and not (ev.error is not None and _may_need_masking(ev.error.message)))

    def _validated(self, obj: dict, now_ms: int, raw: Union[bytes, str, None]) -> Union[Accepted, Rejected]:
        if not _depth_within(obj, EVENT_MAX_DEPTH):
            sid = obj.get("session_id")
            return Rejected("invalid-event", f"nested deeper than {EVENT_MAX_DEPTH} levels",
                            sid if type(sid) is str and len(sid) <= ID_MAX_LENGTH else None)
        if _fast_valid(obj):
            return self._normalize(obj, now_ms, raw, changed=False)
        try:
            model = Event.model_validate(obj)
        except ValidationError as exc:
            sid = obj.get("session_id")
            return Rejected("invalid-event", _first_error(exc),
                            sid if type(sid) is str and len(sid) <= ID_MAX_LENGTH else None)
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
        if (obj.get("value") is not None or _may_need_masking(_sub(obj, "target", "text"))
                or _may_need_masking(_sub(obj, "error", "message"))):
            # Masking may rewrite text: keep the re-encoded form (never the raw one) then.
            self.masker.mask_event(obj)
            changed = True
        if changed or raw is None:
            data = orjson.dumps(obj)
        else:
            data = raw.encode() if isinstance(raw, str) else raw  # bytes since _decode; str from callers
        if len(data) > self.max_event_bytes:
            data = orjson.dumps(cap_event(obj, self.max_event_bytes, len(data)))
        return Accepted(obj["session_id"], obj["event_id"], ts, obj["type"], data.decode())


def _sub(obj: dict, name: str, field: str) -> Any:
    sub = obj.get(name)
    return sub.get(field) if type(sub) is dict else None


def _unprocessable(exc: BaseException) -> Rejected:
    # The exception's type only: its message may quote the event's contents.
    return Rejected("invalid-event", f"the event could not be processed ({type(exc).__name__})")


def _bytes_safe(data: bytes) -> bool:
    """What the fast path keeps as bytes can be decoded and re-encoded by any JSON library."""
    if data.count(b"[") + data.count(b"{") > EVENT_MAX_DEPTH:  # cheap bound; rarely inconclusive
        return False
    return _RISKY_NUMBER.search(data) is None


def _depth_within(obj: Any, limit: int) -> bool:
    """Nesting of containers is at most `limit` (iterative: no recursion on hostile input)."""
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if type(value) is dict:
            children = value.values()
        elif type(value) is list:
            children = value
        else:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children if type(child) in (dict, list))
    return True


def cap_event(obj: dict[str, Any], max_bytes: int, original_bytes: int) -> dict[str, Any]:
    """The event cut to fit `max_bytes` when encoded: long strings and lists are shortened (a
    marker shows where), ids and the timestamp never; `_truncated` records the original size and
    how many values were cut. If cutting strings and lists is not enough (e.g. huge keys), only
    the contract's core fields are kept."""
    keep = max(_MIN_KEEP, max_bytes // 8)
    while True:
        cut = [0]
        out = {k: (v if k in _UNCUT_FIELDS else _cut(v, keep, cut)) for k, v in obj.items()}
        out[TRUNCATED_FIELD] = {"original_bytes": original_bytes, "values_cut": cut[0]}
        if len(orjson.dumps(out)) <= max_bytes or keep <= _MIN_KEEP:
            break
        keep = max(_MIN_KEEP, keep // 4)
    if len(orjson.dumps(out)) > max_bytes:
        cut = [0]
        out = {k: (obj[k] if k in _UNCUT_FIELDS else _cut(obj[k], _MIN_KEEP, cut))
               for k in _CORE_FIELDS if k in obj}
        out[TRUNCATED_FIELD] = {"original_bytes": original_bytes, "values_cut": cut[0],
                                "fields_dropped": sorted(k for k in obj if k not in out)}
    return out


def _cut(value: Any, keep: int, cut: list[int]) -> Any:
    """A copy with strings (and dict keys) longer than `keep` characters and lists longer than
    `keep` items shortened. Depth is bounded by EVENT_MAX_DEPTH, so recursion is safe here."""
    if type(value) is str:
        if len(value) <= keep:
            return value
        cut[0] += 1
        return value[:keep] + TRUNCATION_MARK
    if type(value) is dict:
        out = {}
        for k, v in value.items():
            if len(k) > keep:
                cut[0] += 1
                k = k[:keep] + TRUNCATION_MARK
            out[k] = _cut(v, keep, cut)
        return out
    if type(value) is list:
        if len(value) > keep:
            cut[0] += 1
            value = value[:keep] + [TRUNCATION_MARK]
        return [_cut(v, keep, cut) for v in value]
    return value


def encode_event(ev: dict[str, Any], max_bytes: int) -> Optional[bytes]:
    """A mapped event (rrweb) as JSON for the events topic, capped like an accepted event; None
    when no JSON can say it (integers beyond 64 bits, nesting past the encoder's limit)."""
    try:
        data = orjson.dumps(ev)
        if len(data) > max_bytes:
            data = orjson.dumps(cap_event(ev, max_bytes, len(data)))
    except (TypeError, ValueError, RecursionError):
        return None
    return data
