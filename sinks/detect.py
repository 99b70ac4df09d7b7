"""Deterministic reading of a SessionView: potential issues, outcome and journey (pure).

Everything here works on what the profile lets through (the SessionView), never on the
raw session. Free text that reaches a description (button labels, error messages, URLs,
custom-event properties) is masked with ``config/privacy.py``.

Thresholds are conservative on purpose: a clean browse must produce no issues.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional
from urllib.parse import parse_qs, urlsplit

from replaylens.schemas.events import ERROR_TYPES, FRUSTRATION_TYPES
from replaylens.schemas.summaries import JourneyStep, Outcome, PotentialIssue
from replaylens.sinks.links import LinkSettings
from replaylens.sinks.profile_view import SessionView
from replaylens.config.privacy import MASK, mask_text

Link = Callable[[int], str]
Event = dict[str, Any]



@dataclass(frozen=True)
class VitalsThresholds:
    """Values above these make a page slow. LCP and INP in ms, CLS unitless."""

    lcp_ms: float = 2500
    inp_ms: float = 200
    cls: float = 0.1


# Google's "good" Core Web Vitals thresholds (https://web.dev/articles/vitals): the default.
GOOD_VITALS = VitalsThresholds()
# Google's "poor" thresholds: only flag pages that are clearly slow.
POOR_VITALS = VitalsThresholds(lcp_ms=4000, inp_ms=500, cls=0.25)

DEFAULT_CONVERTED_EVENTS = (
    "Order Completed", "Purchase", "Checkout Completed", "Purchase Completed",
    "Order Placed", "Transaction Completed",
)
CART_EVENTS = ("Added to Cart", "Add to Cart", "Product Added", "Cart Viewed")
CHECKOUT_EVENTS = ("Checkout Started", "Begin Checkout", "Initiate Checkout",
                   "Payment Info Entered", "Checkout Step Completed")
PRODUCT_VIEW_EVENTS = ("Product Viewed", "View Item", "Viewed Product")
SEARCH_EVENTS = ("Products Searched", "Search", "Searched", "Search Submitted")

_CART_PATH = re.compile(r"(?<![a-z])(cart|basket|bag)(?![a-z])", re.I)
_CHECKOUT_PATH = re.compile(r"(?<![a-z])checkout(?![a-z])", re.I)
_CONFIRMATION_PATH = re.compile(
    r"(order[-_/]?(confirmation|complete|completed|success|received)|thank[-_]?you"
    r"|checkout/(success|complete|confirmation))", re.I)
_PRODUCT_PATH = re.compile(r"/(products?|p|items?|dp)/([^/?#]+)", re.I)
_SEARCH_PATH = re.compile(r"(?<![a-z])search(?![a-z])", re.I)
_SEARCH_FIELD = re.compile(r"search|query|\bq\b|name=.?q.?\]|#q\b", re.I)
_SEARCH_PARAMS = ("q", "query", "search", "keyword", "keywords", "term")
_SUBMIT = re.compile(
    r"submit|sign ?up|sign ?in|log ?in|register|continue|next|save|send|\bpay\b|pay now"
    r"|place order|confirm|checkout|check out|buy|subscribe|apply|update", re.I)

# Form trouble: returning to the same field this many separate times.
REPEATED_EDITS = 4
EDIT_RUN_GAP_MS = 2_000          # pauses longer than this start a new edit of a field
INPUT_ERROR_WINDOW_MS = 3_000    # an error this soon after typing is blamed on the input
SUBMIT_ERROR_WINDOW_MS = 5_000   # a failed request this soon after a submit click
SIGNAL_DEDUP_WINDOW_MS = 2_000   # a derived signal this close to a source one is the same


def _norm(name: Optional[str]) -> str:
    return re.sub(r"[^a-z0-9]", "", (name or "").lower())


def _names(names: Iterable[str]) -> frozenset[str]:
    return frozenset(_norm(n) for n in names)


_CART_NAMES = _names(CART_EVENTS)
_CHECKOUT_NAMES = _names(CHECKOUT_EVENTS)
_PRODUCT_NAMES = _names(PRODUCT_VIEW_EVENTS)
_SEARCH_NAMES = _names(SEARCH_EVENTS)


# --------------------------------------------------------------------------- text helpers

def page_label(url: Optional[str]) -> str:
    """The path (and query) of a URL, masked: what a reader needs to know the page."""
    if not url:
        return "an unknown page"
    parts = urlsplit(url)
    label = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if not parts.scheme and not parts.netloc:
        label = url
    return mask_text(label) or "/"


def _clip(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quoted(text: str) -> str:
    return f"“{text}”"


def target_label(event: dict[str, Any]) -> str:
    """“Add to cart” from the target text, else the selector, else “an element”."""
    target = event.get("target") or {}
    text = target.get("text") or event.get("text")
    if text and text != MASK:
        return quoted(_clip(mask_text(text) or ""))
    selector = target.get("selector") or event.get("selector")
    if selector:
        return quoted(_clip(mask_text(selector) or "", 50))
    return "an element"


def format_ms(value: float) -> str:
    return f"{value / 1000:.1f} s" if value >= 1000 else f"{round(value)} ms"


def human_duration(ms: int) -> str:
    seconds = max(0, int(round(ms / 1000)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def clock(offset_ms: int) -> str:
    """m:ss (or h:mm:ss) into the session."""
    seconds = max(0, offset_ms // 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def _property(event: Event, *keys: str) -> Optional[str]:
    props = event.get("properties") or {}
    for key in keys:
        value = props.get(key)
        if value not in (None, "", MASK):
            return _clip(mask_text(str(value)) or "", 60)
    return None


def product_name(event: Event) -> Optional[str]:
    return _property(event, "name", "product_name", "product", "title", "sku", "product_id")


def search_term(event: Event) -> Optional[str]:
    """The search words of a search custom event or of a URL's query string, masked."""
    if event.get("type") == "custom":
        return _property(event, "query", "search", "term", "q", "keyword")
    url = event.get("url")
    if not url:
        return None
    params = parse_qs(urlsplit(url).query)
    for key in _SEARCH_PARAMS:
        if params.get(key) and params[key][0].strip():
            return _clip(mask_text(params[key][0].strip()) or "", 60)
    return None


# --------------------------------------------------------------------------- event kinds

def is_custom(event: Event, names: frozenset[str]) -> bool:
    return event.get("type") == "custom" and _norm(event.get("name")) in names


def is_search(event: Event) -> bool:
    etype = event.get("type")
    if etype == "custom":
        return _norm(event.get("name")) in _SEARCH_NAMES
    if etype == "input-change":
        target = event.get("target") or {}
        return bool(_SEARCH_FIELD.search(f"{target.get('selector') or ''} {target.get('text') or ''}"))
    if etype == "navigate" and event.get("url"):
        return bool(_SEARCH_PATH.search(urlsplit(event["url"]).path)) or search_term(event) is not None
    return False


def product_viewed(event: Event) -> Optional[str]:
    """A product label when the event is a product view, else None."""
    if is_custom(event, _PRODUCT_NAMES):
        return product_name(event) or "a product"
    if event.get("type") == "navigate" and event.get("url"):
        match = _PRODUCT_PATH.search(urlsplit(event["url"]).path)
        if match:
            slug = match.group(2)
            if re.fullmatch(r"[0-9a-f-]*\d[0-9a-f-]*", slug, re.I):  # an id, not a name
                return f"product {_clip(mask_text(slug) or '', 40)}"
            return _clip(mask_text(slug.replace("-", " ").replace("_", " ")) or "", 60)
    return None


def product_views(events: list[Event]) -> list[str]:
    """Products viewed, named by the product link clicked just before when the URL has only an id."""
    names: list[str] = []
    for index, event in enumerate(events):
        name = product_viewed(event)
        if not name:
            continue
        prior = events[index - 1] if index else None
        if (name.startswith("product ") and event.get("type") == "navigate" and prior
                and prior.get("type") == "click" and event["timestamp"] - prior["timestamp"] <= 3_000
                and (prior.get("target") or {}).get("text") not in (None, "", MASK)):
            name = _clip(mask_text(prior["target"]["text"]) or "", 60)
        if name not in names:
            names.append(name)
    return names


def _url_path(url: Optional[str]) -> str:
    return urlsplit(url).path if url else ""


def is_cart_url(url: Optional[str]) -> bool:
    return bool(_CART_PATH.search(_url_path(url)))


def is_checkout_url(url: Optional[str]) -> bool:
    return bool(_CHECKOUT_PATH.search(_url_path(url)))


def is_confirmation_url(url: Optional[str]) -> bool:
    return bool(_CONFIRMATION_PATH.search(_url_path(url)))


def is_submit_click(event: Event) -> bool:
    if event.get("type") not in ("click", "error-click", "dead-click", "rage-click"):
        return False
    target = event.get("target") or {}
    return bool(_SUBMIT.search(f"{target.get('selector') or ''} {target.get('text') or ''}"))


# --------------------------------------------------------------------------- outcome

@dataclass(frozen=True)
class Funnel:
    """Where the session got in a shop funnel, with the moment of each stage."""

    cart_event: Optional[Event] = None
    checkout_event: Optional[Event] = None
    converted_event: Optional[Event] = None


def _navigations(view: SessionView) -> list[Event]:
    """Navigate events, plus page visits as pseudo-events when navigations were filtered out."""
    navs = [e for e in view.events if e.get("type") == "navigate"]
    seen = {(e.get("url"), e["timestamp"]) for e in navs}
    for page in view.pages:
        if (page["url"], page["entered_at"]) not in seen:
            navs.append({"type": "navigate", "url": page["url"], "timestamp": page["entered_at"]})
    navs.sort(key=lambda e: e["timestamp"])
    return navs


def funnel(view: SessionView, converted_events: Iterable[str] = DEFAULT_CONVERTED_EVENTS) -> Funnel:
    converted_names = _names(converted_events)
    cart = checkout = converted = None
    for event in view.events:
        if event.get("type") != "custom":
            continue
        name = _norm(event.get("name"))
        if name in converted_names:
            converted = converted or event
        elif name in _CHECKOUT_NAMES:
            checkout = event
        elif name in _CART_NAMES:
            cart = event
    for nav in _navigations(view):
        url = nav.get("url")
        if is_confirmation_url(url):
            converted = converted or nav
        elif is_checkout_url(url):
            checkout = nav if checkout is None or nav["timestamp"] > checkout["timestamp"] else checkout
        elif is_cart_url(url):
            cart = nav if cart is None or nav["timestamp"] > cart["timestamp"] else cart
    return Funnel(cart, checkout, converted)


def _offset(view: SessionView, timestamp: int) -> str:
    return clock(timestamp - view.started_at)


def detect_outcome(view: SessionView,
                   converted_events: Iterable[str] = DEFAULT_CONVERTED_EVENTS) -> Outcome:
    stages = funnel(view, converted_events)
    if stages.converted_event is not None:
        event = stages.converted_event
        what = (quoted(mask_text(event["name"]) or "") if event.get("type") == "custom"
                else f"reached {page_label(event.get('url'))}")
        return Outcome(status="converted", evidence=f"{what} at {_offset(view, event['timestamp'])}")
    abandonment = _abandonment(view, stages, lambda ts: "")
    if abandonment is not None:
        # "Abandoned checkout: reached ..." -> "reached ..."
        evidence = abandonment.description.partition(": ")[2] or abandonment.description
        return Outcome(status="abandoned", evidence=evidence)
    return Outcome(status="neutral")


# --------------------------------------------------------------------------- issues

def _issue(kind: str, description: str, event: dict[str, Any], link: Link,
           url: Optional[str] = None) -> PotentialIssue:
    return PotentialIssue(
        type=kind, description=description, url=url if url is not None else event.get("url"),
        timestamp=int(event["timestamp"]), link=link(int(event["timestamp"])),
        event_id=event.get("event_id"),
    )


def _times(count: int) -> str:
    return "" if count <= 1 else f" ({count} times)"


def describe_error(event: Event) -> str:
    error = event.get("error") or {}
    where = page_label(event.get("url"))
    if event.get("type") == "console-error":
        message = mask_text(error.get("message") or "") or ""
        detail = f": {quoted(_clip(message, 120))}" if message else ""
        return f"JavaScript error{detail} on {where}"
    method = (error.get("method") or "").upper()
    request = page_label(error.get("request_url")) if error.get("request_url") else "a request"
    call = f"{method} {request}".strip()
    status = error.get("status")
    result = f"returned {status}" if status else "failed without a response"
    return f"API error: {call} {result} on {where}"


def _error_key(event: Event) -> tuple[Any, ...]:
    error = event.get("error") or {}
    if event.get("type") == "console-error":
        return ("js", error.get("message"), event.get("url"))
    return ("api", (error.get("method") or "").upper(), _url_path(error.get("request_url")),
            error.get("status"), event.get("url"))


def error_issues(view: SessionView, link: Link) -> list[PotentialIssue]:
    """One issue per distinct error (first occurrence), with how often it recurred."""
    first: dict[tuple[Any, ...], Event] = {}
    counts: Counter[tuple[Any, ...]] = Counter()
    for event in view.events:
        if event.get("type") in ERROR_TYPES:
            key = _error_key(event)
            first.setdefault(key, event)
            counts[key] += 1
    return [_issue("error", describe_error(event) + _times(counts[key]), event, link)
            for key, event in first.items()]


def _event_as_signal(event: Event) -> dict[str, Any]:
    target = event.get("target") or {}
    return {"type": event["type"], "timestamp": event["timestamp"], "event_id": event.get("event_id"),
            "url": event.get("url"), "selector": target.get("selector"), "text": target.get("text"),
            "count": int((event.get("properties") or {}).get("count") or 1), "derived": False,
            "detail": None}


def _same_signal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a["type"] != b["type"]:
        return False
    if a.get("event_id") and a.get("event_id") == b.get("event_id"):
        return True
    if abs(a["timestamp"] - b["timestamp"]) > SIGNAL_DEDUP_WINDOW_MS:
        return False
    sa, sb = a.get("selector"), b.get("selector")
    return sa is None or sb is None or sa == sb


_FORM_FIELD = re.compile(r"^\s*(input|textarea|select|label)\b|\[contenteditable|\bcontenteditable\b", re.I)


def _is_field_dead_click(signal: dict[str, Any]) -> bool:
    # Clicking into a text field changes nothing visible by design: not a dead click.
    return (signal.get("type") == "dead-click" and bool(signal.get("derived", True))
            and bool(_FORM_FIELD.search(signal.get("selector") or "")))


def frustration_signals(view: SessionView) -> list[dict[str, Any]]:
    """Source-sent frustration events and signals, without counting one moment twice.

    Derived dead clicks on form fields (input, textarea, select) are dropped.
    """
    candidates = [dict(s) for s in view.signals
                  if s.get("type") in FRUSTRATION_TYPES and not _is_field_dead_click(s)]
    candidates += [_event_as_signal(e) for e in view.events if e.get("type") in FRUSTRATION_TYPES]
    # Source-sent first: they are what the recorder saw; derived ones only fill gaps.
    candidates.sort(key=lambda s: (bool(s.get("derived", True)), s["timestamp"]))
    kept: list[dict[str, Any]] = []
    for candidate in candidates:
        twin = next((k for k in kept if _same_signal(k, candidate)), None)
        if twin is None:
            kept.append(candidate)
        else:
            twin["count"] = max(int(twin.get("count") or 1), int(candidate.get("count") or 1))
            twin["detail"] = twin.get("detail") or candidate.get("detail")
    kept.sort(key=lambda s: s["timestamp"])
    return kept


def describe_signal(signal: dict[str, Any]) -> str:
    what = target_label(signal)
    where = page_label(signal.get("url"))
    count = int(signal.get("count") or 1)
    kind = signal["type"]
    if kind == "rage-click":
        times = f"{count} times " if count > 1 else "repeatedly "
        text = f"Rage click: clicked {what} {times}in quick succession on {where}"
    elif kind == "dead-click":
        text = f"Dead click: clicked {what} on {where} and nothing happened"
    elif kind == "error-click":
        text = f"Error click: clicking {what} on {where} was followed by an error"
    else:
        text = f"Mouse thrashing on {where}: erratic movement, a sign of confusion"
    detail = mask_text(signal.get("detail") or "")
    return f"{text} ({_clip(detail, 100)})" if detail else text


def signal_issues(view: SessionView, link: Link) -> list[PotentialIssue]:
    return [_issue(s["type"], describe_signal(s), s, link) for s in frustration_signals(view)]


def _poor_vitals(metrics: dict[str, Any], limits: VitalsThresholds) -> dict[str, float]:
    poor = {}
    for name, limit in (("lcp", limits.lcp_ms), ("inp", limits.inp_ms), ("cls", limits.cls)):
        value = metrics.get(name)
        if isinstance(value, (int, float)) and value > limit:
            poor[name] = float(value)
    return poor


def describe_vitals(poor: dict[str, float], limits: VitalsThresholds = GOOD_VITALS) -> str:
    word = "good" if limits == GOOD_VITALS else "limit"
    parts = []
    if "lcp" in poor:
        parts.append(f"LCP {format_ms(poor['lcp'])} ({word} ≤ {format_ms(limits.lcp_ms)})")
    if "inp" in poor:
        parts.append(f"INP {format_ms(poor['inp'])} ({word} ≤ {format_ms(limits.inp_ms)})")
    if "cls" in poor:
        parts.append(f"CLS {poor['cls']:.2f} ({word} ≤ {limits.cls:g})")
    return ", ".join(parts)


def slow_page_issues(view: SessionView, link: Link,
                     limits: VitalsThresholds = GOOD_VITALS) -> list[PotentialIssue]:
    """One issue per page with any poor Core Web Vital, citing its worst values."""
    first: dict[Optional[str], Event] = {}
    worst: dict[Optional[str], dict[str, float]] = defaultdict(dict)
    for event in view.events:
        if event.get("type") != "web-vitals":
            continue
        poor = _poor_vitals(event.get("metrics") or {}, limits)
        if not poor:
            continue
        url = event.get("url")
        first.setdefault(url, event)
        for name, value in poor.items():
            worst[url][name] = max(value, worst[url].get(name, value))
    return [_issue("slow-page", f"Slow page {page_label(url)}: {describe_vitals(worst[url], limits)}",
                   event, link) for url, event in first.items()]


def _abandonment(view: SessionView, stages: Funnel, link: Link) -> Optional[PotentialIssue]:
    if stages.converted_event is not None:
        return None
    if stages.checkout_event is not None:
        event = stages.checkout_event
        return _issue("abandonment",
                      f"Abandoned checkout: reached checkout on {page_label(event.get('url'))} "
                      "but never completed an order", event, link)
    if stages.cart_event is not None:
        event = stages.cart_event
        if event.get("type") == "custom":
            item = product_name(event)
            what = f"added {quoted(item)} to the cart" if item else "added an item to the cart"
        else:
            what = f"viewed the cart ({page_label(event.get('url'))})"
        return _issue("abandonment", f"Abandoned cart: {what} but never checked out", event, link)
    return None


def abandonment_issues(view: SessionView, link: Link,
                       converted_events: Iterable[str] = DEFAULT_CONVERTED_EVENTS) -> list[PotentialIssue]:
    issue = _abandonment(view, funnel(view, converted_events), link)
    return [issue] if issue else []


def _edit_runs(events: list[Event]) -> dict[str, list[Event]]:
    """Per field, the first event of each separate edit (typing bursts count once)."""
    runs: dict[str, list[Event]] = defaultdict(list)
    last_field: Optional[str] = None
    last_time = 0
    for event in events:
        if event.get("type") == "navigate":
            last_field = None
        if event.get("type") != "input-change":
            continue
        field = (event.get("target") or {}).get("selector") or (event.get("target") or {}).get("text")
        if not field:
            continue
        if field != last_field or event["timestamp"] - last_time > EDIT_RUN_GAP_MS:
            runs[field].append(event)
        last_field, last_time = field, event["timestamp"]
    return runs


def _repeated_edit_issues(view: SessionView, link: Link) -> list[PotentialIssue]:
    issues = []
    for field, starts in _edit_runs(view.events).items():
        if len(starts) >= REPEATED_EDITS:
            event = starts[0]
            issues.append(_issue(
                "form-trouble",
                f"Form trouble: edited the field {target_label(event)} {len(starts)} separate times "
                f"on {page_label(event.get('url'))}", event, link))
    return issues


def _last_interaction(events: list[Event], index: int, window_ms: int) -> Optional[Event]:
    """The click or input just before events[index], on the same page, within the window."""
    moment = events[index]["timestamp"]
    for prior in reversed(events[:index]):
        if moment - prior["timestamp"] > window_ms or prior.get("type") == "navigate":
            return None
        if prior.get("type") in ("input-change", "click", "error-click", "dead-click", "rage-click"):
            return prior
    return None


def _error_after_input_issues(view: SessionView, link: Link) -> list[PotentialIssue]:
    issues = []
    events = view.events
    for index, event in enumerate(events):
        if event.get("type") not in ERROR_TYPES:
            continue
        prior = _last_interaction(events, index, SUBMIT_ERROR_WINDOW_MS)
        if prior is None:
            continue
        gap = event["timestamp"] - prior["timestamp"]
        if prior.get("type") == "input-change" and gap <= INPUT_ERROR_WINDOW_MS:
            text = (f"Form trouble: right after editing {target_label(prior)}, "
                    f"{describe_error(event)[0].lower()}{describe_error(event)[1:]}")
        elif event.get("type") == "network-error" and is_submit_click(prior):
            text = f"Form trouble: submitting with {target_label(prior)} failed ({describe_error(event)})"
        else:
            continue
        issues.append(_issue("form-trouble", text, event, link))
    return issues


def form_trouble_issues(view: SessionView, link: Link) -> list[PotentialIssue]:
    return _repeated_edit_issues(view, link) + _error_after_input_issues(view, link)


def detect_issues(view: SessionView, links: Optional[LinkSettings] = None,
                  converted_events: Iterable[str] = DEFAULT_CONVERTED_EVENTS,
                  vitals: VitalsThresholds = GOOD_VITALS) -> list[PotentialIssue]:
    """All potential issues in the view, in time order, each with a time-coded link."""
    link = (links or LinkSettings()).for_session(view.session_id)
    issues = (error_issues(view, link) + signal_issues(view, link) + slow_page_issues(view, link, vitals)
              + form_trouble_issues(view, link) + abandonment_issues(view, link, converted_events))
    issues.sort(key=lambda i: (i.timestamp, i.type))
    return issues


# --------------------------------------------------------------------------- journey

MAX_ACTIONS_PER_STEP = 6


def describe_action(event: Event) -> Optional[str]:
    """A few words for one event in a journey step, or None when not worth saying."""
    etype = event.get("type")
    if etype == "click":
        return f"clicked {target_label(event)}"
    if etype == "input-change":
        return "searched" if is_search(event) else f"filled in {target_label(event)}"
    if etype == "console-error":
        return "saw a JavaScript error"
    if etype == "network-error":
        status = (event.get("error") or {}).get("status")
        return f"hit an API error ({status})" if status else "hit a failed request"
    if etype in FRUSTRATION_TYPES:
        return {"rage-click": f"rage-clicked {target_label(event)}",
                "dead-click": f"dead-clicked {target_label(event)}",
                "error-click": f"clicked {target_label(event)} and got an error",
                "mouse-thrash": "thrashed the mouse"}[etype]
    if etype in ("copy", "paste"):
        return "copied text" if etype == "copy" else "pasted text"
    if etype == "custom":
        return _describe_custom(event)
    return None


def _describe_custom(event: Event) -> str:
    name = _norm(event.get("name"))
    item = product_name(event)
    if name in _CART_NAMES:
        return f"added {quoted(item)} to the cart" if item else "added an item to the cart"
    if name in _CHECKOUT_NAMES:
        return "started checkout"
    if name in _SEARCH_NAMES:
        term = search_term(event)
        return f"searched for {quoted(term)}" if term else "searched"
    if name in _PRODUCT_NAMES:
        return f"viewed {quoted(item)}" if item else "viewed a product"
    if name in _names(DEFAULT_CONVERTED_EVENTS):
        return "completed an order"
    return f"triggered {quoted(_clip(mask_text(event.get('name') or '') or '', 50))}"


def _page_actions(events: list[Event], signals: list[dict[str, Any]]) -> list[str]:
    actions: list[str] = []
    for item in sorted(events + signals, key=lambda e: e["timestamp"]):
        text = describe_action(item)
        if item.get("type") == "navigate":
            term = search_term(item)
            text = f"searched for {quoted(term)}" if term and is_search(item) else None
        if text and text not in actions:
            actions.append(text)
        if len(actions) >= MAX_ACTIONS_PER_STEP:
            break
    return actions


def build_journey(view: SessionView, links: Optional[LinkSettings] = None) -> list[JourneyStep]:
    """One step per page in order, with time on page and what the user did there."""
    link = (links or LinkSettings()).for_session(view.session_id)
    pages = sorted(view.pages, key=lambda p: p["entered_at"])
    source_signal_ids = {e.get("event_id") for e in view.events if e.get("type") in FRUSTRATION_TYPES}
    derived = [s for s in frustration_signals(view) if s.get("event_id") not in source_signal_ids]
    steps = []
    for index, page in enumerate(pages):
        start = page["entered_at"]
        end = pages[index + 1]["entered_at"] if index + 1 < len(pages) else None

        def on_page(item: dict[str, Any]) -> bool:
            return item["timestamp"] >= start and (end is None or item["timestamp"] < end)

        events = [e for e in view.events if on_page(e)]
        signals = [s for s in derived if on_page(s)]
        steps.append(JourneyStep(
            url=mask_text(page["url"]) or page["url"], entered_at=start,
            time_on_page_ms=int(page.get("time_on_page_ms") or 0), link=link(start),
            actions=_page_actions(events, signals)))
    return steps
