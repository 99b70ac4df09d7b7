"""The words a site's events use: searches, products, carts, submit buttons (pure).

Recognizes what an event means for a reader ("searched for “trail shoes”", "viewed a product")
from custom event names, URL paths and element labels. Goal reach and abandonment live in
`sinks/goals.py`; this is only vocabulary.
"""
from __future__ import annotations

import re
from typing import Iterable, NamedTuple, Optional
from urllib.parse import parse_qs, urlsplit

from replaylens.config.privacy import MASK, PrivacyPolicy
from replaylens.sinks.describe import Event, clip, url_path

CART_EVENTS = ("Added to Cart", "Add to Cart", "Product Added")
CART_VIEW_EVENTS = ("Cart Viewed",)
CHECKOUT_EVENTS = ("Checkout Started", "Begin Checkout", "Initiate Checkout",
                   "Payment Info Entered", "Checkout Step Completed")
PRODUCT_VIEW_EVENTS = ("Product Viewed", "View Item", "Viewed Product")
SEARCH_EVENTS = ("Products Searched", "Search", "Searched", "Search Submitted")

_PRODUCT_PATH = re.compile(r"/(products?|p|items?|dp)/([^/?#]+)", re.I)
_ID_SLUG = re.compile(r"[0-9a-f-]*\d[0-9a-f-]*", re.I)
_SEARCH_PATH = re.compile(r"(?<![a-z])search(?![a-z])", re.I)
_SEARCH_FIELD = re.compile(r"search|query|\bq\b|name=.?q.?\]|#q\b", re.I)
_SEARCH_PARAMS = ("q", "query", "search", "keyword", "keywords", "term")
_SUBMIT = re.compile(
    r"submit|sign ?up|sign ?in|log ?in|register|continue|next|save|send|\bpay\b|pay now"
    r"|place order|confirm|checkout|check out|buy|subscribe|apply|update|create", re.I)
# Clicking a product link right before an id-only product URL names the product.
PRODUCT_LINK_WINDOW_MS = 3_000
CLICK_TYPES = frozenset({"click", "error-click", "dead-click", "rage-click"})


_NOT_ALNUM = re.compile(r"[^a-z0-9]")
_NORMS: dict[Optional[str], str] = {}
MEMO_ENTRIES = 10_000


def norm(name: Optional[str]) -> str:
    """'Added to Cart' -> 'addedtocart' (remembered: a site's event names repeat)."""
    known = _NORMS.get(name)
    if known is None:
        known = _NOT_ALNUM.sub("", (name or "").lower())
        if len(_NORMS) >= MEMO_ENTRIES:
            _NORMS.clear()
        _NORMS[name] = known
    return known


def names(items: Iterable[str]) -> frozenset[str]:
    return frozenset(norm(n) for n in items)


CART_NAMES = names(CART_EVENTS)
CART_VIEW_NAMES = names(CART_VIEW_EVENTS)
CHECKOUT_NAMES = names(CHECKOUT_EVENTS)
PRODUCT_NAMES = names(PRODUCT_VIEW_EVENTS)
SEARCH_NAMES = names(SEARCH_EVENTS)


def is_custom(event: Event, wanted: frozenset[str]) -> bool:
    return event.get("type") == "custom" and norm(event.get("name")) in wanted


def _property(event: Event, policy: PrivacyPolicy, *keys: str) -> Optional[str]:
    props = event.get("properties") or {}
    for key in keys:
        value = props.get(key)
        if value not in (None, "", MASK):
            return clip(policy.text(str(value)) or "")
    return None


def product_name(event: Event, policy: PrivacyPolicy) -> Optional[str]:
    return _property(event, policy, "name", "product_name", "product", "title", "sku", "product_id")


def search_term(event: Event, policy: PrivacyPolicy) -> Optional[str]:
    """The search words of a search custom event or of a URL's query string, masked."""
    if event.get("type") == "custom":
        return _property(event, policy, "query", "search", "term", "q", "keyword")
    url = event.get("url")
    if not url or "?" not in url:
        return None
    return url_words(url, policy).term


class UrlWords(NamedTuple):
    search: bool            # a search page, by its path or its query
    term: Optional[str]     # the search words in its query, masked
    product: Optional[str]  # the product it shows, masked ("product 123" for an id-only URL)


def url_words(url: str, policy: PrivacyPolicy) -> UrlWords:
    """What a page URL says of searches and products, remembered per policy (a site's URLs repeat)."""
    memo = policy.memo("url_words")
    known = memo.get(url)
    if known is None:
        term = _query_term(url, policy) if "?" in url else None
        known = memo[url] = UrlWords(bool(_SEARCH_PATH.search(url_path(url))) or term is not None, term,
                                     _url_product(url, policy))
    return known


def _query_term(url: str, policy: PrivacyPolicy) -> Optional[str]:
    params = parse_qs(urlsplit(url).query)
    for key in _SEARCH_PARAMS:
        if params.get(key) and params[key][0].strip() and params[key][0].strip() != MASK:
            return clip(policy.text(params[key][0].strip()) or "")
    return None


_SEARCH_FIELDS: dict[str, bool] = {}


def is_search(event: Event, policy: PrivacyPolicy) -> bool:
    etype = event.get("type")
    if etype == "custom":
        return norm(event.get("name")) in SEARCH_NAMES
    if etype == "input-change":
        return _target_matches(event, _SEARCH_FIELD, _SEARCH_FIELDS)
    if etype == "navigate" and event.get("url"):
        return url_words(event["url"], policy).search
    return False


def product_viewed(event: Event, policy: PrivacyPolicy) -> Optional[str]:
    """A product label when the event is a product view, else None."""
    if is_custom(event, PRODUCT_NAMES):
        return product_name(event, policy) or "a product"
    if event.get("type") == "navigate" and event.get("url"):
        return url_words(event["url"], policy).product
    return None


def _url_product(url: str, policy: PrivacyPolicy) -> Optional[str]:
    match = _PRODUCT_PATH.search(url_path(url))
    if not match:
        return None
    slug = match.group(2)
    if _ID_SLUG.fullmatch(slug):  # an id, not a name
        return f"product {clip(policy.text(slug) or '', 40)}"
    return clip(policy.text(slug.replace("-", " ").replace("_", " ")) or "")


def product_views(events: list[Event], policy: PrivacyPolicy) -> list[str]:
    """Products viewed, named by the product link clicked just before when the URL has only an id."""
    found: list[str] = []
    for index, event in enumerate(events):
        if event.get("type") not in ("custom", "navigate"):
            continue
        name = viewed_product(events, index, policy)
        if name is not None and name not in found:
            found.append(name)
    return found


def viewed_product(events: list[Event], index: int, policy: PrivacyPolicy) -> Optional[str]:
    """The product events[index] views, if any (see `named_product`)."""
    name = product_viewed(events[index], policy)
    return named_product(events, index, name, policy) if name else None


def named_product(events: list[Event], index: int, name: str, policy: PrivacyPolicy) -> str:
    """`name` of the product events[index] views, except that an id-only product URL is named by
    the product link clicked just before it."""
    event = events[index]
    prior = events[index - 1] if index else None
    if (name.startswith("product ") and event.get("type") == "navigate" and prior
            and prior.get("type") == "click"
            and event["timestamp"] - prior["timestamp"] <= PRODUCT_LINK_WINDOW_MS
            and (prior.get("target") or {}).get("text") not in (None, "", MASK)):
        return clip(policy.text(prior["target"]["text"]) or "")
    return name


_SUBMIT_LABELS: dict[str, bool] = {}


def is_submit_click(event: Event) -> bool:
    if event.get("type") not in CLICK_TYPES:
        return False
    return _target_matches(event, _SUBMIT, _SUBMIT_LABELS)


def _target_matches(event: Event, pattern: re.Pattern[str], memo: dict[str, bool]) -> bool:
    """Whether the event target's selector and text match `pattern`, remembered per label
    (labels repeat across sessions; the memo is bounded like the privacy policy's)."""
    target = event.get("target") or {}
    label = f"{target.get('selector') or ''} {target.get('text') or ''}"
    known = memo.get(label)
    if known is None:
        if len(memo) >= MEMO_ENTRIES:
            memo.clear()
        known = memo[label] = bool(pattern.search(label))
    return known


_PAGE_TYPES: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p, re.I), words) for p, words in (
    (r"^/?$", "the home page"),
    (r"(?<![a-z])search(?![a-z])", "search results"),
    (r"/(products?|p|items?|dp)/[^/]+", "a product page"),
    (r"(?<![a-z])(cart|basket|bag)(?![a-z])", "the cart"),
    (r"(order[-_/]?(confirmation|complete|success)|thank[-_]?you)", "the order confirmation"),
    (r"(?<![a-z])(checkout|payment)(?![a-z])", "the checkout"),
    (r"sign-?up|register|create-account", "the sign-up page"),
    (r"log-?in|sign-?in", "the log-in page"),
    (r"(?<![a-z])contact(?![a-z])|request-demo", "the contact page"),
    (r"(?<![a-z])(help|support|faq|docs?|kb)(?![a-z])", "a help page"),
    (r"(?<![a-z])(account|profile|settings)(?![a-z])", "the account pages"),
    (r"(?<![a-z])pricing(?![a-z])", "the pricing page"),
    (r"(?<![a-z])(category|categories|collections?|shop)(?![a-z])", "a category page"),
    (r"(?<![a-z])(blog|articles?|news)(?![a-z])", "an article"),
))


_PAGE_TYPE_OF: dict[str, Optional[str]] = {}


def page_type(url: Optional[str]) -> Optional[str]:
    """'the checkout', 'a product page': what kind of page, in plain words (None if unknown)."""
    path = url_path(url)
    if path in _PAGE_TYPE_OF:
        return _PAGE_TYPE_OF[path]
    found = next((words for pattern, words in _PAGE_TYPES if pattern.search(path)), None)
    if len(_PAGE_TYPE_OF) >= MEMO_ENTRIES:
        _PAGE_TYPE_OF.clear()
    _PAGE_TYPE_OF[path] = found
    return found
