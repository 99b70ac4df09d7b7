"""The detailed journey: one step per page in order, with what the user did there (pure)."""
from __future__ import annotations

import re
from bisect import bisect_left
from operator import itemgetter
from typing import Any, Callable, Optional

from replaylens.config.privacy import PrivacyPolicy
from replaylens.config.wording import plural
from replaylens.schemas.events import FRUSTRATION_TYPES
from replaylens.schemas.summaries import JourneyStep
from replaylens.sinks.describe import Event, clip, field_label, not_of_types, quoted, target_label
from replaylens.sinks.profile_view import SessionView
from replaylens.sinks.vocabulary import (CART_NAMES, CART_VIEW_NAMES, CHECKOUT_NAMES, PRODUCT_NAMES,
                                         SEARCH_NAMES, is_search, norm, product_name, search_term)

MAX_ACTIONS_PER_STEP = 6
_FIELD = re.compile(r"\s*(input|textarea|select)\b", re.I)


# Events whose words depend only on their type and target: remembered across sessions.
_BY_TARGET = frozenset({"click", "input-change", "rage-click", "dead-click", "error-click", "mouse-thrash",
                        "copy", "paste", "console-error"})
# Events a journey never mentions.
_UNSAID = frozenset({"scroll", "web-vitals", "element-seen", "session-end", "highlight"})


def describe_action(event: Event, policy: PrivacyPolicy, goal_words: Optional[dict[str, str]] = None) -> Optional[str]:
    """A few words for one event in a journey step, or None when not worth saying."""
    etype = event.get("type")
    if etype in _UNSAID:
        return None
    if etype in _BY_TARGET:
        return _remembered(event, etype, policy, policy.memo("action"))
    return _describe(event, etype, policy, goal_words)


def _remembered(event: Event, etype: str, policy: PrivacyPolicy, actions: dict[Any, Optional[str]]) -> Optional[str]:
    """The words for an event of a _BY_TARGET type, from `actions` (the policy's memo) when known."""
    target = event.get("target") or {}
    key = (etype, target.get("selector") or event.get("selector"), target.get("text") or event.get("text"))
    if key in actions:
        return actions[key]
    words = actions[key] = _describe(event, etype, policy, None)
    return words


def _describe(event: Event, etype: Optional[str], policy: PrivacyPolicy,
              goal_words: Optional[dict[str, str]]) -> Optional[str]:
    if etype == "click":
        if _FIELD.match((event.get("target") or {}).get("selector") or ""):
            return None  # clicking into a field: the edit that follows says it
        return f"clicked {target_label(event, policy)}"
    if etype == "input-change":
        return "searched" if is_search(event, policy) else f"filled in {quoted(field_label(event, policy))}"
    if etype == "console-error":
        return "saw a JavaScript error"
    if etype == "network-error":
        status = (event.get("error") or {}).get("status")
        return f"hit an API error ({status})" if status else "hit a failed request"
    if etype in FRUSTRATION_TYPES:
        return {"rage-click": f"rage-clicked {target_label(event, policy)}",
                "dead-click": f"dead-clicked {target_label(event, policy)}",
                "error-click": f"clicked {target_label(event, policy)} and got an error",
                "mouse-thrash": "thrashed the mouse"}[etype]
    if etype in ("copy", "paste"):
        return "copied text" if etype == "copy" else "pasted text"
    if etype == "custom":
        return describe_custom(event, policy, goal_words)
    if etype == "navigate":
        term = search_term(event, policy)
        return f"searched for {quoted(term)}" if term and is_search(event, policy) else None
    return None


def describe_custom(event: Event, policy: PrivacyPolicy, goal_words: Optional[dict[str, str]] = None) -> str:
    name = norm(event.get("name"))
    if goal_words and name in goal_words:
        return goal_words[name]
    item = product_name(event, policy)
    if name in CART_NAMES:
        return f"added {quoted(item)} to the cart" if item else "added an item to the cart"
    if name in CART_VIEW_NAMES:
        return "viewed the cart"
    if name in CHECKOUT_NAMES:
        return "started checkout"
    if name in SEARCH_NAMES:
        term = search_term(event, policy)
        return f"searched for {quoted(term)}" if term else "searched"
    if name in PRODUCT_NAMES:
        return f"viewed {quoted(item)}" if item else "viewed a product"
    return f"triggered {quoted(clip(policy.text(event.get('name') or '') or '', 50))}"


def page_actions(items: list[dict[str, Any]], policy: PrivacyPolicy,
                 goal_words: Optional[dict[str, str]] = None,
                 remembered: Optional[dict[Any, Optional[str]]] = None) -> list[str]:
    """Distinct actions in order; when there are more than fit, the last says how many more.

    `remembered`: the policy's "action" memo, when the caller holds it already."""
    actions: list[str] = []
    if remembered is None:
        remembered = policy.memo("action")
    for item in items:
        etype = item.get("type")
        if etype in _UNSAID:
            continue
        if etype in _BY_TARGET:
            text = _remembered(item, etype, policy, remembered)
        else:
            text = _describe(item, etype, policy, goal_words)
        if text and text not in actions:
            actions.append(text)
    if len(actions) > MAX_ACTIONS_PER_STEP:
        more = len(actions) - (MAX_ACTIONS_PER_STEP - 1)
        actions = actions[: MAX_ACTIONS_PER_STEP - 1] + [f"and {plural(more, 'more action')}"]
    return actions


def build_journey(view: SessionView, derived_signals: list[dict[str, Any]], policy: PrivacyPolicy,
                  link: Callable[[int], str], goal_words: Optional[dict[str, str]] = None) -> list[JourneyStep]:
    """One step per page view in order, with time on page and what the user did there.

    `derived_signals` are the frustration signals the source did not send as events (those are
    already among the events)."""
    pages = sorted(view.pages, key=_ENTERED_AT)
    said = not_of_types(view.events + derived_signals, _UNSAID)
    said.sort(key=_TIMESTAMP)
    stamps = [e["timestamp"] for e in said]
    steps = []
    cursor = 0
    remembered = policy.memo("action")
    for index, page in enumerate(pages):
        start = page["entered_at"]
        cursor = bisect_left(stamps, start, cursor)
        stop = bisect_left(stamps, pages[index + 1]["entered_at"], cursor) if index + 1 < len(pages) else len(said)
        steps.append(JourneyStep(
            url=policy.url(page["url"]) or "", entered_at=start,
            time_on_page_ms=int(page.get("time_on_page_ms") or 0), link=link(start),
            actions=page_actions(said[cursor:stop], policy, goal_words, remembered)))
        cursor = stop
    return steps


_ENTERED_AT = itemgetter("entered_at")
_TIMESTAMP = itemgetter("timestamp")
