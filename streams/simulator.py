"""A deterministic simulator of e-commerce replay traffic, in the event contract (schemas/events.py).

Pure (no Kafka, no pydantic): it yields plain event dicts, so benchmarks measure the pipeline,
not the generator. Given the same arguments it yields the same events.

Each session is a script of one visitor: it starts with a navigate, reports web-vitals for every
page, and follows one flow:
- bounce      one page, maybe a scroll, gone
- browse      home → category → product pages (/product/123)
- search      types in the search field (input-change), results page ?q=, products
- abandon     adds to cart (custom "Added to Cart"), views the cart or the checkout form, leaves
- purchase    cart → checkout form (typed email and card number) → "Place order" →
              custom "Order Completed"; with probability `checkout_failure_rate` the order fails:
              network-error 500 on /api/checkout and a console-error, usually a rage click on the
              button, then the visitor retries successfully or abandons
Independently, `frustration_rate` of sessions get one or two troubles: a rage click (3-5 clicks on
one selector within 1 s), a dead click (a click with nothing after it), mouse thrash, or a slow
page (web-vitals with a high LCP); some pages log console errors. About half of the sessions end
with a session-end event; the rest just stop (the pipeline closes them after inactivity).

Sessions arrive as a Poisson process (`arrival_gap_ms` mean gap) and run concurrently; events of
all sessions are yielded merged in time. A share `disorder_rate` of events is delivered late (0.2-4 s
after later events), like real networks: that is the only disorder.
"""
from __future__ import annotations

import math
import random
from bisect import bisect_left
from operator import itemgetter
from typing import Any, Iterator, Optional

__all__ = ["simulate", "simulate_bytes", "Spike", "FLOW_WEIGHTS", "DEFAULT_START_MS", "CHECKOUT_API_PATH",
           "RAGE_SELECTORS", "DEAD_CLICK_SELECTORS"]

_BATCH_SESSIONS = 64
DEFAULT_START_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z: fixed, so output is reproducible
CHECKOUT_API_PATH = "/api/checkout"
FLOW_WEIGHTS = {"bounce": 0.14, "browse": 0.30, "search": 0.16, "abandon": 0.15, "purchase": 0.25}
_FLOWS = tuple(FLOW_WEIGHTS)
_FLOW_CUMULATIVE = tuple(sum(list(FLOW_WEIGHTS.values())[: i + 1]) for i in range(len(FLOW_WEIGHTS)))

_CATEGORIES = ("shoes", "jackets", "bags", "watches", "accessories", "sale")
_ADJECTIVES = ("Classic", "Trail", "Urban", "Vintage", "Alpine", "Coastal", "Everyday", "Studio", "Nomad", "Summit")
_NOUNS = {"shoes": ("Runner", "Sneaker", "Loafer", "Boot"), "jackets": ("Parka", "Windbreaker", "Blazer", "Fleece"),
          "bags": ("Backpack", "Tote", "Duffel", "Messenger"), "watches": ("Chrono", "Diver", "Field Watch", "Smartwatch"),
          "accessories": ("Scarf", "Beanie", "Wallet", "Belt"), "sale": ("Hoodie", "Tee", "Cap", "Sock Pack")}
_SEARCH_TERMS = ("running shoes", "rain jacket", "leather wallet", "backpack", "gift card", "waterproof boots",
                 "smartwatch", "sale", "wool scarf", "travel bag", "size guide", "white sneakers")
_FIRST_NAMES = ("ana", "ben", "chloe", "dev", "emma", "femi", "gus", "hana", "ivan", "jade", "kofi", "lena",
                "marc", "nina", "omar", "pia", "quinn", "rosa", "sam", "tara")
_EMAIL_DOMAINS = ("example.com", "mail.example.org", "shopper.test")
# Test card numbers (Luhn-valid, never real): typed values privacy masking must catch.
_CARDS = ("4242 4242 4242 4242", "5555 5555 5555 4444", "4000 0566 5566 5556", "3782 822463 10005")
_DEVICES = ({"type": "desktop", "os": "Windows 11", "browser": "Chrome 131"},
            {"type": "desktop", "os": "macOS 15", "browser": "Safari 18"},
            {"type": "desktop", "os": "macOS 15", "browser": "Chrome 131"},
            {"type": "desktop", "os": "Ubuntu 24.04", "browser": "Firefox 133"},
            {"type": "mobile", "os": "iOS 18", "browser": "Mobile Safari 18"},
            {"type": "mobile", "os": "Android 15", "browser": "Chrome Mobile 131"},
            {"type": "mobile", "os": "Android 14", "browser": "Samsung Internet 26"},
            {"type": "tablet", "os": "iPadOS 18", "browser": "Mobile Safari 18"})
_LOCATIONS = ({"country": "US", "region": "California", "city": "San Francisco"},
              {"country": "US", "region": "New York", "city": "Brooklyn"},
              {"country": "US", "region": "Texas", "city": "Austin"},
              {"country": "GB", "region": "England", "city": "London"},
              {"country": "DE", "region": "Berlin", "city": "Berlin"},
              {"country": "FR", "region": "Île-de-France", "city": "Paris"},
              {"country": "CA", "region": "Ontario", "city": "Toronto"},
              {"country": "BR", "region": "São Paulo", "city": "São Paulo"},
              {"country": "IN", "region": "Karnataka", "city": "Bengaluru"},
              {"country": "AU", "region": "New South Wales", "city": "Sydney"})
_REFERRERS = ("https://www.google.com/", "https://www.instagram.com/", "https://news.example.net/", None, None)
_CONSOLE_ERRORS = ("TypeError: Cannot read properties of undefined (reading 'price')",
                   "Uncaught ReferenceError: analytics is not defined",
                   "Failed to load resource: the server responded with a status of 404 ()",
                   "ChunkLoadError: Loading chunk 742 failed.")
# Where frustrated visitors click: elements that look clickable but do nothing (dead) or lag (rage).
RAGE_SELECTORS = (("button.gallery-next", "Next image"), ("button.size-option", "M"),
                  ("button.add-to-cart", "Add to cart"), ("a.promo-banner", "Free shipping over $50"))
DEAD_CLICK_SELECTORS = (("img.product-image", None), ("span.price", None), ("div.size-chart", "Size chart"),
                        ("span.rating-stars", "4.6 (212 reviews)"))


def _products() -> tuple[tuple[int, str, str, float], ...]:
    rng = random.Random(20250101)
    catalog = []
    for product_id in range(101, 401):
        category = _CATEGORIES[product_id % len(_CATEGORIES)]
        name = f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS[category])}"
        catalog.append((product_id, category, name, round(rng.uniform(12, 260), 2)))
    return tuple(catalog)


def _vitals_table(slow: bool, size: int, seed: int) -> tuple[dict[str, float], ...]:
    """Realistic Core Web Vitals, precomputed (lognormal, like field data); the hot path only picks."""
    rng = random.Random(seed)
    table = []
    for _ in range(size):
        ttfb = rng.lognormvariate(math.log(900 if slow else 280), 0.45)
        fcp = ttfb + rng.lognormvariate(math.log(1600 if slow else 700), 0.4)
        lcp = fcp + rng.lognormvariate(math.log(3500 if slow else 600), 0.45)
        # Poor LCP (> 4 s, Google's threshold) only where a page is meant to be slow.
        lcp = max(lcp, 4_000.0) if slow else min(lcp, 3_900.0)
        inp = rng.lognormvariate(math.log(420 if slow else 110), 0.5)
        cls = rng.choice((0.0, 0.0, 0.01, 0.02, 0.04)) if rng.random() < 0.85 else rng.uniform(0.1, 0.45)
        table.append({"lcp": round(lcp, 1), "inp": round(inp, 1), "cls": round(cls, 3),
                      "fcp": round(fcp, 1), "ttfb": round(ttfb, 1)})
    return tuple(table)


_CATALOG = _products()
_FAST_VITALS = _vitals_table(False, 4096, 11)
_SLOW_VITALS = _vitals_table(True, 1024, 12)


def _between(rng: random.Random, low: int, high: int) -> int:
    """rng.randint(low, high), without randint's argument checks (the hot path calls it a lot)."""
    return low + int(rng.random() * (high - low + 1))


class _Session:
    """Builds one session's events in time order. Times advance by think times the flow picks."""

    __slots__ = ("rng", "random", "sid", "site", "t", "seq", "events", "context", "slow_rate", "console_rate")

    def __init__(self, rng: random.Random, sid: str, site: str, start: int, context: dict,
                 slow_rate: float, console_rate: float) -> None:
        self.rng = rng
        self.random = rng.random
        self.sid = sid
        self.site = site
        self.t = start
        self.seq = 0
        self.events: list[dict] = []
        self.context = context
        self.slow_rate = slow_rate
        self.console_rate = console_rate

    def add(self, kind: str, url: str, **fields: Any) -> dict:
        event = {"event_id": f"{self.sid}-{self.seq}", "session_id": self.sid, "timestamp": self.t,
                 "type": kind, "url": url}
        event.update(self.context)
        event.update(fields)
        self.seq += 1
        self.events.append(event)
        return event

    def wait(self, low_ms: int, high_ms: int) -> None:
        self.t += low_ms + int(self.random() * (high_ms - low_ms + 1))

    # -- building blocks ------------------------------------------------------------------------

    def page(self, path: str, slow: bool = False, **properties: Any) -> str:
        url = self.site + path
        self.add("navigate", url, properties=properties or None)
        rng = self.rng
        self.wait(600, 2_500)
        if slow or rng.random() < self.slow_rate:
            metrics = dict(_SLOW_VITALS[rng.getrandbits(10)])
        else:
            metrics = dict(_FAST_VITALS[rng.getrandbits(12)])
        self.add("web-vitals", url, metrics=metrics)
        if rng.random() < self.console_rate:
            self.wait(50, 900)
            self.add("console-error", url, error={"message": rng.choice(_CONSOLE_ERRORS)})
        return url

    def click(self, url: str, selector: str, text: Optional[str], **fields: Any) -> None:
        target = {"selector": selector, "text": text} if text else {"selector": selector}
        self.add("click", url, target=target, **fields)

    def scroll(self, url: str, times: int) -> None:
        depth = 0
        for _ in range(times):
            self.wait(1_500, 9_000)
            depth += _between(self.rng, 300, 1_400)
            self.add("scroll", url, properties={"y": depth})

    def type_into(self, url: str, selector: str, value: str) -> None:
        self.click(url, selector, None)
        self.wait(800 + 120 * len(value), 2_000 + 260 * len(value))
        self.add("input-change", url, target={"selector": selector}, value=value)

    def rage(self, url: str, selector: str, text: Optional[str]) -> None:
        for _ in range(_between(self.rng, 3, 5)):
            self.wait(90, 240)  # 3-5 clicks within 1 s
            self.click(url, selector, text)

    def product(self, product: tuple[int, str, str, float]) -> str:
        url = self.page(f"/product/{product[0]}")
        self.scroll(url, _between(self.rng, 0, 2))
        self.wait(3_000, 25_000)
        return url

    def add_to_cart(self, url: str, product: tuple[int, str, str, float]) -> None:
        self.click(url, "button.add-to-cart", "Add to cart")
        self.wait(150, 700)
        self.add("custom", url, name="Added to Cart",
                 properties={"product_id": str(product[0]), "name": product[2], "price": product[3], "quantity": 1})
        self.wait(1_000, 6_000)


class _Simulator:
    def __init__(self, seed: int, site: str, frustration_rate: float, checkout_failure_rate: float,
                 slow_page_rate: float, console_error_rate: float, session_end_rate: float,
                 identified_rate: float) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.site = site.rstrip("/")
        self.frustration_rate = frustration_rate
        self.checkout_failure_rate = checkout_failure_rate
        self.slow_page_rate = slow_page_rate
        self.console_error_rate = console_error_rate
        self.session_end_rate = session_end_rate
        self.identified_rate = identified_rate

    def context(self, number: int) -> dict:
        rng = self.rng
        # Copied per session: the module's tables must never be shared with consumers.
        context: dict[str, Any] = {"device": dict(_DEVICES[rng.getrandbits(3)]),
                                   "location": dict(_LOCATIONS[int(rng.random() * len(_LOCATIONS))])}
        if rng.random() < self.identified_rate:
            name = _FIRST_NAMES[int(rng.random() * len(_FIRST_NAMES))]
            context["user"] = {"id": f"user-{self.seed}-{number}",
                               "email": f"{name}.{number}@{_EMAIL_DOMAINS[number % len(_EMAIL_DOMAINS)]}"}
        return context

    def session(self, number: int, start: int) -> list[dict]:
        rng = self.rng
        sid = f"sim{self.seed}-{number:07d}"
        context = self.context(number)
        s = _Session(rng, sid, self.site, start, context, self.slow_page_rate, self.console_error_rate)
        roll = rng.random()
        flow = next((f for f, c in zip(_FLOWS, _FLOW_CUMULATIVE) if roll < c), _FLOWS[-1])
        frustrated = rng.random() < self.frustration_rate
        troubles = rng.sample(("rage", "dead", "thrash", "slow"), _between(rng, 1, 2)) if frustrated else ()
        getattr(self, "_" + flow)(s, troubles)
        if rng.random() < self.session_end_rate:
            s.wait(1_000, 20_000)
            s.add("session-end", s.events[-1]["url"], properties={"reason": "pagehide"})
        return s.events

    # -- flows ----------------------------------------------------------------------------------

    def _landing(self, s: _Session, troubles: tuple) -> str:
        referrer = _REFERRERS[int(self.rng.random() * len(_REFERRERS))]
        props = {"referrer": referrer} if referrer else {}
        return s.page("/", slow="slow" in troubles, **props)

    def _trouble(self, s: _Session, url: str, troubles: tuple) -> None:
        rng = self.rng
        if "rage" in troubles:
            selector, text = RAGE_SELECTORS[int(rng.random() * len(RAGE_SELECTORS))]
            s.wait(1_000, 5_000)
            s.rage(url, selector, text)
            s.wait(2_000, 8_000)
        if "dead" in troubles:
            selector, text = DEAD_CLICK_SELECTORS[int(rng.random() * len(DEAD_CLICK_SELECTORS))]
            for _ in range(_between(rng, 1, 2)):
                s.wait(1_500, 6_000)
                s.click(url, selector, text)
            s.wait(4_000, 12_000)  # nothing happens after a dead click
        if "thrash" in troubles:
            s.wait(1_000, 6_000)
            s.add("mouse-thrash", url, properties={"reversals": _between(rng, 6, 14)})
            s.wait(1_000, 5_000)

    def _category(self, s: _Session) -> tuple[str, str]:
        category = _CATEGORIES[int(self.rng.random() * len(_CATEGORIES))]
        s.wait(2_000, 12_000)
        s.click(s.events[-1]["url"], "a.nav-link", category.capitalize())
        s.wait(200, 900)
        url = s.page(f"/category/{category}")
        s.scroll(url, _between(self.rng, 1, 3))
        return category, url

    def _pick_product(self, s: _Session, category: Optional[str] = None) -> tuple[int, str, str, float]:
        rng = self.rng
        for _ in range(8):
            product = _CATALOG[int(rng.random() * len(_CATALOG))]
            if category is None or product[1] == category:
                return product
        return product

    def _open_product(self, s: _Session, url: str, category: Optional[str] = None) -> tuple[str, tuple]:
        product = self._pick_product(s, category)
        s.wait(1_500, 8_000)
        s.click(url, "a.product-card", product[2])
        s.wait(150, 800)
        return s.product(product), product

    def _bounce(self, s: _Session, troubles: tuple) -> None:
        url = self._landing(s, troubles)
        s.scroll(url, _between(self.rng, 0, 1))
        self._trouble(s, url, troubles)

    def _browse(self, s: _Session, troubles: tuple) -> list:
        self._landing(s, troubles)
        category, url = self._category(s)
        cart = []
        for i in range(_between(self.rng, 1, 3)):
            url, product = self._open_product(s, url, category)
            if i == 0:
                self._trouble(s, url, troubles)
            cart.append(product)
        return cart

    def _search(self, s: _Session, troubles: tuple) -> list:
        rng = self.rng
        url = self._landing(s, troubles)
        term = _SEARCH_TERMS[int(rng.random() * len(_SEARCH_TERMS))]
        s.wait(1_500, 6_000)
        s.type_into(url, "input#search", term)
        s.wait(200, 800)
        url = s.page(f"/search?q={term.replace(' ', '+')}")
        if rng.random() < 0.25:  # nothing good found
            s.scroll(url, 1)
            self._trouble(s, url, troubles)
            return []
        url, product = self._open_product(s, url)
        self._trouble(s, url, troubles)
        return [product]

    def _fill_cart(self, s: _Session, troubles: tuple) -> tuple[str, list]:
        cart = self._search(s, troubles) if self.rng.random() < 0.3 else self._browse(s, troubles)
        if not cart:
            cart = [self._pick_product(s)]
            s.product(cart[0])
        url = s.events[-1]["url"]
        for product in cart[: self.rng.randint(1, len(cart))]:
            s.add_to_cart(url, product)
        s.click(url, "a#cart-link", "Cart")
        s.wait(150, 700)
        url = s.page("/cart")
        s.wait(3_000, 15_000)
        return url, cart

    def _checkout_form(self, s: _Session, url: str) -> str:
        rng = self.rng
        s.click(url, "button#checkout", "Checkout")
        s.wait(200, 900)
        url = s.page("/checkout")
        user = s.context.get("user")
        email = user["email"] if user else (f"{_FIRST_NAMES[int(rng.random() * len(_FIRST_NAMES))]}"
                                            f"{_between(rng, 1, 999)}@{_EMAIL_DOMAINS[rng.randrange(3)]}")
        s.wait(1_000, 4_000)
        s.type_into(url, "input#email", email)
        s.wait(500, 2_000)
        s.type_into(url, "input#card-number", _CARDS[int(rng.random() * len(_CARDS))])
        s.wait(500, 2_000)
        s.type_into(url, "input#card-expiry", f"{_between(rng, 1, 12):02d}/{_between(rng, 26, 31)}")
        return url

    def _abandon(self, s: _Session, troubles: tuple) -> None:
        url, _ = self._fill_cart(s, troubles)
        if self.rng.random() < 0.4:
            self._checkout_form(s, url)
            s.wait(5_000, 30_000)

    def _purchase(self, s: _Session, troubles: tuple) -> None:
        rng = self.rng
        url, cart = self._fill_cart(s, troubles)
        url = self._checkout_form(s, url)
        total = round(sum(p[3] for p in cart), 2)
        s.wait(1_000, 5_000)
        s.click(url, "button#place-order", "Place order")
        if rng.random() < self.checkout_failure_rate:
            s.wait(150, 900)
            s.add("network-error", url, error={
                "message": "POST /api/checkout failed with status 500 Internal Server Error",
                "status": 500, "method": "POST", "request_url": self.site + CHECKOUT_API_PATH})
            s.wait(5, 60)
            s.add("console-error", url, error={"message": "Payment failed: checkout service returned 500"})
            if rng.random() < 0.65:
                s.rage(url, "button#place-order", "Place order")
            if rng.random() < 0.6:  # gives up
                s.wait(3_000, 20_000)
                return
            s.wait(4_000, 15_000)
            s.click(url, "button#place-order", "Place order")
        s.wait(600, 2_500)
        order_id = f"ord-{s.sid[-7:]}-{_between(rng, 1000, 9999)}"
        s.add("custom", url, name="Order Completed",
              properties={"order_id": order_id, "revenue": total, "currency": "USD", "items": len(cart)})
        s.wait(100, 600)
        url = s.page(f"/order/{order_id}/confirmation")
        s.wait(3_000, 20_000)


def _with_delivery(events: list[dict], disorder_rate: float, rng: random.Random) -> list[tuple[int, dict]]:
    """(delivery time, event) pairs: the event time, plus a late delay for a `disorder_rate` share.
    Delayed events are picked by geometric skips, so the common case costs no random draw."""
    pairs = [(event["timestamp"], event) for event in events]
    if disorder_rate <= 0.0:
        return pairs
    log_keep = math.log1p(-disorder_rate) if disorder_rate < 1.0 else None
    index = -1
    while True:
        index += 1 if log_keep is None else 1 + int(math.log(1.0 - rng.random()) / log_keep)
        if index >= len(pairs):
            return pairs
        due, event = pairs[index]
        pairs[index] = (due + _between(rng, 200, 4_000), event)


SPIKE_SELECTOR = ("button.spike-broken", "Continue")
SPIKE_ERROR = "TypeError: Cannot read properties of null (reading 'submit')"
SPIKE_DURATION_MS = 10 * 60_000
SPIKE_AT = 0.75  # of the run, by default: after the alert baselines (30 min) have settled


class Spike:
    """A frustration spike on one page (`replaylens simulate --spike URL`): every view of the page
    (a full URL, or a path such as /checkout) from `start_ms` for `duration_ms` gets a rage click,
    as a recorder SDK reports it, and a new console error. None start: three quarters into the run."""

    __slots__ = ("url", "start_ms", "duration_ms")

    def __init__(self, url: str, start_ms: Optional[int] = None, duration_ms: int = SPIKE_DURATION_MS) -> None:
        self.url, self.start_ms, self.duration_ms = url, start_ms, duration_ms

    def matches(self, url: Optional[str], at: int) -> bool:
        if not url or self.start_ms is None or not self.start_ms <= at < self.start_ms + self.duration_ms:
            return False
        from urllib.parse import urlsplit
        bare = url.split("?", 1)[0].split("#", 1)[0].rstrip("/")
        wanted = self.url.rstrip("/")
        return bare == wanted or (wanted.startswith("/") and urlsplit(bare).path.rstrip("/") == wanted)

    def inject(self, events: list[dict], rng: random.Random) -> list[dict]:
        extra = []
        for e in events:
            if e["type"] == "navigate" and self.matches(e.get("url"), e["timestamp"]):
                base = {k: v for k, v in e.items() if k not in ("event_id", "type", "properties", "timestamp")}
                t = e["timestamp"] + _between(rng, 300, 500)
                extra.append(dict(base, event_id=f"{e['event_id']}-spike-rage", type="rage-click", timestamp=t,
                                  target={"selector": SPIKE_SELECTOR[0], "text": SPIKE_SELECTOR[1]},
                                  properties={"count": _between(rng, 3, 6)}))
                extra.append(dict(base, event_id=f"{e['event_id']}-spike-error", type="console-error",
                                  timestamp=t + 40, error={"message": SPIKE_ERROR}))
        if not extra:
            return events
        return sorted(events + extra, key=itemgetter("timestamp"))


def simulate(sessions: int, seed: int = 0, start_ms: Optional[int] = None, site: str = "https://shop.example.com",
             *, frustration_rate: float = 0.15, checkout_failure_rate: float = 0.2,
             slow_page_rate: float = 0.05, console_error_rate: float = 0.03, session_end_rate: float = 0.5,
             identified_rate: float = 0.4, disorder_rate: float = 0.01,
             arrival_gap_ms: float = 1_500.0, spike: Optional[Spike] = None) -> Iterator[dict]:
    """Contract event dicts for `sessions` simulated shoppers, merged in delivery (≈ time) order.

    Deterministic for equal arguments. `start_ms` (epoch ms) is when the first visitor arrives;
    None means DEFAULT_START_MS (fixed, so runs are reproducible; pass the current time to feed a
    live pipeline). Visitors arrive `arrival_gap_ms` apart on average (exponential), so many
    sessions overlap. Event ids are "<session_id>-<n>", unique. Rates are probabilities per
    session, except slow_page_rate and console_error_rate (per page) and disorder_rate (per event).
    """
    if sessions < 0:
        raise ValueError(f"sessions must be >= 0, got {sessions}")
    for name, rate in (("frustration_rate", frustration_rate), ("checkout_failure_rate", checkout_failure_rate),
                       ("slow_page_rate", slow_page_rate), ("console_error_rate", console_error_rate),
                       ("session_end_rate", session_end_rate), ("identified_rate", identified_rate),
                       ("disorder_rate", disorder_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be within [0, 1], got {rate}")
    if arrival_gap_ms <= 0:
        raise ValueError(f"arrival_gap_ms must be > 0, got {arrival_gap_ms}")
    sim = _Simulator(seed, site, frustration_rate, checkout_failure_rate, slow_page_rate, console_error_rate,
                     session_end_rate, identified_rate)
    arrivals = random.Random(seed ^ 0x5EED)
    delays = random.Random(seed ^ 0xDE1A)
    next_start = DEFAULT_START_MS if start_ms is None else int(start_ms)
    if spike is not None and spike.start_ms is None:  # arrivals are ~arrival_gap_ms apart
        spike = Spike(spike.url, next_start + int(sessions * arrival_gap_ms * SPIKE_AT), spike.duration_ms)
    spike_rng = random.Random(seed ^ 0x5B1CE)
    created = 0
    # Events wait in `pending`, sorted by delivery time, until no session still to be created can
    # deliver earlier: every event of a later session is due at or after that session's start.
    # Sessions are made in small batches and the batch merged by one (C-speed) sort.
    pending: list[tuple[int, dict]] = []
    by_due = itemgetter(0)
    while created < sessions or pending:
        batch_end = min(sessions, created + _BATCH_SESSIONS)
        while created < batch_end:
            events = sim.session(created, next_start)
            if spike is not None:
                events = spike.inject(events, spike_rng)
            pending.extend(_with_delivery(events, disorder_rate, delays))
            created += 1
            next_start += int(arrivals.expovariate(1.0 / arrival_gap_ms)) + 1
        pending.sort(key=by_due)
        if created == sessions:
            for _, event in pending:
                yield event
            return
        cut = bisect_left(pending, next_start, key=by_due)
        for index in range(cut):
            yield pending[index][1]
        del pending[:cut]


def simulate_bytes(sessions: int, seed: int = 0, start_ms: Optional[int] = None,
                   site: str = "https://shop.example.com", **knobs: Any) -> Iterator[tuple[bytes, bytes]]:
    """simulate(...) as Kafka-ready (key, value) pairs: session id bytes, compact JSON bytes."""
    import orjson

    dumps = orjson.dumps
    for event in simulate(sessions, seed, start_ms, site, **knobs):
        yield event["session_id"].encode(), dumps(event)
