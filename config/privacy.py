"""The privacy policy: one object, built from Settings, that every masking call uses.

Applied at ingest (before anything is buffered, persisted or published) and again to any text
that leaves the pipeline (prompts, summaries, group summaries, dead letters, logs). What it does
to each field is listed in README "Privacy".

- free text: emails (also URL-, HTML- or JSON-encoded), card numbers (Luhn-checked), SSNs and
  phone numbers are masked;
- URLs: query values masked unless the parameter name is allowed (`utm_*`, `q`, `page`, ...);
  path segments that look like secrets (long tokens, JWTs) masked; then the free-text rules;
- properties: values masked unless their key is allowed (allowed values get the free-text rules)
  or they are the rrweb translator's measurements (numbers and flags under its keys);
- typed input values: masked unless a setting or the field's selector allows them;
- identity: a user's email (and an org's name) is replaced by a keyed hash (HMAC-SHA256 with a
  secret setting) that a lookup can recompute, unless a setting keeps it.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Iterable, Optional
from urllib.parse import unquote

MASK = "[masked]"
EMAIL_MASK = "[email]"
CARD_MASK = "[card]"
KEYED_HASH_PREFIX = "hmac:"
KEYED_HASH_HEX_CHARS = 24  # 96 bits: no collisions among any realistic user base

# The "@" of an email as text may carry it: plain, URL-encoded (once or twice), HTML or JSON
# escaped, or spelled out.
_AT = r"(?:@|%40|%2540|&#64;|&#x40;|&commat;|\\u0040|\s?[\[(]at[\])]\s?)"
_EMAIL = re.compile(rf"[A-Za-z0-9._%+-]+{_AT}[A-Za-z0-9.-]+(?:\.|%2E|\s?[\[(]dot[\])]\s?)[A-Za-z]{{2,}}", re.I)
_AT_HINT = re.compile(r"@|%40|%2540|&#|&commat;|\\u0040|\(at\)|\[at\]", re.I)
# 13-19 digits, optionally grouped by spaces or dashes: card-number shaped.
_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
_SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
_PHONE = re.compile(r"(?<!\w)\+?\d[\d ().-]{8,}\d(?!\w)")
# A path segment that is a secret, not a page: a JWT, or a long token mixing letters and digits.
_JWT = re.compile(r"^eyJ[\w-]+\.[\w-]+\.[\w-]*$")
_TOKEN = re.compile(r"^(?=[\w\-.~=]*\d)(?=[\w\-.~=]*[A-Za-z])[\w\-.~=]{20,}$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_BASE64_TOKEN = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_MAX_DECODE_ROUNDS = 3
_DIGIT = re.compile(r"\d")
# Every card number, SSN and phone number above holds such a run (a digit, 8+ of digits, spaces,
# dashes, dots or brackets, a digit): a text without one needs none of those three scans.
_DIGIT_RUN = re.compile(r"\d[\d ().-]{8,}\d")
_MAY_NEED_MASKING = re.compile(f"{_AT_HINT.pattern}|{_DIGIT_RUN.pattern}", re.I)  # either, in one scan
# Masked texts and URLs are remembered: a site's pages and labels repeat across sessions. Bounded,
# and cleared whole when full (cheaper than LRU bookkeeping on this hot path).
MEMO_ENTRIES = 50_000

DEFAULT_ALLOWED_QUERY_PARAMS = ("utm_*", "q", "query", "search", "page", "p", "sort", "order",
                                "lang", "locale", "ref", "category", "tab", "view", "step",
                                "variant", "size", "color", "limit", "offset", "gclid", "fbclid")
DEFAULT_ALLOWED_PROPERTY_KEYS = ("y", "x", "count", "reason", "reversals", "step", "page",
                                 "product_id", "sku", "name", "product_name", "title", "category",
                                 "price", "quantity", "currency", "revenue", "items", "order_id",
                                 "plan", "variant", "query", "search", "term", "q", "keyword")
# What the rrweb translator (streams/rrweb) measures about how the page was used: node ids, counts,
# durations, coordinates, sizes and flags. Kept whatever the allowed keys, but only as a number, a
# bool or null: no user content fits there, while a string under the same key stays masked.
# (A toggle's `checked` is what the user chose, like a typed value: it is not one of them.)
MEASURED_PROPERTY_KEYS = frozenset({
    "node_id", "scroll_count", "duration_ms", "from_x", "from_y", "x", "y", "changes", "keystrokes",
    "reversals", "window_ms", "width", "height", "double_click", "user_triggered", "masked_by_recorder",
    "after_ms", "none_within_ms", "duration", "costTime"})
# The translator's own words: a string under these keys is kept only when it is one of them.
MEASURED_PROPERTY_WORDS: dict[str, frozenset[str]] = {
    "pointer": frozenset({"mouse", "touch"}),
    "kind": frozenset({"mutation", "navigation", "scroll", "input", "network"}),  # what answered a click
    "level": frozenset({"error", "assert"}),  # a console error's
    "source": frozenset({"$pageview", "$url_changed"}),  # a single-page app's navigation
    # a failed request's kind, as Resource Timing names it (the recorders copy it)
    "initiatorType": frozenset({"audio", "beacon", "body", "css", "early-hints", "embed", "fetch", "frame",
                                "iframe", "icon", "image", "img", "input", "link", "navigation", "object",
                                "ping", "script", "track", "video", "xmlhttprequest", "other"}),
}
# The object it nests (a click's `response`): its keys follow the same rules.
MEASURED_PROPERTY_OBJECTS = frozenset({"response"})
_MEASURES = (int, float, bool, type(None))


def measured_property(key: Any, value: Any) -> bool:
    """True when `value` under `key` is one of the translator's measurements (kept unmasked)."""
    if isinstance(value, _MEASURES):
        return key in MEASURED_PROPERTY_KEYS
    if type(value) is str:
        words = MEASURED_PROPERTY_WORDS.get(key)
        return words is not None and value in words
    return type(value) is dict and key in MEASURED_PROPERTY_OBJECTS


def _luhn_ok(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = ord(ch) - 48
        if i % 2 == parity:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return CARD_MASK if 13 <= len(digits) <= 19 and _luhn_ok(digits) else match.group(0)


def _base64_email(token: str) -> bool:
    """True when a token decodes (base64 or base64url) to text holding an email."""
    padded = token + "=" * (-len(token) % 4)
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            text = decode(padded).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            continue
        if "@" in text and _EMAIL.search(text):
            return True
    return False


def mask_email(email: str) -> str:
    """j***@example.com: keeps the domain for support workflows, hides the person."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if domain else EMAIL_MASK


def hash_id(value: Optional[str], salt: str = "replaylens") -> Optional[str]:
    """A stable pseudonym for a user id or email (group summaries refer to users by it)."""
    if value is None:
        return None
    return "u_" + hashlib.sha256(f"{salt}:{value}".encode()).hexdigest()[:16]


def _compile_names(patterns: Iterable[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    """Exact names and glob patterns (`utm_*`), lower-cased."""
    names = [p.lower() for p in patterns]
    return (frozenset(n for n in names if "*" not in n and "?" not in n),
            tuple(n for n in names if "*" in n or "?" in n))


@dataclass(frozen=True)
class PrivacyPolicy:
    """What may pass unmasked. Build it once with `from_settings`; pass it to every masker."""

    unmask_inputs: bool = False
    unmask_emails: bool = False
    allowed_fields: frozenset[str] = frozenset()
    allowed_query_params: tuple[str, ...] = DEFAULT_ALLOWED_QUERY_PARAMS
    allowed_property_keys: tuple[str, ...] = DEFAULT_ALLOWED_PROPERTY_KEYS
    hash_salt: str = "replaylens"
    identity_secret: str = ""
    keep_identity: bool = False
    dead_letter_keep_raw: bool = False
    _params: tuple[frozenset[str], tuple[str, ...]] = field(init=False, repr=False, compare=False)
    _props: tuple[frozenset[str], tuple[str, ...]] = field(init=False, repr=False, compare=False)
    _texts: dict[str, str] = field(init=False, repr=False, compare=False)
    _urls: dict[str, str] = field(init=False, repr=False, compare=False)
    _property_keys: dict[str, bool] = field(init=False, repr=False, compare=False)
    _memos: dict[str, dict[Any, Any]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_texts", {})
        object.__setattr__(self, "_urls", {})
        object.__setattr__(self, "_property_keys", {})
        object.__setattr__(self, "_memos", {})
        object.__setattr__(self, "allowed_fields", frozenset(self.allowed_fields))
        object.__setattr__(self, "_params", _compile_names(self.allowed_query_params))
        object.__setattr__(self, "_props", _compile_names(self.allowed_property_keys))

    @classmethod
    def from_settings(cls, settings: Any) -> "PrivacyPolicy":
        return cls(unmask_inputs=settings.privacy_unmask_inputs,
                   unmask_emails=settings.privacy_unmask_emails,
                   allowed_fields=frozenset(settings.privacy_allowed_fields),
                   allowed_query_params=tuple(settings.privacy_allowed_query_params),
                   allowed_property_keys=tuple(settings.privacy_allowed_property_keys),
                   hash_salt=settings.privacy_hash_salt,
                   identity_secret=settings.privacy_identity_secret,
                   keep_identity=settings.privacy_keep_identity,
                   dead_letter_keep_raw=settings.privacy_dead_letter_keep_raw)

    # ------------------------------------------------------------------ free text
    def text(self, text: Optional[str]) -> Optional[str]:
        """Mask emails (unless allowed), card numbers, SSNs and phone numbers in free text."""
        if not text:
            return text
        done = self._texts.get(text)
        if done is not None:
            return done
        masked = self._masked_text(text)
        _remember(self._texts, text, masked)
        return masked

    def text_once(self, text: str) -> str:
        """`text()` for a text made once (a comparison's, with its own figures): one scan when
        nothing is to be masked, and not remembered (it would only push out texts that repeat)."""
        if not text or _MAY_NEED_MASKING.search(text) is None:
            return text
        return self._masked_text(text)

    def _masked_text(self, text: str) -> str:
        masked = text
        if not self.unmask_emails and _AT_HINT.search(masked):
            masked = _EMAIL.sub(EMAIL_MASK, masked)
        if _DIGIT_RUN.search(masked):
            masked = _CARD.sub(_mask_card, masked)
            masked = _SSN.sub(MASK, masked)
            masked = _PHONE.sub(MASK, masked)
        return masked

    def memo(self, name: str) -> dict[Any, Any]:
        """A cache owned by this policy, for labels made under it (never shared with another
        policy's, so what one lets through another never serves). Bounded by the caller."""
        memo = self._memos.get(name)
        if memo is None:
            memo = self._memos[name] = {}
        if len(memo) >= MEMO_ENTRIES:
            memo.clear()
        return memo

    # ------------------------------------------------------------------ URLs
    def query_param_allowed(self, name: str) -> bool:
        exact, globs = self._params
        name = name.lower()
        return name in exact or any(fnmatchcase(name, g) for g in globs)

    def url(self, url: Optional[str]) -> Optional[str]:
        """Query values masked unless their name is allowed, secret-like path segments masked,
        encoded emails found; the fragment is dropped (it is client-side state)."""
        if not url:
            return url
        done = self._urls.get(url)
        if done is not None:
            return done
        head, _, _fragment = url.partition("#")
        base, has_query, query = head.partition("?")
        base = self._path(base)
        if has_query:
            base += "?" + "&".join(self._param(p) for p in query.split("&") if p)
        _remember(self._urls, url, base)
        return base

    def _path(self, base: str) -> str:
        scheme, sep, rest = base.partition("//")
        if not sep:
            scheme, rest = "", base
        host, slash, path = rest.partition("/") if sep else ("", "/" if rest.startswith("/") else "", rest.lstrip("/"))
        segments = [self._segment(s) for s in path.split("/")]
        return f"{scheme}{sep}{self.text(host)}{slash}{'/'.join(segments)}"

    def _segment(self, segment: str) -> str:
        """One path segment: ids (numbers, UUIDs) and words stay; secrets and personal data go."""
        if not segment or _UUID.match(segment):
            return segment
        if len(segment) >= 16:
            if _JWT.match(segment) or _TOKEN.match(segment):
                return MASK
            if not self.unmask_emails and _BASE64_TOKEN.fullmatch(segment) and _base64_email(segment):
                return EMAIL_MASK
        if "%" in segment or "@" in segment or _DIGIT.search(segment):
            decoded = _decoded(segment)
            masked = self.text(decoded)
            return segment if masked == decoded else masked
        return segment

    def _param(self, pair: str) -> str:
        name, eq, value = pair.partition("=")
        if not eq or not value:
            return pair
        decoded = _decoded(value)
        if self.query_param_allowed(unquote(name)):
            masked = self.text(decoded)
            return pair if masked == decoded else f"{name}={masked}"
        return f"{name}={MASK}"

    # ------------------------------------------------------------------ properties
    def property_allowed(self, key: str) -> bool:
        allowed = self._property_keys.get(key)  # remembered: a site's property keys repeat
        if allowed is None:
            exact, globs = self._props
            lower = key.lower()
            allowed = lower in exact or any(fnmatchcase(lower, g) for g in globs)
            _remember(self._property_keys, key, allowed)
        return allowed

    def properties(self, props: Any) -> Any:
        """Values masked unless their key is allowed or they are the rrweb translator's
        measurements (`measured_property`); allowed strings get the text rules."""
        if not isinstance(props, dict):
            return props
        out = {}
        for key, value in props.items():
            if not self.property_allowed(str(key)):
                if not measured_property(key, value):
                    out[key] = MASK
                elif type(value) is dict:
                    out[key] = self.properties(value)
                else:
                    out[key] = value
            elif isinstance(value, str):
                out[key] = self.text(value)
            elif isinstance(value, dict):
                out[key] = self.properties(value)
            elif isinstance(value, list):
                out[key] = [self.text(v) if isinstance(v, str) else
                            self.properties(v) if isinstance(v, dict) else v for v in value]
            else:
                out[key] = value
        return out

    def properties_need_masking(self, props: Any) -> bool:
        if not props:
            return False
        if not isinstance(props, dict):
            return True
        return any(not self._kept_as_is(k, v) for k, v in props.items())

    def _kept_as_is(self, key: Any, value: Any) -> bool:
        """`properties` keeps this value unchanged without looking into it: an allowed key's
        number, bool or null, or a measurement that is no object."""
        if type(value) is dict:
            return False
        if isinstance(value, _MEASURES) and self.property_allowed(str(key)):
            return True
        return measured_property(key, value)

    # ------------------------------------------------------------------ identity
    def identity_key(self, value: Optional[str]) -> Optional[str]:
        """What outputs carry for an email or org name: its keyed hash, unless kept by setting."""
        if value is None or self.keep_identity:
            return value
        return self.lookup_key(value)

    def lookup_key(self, value: Optional[str]) -> Optional[str]:
        """The keyed hash (HMAC-SHA256 of the trimmed, lower-cased value) that finds a user's
        sessions by email without storing it; always a hash, whatever `keep_identity` says."""
        if value is None or value.startswith(KEYED_HASH_PREFIX):
            return value
        keys = self.memo("identity")  # every event of a session repeats its user
        key = keys.get(value)
        if key is None:
            digest = hmac.new(self.identity_secret.encode(), value.strip().lower().encode(),
                              hashlib.sha256).hexdigest()
            key = keys[value] = KEYED_HASH_PREFIX + digest[:KEYED_HASH_HEX_CHARS]
        return key

    def context_for_output(self, name: str, value: Any) -> Any:
        """A session-context element (user, org, device, location) as a prompt or summary shows it."""
        if not isinstance(value, dict):
            return value
        if name == "user" and value.get("email"):
            return {**value, "email": self.display_email(value["email"])}
        if name == "org" and value.get("name"):
            return {**value, "name": self.identity_key(value["name"])}
        return value

    def display_email(self, email: Optional[str]) -> Optional[str]:
        """How an email appears in a summary: as stored when emails may pass, else j***@domain."""
        if not email or self.unmask_emails or email.startswith(KEYED_HASH_PREFIX):
            return email
        return mask_email(email)

    # ------------------------------------------------------------------ events
    def input_allowed(self, event: dict[str, Any]) -> bool:
        if self.unmask_inputs:
            return True
        target = event.get("target") or {}
        return bool(self.allowed_fields) and target.get("selector") in self.allowed_fields

    def url_needs_masking(self, url: Optional[str]) -> bool:
        return bool(url) and self.url(url) != url  # url() is remembered: a lookup per repeat

    def mask_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """Mask one decoded event dict in place, field by field as README 'Privacy' lists."""
        value = event.get("value")
        if value is not None:
            event["value"] = self.text(value) if self.input_allowed(event) else MASK
        if event.get("url"):
            event["url"] = self.url(event["url"])
        target = event.get("target")
        if target and target.get("text"):
            target["text"] = self.text(target["text"])
        error = event.get("error")
        if error:
            if error.get("message"):
                error["message"] = self.text(error["message"])
            if error.get("request_url"):
                error["request_url"] = self.url(error["request_url"])
        if event.get("properties"):
            event["properties"] = self.properties(event["properties"])
        user = event.get("user")
        if user and user.get("email"):
            user["email"] = self.identity_key(user["email"])
        org = event.get("org")
        if org and org.get("name"):
            org["name"] = self.identity_key(org["name"])
        return event

    def event_needs_masking(self, value: Optional[str], url: Optional[str], target_text: Optional[str],
                            error_message: Optional[str], request_url: Optional[str], properties: Any,
                            email: Optional[str], org_name: Optional[str]) -> bool:
        """Cheap pre-check for the ingest fast path: False only when `mask_event` changes nothing."""
        # Cheapest and most common first: a typed value, an identity to hash.
        return (value is not None
                or (not self.keep_identity and bool(email) and not email.startswith(KEYED_HASH_PREFIX))
                or (not self.keep_identity and bool(org_name) and not org_name.startswith(KEYED_HASH_PREFIX))
                or self.url_needs_masking(url) or self.properties_need_masking(properties)
                or self._text_changes(target_text) or self._text_changes(error_message)
                or self.url_needs_masking(request_url))

    def _text_changes(self, text: Optional[str]) -> bool:
        return bool(text) and _may_hold_pii(text) and self.text(text) != text

    def masking_swaps(self, ev: Any) -> Optional[list[tuple[str, str, str]]]:
        """What `mask_event` does to a decoded event struct (attributes named as the event's
        fields, sub-objects as structs or None), for the ingest fast path: a list of (key of the
        field, value, masked value) when all it does is replace string values by others (empty
        when `event_needs_masking` is false: nothing to do); None when the caller must mask the
        decoded dict (a non-string property value masked, nested properties, or a field the
        pre-check always re-encodes that keeps its value)."""
        out: list[tuple[str, str, str]] = []
        recheck = False  # `event_needs_masking` is true although nothing may change
        target, error, value = ev.target, ev.error, ev.value
        # The memos are read directly (a hit is what text()/url() would return): this runs once per event.
        texts, urls = self._texts, self._urls
        if value is not None:
            recheck = True
            selector = target.selector if target is not None else None
            allowed = self.unmask_inputs or bool(self.allowed_fields) and selector in self.allowed_fields
            masked = self.text(value) if allowed else MASK
            if masked != value:
                out.append(("value", value, masked))
        url = ev.url
        if url:
            masked = urls.get(url) or self.url(url)
            if masked != url:
                out.append(("url", url, masked))
        if target is not None:
            text = target.text
            if text:
                masked = texts.get(text) or self.text(text)
                if masked != text:
                    out.append(("text", text, masked))
        if error is not None:
            if error.message:
                _changed(out, "message", error.message, self.text(error.message))
            if error.request_url:
                _changed(out, "request_url", error.request_url, self.url(error.request_url))
        props = ev.properties
        if props:
            for key, value in props.items():
                kind = type(value)
                if self._kept_as_is(key, value):
                    continue
                if kind is str:
                    recheck = True
                    _changed(out, key, value, self.text(value) if self.property_allowed(key) else MASK)
                else:
                    return None
        user, org = ev.user, ev.org
        if user is not None:
            email = user.email
            if email:
                masked = self._identity_hit(email) or self.identity_key(email)
                if masked != email:
                    out.append(("email", email, masked))
        if org is not None and org.name:
            _changed(out, "name", org.name, self.identity_key(org.name))
        return None if recheck and not out else out

    def _identity_hit(self, value: str) -> Optional[str]:
        """`identity_key(value)` when it is already remembered, else None."""
        if self.keep_identity:
            return value
        keys = self._memos.get("identity")
        return keys.get(value) if keys is not None else None

    # ------------------------------------------------------------------ dead letters
    def dead_letter_original(self, raw: bytes) -> dict[str, str]:
        """What a dead letter keeps of a rejected message: the masked text (a JSON message is
        masked field by field, like an event), and the raw bytes only when
        `privacy_dead_letter_keep_raw` (sensitive) is set."""
        text = raw.decode("utf-8", "replace")
        try:
            decoded = json.loads(text)
            masked = (json.dumps(self._mask_json(decoded, None), ensure_ascii=False, separators=(",", ":"))
                      if isinstance(decoded, (dict, list)) else None)
        except (ValueError, RecursionError):  # not JSON, or nested past what we walk: as text
            masked = None
        if masked is None:
            masked = self.text(_mask_urls_in_text(self, text)) or ""
        # JSON escapes can decode to lone surrogates, which no UTF-8 output can carry.
        masked = masked.encode("utf-8", "replace").decode("utf-8")
        kept = {"original": masked}
        if self.dead_letter_keep_raw:
            kept["original_base64"] = base64.b64encode(raw).decode("ascii")
        return kept

    def _mask_json(self, value: Any, key: Optional[str]) -> Any:
        """Any decoded JSON (maybe not a valid event) masked by the field names events use."""
        if isinstance(value, dict):
            if key == "properties":
                return self.properties(value)
            masked = {k: self._mask_json(v, str(k)) for k, v in value.items()}
            if key == "org" and isinstance(value.get("name"), str):
                masked["name"] = self.identity_key(value["name"])
            return masked
        if isinstance(value, list):
            return [self._mask_json(v, key) for v in value]
        if not isinstance(value, str):
            return MASK if key == "value" and value is not None else value
        if key == "value":
            return MASK
        if key in ("url", "request_url", "href", "referrer"):
            return self.url(value)
        if key == "email":
            return self.identity_key(value)
        return self.text(_mask_urls_in_text(self, value))


_URL_IN_TEXT = re.compile(r"(?:https?://|/)[^\s\"'<>]*\?[^\s\"'<>]*")


def _mask_urls_in_text(policy: PrivacyPolicy, text: str) -> str:
    return _URL_IN_TEXT.sub(lambda m: policy.url(m.group(0)) or "", text)


def _decoded(value: str) -> str:
    """Undo URL encoding (also double) so encoded emails and cards are seen."""
    for _ in range(_MAX_DECODE_ROUNDS):
        decoded = unquote(value.replace("+", " "))
        if decoded == value:
            break
        value = decoded
    return value


def _changed(out: list[tuple[str, str, str]], key: str, value: str, masked: Any) -> None:
    if masked != value:
        out.append((key, value, masked))


def _may_hold_pii(text: Optional[str]) -> bool:
    return bool(text) and (_AT_HINT.search(text) is not None or _DIGIT.search(text) is not None)


def _remember(memo: dict[str, Any], key: str, value: Any) -> None:
    if len(memo) >= MEMO_ENTRIES:
        memo.clear()
    memo[key] = value


DEFAULT_POLICY = PrivacyPolicy()
# The ingest decoder's historical name: one object, one set of rules.
Masker = PrivacyPolicy


def mask_text(text: Optional[str], *, policy: PrivacyPolicy = DEFAULT_POLICY) -> Optional[str]:
    """Free-text masking with an explicit policy (the default policy masks everything)."""
    return policy.text(text)
