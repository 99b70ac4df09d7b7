"""Words for things a session shows: pages, clicked elements, errors (pure).

Every label passes through the privacy policy given to it: nothing here masks on its own terms.
"""
from __future__ import annotations

from typing import Any, Optional
from urllib.parse import urlsplit

from replaylens.config.privacy import MASK, PrivacyPolicy

Event = dict[str, Any]

LABEL_CHARS = 60
SELECTOR_CHARS = 50
MESSAGE_CHARS = 120


# ------------------------------------------------------------------ selecting events
# Each part of a summary reads only a few kinds of events: it picks them out, then loops over those.

def of_types(events: list[Event], types: frozenset[str]) -> list[Event]:
    """The events whose type is one of `types`, in order."""
    return [event for event in events if event.get("type") in types]


def not_of_types(events: list[Event], types: frozenset[str]) -> list[Event]:
    """The events whose type is none of `types`, in order."""
    return [event for event in events if event.get("type") not in types]


def positions_of_types(events: list[Event], types: frozenset[str]) -> list[tuple[int, Event]]:
    """(index, event) for the events whose type is one of `types`, in order."""
    return [(index, event) for index, event in enumerate(events) if event.get("type") in types]


def clip(text: str, limit: int = LABEL_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quoted(text: str) -> str:
    return f"“{text}”"


_PATHS: dict[str, str] = {}
MEMO_ENTRIES = 20_000


def url_path(url: Optional[str]) -> str:
    """The path of a URL (remembered: a site's URLs repeat across sessions)."""
    if not url:
        return ""
    path = _PATHS.get(url)
    if path is None:
        if len(_PATHS) >= MEMO_ENTRIES:
            _PATHS.clear()
        path = _PATHS[url] = urlsplit(url).path
    return path


def page_label(url: Optional[str], policy: PrivacyPolicy) -> str:
    """The path (and masked query) of a URL: what a reader needs to know the page."""
    if not url:
        return "an unknown page"
    labels = policy.memo("page_label")
    label = labels.get(url)
    if label is None:
        masked = policy.url(url) or ""
        parts = urlsplit(masked)
        if not parts.scheme and not parts.netloc:
            label = masked or "/"
        else:
            label = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        labels[url] = label
    return label


def element_text(event: Event) -> Optional[str]:
    """The visible text of the clicked or typed-into element, when there is one."""
    target = event.get("target") or {}
    text = target.get("text") or event.get("text")
    return text if text and text != MASK else None


def target_label(event: Event, policy: PrivacyPolicy) -> str:
    """“Add to cart” from the target text, else the selector, else “an element”."""
    text = element_text(event)
    if text:
        return quoted(clip(policy.text(text) or ""))
    target = event.get("target") or {}
    selector = target.get("selector") or event.get("selector")
    if selector:
        return quoted(clip(policy.text(selector) or "", SELECTOR_CHARS))
    return "an element"


def field_label(event: Event, policy: PrivacyPolicy) -> str:
    """A form field in plain words: 'email' from input#email, name=card-number -> 'card number'.

    Remembered per policy by (selector, text): a site's fields repeat across sessions."""
    key = ((event.get("target") or {}).get("selector") or "", element_text(event))
    labels = policy.memo("field_label")
    label = labels.get(key)
    if label is None:
        label = labels[key] = _field_label(*key, policy)
    return label


def _field_label(selector: str, text: Optional[str], policy: PrivacyPolicy) -> str:
    if text:
        return clip(policy.text(text) or "", SELECTOR_CHARS)
    for marker in ("#", "name=", "[name=", "."):
        if marker in selector:
            word = selector.split(marker, 1)[1]
            word = word.strip("'\"]").split("]")[0].split(".")[0].split("[")[0]
            if word:
                return clip(policy.text(word.replace("-", " ").replace("_", " ")) or "", SELECTOR_CHARS)
    return clip(policy.text(selector) or "a field", SELECTOR_CHARS)


def error_message(event: Event, policy: PrivacyPolicy) -> Optional[str]:
    """The error's own words ("Payment declined"), masked and cut; None when it has none."""
    message = (event.get("error") or {}).get("message")
    return clip(policy.text(message) or "", MESSAGE_CHARS) if message else None


def request_label(event: Event, policy: PrivacyPolicy) -> str:
    """'POST /api/signup' for a failed request, masked."""
    error = event.get("error") or {}
    method = (error.get("method") or "").upper()
    request = page_label(error.get("request_url"), policy) if error.get("request_url") else "a request"
    return f"{method} {request}".strip()


def describe_error(event: Event, policy: PrivacyPolicy) -> str:
    """One error in a sentence: 'API error: POST /api/pay returned 402 “Payment declined”'."""
    message = error_message(event, policy)
    said = f" {quoted(message)}" if message else ""
    if event.get("type") == "console-error":
        return f"JavaScript error{':' + said if said else ''}"
    status = (event.get("error") or {}).get("status")
    result = f"returned {status}" if status else "failed without a response"
    return f"API error: {request_label(event, policy)} {result}{said}"
