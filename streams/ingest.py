"""Decode and validate each raw message exactly once, at the edge of the pipeline.

Fast path: msgspec decodes and type-checks the common, already-normalized shape in one pass (a
strict mirror of the contract); such an event is kept as its original bytes unless masking or a
missing event id must change it, or its bytes may hold a duplicate key (`_no_hidden_values`):
parsers keep a duplicate's last value, so the original bytes would carry an earlier value no
check has seen (an email, a typed value) into state and closed sessions. Such an event is
re-encoded from its decoded value, which drops the earlier one. Anything else goes through the pydantic model
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
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Optional, Union

import msgspec
from msgspec.structs import astuple
import orjson
from pydantic import ValidationError

from replaylens.schemas.events import EVENT_MAX_DEPTH, EVENT_TYPES, ID_MAX_LENGTH, MAX_SAFE_INT, Event
from replaylens.config.privacy import Masker
from replaylens.config.settings import setting_default
from replaylens.streams.scan import keyed_values, present_keys, replace_once

_EventType = Literal[tuple(sorted(EVENT_TYPES))]  # type: ignore[valid-type]
_NonNeg = Annotated[float, msgspec.Meta(ge=0)]
_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=ID_MAX_LENGTH)]
_SafeInt = Annotated[int, msgspec.Meta(ge=-MAX_SAFE_INT, le=MAX_SAFE_INT)]

# The fast path parses every field (unknown fields send an event down the slow path), so msgspec
# has checked every string's UTF-8 and every number. It still accepts what JSON encoders refuse
# downstream, inside `properties` only: nesting past their limits and integers of hundreds of
# digits (orjson reads them as an overflowing double); `_properties_safe` looks for both.
_JSON_INT_RANGE = (-2**63, 2**64)
DEFAULT_MAX_EVENT_BYTES = 64 * 1024
TRUNCATED_FIELD = "_truncated"
TRUNCATION_MARK = "…[truncated]"
_UNCUT_FIELDS = frozenset({"session_id", "event_id", "timestamp", "type"})
_CORE_FIELDS = ("session_id", "event_id", "timestamp", "type", "url", "name")
_MIN_KEEP = 64  # characters of a string, or items of a list, that a cut always keeps


# The keys of the fields masking may change, as they are written in a message (escape-free).
_KEY_TOKENS = {key: orjson.dumps(key) for key in ("value", "url", "text", "message", "request_url", "email", "name")}
# JSON tokens of the swaps masking makes, remembered (bounded, cleared whole when full).
_TOKENS: dict[tuple[str, str, str], tuple[bytes, bytes, bytes]] = {}
TOKEN_MEMO_ENTRIES = 50_000
_CTX_FIELDS = ("id", "email", "name", "type", "os", "browser", "country", "region", "city", "selector", "text")


def _contract_mirror(forbid_unknown: bool) -> type:
    """A strict mirror of schemas.events.Event for the common shape (epoch-ms integers). Strict
    (`forbid_unknown`) for bytes: every field is then parsed and checked, and an event with
    fields of its own takes the slow path; lenient for already-decoded objects."""
    def struct(name: str, fields: list) -> type:
        # gc=False: decoded JSON holds no reference cycles, and untracked structs make decoding
        # cheaper (no garbage-collector bookkeeping, fewer young-generation passes)
        return msgspec.defstruct(name, fields, forbid_unknown_fields=forbid_unknown, gc=False)

    # Union of the context objects' string fields (user, org, device, location, target).
    ctx = Optional[struct("Ctx", [(f, Optional[str], None) for f in _CTX_FIELDS])]
    error = struct("Error", [("message", Optional[str], None), ("status", Optional[_SafeInt], None),
                             ("method", Optional[str], None), ("request_url", Optional[str], None)])
    metrics = struct("Metrics", [(f, Optional[_NonNeg], None) for f in ("lcp", "inp", "cls", "fcp", "ttfb")])
    return struct("FastEvent", [
        ("session_id", _Id), ("timestamp", _SafeInt), ("type", _EventType), ("event_id", Optional[_Id], None),
        ("url", Optional[str], None), ("value", Optional[str], None), ("name", Optional[str], None),
        ("user", ctx, None), ("org", ctx, None), ("device", ctx, None), ("location", ctx, None),
        ("target", ctx, None), ("error", Optional[error], None), ("metrics", Optional[metrics], None),
        ("properties", Optional[dict], None)])


_FastEvent = _contract_mirror(forbid_unknown=True)
_LenientEvent = _contract_mirror(forbid_unknown=False)
_fast_decoder = msgspec.json.Decoder(_FastEvent)
_encode_json = msgspec.json.Encoder().encode
# Field counts of the mirror's structs, for `_struct_keys` (positions as in `_contract_mirror`).
_TOP_FIELDS = len(_FastEvent.__struct_fields__)
_CTX_SIZE = len(_CTX_FIELDS)
_SUB_STRUCTS = _fast_decoder.decode(b'{"session_id":"s","timestamp":0,"type":"click","error":{},"metrics":{}}')
_ERROR_SIZE = len(_SUB_STRUCTS.error.__struct_fields__)
_METRICS_SIZE = len(_SUB_STRUCTS.metrics.__struct_fields__)


class Accepted(msgspec.Struct, gc=False):
    """A valid, normalized, masked event, ready for the sessionizer (a struct: made once per
    event, in C, without garbage-collector tracking)."""

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


def _satisfies_contract_rules(ev: Any) -> bool:
    """The model's cross-field rules, which the struct's types cannot say."""
    return not ((ev.type == "navigate" and not ev.url) or (ev.type == "custom" and not ev.name))


def _fast_valid(obj: dict) -> bool:
    """True when the model would surely accept `obj` unchanged (no coercion needed)."""
    try:
        ev = msgspec.convert(obj, _LenientEvent)
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

    def __init__(self, masker: Optional[Masker] = None, future_tolerance_ms: Optional[int] = None,
                 max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.masker = masker or Masker()
        self.future_tolerance_ms = (future_tolerance_ms if future_tolerance_ms is not None
                                    else setting_default("future_tolerance_ms"))
        self.max_event_bytes = max_event_bytes

    def decode(self, raw: Union[bytes, str], now_ms: int) -> Union[Accepted, Rejected]:
        """Never raises: any failure of one message is that message's rejection. The common
        case (a valid event of the contract's shape) is decided here, in one function: this
        runs once per event."""
        try:
            if isinstance(raw, str):
                try:
                    raw = raw.encode()
                except UnicodeEncodeError as exc:  # lone surrogates
                    return Rejected("invalid-json", f"not JSON: text is not valid UTF-8 ({exc.reason})")
            try:
                ev = _fast_decoder.decode(raw)
            except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError):
                return self._decode_slow(raw, now_ms)  # the slow path says precisely what is wrong
            kind, props = ev.type, ev.properties
            if ((props is not None and not _properties_safe(props))
                    or (kind == "navigate" and not ev.url) or (kind == "custom" and not ev.name)):
                return self._decode_slow(raw, now_ms)
            try:
                accepted = self._fast(raw, ev, now_ms)
                if accepted is not None:
                    return accepted
                return self._normalize(orjson.loads(raw), now_ms, raw, changed=False)  # valid already
            except (UnicodeDecodeError, orjson.JSONDecodeError):
                return self._decode_slow(raw, now_ms)  # not valid UTF-8 after all: the slow path says so
        except Exception as exc:  # noqa: BLE001 - isolation: one message must not stop a batch
            return _unprocessable(exc)

    def _decode_slow(self, raw: bytes, now_ms: int) -> Union[Accepted, Rejected]:
        """Anything the fast path does not take: decoded as a dict, checked by the model."""
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

    def _fast(self, raw: bytes, ev: Any, now_ms: int) -> Optional[Accepted]:
        """A valid event decoded by msgspec, accepted without the dict round trip when it has an
        event id, is not from the future, needs no masking or only strings swapped, and its bytes
        hide no value behind a duplicate key."""
        event_id, ts = ev.event_id, ev.timestamp
        if event_id is None or ts > now_ms + self.future_tolerance_ms:
            return None
        swaps = self.masker.masking_swaps(ev)
        if swaps is None or keyed_values(raw) != _present_keys(ev):  # a duplicate key may hide a value
            return None
        if swaps:
            data = self._masked_in_place(raw, swaps)
            if data is None:
                return None
        else:
            data = raw  # the hot path: the original bytes kept
        if len(data) > self.max_event_bytes:
            return None
        return Accepted(ev.session_id, event_id, ts, ev.type, data.decode())

    def _masked_in_place(self, raw: bytes, swaps: list[tuple[str, str, str]]) -> Optional[bytes]:
        """The event's bytes with each string `mask_event` changes swapped for its masked value:
        the same decoded event as masking the decoded dict, without decoding and encoding it
        again. None when that cannot be done safely on the bytes. Safe means: no escape in the
        message (every string is written as its plain token, every quote is a string's edge),
        the changed field's key exactly once (so it is that field's key, and no duplicate key
        hides a second value) and directly followed by `:` and the value's token."""
        if len(swaps) == 1:  # the usual case: one email, one typed value (streams/scan.py)
            return replace_once(raw, *_swap_tokens(swaps[0]))
        if b"\\" in raw:
            return None
        find, spans = raw.find, []
        for swap in swaps:
            key_token, value_token, replacement = _swap_tokens(swap)
            at = find(key_token) + len(key_token)
            if (at < len(key_token) or not raw.startswith(value_token, at)
                    or find(key_token, at) >= 0):
                return None
            spans.append((at + 1, at + len(value_token), replacement))
        spans.sort()
        parts, pos = [], 0
        for start, end, replacement in spans:
            parts += (raw[pos:start], replacement)
            pos = end
        parts.append(raw[pos:])
        return b"".join(parts)

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
        if self.masker.event_needs_masking(
                obj.get("value"), obj.get("url"), _sub(obj, "target", "text"), _sub(obj, "error", "message"),
                _sub(obj, "error", "request_url"), obj.get("properties"), _sub(obj, "user", "email"),
                _sub(obj, "org", "name")):
            # Masking may rewrite text: keep the re-encoded form (never the raw one) then.
            self.masker.mask_event(obj)
            changed = True
        if changed or raw is None or not _no_hidden_values(raw, _dict_keys(obj)):
            data = orjson.dumps(obj)  # a duplicate key's earlier value is not in `obj`: dropped
        else:
            data = raw.encode() if isinstance(raw, str) else raw  # bytes since _decode; str from callers
        if len(data) > self.max_event_bytes:
            data = orjson.dumps(cap_event(obj, self.max_event_bytes, len(data)))
        return Accepted(obj["session_id"], obj["event_id"], ts, obj["type"], data.decode())


def _no_hidden_values(raw: Union[bytes, str], present_keys: int) -> bool:
    """True when no key of `raw` hides a non-null value behind a later duplicate, given the
    number of keys with a non-null value in its decoded form (`_struct_keys`/`_dict_keys`).
    Proof by counting, whatever the spelling (escaped keys, whitespace, nesting): without JSON
    whitespace every key ends in `":` and a non-null value does not start with `null`, so the
    count of `":` not followed by `null` is at least the number of non-null key occurrences
    (strings starting with `:` only add to it). It equals the decoded count only if every such
    occurrence is the one kept, i.e. no earlier duplicate holds a value. A false "no" (such a
    string, or an earlier null) costs a re-encoding, never a leak."""
    return keyed_values(raw.encode() if type(raw) is str else raw) == present_keys


def _struct_keys(ev: Any) -> int:
    """Keys with a non-null value in a decoded `_FastEvent` (flat properties: the fast path
    sends nested ones to the dict path)."""
    fields = astuple(ev)
    count = _TOP_FIELDS - fields.count(None)
    user, org, device, location, target, error, metrics, props = fields[7:]
    # unrolled: this runs for every event
    if user is not None:
        count += _CTX_SIZE - astuple(user).count(None)
    if org is not None:
        count += _CTX_SIZE - astuple(org).count(None)
    if device is not None:
        count += _CTX_SIZE - astuple(device).count(None)
    if location is not None:
        count += _CTX_SIZE - astuple(location).count(None)
    if target is not None:
        count += _CTX_SIZE - astuple(target).count(None)
    if error is not None:
        count += _ERROR_SIZE - astuple(error).count(None)
    if metrics is not None:
        count += _METRICS_SIZE - astuple(metrics).count(None)
    if props:
        count += _dict_keys(props)
    return count


# Keys with a non-null value in a decoded `_FastEvent`: compiled when streams/_scan.c was built
# (the same count, tests/test_scan.py), else `_struct_keys`.
_present_keys = present_keys if present_keys is not None else _struct_keys


def _dict_keys(obj: dict) -> int:
    """Keys with a non-null value in decoded JSON, at any depth (iterative walk)."""
    count, stack = 0, [obj]
    while stack:
        value = stack.pop()
        children = value.values() if type(value) is dict else value
        for child in children:
            if child is not None:
                kind = type(child)
                if kind is dict or kind is list:
                    stack.append(child)
        if type(value) is dict:
            count += len(value) - [*children].count(None)
    return count


def _swap_tokens(swap: tuple[str, str, str]) -> tuple[bytes, bytes, bytes]:
    """A swap's (key, value, masked value) as the JSON tokens `_masked_in_place` looks for and
    writes: the key's, `:` and the value's, the masked value's (remembered: emails, their
    hashes, typed values and URLs repeat)."""
    tokens = _TOKENS.get(swap)
    if tokens is None:
        if len(_TOKENS) >= TOKEN_MEMO_ENTRIES:
            _TOKENS.clear()
        key, value, masked = swap
        # msgspec, not orjson: orjson's bytes keep a 4 KiB buffer each, which made this bounded
        # memo hundreds of MB (bench/embedded_bench.py scale run: RSS grew with total events).
        tokens = _TOKENS[swap] = (_KEY_TOKENS.get(key) or _encode_json(key), b":" + _encode_json(value),
                                  _encode_json(masked))
    return tokens


def _sub(obj: dict, name: str, field: str) -> Any:
    sub = obj.get(name)
    return sub.get(field) if type(sub) is dict else None


def _unprocessable(exc: BaseException) -> Rejected:
    # The exception's type only: its message may quote the event's contents.
    return Rejected("invalid-event", f"the event could not be processed ({type(exc).__name__})")


def _properties_safe(props: dict) -> bool:
    """No nesting past the contract's limit and no integer beyond 64 bits (iterative walk)."""
    low, high = _JSON_INT_RANGE
    stack = [(props, 2)]  # properties sit one level inside the event
    while stack:
        value, depth = stack.pop()
        children = value.values() if type(value) is dict else value
        if depth > EVENT_MAX_DEPTH:
            return False
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, depth + 1))
            elif kind is int and not low <= child < high:
                return False
    return True


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
